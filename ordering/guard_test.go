package ordering_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/ordering"
)

func ev(subject string, seq uint64) *contract.Event {
	return &contract.Event{ID: fmt.Sprintf("%s-%d", subject, seq), Source: "test", SpecVersion: "1.0", Type: "t", Subject: subject, Sequence: seq}
}

// recorder applies events and remembers them in order.
type recorder struct {
	mu      sync.Mutex
	applied []string
	fail    map[string]error // subject/seq -> error returned once
}

func (r *recorder) apply(_ context.Context, e *contract.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := fmt.Sprintf("%s/%d", e.Subject, e.Sequence)
	if err := r.fail[k]; err != nil {
		delete(r.fail, k)
		return err
	}
	r.applied = append(r.applied, k)
	return nil
}

func (r *recorder) got() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.applied, " ")
}

// settled records SettleFunc calls.
type settled struct {
	mu  sync.Mutex
	got []string
}

func (s *settled) settle(_ context.Context, e *contract.Event, o ordering.Outcome, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := o.Decision.String()
	if err != nil {
		res = "err:" + contract.As(err).CodeOrKind()
	}
	s.got = append(s.got, fmt.Sprintf("%s/%d=%s", e.Subject, e.Sequence, res))
}

func (s *settled) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.got, " ")
}

func logBuffer() (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf
}

