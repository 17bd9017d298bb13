package contract

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// timeoutErr is a net.Error that timed out.
type timeoutErr struct{ timeout bool }

func (e timeoutErr) Error() string   { return "i/o timeout" }
func (e timeoutErr) Timeout() bool   { return e.timeout }
func (e timeoutErr) Temporary() bool { return false }

var _ net.Error = timeoutErr{}

// plainTimeouter has only Timeout(): client libraries often do this.
type plainTimeouter struct{}

func (plainTimeouter) Error() string { return "driver: timed out" }
func (plainTimeouter) Timeout() bool { return true }

func TestKindOfClassification(t *testing.T) {
	base := New(KindConflict, "orders.create", "order exists")
	tests := []struct {
		name      string
		err       error
		kind      Kind
		retryable bool
	}{
		{"nil", nil, KindInternal, false},
		{"unknown error", errors.New("boom"), KindInternal, false},
		{"deadline", context.DeadlineExceeded, KindTimeout, true},
		{"wrapped deadline", fmt.Errorf("calling psp: %w", context.DeadlineExceeded), KindTimeout, true},
		{"canceled", context.Canceled, KindCanceled, false},
		{"wrapped canceled", fmt.Errorf("a: %w", fmt.Errorf("b: %w", context.Canceled)), KindCanceled, false},
		{"net.Error timeout", timeoutErr{timeout: true}, KindTimeout, true},
		{"net.Error not a timeout", timeoutErr{timeout: false}, KindInternal, false},
		{"net.OpError read timeout", &net.OpError{Op: "read", Net: "tcp", Err: timeoutErr{timeout: true}}, KindTimeout, true},
		{"os.ErrDeadlineExceeded", fmt.Errorf("read: %w", os.ErrDeadlineExceeded), KindTimeout, true},
		{"Timeout() only", plainTimeouter{}, KindTimeout, true},
		{"connection refused", &net.OpError{Op: "read", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, KindUnavailable, true},
		{"dial failure", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("no route to host")}, KindUnavailable, true},
		{"dial timeout is a timeout", &net.OpError{Op: "dial", Err: timeoutErr{timeout: true}}, KindTimeout, true},
		{"MaxBytesError", fmt.Errorf("body: %w", &http.MaxBytesError{Limit: 10}), KindTooLarge, false},
		{"*Error", base, KindConflict, false},
		{"wrapped *Error", fmt.Errorf("handler: %w", base), KindConflict, false},
		{"*Error wins over its cause", Wrap(KindUnavailable, "psp", context.Canceled), KindUnavailable, true},
		{"outer *Error wins", Wrap(KindInvalid, "outer", Wrap(KindTimeout, "inner", nil)), KindInvalid, false},
		{"override retryable", New(KindInternal, "x", "").WithRetryable(true), KindInternal, true},
		{"override not retryable", New(KindTimeout, "x", "").WithRetryable(false), KindTimeout, false},
		{"overloaded not retryable", New(KindOverloaded, "x", ""), KindOverloaded, false},
		{"rate limited", New(KindRateLimited, "x", ""), KindRateLimited, true},
		{"unavailable", New(KindUnavailable, "x", ""), KindUnavailable, true},
		{"malformed", New(KindMalformed, "x", ""), KindMalformed, false},
		{"joined: first *Error", errors.Join(errors.New("x"), New(KindNotFound, "", "")), KindNotFound, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := KindOf(tt.err); got != tt.kind {
				t.Errorf("KindOf = %v, want %v", got, tt.kind)
			}
			if got := Retryable(tt.err); got != tt.retryable {
				t.Errorf("Retryable = %v, want %v", got, tt.retryable)
			}
			e := As(tt.err)
			if tt.err == nil {
				if e != nil {
					t.Fatalf("As(nil) = %v, want nil", e)
				}
				return
			}
			if e.Kind != tt.kind {
				t.Errorf("As(err).Kind = %v, want %v", e.Kind, tt.kind)
			}
			if !errors.Is(tt.err, kindSentinel(tt.kind)) && errors.As(tt.err, new(*Error)) {
				t.Errorf("errors.Is(err, Err%v) = false", tt.kind)
			}
		})
	}
}

