package retry

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/sadpath/sadpath/contract"
)

// StopReason tells why Do stopped retrying. It is an error so that
// errors.Is(err, retry.StopBudget) matches the *Error returned by Do.
type StopReason uint8

const (
	// StopAttempts: MaxAttempts attempts were made.
	StopAttempts StopReason = iota + 1
	// StopElapsed: the next wait would end after MaxElapsedTime.
	StopElapsed
	// StopDeadline: the next attempt could not finish before the context
	// deadline, so Do gave up early instead of sleeping past it.
	StopDeadline
	// StopBudget: the retry budget refused the retry.
	StopBudget
	// StopPermanent: the failure was classified Permanent.
	StopPermanent
	// StopOverloaded: the dependency answered "overloaded, do not retry".
	StopOverloaded
	// StopContext: the caller's context was canceled or its deadline passed.
	StopContext
	// StopRetryAfter: an open circuit breaker turned the call away until
	// its next probe, or a rate limiter of this process until its next
	// token, further off than MaxDelay: a retry sooner would be turned
	// away too.
	StopRetryAfter
)

var stopNames = [...]string{
	StopAttempts:   "attempts exhausted",
	StopElapsed:    "max elapsed time exhausted",
	StopDeadline:   "context deadline too close",
	StopBudget:     "retry budget exhausted",
	StopPermanent:  "permanent error",
	StopOverloaded: "dependency overloaded",
	StopContext:    "context done",
	StopRetryAfter: "refused past max delay",
}

// String returns the human name of the reason ("retry budget exhausted").
func (r StopReason) String() string {
	if r > 0 && int(r) < len(stopNames) {
		return stopNames[r]
	}
	return "stop(" + strconv.Itoa(int(r)) + ")"
}

// Error makes a StopReason usable as an errors.Is target.
func (r StopReason) Error() string { return "retry: " + r.String() }

// Error is the error returned by Do when it gives up. It unwraps to the last
// failure, so errors.Is/As and contract.KindOf see the dependency's error;
// errors.Is also matches the StopReason, and for StopContext and
// StopDeadline the context's error (context.Canceled /
// context.DeadlineExceeded). Its Timeout method keeps a timeout a timeout
// for os.IsTimeout and net.Error users, through http.Client's *url.Error.
type Error struct {
	Op       string        // Config.Name of the policy, may be empty
	Attempts int           // attempts made (0 when the context was done before the first)
	Elapsed  time.Duration // time from the first failure to giving up
	Reason   StopReason    // why it stopped
	Cause    error         // the last failure (or the context error when there was no attempt)
	ctxErr   error
}

// Error reads "retry: gave up after 3 attempts in 1.2s (attempts exhausted): cause".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("retry: ")
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	b.WriteString("gave up after ")
	b.WriteString(strconv.Itoa(e.Attempts))
	if e.Attempts == 1 {
		b.WriteString(" attempt in ")
	} else {
		b.WriteString(" attempts in ")
	}
	b.WriteString(e.Elapsed.String())
	b.WriteString(" (")
	b.WriteString(e.Reason.String())
	b.WriteString(")")
	if e.Cause != nil {
		b.WriteString(": ")
		b.WriteString(e.Cause.Error())
	}
	return b.String()
}

// Unwrap returns the last failure.
func (e *Error) Unwrap() error { return e.Cause }

// Is matches the StopReason, and the context error when the context ended
// the retries.
func (e *Error) Is(target error) bool {
	if r, ok := target.(StopReason); ok {
		return r == e.Reason
	}
	if e.ctxErr != nil && (target == context.Canceled || target == context.DeadlineExceeded) {
		return errors.Is(e.ctxErr, target)
	}
	return false
}

// Timeout reports whether the retries ended in a timeout: a context
// deadline stopped them (StopDeadline, or StopContext with
// context.DeadlineExceeded), or the last failure was one — its contract
// kind is KindTimeout (an attempt timeout, a net.Error timeout, a 408 or
// 504 …) or the Cause itself has a Timeout method reporting true. It is the
// method *url.Error.Timeout, os.IsTimeout and the net.Error idiom ask, so
// an http.Client call through a Transport whose attempts all timed out
// reports a timeout, as it does with the base transport alone.
func (e *Error) Timeout() bool {
	if e.ctxErr != nil && errors.Is(e.ctxErr, context.DeadlineExceeded) {
		return true
	}
	if e.Cause == nil {
		return false
	}
	if t, ok := e.Cause.(interface{ Timeout() bool }); ok && t.Timeout() {
		return true
	}
	return contract.KindOf(e.Cause) == contract.KindTimeout
}
