package ordering_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/ordering"
	"github.com/sadpath/sadpath/ordering/statetest"
)

// sharedState is a RedeliveryState in memory: a Memory for the sequences,
// and the redeliveries beside it, recorded while the subject is locked.
// Two Guards over one sharedState play two processes over ordering/pgstate.
type sharedState struct {
	*ordering.Memory
	mu       sync.Mutex
	due      map[string]map[uint64]time.Time
	advances int // AdvanceRedelivery calls
	records  int // Redelivering calls
}

func newSharedState(t *testing.T) *sharedState {
	m, err := ordering.NewMemory(ordering.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return &sharedState{Memory: m, due: map[string]map[uint64]time.Time{}}
}

func (s *sharedState) record(subject string, last uint64, r ordering.Redelivery) {
	if r.Sequence <= last {
		return
	}
	if s.due[subject] == nil {
		s.due[subject] = map[uint64]time.Time{}
	}
	if cur, ok := s.due[subject][r.Sequence]; !ok || r.At.After(cur) {
		s.due[subject][r.Sequence] = r.At
	}
}

func (s *sharedState) AdvanceRedelivery(ctx context.Context, subject string, fn ordering.RedeliveryFunc) error {
	s.mu.Lock()
	s.advances++
	s.mu.Unlock()
	return s.Advance(ctx, subject, func(ctx context.Context, last uint64) (uint64, error) {
		due := func(_ context.Context, to uint64) (time.Time, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			var at time.Time
			for seq, t := range s.due[subject] {
				if seq > last && seq <= to && t.After(at) {
					at = t
				}
			}
			return at, nil
		}
		next, r, err := fn(ctx, last, due)
		s.mu.Lock()
		defer s.mu.Unlock()
		if err == nil && next > last {
			for seq := range s.due[subject] {
				if seq <= next {
					delete(s.due[subject], seq)
				}
			}
			last = next
		}
		s.record(subject, last, r) // under the subject's lock, fn failed or not
		return next, err
	})
}

func (s *sharedState) Redelivering(ctx context.Context, subject string, r ordering.Redelivery) error {
	last, err := s.Last(ctx, subject)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records++
	s.record(subject, last, r)
	return nil
}

func (s *sharedState) calls() (advances, records int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.advances, s.records
}

// TestSharedStateConformance: the fake passes the RedeliveryState checks.
func TestSharedStateConformance(t *testing.T) {
	statetest.Run(t, func(t *testing.T) ordering.State { return newSharedState(t) })
}

// TestTimeoutSkipHonoursRedeliveryOfAnotherGuard: Guards A and B share a
// RedeliveryState, as two processes share ordering/pgstate. A holds 3
// behind the missing 2; 2 fails in B: A's timeout does not skip 2 until
// HoldTimeout has passed since the failure (or since the redelivery B
// reports with Retrying), logs why, and B's redelivery is applied.
func TestTimeoutSkipHonoursRedeliveryOfAnotherGuard(t *testing.T) {
	for _, via := range []string{"apply", "retrying", "failed"} {
		t.Run(via, func(t *testing.T) {
			ctx := context.Background()
			clk := newFakeClock()
			st := newSharedState(t)
			log, buf := logBuffer()
			cfg := ordering.Config{State: st, Gap: ordering.GapHold, HoldTimeout: 10 * time.Second, Clock: clk}
			b := mustGuard(t, cfg)
			cfg.Logger = log
			a := mustGuard(t, cfg)
			r := recorder{fail: map[string]error{}}
			var s settled
			mustProcess(t, a, ev("s", 1), r.apply, s.settle)
			mustProcess(t, a, ev("s", 3), r.apply, s.settle) // 2 is missing
			clk.Advance(9 * time.Second)
			wait := 10 * time.Second // from now, when 2 fails in B
			switch via {
			case "apply", "retrying":
				r.fail["s/2"] = contract.New(contract.KindUnavailable, "db", "down")
				if o, err := b.Process(ctx, ev("s", 2), r.apply, s.settle); err == nil || o.Decision != ordering.Apply {
					t.Fatalf("B: failing 2 = %+v %v, want apply with an error", o, err)
				}
				if via == "retrying" {
					b.Retrying(ctx, ev("s", 2), time.Minute)
					wait += time.Minute
				}
			case "failed":
				b.Failed(ctx, ev("s", 2))
			}
			clk.Advance(wait - time.Millisecond)
			if n := a.Sweep(ctx); n != 0 || a.Held() != 1 {
				t.Fatalf("A: Sweep = %d (held %d) before HoldTimeout passed since 2's failure in B; want nothing settled", n, a.Held())
			}
			if n := a.Sweep(ctx); n != 0 {
				t.Fatalf("A: second Sweep = %d", n)
			}
			postponed := 0
			for _, m := range decisions(t, buf) {
				if m["decision"] == "gap skip postponed" {
					postponed++
				}
			}
			if postponed != 1 {
				t.Fatalf("A logged %d \"gap skip postponed\" decisions, want 1 (the wait restarted, later sweeps do not look again): %s", postponed, buf)
			}
			if o, err := b.Process(ctx, ev("s", 2), r.apply, s.settle); err != nil || o.Decision != ordering.Apply {
				t.Fatalf("B: redelivery of 2 = %+v %v, want apply", o, err)
			}
			clk.Advance(10 * time.Second)
			if n := a.Sweep(ctx); n != 1 || r.got() != "s/1 s/2 s/3" || s.String() != "s/3=apply" {
				t.Fatalf("A: Sweep = %d, applied %q, settled %q; want 3 released after 2", n, r.got(), s.String())
			}
			if len(st.due["s"]) != 0 {
				t.Fatalf("redeliveries left once 3 is applied: %v", st.due["s"])
			}
		})
	}
}

// TestRedeliveryStateOnlyForTimeoutSkip: a Guard records and reads
// redeliveries only under GapHold with TimeoutSkip, the one configuration
// that skips. The others use the State's plain Advance, and do not pay for
// a savepoint (ordering/pgstate) on every event.
func TestRedeliveryStateOnlyForTimeoutSkip(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    ordering.Config
		shared bool
	}{
		{"reject", ordering.Config{}, false},
		{"hold-reject", ordering.Config{Gap: ordering.GapHold, OnTimeout: ordering.TimeoutReject}, false},
		{"hold-skip", ordering.Config{Gap: ordering.GapHold, OnTimeout: ordering.TimeoutSkip}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			st := newSharedState(t)
			tc.cfg.State = st
			g := mustGuard(t, tc.cfg)
			r := recorder{fail: map[string]error{"s/2": contract.New(contract.KindUnavailable, "db", "down")}}
			mustProcess(t, g, ev("s", 1), r.apply, nil)
			if _, err := g.Process(ctx, ev("s", 2), r.apply, nil); err == nil {
				t.Fatal("failing 2: no error")
			}
			g.Retrying(ctx, ev("s", 2), time.Second)
			g.Failed(ctx, ev("s", 3))
			advances, records := st.calls()
			want := 0
			if tc.shared {
				want = 2 // Process(1) and Process(2); Retrying and Failed
			}
			if advances != want || records != want {
				t.Fatalf("%d AdvanceRedelivery and %d Redelivering calls; want %d of each", advances, records, want)
			}
			if got := len(st.due["s"]); tc.shared != (got == 2) {
				t.Fatalf("%d redeliveries recorded (%v), want them only under TimeoutSkip", got, st.due["s"])
			}
		})
	}
}
