// Package idempotency makes sure that if the same thing happens more than
// once — a client retries a POST after a timeout, a broker redelivers an
// event, an integration "timed out" but processed anyway — the work is not
// done the wrong way twice.
//
// It has four parts that share one protocol and one Store:
//
//   - Do, a generic executor: run a function at most once per key and
//     replay its stored result to duplicates;
//   - Middleware, net/http middleware implementing the IETF draft "The
//     Idempotency-Key HTTP Header Field";
//   - Dedup, consumer-side deduplication of events by (source, id);
//   - MemoryStore, a bounded in-process Store, and the Store interface that
//     the Redis and PostgreSQL stores (own modules) implement, checked by the
//     conformance suite in idempotency/storetest.
//
// # The protocol: claim, lease, fencing
//
// Every operation is identified by a Key: the caller's Scope (tenant,
// account, user: an identity that outlives the API keys it authenticates
// with, so a retry sent after a key rotation still finds its record) and
// the caller's Key. The first caller claims the key with a
// fingerprint of its payload and a lease. Exactly one of many concurrent
// claimers wins and receives a fencing token; the others learn that the
// key is in progress (with the remaining lease), completed (with the stored
// result), or used with a different payload (mismatch).
//
// The winner runs the operation, then completes the key with the result —
// which the store accepts only while the winner still holds the lease with
// its token — or releases it after a retryable failure so a retry may run
// it again. While the operation runs, the executor renews the lease every
// Config.Heartbeat; if a renewal finds the lease lost, or renewals fail
// (the store is out of reach) until the lease has run out as the executor
// times it from its side — when another caller may claim the key — the
// operation's context is canceled with cause ErrLeaseLost.
//
// A lease is crash recovery: if the owner dies, its lease expires and the
// next claimer wins with a larger token. The late owner, should it wake up,
// cannot overwrite, release or renew anything (ErrLeaseLost), even after
// its record expired and the key was claimed afresh. Tokens increase
// strictly per key, across the loss of a record too, and are exported (Claim.Token, and Token(ctx)
// inside the operation), so a downstream write can carry the token and
// reject a stale holder — the fencing that a lease alone cannot give.
//
// Key.Key must not be empty: Do (and pgstore.DoTx) refuses it with an
// error matching ErrKeyInvalid (KindInvalid, not retryable) before touching
// the store, since every call made without a key would otherwise share one
// record. Key.Scope may be empty.
//
// Records, with their results, are kept for Config.Retention (default
// 24 h): that is the window in which duplicates are recognised. Lease
// (default 30 s) and retention are separate settings.
//
// # Duplicates in flight
//
// A duplicate that meets the key in progress either fails fast (FailFast,
// the default) with ErrInProgress, a retryable KindConflict error whose
// RetryAfter is the owner's remaining lease, or waits (Wait): it polls the
// store with exponential backoff, bounded by its context, and returns the
// first caller's result when it completes — or runs the operation itself
// if the first caller failed and released the key.
//
// A call made inside the running operation it would duplicate — with its
// context, the same key and the same store, e.g. a helper wrapped with the
// key of the handler calling it — is not a duplicate but a bug: it could
// only wait for itself. Do, the Middleware, Dedup and pgstore.DoTx fail it
// at once with ErrNestedCall (KindInternal, not retryable, code
// "idempotency.nested_call"), whatever the policy, without a store call —
// whichever of them holds the key (a DoTx inside a Do, a Do inside a
// DoTx's function, on the same pgstore.Store) — or a consumer.Consumer,
// whose Handler runs under its claim of the event's id. The same store is
// the same store value, or one with the same StoreIdentity (see
// StoreIdentifier): pgstore.Stores on the same table, and redisstore.Stores
// with the same prefix on the same server and database, are one store
// however many values were built. MemoryStore is only itself.
//
// # Failures
//
// An operation's error releases the key, unless Config.StoreError marks it
// permanent: then it is stored and replayed like a result (never an error
// returned after the caller's context ended: that releases). A panic releases
// the key (counted and logged as a run: executed, or lease_lost or
// store_error when the release fails) and continues. Completing or releasing happens even after the
// caller's context ended, bounded by the lease (a store that has not
// answered by then could no longer accept it); a renewal is bounded by
// the heartbeat. A store failure fails closed by default: the
// operation does not run and the caller gets ErrStoreUnavailable
// (KindUnavailable, retryable; HTTP 503 with Retry-After). Config.FailOpen
// runs the operation without protection instead; choose it only where
// running twice is cheaper than not running. It never makes a duplicate
// waiting under Wait run an operation it has seen in progress: a store
// failure while it polls fails closed. A claim the store refuses as
// too large (contract.ErrTooLarge) is no failure: the operation does not
// run, even under FailOpen, and the caller gets that permanent error
// (HTTP 413).
//
// # HTTP status codes
//
// Middleware applies to the configured methods (default POST and PATCH; an
// empty, non-nil MiddlewareConfig.Methods is refused) and answers:
//
//	400  Idempotency-Key missing (unless KeyOptional), malformed, repeated or too long
//	401  no caller scope for the request
//	413  request body over MaxBodyBytes, or key refused by the store as too large
//	422  key reused with a different method, path, query, body or fingerprinted header
//	     (path and query as the client sent them, whatever StripPrefix or a router rewrote)
//	409  first request with the key still in flight, with Retry-After and
//	     "retryable": true, which contract.ParseProblem reads back as retryable (FailFast)
//	503  the store failed (fail closed), with Retry-After
//	the stored status, replay headers and body bytes, plus Idempotent-Replayed: true,
//	     when the first request completed
//
// Problems are application/problem+json (RFC 9457) with a stable "code"
// (idempotency.key_missing, idempotency.key_invalid,
// idempotency.key_reused, idempotency.in_progress,
// idempotency.store_unavailable, …), written as contract.WriteProblem
// writes every problem: Cache-Control: no-store, X-Content-Type-Options:
// nosniff, Content-Length, no body on HEAD. Retry-After is in whole
// seconds, capped at contract.MaxRetryAfter, and never on a 503 for an
// overloaded error.
//
// Which responses are stored: by default (DefaultStoreStatus) 2xx, 3xx and
// 4xx responses are stored and replayed, because the request was processed
// and retrying it would not change the answer; 5xx, 408, 425, 429 and 499
// release the key so the client may retry, and so do panics and requests
// whose context ended before a success (2xx or 3xx) was written.
// MiddlewareConfig.StoreStatus changes the policy. A response larger than MaxResponseBytes, or one the
// store refuses as too large, reaches its client unchanged but is not
// kept: duplicates get a 409 problem idempotency.response_not_stored
// rather than a second execution. So do duplicates of a request whose
// handler took the connection over (hijacked it, or answered 101 Switching
// Protocols): it ran, but its answer was not an HTTP response the
// middleware could keep. Should the store refuse even that 409 as too
// large, the key is held in progress for the retention period instead:
// duplicates get 409 idempotency.in_progress, never a second execution.
//
// A replay carries the stored trailers too: those the handler declared or
// set with http.TrailerPrefix, when ReplayHeaders names them. The handler's
// response streams to its client as it is written (the writer is an
// http.Flusher exactly when the server's is) while a copy is kept. A
// request that meets a second Middleware with the same key (one applied
// router-wide and again on its route, or on a mounted sub-router) passes
// through the inner one: the outer one's claim protects it.
//
// Deadline middleware that answers for a handler still running
// (http.TimeoutHandler) belongs outside Middleware: between it and the
// handler, its 503 releases the key while the handler still runs, and a
// retry runs it a second time alongside.
//
// What a replay holds is the answer the handler gave, not what reached the
// first client: a client that timed out or went away before the body was
// written (a write failed: a broken connection, http.TimeoutHandler's
// ErrHandlerTimeout) retries to get that answer, whole. Only bytes net/http
// refuses to send to any client are left out: past a declared
// Content-Length, or a body on a status that allows none (204, 304).
//
// # Security property: scopes
//
// Keys are stored per caller scope, returned by MiddlewareConfig.Scope from
// the authenticated request. Two callers using the same Idempotency-Key
// value are two different keys: a caller can never receive another
// caller's stored response, never learn through 422 or 409 that another
// caller used a key, and never block another caller's request. Scope is
// required; a service with a single caller returns a constant. Stores treat
// Scope and Key as opaque bytes, so no choice of either can collide with
// another (storetest checks "a:b"+"c" against "a"+"b:c").
//
// # Observability
//
// Every decision is counted by the otel counter sadpath.idempotency.outcomes
// with attributes outcome (executed, replayed, conflict, mismatch,
// lease_lost, store_error) and component (do, http, event), from
// Config.MeterProvider (default: the global one), so dashboards tell
// replays from fresh work. With Config.Logger set, each decision is also
// logged through logctx.Decision with the request's coordinates. Logs never
// carry a raw key, only KeyHash (12 hex digits of SHA-256), and never a
// stored body.
//
// A store that is down or slow makes every call fail the same way (store
// failed: not running; ran but could not record the result; lease renewal
// failed…), and clients retrying against a slow operation meet it in
// progress (conflict): at 10,000 calls a second that was 10,000 lines a
// second at Error. The store_error, lease_lost and conflict decisions are
// paced per Executor and reason: at most the first 5 in 10 seconds are
// written at their level, the others at Debug, and the next line at the
// level carries logctx.KeySuppressed, how many were written at Debug since.
// Occasional ones are logged one by one as before, and the counter counts
// every one. Once a reason that was paced has not occurred for 10 seconds,
// the next call whose claim the store answers logs its end at Info, once ("store_error
// ended", the reason, what was suppressed since the last line). Replays,
// mismatches and panics are not paced.
//
// # Configuration, zero values, concurrency
//
// Every type is built from a config struct by a constructor (New,
// NewMiddleware, NewDedup, NewMemoryStore); zero fields mean the documented
// defaults and a bad field returns a contract.ErrInvalid error naming it.
// Time is read through Config.Clock, so tests use storetest.FakeClock
// instead of sleeping. Executors, middlewares, Dedup values and MemoryStore
// are safe for concurrent use; none starts a goroutine that outlives a call,
// except that the executor's shared heartbeat sweep timer (see
// Config.Heartbeat), armed by a call, may fire once up to Heartbeat/2 after
// the last call ended, and then finds nothing to do.
package idempotency
