package main

import (
	"container/heap"
	"context"
	"fmt"
	"time"

	"github.com/sadpath/sadpath/consumer"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/ordering"
)

// RunMemory plays the workload through a consumer.Consumer with the
// in-memory idempotency store and ordering state, on a simulated broker:
// every delivery is handed to Consumer.Handle and the Result is acted on
// as a broker would — Retry redelivers the message after its delay (the
// attempt count going up), Hold leaves it pending until the Guard settles
// it, DeadLetter drops it for good. Time is simulated (see simClock), so
// the run is fast and, for a given seed, always the same.
func RunMemory(ctx context.Context, o Options) (*Report, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	w, err := Produce(o.Events, o.Subjects, o.DupRate, o.RepublishRate, o.Seed)
	if err != nil {
		return nil, err
	}
	clock := newSimClock(epoch)
	store, err := idempotency.NewMemoryStore(idempotency.MemoryConfig{Clock: clock})
	if err != nil {
		return nil, err
	}
	state, err := ordering.NewMemory(ordering.MemoryConfig{Clock: clock})
	if err != nil {
		return nil, err
	}
	a, err := newApp(o, appConfig{
		clock: clock, store: store, state: state,
		holdTimeout: 30 * time.Second, retryAfter: time.Second,
		minBackoff: time.Second, maxBackoff: 30 * time.Second,
		logger: o.Logger,
	})
	if err != nil {
		return nil, err
	}

	r := &Report{Mode: "memory", Options: o}
	r.Produced.Events, r.Produced.Duplicates, r.Produced.Republished, r.Produced.Malformed, r.Produced.Deliveries =
		len(w.Events), w.Duplicates, w.Republished, w.Malformed, len(w.Items)

	b := &simBroker{clock: clock, c: a.c, counts: &r.Counts, held: map[heldKey]int{}}
	for _, it := range w.Items {
		b.publish(it.Data)
	}
	// Bound the run: every delivery settles after a few attempts; far more
	// steps than that means something loops.
	limit := 100*len(w.Items) + 10_000
	if err := b.run(ctx, limit); err != nil {
		return nil, err
	}
	r.Counts.Applied = a.proj.Applications()
	r.SimulatedTime = clock.Now().Sub(epoch)
	r.Stored = len(w.Items)
	if err := verify(r, w, a); err != nil {
		return nil, err
	}
	// The simulated broker redelivers nothing on its own: every message
	// ends acknowledged or dead-lettered exactly once.
	c := r.Counts
	if c.Acked+c.DeadLettered != r.Stored {
		r.Problems = append(r.Problems, fmt.Sprintf("%d acked + %d dead-lettered, want each of the %d messages settled once", c.Acked, c.DeadLettered, r.Stored))
	}
	// Every acknowledgement is an application or a copy dropped or joined
	// for a reason: counted apart, the sum must hold.
	if explained := c.Applied + c.DupByID + c.DupBySeq + c.Stale + c.JoinedHeld; c.Acked != explained {
		r.Problems = append(r.Problems, fmt.Sprintf("%d acked, but %d applied + %d dropped by id + %d by sequence + %d stale + %d joined a held copy = %d",
			c.Acked, c.Applied, c.DupByID, c.DupBySeq, c.Stale, c.JoinedHeld, explained))
	}
	r.Elapsed = time.Since(start)
	return r, nil
}

// simBroker is an at-least-once broker in a heap: messages become due at a
// time, are delivered in due order, and are redelivered on Retry.
type simBroker struct {
	clock  *simClock
	c      *consumer.Consumer
	counts *Counts
	queue  deliveryQueue
	order  int

	settledHolds int // held messages the Guard has settled
	// held counts the deliveries of each (subject, sequence) the Guard
	// holds and has not settled: it keeps one entry per event, so a
	// delivery held while an earlier copy is joins that copy's entry.
	held map[heldKey]int
}

type heldKey struct {
	subject  string
	sequence uint64
}

type simMsg struct {
	data    []byte
	attempt int
	due     time.Time
	order   int // FIFO among messages due at the same time

	held   heldKey // set while the Guard holds this delivery
	joined bool    // held while an earlier copy was: settled with that copy's entry
}

func (b *simBroker) publish(data []byte) {
	b.push(&simMsg{data: data, attempt: 1, due: b.clock.Now()})
}

func (b *simBroker) push(m *simMsg) {
	b.order++
	m.order = b.order
	heap.Push(&b.queue, m)
}

// run delivers until no message is left, at most limit deliveries.
func (b *simBroker) run(ctx context.Context, limit int) error {
	for steps := 0; ; steps++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if steps >= limit {
			return contract.New(contract.KindInternal, "examples/consumer", "the simulation did not settle every message").WithCode("simulation.runaway")
		}
		if b.queue.Len() == 0 {
			if b.c.Sweep(ctx) == 0 {
				// Nothing due and nothing held past its timeout: move
				// the clock to the next hold timeout, or stop.
				if !b.idleTick() {
					return nil
				}
			}
			continue
		}
		m := heap.Pop(&b.queue).(*simMsg)
		if m.due.After(b.clock.Now()) {
			b.clock.Set(m.due)
			b.c.Sweep(ctx)
		}
		b.deliver(ctx, m)
	}
}

// idleTick advances the clock by a second when the Guard still holds
// events (their hold timeout will reject them for redelivery), and reports
// whether it did.
func (b *simBroker) idleTick() bool {
	if b.counts.Held-b.settledHolds <= 0 {
		return false
	}
	b.clock.Set(b.clock.Now().Add(time.Second))
	return true
}

func (b *simBroker) deliver(ctx context.Context, m *simMsg) {
	b.counts.Deliveries++
	if m.attempt > 1 {
		b.counts.Redeliveries++
	}
	d := consumer.Delivery{Data: m.data, Attempt: m.attempt, Settle: func(r consumer.Result) {
		// Called once, later, for a held message: act on the final result.
		b.settledHolds++
		if b.held[m.held]--; b.held[m.held] <= 0 {
			delete(b.held, m.held)
		}
		if m.joined && r.Action == consumer.Ack && r.Decision == ordering.Apply {
			// Acked because the entry it joined was applied (once, for
			// the copy that opened it): counted here, not inferred.
			b.counts.JoinedHeld++
		}
		b.act(m, r)
	}}
	r := b.c.Handle(ctx, d)
	if r.Action == consumer.Hold {
		m.held = heldKey{r.Event.Subject, r.Event.Sequence}
		m.joined = b.held[m.held] > 0
		b.held[m.held]++
		b.counts.classify(r)
		return
	}
	b.act(m, r)
}

func (b *simBroker) act(m *simMsg, r consumer.Result) {
	b.counts.classify(r)
	if r.Action == consumer.Retry {
		b.push(&simMsg{data: m.data, attempt: m.attempt + 1, due: b.clock.Now().Add(r.Delay)})
	}
}

// deliveryQueue is a min-heap of messages by (due, order).
type deliveryQueue []*simMsg

func (q deliveryQueue) Len() int { return len(q) }
func (q deliveryQueue) Less(i, j int) bool {
	if !q[i].due.Equal(q[j].due) {
		return q[i].due.Before(q[j].due)
	}
	return q[i].order < q[j].order
}
func (q deliveryQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *deliveryQueue) Push(x any)   { *q = append(*q, x.(*simMsg)) }
func (q *deliveryQueue) Pop() any {
	old := *q
	m := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return m
}
