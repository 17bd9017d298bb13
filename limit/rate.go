package limit

import (
	"context"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/internal/lograte"
	"github.com/sadpath/sadpath/logctx"
	"golang.org/x/time/rate"
)

// Mode says what a rate limiter does with a call that finds no token.
type Mode uint8

const (
	// Reject refuses the call at once with a KindRateLimited error whose
	// RetryAfter is the time until a token is available. The default.
	Reject Mode = iota
	// Wait delays the call until its token is available, if that is within
	// MaxWait and before the context's deadline; otherwise it rejects at
	// once, as Reject does, without waiting in vain.
	Wait
)

// String returns "reject" or "wait".
func (m Mode) String() string {
	switch m {
	case Reject:
		return "reject"
	case Wait:
		return "wait"
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// DefaultRateMaxWait is the longest wait of a Wait-mode limiter whose
// MaxWait is zero.
const DefaultRateMaxWait = time.Second

// LimiterConfig configures a Limiter (and each key of a KeyedLimiter). A
// zero field means its documented default; constructors reject bad values
// with an error naming the field.
type LimiterConfig struct {
	// Name of the limited operation or dependency ("api.create-payment"). It
	// is the Op of the errors returned and is logged. Default "ratelimit".
	Name string
	// Rate is the sustained number of calls per second (use rate.Every to
	// express one call per interval). Required: it must be > 0. rate.Inf
	// disables limiting.
	Rate rate.Limit
	// Burst is the bucket size: how many calls may pass at once after a
	// quiet period. Default: one second's worth, ceil(Rate), at least 1.
	Burst int
	// Mode: Reject (the default) or Wait.
	Mode Mode
	// MaxWait bounds a Wait-mode delay. Default DefaultRateMaxWait. Setting
	// it in Reject mode is an error. Because a waiting call holds a
	// reservation, at most about Burst + Rate×MaxWait calls wait at once.
	MaxWait time.Duration
	// Clock is the time source of the token bucket and of waits. Default:
	// the real clock.
	Clock Clock
	// Logger receives rejected (Info, paced: see the package documentation)
	// and waited (Debug) decisions through logctx.Decision. Default nil: no
	// logging.
	Logger *slog.Logger
}

// rateCore is the validated configuration shared by Limiter and
// KeyedLimiter, and the take logic applied to one token bucket.
type rateCore struct {
	name    string
	limit   rate.Limit
	burst   int
	mode    Mode
	maxWait time.Duration
	clock   Clock
	logger  *slog.Logger
	// rejections paces the rejection lines (see package lograte): non-nil
	// with logger, shared by every key of a KeyedLimiter.
	rejections *lograte.Limiter
}

func newRateCore(cfg LimiterConfig, prefix string) (rateCore, error) {
	switch {
	case math.IsNaN(float64(cfg.Rate)) || cfg.Rate <= 0:
		return rateCore{}, invalidField(prefix+".Rate", "must be > 0", float64(cfg.Rate))
	case cfg.Burst < 0:
		return rateCore{}, invalidField(prefix+".Burst", "must be >= 0", cfg.Burst)
	case cfg.Mode != Reject && cfg.Mode != Wait:
		return rateCore{}, invalidField(prefix+".Mode", "must be Reject or Wait", cfg.Mode)
	case cfg.MaxWait < 0:
		return rateCore{}, invalidField(prefix+".MaxWait", "must be >= 0", cfg.MaxWait)
	case cfg.MaxWait > 0 && cfg.Mode == Reject:
		return rateCore{}, invalidField(prefix+".MaxWait", "must be 0 in Reject mode (no call ever waits)", cfg.MaxWait)
	}
	c := rateCore{
		name:    cfg.Name,
		limit:   cfg.Rate,
		burst:   cfg.Burst,
		mode:    cfg.Mode,
		maxWait: cfg.MaxWait,
		clock:   clockOr(cfg.Clock),
		logger:  cfg.Logger,
	}
	if c.name == "" {
		c.name = "ratelimit"
	}
	if c.logger != nil {
		c.rejections = new(lograte.Limiter)
	}
	if c.burst == 0 {
		c.burst = 1
		if r := math.Ceil(float64(c.limit)); r > 1 {
			c.burst = int(min(r, math.MaxInt32))
		}
	}
	if c.maxWait == 0 {
		c.maxWait = DefaultRateMaxWait
	}
	return c, nil
}

// bucket is a token bucket whose time never goes back. x/time/rate takes
// each call's time as given: a time older than the bucket's moves the
// bucket's clock back to it, and the next call counts the refill between
// the two a second time. Concurrent calls read the clock before they reach
// the bucket, so they often arrive out of order (a Wait-mode Limiter under
// 64 goroutines let through up to twice its rate); every use of lim
// therefore holds mu and acts at the latest time the bucket has seen, a
// call whose reading was overtaken at the bucket's time.
type bucket struct {
	mu   sync.Mutex
	last time.Time // the latest time lim was given
	lim  *rate.Limiter
}

// at returns the time a call that read now acts at: now, or the bucket's
// time if that is later. The caller holds b.mu.
func (b *bucket) at(now time.Time) time.Time {
	if now.Before(b.last) {
		return b.last
	}
	b.last = now
	return now
}

// cancel gives back the token of r, a reservation of b, at the current time.
func (b *bucket) cancel(r *rate.Reservation, now time.Time) {
	b.mu.Lock()
	r.CancelAt(b.at(now))
	b.mu.Unlock()
}

func (c *rateCore) initBucket(b *bucket) {
	now := c.clock.Now()
	b.lim = rate.NewLimiter(c.limit, c.burst)
	// rate.NewLimiter starts with a full bucket at time zero; anchoring it
	// on our clock keeps injected clocks (which may read any time) exact.
	b.lim.SetBurstAt(now, c.burst)
	b.last = now
}

// take spends one token of b, at time now (or the bucket's time, if later:
// see bucket), following the mode.
func (c *rateCore) take(ctx context.Context, b *bucket, now time.Time) error {
	b.mu.Lock()
	now = b.at(now)
	if b.lim.AllowN(now, 1) { // allocation-free fast path
		b.mu.Unlock()
		if c.rejections != nil && c.rejections.Active() {
			c.admitted(ctx)
		}
		return nil
	}
	d, r, refused := c.decide(ctx, b.lim, now)
	b.mu.Unlock()
	if refused != "" {
		return c.reject(ctx, d, refused)
	}
	if r == nil {
		return nil
	}
	if err := ctx.Err(); err != nil {
		b.cancel(r, now)
		return ctxError(c.name, err)
	}
	timer, stop := c.clock.NewTimer(d)
	select {
	case <-timer:
		if c.logger != nil {
			logctx.Decision(ctx, c.logger, slog.LevelDebug, "ratelimit.waited", "rate exceeded",
				slog.String(logctx.KeyDependency, c.name),
				slog.Duration("waited", d))
			if c.rejections.Active() {
				c.admitted(ctx)
			}
		}
		return nil
	case <-ctx.Done():
		stop()
		b.cancel(r, c.clock.Now())
		return ctxError(c.name, ctx.Err())
	}
}

// decide is take's choice for a call that found no token in lim at now,
// made under the bucket's lock (and logged after it): a refusal, the
// reason non-empty, with its retry-after d; a reservation r to wait d for
// (Wait mode); or, both nil, the call may proceed.
func (c *rateCore) decide(ctx context.Context, lim *rate.Limiter, now time.Time) (d time.Duration, r *rate.Reservation, refused string) {
	if c.mode == Reject {
		// The delay until a token is ours is (1 - tokens) / rate: computed
		// from the bucket, not from a reservation made and cancelled, which
		// would take the limiter's lock twice more on the hot reject path.
		lmt := lim.Limit()
		if lim.Burst() < 1 || lmt <= 0 {
			return rate.InfDuration, nil, "no token can ever be granted"
		}
		wait := (1 - lim.TokensAt(now)) / float64(lmt) * float64(time.Second)
		if wait >= float64(maxRetryAfter) { // also keeps the conversion from overflowing
			return maxRetryAfter, nil, "rate exceeded"
		}
		d := time.Duration(wait)
		if d <= 0 { // a token came back (a cancelled wait) since AllowN
			if lim.AllowN(now, 1) {
				return 0, nil, ""
			}
			d = time.Nanosecond
		}
		return d, nil, "rate exceeded"
	}
	limit := c.maxWait
	if dl, ok := ctx.Deadline(); ok {
		// Context deadlines are wall-clock times, whatever our clock says.
		if rem := time.Until(dl); rem < limit {
			limit = rem
		}
	}
	// A call that could not wait long enough is refused from the bucket's
	// state, as in Reject mode, without reserving. Reserving and cancelling
	// would not always give the token back: x/time/rate restores a
	// cancelled reservation's tokens only in so far as no later reservation
	// counted on them, so concurrent refusals would drain the bucket.
	if lmt := lim.Limit(); lmt > 0 && lmt != rate.Inf && lim.Burst() >= 1 {
		if wait := (1 - lim.TokensAt(now)) / float64(lmt) * float64(time.Second); wait > float64(limit) {
			return time.Duration(min(wait, float64(maxRetryAfter))), nil, "rate exceeded and the wait would pass max wait or the deadline"
		}
	}
	// Reserve the token to learn exactly when it is ours, then wait for it
	// or give it back.
	r = lim.ReserveN(now, 1)
	if !r.OK() {
		return rate.InfDuration, nil, "no token can ever be granted"
	}
	d = r.DelayFrom(now)
	if d == 0 {
		return 0, nil, ""
	}
	if d > limit { // rounding: the check above saw the wait within limit
		r.CancelAt(now)
		return d, nil, "rate exceeded and the wait would pass max wait or the deadline"
	}
	return d, r, ""
}

// admitted logs, once, the end of a run of rejections that has not gone on
// for an interval (see package lograte), on a call that got its token.
func (c *rateCore) admitted(ctx context.Context) {
	c.rejections.LogEnd(ctx, c.logger, c.clock, "ratelimit.rejections_ended", lograte.EndReason,
		slog.String(logctx.KeyDependency, c.name))
}

func (c *rateCore) reject(ctx context.Context, retryAfter time.Duration, reason string) error {
	retryAfter = min(retryAfter, maxRetryAfter)
	if c.logger != nil {
		if level, n := c.rejections.Occur(c.clock.Now(), slog.LevelInfo); c.logger.Enabled(ctx, level) {
			logctx.Decision(ctx, c.logger, level, "ratelimit.rejected", reason, lograte.Suppressed([]slog.Attr{
				slog.String(logctx.KeyDependency, c.name),
				slog.Duration("retry_after", retryAfter),
				slog.Float64("rate", float64(c.limit)),
				slog.Int("burst", c.burst)}, n)...)
		}
	}
	return rejected(contract.KindRateLimited, c.name, CodeRateLimited,
		"too many requests; retry after the indicated delay", retryAfter)
}

// Limiter is a token-bucket rate limiter built on golang.org/x/time/rate:
// the bucket holds at most Burst tokens and refills at Rate per second; each
// call spends one. What a call does when the bucket is empty depends on the
// Mode: Reject fails at once, Wait sleeps until its token is due if that is
// soon enough. Every refusal is a *contract.Error of KindRateLimited (code
// CodeRateLimited) whose RetryAfter is the time until a token is available,
// computed from the bucket's state without reserving anything, so a refused
// call consumes nothing, even among many concurrent ones. (A Wait-mode call
// cancelled while it waits gives its token back as x/time/rate does: fully
// unless a later call already counted on it.) Hints are capped at a year.
//
// For one bucket per caller (API key, tenant, IP) use KeyedLimiter.
//
// A Limiter is safe for concurrent use. Create one with NewLimiter; the zero
// value is not usable.
type Limiter struct {
	core   rateCore
	bucket bucket
}

// NewLimiter returns a Limiter for cfg, or a *contract.Error of KindInvalid
// (code "config.invalid") naming the first bad field.
func NewLimiter(cfg LimiterConfig) (*Limiter, error) {
	c, err := newRateCore(cfg, "LimiterConfig")
	if err != nil {
		return nil, err
	}
	l := &Limiter{core: c}
	c.initBucket(&l.bucket)
	return l, nil
}

// Take spends one token, waiting for it in Wait mode. It returns nil when
// the call may proceed; a KindRateLimited *contract.Error with RetryAfter
// when refused; or, when ctx ends during a wait, KindCanceled or
// KindTimeout wrapping ctx.Err().
func (l *Limiter) Take(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	return l.core.take(ctx, &l.bucket, l.core.clock.Now())
}
