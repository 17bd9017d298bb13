// Package limit keeps a service from running unbounded: a Bulkhead caps how
// many calls to a dependency run at once, and rate limiters (Limiter, and
// KeyedLimiter for one bucket per caller) cap how often calls happen. Both
// refuse excess work at once, with a contract error that says when to come
// back, and both have HTTP middleware that answers RFC 9457 problems.
//
// # Why
//
// "What happens if the database gets slow for thirty seconds?" Without a
// bound, every request that reaches the slow dependency parks a goroutine,
// a connection and some memory behind it; the queue grows until the process
// falls over, and then the dependency, when it recovers, meets a stampede.
// A bulkhead turns that pile-up into fast, honest refusals: at most N calls
// in flight, at most M waiting for a bounded time, everyone else told
// "unavailable, retry after 1s" in microseconds. A rate limiter does the same
// for volume: a noisy client gets "rate limited, retry after 200ms" instead
// of eating everybody's capacity.
//
// # Bulkhead
//
// A Bulkhead admits at most BulkheadConfig.MaxConcurrent calls at once;
// there is no unlimited setting. When every slot is taken, up to MaxWaiting
// calls queue for at most MaxWait and never past their context; the rest are
// refused immediately. By default nobody waits: a full bulkhead refuses at
// once. The queue is strictly first come, first served: while any call
// waits, newcomers queue behind it, and a released slot goes straight to
// the first waiter, so later arrivals never starve a waiter into a timeout.
//
//	b, err := limit.NewBulkhead(limit.BulkheadConfig{Name: "payments-db", MaxConcurrent: 16, MaxWaiting: 32, MaxWait: 50 * time.Millisecond})
//	...
//	row, err := limit.Do(ctx, b, func(ctx context.Context) (Row, error) { return db.Get(ctx, id) })
//
// Do runs a function in a slot; Acquire and Release bracket code that cannot
// be wrapped. The slot is released when the function returns or panics, and
// the panic continues up the stack, so a bug never leaks capacity.
//
// A refusal is a *contract.Error of KindUnavailable (HTTP 503) with code
// CodeBulkheadFull or CodeBulkheadWaitTimeout and RetryAfter set from
// BulkheadConfig.RetryAfter. Unavailable, not rate limited, because the
// bulkhead protects the server's capacity whoever the caller is: the caller
// did nothing wrong, the service is busy. It wraps
// contract.ErrRefusedLocally: the call was never made, so errors.Is tells
// it from a dependency's own 503, and a retry Budget does not count it. A
// call whose context ends while it waits gets KindCanceled or KindTimeout
// wrapping the context error; a context that is already done never takes a
// slot.
//
// The uncontended path is lock free and allocates nothing: the slots are
// split over a few stripes, each alone on its cache line (MaxConcurrent in
// all, so the bound stays exact); a goroutine acquires with a
// compare-and-swap on the stripe its stack address picks, moving on to the
// others only when that one is full, so calls on different cores rarely
// share a counter. The queue has its own mutex, touched only when the
// bulkhead is full.
//
// # Rate limiting
//
// Limiter is a token bucket built on golang.org/x/time/rate: Burst tokens at
// most, refilled at Rate per second, one spent per call. Its Mode decides
// what happens when the bucket is empty:
//
//   - Reject (the default) refuses at once.
//   - Wait sleeps until the call's token is due, when that is within MaxWait
//     and before the context's deadline; a wait that could not succeed in
//     time is refused at once rather than attempted.
//
// A refusal is a *contract.Error of KindRateLimited (HTTP 429) with code
// CodeRateLimited whose RetryAfter is exactly the time until a token is
// available, read from the bucket's state without reserving: refused calls
// do not consume tokens, even many at once, so a client that honours
// Retry-After gets in. Like a bulkhead's refusal, it wraps
// contract.ErrRefusedLocally.
//
// KeyedLimiter keeps one bucket per key (API key, tenant, client IP) with
// bounded memory: at most KeyedConfig.MaxKeys keys (the least recently used
// forgotten when a new key finds the limiter full, never before), keys idle
// for IdleTimeout dropped, keys longer than 128 bytes stored as a 128-bit
// hash and shorter ones as a copy, so a key sliced from a request body
// never keeps the body alive. IdleTimeout may not be shorter than the time
// a bucket takes to refill (Burst/Rate, plus MaxWait in Wait mode, whose
// reservations can put a bucket in debt), so forgetting an idle key never
// gives it tokens it would not have had. Keys are spread over independently
// locked shards; MaxKeys bounds them all together.
//
// A key forgotten because the limiter was full comes back with a full
// bucket. Where clients can mint keys (usernames or API keys checked after
// the limiter, the 65,536 /64s of one IPv6 /48), that is a way around the
// limit: sending about MaxKeys fresh keys between two uses of a key has it
// forgotten, the client's own or a victim's under a password guessing
// attack, and its burst granted again. Bound how fast new keys can arrive
// as well: with a Limiter of rate G (or a KeyedLimiter on a coarser key) in
// front, at most G times the refill time keys arrive within one refill
// period, and a MaxKeys above that makes every eviction lossless. Or key by
// what clients cannot mint, such as an authenticated tenant.
//
// # HTTP
//
// Bulkhead.Middleware, Limiter.Middleware and KeyedLimiter.Middleware wrap
// an http.Handler and answer a refusal with contract.WriteProblem: an
// application/problem+json body and a Retry-After header in whole seconds,
// rounded up. RemoteIP is a key function for per-client limiting that, on
// purpose, ignores forgeable X-Forwarded-For headers. It keys an IPv4
// client by its address (IPv4-mapped IPv6 addresses included) and an IPv6
// client by its /64, the block one host can pick a new address in for
// every request; distinct clients sharing a /64 share a bucket.
//
// # Configuration
//
// Every type is built from a config struct by a constructor
// (NewBulkhead, NewLimiter, NewKeyedLimiter). A zero field means its
// documented default; a bad value (zero MaxConcurrent, negative durations,
// a non-positive or NaN Rate, a MaxWait that could never apply) makes the
// constructor return a *contract.Error of KindInvalid, code
// "config.invalid", that names the field:
//
//	limit: invalid (config.invalid): BulkheadConfig.MaxConcurrent: must be >= 1, got 0
//
// # Time, logging and concurrency
//
// Time comes from a Clock (default: the real clock); package limittest has a
// manual one, so tests of wait timeouts and refills never sleep. A token
// bucket's time never goes back: a call whose clock reading another call
// overtook on its way to the bucket acts at the bucket's time, so the
// refill between the two is never granted twice (x/time/rate, given the
// older time, would). With a
// Logger configured, each refusal is logged at Info and each wait at Debug
// as a logctx.Decision ("bulkhead.rejected", "ratelimit.waited", …) carrying
// the coordinates of the request's context; with none, nothing is logged and
// nothing is paid. Nothing secret is logged: keys are never written.
//
// Refusals go on for as long as the overload does, one per call: they are
// paced per Bulkhead, Limiter or KeyedLimiter (whose keys share one pace).
// At most the first 5 in 10 seconds are written at Info, the others at
// Debug, and the next Info line carries logctx.KeySuppressed, how many were
// written at Debug since. Once no call has been refused for 10 seconds, the
// next call admitted logs "bulkhead.rejections_ended" or
// "ratelimit.rejections_ended" at Info, once, with what was suppressed
// since the last line. At 10,000 refusals a second that is at most half a
// line a second instead of 10,000; occasional refusals are logged one by
// one as before. The check costs an admitted call one atomic load.
//
// All types are safe for concurrent use. No goroutine is started: waiting
// happens in the caller's goroutine.
package limit
