package limit

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/limit/limittest"
)

// TestLimiterWaitModeBoundsWaiters: at a frozen instant 100 goroutines race
// a Wait-mode limiter (10/s, burst 5, max wait 1s). Exactly Burst pass at
// once, exactly Rate×MaxWait = 10 wait (their tokens are due at 0.1s … 1s),
// and the other 85 are refused at once with the delay they would have had.
func TestLimiterWaitModeBoundsWaiters(t *testing.T) {
	clk := limittest.NewClock(epoch)
	l, _ := NewLimiter(LimiterConfig{Rate: 10, Burst: 5, Mode: Wait, MaxWait: time.Second, Clock: clk})
	type result struct {
		err error
		at  time.Time
	}
	results := make(chan result, 100)
	for range 100 {
		go func() {
			err := l.Take(context.Background())
			results <- result{err, clk.Now()}
		}()
	}
	passed, refused := 0, 0
	for passed+refused < 90 {
		r := <-results
		switch {
		case r.err == nil:
			passed++
		case errors.Is(r.err, contract.ErrRateLimited):
			refused++
			if d, _ := contract.RetryAfter(r.err); d <= time.Second {
				t.Errorf("refused with retry-after %v, which was within max wait", d)
			}
		default:
			t.Fatalf("unexpected %v", r.err)
		}
	}
	if passed != 5 || refused != 85 {
		t.Fatalf("passed %d refused %d, want 5 at once and 85 refused", passed, refused)
	}
	clk.BlockUntilTimers(10)
	clk.Advance(time.Second)
	for range 10 {
		if r := <-results; r.err != nil {
			t.Fatalf("waiter: %v", r.err)
		}
	}
	if clk.Created() != 10 {
		t.Fatalf("%d timers created, want 10 (refusals never wait)", clk.Created())
	}
}

// TestBulkheadMiddlewareUnderLoad drives a real HTTP server from many
// clients: the handler never runs more than MaxConcurrent at once, every
// request is either served or answered 503 with Retry-After, and nothing is
// left in flight.
func TestBulkheadMiddlewareUnderLoad(t *testing.T) {
	const n, clients, each = 3, 24, 20
	b, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: n, MaxWaiting: 4, MaxWait: time.Second})
	var probe limittest.Probe
	srv := httptest.NewServer(b.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer probe.Enter()()
		runtimeYield()
		w.WriteHeader(http.StatusNoContent)
	})))
	defer srv.Close()
	client := srv.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = clients
	var served, refused atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				resp, err := client.Get(srv.URL)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusNoContent:
					served.Add(1)
				case http.StatusServiceUnavailable:
					if resp.Header.Get("Retry-After") != "1" {
						t.Errorf("503 without Retry-After 1: %q", resp.Header.Get("Retry-After"))
					}
					refused.Add(1)
				default:
					t.Errorf("status %d", resp.StatusCode)
				}
			}
		}()
	}
	wg.Wait()
	if probe.Max() > n {
		t.Fatalf("handler ran %d at once, bulkhead is %d", probe.Max(), n)
	}
	if served.Load()+refused.Load() != clients*each || int64(probe.Total()) != served.Load() {
		t.Fatalf("served %d refused %d handler runs %d, for %d requests", served.Load(), refused.Load(), probe.Total(), clients*each)
	}
	if b.InFlight() != 0 || b.Waiting() != 0 {
		t.Fatalf("InFlight %d Waiting %d", b.InFlight(), b.Waiting())
	}
	t.Logf("served %d, refused %d, max in flight %d", served.Load(), refused.Load(), probe.Max())
}

func TestNilContextIsBackground(t *testing.T) {
	var ctx context.Context // a nil context must not crash a limiter
	b, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 1})
	if err := b.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	b.Release()
	l, _ := NewLimiter(LimiterConfig{Rate: 1})
	if err := l.Take(ctx); err != nil {
		t.Fatal(err)
	}
	k, _ := NewKeyedLimiter(KeyedConfig{Limiter: LimiterConfig{Rate: 1}})
	if err := k.Take(ctx, "a"); err != nil {
		t.Fatal(err)
	}
}

func TestDurationOfSaturates(t *testing.T) {
	if got := durationOf(1e300); got != time.Duration(1<<63-1) {
		t.Errorf("durationOf(1e300) = %v", got)
	}
	if got := durationOf(1.5); got != 1500*time.Millisecond {
		t.Errorf("durationOf(1.5) = %v", got)
	}
}
