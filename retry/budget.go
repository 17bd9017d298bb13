package retry

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Budget limits retries across every caller of one dependency, so a failing
// dependency sees a bounded multiple of its normal traffic instead of a
// retry storm. Create one per dependency and put the same value in the
// Config of every Policy (and Transport) calling it. Implementations must be
// safe for concurrent use.
//
// Do calls Call once per call, after its first attempt (not when that
// attempt was a circuit breaker's rejection or a local refusal, see
// below), Success after each successful attempt, Failure after each attempt
// failing with a Transient or Overloaded error (permanent errors say
// nothing about the dependency's health, and a circuit breaker's
// rejection, errors.Is gobreaker.ErrOpenState or ErrTooManyRequests, never
// reached it, nor did a refusal by a local rate limiter or bulkhead,
// errors.Is contract.ErrRefusedLocally), and Retry before each retry; when
// Retry reports false the retry is not made and Do returns the failure
// with StopBudget. A Transport reports every request the same way, those
// it never retries included.
type Budget interface {
	Call()
	Success()
	Failure()
	Retry() bool
}

// TokenBucketConfig configures a TokenBucket. Zero fields mean the gRPC
// defaults.
type TokenBucketConfig struct {
	// MaxTokens is the bucket size, and its initial content. Default 10;
	// must be in [0.001, 1000] (the bucket counts thousandths of a token).
	MaxTokens float64
	// TokenRatio is refunded per success. Default 0.1; must be >= 0.001
	// and <= MaxTokens.
	TokenRatio float64
}

// TokenBucket is gRPC's retry throttling: the bucket starts full with
// MaxTokens; each failure costs 1 token, each success refunds TokenRatio;
// retries are allowed only while the bucket holds more than MaxTokens/2. A
// dependency failing every call therefore gets at most about MaxTokens/2
// retries in total until successes refill the bucket. It is safe for
// concurrent use and allocation-free (one atomic integer, in thousandths of
// a token).
type TokenBucket struct {
	max, ratio, half int64
	milli            atomic.Int64
}

var _ Budget = (*TokenBucket)(nil)

// NewTokenBucket validates cfg and returns a full bucket.
func NewTokenBucket(cfg TokenBucketConfig) (*TokenBucket, error) {
	if cfg.MaxTokens == 0 {
		cfg.MaxTokens = 10
	}
	if cfg.TokenRatio == 0 {
		cfg.TokenRatio = 0.1
	}
	// Thousandths: a smaller value would round to an empty bucket, or to
	// a refund larger than the one asked for.
	if !(cfg.MaxTokens >= 0.001 && cfg.MaxTokens <= 1000) {
		return nil, configError("TokenBucketConfig.MaxTokens", "must be in [0.001, 1000], got %v", cfg.MaxTokens)
	}
	if !(cfg.TokenRatio >= 0.001 && cfg.TokenRatio <= cfg.MaxTokens) {
		return nil, configError("TokenBucketConfig.TokenRatio", "must be in [0.001, MaxTokens], got %v", cfg.TokenRatio)
	}
	b := &TokenBucket{
		max:   int64(math.Round(cfg.MaxTokens * 1000)),
		ratio: int64(math.Round(cfg.TokenRatio * 1000)),
	}
	b.half = b.max / 2
	b.milli.Store(b.max)
	return b, nil
}

// Tokens returns the current content of the bucket.
func (b *TokenBucket) Tokens() float64 { return float64(b.milli.Load()) / 1000 }

// Call does nothing: the bucket only counts outcomes.
func (b *TokenBucket) Call() {}

// Success refunds TokenRatio, up to MaxTokens.
func (b *TokenBucket) Success() {
	for {
		v := b.milli.Load()
		if v >= b.max {
			return
		}
		if b.milli.CompareAndSwap(v, min(b.max, v+b.ratio)) {
			return
		}
	}
}

// Failure costs one token, down to zero.
func (b *TokenBucket) Failure() {
	for {
		v := b.milli.Load()
		if v <= 0 {
			return
		}
		if b.milli.CompareAndSwap(v, max(0, v-1000)) {
			return
		}
	}
}

// Retry reports whether the bucket holds more than MaxTokens/2.
func (b *TokenBucket) Retry() bool { return b.milli.Load() > b.half }