// decisions returns "decision(reason)" for every logged record.
func decisions(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func mustGuard(t *testing.T, cfg ordering.Config) *ordering.Guard {
	t.Helper()
	g, err := ordering.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestGuardDecisions(t *testing.T) {
	ctx := context.Background()
	log, buf := logBuffer()
	g := mustGuard(t, ordering.Config{Logger: log})
	var r recorder
	steps := []struct {
		seq      uint64
		decision ordering.Decision
		gapErr   bool
		last     uint64
	}{
		{1, ordering.Apply, false, 1},
		{2, ordering.Apply, false, 2},
		{2, ordering.Duplicate, false, 2},
		{1, ordering.Stale, false, 2},
		{4, ordering.Gap, true, 2},
		{3, ordering.Apply, false, 3},
		{4, ordering.Apply, false, 4},
	}
	for i, s := range steps {
		o, err := g.Process(ctx, ev("pay_1", s.seq), r.apply, nil)
		if o.Decision != s.decision || o.Last != s.last || o.Sequence != s.seq {
			t.Fatalf("step %d (seq %d): outcome %+v, want %s last %d", i, s.seq, o, s.decision, s.last)
		}
		if s.gapErr != (err != nil) || (err != nil && !errors.Is(err, ordering.ErrGap)) {
			t.Fatalf("step %d (seq %d): err %v, want gap error %v", i, s.seq, err, s.gapErr)
		}
	}
	if got := r.got(); got != "pay_1/1 pay_1/2 pay_1/3 pay_1/4" {
		t.Fatalf("applied %q", got)
	}
	// Every non-apply decision is logged with a reason and the coordinates.
	want := map[string]string{
		"duplicate event dropped": "sequence 2 already applied",
		"stale event dropped":     "sequence 1 is older than last applied 2",
		"gap: event rejected":     "expected sequence 3, got 4",
	}
	for _, rec := range decisions(t, buf) {
		if rec["decision"] == "event applied" {
			continue
		}
		d, _ := rec["decision"].(string)
		if want[d] == "" || rec["reason"] != want[d] || rec["subject"] != "pay_1" {
			t.Fatalf("unexpected log record %v", rec)
		}
		delete(want, d)
	}
	if len(want) != 0 {
		t.Fatalf("decisions not logged: %v", want)
	}
}

func TestGapRejectError(t *testing.T) {
	g := mustGuard(t, ordering.Config{RetryAfter: 3 * time.Second})
	var r recorder
	_, err := g.Process(context.Background(), ev("s", 5), r.apply, nil)
	if !errors.Is(err, ordering.ErrGap) || !errors.Is(err, contract.ErrConflict) {
		t.Fatalf("err = %v, want ErrGap (KindConflict)", err)
	}
	if !contract.Retryable(err) {
		t.Fatal("gap error must be retryable: the event is redelivered later")
	}
	if d, ok := contract.RetryAfter(err); !ok || d != 3*time.Second {
		t.Fatalf("RetryAfter = %v %v, want 3s", d, ok)
	}
	if r.got() != "" {
		t.Fatal("a gap event was applied")
	}
	if want := `subject "s": expected sequence 1, got 5`; contract.As(err).Detail != want {
		t.Fatalf("detail %q, want %q", contract.As(err).Detail, want)
	}
}

func TestInvalidEvents(t *testing.T) {
	g := mustGuard(t, ordering.Config{})
	var r recorder
	for _, e := range []*contract.Event{nil, ev("", 1), ev("s", 0)} {
		_, err := g.Process(context.Background(), e, r.apply, nil)
		if !errors.Is(err, ordering.ErrInvalidEvent) || !errors.Is(err, contract.ErrInvalid) || contract.Retryable(err) {
			t.Fatalf("Process(%+v) = %v, want permanent ErrInvalidEvent", e, err)
		}
	}
	if _, err := g.Process(context.Background(), ev("s", 1), nil, nil); !errors.Is(err, ordering.ErrInvalidEvent) {
		t.Fatalf("nil apply: %v", err)
	}
}

func TestApplyFailureIsRetried(t *testing.T) {
	ctx := context.Background()
	boom := contract.New(contract.KindUnavailable, "db", "down")
	r := recorder{fail: map[string]error{"s/2": boom}}
	g := mustGuard(t, ordering.Config{})
	if _, err := g.Process(ctx, ev("s", 1), r.apply, nil); err != nil {
		t.Fatal(err)
	}
	o, err := g.Process(ctx, ev("s", 2), r.apply, nil)
	if err != boom || o.Decision != ordering.Apply || o.Last != 1 {
		t.Fatalf("failed apply: %+v %v; want the apply error unchanged and last 1", o, err)
	}
	o, err = g.Process(ctx, ev("s", 2), r.apply, nil)
	if err != nil || o.Decision != ordering.Apply {
		t.Fatalf("redelivery after failure: %+v %v, want apply", o, err)
	}
	if r.got() != "s/1 s/2" {
		t.Fatalf("applied %q", r.got())
	}
}

func TestHoldReleasesInOrder(t *testing.T) {
	ctx := context.Background()
	log, buf := logBuffer()
	g := mustGuard(t, ordering.Config{Gap: ordering.GapHold, Logger: log})
	var r recorder
	var s settled
	for _, seq := range []uint64{4, 3, 5, 3} { // 3 delivered twice while held
		o, err := g.Process(ctx, ev("s", seq), r.apply, s.settle)
		if err != nil || o.Decision != ordering.Gap || !o.Held {
			t.Fatalf("seq %d: %+v %v, want held gap", seq, o, err)
		}
	}
	if g.Held() != 4 {
		t.Fatalf("Held = %d, want 4 deliveries", g.Held())
	}
	if r.got() != "" {
		t.Fatalf("applied before the gap filled: %q", r.got())
	}
	// A held event processed without a settle func is not held: rejected.
	if _, err := g.Process(ctx, ev("s", 6), r.apply, nil); !errors.Is(err, ordering.ErrGap) {
		t.Fatalf("gap without settle func: %v, want ErrGap", err)
	}
	o, err := g.Process(ctx, ev("s", 1), r.apply, s.settle)
	if err != nil || o.Decision != ordering.Apply {
		t.Fatal(o, err)
	}
	if r.got() != "s/1" {
		t.Fatalf("applied %q; 3..5 must wait for 2", r.got())
	}
	if _, err := g.Process(ctx, ev("s", 2), r.apply, s.settle); err != nil {
		t.Fatal(err)
	}
	if got := r.got(); got != "s/1 s/2 s/3 s/4 s/5" {
		t.Fatalf("applied %q, want 1..5 in order", got)
	}
	if got := s.String(); got != "s/3=apply s/3=apply s/4=apply s/5=apply" {
		t.Fatalf("settled %q", got)
	}
	if g.Held() != 0 {
		t.Fatalf("Held = %d after release", g.Held())
	}
	if last, _ := g.State().Last(ctx, "s"); last != 5 {
		t.Fatalf("Last = %d, want 5", last)
	}
	n := 0
	for _, rec := range decisions(t, buf) {
		if rec["decision"] == "gap: event held" {
			n++
		}
	}
	if n != 4 {
		t.Fatalf("%d 'gap: event held' records, want 4", n)
	}
}

func TestHoldTimeoutSkip(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	log, buf := logBuffer()
	g := mustGuard(t, ordering.Config{Gap: ordering.GapHold, HoldTimeout: 10 * time.Second, Clock: clk, Logger: log})
	var r recorder
	var s settled
	mustProcess(t, g, ev("s", 1), r.apply, s.settle)
	mustProcess(t, g, ev("s", 4), r.apply, s.settle)
	clk.Advance(5 * time.Second)
	mustProcess(t, g, ev("s", 5), r.apply, s.settle)
	if n := g.Sweep(ctx); n != 0 || r.got() != "s/1" {
		t.Fatalf("sweep before timeout settled %d, applied %q", n, r.got())
	}
	clk.Advance(5 * time.Second) // 4 has waited 10s
	if n := g.Sweep(ctx); n != 1 {
		t.Fatalf("Sweep = %d, want 1 subject", n)
	}
	if got := r.got(); got != "s/1 s/4 s/5" {
		t.Fatalf("applied %q, want 2..3 skipped", got)
	}
	if got := s.String(); got != "s/4=apply s/5=apply" {
		t.Fatalf("settled %q", got)
	}
	// The skipped sequences are stale now.
	if o, err := g.Process(ctx, ev("s", 2), r.apply, s.settle); err != nil || o.Decision != ordering.Stale {
		t.Fatalf("late skipped event: %+v %v, want stale", o, err)
	}
	found := false
	for _, rec := range decisions(t, buf) {
		if rec["decision"] == "gap skipped" {
			found = rec["reason"] == "waited 10s for sequences 2..3" && rec["subject"] == "s"
		}
	}
	if !found {
		t.Fatalf("no 'gap skipped' decision with reason in log:\n%s", buf)
	}
}

func TestHoldTimeoutOnProcess(t *testing.T) {
	// Without Sweep, the next event of the subject applies the timeout.
	clk := newFakeClock()
	g := mustGuard(t, ordering.Config{Gap: ordering.GapHold, HoldTimeout: time.Second, Clock: clk})
	var r recorder
	var s settled
	mustProcess(t, g, ev("s", 3), r.apply, s.settle)
	clk.Advance(time.Second)
	o, err := g.Process(context.Background(), ev("s", 5), r.apply, s.settle)
	if err != nil || !o.Held {
		t.Fatalf("seq 5: %+v %v", o, err)
	}
	if r.got() != "s/3" {
		t.Fatalf("applied %q, want 3 released by the timeout", r.got())
	}
}

func TestHoldTimeoutReject(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	g := mustGuard(t, ordering.Config{Gap: ordering.GapHold, OnTimeout: ordering.TimeoutReject, HoldTimeout: time.Second, Clock: clk})
	var r recorder
	var s settled
	mustProcess(t, g, ev("s", 3), r.apply, s.settle)
	mustProcess(t, g, ev("s", 2), r.apply, s.settle)
	clk.Advance(time.Second)
	g.Sweep(ctx)
	if got := s.String(); got != "s/2=err:ordering.gap s/3=err:ordering.gap" {
		t.Fatalf("settled %q, want both rejected in order", got)
	}
	if r.got() != "" || g.Held() != 0 {
		t.Fatalf("applied %q held %d", r.got(), g.Held())
	}
	if last, _ := g.State().Last(ctx, "s"); last != 0 {
		t.Fatalf("Last = %d, want 0: nothing skipped", last)
	}
}

func TestHoldBufferBounded(t *testing.T) {
	g := mustGuard(t, ordering.Config{Gap: ordering.GapHold, MaxHeld: 2})
	var r recorder
	var s settled
	mustProcess(t, g, ev("a", 2), r.apply, s.settle)
	mustProcess(t, g, ev("b", 2), r.apply, s.settle)
	_, err := g.Process(context.Background(), ev("c", 2), r.apply, s.settle)
	if !errors.Is(err, ordering.ErrGap) || !strings.Contains(err.Error(), "hold buffer full") {
		t.Fatalf("third held event: %v, want ErrGap (hold buffer full)", err)
	}
	if g.Held() != 2 {
		t.Fatalf("Held = %d, want 2", g.Held())
	}
}

func TestHeldApplyFailureSettlesError(t *testing.T) {
	boom := contract.New(contract.KindUnavailable, "db", "down")
	r := recorder{fail: map[string]error{"s/2": boom}}
	var s settled
	g := mustGuard(t, ordering.Config{Gap: ordering.GapHold})
	mustProcess(t, g, ev("s", 2), r.apply, s.settle)
	mustProcess(t, g, ev("s", 3), r.apply, s.settle)
	mustProcess(t, g, ev("s", 1), r.apply, s.settle)
	if got := s.String(); got != "s/2=err:unavailable" {
		t.Fatalf("settled %q, want 2 failed and 3 still held", got)
	}
	if g.Held() != 1 {
		t.Fatalf("Held = %d, want 1 (seq 3)", g.Held())
	}
	// Redelivery of 2 applies it and releases 3.
	mustProcess(t, g, ev("s", 2), r.apply, s.settle)
	if got := r.got(); got != "s/1 s/2 s/3" {
		t.Fatalf("applied %q", got)
	}
	if got := s.String(); got != "s/2=err:unavailable s/3=apply" {
		t.Fatalf("settled %q", got)
	}
}

func TestDirectApplySettlesHeldCopy(t *testing.T) {
	// A redelivery of a held event that arrives once it is next is applied
	// directly; the held copy is settled as a duplicate, not applied again.
	ctx := context.Background()
	clk := newFakeClock()
	g := mustGuard(t, ordering.Config{Gap: ordering.GapHold, Clock: clk})
	var r recorder
	var s settled
	mustProcess(t, g, ev("s", 2), r.apply, s.settle)
	// Make 1 applied behind the guard's back, through the state directly.
	if err := g.State().Advance(ctx, "s", func(context.Context, uint64) (uint64, error) { return 1, nil }); err != nil {
		t.Fatal(err)
	}
	mustProcess(t, g, ev("s", 2), r.apply, nil)
	if r.got() != "s/2" || s.String() != "s/2=duplicate" || g.Held() != 0 {
		t.Fatalf("applied %q settled %q held %d", r.got(), s.String(), g.Held())
	}
}

// TestFailedIgnoresUnorderableEvents: Failed with an event the Guard could
// not order, or with nothing held, changes nothing.
func TestFailedIgnoresUnorderableEvents(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	var r recorder
	var s settled
	g := mustGuard(t, ordering.Config{Gap: ordering.GapHold, HoldTimeout: 10 * time.Second, Clock: clk})
	g.Failed(ctx, ev("s", 1)) // nothing held
	mustProcess(t, g, ev("s", 3), r.apply, s.settle)
	clk.Advance(9 * time.Second)
	g.Failed(ctx, nil)
	g.Failed(ctx, &contract.Event{Subject: "s"})
	g.Failed(ctx, &contract.Event{Sequence: 1})
	g.Failed(ctx, ev("other", 1))
	clk.Advance(time.Second)
	if n := g.Sweep(ctx); n != 1 || r.got() != "s/3" || s.String() != "s/3=apply" {
		t.Fatalf("sweep settled %d, applied %q, settled %q; want 1..2 skipped and 3 applied", n, r.got(), s.String())
	}
}

func TestMaxHeld(t *testing.T) {
	for _, tc := range []struct {
		cfg  ordering.Config
		want int
	}{
		{ordering.Config{}, 0},
		{ordering.Config{MaxHeld: 10}, 0}, // GapReject holds nothing
		{ordering.Config{Gap: ordering.GapHold}, 1024},
		{ordering.Config{Gap: ordering.GapHold, MaxHeld: 10}, 10},
	} {
		if got := mustGuard(t, tc.cfg).MaxHeld(); got != tc.want {
			t.Fatalf("New(%+v).MaxHeld() = %d, want %d", tc.cfg, got, tc.want)
		}
	}
}

func TestConfigInvalid(t *testing.T) {
	for _, tc := range []struct {
		cfg  ordering.Config
		want string
	}{
		{ordering.Config{MaxHeld: -1}, "Config.MaxHeld: must be >= 0, got -1"},
		{ordering.Config{HoldTimeout: -time.Second}, "Config.HoldTimeout: must be >= 0, got -1s"},
		{ordering.Config{RetryAfter: -1}, "Config.RetryAfter: must be >= 0, got -1ns"},
		{ordering.Config{MaxGap: -1}, "Config.MaxGap: must be >= 0, got -1"},
		{ordering.Config{Gap: 9}, "Config.Gap: unknown policy 9"},
		{ordering.Config{OnTimeout: 9}, "Config.OnTimeout: unknown action 9"},
		{ordering.Config{State: (*ordering.Memory)(nil)}, "Config.State: nil *ordering.Memory"},
	} {
		_, err := ordering.New(tc.cfg)
		if !errors.Is(err, contract.ErrInvalid) || contract.As(err).Code != "config.invalid" || contract.As(err).Detail != tc.want {
			t.Fatalf("New(%+v) = %v, want config.invalid %q", tc.cfg, err, tc.want)
		}
		// The field is also machine-readable, as in limit and breaker.
		if f := contract.As(err).Fields; len(f) != 1 || !strings.HasPrefix(tc.want, f[0].Name+": ") {
			t.Fatalf("New(%+v): fields %v, want the field of %q", tc.cfg, f, tc.want)
		}
	}
}

func TestDecisionString(t *testing.T) {
	for d, want := range map[ordering.Decision]string{ordering.Apply: "apply", ordering.Duplicate: "duplicate", ordering.Stale: "stale", ordering.Gap: "gap", 0: "unknown"} {
		if d.String() != want {
			t.Fatalf("%d.String() = %q, want %q", d, d.String(), want)
		}
	}
}

func TestConcurrentSameSubjectExactlyOnce(t *testing.T) {
	// Many goroutines deliver every event of a few subjects several times,
	// in any order, with hold: each (subject, sequence) is applied exactly
	// once and in order, on the Memory fast path and on the State
	// interface path.
	for _, generic := range []bool{false, true} {
		t.Run(fmt.Sprintf("generic=%v", generic), func(t *testing.T) { concurrentExactlyOnce(t, generic) })
	}
}

func concurrentExactlyOnce(t *testing.T, generic bool) {
	ctx := context.Background()
	cfg := ordering.Config{Gap: ordering.GapHold, MaxHeld: 100000}
	if generic {
		m, err := ordering.NewMemory(ordering.MemoryConfig{})
		if err != nil {
			t.Fatal(err)
		}
		cfg.State = opaqueState{m}
	}
	g := mustGuard(t, cfg)
	const subjects, events, copies, workers = 4, 200, 3, 16
	var mu sync.Mutex
	applied := make(map[string][]uint64)
	count := 0
	apply := func(_ context.Context, e *contract.Event) error {
		mu.Lock()
		defer mu.Unlock()
		applied[e.Subject] = append(applied[e.Subject], e.Sequence)
		count++
		return nil
	}
	settle := func(context.Context, *contract.Event, ordering.Outcome, error) {}
	work := make(chan *contract.Event)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range work {
				_, err := g.Process(ctx, e, apply, settle)
				if err != nil {
					t.Errorf("Process: %v", err)
				}
			}
		}()
	}
	for c := 0; c < copies; c++ {
		for i := uint64(events); i >= 1; i-- { // descending: mostly gaps
			for s := 0; s < subjects; s++ {
				work <- ev(fmt.Sprintf("s%d", s), i)
			}
		}
	}
	close(work)
	wg.Wait()
	if count != subjects*events {
		t.Fatalf("applied %d times, want %d (exactly once each)", count, subjects*events)
	}
	for s, seqs := range applied {
		for i, seq := range seqs {
			if seq != uint64(i+1) {
				t.Fatalf("subject %s applied out of order: position %d is %d", s, i, seq)
			}
		}
	}
	if g.Held() != 0 {
		t.Fatalf("Held = %d at the end", g.Held())
	}
}

