package idempotency_test

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/sadpath/sadpath/idempotency"
)

// inProgressStore answers every claim InProgress with a long remaining lease
// (an owner that keeps heartbeating), and cancels the waiter after n polls.
type inProgressStore struct {
	idempotency.Store
	n      int
	cancel context.CancelFunc
	mu     sync.Mutex
	claims int
}

func (s *inProgressStore) Claim(ctx context.Context, req idempotency.ClaimRequest) (idempotency.Claim, error) {
	s.mu.Lock()
	s.claims++
	if s.claims == s.n {
		s.cancel()
	}
	s.mu.Unlock()
	return idempotency.Claim{Status: idempotency.InProgress, Token: 1, LeaseRemaining: 30 * time.Second}, nil
}

// recClock fires every timer at once (in a goroutine) and records the delays asked for.
type recClock struct {
	mu     sync.Mutex
	delays []time.Duration
}

type nopTimer struct{}

func (nopTimer) Stop() bool { return false }

func (c *recClock) Now() time.Time { return epoch }
func (c *recClock) AfterFunc(d time.Duration, f func()) idempotency.Timer {
	c.mu.Lock()
	c.delays = append(c.delays, d)
	c.mu.Unlock()
	go f()
	return nopTimer{}
}

// A waiter whose MaxPollInterval is "unbounded" (the lease bounds each wait)
// must never poll with a zero or negative delay: after ~40 doublings of
// 10ms the delay overflows and the waiter busy-polls the store.
// A huge MaxPollInterval ("the lease bounds the wait") must not make the
// doubling poll delay overflow into a busy loop.
func TestDoWaitPollBackoffSaturates(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := &inProgressStore{n: 80, cancel: cancel}
	clk := &recClock{}
	ex, err := idempotency.New(idempotency.Config{
		Store: st, Clock: clk, Duplicate: idempotency.Wait,
		Lease: 30 * time.Second, PollInterval: 10 * time.Millisecond,
		MaxPollInterval: time.Duration(math.MaxInt64),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = idempotency.Do(ctx, ex, idempotency.Key{Scope: "s", Key: "k"}, "fp", func(context.Context) (int, error) {
		t.Error("duplicate ran")
		return 0, nil
	})
	if err == nil {
		t.Fatal("want an error once the context ends")
	}
	clk.mu.Lock()
	defer clk.mu.Unlock()
	for i, d := range clk.delays {
		if d <= 0 {
			t.Fatalf("poll %d waited %v (backoff overflowed); delays: %v", i+1, d, clk.delays)
		}
	}
}