// RatioBudgetConfig configures a RatioBudget. Zero fields mean the defaults.
type RatioBudgetConfig struct {
	// Ratio is the share of calls that may be retried. Default 0.1; must be
	// in (0, 1].
	Ratio float64
	// MinRetries is the number of retries allowed per Window however low
	// the traffic, so a dependency with little traffic can still be
	// retried: MinRetries at once after a quiet period, then one every
	// Window/MinRetries. Default 10; must be >= 0 (zero means the default).
	MinRetries int
	// Window is how long calls and retries are remembered: both counts
	// decay exponentially with this time constant (weight 1/e after one
	// Window). Default 10s; must be >= 10ms.
	Window time.Duration
	// Clock tells the time. Nil means the system clock.
	Clock Clock
}

// RatioBudget is the SRE book / Envoy / Linkerd retry budget: a retry is
// allowed while recent retries, this one included, stay within Ratio ×
// recent calls, where calls counts original calls, not retries, or while
// traffic is too low for that and the MinRetries minimum allows it.
// "Recent" is an exponentially decaying count with time constant Window.
// Because calls and retries decay alike, the bound holds over any period,
// not just within a window: a dependency failing every call sees at most
// (1+Ratio)× its calls, plus up to about MinRetries per Window while
// traffic is too low for the ratio to allow them: MinRetries at once after
// a quiet period, then one every Window/MinRetries. It is safe for
// concurrent use (one mutex).
type RatioBudget struct {
	ratio    float64
	minLevel float64 // the minimum, as a level of the decaying count: see Retry
	window   float64 // nanoseconds
	clock    Clock

	mu      sync.Mutex
	calls   float64
	retries float64
	last    time.Time
}

var _ Budget = (*RatioBudget)(nil)

// NewRatioBudget validates cfg and returns an empty budget.
func NewRatioBudget(cfg RatioBudgetConfig) (*RatioBudget, error) {
	if cfg.Ratio == 0 {
		cfg.Ratio = 0.1
	}
	if cfg.MinRetries == 0 {
		cfg.MinRetries = 10
	}
	if cfg.Window == 0 {
		cfg.Window = 10 * time.Second
	}
	if !(cfg.Ratio > 0 && cfg.Ratio <= 1) {
		return nil, configError("RatioBudgetConfig.Ratio", "must be in (0, 1], got %v", cfg.Ratio)
	}
	if cfg.MinRetries < 0 {
		return nil, configError("RatioBudgetConfig.MinRetries", "must be >= 0, got %d", cfg.MinRetries)
	}
	if cfg.Window < 10*time.Millisecond {
		return nil, configError("RatioBudgetConfig.Window", "must be >= 10ms, got %s", cfg.Window)
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	return &RatioBudget{
		ratio:    cfg.Ratio,
		minLevel: 1 / math.Expm1(1/float64(cfg.MinRetries)),
		window:   float64(cfg.Window),
		clock:    cfg.Clock,
	}, nil
}

// decay ages the counts to now. The caller holds b.mu. A clock going
// backwards ages nothing.
func (b *RatioBudget) decay() {
	now := b.clock.Now()
	if b.last.IsZero() {
		b.last = now
		return
	}
	if dt := now.Sub(b.last); dt > 0 {
		f := math.Exp(-float64(dt) / b.window)
		b.calls *= f
		b.retries *= f
		b.last = now
	}
}

// Call counts an original call.
func (b *RatioBudget) Call() {
	b.mu.Lock()
	b.decay()
	b.calls++
	b.mu.Unlock()
}

// Success does nothing: the budget only counts calls and retries.
func (b *RatioBudget) Success() {}

// Failure does nothing: the budget only counts calls and retries.
func (b *RatioBudget) Failure() {}

// Retry reports whether a retry fits in the budget, and counts it if so.
//
// The ratio allows a retry that keeps retries within Ratio × calls. The
// minimum M = MinRetries cannot be "retries+1 <= M": the count, decaying as
// e^(-t/Window), gets back from M to M-1 only after Window·ln(M/(M-1)), so
// that rule allowed about M-1/2 retries per Window, and for M = 1 one per
// some 20 Windows (the time 1 takes to decay to within 1e-9 of 0). Instead
// a retry is allowed while the count is at most L = 1/(e^(1/M)-1): under
// steady demand each retry lifts it to L+1, which decays back to L in
// Window·ln((L+1)/L) = Window/M, so exactly M retries per Window; and since
// M-1 < L < M (L = M - 1/2 + 1/(12M) - …) an empty budget allows a burst of
// exactly M.
func (b *RatioBudget) Retry() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.decay()
	if b.retries+1 > b.ratio*b.calls+1e-9 && b.retries > b.minLevel+1e-9 {
		return false
	}
	b.retries++
	return true
}