func mustProcess(t *testing.T, g *ordering.Guard, e *contract.Event, apply ordering.ApplyFunc, settle ordering.SettleFunc) ordering.Outcome {
	t.Helper()
	o, err := g.Process(context.Background(), e, apply, settle)
	if err != nil {
		t.Fatalf("Process(%s/%d): %v", e.Subject, e.Sequence, err)
	}
	return o
}

func TestConcurrentSweepNeverAppliesTwiceOrBackwards(t *testing.T) {
	// Workers deliver shuffled events (some never delivered) while another
	// goroutine moves the clock and sweeps: timeouts skip gaps concurrently
	// with drains. Each subject's applies stay strictly increasing, nothing
	// is applied twice, and every held delivery is settled in the end.
	ctx := context.Background()
	clk := newFakeClock()
	g := mustGuard(t, ordering.Config{Gap: ordering.GapHold, MaxHeld: 100000, HoldTimeout: time.Second, Clock: clk})
	var mu sync.Mutex
	last := map[string]uint64{}
	apply := func(_ context.Context, e *contract.Event) error {
		mu.Lock()
		defer mu.Unlock()
		if e.Sequence <= last[e.Subject] {
			t.Errorf("subject %s: applied %d after %d", e.Subject, e.Sequence, last[e.Subject])
		}
		last[e.Subject] = e.Sequence
		return nil
	}
	var settledN, heldN atomic.Int64
	settle := func(context.Context, *contract.Event, ordering.Outcome, error) { settledN.Add(1) }
	var evs []*contract.Event
	for s := 0; s < 8; s++ {
		for q := uint64(1); q <= 100; q++ {
			if q%17 == 0 {
				continue // lost for good: only a timeout gets past it
			}
			evs = append(evs, ev(fmt.Sprint("s", s), q))
		}
	}
	for i := len(evs) - 1; i > 0; i-- { // deterministic shuffle
		j := (i * 7919) % (i + 1)
		evs[i], evs[j] = evs[j], evs[i]
	}
	stop := make(chan struct{})
	var sweeper sync.WaitGroup
	sweeper.Add(1)
	go func() {
		defer sweeper.Done()
		for {
			select {
			case <-stop:
				return
			default:
				clk.Advance(100 * time.Millisecond)
				g.Sweep(ctx)
			}
		}
	}()
	var wg sync.WaitGroup
	work := make(chan *contract.Event)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range work {
				o, err := g.Process(ctx, e, apply, settle)
				if err != nil {
					t.Errorf("Process: %v", err)
				}
				if o.Held {
					heldN.Add(1)
				}
			}
		}()
	}
	for _, e := range evs {
		work <- e
	}
	close(work)
	wg.Wait()
	close(stop)
	sweeper.Wait()
	// Every held event has now waited past the timeout: one sweep must
	// skip every gap of every subject, not one gap per subject.
	clk.Advance(time.Hour)
	g.Sweep(ctx)
	if g.Held() != 0 {
		t.Fatalf("%d deliveries still held after the final sweep", g.Held())
	}
	if settledN.Load() != heldN.Load() {
		t.Fatalf("%d held, %d settled: every held delivery must be settled once", heldN.Load(), settledN.Load())
	}
	for s, l := range last {
		if l != 100 {
			t.Fatalf("subject %s ends at %d, want 100", s, l)
		}
	}
}

