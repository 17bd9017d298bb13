package retry

import (
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/internal/lograte"
)

// Strategy is the shape of the waits between attempts. The zero Strategy is
// FullJitter, the default.
//
// With base = Config.InitialDelay, cap = Config.MaxDelay, m =
// Config.Multiplier and exp(n) = min(cap, base·m^(n-1)) for the n-th retry:
type Strategy uint8

const (
	// FullJitter waits a uniform random duration in [0, exp(n)). Fewest
	// calls under contention in the AWS analysis; the default.
	FullJitter Strategy = iota
	// EqualJitter waits exp(n)/2 plus a uniform random duration in
	// [0, exp(n)/2): never less than half the curve.
	EqualJitter
	// DecorrelatedJitter waits min(cap, uniform[base, 3·previous wait)),
	// starting from previous = base.
	DecorrelatedJitter
	// Exponential waits exactly exp(n): no jitter. Synchronised clients
	// retry in lockstep; prefer a jittered strategy.
	Exponential
	// Constant waits exactly InitialDelay between attempts.
	Constant
	numStrategies
)

var strategyNames = [...]string{
	FullJitter:         "full_jitter",
	EqualJitter:        "equal_jitter",
	DecorrelatedJitter: "decorrelated_jitter",
	Exponential:        "exponential",
	Constant:           "constant",
}

// String returns the snake_case name of the strategy ("full_jitter").
func (s Strategy) String() string {
	if s < numStrategies {
		return strategyNames[s]
	}
	return "strategy(" + strconv.Itoa(int(s)) + ")"
}

// Defaults applied to zero Config fields.
const (
	DefaultInitialDelay   = 100 * time.Millisecond
	DefaultMaxDelay       = 10 * time.Second
	DefaultMultiplier     = 2.0
	DefaultMaxAttempts    = 3
	DefaultMaxElapsedTime = 30 * time.Second
)

// Config configures a Policy. Every zero field means its documented
// default, so Config{} is a safe policy: full jitter from 100ms doubling up
// to 10s, at most 3 attempts within 30s, no per-attempt timeout, no budget.
// New rejects a bad value with a KindInvalid *contract.Error naming the
// field.
type Config struct {
	// Name names the dependency in logs and metrics ("payments-gateway").
	// Optional.
	Name string

	// Strategy shapes the waits. Default FullJitter.
	Strategy Strategy
	// InitialDelay is the base of the curve (and the constant wait for
	// Constant). Default 100ms; must be >= 0.
	InitialDelay time.Duration
	// MaxDelay caps every wait, including a Retry-After hint (an open
	// circuit breaker's or a local rate limiter's hint beyond it stops Do:
	// see StopRetryAfter). Default
	// min(10s, MaxElapsedTime); must be >= InitialDelay and <=
	// MaxElapsedTime.
	MaxDelay time.Duration
	// Multiplier grows the curve per retry. Default 2; must be >= 1 and finite.
	Multiplier float64
	// MaxAttempts bounds the attempts, the first included. Default 3; must
	// be >= 1. There is no "unlimited".
	MaxAttempts int
	// MaxElapsedTime bounds the time spent retrying, measured from the end
	// of the first failed attempt: a retry whose wait would end after it is
	// not started. Default 30s; must be >= 0.
	MaxElapsedTime time.Duration
	// AttemptTimeout, when > 0, gives each attempt's context its own
	// deadline (never later than the caller's), and a retry is only started
	// when the caller's deadline leaves a full AttemptTimeout after the wait.
	// Default 0: attempts run under the caller's context.
	AttemptTimeout time.Duration

	// Classifier, when set, is asked first about every failure; Unknown
	// falls back to the default classification (see Classify), which
	// makes another retry layer's give-up (an *Error) final. Answering
	// Transient for such an error retries it, at the cost of multiplied
	// attempts.
	Classifier Classifier
	// Budget, when set, is shared by every Policy (and every caller) of one
	// dependency and refuses retries when too many are being made. Nil
	// means no budget.
	Budget Budget

	// Clock tells the time and sleeps. Nil means the system clock.
	Clock Clock
	// Random returns uniform values in [0, 1) for jitter; it must be safe
	// for concurrent use. Nil means math/rand/v2.Float64.
	Random func() float64

	// Logger receives the retries (Info), and the give-ups after a retry
	// or on an empty budget (Warn): at most 5 of each in 10s at that
	// level, the others at Debug, and the end of each once it has not
	// occurred for 10s (see Logs and telemetry in the package
	// documentation). Nil logs nothing.
	Logger *slog.Logger
	// OnRetry, when set, is called before each wait with the number of the
	// attempt that failed, the wait and the failure. The time it takes
	// counts: when a slow hook (or, under a Transport, draining the
	// discarded response) leaves the retry too little time under
	// MaxElapsedTime or the deadline, Do gives up after it, with
	// StopElapsed or StopDeadline, instead of retrying. A wait that is a
	// Retry-After hint capped by MaxDelay is shortened instead, to end at
	// MaxElapsedTime (never before the failure plus the delay the hook was
	// given), when the deadline allows.
	OnRetry func(attempt int, delay time.Duration, err error)
	// MeterProvider provides the meter for the counters. Nil means the
	// global otel MeterProvider.
	MeterProvider metric.MeterProvider
	// DisableTelemetry turns off the otel counters and span events.
	DisableTelemetry bool
}