func TestAsKeepsClassifiedCause(t *testing.T) {
	cause := fmt.Errorf("psp: %w", context.DeadlineExceeded)
	e := As(cause)
	if e.Cause != cause || e.Kind != KindTimeout {
		t.Fatalf("As = %+v", e)
	}
	if !errors.Is(e, context.DeadlineExceeded) {
		t.Fatal("the classified error must still match its cause")
	}
	existing := New(KindConflict, "op", "d")
	if As(fmt.Errorf("w: %w", existing)) != existing {
		t.Fatal("As must return the *Error in the chain, not a copy")
	}
}

func TestSentinels(t *testing.T) {
	sentinels := map[Kind]error{
		KindInternal: ErrInternal, KindInvalid: ErrInvalid, KindUnauthorized: ErrUnauthorized,
		KindForbidden: ErrForbidden, KindNotFound: ErrNotFound, KindConflict: ErrConflict,
		KindPreconditionFailed: ErrPreconditionFailed, KindTooLarge: ErrTooLarge,
		KindRateLimited: ErrRateLimited, KindUnavailable: ErrUnavailable, KindTimeout: ErrTimeout,
		KindCanceled: ErrCanceled, KindOverloaded: ErrOverloaded, KindMalformed: ErrMalformed,
	}
	if len(sentinels) != len(kindNames) {
		t.Fatalf("%d sentinels for %d kinds", len(sentinels), len(kindNames))
	}
	for k, s := range sentinels {
		err := fmt.Errorf("wrapped: %w", New(k, "op", ""))
		for k2, s2 := range sentinels {
			if got := errors.Is(err, s2); got != (k == k2) {
				t.Errorf("errors.Is(%v error, Err%v) = %v", k, k2, got)
			}
		}
		if s.Error() != "contract: "+k.String() {
			t.Errorf("sentinel text %q", s.Error())
		}
	}
	// Is against another *Error compares Kind and Code.
	a := New(KindConflict, "a", "x").WithCode("order.exists")
	if !errors.Is(a, &Error{Kind: KindConflict, Code: "order.exists"}) {
		t.Error("same kind and code must match")
	}
	if errors.Is(a, &Error{Kind: KindConflict, Code: "order.other"}) {
		t.Error("other code must not match")
	}
}

// errors.Is with a typed-nil *Error target panicked inside (*Error).Is.
func TestErrorIsNilErrorTarget(t *testing.T) {
	var target *Error
	if errors.Is(New(KindInvalid, "op", "d"), target) {
		t.Error("an *Error is a nil *Error")
	}
	if errors.Is(fmt.Errorf("w: %w", New(KindInternal, "", "")), target) {
		t.Error("a wrapped *Error is a nil *Error")
	}
}

// A function that returns a nil *Error as an error hands its caller a
// non-nil error holding a nil *Error. KindOf, Retryable and WriteProblem
// dereferenced it and panicked (in the error path of a handler); it is an
// internal error.
func TestTypedNilErrorIsInternal(t *testing.T) {
	var nilErr *Error
	for name, err := range map[string]error{
		"bare":    nilErr,
		"wrapped": fmt.Errorf("charge: %w", nilErr),
	} {
		t.Run(name, func(t *testing.T) {
			if k := KindOf(err); k != KindInternal {
				t.Errorf("KindOf = %v, want internal", k)
			}
			if Retryable(err) {
				t.Error("Retryable = true, want false")
			}
			if errors.Is(err, ErrUnavailable) || errors.Is(err, &Error{Kind: KindUnavailable}) || !errors.Is(err, ErrInternal) {
				t.Error("errors.Is: a nil *Error must match ErrInternal only")
			}
			e := As(err)
			if e == nil || e.Kind != KindInternal || e.Error() == "" {
				t.Errorf("As = %#v, want a usable internal *Error", e)
			}
			rec := httptest.NewRecorder()
			WriteProblem(rec, httptest.NewRequest("GET", "/", nil), err)
			if rec.Code != 500 {
				t.Errorf("status %d, want 500", rec.Code)
			}
		})
	}
}