// TestSweepSkipsEveryTimedOutGap holds events behind two gaps of one
// subject; once all of them waited the timeout, a single Sweep skips both
// gaps and applies every held event in order.
func TestSweepSkipsEveryTimedOutGap(t *testing.T) {
	clk := newFakeClock()
	g := mustGuard(t, ordering.Config{Gap: ordering.GapHold, MaxHeld: 100, HoldTimeout: time.Second, OnTimeout: ordering.TimeoutSkip, Clock: clk})
	ctx := context.Background()
	var applied []uint64
	apply := func(_ context.Context, ev *contract.Event) error {
		applied = append(applied, ev.Sequence)
		return nil
	}
	settled := 0
	settle := func(context.Context, *contract.Event, ordering.Outcome, error) { settled++ }
	for _, seq := range []uint64{1, 3, 4, 6, 7} { // 2 and 5 never arrive
		if _, err := g.Process(ctx, ev("acct-1", seq), apply, settle); err != nil && !errors.Is(err, ordering.ErrGap) {
			t.Fatalf("seq %d: %v", seq, err)
		}
	}
	if g.Held() != 4 {
		t.Fatalf("held %d, want 4", g.Held())
	}
	clk.Advance(2 * time.Second)
	if n := g.Sweep(ctx); n != 1 {
		t.Fatalf("Sweep settled %d subjects, want 1", n)
	}
	if g.Held() != 0 || settled != 4 {
		t.Fatalf("held %d settled %d after one sweep, want 0 and 4", g.Held(), settled)
	}
	if want := []uint64{1, 3, 4, 6, 7}; !slices.Equal(applied, want) {
		t.Fatalf("applied %v, want %v", applied, want)
	}
}

