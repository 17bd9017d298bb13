package logctx

import (
	"context"
	"log/slog"
	"runtime"
	"testing"
	"time"
)

func TestWithNeverMutatesParent(t *testing.T) {
	parent := With(WithCorrelationID(context.Background(), "p"), slog.Int("a", 1))
	child := With(WithOperation(parent, "op"), slog.Int("b", 2))
	sibling := With(parent, slog.Int("c", 3))
	if Operation(parent) != "" || len(Attrs(parent)) != 1 {
		t.Errorf("parent changed: op=%q attrs=%v", Operation(parent), Attrs(parent))
	}
	if CorrelationID(child) != "p" || Operation(child) != "op" || len(Attrs(child)) != 2 {
		t.Errorf("child: %q %q %v", CorrelationID(child), Operation(child), Attrs(child))
	}
	if a := Attrs(sibling); len(a) != 2 || a[1].Key != "c" {
		t.Errorf("sibling sees %v", a)
	}
	e := WithEntity(child, "payment", "pay_1")
	if k, id := Entity(e); k != "payment" || id != "pay_1" {
		t.Errorf("entity %q %q", k, id)
	}
	if k, id := Entity(child); k != "" || id != "" {
		t.Errorf("child entity changed: %q %q", k, id)
	}
}

func TestNilContext(t *testing.T) {
	for _, ctx := range []context.Context{
		WithCorrelationID(nilCtx, "x"), WithOperation(nilCtx, "x"), WithEntity(nilCtx, "k", "x"), With(nilCtx, slog.Int("a", 1)), With(nilCtx),
	} {
		if ctx == nil {
			t.Fatal("nil context returned")
		}
	}
	if CorrelationID(nilCtx) != "" || Operation(nilCtx) != "" || Attrs(nilCtx) != nil {
		t.Error("getters on nil")
	}
}

type otherKey struct{}

func TestValueCtxIsAContext(t *testing.T) {
	base := context.WithValue(context.Background(), otherKey{}, "v")
	ctx, cancel := context.WithCancel(WithCorrelationID(base, "c"))
	inner := WithOperation(ctx, "op")
	if inner.Value(otherKey{}) != "v" {
		t.Error("other values lost")
	}
	// Cancellation through our node needs no helper goroutine and reaches
	// children derived below it.
	before := runtime.NumGoroutine()
	child, cancelChild := context.WithTimeout(inner, time.Hour)
	defer cancelChild()
	if runtime.NumGoroutine() > before {
		t.Error("context.WithTimeout started a goroutine: the cancel chain is broken")
	}
	cancel()
	select {
	case <-child.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("cancellation did not propagate")
	}
	if CorrelationID(child) != "c" || Operation(child) != "op" {
		t.Error("coordinates lost below a cancel context")
	}
}

func TestWithAllocs(t *testing.T) {
	ctx := context.Background()
	if n := testing.AllocsPerRun(100, func() { _ = WithCorrelationID(ctx, "c") }); n != 1 {
		t.Errorf("WithCorrelationID allocates %v times, want 1", n)
	}
	two := With(ctx, slog.Int("a", 1), slog.Int("b", 2))
	if n := testing.AllocsPerRun(100, func() { _ = With(two, slog.Int("c", 3)) }); n != 1 {
		t.Errorf("With (few attrs) allocates %v times, want 1", n)
	}
	four := With(two, slog.Int("c", 3), slog.Int("d", 4))
	if n := testing.AllocsPerRun(100, func() { _ = With(four, slog.Int("e", 5)) }); n != 2 {
		t.Errorf("With (many attrs) allocates %v times, want 2", n)
	}
	// Appending to a child never shows in a sibling sharing the parent.
	c1, c2 := With(two, slog.Int("x", 1)), With(two, slog.Int("y", 2))
	if a1, a2 := Attrs(c1), Attrs(c2); len(a1) != 3 || len(a2) != 3 || a1[2].Key != "x" || a2[2].Key != "y" || len(Attrs(two)) != 2 {
		t.Errorf("attrs shared: %v %v %v", a1, a2, Attrs(two))
	}
}
