package ordering_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/ordering"
)

// A subject none of whose events was ever applied — every one a rejected
// gap, refused beyond MaxGap, or failed in its handler — has last applied
// sequence 0, the same as a subject never seen: it must not take one of the
// Memory state's MaxSubjects slots. Otherwise MaxSubjects such events (a
// buggy or hostile producer inventing subjects) fill the state for good,
// without IdleTTL, and every new real subject is refused with state_full.
func TestMemoryRemembersOnlyAppliedSubjects(t *testing.T) {
	ctx := context.Background()
	m, err := ordering.NewMemory(ordering.MemoryConfig{MaxSubjects: 3})
	if err != nil {
		t.Fatal(err)
	}
	g := mustGuard(t, ordering.Config{State: m, MaxGap: 5})
	var r recorder
	boom := contract.New(contract.KindInvalid, "projection", "bad")
	for i := 0; i < 10; i++ {
		if _, err := g.Process(ctx, ev(fmt.Sprintf("gap_%d", i), 3), r.apply, nil); !errors.Is(err, ordering.ErrGap) {
			t.Fatalf("gap %d: %v, want ErrGap", i, err)
		}
		if _, err := g.Process(ctx, ev(fmt.Sprintf("far_%d", i), 100), r.apply, nil); !errors.Is(err, ordering.ErrInvalidEvent) {
			t.Fatalf("far %d: %v, want ErrInvalidEvent", i, err)
		}
		failing := func(context.Context, *contract.Event) error { return boom }
		if _, err := g.Process(ctx, ev(fmt.Sprintf("fail_%d", i), 1), failing, nil); !errors.Is(err, boom) {
			t.Fatalf("failing %d: %v, want the handler's error", i, err)
		}
		noop := func(context.Context, uint64) (uint64, error) { return 0, nil }
		if err := m.Advance(ctx, fmt.Sprintf("noop_%d", i), noop); err != nil {
			t.Fatalf("Advance storing nothing %d: %v", i, err)
		}
	}
	if n := m.Len(); n != 0 {
		t.Fatalf("Len = %d after events that applied nothing, want 0", n)
	}
	for _, s := range []string{"a", "b", "c"} {
		if o, err := g.Process(ctx, ev(s, 1), r.apply, nil); err != nil || o.Decision != ordering.Apply {
			t.Fatalf("first event of new subject %s: %+v %v, want applied", s, o, err)
		}
	}
	if got := r.got(); got != "a/1 b/1 c/1" {
		t.Fatalf("applied %q", got)
	}
	// Full now, with applied subjects: those are remembered.
	if _, err := g.Process(ctx, ev("d", 1), r.apply, nil); !errors.Is(err, contract.ErrOverloaded) {
		t.Fatalf("fourth applied subject in a 3-subject state: %v, want ErrOverloaded", err)
	}
	// A known subject's gap does not forget it.
	if _, err := g.Process(ctx, ev("a", 3), r.apply, nil); !errors.Is(err, ordering.ErrGap) {
		t.Fatalf("gap on a: %v", err)
	}
	if last, err := m.Last(ctx, "a"); err != nil || last != 1 {
		t.Fatalf("a: last %d %v, want 1", last, err)
	}
}

