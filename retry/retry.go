package retry

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/internal/lograte"
	"github.com/sadpath/sadpath/logctx"
)

// defaultPolicy is what a nil *Policy means. It is never modified.
var defaultPolicy = func() *Policy {
	p, err := New(Config{})
	if err != nil {
		panic(err) // the zero Config is valid by construction
	}
	return p
}()

// Do calls fn until it succeeds or p says stop, and returns fn's value.
//
// fn receives the attempt's context: ctx itself, or a child with its own
// deadline when p has an AttemptTimeout. A failure is classified (see
// Classify and Config.Classifier): Permanent and Overloaded failures end at
// once; Transient ones are retried after a wait from p's strategy,
// lengthened to a contract.RetryAfter hint and always capped by MaxDelay
// (an open circuit breaker's hint longer than MaxDelay ends Do at once with
// StopRetryAfter: every retry before its probe would be turned away).
// Do never sleeps past ctx's deadline nor starts a retry that could not
// finish before it: it gives up early with StopDeadline. Cancelling ctx
// ends a wait at once, and no attempt starts on a context that is done.
//
// On failure Do returns the last value fn returned and an *Error that
// unwraps to fn's last error. A success at the first attempt allocates
// nothing, reads no clock and makes no otel call. A nil p means the
// defaults (New(Config{})).
func Do[T any](ctx context.Context, p *Policy, fn func(context.Context) (T, error)) (T, error) {
	// The common case, a first-try success under a plain policy, costs a
	// context check and the call; everything else is in slow.
	if p != nil && p.plain && ctx != nil && ctx.Err() == nil {
		v, err := fn(ctx)
		if err == nil {
			if p.logs != nil && p.logs.Active() {
				p.logEnds(ctx)
			}
			return v, nil
		}
		return loop(ctx, p, fn, v, err, true, nil)
	}
	return do(ctx, p, fn, nil)
}

// do is Do for a nil policy or context, a done context, a budget or an
// attempt timeout, and for the Transport, which passes beforeWait.
func do[T any](ctx context.Context, p *Policy, fn func(context.Context) (T, error), beforeWait func()) (T, error) {
	if p == nil {
		p = defaultPolicy
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		var zero T
		return zero, &Error{Op: p.name, Reason: StopContext, Cause: err, ctxErr: err}
	}
	var v T
	var err error
	if p.attemptTimeout > 0 {
		v, err = attemptTimeout(ctx, p, fn)
	} else {
		v, err = fn(ctx)
	}
	if err == nil {
		if p.budget != nil {
			p.budget.Call()
			p.budget.Success()
		}
		if p.logs != nil && p.logs.Active() {
			p.logEnds(ctx)
		}
		return v, nil
	}
	if p.budget != nil && !notSent(err) {
		// Counted once it reached the dependency: a circuit breaker's
		// rejection or a local refusal is no call for the Budget (see notSent).
		p.budget.Call()
	}
	return loop(ctx, p, fn, v, err, true, beforeWait)
}

// DoVoid is Do for functions that return only an error.
func DoVoid(ctx context.Context, p *Policy, fn func(context.Context) error) error {
	_, err := Do(ctx, p, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, fn(ctx)
	})
	return err
}

func attemptTimeout[T any](ctx context.Context, p *Policy, fn func(context.Context) (T, error)) (T, error) {
	actx, cancel := context.WithDeadline(ctx, p.clock.Now().Add(p.attemptTimeout))
	defer cancel()
	return fn(actx)
}

// loop is the failure path of Do: the first attempt failed with err.
// When timeouts is false the caller applies AttemptTimeout itself (the
// Transport must keep the attempt context alive while the body is read).
// beforeWait runs before each wait, once the retry is granted and before
// the time bounds are checked again (the Transport drains the discarded
// response there).
func loop[T any](ctx context.Context, p *Policy, fn func(context.Context) (T, error), v T, err error, timeouts bool, beforeWait func()) (T, error) {
	c := call{p: p, s: schedule{p: p}}
	for n := 1; ; n++ {
		wait, final := c.failed(ctx, n, err, beforeWait)
		if final != nil {
			return v, final
		}
		// A context that ended as the wait did (a tie the Clock may report
		// either way) must not get an attempt: it could not finish.
		serr := p.clock.Sleep(ctx, wait)
		if serr == nil {
			serr = ctx.Err()
		}
		if serr != nil {
			return v, c.stop(ctx, n, StopContext, err, serr)
		}
		// The wait may have ended late (a timer firing late, a host
		// suspended): the attempt must still have a full AttemptTimeout
		// before the deadline.
		if p.reserve > 0 {
			if dl, ok := ctx.Deadline(); ok {
				if now := p.clock.Now(); dl.Sub(now) < p.reserve {
					return v, c.stopAt(ctx, now, n, StopDeadline, err, context.DeadlineExceeded)
				}
			}
		}
		if timeouts && p.attemptTimeout > 0 {
			v, err = attemptTimeout(ctx, p, fn)
		} else {
			v, err = fn(ctx)
		}
		if err == nil {
			if p.budget != nil {
				p.budget.Success()
			}
			if p.logs != nil && p.logs.Active() {
				p.logEnds(ctx)
			}
			return v, nil
		}
	}
}

