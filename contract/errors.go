package contract

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Kind is the class of an error. It decides the HTTP status of the problem
// written for it and whether the operation may be retried. The zero Kind is
// KindInternal.
type Kind uint8

// The kinds of error. Their order is not part of the contract; use the names.
const (
	KindInternal           Kind = iota // a bug or an unknown failure: not retryable
	KindInvalid                        // well-formed input with an invalid meaning (amount -5, currency "XYZ"): never retried
	KindUnauthorized                   // missing or bad credentials
	KindForbidden                      // authenticated but not allowed
	KindNotFound                       // the target does not exist
	KindConflict                       // the state conflicts with the request (in flight, duplicate, version)
	KindPreconditionFailed             // a precondition (If-Match, fingerprint) failed
	KindTooLarge                       // the request body or value is over a size limit
	KindRateLimited                    // throttled: retry after a while
	KindUnavailable                    // the dependency is down or refusing: retry after a while
	KindTimeout                        // the operation did not finish in time: it may have succeeded
	KindCanceled                       // the caller gave up: never retried
	KindOverloaded                     // the dependency asks callers not to retry at all
	KindMalformed                      // syntactically malformed input (bad JSON, wrong types): never retried
)

var kindNames = [...]string{
	KindInternal:           "internal",
	KindInvalid:            "invalid",
	KindUnauthorized:       "unauthorized",
	KindForbidden:          "forbidden",
	KindNotFound:           "not_found",
	KindConflict:           "conflict",
	KindPreconditionFailed: "precondition_failed",
	KindTooLarge:           "too_large",
	KindRateLimited:        "rate_limited",
	KindUnavailable:        "unavailable",
	KindTimeout:            "timeout",
	KindCanceled:           "canceled",
	KindOverloaded:         "overloaded",
	KindMalformed:          "malformed",
}

// String returns the stable snake_case name of the kind ("rate_limited").
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// ParseKind returns the Kind named s (as returned by Kind.String).
func ParseKind(s string) (Kind, bool) {
	for k, n := range kindNames {
		if n == s {
			return Kind(k), true
		}
	}
	return KindInternal, false
}

// Retryable reports whether errors of this kind are transient by default:
// rate limited, unavailable and timeout. Overloaded is deliberately not
// retryable: the dependency asked callers to back off entirely.
func (k Kind) Retryable() bool {
	switch k {
	case KindRateLimited, KindUnavailable, KindTimeout:
		return true
	}
	return false
}

// Error is the error type every sadpath package speaks. Build one with New or
// Wrap (plus WithCode, WithRetryAfter, WithRetryable), match it with errors.Is against
// a Kind sentinel (errors.Is(err, contract.ErrUnavailable)) and read its
// detail with errors.As.
//
// Detail is meant for the client and must not carry internal text; the
// wrapped Cause carries the internal reason and is never written into a
// problem response.
type Error struct {
	Kind       Kind          // class of the error
	Code       string        // stable machine code, e.g. "payment.amount_out_of_range"; defaults to Kind.String()
	Op         string        // operation that failed, e.g. "payments.create"
	Detail     string        // human explanation safe to show to the client
	RetryAfter time.Duration // hint: do not retry before this; 0 means none
	Fields     []FieldError  // field errors (KindInvalid, KindMalformed), written as invalid-params
	Cause      error         // wrapped cause; internal, never shown to clients

	retry retryOverride
}

type retryOverride uint8

const (
	retryDefault retryOverride = iota
	retryYes
	retryNo
)

// FieldError names one invalid field and why it is invalid. Name uses a
// JSON-pointer-like dotted path ("payer.iban", "items[2].qty").
type FieldError struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// New returns an *Error of kind k for operation op with a client-safe detail.
func New(k Kind, op, detail string) *Error {
	return &Error{Kind: k, Op: op, Detail: detail}
}

// Wrap returns an *Error of kind k for operation op wrapping cause. The
// cause's text stays internal: Detail is left empty.
func Wrap(k Kind, op string, cause error) *Error {
	return &Error{Kind: k, Op: op, Cause: cause}
}

// WithCode sets the stable machine code and returns e.
func (e *Error) WithCode(code string) *Error { e.Code = code; return e }

// WithRetryAfter sets the retry-after hint and returns e.
func (e *Error) WithRetryAfter(d time.Duration) *Error { e.RetryAfter = d; return e }

