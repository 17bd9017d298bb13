package ordering_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/ordering"
	"github.com/sadpath/sadpath/ordering/statetest"
)

func TestMemoryConformance(t *testing.T) {
	statetest.Run(t, func(t *testing.T) ordering.State {
		m, err := ordering.NewMemory(ordering.MemoryConfig{})
		if err != nil {
			t.Fatal(err)
		}
		return m
	})
	// MaxBytes below the HugeSubject check's subject: refused, not full.
	t.Run("SmallMaxBytes", func(t *testing.T) {
		statetest.Run(t, func(t *testing.T) ordering.State {
			m, err := ordering.NewMemory(ordering.MemoryConfig{MaxBytes: 64 << 10})
			if err != nil {
				t.Fatal(err)
			}
			return m
		})
	})
}

func TestMemoryConfigInvalid(t *testing.T) {
	for _, tc := range []struct {
		cfg   ordering.MemoryConfig
		field string
	}{
		{ordering.MemoryConfig{MaxSubjects: -1}, "MemoryConfig.MaxSubjects: must be >= 0, got -1"},
		{ordering.MemoryConfig{IdleTTL: -time.Second}, "MemoryConfig.IdleTTL: must be >= 0, got -1s"},
		{ordering.MemoryConfig{MaxBytes: -1}, "MemoryConfig.MaxBytes: must be >= 0, got -1"},
	} {
		_, err := ordering.NewMemory(tc.cfg)
		if !errors.Is(err, contract.ErrInvalid) {
			t.Fatalf("NewMemory(%+v) = %v, want ErrInvalid", tc.cfg, err)
		}
		if ce := contract.As(err); ce.Code != "config.invalid" || ce.Detail != tc.field {
			t.Fatalf("NewMemory(%+v): code %q detail %q, want config.invalid %q", tc.cfg, ce.Code, ce.Detail, tc.field)
		}
		if f := contract.As(err).Fields; len(f) != 1 || !strings.HasPrefix(tc.field, f[0].Name+": ") {
			t.Fatalf("NewMemory(%+v): fields %v, want the field of %q", tc.cfg, f, tc.field)
		}
	}
}

func TestMemoryBoundedFull(t *testing.T) {
	ctx := context.Background()
	m, err := ordering.NewMemory(ordering.MemoryConfig{MaxSubjects: 2})
	if err != nil {
		t.Fatal(err)
	}
	inc := func(_ context.Context, last uint64) (uint64, error) { return last + 1, nil }
	for _, s := range []string{"a", "b"} {
		if err := m.Advance(ctx, s, inc); err != nil {
			t.Fatal(err)
		}
	}
	err = m.Advance(ctx, "c", inc)
	if !errors.Is(err, contract.ErrOverloaded) || contract.As(err).Code != "ordering.state_full" {
		t.Fatalf("third subject in a 2-subject state: %v, want KindOverloaded ordering.state_full", err)
	}
	// Known subjects still advance.
	if err := m.Advance(ctx, "a", inc); err != nil {
		t.Fatalf("known subject on a full state: %v", err)
	}
	if m.Len() != 2 {
		t.Fatalf("Len = %d, want 2", m.Len())
	}
}

func TestMemoryEvictsIdle(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	m, err := ordering.NewMemory(ordering.MemoryConfig{MaxSubjects: 2, IdleTTL: time.Minute, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	inc := func(_ context.Context, last uint64) (uint64, error) { return last + 1, nil }
	_ = m.Advance(ctx, "old", inc)
	clk.Advance(50 * time.Second)
	_ = m.Advance(ctx, "recent", inc)
	if err := m.Advance(ctx, "new", inc); !errors.Is(err, contract.ErrOverloaded) {
		t.Fatalf("nobody idle for IdleTTL yet: %v, want ErrOverloaded", err)
	}
	clk.Advance(20 * time.Second) // "old" idle 70s, "recent" 20s
	if err := m.Advance(ctx, "new", inc); err != nil {
		t.Fatalf("with an idle subject: %v", err)
	}
	if last, _ := m.Last(ctx, "old"); last != 0 {
		t.Fatalf("evicted subject Last = %d, want 0 (forgotten)", last)
	}
	if last, _ := m.Last(ctx, "recent"); last != 1 {
		t.Fatalf("recent subject Last = %d, want 1 (kept)", last)
	}
}
