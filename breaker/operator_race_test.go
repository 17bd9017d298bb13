package breaker_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sadpath/sadpath/breaker"
)

// hookClock is a fake clock whose next Now call can run a hook (once): the
// hook stands for the goroutine being preempted around its clock read.
type hookClock struct {
	mu   sync.Mutex
	t    time.Time
	hook atomic.Pointer[func(time.Time) time.Time]
}

func (c *hookClock) base() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *hookClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
func (c *hookClock) Now() time.Time {
	t := c.base()
	if f := c.hook.Swap(nil); f != nil {
		return (*f)(t)
	}
	return t
}
func (c *hookClock) onNextNow(f func(time.Time) time.Time) { c.hook.Store(&f) }

type rec struct {
	mu    sync.Mutex
	trans []breaker.Transition
}

func (r *rec) path() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s []string
	for _, t := range r.trans {
		s = append(s, t.From.String()+">"+t.To.String())
	}
	return strings.Join(s, " ")
}

func (r *rec) chains(t *testing.T, b *breaker.Breaker) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	prev := breaker.StateClosed
	for _, tr := range r.trans {
		if tr.From != prev {
			t.Errorf("transition %v>%v follows %v", tr.From, tr.To, prev)
		}
		prev = tr.To
	}
	if st := b.State(); st != prev {
		t.Errorf("last reported state %v, State() %v", prev, st)
	}
}

func newHooked(t *testing.T) (*breaker.Breaker, *hookClock, *rec) {
	clk := &hookClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	r := &rec{}
	b, err := breaker.New(breaker.Config{Name: "dep", DisableMetrics: true, Clock: clk,
		OpenTimeout: 10 * time.Second, HalfOpenProbes: 1, Rand: func() float64 { return 0 },
		OnStateChange: func(_ context.Context, tr breaker.Transition) {
			r.mu.Lock()
			r.trans = append(r.trans, tr)
			r.mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	return b, clk, r
}

// ForceClosed reads the state it leaves, then sets the force: a call that
// ends the open delay in between must not leave ForceClosed reporting a
// stale From (it reads again until no change came in between).
func TestForceClosedRacingTheEndOfADelayChains(t *testing.T) {
	ctx := context.Background()
	b, clk, r := newHooked(t)
	b.Trip(ctx, 10*time.Second, "operator") // closed>open
	clk.onNextNow(func(now time.Time) time.Time {
		// ForceClosed has read the clock (delay not over) and is preempted;
		// the delay ends and a call probes and closes the breaker meanwhile.
		clk.Advance(10 * time.Second)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = b.Execute(ctx, func(context.Context) error { return nil })
		}()
		<-done
		return now
	})
	b.ForceClosed(ctx, "migration")
	t.Log(r.path())
	r.chains(t, b)
	b.Reset(ctx)
	t.Log(r.path())
	r.chains(t, b)
}

// Reset reads the underlying state, then drops the force: a call admitted
// before ForceClosed that ends the open delay in between (unreported while
// forced) must not leave Reset handing back a state that is no longer the
// breaker's.
func TestResetRacingAStragglerChains(t *testing.T) {
	ctx := context.Background()
	b, clk, r := newHooked(t)
	b.Trip(ctx, 10*time.Second, "operator") // closed>open

	gIn, gGo, fnIn, fnGo := make(chan struct{}), make(chan struct{}), make(chan struct{}), make(chan struct{})
	clk.onNextNow(func(time.Time) time.Time { // the straggler's clock read in exec
		close(gIn)
		<-gGo
		return clk.base()
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = b.Execute(ctx, func(context.Context) error { close(fnIn); <-fnGo; return nil })
	}()
	<-gIn                                         // admitted past the forced check, reading the clock
	b.ForceClosed(ctx, "migration")               // open>forced_closed
	clk.onNextNow(func(now time.Time) time.Time { // Reset's clock read
		clk.Advance(10 * time.Second)
		close(gGo)
		<-fnIn // the straggler ended the delay (unreported: forced) and probes
		return now
	})
	b.Reset(ctx)
	close(fnGo)
	<-done
	t.Log(r.path())
	r.chains(t, b)
}

// A Trip that finds the half-open probe slots taken holds the probes off by
// delay; when the last probe closes the breaker just after the Trip found
// the slots taken, and before the Trip opened it, the breaker is closed, not
// half-open: the Trip must be reported closed>open, not half_open>open after
// the half_open>closed just reported. Many rounds, so that the probe ends
// in that window in some of them.
func TestTripRacingTheClosingProbeChains(t *testing.T) {
	ctx := context.Background()
	for range 20000 {
		b, clk, r := newHooked(t)
		b.Trip(ctx, 0, "operator") // closed>open
		b.Probe(ctx)               // open>half_open
		in, release, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			_ = b.Execute(ctx, func(context.Context) error { close(in); <-release; return nil })
		}()
		<-in // the probe holds the only slot
		tripped := make(chan struct{})
		go func() {
			defer close(tripped)
			b.Trip(ctx, 0, "operator")
		}()
		close(release)
		<-done
		<-tripped
		clk.Advance(time.Hour) // end any delay; the next call reports it
		_ = b.Execute(ctx, func(context.Context) error { return nil })
		r.chains(t, b)
		if t.Failed() {
			t.Fatal(r.path())
		}
	}
}
