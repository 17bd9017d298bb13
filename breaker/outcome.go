package breaker

import (
	"errors"
	"time"

	"github.com/sadpath/sadpath/contract"
)

// Outcome is how a finished call counts for the breaker.
type Outcome uint8

// The outcomes of a call.
const (
	Success  Outcome = iota // the dependency answered well
	Failure                 // the dependency failed: counts toward tripping
	Ignore                  // the caller's fault (bad input, canceled): not counted
	Slow                    // took longer than SlowCallThreshold, whatever it returned: counts as a failure
	Rejected                // never ran: the breaker failed fast (metrics only)
)

var outcomeNames = [...]string{"success", "failure", "ignored", "slow", "rejected"}

// String returns "success", "failure", "ignored", "slow" or "rejected".
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "outcome(?)"
}

// Classify is the default classification of a call's error. A nil error is a
// Success. Errors of the caller — contract kinds invalid, unauthorized,
// forbidden, not found, conflict, precondition failed, too large, and
// canceled (including context.Canceled) — are ignored: they say nothing about
// the dependency's health; so is the refusal of a rate limiter of this
// process (rate limited, wrapping contract.ErrRefusedLocally: package
// limit's), which depends on how much the callers send, not on the
// dependency. Everything else — timeouts (including
// context.DeadlineExceeded and net timeouts), unavailable (a full bulkhead
// of package limit's too: its slots stay taken while the dependency is
// slow), rate limited by the dependency, overloaded, internal and unknown
// errors — is a Failure. Whatever the classification, a call slower than
// Config.SlowCallThreshold counts as Slow.
func Classify(err error) Outcome {
	if err == nil {
		return Success
	}
	switch contract.KindOf(err) {
	case contract.KindInvalid, contract.KindUnauthorized, contract.KindForbidden,
		contract.KindNotFound, contract.KindConflict, contract.KindPreconditionFailed,
		contract.KindTooLarge, contract.KindCanceled:
		return Ignore
	case contract.KindRateLimited:
		if errors.Is(contract.As(err), contract.ErrRefusedLocally) { // the rate limited error itself, not one beside it
			return Ignore
		}
	}
	return Failure
}

// State is the state of a Breaker.
type State uint8

// The states of a Breaker. ForcedOpen and ForcedClosed are set by an
// operator (ForceOpen, ForceClosed) and left only by Reset.
const (
	StateClosed       State = iota // calls flow and are counted
	StateHalfOpen                  // a few probes flow; the rest fail fast
	StateOpen                      // every call fails fast until the open delay ends
	StateForcedOpen                // isolated by an operator: every call fails fast
	StateForcedClosed              // bypassed by an operator: every call flows, uncounted
)

var stateNames = [...]string{"closed", "half_open", "open", "forced_open", "forced_closed"}

// String returns the snake_case name of s ("half_open").
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "state(?)"
}

// Counts are the calls counted in the current rolling window (closed) or
// since the breaker became half-open. They reset on every state change.
type Counts struct {
	Requests             uint32 // calls let through (counted or not)
	Successes            uint32
	Failures             uint32 // including slow calls
	Ignored              uint32 // classified Ignore
	ConsecutiveSuccesses uint32
	ConsecutiveFailures  uint32
}

// FailureRate returns Failures/(Successes+Failures), or 0 when nothing was counted.
func (c Counts) FailureRate() float64 {
	n := c.Successes + c.Failures
	if n == 0 {
		return 0
	}
	return float64(c.Failures) / float64(n)
}

// Transition describes one state change, as given to Config.OnStateChange.
type Transition struct {
	Name    string        // the breaker's name
	From    State         // the state left
	To      State         // the state entered
	Reason  string        // why, readable: "failure rate 0.60 over 20 calls >= 0.50"
	Counts  Counts        // the counts that decided it (trips from closed); zero otherwise
	OpenFor time.Duration // when To is StateOpen: how long until probes are let through
}

// Sentinels reachable with errors.Is from the error of a rejected call,
// shared with gobreaker (gobreaker.ErrOpenState, gobreaker.ErrTooManyRequests).
// The error itself is a *contract.Error of KindUnavailable.
var (
	ErrOpen          = errOpenState
	ErrTooManyProbes = errTooManyRequests
)

// Codes of the *contract.Error returned for rejected calls.
const (
	CodeOpen          = "breaker.open"           // open or forced open
	CodeTooManyProbes = "breaker.half_open_full" // half-open and every probe slot is taken
)
