package breaker

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/metric"

	"github.com/sadpath/sadpath/contract"
)

// Defaults used for the zero fields of Config.
const (
	DefaultWindow         = 60 * time.Second
	DefaultBuckets        = 10
	DefaultMinCalls       = 20
	DefaultFailureRatio   = 0.5
	DefaultOpenTimeout    = 30 * time.Second
	DefaultOpenGrowth     = 8 // MaxOpenTimeout defaults to DefaultOpenGrowth × OpenTimeout
	DefaultJitter         = 0.2
	DefaultHalfOpenProbes = 3
)

// CodeConfigInvalid is the machine code of the error returned by New,
// NewRegistry and NewTransport for a bad config value (KindInvalid).
const CodeConfigInvalid = "config.invalid"

// Clock is the time source of a Breaker: the open delay, the retry-after
// hint and slow-call detection read time only through it, so tests drive
// them with a fake clock. A nil Clock means the system clock. The rolling
// failure window is counted by gobreaker, which always reads the system
// clock.
type Clock interface {
	Now() time.Time
}

// Config configures a Breaker. Every zero field means the documented default;
// New rejects a bad value with a *contract.Error of KindInvalid naming the
// field.
type Config struct {
	// Name identifies the breaker in errors, logs and metrics, e.g. the
	// downstream dependency ("payments-gateway"). Required; at most 256
	// bytes of valid UTF-8 (metric attributes and logs carry it, and an
	// OTLP export rejects invalid UTF-8).
	Name string

	// Window is the length of the rolling window over which calls are
	// counted in the closed state. Default 60s; at most 30 days.
	Window time.Duration
	// Buckets is the number of buckets the window is divided into; counts
	// age out one bucket at a time. Default 10; at most 1000. A Window that
	// Buckets does not divide to the nanosecond is cut to Buckets whole
	// buckets (short of it by under Buckets nanoseconds).
	Buckets int
	// MinCalls is the number of counted calls (successes plus failures)
	// the window must hold before the failure rate can trip the breaker.
	// Default 20.
	MinCalls int
	// FailureRatio trips the breaker when failures/(successes+failures)
	// over the window reaches it, in (0, 1]. Default 0.5.
	FailureRatio float64
	// SlowCallThreshold makes a call that takes longer count as a failure
	// (Outcome Slow) whatever it returned: a success, and also an error the
	// breaker otherwise ignores — the caller's cancellation
	// (context.Canceled) when a client gave up waiting on a hung
	// dependency, or any other caller error — since the latency is the
	// dependency's. The caller still gets the call's own result. Zero
	// disables slow-call detection (and its two clock reads per call).
	SlowCallThreshold time.Duration

	// OpenTimeout is how long the breaker stays open after its first trip
	// before letting half-open probes through. Default 30s; at most a year.
	OpenTimeout time.Duration
	// MaxOpenTimeout caps the open delay, which doubles on every
	// consecutive trip (a failed probe) with jitter. Default
	// DefaultOpenGrowth × OpenTimeout (at most a year); set it equal to
	// OpenTimeout for a constant delay.
	MaxOpenTimeout time.Duration
	// Jitter is the fraction, in [0, 1], by which the open delay of a
	// repeated trip is randomly shortened (never below OpenTimeout), so
	// that instances tripped together do not probe together. Default 0.2
	// (zero means the default: for no jitter, set Rand to return 0).
	Jitter float64
	// HalfOpenProbes is the number of calls let through in the half-open
	// state; all must succeed to close the breaker, one failure reopens it.
	// Default 3.
	HalfOpenProbes int

	// Classify decides whether a call's non-nil error counts as a failure,
	// is ignored, or (if it says so) a success; a nil error is always a
	// Success. Any other answer (Rejected, or a value past the Outcome
	// constants) counts as a Failure. Default Classify (the package
	// function).
	Classify func(err error) Outcome

	// OnStateChange is called once per state change, after the breaker's
	// locks are released, with the context of the call that caused it (or
	// of the operator call: ForceOpen, Trip …). Keep it fast.
	OnStateChange func(ctx context.Context, t Transition)
	// OnCall is called with its outcome after every call the breaker
	// counted: every call that ran, except those ForceClosed lets through
	// uncounted and those whose result the breaker discards — calls that
	// started before a state change (a trip, a close) and ended after it,
	// and half-open probes a Trip held off (see Breaker.Trip) — which are
	// in the metrics only; never for rejected calls. Nil costs nothing.
	// A panic in OnCall (or its runtime.Goexit) goes on to the caller, and
	// the call still counts as its outcome, not as a failure.
	// Used by breaker/redisstate to share counts.
	OnCall func(ctx context.Context, o Outcome)

	// Logger receives one decision record per state change (see
	// logctx.Decision). Nil logs nothing.
	Logger *slog.Logger
	// MeterProvider provides the meter for the state gauge and the call and
	// transition counters. Nil means otel's global provider.
	MeterProvider metric.MeterProvider
	// DisableMetrics turns metrics off entirely: no instruments, no cost.
	DisableMetrics bool

	// Clock is the time source. Nil means the system clock.
	Clock Clock
	// Rand returns a uniform value in [0, 1) for jitter. Nil means
	// math/rand/v2. A value outside [0, 1), or NaN, counts as 0: no
	// jitter for that trip.
	Rand func() float64
}