// Code defaults to the kind's name, and Is compares that effective code: an
// error parsed back from a problem carries the code "unavailable" written
// out, and must still match the error it was written from.
func TestErrorIsComparesEffectiveCode(t *testing.T) {
	plain := New(KindUnavailable, "", "")
	explicit := New(KindUnavailable, "", "").WithCode("unavailable")
	if !errors.Is(explicit, plain) || !errors.Is(plain, explicit) {
		t.Errorf("same Kind and effective Code, but errors.Is = %v / %v", errors.Is(explicit, plain), errors.Is(plain, explicit))
	}
	rec := httptest.NewRecorder()
	WriteProblem(rec, httptest.NewRequest("GET", "/", nil), plain)
	parsed := ParseProblemAt(rec.Result(), now)
	if !errors.Is(parsed, plain) {
		t.Errorf("problem parsed back (code %q) does not match the error written", As(parsed).Code)
	}
	for _, other := range []*Error{
		New(KindUnavailable, "", "").WithCode("psp.down"),            // other code
		New(KindTimeout, "", "").WithCode("unavailable"),             // other kind, code naming this one
		New(KindRateLimited, "", ""),                                 // other kind
		New(KindUnavailable, "", "").WithCode("rate_limited"),        // a code naming another kind
		New(KindInternal, "", "").WithCode(KindUnavailable.String()), // zero Kind
	} {
		if errors.Is(plain, other) || errors.Is(other, plain) {
			t.Errorf("%v matches %v", other, plain)
		}
	}
	// The sentinels match the kind whatever the code.
	if !errors.Is(plain.WithCode("psp.down"), ErrUnavailable) || errors.Is(plain, ErrTimeout) {
		t.Error("sentinels must match the Kind alone")
	}
}

func TestKindNamesStable(t *testing.T) {
	// The names are part of the wire contract (problem "code", logs).
	want := map[Kind]string{
		KindInternal: "internal", KindInvalid: "invalid", KindUnauthorized: "unauthorized",
		KindForbidden: "forbidden", KindNotFound: "not_found", KindConflict: "conflict",
		KindPreconditionFailed: "precondition_failed", KindTooLarge: "too_large",
		KindRateLimited: "rate_limited", KindUnavailable: "unavailable", KindTimeout: "timeout",
		KindCanceled: "canceled", KindOverloaded: "overloaded", KindMalformed: "malformed",
	}
	for k, name := range want {
		if k.String() != name {
			t.Errorf("%d.String() = %q, want %q", k, k.String(), name)
		}
		if got, ok := ParseKind(name); !ok || got != k {
			t.Errorf("ParseKind(%q) = %v, %v", name, got, ok)
		}
	}
	if Kind(200).String() != "kind(200)" {
		t.Errorf("unknown kind: %q", Kind(200).String())
	}
	if _, ok := ParseKind("nonsense"); ok {
		t.Error("ParseKind accepted an unknown name")
	}
}

