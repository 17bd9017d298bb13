/*
Package ordering applies each entity's events once and in order, whatever
order and however many times a broker delivers them.

# Why

Brokers deliver at least once and, across partitions, consumers and
redeliveries, in no guaranteed order. A payment "refunded" event processed
before its "captured" event, or a "captured" event processed twice, corrupts
a projection silently. The usual answer — "our queue is ordered and never
duplicates" — holds until the first redelivery. This package makes the rule
explicit: every event of a subject carries a sequence number (the
contract.Event Sequence extension, starting at 1 and increasing by 1), and a
Guard applies sequence l+1 after l, nothing else.

# Decisions

For an event with sequence s on a subject whose last applied sequence is l,
Guard.Process decides:

  - Apply (s == l+1): the event is the next one; the caller's ApplyFunc runs
    and, when it succeeds, l becomes s.
  - Duplicate (s == l): already applied; dropped, logged with its reason.
  - Stale (s < l): older than the last applied; dropped, logged.
  - Gap (s > l+1): events are missing; the GapPolicy decides.

Every decision other than apply is logged through logctx.Decision with the
attributes decision, reason, subject, sequence and last_sequence, so "why was
this event dropped?" is answered by the log line. A held event is released or
rejected on the call of another event, or of Sweep: its line carries its own
correlation id (see logctx.ExtractEvent), none when it has no valid one, and
never the one of the caller's context.

A gap that stays open (the missing event's producer is down), a producer
replaying old events or a State that is down repeats one decision on every
event: at 10,000 events a second that was 10,000 lines a second. Those
decisions (gap: event held, gap: event rejected, gap: held event rejected,
stale event dropped, gap: event refused, state error ignored, gap skip
failed, gap: held event refused, redelivery not recorded) are paced per Guard and decision: at most
the first 5 in 10 seconds are written at their level, the others at Debug,
and the next line at the level carries logctx.KeySuppressed, how many were
written at Debug since; occasional ones are logged one by one as before.
Once a decision that was paced has not occurred for 10 seconds, the next
event applied logs its end at Info, once ("gap rejections ended", "stale events ended",
…). Duplicates dropped, held events released and gaps skipped (once per
gap) are not paced.

# Gaps

GapReject (the default) returns ErrGap at once: a retryable conflict with a
retry-after hint, which the consumer turns into a broker redelivery with a
delay. Nothing is kept in memory, and the hold settings (Config.MaxHeld,
HoldTimeout, OnTimeout) have no effect: they are accepted, so that one
Config can switch policy by its Gap field alone, but they do not turn
holding on.

GapHold keeps the event in a bounded buffer (Config.MaxHeld deliveries over
all subjects) and applies it right after the missing events arrive. Held
events are reported later through the SettleFunc given to Process, so a
broker adapter acknowledges the message only once it is applied. When the
oldest held event of a subject has waited Config.HoldTimeout (timed with the
injected Clock), Config.OnTimeout decides: TimeoutSkip logs a "gap skipped"
decision and applies the held events, the missing sequences becoming stale;
TimeoutReject settles the held events with ErrGap for redelivery. The timeout
is checked whenever the subject is processed and by Guard.Sweep, which
adapters call periodically; when the event being processed is itself one of
the missing ones, it has arrived: TimeoutSkip skips only the sequences before
it, and it is applied; TimeoutReject rejects nothing on that call, so the
held events are applied behind it when it fills the gap. A full buffer
rejects the event with ErrGap.

Config.MaxGap bounds how far ahead an event may be: one beyond it (an
absurd sequence, a producer bug sending 2^63) is refused at once with
ErrInvalidEvent, a permanent error package consumer dead-letters, rather
than held; otherwise TimeoutSkip would skip the subject to it and drop
every real event after it as stale. It is unlimited by default, because
the last applied sequence of a subject the State does not know, or forgot
(a Memory state after a restart or IdleTTL), is 0: set it with a State that
never forgets (ordering/pgstate).

The wait starts when the gap opens, and starts again whenever it reopens:
when the missing event does arrive but fails (its ApplyFunc or the State
returns an error), directly or released from the hold, the caller will
redeliver it, so the events held behind it wait a full HoldTimeout from that
failure. A timeout therefore skips only sequences that went unseen, or kept
failing without a redelivery, for HoldTimeout; never an event that has just
failed and is about to be retried. When an event fails before it is decided
at all — the State fails first (it cannot begin a transaction, a lock on
the subject times out), or the caller's own checks do and it reports the
event with Guard.Failed (package consumer does when its deduplication store
fails or says the event is in progress elsewhere) — the event counts as
missing when its sequence lies between the last applied one (read again)
and the lowest held one — or, when the last applied one cannot be read
either, below the lowest held one. The failure of a duplicate or stale
delivery does not postpone the timeout. A caller that knows when it will
redeliver the failed event tells the Guard with Guard.Retrying (package
consumer does for every retry but a gap's): the wait then restarts at the
redelivery, so a retry delay longer than HoldTimeout (a long backoff, the
lease a crashed instance left on the event) does not have the event
skipped before it comes back.

The wait and its restarts live in the Guard's memory, and each process's
Guard times out its own held events. With a State shared by several
processes, a Guard learns of the failures seen by the others through the
State when it is a RedeliveryState (ordering/pgstate is): under GapHold
with TimeoutSkip, every Guard records in it each failure it sees — the
sequence and when its redelivery is due: now, or now plus the delay given
to Retrying — and a timeout skip, decided under the subject's lock, first
looks there: when a sequence it would skip has a record whose time is
less than HoldTimeout (the skipping Guard's) ago, or still to come, the
wait restarts at that time instead, as for a failure seen in the same
process. So no process's
timeout skips an event that has just failed in another one and is about to
be redelivered. Its limits:

  - The failure of an ApplyFunc (direct or released from the hold) is
    recorded before the subject is unlocked (pgstate: in the transaction
    that ran it, its effects rolled back): no skip can come between. The
    other failures — the State's own (before deciding, or a failed commit
    after the apply), and those reported with Failed or Retrying — are
    recorded by a write of their own, after them: a skip committed before
    that write is not held back, as in one process a skip decided before
    Failed is called is not. Recording is best effort: when it fails too
    (the database lost along with the event), the failure is logged
    ("redelivery not recorded") and only the process that saw it knows of
    it.
  - A record lapses HoldTimeout after its time: a process that crashed
    before the redelivery holds the others' timeouts back by one
    HoldTimeout at most, never for good.
  - Only Guards under GapHold with TimeoutSkip record failures: run every
    consumer of the subjects with that policy (a Guard under GapReject or
    TimeoutReject, which skips nothing, records nothing either).
  - Times recorded by one process are compared with another's clock: a
    clock skew between processes shortens or lengthens the wait by as much.

A State shared without being a RedeliveryState gives each Guard's promise
alone: another process's redelivery of an event skipped meanwhile is
dropped as stale. With such a State, use TimeoutReject (held events are
redelivered, nothing is skipped), or have one Guard handle each subject
(one consumer per subject partition).

# State

The last applied sequence of each subject lives behind the State interface:
Last reads it, Advance runs a function while the subject is locked and
records the sequence it returns. Memory is the bounded in-memory State
(MemoryConfig.MaxSubjects and MaxBytes, optional IdleTTL eviction); the
github.com/sadpath/sadpath/ordering/pgstate module keeps it in PostgreSQL
and runs the ApplyFunc inside the transaction that updates the sequence, so
the effect and the sequence commit together, and it is a RedeliveryState
(see Gaps). The package github.com/sadpath/sadpath/ordering/statetest
checks any State against the contract.

# Calling the Guard from an ApplyFunc

An ApplyFunc runs while its subject is locked in the State (Memory's lock
on the subject; with ordering/pgstate, its row, in the transaction the
ApplyFunc runs in). As with a callback run under a sync.Mutex, the Guard
does not detect re-entry, which would cost every applied event an
allocation (a context marking the subject) on the in-order path that
allocates nothing:

  - Process and Sweep for the subject being applied, or a chain of
    ApplyFuncs that comes back to it (A's processes B, whose processes A),
    wait for the lock their own caller holds: for ever on a Memory state,
    until the context ends on pgstate. Hand such an event back to the
    broker instead (return a retryable error, or publish it).
  - State().Last, and Retrying and Failed, which only read it, never wait
    for Memory's lock; on pgstate they take a pool connection of their own
    (under TimeoutSkip, Retrying and Failed also record the redelivery
    there, in a table beside the subjects' that the ApplyFunc's
    transaction does not lock).
  - Process for another subject runs, nested: the ApplyFunc then holds
    both subjects' locks. Keep such nesting in one direction (an order of
    subjects): two ApplyFuncs processing each other's subject at the same
    time wait for each other. On pgstate the nested event runs in a
    transaction of its own, on another pool connection (size the pool for
    one more per nesting level), and commits before the outer one: it stays
    applied when the outer ApplyFunc then fails.

A SettleFunc runs outside the lock, but must not call Process or Sweep for
the subject it settles either (see SettleFunc).

# Last writer by sequence

Projections that only need the newest state of an entity (a status, a
balance snapshot) do not need strict order: they need older versions
dropped. Latest keeps the newest value per key and drops older or equal
versions; Newer is the same rule for projections kept elsewhere (in SQL,
"UPDATE … SET v = $1, version = $2 WHERE key = $3 AND version < $2").

# Zero values, defaults and concurrency

Configuration follows the library's style: a Config struct passed to New,
where a zero field means its documented default and a bad value is an error
of KindInvalid (code "config.invalid") naming the field in its Detail and
Fields (contract.ConfigError). The zero Config is valid: in-memory state,
gaps rejected, no logging. A Guard is safe for concurrent use: events of
different subjects run in parallel, those of one subject one at a time.
For in-order events on the Memory state a decision
costs well under 300 ns and allocates nothing (see BenchmarkGuardInOrder).

For the consumer wiring — strict decoding, deduplication by (source, id),
the Guard, logging coordinates and ack / retry / dead-letter decisions — see
package github.com/sadpath/sadpath/consumer.
*/
package ordering