// faultyState is a State whose Advance calls fail on demand, in the order
// queued: "before" fails without calling fn (the State is down), "after"
// runs fn and then fails without storing anything (a failed commit),
// "hook" runs hook before taking the subject's lock (another goroutine got
// there first), "" lets the call through. While lastDown is set, Last
// fails.
type faultyState struct {
	ordering.State
	mu       sync.Mutex
	faults   []string
	hook     func()
	lastDown bool
}

func (s *faultyState) Last(ctx context.Context, subject string) (uint64, error) {
	s.mu.Lock()
	down := s.lastDown
	s.mu.Unlock()
	if down {
		return 0, errStateDown
	}
	return s.State.Last(ctx, subject)
}

var errStateDown = contract.New(contract.KindUnavailable, "state", "connection lost")

func (s *faultyState) queue(faults ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, faults...)
}

func (s *faultyState) Advance(ctx context.Context, subject string, fn func(context.Context, uint64) (uint64, error)) error {
	s.mu.Lock()
	fault := ""
	if len(s.faults) > 0 {
		fault, s.faults = s.faults[0], s.faults[1:]
	}
	s.mu.Unlock()
	switch fault {
	case "before":
		return errStateDown
	case "hook":
		s.hook()
	case "after":
		return s.State.Advance(ctx, subject, func(ctx context.Context, last uint64) (uint64, error) {
			if _, err := fn(ctx, last); err != nil {
				return last, err
			}
			return last, errStateDown
		})
	}
	return s.State.Advance(ctx, subject, fn)
}

