package retry_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sadpath/sadpath/breaker"
	"github.com/sadpath/sadpath/retry"
	"github.com/sadpath/sadpath/retry/retrytest"
)

// A call an open circuit breaker turns away never reached the dependency:
// it adds no load, which is what a Budget protects the dependency from, and
// says nothing of its health the breaker has not already counted. It used
// to cost the TokenBucket a token like a real failure, so an outage behind
// a breaker emptied the bucket with rejections alone and, once the
// dependency was back, retries stayed refused until some 50 successes had
// refilled it.
func TestBreakerRejectionsCostNoBudget(t *testing.T) {
	ctx := context.Background()
	budgets := map[string]func(clk retry.Clock) (retry.Budget, func() float64){
		"token bucket": func(retry.Clock) (retry.Budget, func() float64) {
			b, _ := retry.NewTokenBucket(retry.TokenBucketConfig{})
			return b, b.Tokens
		},
		"ratio": func(clk retry.Clock) (retry.Budget, func() float64) {
			b, _ := retry.NewRatioBudget(retry.RatioBudgetConfig{Clock: clk})
			return b, nil
		},
	}
	for name, mk := range budgets {
		t.Run(name, func(t *testing.T) {
			clk := retrytest.NewClock()
			budget, tokens := mk(clk)
			b, err := breaker.New(breaker.Config{Name: "dep", Clock: clk, DisableMetrics: true})
			if err != nil {
				t.Fatal(err)
			}
			b.Trip(ctx, time.Minute, "outage")
			p := constPolicy(t, clk, retry.Config{MaxDelay: time.Second, Budget: budget})
			// The outage: every call is turned away (the hint, a minute,
			// is past MaxDelay: Do stops at once).
			for range 50 {
				_, err := retry.Do(ctx, p, func(ctx context.Context) (int, error) {
					return breaker.Do(ctx, b, func(context.Context) (int, error) { return 0, unavailable() })
				})
				if !errors.Is(err, breaker.ErrOpen) {
					t.Fatalf("during the outage: %v, want the breaker's rejection", err)
				}
			}
			if tokens != nil && tokens() != 10 {
				t.Errorf("bucket at %v tokens after rejections alone, want 10 (full)", tokens())
			}
			// Back: a transient failure is retried, as before the outage.
			clk.Advance(time.Minute)
			n := 0
			v, err := retry.Do(ctx, p, func(ctx context.Context) (int, error) {
				if n++; n == 1 {
					return 0, unavailable()
				}
				return 42, nil
			})
			if v != 42 || err != nil {
				t.Fatalf("after the outage: %v, %v after %d attempts; want the transient failure retried", v, err, n)
			}
		})
	}
}

// The same for a request the Transport sends once (a POST without a key)
// through a breaker.Transport that turns it away.
func TestTransportBreakerRejectionCostsNoBudget(t *testing.T) {
	clk := retrytest.NewClock()
	reg, err := breaker.NewRegistry(breaker.RegistryConfig{Breaker: breaker.Config{Clock: clk, DisableMetrics: true}})
	if err != nil {
		t.Fatal(err)
	}
	reg.Get("dep.example").Trip(context.Background(), time.Minute, "outage")
	base := roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, errors.New("unreachable") })
	bt, err := breaker.NewTransport(breaker.TransportConfig{Registry: reg, Next: base})
	if err != nil {
		t.Fatal(err)
	}
	bucket, _ := retry.NewTokenBucket(retry.TokenBucketConfig{})
	tr := newTransport(t, bt, clk, retry.TransportConfig{}, retry.Config{Budget: bucket})
	for _, key := range []string{"", "k1"} { // once, and under the retry loop
		for range 20 {
			req, _ := http.NewRequest(http.MethodPost, "http://dep.example/pay", strings.NewReader("{}"))
			if key != "" {
				req.Header.Set("Idempotency-Key", key)
			}
			if _, err := tr.RoundTrip(req); !errors.Is(err, breaker.ErrOpen) {
				t.Fatalf("key %q: %v, want the breaker's rejection", key, err)
			}
		}
		if got := bucket.Tokens(); got != 10 {
			t.Errorf("key %q: bucket at %v tokens after rejections alone, want 10 (full)", key, got)
		}
	}
}

// Nor is a rejected call a call for a RatioBudget, whose allowance is a
// share of the calls that reached the dependency: counted, 200 rejections
// during an outage let the next failures be retried some 20 times more
// than the budget allows.
func TestBreakerRejectionsAreNoCallsForARatioBudget(t *testing.T) {
	ctx := context.Background()
	clk := retrytest.NewClock()
	budget, err := retry.NewRatioBudget(retry.RatioBudgetConfig{Ratio: 0.1, MinRetries: 1, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	b, err := breaker.New(breaker.Config{Name: "dep", Clock: clk, DisableMetrics: true})
	if err != nil {
		t.Fatal(err)
	}
	b.Trip(ctx, time.Minute, "outage")
	p := constPolicy(t, clk, retry.Config{MaxDelay: time.Second, MaxAttempts: 10, Budget: budget})
	for range 200 {
		_, err := retry.Do(ctx, p, func(ctx context.Context) (int, error) {
			return breaker.Do(ctx, b, func(context.Context) (int, error) { return 0, unavailable() })
		})
		if !errors.Is(err, breaker.ErrOpen) {
			t.Fatalf("during the outage: %v, want the breaker's rejection", err)
		}
	}
	// One call that reaches a failing dependency: the minimum allows one
	// retry (MinRetries 1), the ratio of one call none more.
	n := 0
	_, err = retry.Do(ctx, p, func(ctx context.Context) (int, error) {
		n++
		return 0, unavailable()
	})
	var re *retry.Error
	if !errors.As(err, &re) || re.Reason != retry.StopBudget || n != 2 {
		t.Fatalf("after 200 rejections: %d attempts, %v; want 2 attempts, then the budget empty", n, err)
	}
}
