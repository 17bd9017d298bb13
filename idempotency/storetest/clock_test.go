package storetest_test

import (
	"testing"
	"time"

	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/idempotency/storetest"
)

var _ idempotency.Clock = (*storetest.FakeClock)(nil)

func TestFakeClock(t *testing.T) {
	start := time.Unix(1000, 0)
	c := storetest.NewFakeClock(start)
	var fired []string
	c.AfterFunc(3*time.Second, func() { fired = append(fired, "3s") })
	c.AfterFunc(time.Second, func() {
		fired = append(fired, "1s")
		// A callback may arm the next timer (a heartbeat does).
		c.AfterFunc(time.Second, func() { fired = append(fired, "1s+1s") })
	})
	stopped := c.AfterFunc(2*time.Second, func() { fired = append(fired, "stopped") })
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop: want true once, then false")
	}
	if c.Waiters() != 2 {
		t.Fatalf("Waiters %d, want 2", c.Waiters())
	}
	c.Advance(999 * time.Millisecond)
	if len(fired) != 0 || !c.Now().Equal(start.Add(999*time.Millisecond)) {
		t.Fatalf("before any deadline: fired %v, now %v", fired, c.Now())
	}
	c.Advance(time.Millisecond)
	c.Advance(2 * time.Second)
	want := []string{"1s", "1s+1s", "3s"}
	if len(fired) != len(want) {
		t.Fatalf("fired %v, want %v", fired, want)
	}
	for i := range want {
		if fired[i] != want[i] {
			t.Fatalf("fired %v, want %v", fired, want)
		}
	}
	if c.Waiters() != 0 {
		t.Fatalf("Waiters %d after all fired", c.Waiters())
	}
}
