package pgstate_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/ordering"
)

// TestNeverAppliedSubjectsLeaveNoRow: an event decided against a subject
// the table does not know — a gap rejected, a sequence beyond MaxGap, a
// handler failure — records nothing, yet each used to commit a row at 0
// for its subject. A producer inventing subjects (a bug, a hostile
// publisher) then grew the table by one row per subject, for good, though
// 0 is what an unknown subject reads anyway. Concurrent first events of
// one subject must still be serialized, and applied subjects kept.
func TestNeverAppliedSubjectsLeaveNoRow(t *testing.T) {
	ctx := context.Background()
	p := pool(t)
	st, name := table(t, p)
	g, err := ordering.New(ordering.Config{State: st, MaxGap: 5})
	if err != nil {
		t.Fatal(err)
	}
	boom := contract.New(contract.KindInvalid, "projection", "bad")
	ok := func(context.Context, *contract.Event) error { return nil }
	failing := func(context.Context, *contract.Event) error { return boom }
	ev := func(subject string, seq uint64) *contract.Event {
		return &contract.Event{ID: fmt.Sprint(subject, seq), Source: "/t", SpecVersion: "1.0", Type: "t", Subject: subject, Sequence: seq}
	}
	for i := 0; i < 20; i++ {
		if _, err := g.Process(ctx, ev(fmt.Sprint("gap-", i), 3), ok, nil); !errors.Is(err, ordering.ErrGap) {
			t.Fatalf("gap: %v", err)
		}
		if _, err := g.Process(ctx, ev(fmt.Sprint("far-", i), 100), ok, nil); !errors.Is(err, ordering.ErrInvalidEvent) {
			t.Fatalf("far: %v", err)
		}
		if _, err := g.Process(ctx, ev(fmt.Sprint("fail-", i), 1), failing, nil); !errors.Is(err, boom) {
			t.Fatalf("failing: %v", err)
		}
	}
	// Many first events of one new subject at once: one applies.
	var wg sync.WaitGroup
	var mu sync.Mutex
	applied := 0
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seq := uint64(1)
			if i%2 == 1 {
				seq = 2 // a gap, until 1 is applied
			}
			o, err := g.Process(ctx, ev("race", seq), ok, nil)
			if err == nil && o.Decision == ordering.Apply {
				mu.Lock()
				applied++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if applied < 1 || applied > 2 {
		t.Fatalf("%d applies of race/1 and race/2, want 1 or 2 (1, then maybe 2)", applied)
	}
	var rows int
	if err := p.QueryRow(ctx, "SELECT count(*) FROM "+name).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Fatalf("%d rows, want 1 (the applied subject only)", rows)
	}
	if last, err := st.Last(ctx, "race"); err != nil || last != uint64(applied) {
		t.Fatalf("race: last %d %v, want %d", last, err, applied)
	}
}
