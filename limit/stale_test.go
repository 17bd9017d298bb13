package limit

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/limit/limittest"
)

// stallClock is a manual clock whose next Now, once armed, reads the time
// and then blocks until released: the call acts on a reading that later
// calls overtake, as a goroutine preempted (or queued on a lock) between
// reading the clock and updating the bucket does.
type stallClock struct {
	*limittest.Clock
	armed   atomic.Bool
	read    chan struct{}
	release chan struct{}
}

func newStallClock() *stallClock {
	return &stallClock{Clock: limittest.NewClock(epoch), read: make(chan struct{}), release: make(chan struct{})}
}

func (c *stallClock) Now() time.Time {
	t := c.Clock.Now()
	if c.armed.CompareAndSwap(true, false) {
		close(c.read)
		<-c.release
	}
	return t
}

// stale runs take in a goroutine that reads the clock now, lets the test
// run overtake (advancing the clock and taking tokens) before it goes on,
// and returns take's result.
func (c *stallClock) stale(take func() error, overtake func()) error {
	c.armed.Store(true)
	done := make(chan error, 1)
	go func() { done <- take() }()
	<-c.read
	overtake()
	close(c.release)
	return <-done
}

// x/time/rate moves a bucket's clock back to the time a call passes when
// that time is older than the bucket's, and counts the refill between the
// two again at the next call. Take read the clock before the bucket's
// lock, so concurrent calls passed times out of order all the time: under
// 64 goroutines a Wait-mode Limiter of 1000/s let through up to 1.9 times
// its rate. A bucket's time now never goes back: a call whose reading was
// overtaken acts at the bucket's time.
func TestLimiterStaleClockReadingGrantsNoExtraTokens(t *testing.T) {
	ctx := context.Background()
	t.Run("reject", func(t *testing.T) {
		clk := newStallClock()
		l, _ := NewLimiter(LimiterConfig{Rate: 1, Burst: 10, Clock: clk})
		granted := 0
		take := func() {
			if l.Take(ctx) == nil {
				granted++
			}
		}
		for range 5 {
			take()
		}
		// Read at 0s, acting after another call at 4s.
		if err := clk.stale(func() error { return l.Take(ctx) }, func() { clk.Advance(4 * time.Second); take() }); err == nil {
			granted++
		}
		for range 20 {
			take()
		}
		if granted != 14 {
			t.Fatalf("%d calls granted within 4s, want Burst + 4s×Rate = 14", granted)
		}
	})
	t.Run("wait", func(t *testing.T) {
		clk := newStallClock()
		l, _ := NewLimiter(LimiterConfig{Rate: 1, Burst: 2, Mode: Wait, MaxWait: time.Second, Clock: clk})
		for range 2 {
			if err := l.Take(ctx); err != nil {
				t.Fatal(err)
			}
		}
		// Read at 0s, reserving (a token due 0.5s later) after a call
		// at 1.5s took the token refilled by then.
		waited := make(chan error, 1)
		clk.armed.Store(true)
		go func() { waited <- l.Take(ctx) }()
		<-clk.read
		clk.Advance(1500 * time.Millisecond)
		if err := l.Take(ctx); err != nil {
			t.Fatal(err)
		}
		close(clk.release)
		clk.BlockUntilTimers(1)
		// The bucket is half a token in debt: the next token is due in
		// 1.5s, past MaxWait, so the call is refused at once.
		err := l.Take(ctx)
		wantErr(t, err, contract.KindRateLimited, CodeRateLimited)
		if d, _ := contract.RetryAfter(err); d != 1500*time.Millisecond {
			t.Errorf("retry after %v, want 1.5s", d)
		}
		clk.Advance(500 * time.Millisecond)
		if err := <-waited; err != nil {
			t.Fatalf("waiter: %v", err)
		}
	})
}

// The same through a KeyedLimiter, whose Take reads the clock before it
// looks the key up.
func TestKeyedLimiterStaleClockReadingGrantsNoExtraTokens(t *testing.T) {
	ctx := context.Background()
	clk := newStallClock()
	k, _ := NewKeyedLimiter(KeyedConfig{Limiter: LimiterConfig{Rate: 1, Burst: 10, Clock: clk}})
	granted := 0
	take := func() {
		if k.Take(ctx, "client") == nil {
			granted++
		}
	}
	for range 5 {
		take()
	}
	if err := clk.stale(func() error { return k.Take(ctx, "client") }, func() { clk.Advance(4 * time.Second); take() }); err == nil {
		granted++
	}
	for range 20 {
		take()
	}
	if granted != 14 {
		t.Fatalf("%d calls granted within 4s, want Burst + 4s×Rate = 14", granted)
	}
}

// A key's last use, which decides when it is idle, is not moved back by a
// call whose reading was overtaken either: that call used to record its
// older time, so the key was forgotten as idle too early, before its bucket
// had refilled, and came back with tokens it would not have had.
func TestKeyedLimiterStaleClockReadingKeepsLastUse(t *testing.T) {
	ctx := context.Background()
	clk := newStallClock()
	k, _ := NewKeyedLimiter(KeyedConfig{Limiter: LimiterConfig{Rate: 1, Burst: 10, Clock: clk}, MaxKeys: 16, IdleTimeout: 10 * time.Second})
	granted := 0
	take := func() {
		if k.Take(ctx, "client") == nil {
			granted++
		}
	}
	for range 10 {
		take()
	}
	// Read at 0s, acting after another call at 4s: the key was last used at 4s.
	if err := clk.stale(func() error { return k.Take(ctx, "client") }, func() { clk.Advance(4 * time.Second); take() }); err == nil {
		granted++
	}
	clk.Advance(6500 * time.Millisecond)
	_ = k.Take(ctx, "other") // a new key drops the keys idle for more than 10s
	for range 20 {
		take()
	}
	if granted != 20 {
		t.Fatalf("%d calls granted within 10.5s, want Burst + 10.5s×Rate rounded down = 20", granted)
	}
}
