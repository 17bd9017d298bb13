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
for a canceled context (KindCanceled), an invalid event (KindInvalid) and
an event larger than the server's max_payload or the stream's MaxMsgSize
(KindTooLarge): those two never succeed.

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

Between pulls Run calls Consumer.Sweep so held gaps time out. A failed
acknowledgement is logged and left to the ack wait: the redelivery is
dropped by deduplication.

# Server requirements

The consumer must use explicit acknowledgements. Everything used here —
pull consumers, NAK with delay, Term, Nats-Msg-Id deduplication — is
supported by nats-server 2.9 and later.

# Concurrency

Run handles messages one at a time, in delivery order, on the calling
goroutine; run several Adapters (on one or several pull consumers) for
parallelism: the Guard and the store are shared safely.
*/
package jetstream
