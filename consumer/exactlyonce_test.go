package consumer_test

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/sadpath/sadpath/consumer"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/ordering"
)

// TestExactlyOnceUnderFaults delivers a shuffled, duplicated history from
// many goroutines, as a broker with redeliveries would, with transient
// handler failures injected, and counts executions: every event is applied
// exactly once, in order per subject, and the projection equals the
// in-order one.
func TestExactlyOnceUnderFaults(t *testing.T) {
	for _, hold := range []bool{false, true} {
		t.Run(fmt.Sprintf("hold=%v", hold), func(t *testing.T) { exactlyOnce(t, 7, hold) })
	}
}

func exactlyOnce(t *testing.T, seed uint64, hold bool) {
	const subjects, perSubject, workers = 20, 30, 8
	r := rand.New(rand.NewPCG(seed, seed))
	var hist []contract.Event
	for s := 0; s < subjects; s++ {
		for q := 1; q <= perSubject; q++ {
			hist = append(hist, event(fmt.Sprintf("acct_%d", s), uint64(q), fmt.Sprintf(`{"v":%d}`, r.IntN(1000))))
		}
	}
	fold := func(m map[string]uint64, e *contract.Event) {
		h := fnv.New64a()
		fmt.Fprintf(h, "%d|%d|%s", m[e.Subject], e.Sequence, e.Data)
		m[e.Subject] = h.Sum64()
	}
	want := map[string]uint64{}
	for i := range hist {
		fold(want, &hist[i])
	}

	var mu sync.Mutex
	got := map[string]uint64{}
	execs := map[string]int{}
	faults := 0
	handler := func(_ context.Context, e *contract.Event) error {
		mu.Lock()
		defer mu.Unlock()
		if r.IntN(100) < 10 {
			faults++
			return contract.New(contract.KindUnavailable, "projection", "injected fault")
		}
		fold(got, e)
		execs[e.DedupKey()]++
		return nil
	}
	policy := ordering.GapReject
	if hold {
		policy = ordering.GapHold
	}
	c := mustConsumer(t, consumer.Config{
		Store:       memStore(t),
		Guard:       mustGuard(t, ordering.Config{Gap: policy, MaxHeld: 100000}),
		MaxAttempts: 1 << 30, // never give up in this test
		Handler:     handler,
	})

	type msg struct {
		data    []byte
		attempt int
	}
	queue := make(chan msg, 1<<20)
	var pending sync.WaitGroup
	send := func(m msg) { pending.Add(1); queue <- m }
	var order []int
	for i := range hist {
		order = append(order, i)
		if r.IntN(4) == 0 {
			order = append(order, i) // duplicate delivery
		}
	}
	r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	for _, i := range order {
		send(msg{data: encode(t, hist[i]), attempt: 1})
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range queue {
				settle := func(res consumer.Result) {
					if res.Action == consumer.Retry {
						send(msg{data: m.data, attempt: m.attempt + 1})
					} else if res.Action != consumer.Ack {
						t.Errorf("held event settled with %+v", res)
					}
					pending.Done()
				}
				d := consumer.Delivery{Data: m.data, Attempt: m.attempt}
				if hold {
					d.Settle = settle
				}
				res := c.Handle(context.Background(), d)
				switch res.Action {
				case consumer.Ack:
					pending.Done()
				case consumer.Retry:
					send(msg{data: m.data, attempt: m.attempt + 1})
					pending.Done()
				case consumer.Hold:
					// settled later
				default:
					t.Errorf("unexpected %+v", res)
					pending.Done()
				}
			}
		}()
	}
	pending.Wait()
	close(queue)
	wg.Wait()

	if len(execs) != len(hist) {
		t.Fatalf("%d events executed, want %d", len(execs), len(hist))
	}
	for k, n := range execs {
		if n != 1 {
			t.Fatalf("event %s executed %d times, want exactly once", k, n)
		}
	}
	for s, d := range want {
		if got[s] != d {
			t.Fatalf("subject %s: projection differs from in-order application", s)
		}
	}
	if faults == 0 {
		t.Fatal("no fault injected")
	}
	t.Logf("hold=%v: %d events, %d deliveries in queue order, %d injected faults", hold, len(hist), len(order), faults)
}
