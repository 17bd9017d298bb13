package retry_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sadpath/sadpath/retry"
	"github.com/sadpath/sadpath/retry/retrytest"
)

func TestTokenBucket(t *testing.T) {
	b, err := retry.NewTokenBucket(retry.TokenBucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if b.Tokens() != 10 || !b.Retry() {
		t.Fatalf("new bucket: %v tokens, Retry %v; want 10, true", b.Tokens(), b.Retry())
	}
	// gRPC: retries only while tokens > max/2.
	for i := 0; i < 4; i++ {
		b.Failure()
	}
	if b.Tokens() != 6 || !b.Retry() {
		t.Errorf("after 4 failures: %v tokens, Retry %v; want 6, true", b.Tokens(), b.Retry())
	}
	b.Failure()
	if b.Tokens() != 5 || b.Retry() {
		t.Errorf("after 5 failures: %v tokens, Retry %v; want 5, false", b.Tokens(), b.Retry())
	}
	b.Success() // +0.1: 5.1 > 5
	if b.Tokens() != 5.1 || !b.Retry() {
		t.Errorf("after a success: %v tokens, Retry %v; want 5.1, true", b.Tokens(), b.Retry())
	}
	for i := 0; i < 100; i++ {
		b.Failure()
	}
	if b.Tokens() != 0 {
		t.Errorf("floor: %v tokens, want 0", b.Tokens())
	}
	for i := 0; i < 1000; i++ {
		b.Success()
	}
	if b.Tokens() != 10 {
		t.Errorf("ceiling: %v tokens, want 10", b.Tokens())
	}
}

func TestRatioBudget(t *testing.T) {
	clk := retrytest.NewClock()
	b, err := retry.NewRatioBudget(retry.RatioBudgetConfig{Ratio: 0.2, MinRetries: 3, Window: 10 * time.Second, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	// Low traffic: the minimum applies.
	b.Call()
	for i := 0; i < 3; i++ {
		if !b.Retry() {
			t.Fatalf("retry %d refused within MinRetries", i+1)
		}
	}
	if b.Retry() {
		t.Fatal("4th retry allowed with 1 call and MinRetries 3")
	}
	// 50 calls: 20 % is 10 retries, 3 are used.
	for i := 0; i < 49; i++ {
		b.Call()
	}
	allowed := 0
	for b.Retry() {
		allowed++
		if allowed > 100 {
			t.Fatal("budget never refuses")
		}
	}
	if allowed != 7 {
		t.Errorf("allowed %d more retries, want 7 (10 - 3)", allowed)
	}
	// Counts decay with the window: a hundred windows later all is forgotten.
	clk.Advance(1000 * time.Second)
	b.Call()
	got := 0
	for b.Retry() {
		got++
	}
	if got != 3 {
		t.Errorf("after a hundred windows: %d retries, want MinRetries 3", got)
	}
	// Half a window later the 3 retries weigh 3/e^0.5 = 1.82: one more fits
	// under MinRetries 3 (2.82), a second would not (3.82).
	clk.Advance(5 * time.Second)
	got = 0
	for b.Retry() {
		got++
	}
	if got != 1 {
		t.Errorf("half a window later: %d retries, want 1", got)
	}
}

// TestRatioBudgetMinRetriesPerWindowAtLowTraffic: with too few calls for
// the ratio to allow anything, MinRetries means MinRetries per Window. The
// minimum was "retries+1 <= MinRetries", which the decaying count only
// satisfies again once back down to MinRetries-1: about MinRetries-1/2 per
// Window, and for MinRetries 1 (1·e^-t back to 0) one failing call per
// Window got its first retry and then none for some 20 Windows.
func TestRatioBudgetMinRetriesPerWindowAtLowTraffic(t *testing.T) {
	const window = 10 * time.Second
	for _, m := range []int{1, 3, 10} {
		t.Run("MinRetries="+strconv.Itoa(m), func(t *testing.T) {
			newBudget := func(clk *retrytest.Clock) *retry.RatioBudget {
				b, err := retry.NewRatioBudget(retry.RatioBudgetConfig{Ratio: 0.1, MinRetries: m, Window: window, Clock: clk})
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			// An empty budget allows a burst of exactly MinRetries.
			clk := retrytest.NewClock()
			b := newBudget(clk)
			b.Call()
			burst := 0
			for b.Retry() && burst <= m {
				burst++
			}
			if burst != m {
				t.Errorf("burst from an empty budget: %d retries, want MinRetries %d", burst, m)
			}

			// One failing call per Window, one retry wanted each time:
			// every one is granted.
			clk = retrytest.NewClock()
			b = newBudget(clk)
			granted := 0
			for range 10 {
				b.Call()
				if b.Retry() {
					granted++
				}
				clk.Advance(window)
			}
			if granted != 10 {
				t.Errorf("one call and retry per Window for 10 Windows: %d retries granted, want 10", granted)
			}

			// Retries wanted all the time, one call per Window: after the
			// burst, MinRetries per Window (Ratio × ~1.6 calls allows none).
			clk = retrytest.NewClock()
			b = newBudget(clk)
			const windows, steps = 100, 1000 // steps per Window
			granted = 0
			for i := range windows * steps {
				if i%steps == 0 {
					b.Call()
				}
				for b.Retry() {
					granted++
				}
				clk.Advance(window / steps)
			}
			want := windows * m
			if granted < want*99/100 || granted > want+m {
				t.Errorf("constant demand for %d Windows: %d retries granted, want about %d (MinRetries per Window, plus the first burst)", windows, granted, want)
			}
		})
	}
}

// TestRetryStorm: a dependency failing 100 % of the time for a period
// sees at most 1.1× its original calls when a budget is set, counted,
// without sleeping. Without a budget it would see MaxAttempts×.
func TestRetryStorm(t *testing.T) {
	const calls, maxAttempts = 2000, 5
	budgets := map[string]func(clk retry.Clock) retry.Budget{
		"none": func(retry.Clock) retry.Budget { return nil },
		"token bucket": func(retry.Clock) retry.Budget {
			b, _ := retry.NewTokenBucket(retry.TokenBucketConfig{})
			return b
		},
		"ratio": func(clk retry.Clock) retry.Budget {
			b, _ := retry.NewRatioBudget(retry.RatioBudgetConfig{Clock: clk})
			return b
		},
	}
	for name, mk := range budgets {
		t.Run(name, func(t *testing.T) {
			clk := retrytest.NewClock()
			p := mustPolicy(t, retry.Config{Clock: clk, Budget: mk(clk), MaxAttempts: maxAttempts,
				Strategy: retry.Constant, InitialDelay: time.Millisecond, MaxElapsedTime: time.Hour})
			var attempts atomic.Int64
			var wg sync.WaitGroup
			const workers = 16
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < calls/workers; i++ {
						clk.Advance(5 * time.Millisecond) // the storm spans 10s of traffic
						_, _ = retry.Do(context.Background(), p, func(context.Context) (int, error) {
							attempts.Add(1)
							return 0, unavailable()
						})
					}
				}()
			}
			wg.Wait()
			ratio := float64(attempts.Load()) / calls
			t.Logf("%s: %d attempts for %d calls (%.3f×)", name, attempts.Load(), calls, ratio)
			if name == "none" {
				if attempts.Load() != calls*maxAttempts {
					t.Errorf("without a budget: %d attempts, want %d", attempts.Load(), calls*maxAttempts)
				}
				return
			}
			if ratio > 1.1 {
				t.Errorf("%d attempts for %d calls: %.3f× > 1.1×", attempts.Load(), calls, ratio)
			}
		})
	}
}
