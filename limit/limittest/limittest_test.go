package limittest

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestClockFiresTimersInOrderAtDeadline(t *testing.T) {
	c := NewClock(t0)
	a, _ := c.NewTimer(2 * time.Second)
	b, _ := c.NewTimer(time.Second)
	if c.Timers() != 2 || c.Created() != 2 {
		t.Fatalf("Timers %d Created %d", c.Timers(), c.Created())
	}
	c.Advance(999 * time.Millisecond)
	select {
	case <-b:
		t.Fatal("fired early")
	default:
	}
	c.Advance(time.Millisecond)
	if got := <-b; !got.Equal(t0.Add(time.Second)) {
		t.Fatalf("fired with %v", got)
	}
	c.Set(t0.Add(5 * time.Second))
	if got := <-a; !got.Equal(t0.Add(5 * time.Second)) {
		t.Fatalf("fired with %v", got)
	}
	if c.Timers() != 0 {
		t.Fatalf("Timers = %d", c.Timers())
	}
	c.Set(t0) // never backwards
	if !c.Now().Equal(t0.Add(5 * time.Second)) {
		t.Fatalf("Now = %v went backwards", c.Now())
	}
}

func TestClockStop(t *testing.T) {
	c := NewClock(t0)
	ch, stop := c.NewTimer(time.Second)
	if !stop() {
		t.Fatal("stop of a pending timer = false")
	}
	if stop() {
		t.Fatal("second stop = true")
	}
	c.Advance(time.Hour)
	select {
	case <-ch:
		t.Fatal("stopped timer fired")
	default:
	}
	ch, stop = c.NewTimer(0)
	<-ch // zero duration fires at once
	if stop() {
		t.Fatal("stop of a fired timer = true")
	}
}

func TestClockBlockUntilTimers(t *testing.T) {
	c := NewClock(t0)
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch, _ := c.NewTimer(time.Minute)
			<-ch
		}()
	}
	c.BlockUntilTimers(3)
	c.Advance(time.Minute)
	wg.Wait()
}

func TestProbe(t *testing.T) {
	var p Probe
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			leave := p.Enter()
			<-gate
			leave()
		}()
	}
	for p.Current() != 5 {
		runtime.Gosched()
	}
	close(gate)
	wg.Wait()
	if p.Max() != 5 || p.Current() != 0 || p.Total() != 5 {
		t.Fatalf("Max %d Current %d Total %d, want 5 0 5", p.Max(), p.Current(), p.Total())
	}
}
