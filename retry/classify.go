package retry

import (
	"errors"

	"github.com/cenkalti/backoff/v4"

	"github.com/sadpath/sadpath/contract"
)

// Class is what a Classifier decides about a failure.
type Class uint8

const (
	// Unknown defers to the next classifier (the default classification).
	Unknown Class = iota
	// Transient failures are retried.
	Transient
	// Permanent failures are returned at once.
	Permanent
	// Overloaded failures stop every retry at once: the dependency asked
	// callers to back off.
	Overloaded
)

// String returns the lower-case name of the class.
func (c Class) String() string {
	switch c {
	case Transient:
		return "transient"
	case Permanent:
		return "permanent"
	case Overloaded:
		return "overloaded"
	}
	return "unknown"
}

// A Classifier decides whether a failure may be retried. It returns Unknown
// to let the default classification decide.
//
// It is asked before the default classification, so it sees an inner
// retry layer's give-up (an *Error in the chain, see Classify) before
// Classify makes it final: a Classifier that answers Transient for it
// (errors.Is(err, contract.ErrUnavailable) matches the *Error's cause too)
// retries it, multiplying the attempts. Return Unknown for an *Error
// unless retrying at both layers is meant.
type Classifier func(err error) Class

// Classify is the default classification, in order:
//
//   - a *backoff.PermanentError (backoff.Permanent) is Permanent;
//   - contract.KindOverloaded is Overloaded;
//   - an *Error in the chain — another retry layer (an inner Do, a
//     Transport, through http.Client's *url.Error too) gave up — is
//     Permanent, whatever its StopReason and cause: that layer already
//     retried as far as its policy and budget allow, and retrying its
//     give-up would multiply the attempts (3 × 3 = 9 calls to a failing
//     dependency) and bypass its budget. The outer layer's *Error then
//     reads StopPermanent and unwraps to the inner one, so
//     errors.Is(err, StopBudget) and the cause's kind still tell why.
//     StopContext is the exception: the inner layer did not give up, the
//     context it was given ended — when the caller's context is still
//     alive, the outer layer's own AttemptTimeout — and the error is
//     classified as below (a context deadline is a timeout, Transient);
//   - contract.Retryable(err) — KindRateLimited, KindUnavailable,
//     KindTimeout (including context.DeadlineExceeded from an attempt timeout
//     and net.Error timeouts), or an explicit WithRetryable(true) — is
//     Transient;
//   - anything else (invalid, unauthorized, conflict, canceled, unknown
//     errors …) is Permanent.
//
// Unknown errors are not retried: wrap them with contract.Wrap(KindUnavailable, …)
// or supply a Classifier when they are known to be transient.
func Classify(err error) Class {
	if err == nil {
		return Unknown
	}
	var pe *backoff.PermanentError
	if errors.As(err, &pe) {
		return Permanent
	}
	if contract.KindOf(err) == contract.KindOverloaded {
		return Overloaded
	}
	var re *Error
	if errors.As(err, &re) && re.Reason != StopContext {
		return Permanent
	}
	if contract.Retryable(err) {
		return Transient
	}
	return Permanent
}

func (p *Policy) classify(err error) Class {
	if p.classifier != nil {
		if c := p.classifier(err); c != Unknown && c <= Overloaded {
			return c
		}
	}
	return Classify(err)
}