// The decisions whose lines are paced (see package lograte): a dependency
// that is down would otherwise get a line per retry and per give-up.
const (
	logRetrying = iota
	logGaveUp
	logBudget
	numLogs
)

// logEnds writes the end of each paced decision that has not occurred for
// an interval, on a call that succeeded.
func (p *Policy) logEnds(ctx context.Context) {
	p.logs.LogEnds(ctx, p.logger, p.clock, logEnd, slog.String(logctx.KeyDependency, p.name))
}

func logEnd(i int) (string, string) {
	switch i {
	case logRetrying:
		return "retries ended", lograte.EndReason
	case logGaveUp:
		return "give-ups ended", lograte.EndReason
	}
	return "retry budget available again", lograte.EndReason
}

// call is the per-call state of the failure path.
type call struct {
	p     *Policy
	s     schedule
	start time.Time // end of the first failed attempt
}

// failed decides what follows the failure err of attempt n: a wait before
// the next attempt, or the final error. beforeWait, when set, runs once the
// retry is granted.
func (c *call) failed(ctx context.Context, n int, err error, beforeWait func()) (time.Duration, *Error) {
	p := c.p
	now := p.clock.Now()
	if n == 1 {
		c.start = now
	}
	if cerr := ctx.Err(); cerr != nil {
		return 0, c.stopAt(ctx, now, n, StopContext, err, cerr)
	}
	switch p.classify(err) {
	case Permanent:
		return 0, c.stopAt(ctx, now, n, StopPermanent, err, nil)
	case Overloaded:
		if p.budget != nil && !notSent(err) {
			p.budget.Failure()
		}
		return 0, c.stopAt(ctx, now, n, StopOverloaded, err, nil)
	}
	if p.budget != nil && !notSent(err) {
		p.budget.Failure()
	}
	if n >= p.maxAttempts {
		return 0, c.stopAt(ctx, now, n, StopAttempts, err, nil)
	}
	wait := c.s.next()
	capped := false // the wait is a hint cut to MaxDelay
	if ra, ok := contract.RetryAfter(err); ok && ra > wait {
		if ra > p.maxDelay && exactHint(err) {
			// The hint is no guess: nothing gets through before it, so a
			// retry capped to MaxDelay would only be turned away again,
			// after waiting for nothing.
			return 0, c.stopAt(ctx, now, n, StopRetryAfter, err, nil)
		}
		wait, capped = ra, ra >= p.maxDelay
	}
	wait = min(wait, p.maxDelay)
	wait, final := c.late(ctx, now, n, err, wait, false)
	if final != nil {
		return 0, final
	}
	if p.budget != nil && !p.budget.Retry() {
		return 0, c.stopAt(ctx, now, n, StopBudget, err, nil)
	}
	// Draining the discarded response (bounded by the attempt's context
	// and the Transport's BodyTimeout) and the OnRetry hook take time that now did not see: the
	// retry must still fit, on a fresh reading of the clock, before it is
	// logged and the wait begins. A retry dropped here was granted by the
	// budget, which then counts one retry too many: the safe side. A
	// capped hint is the exception: it may fill MaxElapsedTime exactly
	// (MaxDelay == MaxElapsedTime), so any time spent here would drop the
	// retry the hint was capped to allow; it is cut to what is left of
	// MaxElapsedTime instead, which still ends no earlier than the wait
	// granted above. The deadline is checked on the cut wait as on any.
	if beforeWait != nil || p.onRetry != nil {
		if beforeWait != nil {
			beforeWait()
		}
		if p.onRetry != nil {
			p.onRetry(n, wait, err)
		}
		now = p.clock.Now()
		if cerr := ctx.Err(); cerr != nil {
			return 0, c.stopAt(ctx, now, n, StopContext, err, cerr)
		}
		if wait, final = c.late(ctx, now, n, err, wait, capped); final != nil {
			return 0, final
		}
	}
	if p.logger != nil {
		if level, k := p.logs.Occur(logRetrying, now, slog.LevelInfo); p.logger.Enabled(ctx, level) {
			logctx.Decision(ctx, p.logger, level, "retrying", errorType(err), lograte.Suppressed([]slog.Attr{
				slog.String(logctx.KeyDependency, p.name),
				slog.Int("attempt", n),
				slog.Duration("delay", wait),
				slog.String("error", logText(err))}, k)...)
		}
	}
	p.tel.retry(ctx, p.name, n, wait, err)
	return wait, nil
}

