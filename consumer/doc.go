/*
Package consumer wires an event handler for at-least-once brokers: strict
decoding, deduplication by (source, id), per-subject ordering, logging
coordinates, and a clear decision for every delivery — acknowledge, retry
later with backoff, hold, or dead-letter.

# Why

A broker redelivers: after a crash, an ack lost on the wire, an ack wait
that expired while the handler was slow. It reorders: across partitions,
retries and publishers. It carries bad messages that will never decode.
A consumer that retries a malformed message forever blocks its stream; one
that applies a redelivery twice pays twice; one that applies "refunded"
before "captured" corrupts its projection. Consumer.Handle makes each of
those cases an explicit, logged decision.

# What Handle does

For each Delivery, in order:

 1. Size check (Config.MaxEventBytes) and strict decoding with
    contract.DecodeEvent. Oversized, malformed or invalid events are
    dead-lettered at once: the DeadLetter callback receives them and the
    adapter terminates the message. They are never retried.
 2. Deduplication by (source, id) through the idempotency.Store
    (Config.Store): an id already processed is acknowledged without running
    the handler; one in progress elsewhere is retried after the other
    owner's lease; the same id with other content is dead-lettered, and
    so is an id the store refuses as too large (contract.ErrTooLarge: no
    redelivery could be claimed). A store that fails retries the event
    with the backoff of step 5, whatever the failure's class (see "Store
    and State failures" below). Every retry but a gap's, here or in the
    steps below, is reported to the Guard with its delay
    (ordering.Guard.Retrying): when the event is the missing one of a held
    gap, the hold's wait restarts at its redelivery, so the hold timeout
    does not skip it first, however long its backoff or the lease it
    waits for.
 3. Ordering with the ordering.Guard (Config.Guard): duplicates and stale
    events are acknowledged and dropped; a gap is retried later (ErrGap) or,
    when the delivery has a Settle function and the Guard holds gaps,
    held until the missing events arrive. A held event whose (subject,
    sequence) another, different event held first (a producer bug) is
    settled as a duplicate when that one is applied, and retried (code
    consumer.sequence_taken) when it fails. A full ordering State
    (ordering.Memory holding MaxSubjects subjects or MaxBytes of them, none idle for IdleTTL
    yet: KindOverloaded before the Handler ran) clears as subjects go
    idle: the event is retried with the backoff of step 5, reason
    "ordering state full", until MaxAttempts. The Guard's other State
    failures before the Handler ran (ordering/pgstate with its table
    missing, the database unreachable) are retried as a failing dedup store is (see "Store and State
    failures" below), under the reason "ordering state failed", never as
    a Handler failure; the error is the State's.
 4. The Handler runs with the event's correlation id and subject on the
    context (logctx), so every log line it writes carries them. An event
    without a valid correlation id keeps the id of Handle's context when it
    runs on its own Handle call, and carries none when the Guard releases
    it from the hold on another event's call or on Sweep: its lines never
    carry another event's id. A panic, or a nil *contract.Error returned as
    a non-nil error (the typed nil pitfall), becomes a permanent error. The
    Handler runs under the claim of step 2: an idempotency.Do (or
    pgstore.DoTx) it calls with the consumer's own key and store fails at
    once with idempotency.ErrNestedCall, rather than waiting for that claim
    (see Config.Store); so does a Handle call it makes with the delivery
    it is handling (the same source and id, on a Consumer of the same Name
    and Store), which is dead-lettered with an error matching
    ErrNestedCall without touching the claim, rather than retried as "in
    progress elsewhere" by a redelivery that would meet the same claim. Like an ordering ApplyFunc, it must not hand its
    Consumer (or the Guard) another event of its own subject: that waits
    for the subject lock the Handler's caller holds (see the ordering
    package documentation, "Calling the Guard from an ApplyFunc").
 5. Classification of the Handler's error with contract: retryable kinds
    (unavailable, timeout, rate limited) and a canceled context are retried
    after MinBackoff × 2^(attempt-1), lengthened to the error's
    retry-after hint and capped at MaxBackoff (the hint too: a dependency
    asking for a day waits MaxBackoff), until MaxAttempts; anything else is
    dead-lettered. While the context is done (a shutdown) a transient
    failure is retried whatever the attempt: it may be the cancellation's,
    and an event is never dead-lettered for it.

# Store and State failures

A failure of the dedup store or of the ordering State before the Handler
ran is not the event's: a table missing or not migrated, a permission
revoked, a database down or misconfigured fail every event alike, and a
redelivery after the operator's fix succeeds. Such an event is therefore
retried with the backoff of step 5 whatever the failure's class —
permanent (KindInternal, e.g. pgstate's or pgstore's "relation does not
exist") as well as transient — and dead-lettered only at MaxAttempts
(reason "…; gave up after N attempts"), as a transient Handler failure
is; never at its first attempt, which would drop every valid event of
the stream for an outage. Size MaxAttempts and MaxBackoff for the time
an operator needs to notice and fix the store. Only the refusals that
concern the event itself dead-letter at once: an id the store refuses as
too large (contract.ErrTooLarge) and a sequence or subject the State
cannot record (ordering.ErrInvalidEvent; a subject too long for
ordering/pgstate's index, or larger than ordering.Memory's MaxBytes, too). A failure once the Handler ran is the
Handler's, classified as in step 5.

# Exactly once

The Guard records the last applied sequence only when the Handler succeeds,
so the effect of each (subject, sequence) happens once per Guard state; the
idempotency Store extends "once" to unordered events and across processes.
With ordering/pgstate the Handler writes through the same transaction that
records the sequence, which makes the effect exactly once across crashes,
not just deduplicated.

# Adapters

A broker adapter turns Result.Action into its own calls: Ack, a
negative acknowledgement with Result.Delay, a terminate for DeadLetter, and
nothing for Hold until Delivery.Settle reports. It calls Consumer.Sweep
periodically so held gaps time out. The NATS JetStream adapter lives in its
own module, github.com/sadpath/sadpath/consumer/jetstream.

# Configuration and concurrency

Config follows the library's style: zero fields mean their documented
defaults, New rejects bad values with a KindInvalid error (code
"config.invalid") naming the field in its Detail and Fields
(contract.ConfigError). A Consumer holds no per-delivery state and is safe
for concurrent use. Logs never carry event data or ids: only the decision,
its reason, the event type, source, subject and sequence.

# Logs under sustained failure

A dedup store, ordering State or handler dependency that is down makes
every delivery retry, and after MaxAttempts every one dead-letter; a
producer sending bad events dead-letters every one. At 10,000 deliveries
a second that was 10,000 lines a second. These decisions (event retry
scheduled, event dead-lettered, dedup record not stored, dedup claim not
released) are paced per Consumer and reason — a dead letter after
MaxAttempts by the reason it was retried for: at most the first 5 in 10
seconds are written at their level, the others at Debug, and the next
line at the level carries logctx.KeySuppressed, how many were written at
Debug since. Occasional ones are logged one by one as before, and the
DeadLetter callback still receives every delivery given up. Once a
reason that was paced has not occurred for 10 seconds, the next delivery
acknowledged
logs its end at Info, once ("event retries ended", "event dead letters
ended", with the reason, and what was suppressed since the last line).
Duplicates dropped are not paced.
*/
package consumer
