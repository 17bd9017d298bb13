package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/sadpath/sadpath/consumer"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/ordering"
)

func eventsOutOfOrder(ctx context.Context, e *env, r *report) error {
	const subjects, perSubject = 5, 20
	// The producer's events, in order.
	var events [][]byte
	for s := range subjects {
		for seq := 1; seq <= perSubject; seq++ {
			ev := contract.Event{
				ID: fmt.Sprintf("evt-%d-%d", s, seq), Source: "/payments", SpecVersion: contract.SpecVersion,
				Type: "dev.sadpath.payment.updated.v1", Subject: fmt.Sprintf("pay_%d", s), Sequence: uint64(seq),
				CorrelationID: fmt.Sprintf("corr-pay-%d", s), Data: json.RawMessage(fmt.Sprintf(`{"version":%d}`, seq)),
			}
			b, err := json.Marshal(ev)
			if err != nil {
				return err
			}
			events = append(events, b)
		}
	}
	// The broker: shuffles, and delivers 30 % of the events twice.
	deliveries := slices.Clone(events)
	dups := 0
	for _, b := range events {
		if e.rand.Float64() < 0.3 {
			deliveries = append(deliveries, b)
			dups++
		}
	}
	e.rand.Shuffle(len(deliveries), func(i, j int) { deliveries[i], deliveries[j] = deliveries[j], deliveries[i] })

	store, err := idempotency.NewMemoryStore(idempotency.MemoryConfig{})
	if err != nil {
		return err
	}
	guard, err := ordering.New(ordering.Config{Logger: e.logger})
	if err != nil {
		return err
	}
	var mu sync.Mutex
	projection := map[string][]uint64{}
	c, err := consumer.New(consumer.Config{
		Name: "payment-projection", Store: store, Guard: guard, Logger: e.logger,
		MaxAttempts: 1 << 20, // gaps are redelivered until the missing events arrive
		Handler: func(ctx context.Context, ev *contract.Event) error {
			mu.Lock()
			defer mu.Unlock()
			projection[ev.Subject] = append(projection[ev.Subject], ev.Sequence)
			return nil
		},
	})
	if err != nil {
		return err
	}

	counts := map[string]int{}
	queue := deliveries
	type item struct {
		data    []byte
		attempt int
	}
	q := make([]item, 0, len(queue))
	for _, d := range queue {
		q = append(q, item{d, 1})
	}
	handled := 0
	for len(q) > 0 && handled < 100_000 {
		it := q[0]
		q = q[1:]
		handled++
		res := c.Handle(ctx, consumer.Delivery{Data: it.data, Attempt: it.attempt})
		key := res.Action.String()
		if res.Decision != 0 {
			key += "/" + res.Decision.String()
		}
		counts[key]++
		if res.Action == consumer.Retry { // the broker redelivers later
			q = append(q, item{it.data, it.attempt + 1})
		}
	}

	inOrder := true
	for s := range subjects {
		got := projection[fmt.Sprintf("pay_%d", s)]
		want := make([]uint64, perSubject)
		for i := range want {
			want[i] = uint64(i + 1)
		}
		inOrder = inOrder && slices.Equal(got, want)
	}
	r.did("%d events over %d subjects; the broker shuffled them and delivered %d twice (%d deliveries)", len(events), subjects, dups, len(deliveries))
	r.decided("each delivery was decoded strictly, deduplicated by (source, id), then passed through the per-subject sequence guard")
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		r.figure("delivery outcome "+k, "%d", counts[k])
	}
	r.figure("deliveries handled (with redeliveries)", "%d", handled)
	r.expect(inOrder, "the projection equals applying every event once, in order, for every subject")
	applied := 0
	for _, v := range projection {
		applied += len(v)
	}
	r.expect(applied == len(events), "every event applied exactly once (%d of %d)", applied, len(events))
	r.expect(len(q) == 0, "nothing left undelivered")
	return nil
}
