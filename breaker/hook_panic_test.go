package breaker_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sadpath/sadpath/breaker"
)

// A hook that panics once loses none of the transitions queued after the
// one it was reporting: the next report delivers them, in order, and the
// reported transitions keep chaining.
func TestPanickingHookLosesNoTransition(t *testing.T) {
	ctx := context.Background()
	clk := &hookClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	r := &rec{}
	var armed atomic.Bool
	b, _ := breaker.New(breaker.Config{Name: "dep", DisableMetrics: true, Clock: clk,
		OpenTimeout: 10 * time.Second, Rand: func() float64 { return 0 },
		OnStateChange: func(_ context.Context, tr breaker.Transition) {
			r.mu.Lock()
			r.trans = append(r.trans, tr)
			r.mu.Unlock()
			if armed.CompareAndSwap(true, false) {
				panic("hook failed")
			}
		}})
	b.Trip(ctx, 10*time.Second, "operator")
	clk.Advance(time.Minute)
	armed.Store(true)
	func() {
		defer func() { recover() }()
		b.ForceOpen(ctx, "incident")
	}()
	b.Reset(ctx)
	t.Log(r.path())
	r.chains(t, b)
}
