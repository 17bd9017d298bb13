package ordering_test

import (
	"context"
	"testing"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/ordering"
	"github.com/sadpath/sadpath/ordering/statetest"
)

// TestZeroMemoryIsUsable: a Memory not built by NewMemory (&ordering.Memory{}
// passed as Config.State, as Latest's zero value is used) had a MaxBytes of
// 0: it refused every subject as one that "can never be remembered", an
// error matching ErrInvalidEvent, and a consumer dead-lettered every event
// at its first delivery. The zero value is now the default Memory, as
// NewMemory(MemoryConfig{}) returns.
func TestZeroMemoryIsUsable(t *testing.T) {
	statetest.Run(t, func(*testing.T) ordering.State { return &ordering.Memory{} })

	ctx := context.Background()
	g, err := ordering.New(ordering.Config{State: &ordering.Memory{}})
	if err != nil {
		t.Fatal(err)
	}
	apply := func(context.Context, *contract.Event) error { return nil }
	for _, tc := range []struct {
		seq  uint64
		want ordering.Decision
	}{{1, ordering.Apply}, {2, ordering.Apply}, {2, ordering.Duplicate}, {1, ordering.Stale}} {
		o, err := g.Process(ctx, &contract.Event{ID: "x", Source: "/s", Subject: "acct", Sequence: tc.seq}, apply, nil)
		if err != nil || o.Decision != tc.want {
			t.Fatalf("sequence %d: %+v, %v; want %v", tc.seq, o, err, tc.want)
		}
	}
	if n := g.State().(*ordering.Memory).Len(); n != 1 {
		t.Fatalf("Len %d, want 1", n)
	}
}
