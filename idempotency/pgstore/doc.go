// Package pgstore is an [idempotency.Store] on PostgreSQL, with a
// transactional mode, [DoTx], that commits the caller's own writes and the
// completed idempotency record in one transaction: exactly-once effects, not
// just at-least-once with deduplication.
//
// It is its own Go module (github.com/sadpath/sadpath/idempotency/pgstore)
// so that the core sadpath module never pulls a database driver into a
// build that does not use one.
//
// # Wiring
//
//	pool, err := pgxpool.New(ctx, "postgres://app@db:5432/app")
//	store, err := pgstore.New(pgstore.Config{Pool: pool})
//	err = store.Migrate(ctx) // or apply the schema below with your migration tool
//
// A zero Config field takes its documented default; a bad value makes New
// return a [contract.Error] of KindInvalid (code "config.invalid") naming
// the field.
//
// # Schema
//
// Migrate creates this (schema "public" and table "sadpath_idempotency" by
// default; Config.Schema and Config.Table change them). Teams that run their
// own migrations apply it themselves:
//
//	CREATE TABLE IF NOT EXISTS sadpath_idempotency (
//	    id           bytea       PRIMARY KEY,  -- SHA-256 of the length-prefixed scope and key
//	    fingerprint  bytea       NOT NULL,     -- opaque payload digest
//	    state        smallint    NOT NULL,     -- 1 in progress, 2 completed, 3 released
//	    token        bigint      NOT NULL,     -- fencing token: max(token + 1, server clock in microseconds)
//	    lease_until  timestamptz,              -- in progress only
//	    retention_us bigint      NOT NULL,     -- retention asked by the claim, in microseconds
//	    expires_at   timestamptz NOT NULL,     -- the row may be deleted after this
//	    result       bytea                     -- completed only: versioned binary encoding
//	);
//	CREATE INDEX IF NOT EXISTS sadpath_idempotency_expires_at_idx ON sadpath_idempotency (expires_at);
//
// The primary key is a hash of the scope and key, so keys of any size and any
// bytes (NUL, invalid UTF-8) fit a B-tree row, a scope can never be confused
// with another's key, and no raw idempotency key is stored. The result column
// holds a compact encoding that starts with a version byte (status code,
// headers sorted by name, body), so the format can evolve.
//
// # Statements
//
// Every operation is one statement, and one round trip once pgx has prepared
// it on the connection:
//
//   - Claim: a single statement that inserts a fresh key (INSERT … ON
//     CONFLICT (id) DO NOTHING RETURNING), or takes over a claimable row
//     (released, lease expired, or past retention: a conditional UPDATE …
//     RETURNING with a new, larger token: see Fencing tokens), or else
//     returns the existing row — with the stored result when completed.
//     Duplicates and replays lock nothing. Only when the statement's
//     snapshot predates a concurrent claimer's commit does Claim run it
//     again.
//   - Complete, Release and Renew: UPDATE … WHERE id = $1 AND token = $2 AND
//     state = 1 AND lease_until > statement_timestamp(); no row updated means
//     [idempotency.ErrLeaseLost] and nothing changed.
//   - Get: one SELECT.
//   - Only after a DoTx COMMIT failed: SELECT state, token … FOR SHARE, which
//     waits for DoTx's transaction to end on the server and reads whether
//     it committed (see Transactional mode).
//
// A fresh key therefore costs two round trips (Claim, Complete), a replay one.
// Leases are computed by the server (statement_timestamp()), never by the
// caller's clock, so instances with skewed clocks agree on who owns a lease.
// A Lease or Retention longer than 100 years is taken as 100 years, so no
// conversion overflows (a duration near math.MaxInt64 would otherwise wrap
// negative and expire the record at once).
//
// Each statement runs in a transaction of its own, so any default
// isolation level works. Under REPEATABLE READ or SERIALIZABLE (set as the
// database's, role's or connection's default_transaction_isolation) a
// statement that meets a row committed after its snapshot fails with a
// serialization failure (40001) where READ COMMITTED would read the latest
// version; the Store then runs it again, on a fresh snapshot, a bounded
// number of times: the loser of concurrent claims still answers InProgress.
//
// # Fencing tokens
//
// A winning claim's token is the larger of the row's token + 1 and the
// server clock in microseconds since the epoch (statement_timestamp()), for
// a fresh row the clock. Tokens therefore increase strictly per key while
// the row lives, and keep increasing after [Store.DeleteExpired] removed it
// (or anyone deleted it), because the clock has moved on: the key's next
// owner gets a larger token than a stale owner whose row is gone, and the
// stale owner's Complete, Release and Renew fail with
// [idempotency.ErrLeaseLost]. Tokens are large numbers (about 1.8e15
// today), not counters from 1; only their order means anything. A row
// written by an earlier version, with a token counted from 1, moves to the
// clock at its next claim.
//
// The clock was chosen over a sequence: it needs no schema object beyond
// the table (teams applying the schema themselves change nothing), it
// follows a failover to a standby, whose sequences can lag the tokens the
// old primary issued, and it leaves every token issued by an earlier
// version far behind. The remaining risk is the server clock going
// backwards. While a row lives its token + 1 wins over the clock, so a step
// back never lowers it. A deleted row leaves only the clock: a step back
// larger than the time since the row's last claim (for a row removed by
// DeleteExpired at least max(Retention, 2×Lease)), or a failover to a
// server whose clock is that far behind, can give the next owner a token no
// larger than the stale owner's. Keep database servers on NTP, which slews
// small corrections rather than stepping the clock.
//
// # Retention and cleanup
//
// A claimed row is kept for max(Retention, 2×Lease) and a completed one for
// the claim's Retention from completion. A row past expires_at is invisible
// (Get answers not found, Claim treats the key as new, its token still
// growing) but stays on disk until [Store.DeleteExpired] removes it, at most
// a batch per call, skipping rows a claim holds locked:
//
//	DELETE FROM t WHERE id IN (
//	  SELECT id FROM t WHERE expires_at <= statement_timestamp() LIMIT $1 FOR UPDATE SKIP LOCKED)
//
// Schedule it (every minute on one instance is plenty) and call it again at
// once while it returns a full batch. Each call is a short transaction that
// never blocks traffic; autovacuum reclaims the space.
//
// # Transactional mode
//
// [DoTx] claims the key, runs the caller's function in a transaction, then
// stores the function's value as the completed record in that same
// transaction and commits. Business writes and the record commit together or
// not at all: a crash, panic, timeout or terminated connection before the
// commit leaves no business row (the key is released, or becomes claimable
// when its lease expires), and after the commit every retry replays the
// value. A stale owner, whose lease expired and whose key was claimed again,
// cannot commit: its conditional UPDATE matches no row and DoTx rolls back
// with [idempotency.ErrLeaseLost]. Under REPEATABLE READ or SERIALIZABLE,
// where that UPDATE fails with a serialization failure when the key was
// claimed again after the transaction's first statement, DoTx checks the
// record outside the transaction and returns ErrLeaseLost as well; a
// serialization failure on the caller's own tables stays retryable.
// When the connection is lost during COMMIT, DoTx settles the outcome from
// the record (a locking read that waits for the transaction to end on the
// server): fn's value when it committed, the failure when it did not, and a
// retryable KindTimeout error with code "pgstore.commit_unknown" when it
// cannot tell within 5 seconds (the server still holds the transaction
// open, as behind a network partition). A retry is safe in every case, since
// the record commits with fn's writes, but only for fn's writes through tx.
// An empty key.Key is refused, as by idempotency.Do, with an error matching
// idempotency.ErrKeyInvalid, before any statement runs.
//
// The transaction is begun with Config.TxOptions. [New] refuses options
// under which DoTx cannot keep its promise, naming the field: a read-only
// access mode (every DoTx would fail), unknown modes, a BeginQuery combined
// with the modes pgx then ignores, a BeginQuery that opens no transaction,
// asks for a read-only one or ends the one it began, and a CommitQuery that
// is not COMMIT or END.
//
// # Nesting
//
// DoTx's fn runs in a transaction that holds one connection of the pool,
// and the row locks of fn's writes, until DoTx returns. Do everything the
// operation writes through that tx: one transaction, one connection, and
// the writes commit with the record or not at all.
//
// A DoTx, an idempotency.Do over a Store, or any other use of the pool
// called inside fn (with another key: the same key and store — any Store
// on the same table through the same address and database, see
// Store.StoreIdentity — fail at once with idempotency.ErrNestedCall) runs on another connection, in a
// transaction of its own, and commits before the enclosing one, whatever
// becomes of it: when fn then fails, the nested writes and record stay,
// and a retry of the enclosing call replays the nested one. It also needs
// a connection while fn holds one:
//
//   - When the DoTx calls it is made from hold every connection of the
//     pool (MaxConns 1, or a nesting as deep as the pool is large), a
//     nested DoTx or Store.Claim (the claim of a Do or a consumer) fails at
//     once with ErrNestedPoolExhausted, without a statement: it could only
//     wait for a connection until its context ended. Through
//     idempotency.Do it is the store failure the executor reports
//     (ErrStoreUnavailable wrapping it, or fn run without a claim under
//     FailOpen).
//   - When other goroutines hold the rest — as many concurrent DoTx calls
//     nesting one as the pool has connections, or a transaction of the
//     caller's own on the pool (an ordering/pgstate apply's) — the nested
//     call waits for a connection until its context ends, which no check
//     can tell in advance. Size the pool above concurrency × (nesting
//     depth + 1), or do not nest.
//   - A nested call writing a row that fn's transaction has written waits
//     for that transaction's lock, and that transaction waits for it:
//     PostgreSQL sees no deadlock (the enclosing transaction waits in the
//     client), so it waits until its context ends (or lock_timeout).
//
// When a second effect must be idempotent on its own, run its DoTx before
// or after the first, not inside its fn.
//
// # Errors
//
// Failures of PostgreSQL are [contract.Error] values wrapping the pgx error:
// connection loss and server shutdown (class 08, 57P01 from
// pg_terminate_backend, 57P02, 57P03), lack of resources (class 53) and I/O
// errors are KindUnavailable; so is a write refused by a read-only server
// (25006, code "pgstore.read_only": a standby, or a primary demoted by a
// failover, still reached by the pool); serialization failures (40001) that
// outlast the Store's own retries, or that end DoTx's transaction, and
// deadlocks (40P01) are KindUnavailable too, since the transaction can
// simply run again; statement_timeout (57014), lock_timeout (55P03),
// transaction_timeout (25P04, PostgreSQL 17), a context deadline,
// network timeouts and a DoTx commit of unknown outcome
// ("pgstore.commit_unknown") are KindTimeout; all of them are retryable. A
// canceled context is KindCanceled and still matches context.Canceled,
// also when the pool has pgx cancel the statement on the server
// (pgconn.CancelRequestContextWatcherHandler), which then fails with 57014
// rather than with the context's error. Any other server error (a missing table) is KindInternal, not retryable.
//
// # Concurrency
//
// A Store is safe for concurrent use by many goroutines, and any number of
// Stores in any number of processes on the same table share records:
// exactly one of many concurrent claimers wins, by the primary key and row
// versions of PostgreSQL.
//
// # Logging
//
// With Config.Logger set, store failures are logged at Warn and refused
// stale owners and DoTx replays at Info (with [logctx.Decision]), with the
// dependency, the operation and the record's key hash — never the raw key
// or a result: key_hash, the row's id (base64url), and idempotency.KeyHash,
// the 12 hex digits the executor logs for the same key, so that one value
// finds the executor's lines and the store's.
//
// A server that is down fails every call: those lines are paced per Store
// (failures, refused stale owners, nested DoTx calls each): at most the
// first 5 in 10 seconds are written at their level, the others at Debug,
// and the next line carries logctx.KeySuppressed, how many were written at
// Debug since. Once one that was paced has not occurred for 10 seconds, the
// next call the database answers logs its end at Info, once ("idempotency store calls
// succeed again", "stale owners no longer refused", "nested calls no
// longer refused"). At 10,000 failing calls a second that is at most half
// a line a second per decision, not 10,000.
package pgstore
