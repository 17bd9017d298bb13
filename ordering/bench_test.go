package ordering_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/ordering"
)

// BenchmarkGuardInOrder measures the decision for in-order events on the
// in-memory state, steady state (subjects already known): the budget is
// 300 ns/op and 0 allocs/op.
func BenchmarkGuardInOrder(b *testing.B) {
	ctx := context.Background()
	g, err := ordering.New(ordering.Config{Gap: ordering.GapHold})
	if err != nil {
		b.Fatal(err)
	}
	const subjects = 1024
	events := make([]contract.Event, subjects)
	for i := range events {
		events[i] = contract.Event{ID: "x", Source: "bench", Subject: fmt.Sprintf("acct_%d", i)}
	}
	apply := func(context.Context, *contract.Event) error { return nil }
	settle := func(context.Context, *contract.Event, ordering.Outcome, error) {}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e := &events[i%subjects]
		e.Sequence++
		if o, err := g.Process(ctx, e, apply, settle); err != nil || o.Decision != ordering.Apply {
			b.Fatal(o, err)
		}
	}
}

// BenchmarkGuardInOrderParallel is the same decision from GOMAXPROCS
// goroutines, each on its own subjects.
func BenchmarkGuardInOrderParallel(b *testing.B) {
	ctx := context.Background()
	g, err := ordering.New(ordering.Config{})
	if err != nil {
		b.Fatal(err)
	}
	apply := func(context.Context, *contract.Event) error { return nil }
	var workers atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		worker := workers.Add(1)
		events := make([]contract.Event, 64)
		for i := range events {
			events[i] = contract.Event{Subject: fmt.Sprintf("w%d_%d_%p", worker, i, &events)}
		}
		i := 0
		for pb.Next() {
			e := &events[i%len(events)]
			e.Sequence++
			if _, err := g.Process(ctx, e, apply, nil); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkLatestPut measures the last-writer-by-sequence helper.
func BenchmarkLatestPut(b *testing.B) {
	var l ordering.Latest[int]
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		l.Put("k", uint64(i+1), i)
	}
}
