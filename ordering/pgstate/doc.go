/*
Package pgstate keeps the ordering guard's state in PostgreSQL, in the same
transaction as the caller's effect.

# Model

One row per subject holds the last applied sequence. State.Advance opens a
transaction, locks the subject's row with SELECT … FOR UPDATE (creating it
at 0 the first time), calls the Guard's function — which runs the caller's
ApplyFunc — with a context carrying the transaction, updates the row and
commits. A row created for an event that records nothing (a gap decided on
a subject the table did not know) is deleted in the same transaction, and a
failure rolls it back with everything else, since a missing row reads as 0
anyway: a producer inventing subjects does not grow the table. The ApplyFunc writes its effect through pgstate.Tx(ctx), so the
effect and the new sequence commit together or not at all: a crash between
the two is impossible, and a redelivery after a failure finds both or
neither. That is exactly-once effects, not at-least-once with deduplication.

	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return err
	}
	st, err := pgstate.New(pgstate.Config{DB: pool, Table: "ledger_ordering"})
	if err != nil {
		return err // KindInvalid naming the field
	}
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	guard, _ := ordering.New(ordering.Config{State: st})
	apply := func(ctx context.Context, e *contract.Event) error {
		tx, ok := pgstate.Tx(ctx) // false outside the Guard's call
		if !ok {
			return errors.New("apply called outside pgstate.Advance")
		}
		_, err := tx.Exec(ctx, `UPDATE accounts SET balance = balance + $1 WHERE id = $2`, amount(e), e.Subject)
		return err
	}

# Concurrency

The row lock serialises the events of one subject across goroutines and
processes sharing the table; different subjects proceed in parallel. Keep
the ApplyFunc short: the lock is held while it runs. Use a pool
(*pgxpool.Pool) as Config.DB for concurrent use.

The ApplyFunc must not call Process for its own subject: the row is locked
by its own transaction, and the call waits for that lock until its context
ends. Process for another subject from an ApplyFunc runs in a transaction
of its own, on another connection of the pool (with none left, it waits for
one until its context ends: size the pool for one more per nesting level),
and commits before the outer transaction, whatever becomes of that one. See
the ordering package documentation, "Calling the Guard from an ApplyFunc".

# Redeliveries shared between processes

Held gaps are not shared: each process's Guard keeps its own hold buffer
and times it out on its own. What is shared is the failures: State is an
ordering.RedeliveryState, and a Guard under ordering.GapHold with
ordering.TimeoutSkip records in a second table, beside the first (named
after Config.Table with "_retry" appended: one row per subject and failed
sequence, with when its redelivery is due), every failure it sees, and
looks there, with the subject's row locked, before it records a timeout
skip: a sequence that failed in any process less than HoldTimeout before
restarts the wait rather than being skipped. When the missing event of a
gap fails in one process while another holds events behind it, the
other's timeout therefore waits for the redelivery, as it would for a
failure of its own, and the redelivery is applied rather than dropped as
stale. The limits (failures recorded after the fact, records lapsing after
HoldTimeout, clocks, every Guard under TimeoutSkip) are listed in the
ordering package documentation, "Gaps".

Under that policy the Guard calls AdvanceRedelivery instead of Advance:
the same four round trips per event, the row lock being sent with a
SAVEPOINT (one simple-protocol query) and the update deleting the
subject's redeliveries it makes obsolete. When the ApplyFunc fails, the
transaction rolls back to the savepoint — its writes are undone, the row
stays locked — records the redelivery, touches the row and commits, so a
process waiting for the row (a timeout skip) finds the record when it
gets the row; under REPEATABLE READ or SERIALIZABLE, where its snapshot
would predate the record, the touched row makes it fail to serialize
(retried on the next sweep) instead. The savepoint makes the ApplyFunc's
writes those of a subtransaction, and a failure costs three round trips
instead of one; the other policies keep Advance and pay neither.
Guard.Retrying and Guard.Failed write to the second table only (they
never wait for a subject's row). A subject whose first event failed keeps
its row, at 0, and a redelivery row stays until its subject's sequence
passes it: one left for a subject never applied again stays with it.

# Errors

Failures of the database are *contract.Error values wrapping the driver's
error. KindUnavailable (retryable) covers the conditions that pass by
themselves: a connection that cannot be opened, whatever the server
answers (too many connections, starting up: nothing ran), a pool closed
under a running consumer (puddle.ErrClosedPool: nothing ran), a connection
lost on the way or ended by a server shutting down, a server short of
resources (SQLSTATE class 53) or read-only (25006, a primary demoted by a
failover), serialization failures, deadlocks and lock timeouts on the
subject's row. A statement_timeout or a transaction_timeout (PostgreSQL
17, the transaction rolled back) is KindTimeout, as is the context's
deadline; a canceled context is KindCanceled matching context.Canceled,
also when the pool has pgx cancel the statement on the server
(pgconn.CancelRequestContextWatcherHandler), which then fails with 57014
rather than with the context's error; a subject too long for the
table's index (54000, over about 2.7 kB) is the event's fault, KindInvalid
matching ordering.ErrInvalidEvent (a consumer dead-letters it at once);
anything else is KindInternal (a missing table: call Migrate). The SQLSTATE list is that of
idempotency/pgstore. Errors of the ApplyFunc are returned unchanged, after
the rollback.

Sequences are bigints: Advance refuses one above math.MaxInt64 with a
KindInvalid error (code "ordering.sequence_range"). State is an
ordering.BoundedState, so a Guard refuses such an event up front with an
error matching ordering.ErrInvalidEvent, before applying or holding it. A
row holding a negative sequence (written outside pgstate, in a table
without Migrate's CHECK) is refused by Last, Advance and AdvanceRedelivery
as KindInternal, rather than read as a sequence near 2^64 that would drop
every later event of its subject as stale.

A gap event held by the Guard stays held when its transaction fails to
commit: that transaction stores no sequence, so Process answers Held with a
nil error and the SettleFunc alone decides the delivery.

# Defaults

Config.Table defaults to "sadpath_ordering" (and its table of redeliveries
to "sadpath_ordering_retry"); Config.DB is required. New rejects a bad
value with a KindInvalid error (code "config.invalid") naming the field in
its Detail and Fields (contract.ConfigError), among them a table name
longer than 57 bytes, which would leave no room for "_retry". Migrate
creates both tables: run it after upgrading from a version without the
second. Until then, under GapHold with TimeoutSkip, every event fails with
KindInternal when its row is locked, before its ApplyFunc runs (a consumer
retries it, then dead-letters it after MaxAttempts, as with a missing
first table); the other policies do not use the second table. The State
passes ordering/statetest.
*/
package pgstate
