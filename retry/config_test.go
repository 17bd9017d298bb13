package retry_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/retry"
	"github.com/sadpath/sadpath/retry/retrytest"
)

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name  string
		cfg   retry.Config
		field string
	}{
		{"negative attempts", retry.Config{MaxAttempts: -1}, "Config.MaxAttempts: must be >= 1, got -1"},
		{"negative initial", retry.Config{InitialDelay: -time.Second}, "Config.InitialDelay"},
		{"negative max delay", retry.Config{MaxDelay: -1}, "Config.MaxDelay"},
		{"negative elapsed", retry.Config{MaxElapsedTime: -1}, "Config.MaxElapsedTime"},
		{"negative attempt timeout", retry.Config{AttemptTimeout: -1}, "Config.AttemptTimeout"},
		{"multiplier below one", retry.Config{Multiplier: 0.5}, "Config.Multiplier"},
		{"multiplier NaN", retry.Config{Multiplier: math.NaN()}, "Config.Multiplier"},
		{"multiplier Inf", retry.Config{Multiplier: math.Inf(1)}, "Config.Multiplier"},
		{"unknown strategy", retry.Config{Strategy: retry.Strategy(99)}, "Config.Strategy"},
		{"max delay over elapsed", retry.Config{MaxDelay: time.Minute, MaxElapsedTime: time.Second}, "Config.MaxDelay"},
		{"initial over max delay", retry.Config{InitialDelay: 2 * time.Second, MaxDelay: time.Second}, "Config.InitialDelay"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := retry.New(tt.cfg)
			if err == nil {
				t.Fatalf("New(%+v) = %v, nil; want an error", tt.cfg, p)
			}
			if !errors.Is(err, contract.ErrInvalid) {
				t.Errorf("errors.Is(err, contract.ErrInvalid) = false for %v", err)
			}
			ce := contract.As(err)
			if ce.Code != "config.invalid" || ce.Op != "retry" {
				t.Errorf("code, op = %q, %q; want config.invalid, retry", ce.Code, ce.Op)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %q does not name %q", err, tt.field)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	p := mustPolicy(t, retry.Config{})
	// The default attempts are bounded: a 100 % failing call stops at 3.
	b := p.BackOff()
	n := 0
	for b.NextBackOff() >= 0 {
		n++
		if n > 100 {
			t.Fatal("default BackOff never stops")
		}
	}
	if n != retry.DefaultMaxAttempts-1 {
		t.Errorf("default policy allows %d retries, want %d", n, retry.DefaultMaxAttempts-1)
	}
	// A small MaxElapsedTime lowers the default MaxDelay instead of failing.
	if _, err := retry.New(retry.Config{MaxElapsedTime: 50 * time.Millisecond}); err != nil {
		t.Errorf("MaxElapsedTime below the default MaxDelay: %v", err)
	}
}

// TestZeroConfigIsSafeInDo: the zero Config must be full jitter, at most
// DefaultMaxAttempts attempts, waits capped by DefaultMaxDelay and retries
// within DefaultMaxElapsedTime, as Do applies them (not only as BackOff
// reports them).
func TestZeroConfigIsSafeInDo(t *testing.T) {
	ctx := context.Background()
	down := func(context.Context) (int, error) { return 0, contract.New(contract.KindUnavailable, "dep", "down") }
	t.Run("full jitter, 3 attempts", func(t *testing.T) {
		// r = 0.25: full jitter waits r·exp(n) = 25ms, 50ms; equal jitter
		// would wait 62.5ms, 125ms, and unjittered exponential 100ms, 200ms.
		clk := retrytest.NewClock()
		p := mustPolicy(t, retry.Config{Clock: clk, Random: func() float64 { return 0.25 }})
		_, err := retry.Do(ctx, p, down)
		var re *retry.Error
		if !errors.As(err, &re) || re.Reason != retry.StopAttempts || re.Attempts != retry.DefaultMaxAttempts {
			t.Fatalf("err = %v, want StopAttempts after %d attempts", err, retry.DefaultMaxAttempts)
		}
		if got := clk.Sleeps(); len(got) != 2 || got[0] != 25*time.Millisecond || got[1] != 50*time.Millisecond {
			t.Errorf("waits %v, want [25ms 50ms] (full jitter of 100ms, 200ms)", got)
		}
	})
	t.Run("bounded waits and elapsed time", func(t *testing.T) {
		// Many attempts allowed and the largest draws: the zero-valued
		// bounds must stop it, each wait at most 10s, all within 30s.
		clk := retrytest.NewClock()
		p := mustPolicy(t, retry.Config{Clock: clk, MaxAttempts: 1000, Random: func() float64 { return 0.999999 }})
		_, err := retry.Do(ctx, p, down)
		var re *retry.Error
		if !errors.As(err, &re) || re.Reason != retry.StopElapsed {
			t.Fatalf("err = %v, want StopElapsed", err)
		}
		for i, d := range clk.Sleeps() {
			if d > retry.DefaultMaxDelay {
				t.Errorf("wait %d = %v > DefaultMaxDelay %v", i+1, d, retry.DefaultMaxDelay)
			}
		}
		if clk.Slept() > retry.DefaultMaxElapsedTime || re.Elapsed > retry.DefaultMaxElapsedTime {
			t.Errorf("slept %v, Elapsed %v; want both <= DefaultMaxElapsedTime %v", clk.Slept(), re.Elapsed, retry.DefaultMaxElapsedTime)
		}
	})
}

func TestBudgetConfigs(t *testing.T) {
	bad := []struct {
		name  string
		err   error
		field string
	}{
		{"max tokens", second(retry.NewTokenBucket(retry.TokenBucketConfig{MaxTokens: -1})), "TokenBucketConfig.MaxTokens"},
		{"max tokens huge", second(retry.NewTokenBucket(retry.TokenBucketConfig{MaxTokens: 1e9})), "TokenBucketConfig.MaxTokens"},
		{"max tokens NaN", second(retry.NewTokenBucket(retry.TokenBucketConfig{MaxTokens: math.NaN()})), "TokenBucketConfig.MaxTokens"},
		{"token ratio", second(retry.NewTokenBucket(retry.TokenBucketConfig{TokenRatio: -0.1})), "TokenBucketConfig.TokenRatio"},
		// The bucket counts thousandths of a token: smaller values would
		// round to an empty bucket, or to a refund 10x the one asked for.
		{"max tokens below resolution", second(retry.NewTokenBucket(retry.TokenBucketConfig{MaxTokens: 0.0004, TokenRatio: 0.0004})), "TokenBucketConfig.MaxTokens"},
		{"token ratio below resolution", second(retry.NewTokenBucket(retry.TokenBucketConfig{TokenRatio: 0.0001})), "TokenBucketConfig.TokenRatio"},
		{"ratio", second(retry.NewRatioBudget(retry.RatioBudgetConfig{Ratio: 1.5})), "RatioBudgetConfig.Ratio"},
		{"min retries", second(retry.NewRatioBudget(retry.RatioBudgetConfig{MinRetries: -1})), "RatioBudgetConfig.MinRetries"},
		{"window", second(retry.NewRatioBudget(retry.RatioBudgetConfig{Window: time.Millisecond})), "RatioBudgetConfig.Window"},
		{"status", second(retry.NewTransport(retry.TransportConfig{RetryStatuses: []int{503, 200}})), "TransportConfig.RetryStatuses[1]"},
		{"header", second(retry.NewTransport(retry.TransportConfig{ResendCountHeader: "Bad Header"})), "TransportConfig.ResendCountHeader"},
		// The resend count would replace the key on every retry: the server
		// would see a new key and execute the request again.
		{"header is the idempotency key", second(retry.NewTransport(retry.TransportConfig{ResendCountHeader: "idempotency-key"})), "TransportConfig.ResendCountHeader"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil || !errors.Is(tt.err, contract.ErrInvalid) || !strings.Contains(tt.err.Error(), tt.field) {
				t.Errorf("err = %v; want KindInvalid naming %s", tt.err, tt.field)
			}
		})
	}
}

func second[T any](_ T, err error) error { return err }

func TestStrategyAndReasonNames(t *testing.T) {
	for s, want := range map[retry.Strategy]string{
		retry.FullJitter: "full_jitter", retry.EqualJitter: "equal_jitter",
		retry.DecorrelatedJitter: "decorrelated_jitter", retry.Exponential: "exponential",
		retry.Constant: "constant", retry.Strategy(42): "strategy(42)",
	} {
		if got := s.String(); got != want {
			t.Errorf("Strategy(%d).String() = %q, want %q", s, got, want)
		}
	}
	if got := retry.StopBudget.Error(); got != "retry: retry budget exhausted" {
		t.Errorf("StopBudget.Error() = %q", got)
	}
}
