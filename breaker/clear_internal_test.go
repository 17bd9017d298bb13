package breaker

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *stepClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *stepClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// A Probe that ends an open delay just as the probe a Trip held off closes
// the breaker (the probe passed its check before the Trip landed, so it
// counts; the close is kept unreported while the delay lasts) must report
// what the breaker became, open>closed, not open>half_open with the breaker
// closed: the last report would say half-open for good.
func TestProbeRacingTheClosingProbeReportsTheClose(t *testing.T) {
	ctx := context.Background()
	clk := &stepClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	var (
		mu    sync.Mutex
		trans []Transition
		b     *Breaker
		once  sync.Once
	)
	inHook, release := make(chan struct{}), make(chan struct{})
	b, err := New(Config{Name: "dep", DisableMetrics: true, Clock: clk,
		OpenTimeout: 10 * time.Second, HalfOpenProbes: 1, Rand: func() float64 { return 0 },
		OnStateChange: func(_ context.Context, tr Transition) {
			mu.Lock()
			trans = append(trans, tr)
			mu.Unlock()
		},
		OnCall: func(ctx context.Context, _ Outcome) {
			// The probe has passed its check and is about to be counted:
			// a Trip lands, holding it off by delay; the probe is counted
			// once Probe has read the state.
			once.Do(func() {
				b.Trip(ctx, 0, "operator")
				close(inHook)
				<-release
			})
		}})
	if err != nil {
		t.Fatal(err)
	}
	b.Trip(ctx, 0, "operator") // closed>open
	b.Probe(ctx)               // open>half_open
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = b.Execute(ctx, func(context.Context) error { return nil })
	}()
	<-inHook // half_open>open: the probe is held off by delay, in flight
	b.afterStateRead = func() {
		b.afterStateRead = nil
		close(release) // the probe is counted and closes the breaker
		<-done
	}
	b.Probe(ctx)
	clk.Advance(time.Hour) // end any delay; the next call reports it
	_ = b.Execute(ctx, func(context.Context) error { return nil })

	mu.Lock()
	defer mu.Unlock()
	prev := StateClosed
	var path []string
	for _, tr := range trans {
		path = append(path, tr.From.String()+">"+tr.To.String())
		if tr.From != prev {
			t.Errorf("transition %v>%v follows %v", tr.From, tr.To, prev)
		}
		prev = tr.To
	}
	if st := b.State(); st != prev || st != StateClosed {
		t.Errorf("last reported %v, State %v, want closed", prev, st)
	}
	if t.Failed() {
		t.Log(strings.Join(path, " "))
	}
}
