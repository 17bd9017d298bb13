// Package redisstore is an [idempotency.Store] on Redis, for services that
// run on more than one instance and already operate Redis.
//
// It is its own Go module (github.com/sadpath/sadpath/idempotency/redisstore)
// so that the core sadpath module never pulls a Redis client into a
// build that does not use one.
//
// # Wiring
//
//	rdb := redis.NewUniversalClient(&redis.UniversalOptions{
//		Addrs:                 []string{"127.0.0.1:6379"},
//		ContextTimeoutEnabled: true, // a context's deadline also bounds socket reads
//	})
//	store, err := redisstore.New(redisstore.Config{Client: rdb, Prefix: "payments:idem:"})
//	if err != nil { ... }
//	exec, err := idempotency.New(idempotency.Config{Store: store}) // then idempotency.Do(ctx, exec, …)
//
// Config.Client is any [redis.UniversalClient]: a single node, a Sentinel
// failover client or a Cluster client. A zero Config field takes its
// documented default; a bad value makes New return a [contract.Error] of
// KindInvalid (code "config.invalid") naming the field.
//
// Set ContextTimeoutEnabled. The Store returns as soon as a call's context
// is canceled or past its deadline either way, abandoning the command in
// flight (see Errors); but without the option go-redis bounds a socket read
// by ReadTimeout alone (5 s by default, forever with -1), so an abandoned
// command holds its connection until Redis answers or ReadTimeout passes.
// With it, the read also ends at the context's deadline (not at a bare
// cancel, and not with ReadTimeout -2, which sets no read deadline at all).
//
// # Model
//
// A record is one Redis hash under the key
//
//	<Prefix>{<base64url SHA-256 of scope and key>}
//
// The scope and key are hashed together with a length prefix, so any bytes
// (NUL, braces, newlines, 1 MiB of them) are safe, a scope can never be
// confused with another scope's key, every key has the same short size, and
// no raw idempotency key is ever written to Redis or to a log. The braces
// are a Redis Cluster hash tag: every key of one record maps to one slot
// (today a record is one key; the tag keeps that true if a record ever grows
// a companion key).
//
// The hash holds a format version (v), the state (s: 1 in progress, 2
// completed, 3 released), the fencing token (t), the lease deadline (d),
// the fingerprint (f), the retention (k), the result (r) and the nonce of the
// last call that changed the record (n: see Errors). The result is a
// compact binary encoding that starts with a version byte (status code,
// headers sorted by name, body) so the format can evolve without a flag day.
//
// # Round trips
//
// Every operation is one Lua script run with EVALSHA: one round trip.
//
//   - Claim reads the record and either claims it (with a new, larger
//     fencing token: see Fencing tokens) or returns the existing state —
//     with the stored result when completed. A fresh key therefore costs two
//     round trips (Claim, Complete) and a replay one (Claim).
//   - Complete, Release and Renew are compare-and-set on the fencing token:
//     they change the record only when the token is the current owner's,
//     the record is in progress and the lease has not expired; otherwise they
//     return [idempotency.ErrLeaseLost] and change nothing. A completed
//     record is final.
//   - Get returns the record and the remaining lease.
//
// The first call of a process may find the script missing from the server's
// cache (NOSCRIPT) and send it once with EVAL.
//
// # Time
//
// Leases are decided by the Redis server's clock (the TIME command inside
// each script), never by the caller's: two service instances with skewed
// clocks agree on who holds a lease. Leases have millisecond resolution and
// are rounded up. A Lease or Retention longer than 100 years is taken as
// 100 years, so no conversion overflows (a duration near math.MaxInt64
// would otherwise wrap negative and expire the record at once).
//
// # Fencing tokens
//
// A winning claim's token is the larger of the record's token + 1 and the
// Redis server's clock in microseconds since the epoch (TIME). Tokens
// therefore increase strictly per key while the record lives, and keep
// increasing after it is gone — expired, evicted or lost in a failover —
// because the clock has moved on: the key's next owner gets a larger token
// than the stale owner whose record vanished, and the stale owner's
// Complete, Release and Renew fail with [idempotency.ErrLeaseLost]. Tokens
// are large numbers (about 1.8e15 today), not counters from 1; only their
// order means anything. A record written by an earlier version, with a
// token counted from 1, moves to the clock at its next claim.
//
// The remaining risk is the server clock going backwards. While a record
// lives its token + 1 wins over the clock, so a step back never lowers it.
// A record that is gone leaves only the clock: a step back larger than the
// time since the record's last claim (for an expired record at least its
// TTL, so at least max(Retention, 2×Lease)), or a failover to a server
// whose clock is that far behind, can give the next owner a token no larger
// than the stale owner's. Keep Redis servers on NTP, which slews small
// corrections rather than stepping the clock.
//
// # Retention
//
// Retention is the key's TTL (read it with PTTL). A claim sets the TTL to
// max(Retention, 2×Lease), so a record always outlives its lease and no new
// claimer can take a key while its owner still works; Complete sets it to
// the claim's Retention, counted from completion. Redis removes
// expired records itself: there is nothing to clean up. Size Redis memory
// for (requests per second × retention × record size), and use a maxmemory
// policy that does not evict these keys (noeviction or volatile-* with
// care): an evicted record is a forgotten key, and the next duplicate would
// run again.
//
// # Failover: what can be lost, and why fencing bounds it
//
// Redis replication is asynchronous. When a primary fails and a replica is
// promoted (Sentinel or Cluster), the writes of the last moments before the
// failure may not have reached the replica. For this store that means:
//
//   - a claim may be lost: the key looks new again and a second caller can
//     claim it while the first still runs its effect;
//   - a completion may be lost: the key looks in progress (or new) and a
//     duplicate may run the effect again.
//
// The fencing token bounds the damage: only one owner at a time can
// complete, and an owner whose lease was lost (or that a failover forgot)
// gets [idempotency.ErrLeaseLost] from Complete instead of silently
// overwriting the newer owner's result. A side effect that must never happen
// twice, even across a failover, needs the downstream system to check the
// token as well (pass it along as a fencing token or a version), or a store
// whose writes are durable before they are acknowledged, such as the
// PostgreSQL store with its transactional mode. WAIT or WAITAOF after a write
// narrow the window but do not close it.
//
// # Errors
//
// Failures of Redis are [contract.Error] values: refused or reset
// connections, EOF, a closed client, an exhausted pool, and the server's
// transient refusals (LOADING, READONLY after a failover, MASTERDOWN,
// CLUSTERDOWN, TRYAGAIN, BUSY, OOM, MISCONF after a failed save) are
// KindUnavailable; a deadline or a
// network timeout is KindTimeout; both are retryable. A canceled context is
// KindCanceled and still matches context.Canceled. A corrupt record or a
// script error is KindInternal and not retryable.
//
// A reply lost on the way back is recognised when the client re-sends the
// command itself: go-redis does so on an EOF, a reset connection or a read
// timeout (up to MaxRetries times, 3 by default) although the server may
// already have run the script. Every Claim, Complete and Release sends a
// random nonce, fresh for each call, that the script stores with the change
// it makes; a re-sent run that finds its own nonce answers as the first run
// did (Claimed with the same token, or success) and changes nothing more. A
// re-sent Renew simply extends the lease again.
//
// A timeout or a canceled context does not say whether the command ran. The
// Store returns as soon as the context is done, even while go-redis still
// waits for the reply, and the abandoned command may still take effect on
// the server. A new call is a new request with a new nonce, so the
// caller's own retry after such an error is not recognised: a claim whose
// reply was lost holds the key until its lease expires (then it is
// claimable again), and a Complete retried after its first attempt was
// applied reports ErrLeaseLost — Get then shows the record completed with
// the caller's own token.
//
// # Concurrency
//
// A Store is safe for concurrent use by many goroutines, and any number of
// Stores in any number of processes with the same Prefix share records:
// exactly one of many concurrent claimers wins, because each script runs
// atomically on the server.
//
// Stores with the same Prefix on the same server address and database (one
// per handler, on one client or on several) are also one store to the
// check of nested calls: a call nested in an operation holding its key
// through another of them fails at once with idempotency.ErrNestedCall
// instead of waiting for itself (see Store.StoreIdentity, and
// idempotency.StoreIdentifier).
//
// # Logging
//
// With Config.Logger set, store failures are logged at Warn and refused
// stale owners at Info (with [logctx.Decision]), with the dependency, the
// store operation and the record's key hash — never the raw key or a result:
// key_hash, the record's id (its Redis key is Prefix + "{" + key_hash + "}"),
// and idempotency.KeyHash, the 12 hex digits the executor logs for the same
// key, so that one value finds the executor's lines and the store's.
//
// A server that is down fails every call: those lines are paced per Store
// (failures, refused stale owners each): at most the first 5 in 10
// seconds are written at their level, the others at Debug, and the next
// line carries logctx.KeySuppressed, how many were written at Debug since.
// Once one that was paced has not occurred for 10 seconds, the next call
// Redis answers
// logs its end at Info, once ("idempotency store calls succeed again",
// "stale owners no longer refused"). At 10,000 failing calls a second
// that is at most half a line a second per decision, not 10,000.
package redisstore
