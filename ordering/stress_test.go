package ordering_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/ordering"
)

type skipHook struct {
	check func(subject string, from, to uint64)
}

func (h *skipHook) Enabled(context.Context, slog.Level) bool { return true }
func (h *skipHook) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *skipHook) WithGroup(string) slog.Handler            { return h }
func (h *skipHook) Handle(_ context.Context, r slog.Record) error {
	var dec, reason, subject string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "decision":
			dec = a.Value.String()
		case "reason":
			reason = a.Value.String()
		case "subject":
			subject = a.Value.String()
		}
		return true
	})
	if dec == "" {
		dec = r.Message
	}
	if dec == "gap skipped" || r.Message == "gap skipped" {
		var w string
		var from, to uint64
		if _, err := fmt.Sscanf(reason, "waited %s for sequences %d..%d", &w, &from, &to); err == nil {
			h.check(subject, from, to)
		}
	}
	return nil
}

// TestGuardRandomizedDeliveries is a model check of the Guard under
// concurrency: 8 workers deliver 3 subjects × 25 events shuffled, with
// duplicates, random handler failures (redelivered later) and a fake clock
// advancing between Sweeps, over 150 seeds. Every sequence must be applied
// exactly once, in order, or skipped by a logged timeout that never jumps
// over a delivery still held; every held delivery is settled exactly once;
// the hold buffer ends empty.
func TestGuardRandomizedDeliveries(t *testing.T) {
	for seed := uint64(1); seed <= 150; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { randomizedDeliveries(t, seed) })
	}
}

