package ordering_test

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/ordering"
)

// projection folds events into a per-subject digest. The fold is not
// commutative, so applying events in another order, twice, or skipping one
// gives another digest.
type projection map[string]uint64

func (p projection) apply(e *contract.Event) {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d|%d|%s", p[e.Subject], e.Sequence, e.Data)
	p[e.Subject] = h.Sum64()
}

// history generates subjects×perSubject events with random payloads.
func history(r *rand.Rand, subjects, perSubject int) []*contract.Event {
	var out []*contract.Event
	for s := 0; s < subjects; s++ {
		for q := 1; q <= perSubject; q++ {
			e := ev(fmt.Sprintf("acct_%03d", s), uint64(q))
			e.Data = []byte(fmt.Sprintf(`{"amount":%d}`, r.IntN(1_000_000)-500_000))
			out = append(out, e)
		}
	}
	return out
}

// deliveries shuffles the history and duplicates ~30% of it.
func deliveries(r *rand.Rand, hist []*contract.Event) []*contract.Event {
	out := append([]*contract.Event(nil), hist...)
	for _, e := range hist {
		if r.IntN(10) < 3 {
			out = append(out, e)
		}
	}
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// runProperty delivers the shuffled, duplicated history through a Guard,
// redelivering (at the back of the queue) whatever is rejected or fails, as
// a broker would, and checks that the projection equals the in-order one and
// that every event was applied exactly once.
func runProperty(t *testing.T, seed uint64, policy ordering.GapPolicy, generic bool) {
	t.Helper()
	const subjects, perSubject = 100, 100 // 10,000 events
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	hist := history(r, subjects, perSubject)

	want := projection{}
	for _, e := range hist { // hist is in order per subject
		want.apply(e)
	}

	clk := newFakeClock()
	cfg := ordering.Config{Gap: policy, MaxHeld: 20000, HoldTimeout: time.Hour, Clock: clk}
	if generic {
		// Hide the *Memory type: the Guard takes the State interface path
		// (the one a persistent State such as pgstate goes through).
		m, err := ordering.NewMemory(ordering.MemoryConfig{})
		if err != nil {
			t.Fatal(err)
		}
		cfg.State = opaqueState{m}
	}
	g := mustGuard(t, cfg)
	got := projection{}
	applied := make(map[string]int)
	injected := 0
	apply := func(_ context.Context, e *contract.Event) error {
		if r.IntN(100) < 5 { // a transient failure of the effect
			injected++
			return contract.New(contract.KindUnavailable, "projection", "injected fault")
		}
		got.apply(e)
		applied[e.DedupKey()]++
		return nil
	}
	queue := deliveries(r, hist)
	settle := func(_ context.Context, e *contract.Event, _ ordering.Outcome, err error) {
		if err != nil {
			queue = append(queue, e) // redeliver
		}
	}
	var settleFn ordering.SettleFunc
	if policy == ordering.GapHold {
		settleFn = settle
	}
	processed := 0
	for len(queue) > 0 {
		e := queue[0]
		queue = queue[1:]
		processed++
		if processed > 50*len(hist) {
			t.Fatalf("seed %d: no progress after %d deliveries", seed, processed)
		}
		_, err := g.Process(context.Background(), e, apply, settleFn)
		switch {
		case err == nil:
		case errors.Is(err, ordering.ErrGap), contract.Retryable(err):
			queue = append(queue, e)
		default:
			t.Fatalf("seed %d: Process: %v", seed, err)
		}
	}
	if g.Held() != 0 {
		t.Fatalf("seed %d: %d deliveries still held", seed, g.Held())
	}
	if len(applied) != len(hist) {
		t.Fatalf("seed %d: %d distinct events applied, want %d", seed, len(applied), len(hist))
	}
	for k, n := range applied {
		if n != 1 {
			t.Fatalf("seed %d: event %s applied %d times", seed, k, n)
		}
	}
	for s, d := range want {
		if got[s] != d {
			t.Fatalf("seed %d: subject %s projection %x, want %x (in-order application)", seed, s, got[s], d)
		}
		if last, _ := g.State().Last(context.Background(), s); last != perSubject {
			t.Fatalf("seed %d: subject %s last %d, want %d", seed, s, last, perSubject)
		}
	}
	if injected == 0 {
		t.Fatalf("seed %d: no fault injected: the test proves less than it claims", seed)
	}
	t.Logf("seed %d %v: %d deliveries for %d events, %d injected faults", seed, policy, processed, len(hist), injected)
}

func TestPropertyShuffledDuplicated(t *testing.T) {
	seeds := []uint64{1, 42, rand.Uint64()} // two fixed, one random: a failure names its seed
	for _, seed := range seeds {
		for _, policy := range []ordering.GapPolicy{ordering.GapReject, ordering.GapHold} {
			name := fmt.Sprintf("seed=%d/hold=%v", seed, policy == ordering.GapHold)
			t.Run(name, func(t *testing.T) { runProperty(t, seed, policy, false) })
		}
	}
	t.Run("generic-state/hold=true", func(t *testing.T) { runProperty(t, 7, ordering.GapHold, true) })
}

// opaqueState hides a State's concrete type.
type opaqueState struct{ ordering.State }
