/*
Package jetstream connects a NATS JetStream pull consumer to a
consumer.Consumer: deduplicated, ordered event handling on a broker that
delivers at least once and redelivers on its own schedule.

# Publishing

Publish encodes a contract.Event in the CloudEvents JSON format and sets the
Nats-Msg-Id header to the event's (source, id), so JetStream itself drops a
republication of the same event within the stream's duplicate window
(StreamConfig.Duplicates, two minutes by default): the PubAck says
Duplicate. Outside that window, or when a producer publishes without the
header, the consumer's own deduplication by (source, id) catches it.

Publish's errors are retryable (KindUnavailable, or KindTimeout) except
for a canceled context (KindCanceled), a nil or invalid event or a subject
NATS refuses (KindInvalid) and an event larger than the server's
max_payload or the stream's MaxMsgSize (KindTooLarge): those never succeed.

# Consuming

Adapter.Run pulls batches (Config.Batch, Config.MaxWait) and hands each
message to Consumer.Handle with its delivery count, then acts on the
decision:

  - Ack: the message is acknowledged.
  - Retry: NAK with the decision's delay: JetStream redelivers after it.
  - DeadLetter: Term: JetStream never redelivers it. The consumer's
    DeadLetter callback has already received it.
  - Hold: nothing yet; the message stays pending and is acknowledged (or
    NAKed) when the ordering Guard settles it. If its ack wait expires
    first, JetStream redelivers it and the new delivery joins the held one.

When Run's context is done, the message being handled finishes and the
rest of the batch is NAKed without delay, unhandled, when the pull ends
(not before: it would be redelivered into the same pull, each time a
delivery counted): JetStream redelivers it at once to another Adapter (or
this one restarted), not after its ack wait. Between pulls Run calls
Consumer.Sweep so held gaps time out (not once its context is done: no
held event is applied on the way out). A failed acknowledgement is logged
("acknowledgement failed", with the message's stream_sequence and
delivery, and the event's subject, sequence and correlation id when it was
decoded) and left to the ack wait: the redelivery is dropped by
deduplication.

A failed pull is logged ("pull failed") and retried after MaxWait: a
connection that is reconnecting recovers on its own. Run returns an error
when nothing more can be consumed: the pull consumer was deleted
(KindNotFound), or the NATS connection is closed for good — nc.Close, its
reconnect limit reached — or draining (KindUnavailable, matching
nats.ErrConnectionClosed or nats.ErrConnectionDraining): restart it on a new
connection, or exit.

Both failure lines carry dependency "nats". A server down or unreachable
fails every pull and every acknowledgement, so they are paced per Adapter:
at most the first 5 of each in 10 seconds are written at Warn, the others
at Debug, and the next Warn line carries logctx.KeySuppressed, how many
were written at Debug since. Once one that was paced has not failed for 10
seconds, the next pull or acknowledgement that succeeds logs its end at Info, once
("pulls succeed again", "acknowledgements succeed again").

# Held messages and MaxAckPending

Held messages stay unacknowledged until the Guard settles them, and gap
messages NAKed for a later redelivery (GapReject, a full hold buffer, a
timed-out hold under TimeoutReject) stay pending too — a NAK only
schedules the redelivery — until acknowledged or terminated: all count
against the pull consumer's MaxAckPending (JetStream's default is
1000, below the Guard's default MaxHeld of 1024). Once that many are
pending, JetStream delivers nothing new — the missing event included — so
the hold times out without it: TimeoutSkip then skips an event that sits
in the stream. New therefore refuses a Consumer whose Guard holds gaps
over a pull consumer whose MaxAckPending is not larger than the Guard's
MaxHeld plus Config.Batch (-1, unlimited, is accepted):

	pull, _ := j.CreateOrUpdateConsumer(ctx, "LEDGER", js.ConsumerConfig{
		Durable: "projection", AckPolicy: js.AckExplicitPolicy,
		MaxAckPending: 4096, // > MaxHeld (1024) + Batch (100)
	})

That bound leaves room for a batch beyond a full hold buffer. When a
subject can have more gap messages pending ahead of its missing event than
MaxAckPending − MaxHeld, those NAKed beyond the hold can still fill the
rest until they are dead-lettered at MaxAttempts: size MaxAckPending (or
MaxHeld) for the longest backlog a gap can have, or use -1.

# Server requirements

The consumer must use explicit acknowledgements (AckNone would acknowledge
a message on delivery and AckAll with any later one: a retried or held
message would be lost), and its MaxRequestBatch and MaxRequestExpires,
when set, must admit Config.Batch and Config.MaxWait: the server refuses
a larger pull, every time. Its MaxDeliver must be -1 (unlimited, the
default) or larger than the Consumer's MaxAttempts: JetStream drops a
message NAKed at MaxDeliver without a trace (no Term, no dead letter),
while the Consumer dead-letters at MaxAttempts and retries past it only
when the failure is not the event's (in progress elsewhere, a shutdown).
New refuses each of these pairings. Everything used here —
pull consumers, NAK with delay, Term, Nats-Msg-Id deduplication — is
supported by nats-server 2.9 and later.

# Concurrency

Run handles messages one at a time, in delivery order, on the calling
goroutine; run several Adapters (on one or several pull consumers) for
parallelism: the Guard and the store are shared safely. Adapters sharing
one pull consumer each have a batch in flight: give its MaxAckPending room
for the Guard's MaxHeld plus a Batch per Adapter.
*/
package jetstream