// WithRetryable overrides whether the error is retryable, whatever its Kind.
func (e *Error) WithRetryable(ok bool) *Error {
	if ok {
		e.retry = retryYes
	} else {
		e.retry = retryNo
	}
	return e
}

// Retryable reports whether the operation may be retried: the override set
// with WithRetryable, or else Kind.Retryable.
func (e *Error) Retryable() bool {
	switch e.retry {
	case retryYes:
		return true
	case retryNo:
		return false
	}
	return e.Kind.Retryable()
}

// CodeOrKind returns Code, or the Kind name when Code is empty.
func (e *Error) CodeOrKind() string {
	if e.Code != "" {
		return e.Code
	}
	return e.Kind.String()
}

// Error reads "op: kind (code): detail: cause", leaving out empty parts and
// a code equal to the kind name. A nil *Error reads "<nil>", as fmt prints it.
func (e *Error) Error() string {
	if e == nil {
		return "<nil>"
	}
	var b strings.Builder
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	b.WriteString(e.Kind.String())
	if e.Code != "" && e.Code != e.Kind.String() {
		b.WriteString(" (")
		b.WriteString(e.Code)
		b.WriteString(")")
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	if e.Cause != nil {
		b.WriteString(": ")
		b.WriteString(e.Cause.Error())
	}
	return b.String()
}

// Unwrap returns the cause (nil for a nil *Error).
func (e *Error) Unwrap() error {
	if e == nil {
		return nil
	}
	return e.Cause
}

// Is matches the Kind sentinels (ErrInvalid, ErrUnavailable, …), whatever
// the error's Code, and another *Error with the same Kind and the same
// effective code (CodeOrKind: an empty Code matches the kind's name, as
// written in problems). A nil *Error target matches nothing.
func (e *Error) Is(target error) bool {
	if e == nil { // a nil *Error returned as an error: internal, as in As
		t, ok := target.(kindSentinel)
		return ok && Kind(t) == KindInternal
	}
	switch t := target.(type) {
	case kindSentinel:
		return e.Kind == Kind(t)
	case *Error:
		return t != nil && t.Kind == e.Kind && t.CodeOrKind() == e.CodeOrKind()
	}
	return false
}

// kindSentinel is the type of the Err* sentinels: errors.Is(err, ErrTimeout)
// is true for any *Error of KindTimeout in err's chain.
type kindSentinel Kind

func (k kindSentinel) Error() string { return "contract: " + Kind(k).String() }

// Sentinels for errors.Is, one per Kind.
var (
	ErrInternal           error = kindSentinel(KindInternal)
	ErrInvalid            error = kindSentinel(KindInvalid)
	ErrUnauthorized       error = kindSentinel(KindUnauthorized)
	ErrForbidden          error = kindSentinel(KindForbidden)
	ErrNotFound           error = kindSentinel(KindNotFound)
	ErrConflict           error = kindSentinel(KindConflict)
	ErrPreconditionFailed error = kindSentinel(KindPreconditionFailed)
	ErrTooLarge           error = kindSentinel(KindTooLarge)
	ErrRateLimited        error = kindSentinel(KindRateLimited)
	ErrUnavailable        error = kindSentinel(KindUnavailable)
	ErrTimeout            error = kindSentinel(KindTimeout)
	ErrCanceled           error = kindSentinel(KindCanceled)
	ErrOverloaded         error = kindSentinel(KindOverloaded)
	ErrMalformed          error = kindSentinel(KindMalformed)
)

// ErrRefusedLocally is the Cause of an error by which a guard in the
// calling process (package limit's rate limiters and bulkheads) refused a
// call before making it. errors.Is(err, ErrRefusedLocally) tells such a
// refusal from an error of the same kind that the dependency returned (a
// 429 it answered, read back with ParseProblem, never carries it): the
// dependency never saw the call, so the refusal added none of its load,
// and retry does not count it against a Budget; breaker does not count a
// rate limited one as a failure of the dependency either. Give it as the
// Cause of an admission control's own refusals for the same.
var ErrRefusedLocally = errors.New("refused locally")

// As returns the first *Error in err's chain, or, when there is none, a new
// *Error classifying err (see KindOf). It returns nil for a nil err. A nil
// *Error in the chain (a function that returned a nil *Error as an error)
// is a bug: it is reported as a new *Error of KindInternal wrapping err.
func As(err error) *Error {
	if err == nil {
		return nil
	}
	if e := firstError(err); e != nil {
		return e
	}
	return &Error{Kind: classify(err), Cause: err}
}

// firstError returns the first *Error in err's chain, or nil when there is
// none. errors.As stops at a nil *Error, whose fields cannot be read: it
// counts as an internal error.
func firstError(err error) *Error {
	var e *Error
	if !errors.As(err, &e) {
		return nil
	}
	if e == nil {
		return &Error{Kind: KindInternal, Cause: err}
	}
	return e
}

// KindOf classifies err: the Kind of the first *Error in its chain; else
// context.DeadlineExceeded and timeouts (net.Error, or any error with a
// Timeout() bool method returning true) are KindTimeout, context.Canceled is
// KindCanceled, a refused connection or a failed dial is KindUnavailable
// (the request never reached the dependency), *http.MaxBytesError is
// KindTooLarge, and anything unknown is KindInternal.
// KindOf(nil) is KindInternal; check err != nil first. A nil *Error in
// err's chain is KindInternal too.
func KindOf(err error) Kind {
	if e := firstError(err); e != nil {
		return e.Kind
	}
	return classify(err)
}

// timeouter is the behaviour net.Error, os.ErrDeadlineExceeded and many
// client libraries share; found with errors.As, never by string matching.
type timeouter interface{ Timeout() bool }

func classify(err error) Kind {
	switch {
	case err == nil:
		return KindInternal
	case errors.Is(err, context.DeadlineExceeded):
		return KindTimeout
	case errors.Is(err, context.Canceled):
		return KindCanceled
	}
	var te timeouter
	if errors.As(err, &te) && te.Timeout() {
		return KindTimeout
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return KindUnavailable
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return KindUnavailable
	}
	var me *http.MaxBytesError
	if errors.As(err, &me) {
		return KindTooLarge
	}
	return KindInternal
}

// ConfigError returns the error constructors return for a bad configuration
// value: KindInvalid, Code "config.invalid", Op the package ("retry"), the
// field named in Detail and in Fields. Its message reads
// "retry: invalid (config.invalid): Config.MaxAttempts: must be >= 1, got -1".
func ConfigError(op, field, reason string) *Error {
	return &Error{
		Kind:   KindInvalid,
		Code:   "config.invalid",
		Op:     op,
		Detail: field + ": " + reason,
		Fields: []FieldError{{Name: field, Reason: reason}},
	}
}

// Retryable reports whether err is transient: the first *Error's Retryable,
// else whether KindOf(err) is retryable. Unknown errors are not retryable.
// Retryable(nil) is false.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	if e := firstError(err); e != nil {
		return e.Retryable()
	}
	return classify(err).Retryable()
}

