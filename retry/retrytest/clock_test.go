package retrytest_test

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/sadpath/sadpath/retry"
	"github.com/sadpath/sadpath/retry/retrytest"
)

var _ retry.Clock = (*retrytest.Clock)(nil)

func TestClockSleepAdvancesWithoutWaiting(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := retrytest.NewClockAt(start)
	real0 := time.Now()
	if err := c.Sleep(context.Background(), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := c.Sleep(context.Background(), -time.Second); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Minute)
	if got := c.Now(); !got.Equal(start.Add(time.Hour + time.Minute)) {
		t.Errorf("Now = %v, want start+1h1m", got)
	}
	if got := c.Sleeps(); len(got) != 2 || got[0] != time.Hour || got[1] != -time.Second {
		t.Errorf("Sleeps = %v", got)
	}
	if c.Slept() != time.Hour {
		t.Errorf("Slept = %v, want 1h (negative sleeps count as 0)", c.Slept())
	}
	if time.Since(real0) > 10*time.Second {
		t.Error("Sleep waited on real time")
	}
}

func TestClockSleepHonoursContext(t *testing.T) {
	c := retrytest.NewClock()
	before := c.Now()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Sleep(ctx, time.Second); err != context.Canceled {
		t.Errorf("Sleep on a done ctx = %v, want context.Canceled", err)
	}
	if !c.Now().Equal(before) || len(c.Sleeps()) != 0 {
		t.Error("a canceled Sleep advanced the clock")
	}
	// OnSleep can end the context during a sleep: Sleep reports it.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	c.OnSleep(func(time.Duration) { cancel2() })
	if err := c.Sleep(ctx2, time.Second); err != context.Canceled {
		t.Errorf("Sleep canceled by OnSleep = %v, want context.Canceled", err)
	}
}

// TestClockSleptSaturates: sleeps near the largest Duration (a policy with
// no real time bound) sum to it instead of wrapping negative.
func TestClockSleptSaturates(t *testing.T) {
	c := retrytest.NewClockAt(time.Unix(0, 0))
	for range 3 {
		_ = c.Sleep(context.Background(), math.MaxInt64/2)
	}
	if got := c.Slept(); got != math.MaxInt64 {
		t.Errorf("Slept = %v after 3 sleeps of MaxInt64/2, want the largest Duration", got)
	}
}

func TestClockConcurrent(t *testing.T) {
	c := retrytest.NewClockAt(time.Unix(0, 0))
	var wg sync.WaitGroup
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				_ = c.Sleep(context.Background(), time.Millisecond)
				_ = c.Now()
			}
		}()
	}
	wg.Wait()
	if got := c.Now(); !got.Equal(time.Unix(0, 0).Add(3200 * time.Millisecond)) {
		t.Errorf("Now = %v after 3200 sleeps of 1ms", got)
	}
	if len(c.Sleeps()) != 3200 {
		t.Errorf("%d sleeps recorded, want 3200", len(c.Sleeps()))
	}
}