// late returns the final error when a wait of wait starting at now would
// end after MaxElapsedTime, or would not leave a full AttemptTimeout (when
// one is set) before ctx's deadline; nil and the wait when the retry fits.
// With cut, a wait ending after MaxElapsedTime is shortened to end at it
// (when it has not passed) instead, before the deadline is checked. It
// compares differences, not sums: a MaxElapsedTime or MaxDelay near the
// largest Duration would overflow elapsed+wait.
func (c *call) late(ctx context.Context, now time.Time, n int, err error, wait time.Duration, cut bool) (time.Duration, *Error) {
	p := c.p
	if left := p.maxElapsed - max(0, now.Sub(c.start)); wait > left {
		if !cut || left < 0 {
			return 0, c.stopAt(ctx, now, n, StopElapsed, err, nil)
		}
		wait = left
	}
	if dl, ok := ctx.Deadline(); ok {
		left := dl.Sub(now)
		if wait >= left || p.reserve > left-wait {
			return 0, c.stopAt(ctx, now, n, StopDeadline, err, context.DeadlineExceeded)
		}
	}
	return wait, nil
}

func (c *call) stop(ctx context.Context, n int, r StopReason, cause, ctxErr error) *Error {
	return c.stopAt(ctx, c.p.clock.Now(), n, r, cause, ctxErr)
}

func (c *call) stopAt(ctx context.Context, now time.Time, n int, r StopReason, cause, ctxErr error) *Error {
	p := c.p
	e := &Error{Op: p.name, Attempts: n, Elapsed: now.Sub(c.start), Reason: r, Cause: cause, ctxErr: ctxErr}
	if n == 1 && (r == StopPermanent || r == StopRetryAfter || (r == StopOverloaded && innerOverloaded(cause))) {
		// Not a retry decision: the caller gets its error, unretried. An
		// inner layer's overloaded give-up was logged and counted there:
		// counting it again here would report one failure twice; so was
		// the opening of a breaker that turns every call away (a line per
		// rejected call would flood the logs for as long as it is open).
		return e
	}
	if p.logger != nil {
		msg, i := "gave up retrying", logGaveUp
		if r == StopBudget {
			msg, i = "retry budget exhausted", logBudget
		}
		if level, k := p.logs.Occur(i, now, slog.LevelWarn); p.logger.Enabled(ctx, level) {
			logctx.Decision(ctx, p.logger, level, msg, r.String(), lograte.Suppressed([]slog.Attr{
				slog.String(logctx.KeyDependency, p.name),
				slog.Int("attempts", n),
				slog.Duration("elapsed", e.Elapsed),
				slog.String("error", logText(cause))}, k)...)
		}
	}
	p.tel.giveUp(ctx, p.name, e)
	return e
}

// exactHint reports whether err's retry-after hint is the time before
// which any retry is certainly refused again without reaching the
// dependency: an open circuit breaker's (package breaker's, errors.Is
// gobreaker.ErrOpenState: the time until its next probe) or a rate limiter
// of this process refusing the call (KindRateLimited wrapping
// contract.ErrRefusedLocally, package limit's: the time until its bucket
// holds a token). A dependency's own hint is advice, and a full bulkhead's
// a guess: they are waited for, capped by MaxDelay.
func exactHint(err error) bool {
	if errors.Is(err, gobreaker.ErrOpenState) {
		return true
	}
	ce := contract.As(err)
	return ce != nil && ce.Kind == contract.KindRateLimited && errors.Is(ce, contract.ErrRefusedLocally)
}

// notSent reports whether err is a circuit breaker's rejection (package
// breaker's, errors.Is gobreaker.ErrOpenState or ErrTooManyRequests) or
// another local refusal (package limit's rate limiters and bulkheads,
// errors.Is contract.ErrRefusedLocally): the call never reached the
// dependency. It is neither a Call nor a Failure for the Budget, which
// protects the dependency from load a refusal does not add, and a failure
// the breaker has already counted: an outage behind a breaker would
// otherwise empty a TokenBucket with rejections alone, and refuse retries
// long after the dependency is back, or swell a RatioBudget's count of
// calls, and with it the retries it allows once the breaker lets calls
// through again; so would a burst of calls over a local rate limit, the
// dependency healthy all along.
func notSent(err error) bool {
	return errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) ||
		errors.Is(err, contract.ErrRefusedLocally)
}

// innerOverloaded reports whether err is another retry layer's give-up
// as overloaded (an inner Do or Transport).
func innerOverloaded(err error) bool {
	var re *Error
	return errors.As(err, &re) && re.Reason == StopOverloaded
}

// errorType names a failure by its contract kind ("unavailable").
func errorType(err error) string {
	if err == nil {
		return ""
	}
	return contract.KindOf(err).String()
}