// TestMemoryBoundsSubjectBytes: subjects are opaque and may be as long as
// an event allows (a megabyte under package consumer's default). A stream
// of events each applied on a new huge subject (a producer bug, a hostile
// publisher) must not grow the default Memory state to MaxSubjects times
// that — 100 GiB — before it says it is full: it refuses new subjects
// once their bytes reach MaxBytes (64 MiB by default), and forgets idle
// ones for them as it does for MaxSubjects.
func TestMemoryBoundsSubjectBytes(t *testing.T) {
	ctx := context.Background()
	m, err := ordering.NewMemory(ordering.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	g := mustGuard(t, ordering.Config{State: m})
	var r recorder
	huge := func(i int) string { return fmt.Sprintf("%08d", i) + strings.Repeat("x", 1<<20-8) }
	n := 0
	for ; n < 100; n++ {
		if _, err := g.Process(ctx, ev(huge(n), 1), r.apply, nil); err != nil {
			if !errors.Is(err, contract.ErrOverloaded) || contract.As(err).Code != "ordering.state_full" {
				t.Fatalf("subject %d: %v, want ordering.state_full", n, err)
			}
			break
		}
	}
	if n < 60 || n > 64 {
		t.Fatalf("%d subjects of 1 MiB remembered, want the 64 MiB default to stop it near 64", n)
	}
	// Idle subjects make room for bytes as they do for MaxSubjects.
	clk := newFakeClock()
	m2, err := ordering.NewMemory(ordering.MemoryConfig{MaxBytes: 3 << 20, IdleTTL: time.Minute, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	g2 := mustGuard(t, ordering.Config{State: m2, Clock: clk})
	for i := 0; i < 2; i++ {
		if _, err := g2.Process(ctx, ev(huge(i), 1), r.apply, nil); err != nil {
			t.Fatalf("subject %d: %v", i, err)
		}
	}
	if _, err := g2.Process(ctx, ev(huge(2), 1), r.apply, nil); !errors.Is(err, contract.ErrOverloaded) {
		t.Fatalf("third MiB subject in 3 MiB, none idle: %v, want state_full", err)
	}
	clk.Advance(time.Minute)
	if _, err := g2.Process(ctx, ev(huge(2), 1), r.apply, nil); err != nil {
		t.Fatalf("third MiB subject with idle ones to forget: %v", err)
	}
	if m2.Len() != 2 {
		t.Fatalf("Len = %d, want 2 (one idle subject forgotten)", m2.Len())
	}
	if _, err := ordering.NewMemory(ordering.MemoryConfig{MaxBytes: -1}); err == nil || contract.As(err).Detail != "MemoryConfig.MaxBytes: must be >= 0, got -1" {
		t.Fatalf("negative MaxBytes: %v", err)
	}
}

// TestMemoryMaxBytesDefaultScalesWithMaxSubjects: a service that raised
// MaxSubjects for its many ordinary subjects (ids of a few hundred bytes)
// must get that many before state_full, as it did before MaxBytes existed:
// the default byte bound is 64 MiB for the default 100,000 subjects, and
// as much per subject for a larger MaxSubjects, not a fixed 64 MiB that
// would refuse new subjects at a fraction of the count configured.
func TestMemoryMaxBytesDefaultScalesWithMaxSubjects(t *testing.T) {
	ctx := context.Background()
	const max = 150_000
	m, err := ordering.NewMemory(ordering.MemoryConfig{MaxSubjects: max})
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", 400-7)
	applied := func(context.Context, uint64) (uint64, error) { return 1, nil }
	for i := 0; i < max; i++ {
		if err := m.Advance(ctx, fmt.Sprintf("%07d", i)+pad, applied); err != nil {
			t.Fatalf("subject %d of MaxSubjects %d (400 bytes each): %v", i, max, err)
		}
	}
	if m.Len() != max {
		t.Fatalf("Len = %d, want %d", m.Len(), max)
	}
	// MaxSubjects still bounds it.
	if err := m.Advance(ctx, "one-more", applied); !errors.Is(err, contract.ErrOverloaded) {
		t.Fatalf("subject past MaxSubjects: %v, want state_full", err)
	}
	// A MaxSubjects too large to scale by does not overflow the bound.
	huge, err := ordering.NewMemory(ordering.MemoryConfig{MaxSubjects: math.MaxInt})
	if err != nil {
		t.Fatal(err)
	}
	if err := huge.Advance(ctx, "a", applied); err != nil {
		t.Fatalf("MaxSubjects math.MaxInt: %v", err)
	}
}

// TestMemoryRefusesSubjectLargerThanMaxBytes: a subject that would not fit
// in MaxBytes even with the state empty can never be recorded, however
// often it is redelivered or however many subjects go idle: it is the
// event's fault. It is refused as ordering.ErrInvalidEvent (a consumer
// dead-letters it at once), as ordering/pgstate refuses a subject too long
// for its index, not as a retryable state_full a consumer retries until
// MaxAttempts while the subject's later events wait. A subject that fits
// but finds the state full of others still gets state_full: that passes.
func TestMemoryRefusesSubjectLargerThanMaxBytes(t *testing.T) {
	ctx := context.Background()
	const maxBytes = 4 << 10
	m, err := ordering.NewMemory(ordering.MemoryConfig{MaxBytes: maxBytes})
	if err != nil {
		t.Fatal(err)
	}
	applied := func(context.Context, uint64) (uint64, error) { return 1, nil }
	g := mustGuard(t, ordering.Config{State: m})
	var r recorder
	// Longer than MaxBytes itself, and long enough to fit alone but not
	// with the per-subject overhead: neither fits an empty state.
	for _, n := range []int{maxBytes + 1, maxBytes - 1} {
		subject := strings.Repeat("s", n)
		ran := false
		err := m.Advance(ctx, subject, func(context.Context, uint64) (uint64, error) { ran = true; return 1, nil })
		if !errors.Is(err, ordering.ErrInvalidEvent) || contract.Retryable(err) {
			t.Fatalf("Advance on a %d-byte subject, MaxBytes %d: %v; want ErrInvalidEvent, not retryable", n, maxBytes, err)
		}
		if ran {
			t.Fatalf("fn ran for a %d-byte subject that cannot be recorded", n)
		}
		d := contract.As(err).Detail
		if want := fmt.Sprintf("%d bytes", n); !strings.Contains(d, want) || !strings.Contains(d, fmt.Sprintf("MaxBytes %d", maxBytes)) {
			t.Fatalf("detail %q does not name the subject's %s and MaxBytes %d", d, want, maxBytes)
		}
		if o, err := g.Process(ctx, ev(subject, 1), r.apply, nil); !errors.Is(err, ordering.ErrInvalidEvent) || o.Decision != 0 {
			t.Fatalf("Guard on a %d-byte subject: %+v %v; want ErrInvalidEvent before deciding", n, o, err)
		}
		if last, err := m.Last(ctx, subject); err != nil || last != 0 {
			t.Fatalf("Last = %d, %v; want 0", last, err)
		}
	}
	if got := r.got(); got != "" || m.Len() != 0 {
		t.Fatalf("applied %q, Len %d; want nothing", got, m.Len())
	}
	// Subjects that fit still do, and once they fill the state a new one
	// that would fit an emptier state is state_full, retryable by a
	// consumer, not an invalid event.
	big := func(i int) string { return fmt.Sprintf("%04d", i) + strings.Repeat("b", 1500-4) }
	for i := 0; i < 2; i++ {
		if err := m.Advance(ctx, big(i), applied); err != nil {
			t.Fatalf("subject %d of 1500 bytes: %v", i, err)
		}
	}
	err = m.Advance(ctx, big(2), applied)
	if !errors.Is(err, contract.ErrOverloaded) || contract.As(err).Code != "ordering.state_full" || errors.Is(err, ordering.ErrInvalidEvent) {
		t.Fatalf("third 1500-byte subject in a full 4 KiB state: %v; want ordering.state_full", err)
	}
}