// Policy is a validated, immutable retry configuration. Build one with New
// and share it: a Policy is safe for concurrent use by any number of
// goroutines, and every Do call keeps its own per-call state (the Policy
// keeps only the pacing of its log lines, shared by its callers). A nil *Policy
// passed to Do means New(Config{}).
type Policy struct {
	name           string
	strategy       Strategy
	initial        time.Duration
	maxDelay       time.Duration
	multiplier     float64
	maxAttempts    int
	maxElapsed     time.Duration
	attemptTimeout time.Duration
	reserve        time.Duration // time an attempt needs before the deadline
	classifier     Classifier
	budget         Budget
	clock          Clock
	random         func() float64
	logger         *slog.Logger
	logs           *lograte.Set // pacing of the decisions logged: non-nil with logger
	onRetry        func(int, time.Duration, error)
	tel            *telemetry
	plain          bool // no budget, no attempt timeout: Do's inlined path
}

// New validates cfg, applies the defaults and returns the Policy.
func New(cfg Config) (*Policy, error) {
	if cfg.Strategy >= numStrategies {
		return nil, configError("Config.Strategy", "unknown strategy %d", cfg.Strategy)
	}
	if cfg.InitialDelay < 0 {
		return nil, configError("Config.InitialDelay", "must be >= 0, got %s", cfg.InitialDelay)
	}
	if cfg.MaxDelay < 0 {
		return nil, configError("Config.MaxDelay", "must be >= 0, got %s", cfg.MaxDelay)
	}
	if cfg.MaxElapsedTime < 0 {
		return nil, configError("Config.MaxElapsedTime", "must be >= 0, got %s", cfg.MaxElapsedTime)
	}
	if cfg.MaxAttempts < 0 {
		return nil, configError("Config.MaxAttempts", "must be >= 1, got %d", cfg.MaxAttempts)
	}
	if cfg.AttemptTimeout < 0 {
		return nil, configError("Config.AttemptTimeout", "must be >= 0, got %s", cfg.AttemptTimeout)
	}
	if math.IsNaN(cfg.Multiplier) || math.IsInf(cfg.Multiplier, 0) || (cfg.Multiplier != 0 && cfg.Multiplier < 1) {
		return nil, configError("Config.Multiplier", "must be >= 1 and finite, got %v", cfg.Multiplier)
	}
	p := &Policy{
		name:           cfg.Name,
		strategy:       cfg.Strategy,
		initial:        or(cfg.InitialDelay, DefaultInitialDelay),
		multiplier:     cfg.Multiplier,
		maxAttempts:    cfg.MaxAttempts,
		maxElapsed:     or(cfg.MaxElapsedTime, DefaultMaxElapsedTime),
		attemptTimeout: cfg.AttemptTimeout,
		reserve:        cfg.AttemptTimeout,
		classifier:     cfg.Classifier,
		budget:         cfg.Budget,
		clock:          cfg.Clock,
		random:         cfg.Random,
		logger:         cfg.Logger,
		onRetry:        cfg.OnRetry,
	}
	if p.multiplier == 0 {
		p.multiplier = DefaultMultiplier
	}
	if p.maxAttempts == 0 {
		p.maxAttempts = DefaultMaxAttempts
	}
	if cfg.MaxDelay == 0 {
		p.maxDelay = min(DefaultMaxDelay, p.maxElapsed)
	} else {
		p.maxDelay = cfg.MaxDelay
		if p.maxDelay > p.maxElapsed {
			return nil, configError("Config.MaxDelay", "must be <= MaxElapsedTime (%s), got %s", p.maxElapsed, p.maxDelay)
		}
	}
	if p.initial > p.maxDelay {
		if cfg.InitialDelay == 0 {
			p.initial = p.maxDelay
		} else {
			return nil, configError("Config.InitialDelay", "must be <= MaxDelay (%s), got %s", p.maxDelay, p.initial)
		}
	}
	if p.clock == nil {
		p.clock = systemClock{}
	}
	if p.logger != nil {
		p.logs = lograte.NewSet(numLogs)
	}
	p.plain = p.budget == nil && p.attemptTimeout == 0
	if !cfg.DisableTelemetry {
		p.tel = newTelemetry(cfg.MeterProvider)
	}
	return p, nil
}

// Name returns the configured dependency name.
func (p *Policy) Name() string { return p.name }

func or(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// configError returns the KindInvalid error for a bad config field, e.g.
// "retry: invalid (config.invalid): Config.MaxAttempts: must be >= 1, got -1".
func configError(field, format string, args ...any) error {
	return &contract.Error{
		Kind:   contract.KindInvalid,
		Code:   "config.invalid",
		Op:     "retry",
		Detail: field + ": " + fmt.Sprintf(format, args...),
	}
}
