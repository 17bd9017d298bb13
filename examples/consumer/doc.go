// Command consumer consumes payment events that arrive duplicated, out of
// order and sometimes malformed, through the sadpath consumer wiring, and
// proves the resulting projection equals applying every event once, in
// order.
//
// # What it does
//
// A built-in producer generates -events payment events over -subjects
// payments (CloudEvents JSON; the subject is the payment id, the sequence
// extension counts that payment's events from 1): an authorization, then
// captures and refunds. The broker then does what brokers do: it shuffles
// them, delivers some twice (-dup-rate), carries copies a producer
// republished under a new id (-republish-rate) and three malformed
// messages (truncated JSON, a missing id, no sequence). The handler — the
// projection of each payment's status and balance — fails transiently now
// and then (-fail-rate).
//
// Every delivery goes through a consumer.Consumer: strict decoding
// (malformed events are dead-lettered at once, never retried), deduplication
// by (source, id) in an idempotency.Store, an ordering.Guard per payment
// that holds gaps until the missing events arrive and drops duplicates and
// stale events, and a Retry decision with backoff for transient failures.
//
// # Brokers
//
// By default a simulated broker runs in memory: it acts on each Result as
// JetStream would (Retry redelivers after the delay with the attempt count
// up, Hold leaves the message pending until the Guard settles it,
// DeadLetter drops it), on a simulated clock, so a run takes milliseconds
// and a seed always gives the same run. With -nats the same events go
// through a real NATS JetStream stream (-stream, created for the run and
// deleted afterwards) and the consumer/jetstream Adapter, with real NAKs,
// redeliveries and Nats-Msg-Id deduplication at publication.
//
// # Output
//
// A summary on stdout: deliveries, applied, duplicates and stale events
// dropped (and by which layer), gaps held and redelivered, transient
// failures retried, dead letters with their reasons, and the verdict: the
// projection against the in-order application of the events, every event
// applied exactly once. The exit status is 1 when the verdict fails, 2 for
// bad flags or a failed run. The JSON decision logs go to stderr, each
// with the coordinates of the event it is about (correlation id, payment),
// never an event id or payload.
//
//	go run ./examples/consumer
//	go run ./examples/consumer -events 10000 -subjects 100 -dup-rate 0.3 -seed 7
//	go run ./examples/consumer -max-held 64   # an undersized hold buffer: watch the redeliveries
//	go run ./examples/consumer -nats nats://127.0.0.1:4222
package main