func newFaultyState(t *testing.T) *faultyState {
	t.Helper()
	m, err := ordering.NewMemory(ordering.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return &faultyState{State: m}
}

// TestSweepDoesNotSkipHeldEventThatJustFailed: a timeout sweep releases a
// held event whose apply fails transiently; it is settled with the error
// for the caller to redeliver, and the same sweep must not then skip its
// sequence to apply the events held behind it: that would make the
// redelivery stale and apply 4 without 3.
func TestSweepDoesNotSkipHeldEventThatJustFailed(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	boom := contract.New(contract.KindUnavailable, "db", "down")
	r := recorder{fail: map[string]error{"s/3": boom}}
	var s settled
	g := mustGuard(t, ordering.Config{Gap: ordering.GapHold, HoldTimeout: time.Second, Clock: clk})
	mustProcess(t, g, ev("s", 1), r.apply, s.settle)
	mustProcess(t, g, ev("s", 3), r.apply, s.settle) // 2 is missing
	mustProcess(t, g, ev("s", 4), r.apply, s.settle)
	clk.Advance(time.Second)
	g.Sweep(ctx) // skips 2; 3 fails
	if got := s.String(); got != "s/3=err:unavailable" || r.got() != "s/1" || g.Held() != 1 {
		t.Fatalf("after the sweep: settled %q applied %q held %d; want 3 failed, 4 still held", got, r.got(), g.Held())
	}
	// 3 has a full HoldTimeout from its failure for its redelivery.
	clk.Advance(time.Second - time.Millisecond)
	if n := g.Sweep(ctx); n != 0 || r.got() != "s/1" {
		t.Fatalf("sweep within the timeout after the failure settled %d, applied %q", n, r.got())
	}
	o, err := g.Process(ctx, ev("s", 3), r.apply, nil)
	if err != nil || o.Decision != ordering.Apply {
		t.Fatalf("redelivery of failed 3: %+v %v, want apply", o, err)
	}
	if got := r.got(); got != "s/1 s/3 s/4" {
		t.Fatalf("applied %q, want 1 3 4", got)
	}
	if got := s.String(); got != "s/3=err:unavailable s/4=apply" {
		t.Fatalf("settled %q", got)
	}
}

// TestDrainFailureRestartsHoldTimeout: the gap fills, the held event right
// after it fails; the events held behind it wait a full HoldTimeout from
// that failure, not from when they were held, so the redelivery of the
// failed event is applied, and only a redelivery that never comes is
// skipped — exactly HoldTimeout after the failure.
func TestDrainFailureRestartsHoldTimeout(t *testing.T) {
	for _, redeliver := range []bool{true, false} {
		t.Run(fmt.Sprintf("redelivered=%v", redeliver), func(t *testing.T) {
			ctx := context.Background()
			clk := newFakeClock()
			log, buf := logBuffer()
			boom := contract.New(contract.KindUnavailable, "db", "down")
			r := recorder{fail: map[string]error{"s/3": boom}}
			var s settled
			g := mustGuard(t, ordering.Config{Gap: ordering.GapHold, HoldTimeout: 10 * time.Second, Clock: clk, Logger: log})
			mustProcess(t, g, ev("s", 1), r.apply, s.settle)
			mustProcess(t, g, ev("s", 3), r.apply, s.settle)
			mustProcess(t, g, ev("s", 4), r.apply, s.settle)
			clk.Advance(9 * time.Second)
			mustProcess(t, g, ev("s", 2), r.apply, s.settle) // applies 2; 3 fails; 4 stays held
			if got := s.String(); got != "s/3=err:unavailable" || g.Held() != 1 {
				t.Fatalf("settled %q held %d", got, g.Held())
			}
			clk.Advance(10*time.Second - time.Millisecond) // 4 held 19s ago, 3 failed 10s-1ms ago
			if n := g.Sweep(ctx); n != 0 || r.got() != "s/1 s/2" {
				t.Fatalf("sweep before a full timeout after the failure settled %d, applied %q", n, r.got())
			}
			if redeliver {
				if o, err := g.Process(ctx, ev("s", 3), r.apply, nil); err != nil || o.Decision != ordering.Apply {
					t.Fatalf("redelivery of failed 3: %+v %v, want apply", o, err)
				}
				if got := r.got(); got != "s/1 s/2 s/3 s/4" {
					t.Fatalf("applied %q", got)
				}
				return
			}
			clk.Advance(time.Millisecond)
			if n := g.Sweep(ctx); n != 1 || r.got() != "s/1 s/2 s/4" {
				t.Fatalf("sweep a full timeout after the failure settled %d, applied %q; want 3 skipped", n, r.got())
			}
			found := false
			for _, rec := range decisions(t, buf) {
				if rec["decision"] == "gap skipped" {
					found = rec["reason"] == "waited 10s for sequences 3..3"
				}
			}
			if !found {
				t.Fatalf("no 'gap skipped' decision waiting 10s for 3:\n%s", buf)
			}
		})
	}
}

// TestDirectFailureRestartsHoldTimeout: the missing event arrives late and
// fails — its apply, the State's commit after it, or the State before
// deciding anything (BEGIN, a lock timeout on the subject's row) — while
// events are held behind it. The caller redelivers it; the held events wait
// a full HoldTimeout from that failure before a skip gives up on it.
func TestDirectFailureRestartsHoldTimeout(t *testing.T) {
	for _, fault := range []string{"apply", "commit", "begin"} {
		t.Run(fault, func(t *testing.T) {
			ctx := context.Background()
			clk := newFakeClock()
			st := newFaultyState(t)
			r := recorder{fail: map[string]error{}}
			var s settled
			g := mustGuard(t, ordering.Config{State: st, Gap: ordering.GapHold, HoldTimeout: 10 * time.Second, Clock: clk})
			mustProcess(t, g, ev("s", 1), r.apply, s.settle)
			mustProcess(t, g, ev("s", 3), r.apply, s.settle) // 2 is missing
			clk.Advance(9 * time.Second)
			decided := ordering.Apply
			switch fault {
			case "apply":
				r.fail["s/2"] = contract.New(contract.KindUnavailable, "db", "down")
			case "commit":
				st.queue("after")
			case "begin":
				st.queue("before")
				decided = 0 // nothing decided
			}
			if o, err := g.Process(ctx, ev("s", 2), r.apply, s.settle); err == nil || o.Decision != decided {
				t.Fatalf("failing 2: %+v %v, want decision %d with an error", o, err, decided)
			}
			clk.Advance(10*time.Second - time.Millisecond)
			if n := g.Sweep(ctx); n != 0 || g.Held() != 1 {
				t.Fatalf("sweep within the timeout after the failure settled %d (held %d)", n, g.Held())
			}
			if o, err := g.Process(ctx, ev("s", 2), r.apply, s.settle); err != nil || o.Decision != ordering.Apply {
				t.Fatalf("redelivery of 2: %+v %v, want apply", o, err)
			}
			want := "s/1 s/2 s/3"
			if fault == "commit" {
				want = "s/1 s/2 s/2 s/3" // the first apply ran; its commit failed
			}
			if got := r.got(); got != want {
				t.Fatalf("applied %q, want %q", got, want)
			}
			if got := s.String(); got != "s/3=apply" {
				t.Fatalf("settled %q", got)
			}
		})
	}
}

// TestUndecidedFailureRestartsOnlyForTheGap: when an event fails before it
// is decided — the State fails first, or the caller's own checks do and it
// reports the event with Failed — the wait of the events held behind a gap
// restarts only for an event the gap waits for — above the last applied
// sequence and below the lowest held — not for a duplicate, a stale event
// or one behind the held events, whose failure must not postpone the skip.
// When the last applied sequence cannot be read either, an event below the
// lowest held restarts the wait: it may be the missing one.
func TestUndecidedFailureRestartsOnlyForTheGap(t *testing.T) {
	for _, via := range []string{"state", "caller"} {
		t.Run(via, func(t *testing.T) { undecidedFailure(t, via) })
	}
}

func undecidedFailure(t *testing.T, via string) {
	for _, tc := range []struct {
		name     string
		seq      uint64
		lastDown bool
		restarts bool
	}{
		{"missing", 3, false, true},
		{"missing, Last down", 3, true, true},
		{"duplicate", 2, false, false},
		{"stale", 1, false, false},
		{"duplicate, Last down", 2, true, true},
		{"held", 5, false, false},
		{"behind the held", 6, false, false},
		{"behind the held, Last down", 6, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			clk := newFakeClock()
			st := newFaultyState(t)
			var r recorder
			var s settled
			g := mustGuard(t, ordering.Config{State: st, Gap: ordering.GapHold, HoldTimeout: 10 * time.Second, Clock: clk})
			mustProcess(t, g, ev("s", 1), r.apply, s.settle)
			mustProcess(t, g, ev("s", 2), r.apply, s.settle)
			mustProcess(t, g, ev("s", 5), r.apply, s.settle) // 3 and 4 are missing
			clk.Advance(9 * time.Second)
			st.lastDown = tc.lastDown
			if via == "caller" {
				g.Failed(ctx, ev("s", tc.seq))
			} else {
				st.queue("before")
				if o, err := g.Process(ctx, ev("s", tc.seq), r.apply, s.settle); err == nil || o.Decision != 0 {
					t.Fatalf("Process(%d) with the State down: %+v %v, want an error and no decision", tc.seq, o, err)
				}
			}
			st.lastDown = false
			clk.Advance(time.Second) // 5 held for HoldTimeout
			n := g.Sweep(ctx)
			if tc.restarts {
				if n != 0 || r.got() != "s/1 s/2" {
					t.Fatalf("sweep 1s after the failure settled %d, applied %q; want the wait restarted", n, r.got())
				}
				return
			}
			if n != 1 || r.got() != "s/1 s/2 s/5" || s.String() != "s/5=apply" {
				t.Fatalf("sweep settled %d, applied %q, settled %q; want 3..4 skipped and 5 applied", n, r.got(), s.String())
			}
		})
	}
}