// Bounds that keep gobreaker's window arithmetic and the open deadline far
// from overflow.
const (
	maxWindow = 30 * 24 * time.Hour
	maxOpen   = 365 * 24 * time.Hour
)

func invalidField(op, field, rule string, got any) error {
	e := contract.New(contract.KindInvalid, op,
		fmt.Sprintf("%s: %s, got %v", field, rule, got)).WithCode(CodeConfigInvalid)
	e.Fields = []contract.FieldError{{Name: field, Reason: rule}}
	return e
}

// withDefaults validates c and returns it with defaults applied. Errors
// name the field under path: "Config" for New, "RegistryConfig.Breaker"
// for a Registry's template.
func (c Config) withDefaults(path string) (Config, error) {
	const op = "breaker"
	bad := func(field, rule string, got any) (Config, error) {
		return c, invalidField(op, path+"."+field, rule, got)
	}
	if c.Name == "" {
		return bad("Name", "must not be empty", `""`)
	}
	if len(c.Name) > 256 {
		return bad("Name", "must be at most 256 bytes", len(c.Name))
	}
	if !utf8.ValidString(c.Name) {
		return bad("Name", "must be valid UTF-8", strconv.Quote(c.Name))
	}
	if c.Window < 0 || c.Window > maxWindow {
		return bad("Window", "must be in [0, 720h]", c.Window)
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.Buckets < 0 || c.Buckets > 1000 {
		return bad("Buckets", "must be in [0, 1000]", c.Buckets)
	}
	if c.Buckets == 0 {
		c.Buckets = DefaultBuckets
	}
	if c.Window/time.Duration(c.Buckets) < time.Millisecond {
		return bad("Window", "must be at least 1ms per bucket", c.Window)
	}
	if c.MinCalls < 0 || c.MinCalls > math.MaxUint32/2 {
		return bad("MinCalls", "must be in [0, 2147483647]", c.MinCalls)
	}
	if c.MinCalls == 0 {
		c.MinCalls = DefaultMinCalls
	}
	if math.IsNaN(c.FailureRatio) || c.FailureRatio < 0 || c.FailureRatio > 1 {
		return bad("FailureRatio", "must be in (0, 1]", c.FailureRatio)
	}
	if c.FailureRatio == 0 {
		c.FailureRatio = DefaultFailureRatio
	}
	if c.SlowCallThreshold < 0 {
		return bad("SlowCallThreshold", "must be >= 0", c.SlowCallThreshold)
	}
	if c.OpenTimeout < 0 || c.OpenTimeout > maxOpen {
		return bad("OpenTimeout", "must be in [0, 8760h]", c.OpenTimeout)
	}
	if c.OpenTimeout == 0 {
		c.OpenTimeout = DefaultOpenTimeout
	}
	if c.MaxOpenTimeout < 0 || c.MaxOpenTimeout > maxOpen {
		return bad("MaxOpenTimeout", "must be in [0, 8760h]", c.MaxOpenTimeout)
	}
	if c.MaxOpenTimeout == 0 {
		c.MaxOpenTimeout = min(DefaultOpenGrowth*c.OpenTimeout, maxOpen)
	}
	if c.MaxOpenTimeout < c.OpenTimeout {
		return bad("MaxOpenTimeout", "must be >= OpenTimeout", c.MaxOpenTimeout)
	}
	if math.IsNaN(c.Jitter) || c.Jitter < 0 || c.Jitter > 1 {
		return bad("Jitter", "must be in [0, 1]", c.Jitter)
	}
	if c.Jitter == 0 {
		c.Jitter = DefaultJitter
	}
	if c.HalfOpenProbes < 0 || c.HalfOpenProbes > 1<<20 {
		return bad("HalfOpenProbes", "must be in [0, 1048576]", c.HalfOpenProbes)
	}
	if c.HalfOpenProbes == 0 {
		c.HalfOpenProbes = DefaultHalfOpenProbes
	}
	if c.Classify == nil {
		c.Classify = Classify
	}
	return c, nil
}