func randomizedDeliveries(t *testing.T, seed uint64) {
	ctx := context.Background()
	const subjects, per, workers = 3, 25, 8
	r := rand.New(rand.NewPCG(seed, 7))
	clk := newFakeClock()

	var mu sync.Mutex
	applied := map[string][]uint64{}
	heldCount := map[string]int{} // subject/seq -> deliveries held, not yet settled
	var violations []string
	skipped := map[string]bool{}

	hook := &skipHook{check: func(subject string, from, to uint64) {
		mu.Lock()
		defer mu.Unlock()
		for s := from; s <= to; s++ {
			k := fmt.Sprintf("%s/%d", subject, s)
			skipped[k] = true
			if heldCount[k] > 0 {
				violations = append(violations, fmt.Sprintf("skip of %s while a delivery of it is held", k))
			}
		}
	}}
	g, err := ordering.New(ordering.Config{Gap: ordering.GapHold, MaxHeld: 20, HoldTimeout: 5 * time.Second, Clock: clk, Logger: slog.New(hook)})
	if err != nil {
		t.Fatal(err)
	}

	type delivery struct {
		e  *contract.Event
		id int
	}
	queue := make(chan delivery, 10000)
	var pending sync.WaitGroup
	var rmu sync.Mutex
	rng := func(n int) int { rmu.Lock(); defer rmu.Unlock(); return r.IntN(n) }
	nextID := 0
	var settles sync.Map // id -> count
	enqueue := func(e *contract.Event) {
		rmu.Lock()
		nextID++
		id := nextID
		rmu.Unlock()
		pending.Add(1)
		queue <- delivery{e, id}
	}
	var all []*contract.Event
	for s := 0; s < subjects; s++ {
		for q := 1; q <= per; q++ {
			all = append(all, ev(fmt.Sprintf("sub%d", s), uint64(q)))
		}
	}
	r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	for _, e := range all {
		enqueue(e)
		if r.IntN(4) == 0 {
			enqueue(e)
		}
	}
	record := func(e *contract.Event) error {
		mu.Lock()
		defer mu.Unlock()
		l := applied[e.Subject]
		if len(l) > 0 && l[len(l)-1] >= e.Sequence {
			violations = append(violations, fmt.Sprintf("%s/%d applied after %d", e.Subject, e.Sequence, l[len(l)-1]))
		}
		applied[e.Subject] = append(l, e.Sequence)
		return nil
	}
	// failing counts the Process and Sweep calls running in which an
	// apply failed. When a held event fails, the Guard restarts the wait
	// of the events held behind it and lets it go, then runs its settles,
	// one per delivery it held (duplicates share an entry), before the
	// call returns; each delivery is the test's "held" until its own
	// settle runs. The fake clock must not advance in between, or a full
	// HoldTimeout could pass there and the timeout skip, which the Guard
	// rightly makes then, would look like a skip of a held delivery. The
	// call is marked through its context, which the Guard hands to every
	// apply it runs, a held event's too.
	var failing atomic.Int64
	type failedKey struct{}
	apply := func(ctx context.Context, e *contract.Event) error {
		if rng(5) == 0 {
			if f := ctx.Value(failedKey{}).(*atomic.Bool); f.CompareAndSwap(false, true) {
				failing.Add(1)
			}
			return &contract.Error{Kind: contract.KindUnavailable, Code: "x"}
		}
		return record(e)
	}
	call := func() (context.Context, func()) {
		f := new(atomic.Bool)
		return context.WithValue(ctx, failedKey{}, f), func() {
			if f.Load() {
				failing.Add(-1)
			}
		}
	}
	redeliver := func(d delivery) {
		// later, maybe
		go func() {
			if rng(3) == 0 {
				time.Sleep(time.Duration(rng(2000)) * time.Microsecond)
			}
			enqueue(d.e)
			pending.Done()
		}()
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				var d delivery
				select {
				case d = <-queue:
				case <-stop:
					return
				}
				k := fmt.Sprintf("%s/%d", d.e.Subject, d.e.Sequence)
				dd := d
				settle := func(_ context.Context, e *contract.Event, o ordering.Outcome, err error) {
					n, _ := settles.LoadOrStore(dd.id, new(int))
					mu.Lock()
					*n.(*int)++
					if *n.(*int) > 1 {
						violations = append(violations, fmt.Sprintf("delivery %d of %s settled %d times", dd.id, k, *n.(*int)))
					}
					heldCount[k]--
					mu.Unlock()
					if err != nil {
						redeliver(dd)
						return
					}
					pending.Done()
				}
				cctx, done := call()
				o, err := g.Process(cctx, d.e, apply, settle)
				done()
				switch {
				case err != nil:
					redeliver(d)
				case o.Held:
					mu.Lock()
					heldCount[k]++
					mu.Unlock()
				default:
					pending.Done()
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Microsecond):
			}
			if failing.Load() > 0 {
				continue
			}
			clk.Advance(time.Duration(rng(1500)) * time.Millisecond)
			cctx, done := call()
			g.Sweep(cctx)
			done()
		}
	}()
	doneCh := make(chan struct{})
	go func() { pending.Wait(); close(doneCh) }()
	select {
	case <-doneCh:
	case <-time.After(20 * time.Second):
		close(stop)
		wg.Wait()
		t.Fatalf("not all deliveries finished; held=%d", g.Held())
	}
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for s := 0; s < subjects; s++ {
		sub := fmt.Sprintf("sub%d", s)
		seen := map[uint64]bool{}
		for _, q := range applied[sub] {
			if seen[q] {
				violations = append(violations, fmt.Sprintf("%s/%d applied twice", sub, q))
			}
			seen[q] = true
		}
		for q := uint64(1); q <= per; q++ {
			if !seen[q] && !skipped[fmt.Sprintf("%s/%d", sub, q)] {
				violations = append(violations, fmt.Sprintf("%s/%d neither applied nor skipped", sub, q))
			}
		}
	}
	if g.Held() != 0 {
		violations = append(violations, fmt.Sprintf("held=%d at end", g.Held()))
	}
	t.Logf("skipped %d, applied %d", len(skipped), len(applied["sub0"])+len(applied["sub1"])+len(applied["sub2"]))
	if len(violations) > 0 {
		t.Fatalf("%d violations: %v", len(violations), violations)
	}
}