// TestUndecidedMemoryFailureRestartsHoldTimeout: on the Memory state the
// State fails before deciding when it is full; a subject forgotten after
// IdleTTL while events of it are held then cannot take its place back. The
// missing event failing so restarts the wait as any failure of it does.
func TestUndecidedMemoryFailureRestartsHoldTimeout(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	mem, err := ordering.NewMemory(ordering.MemoryConfig{MaxSubjects: 1, IdleTTL: 5 * time.Second, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	var r recorder
	var s settled
	g := mustGuard(t, ordering.Config{State: mem, Gap: ordering.GapHold, HoldTimeout: 10 * time.Second, Clock: clk})
	mustProcess(t, g, ev("s", 1), r.apply, s.settle)
	mustProcess(t, g, ev("s", 3), r.apply, s.settle) // 2 is missing
	clk.Advance(6 * time.Second)
	mustProcess(t, g, ev("t", 1), r.apply, s.settle) // s is forgotten
	clk.Advance(3 * time.Second)
	if _, err := g.Process(ctx, ev("s", 2), r.apply, s.settle); !errors.Is(err, contract.ErrOverloaded) {
		t.Fatalf("Process(s/2) on a full state: %v, want KindOverloaded", err)
	}
	clk.Advance(2 * time.Second) // t is idle; 3 held for 11s, 2 failed 2s ago
	if n := g.Sweep(ctx); n != 0 {
		t.Fatalf("sweep 2s after the missing event failed settled %d (applied %q)", n, r.got())
	}
}

// TestDrainStateFailureRestartsHoldTimeout: when the State fails as a held
// event is released, the event is settled with the State's error and is
// missing again: the events behind it wait a full HoldTimeout too.
func TestDrainStateFailureRestartsHoldTimeout(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	st := newFaultyState(t)
	var r recorder
	var s settled
	g := mustGuard(t, ordering.Config{State: st, Gap: ordering.GapHold, HoldTimeout: 10 * time.Second, Clock: clk})
	mustProcess(t, g, ev("s", 1), r.apply, s.settle)
	mustProcess(t, g, ev("s", 3), r.apply, s.settle)
	mustProcess(t, g, ev("s", 4), r.apply, s.settle)
	clk.Advance(9 * time.Second)
	st.queue("", "before") // 2 applies; the State is down when 3 is released
	mustProcess(t, g, ev("s", 2), r.apply, s.settle)
	if got := s.String(); got != "s/3=err:unavailable" {
		t.Fatalf("settled %q", got)
	}
	clk.Advance(10*time.Second - time.Millisecond)
	if n := g.Sweep(ctx); n != 0 {
		t.Fatalf("sweep within the timeout after the failure settled %d", n)
	}
	mustProcess(t, g, ev("s", 3), r.apply, nil)
	if got := r.got(); got != "s/1 s/2 s/3 s/4" {
		t.Fatalf("applied %q", got)
	}
}

// TestHeldDespiteStateFailureAfterDecision: the State fails after the
// Guard held a gap event (a lost commit). The gap stored nothing, so the
// hold stands: Process answers Held with no error — not the State's error
// too, which would have the caller redeliver or dead-letter a delivery that
// is also settled later — and the event is applied once the gap fills.
func TestHeldDespiteStateFailureAfterDecision(t *testing.T) {
	ctx := context.Background()
	st := newFaultyState(t)
	log, buf := logBuffer()
	var r recorder
	var s settled
	g := mustGuard(t, ordering.Config{State: st, Gap: ordering.GapHold, Logger: log})
	st.queue("after")
	o, err := g.Process(ctx, ev("s", 2), r.apply, s.settle)
	if err != nil || o.Decision != ordering.Gap || !o.Held {
		t.Fatalf("Process(2) with a failed commit: %+v %v, want held and no error", o, err)
	}
	mustProcess(t, g, ev("s", 1), r.apply, s.settle)
	if r.got() != "s/1 s/2" || s.String() != "s/2=apply" || g.Held() != 0 {
		t.Fatalf("applied %q settled %q held %d", r.got(), s.String(), g.Held())
	}
	found := false
	for _, rec := range decisions(t, buf) {
		found = found || rec["decision"] == "state error ignored"
	}
	if !found {
		t.Fatalf("the ignored State error is not logged:\n%s", buf)
	}
	// Without a settle func nothing is held: the State's error is returned.
	st.queue("after")
	if _, err := g.Process(ctx, ev("s", 4), r.apply, nil); !errors.Is(err, contract.ErrUnavailable) {
		t.Fatalf("unheld gap with a failed commit: %v, want the State's error", err)
	}
}

// cappedState records sequences up to max and refuses greater ones with
// KindInvalid, as pgstate does above math.MaxInt64, without saying so;
// boundedState also declares it (ordering.BoundedState).
type cappedState struct {
	ordering.State
	max uint64
}

func (s cappedState) Advance(ctx context.Context, subject string, fn func(context.Context, uint64) (uint64, error)) error {
	return s.State.Advance(ctx, subject, func(ctx context.Context, last uint64) (uint64, error) {
		next, err := fn(ctx, last)
		if err == nil && next > s.max {
			return last, contract.New(contract.KindInvalid, "capped.advance", "sequence above the stored range").WithCode("ordering.sequence_range")
		}
		return next, err
	})
}

type boundedState struct{ cappedState }

func (s boundedState) MaxSequence() uint64 { return s.max }

func newCappedState(t *testing.T, max uint64) cappedState {
	t.Helper()
	m, err := ordering.NewMemory(ordering.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return cappedState{State: m, max: max}
}

// TestSequenceAboveBoundedStateRefusedUpFront: on a BoundedState an event
// above MaxSequence can never be recorded: it is refused at once, with a
// permanent ErrInvalidEvent, neither applied nor held.
func TestSequenceAboveBoundedStateRefusedUpFront(t *testing.T) {
	ctx := context.Background()
	st := boundedState{newCappedState(t, 10)}
	var r recorder
	var s settled
	g := mustGuard(t, ordering.Config{State: st, Gap: ordering.GapHold})
	for _, seq := range []uint64{11, 12} { // 11 would be next, 12 a gap
		if seq == 11 {
			if err := st.Advance(ctx, "s", func(context.Context, uint64) (uint64, error) { return 10, nil }); err != nil {
				t.Fatal(err)
			}
		}
		o, err := g.Process(ctx, ev("s", seq), r.apply, s.settle)
		if !errors.Is(err, ordering.ErrInvalidEvent) || contract.Retryable(err) || o.Held {
			t.Fatalf("seq %d above MaxSequence: %+v %v, want a permanent ErrInvalidEvent", seq, o, err)
		}
	}
	if r.got() != "" || g.Held() != 0 || s.String() != "" {
		t.Fatalf("applied %q held %d settled %q", r.got(), g.Held(), s.String())
	}
	mustProcess(t, g, ev("t", 10), r.apply, s.settle) // at the bound: held as usual
	if g.Held() != 1 {
		t.Fatalf("Held = %d, want sequence 10 held", g.Held())
	}
}

// TestTimeoutSkipRefusedByStateSettlesHeldEvents: a State that does not
// declare its bound refuses a timeout skip for good (KindInvalid): the held
// events it concerns are settled with that permanent error instead of being
// held forever, failing every sweep. A transient State error leaves them
// held for the next sweep.
func TestTimeoutSkipRefusedByStateSettlesHeldEvents(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	log, buf := logBuffer()
	st := &faultyState{State: newCappedState(t, 10)}
	var r recorder
	var s settled
	g := mustGuard(t, ordering.Config{State: st, Gap: ordering.GapHold, HoldTimeout: time.Second, Clock: clk, Logger: log})
	for _, seq := range []uint64{13, 12, 15} { // skipping to 11 is refused
		mustProcess(t, g, ev("s", seq), r.apply, s.settle)
	}
	clk.Advance(time.Second)
	st.queue("before")
	if n := g.Sweep(ctx); n != 0 || g.Held() != 3 || s.String() != "" {
		t.Fatalf("sweep with the State down settled %d, held %d, settled %q; want all kept for the next sweep", n, g.Held(), s.String())
	}
	if n := g.Sweep(ctx); n != 1 || g.Held() != 0 {
		t.Fatalf("Sweep = %d, held %d; want the refused events settled", n, g.Held())
	}
	if got := s.String(); got != "s/12=err:ordering.sequence_range s/13=err:ordering.sequence_range s/15=err:ordering.sequence_range" {
		t.Fatalf("settled %q, want each held event with the State's permanent error", got)
	}
	if r.got() != "" {
		t.Fatalf("applied %q", r.got())
	}
	n := 0
	for _, rec := range decisions(t, buf) {
		if rec["decision"] == "gap: held event refused" {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("%d 'gap: held event refused' records, want 3:\n%s", n, buf)
	}
}

// TestTimeoutSkipRechecksUnderLock: a sweep finds a subject timed out, but
// before its skip takes the subject's lock another goroutine changes the
// picture: the missing event arrives and fails (restarting the wait), or an
// event below the lowest held one is held. The skip, checked again under
// the lock, does not happen: it would turn the failed event's redelivery
// stale, or record the newly held event as applied without applying it.
func TestTimeoutSkipRechecksUnderLock(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fail    bool   // 3 is the missing event and fails; else 2 and 3 are missing
		applied string // in the end
		settled string
	}{
		{name: "missing event failed", fail: true, applied: "s/1 s/2 s/3 s/4", settled: "s/4=apply"},
		{name: "lower event held", applied: "s/1 s/3 s/4", settled: "s/3=apply s/4=apply"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			clk := newFakeClock()
			st := newFaultyState(t)
			r := recorder{fail: map[string]error{}}
			var s settled
			g := mustGuard(t, ordering.Config{State: st, Gap: ordering.GapHold, HoldTimeout: time.Second, Clock: clk})
			mustProcess(t, g, ev("s", 1), r.apply, s.settle)
			if tc.fail {
				mustProcess(t, g, ev("s", 2), r.apply, s.settle) // 3 is the missing one
				r.fail["s/3"] = contract.New(contract.KindUnavailable, "db", "down")
			}
			mustProcess(t, g, ev("s", 4), r.apply, s.settle)
			clk.Advance(time.Second)
			st.hook = func() {
				// 3 is processed a moment before the sweep read the clock,
				// so its own Process finds nothing timed out.
				clk.Advance(-time.Millisecond)
				defer clk.Advance(time.Millisecond)
				o, err := g.Process(ctx, ev("s", 3), r.apply, s.settle)
				if tc.fail != (err != nil) || (!tc.fail && !o.Held) {
					t.Errorf("Process(3) during the sweep: %+v %v", o, err)
				}
			}
			st.queue("hook")
			if n := g.Sweep(ctx); n != 0 {
				t.Fatalf("Sweep = %d: it skipped after the hold changed (applied %q settled %q)", n, r.got(), s.String())
			}
			if tc.fail {
				mustProcess(t, g, ev("s", 3), r.apply, s.settle) // the redelivery
			} else {
				clk.Advance(time.Second)
				g.Sweep(ctx) // skips 2 only
			}
			if r.got() != tc.applied || s.String() != tc.settled || g.Held() != 0 {
				t.Fatalf("applied %q settled %q held %d; want %q and %q", r.got(), s.String(), g.Held(), tc.applied, tc.settled)
			}
		})
	}
}