func TestErrorMessage(t *testing.T) {
	tests := []struct {
		err  *Error
		want string
	}{
		{New(KindInvalid, "", ""), "invalid"},
		{New(KindUnavailable, "psp.charge", "try later"), "psp.charge: unavailable: try later"},
		{New(KindConflict, "orders", "exists").WithCode("order.exists"), "orders: conflict (order.exists): exists"},
		{New(KindConflict, "orders", "").WithCode("conflict"), "orders: conflict"},
		{Wrap(KindTimeout, "db.query", context.DeadlineExceeded), "db.query: timeout: context deadline exceeded"},
		{ConfigError("retry", "Config.MaxAttempts", "must be >= 1, got -1"), "retry: invalid (config.invalid): Config.MaxAttempts: must be >= 1, got -1"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestConfigError(t *testing.T) {
	var err error = ConfigError("retry", "Config.MaxAttempts", "must be >= 1, got -1")
	if !errors.Is(err, ErrInvalid) {
		t.Fatal("config errors must match ErrInvalid")
	}
	e := As(err)
	if e.Code != "config.invalid" || !strings.Contains(e.Detail, "Config.MaxAttempts") || len(e.Fields) != 1 || e.Fields[0].Name != "Config.MaxAttempts" {
		t.Fatalf("ConfigError = %+v", e)
	}
}

func TestRetryAfterChain(t *testing.T) {
	inner := New(KindRateLimited, "psp", "").WithRetryAfter(3 * time.Second)
	tests := []struct {
		name string
		err  error
		want time.Duration
		ok   bool
	}{
		{"nil", nil, 0, false},
		{"plain", errors.New("x"), 0, false},
		{"no hint", New(KindUnavailable, "", ""), 0, false},
		{"hint", inner, 3 * time.Second, true},
		{"wrapped hint", fmt.Errorf("w: %w", inner), 3 * time.Second, true},
		{"outer without hint, inner with", Wrap(KindUnavailable, "svc", fmt.Errorf("w: %w", inner)), 3 * time.Second, true},
		{"outer hint wins", Wrap(KindUnavailable, "svc", inner).WithRetryAfter(time.Second), time.Second, true},
		{"negative is none", New(KindRateLimited, "", "").WithRetryAfter(-time.Second), 0, false},
		// The whole tree counts, in errors.As order: an *Error without a
		// hint does not hide a hint in a later branch.
		{"errors.Join", errors.Join(New(KindInvalid, "a", "bad"), inner), 3 * time.Second, true},
		{"fmt.Errorf with two %w", fmt.Errorf("fanout: %w; %w", New(KindInvalid, "a", "bad"), inner), 3 * time.Second, true},
		{"cause is a join", Wrap(KindUnavailable, "fanout", errors.Join(New(KindUnavailable, "a", ""), inner)), 3 * time.Second, true},
		{"first hint in errors.As order wins", errors.Join(
			Wrap(KindUnavailable, "a", errors.Join(New(KindUnavailable, "a1", ""), fmt.Errorf("w: %w", New(KindRateLimited, "a2", "").WithRetryAfter(2*time.Second)))),
			inner,
		), 2 * time.Second, true},
		{"join without hints", errors.Join(New(KindInvalid, "a", ""), errors.New("x")), 0, false},
		{"nil *Error in a join", errors.Join(error((*Error)(nil)), inner), 3 * time.Second, true},
		// An error presenting itself as an *Error through an As method
		// counts as that *Error at its place in the tree.
		{"As method", fmt.Errorf("w: %w", presentsAsError{New(KindRateLimited, "sdk", "").WithRetryAfter(5 * time.Second)}), 5 * time.Second, true},
		{"As method after an *Error without hint", errors.Join(New(KindInvalid, "a", ""), presentsAsError{New(KindRateLimited, "sdk", "").WithRetryAfter(5 * time.Second)}), 5 * time.Second, true},
		{"As method without hint does not hide a later one", errors.Join(presentsAsError{New(KindUnavailable, "sdk", "")}, inner), 3 * time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ok := RetryAfter(tt.err)
			if d != tt.want || ok != tt.ok {
				t.Errorf("RetryAfter = %v, %v; want %v, %v", d, ok, tt.want, tt.ok)
			}
		})
	}
}

// presentsAsError is a foreign error (a client library's) that presents
// itself as an *Error through an As method instead of wrapping one.
type presentsAsError struct{ e *Error }

func (p presentsAsError) Error() string { return "sdk: " + p.e.Error() }

func (p presentsAsError) As(target any) bool {
	if t, ok := target.(**Error); ok {
		*t = p.e
		return true
	}
	return false
}

func TestCodeOrKind(t *testing.T) {
	if got := New(KindTimeout, "", "").CodeOrKind(); got != "timeout" {
		t.Errorf("CodeOrKind = %q", got)
	}
	if got := New(KindTimeout, "", "").WithCode("psp.slow").CodeOrKind(); got != "psp.slow" {
		t.Errorf("CodeOrKind = %q", got)
	}
}