// RetryAfter returns the retry-after hint of the first *Error in err's chain
// that has one, and whether there was one. The whole tree is searched in the
// order errors.As uses (depth first, through Unwrap() error and
// Unwrap() []error, so the causes of errors.Join and of fmt.Errorf with
// several %w count), and an *Error without a hint does not hide a hint
// further on: errors.Join(invalid, rateLimited) yields rateLimited's hint.
// An error whose As method presents it as an *Error counts as that *Error
// at its place in the tree; the search then goes on with the error's own
// Unwrap, not with the presented *Error's Cause.
func RetryAfter(err error) (time.Duration, bool) {
	d := retryAfter(err)
	return d, d > 0
}

// retryAfter walks err's tree depth first, in errors.As order, and returns
// the first positive hint, or 0.
func retryAfter(err error) time.Duration {
	for err != nil {
		switch e := err.(type) {
		case *Error:
			if e == nil {
				return 0 // errors.As stops at a nil *Error too
			}
			if e.RetryAfter > 0 {
				return e.RetryAfter
			}
		case interface{ As(any) bool }:
			var ae *Error
			if e.As(&ae) && ae != nil && ae.RetryAfter > 0 {
				return ae.RetryAfter
			}
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, c := range u.Unwrap() {
				if d := retryAfter(c); d > 0 {
					return d
				}
			}
			return 0
		default:
			return 0
		}
	}
	return 0
}
