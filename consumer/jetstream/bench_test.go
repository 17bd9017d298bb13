package jetstream_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sadpath/sadpath/consumer"
	"github.com/sadpath/sadpath/consumer/jetstream"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/ordering"
)

// BenchmarkEndToEnd publishes b.N events (in order per subject, 100
// subjects) to a fresh stream, then times an Adapter consuming and acking
// all of them: "bare" decodes and runs the handler only; "dedup+ordering"
// adds the in-memory idempotency store and the ordering Guard. events/s is
// the figure to compare.
func BenchmarkEndToEnd(b *testing.B) {
	for _, guarded := range []bool{false, true} {
		name := "bare"
		if guarded {
			name = "dedup+ordering"
		}
		b.Run(name, func(b *testing.B) { endToEnd(b, guarded) })
	}
}

func endToEnd(b *testing.B, guarded bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	j, streamName, subj := stream(b)
	const subjects = 100
	seq := make([]uint64, subjects)
	for i := 0; i < b.N; i++ {
		s := i % subjects
		seq[s]++
		e := contract.Event{
			ID: fmt.Sprint("evt-", i), Source: "/bench", SpecVersion: "1.0", Type: "com.example.posted.v1",
			Subject: fmt.Sprint("acct_", s), Sequence: seq[s], Data: json.RawMessage(`{"amount":1}`),
		}
		if _, err := jetstream.Publish(ctx, j, subj+".events", &e); err != nil {
			b.Fatal(err)
		}
	}
	pull := pullConsumer(b, j, streamName, 30*time.Second)
	var handled atomic.Int64
	done := make(chan struct{})
	cfg := consumer.Config{Handler: func(context.Context, *contract.Event) error {
		if handled.Add(1) == int64(b.N) {
			close(done)
		}
		return nil
	}}
	if guarded {
		store, err := idempotency.NewMemoryStore(idempotency.MemoryConfig{})
		if err != nil {
			b.Fatal(err)
		}
		g, err := ordering.New(ordering.Config{})
		if err != nil {
			b.Fatal(err)
		}
		cfg.Store, cfg.Guard = store, g
	}
	c, err := consumer.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	a, err := jetstream.New(jetstream.Config{Pull: pull, Consumer: c, Batch: 500, MaxWait: 100 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	go func() { ran <- a.Run(runCtx) }()
	select {
	case <-done:
	case <-ctx.Done():
		b.Fatalf("handled %d of %d", handled.Load(), b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	stop()
	if err := <-ran; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}
