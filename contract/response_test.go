package contract

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)

func response(status int, contentType, body string, header ...string) *http.Response {
	h := http.Header{}
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		h.Set(header[i], header[i+1])
	}
	req, _ := http.NewRequest("POST", "https://psp.example:8443/v1/charges?api_key=sk_live_123", nil)
	return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(body)), Request: req}
}

func TestErrorFromStatusKinds(t *testing.T) {
	want := map[int]Kind{
		400: KindMalformed, 401: KindUnauthorized, 403: KindForbidden, 404: KindNotFound, 410: KindNotFound,
		405: KindInvalid, 408: KindTimeout, 409: KindConflict, 412: KindPreconditionFailed, 428: KindPreconditionFailed,
		413: KindTooLarge, 415: KindInvalid, 422: KindInvalid, 425: KindUnavailable, 429: KindRateLimited,
		499: KindCanceled, 500: KindInternal, 501: KindInternal, 502: KindUnavailable, 503: KindUnavailable,
		504: KindTimeout, 599: KindInternal, 200: KindInternal, 302: KindInternal, 0: KindInternal, -1: KindInternal,
	}
	for status, kind := range want {
		e := ErrorFromStatusAt(status, nil, now)
		if e.Kind != kind {
			t.Errorf("ErrorFromStatus(%d).Kind = %v, want %v", status, e.Kind, kind)
		}
		var re *ResponseError
		if !errors.As(e, &re) || re.StatusCode != status {
			t.Errorf("ErrorFromStatus(%d): cause %v", status, e.Cause)
		}
	}
	// Every kind written by WriteProblem reads back as itself, except the
	// kinds sharing a status with another (overloaded needs the body's code).
	for k := range kindNames {
		kind := Kind(k)
		if kind == KindOverloaded {
			continue
		}
		if got := ErrorFromStatusAt(HTTPStatus(kind), nil, now).Kind; got != kind {
			t.Errorf("status of %v reads back as %v", kind, got)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"120", 120 * time.Second, true},
		{" 7 ", 7 * time.Second, true},
		{"0", 0, true},
		{"86400", 24 * time.Hour, true},
		{"86401", MaxRetryAfter, true},
		{"9999999999", MaxRetryAfter, true},
		{"99999999999999999999999999", MaxRetryAfter, true},
		{"-5", 0, false},
		{"+5", 0, false},
		{"1.5", 0, false},
		{"", 0, false},
		{"soon", 0, false},
		{"0x10", 0, false},
		{strings.Repeat("9", 100), 0, false},
		{"Wed, 25 Nov 2026 06:01:30 GMT", 90 * time.Second, true},
		{"Wednesday, 25-Nov-26 06:00:10 GMT", 10 * time.Second, true},
		{"Wed Nov 25 06:00:05 2026", 5 * time.Second, true},
		{"Wed, 25 Nov 2026 05:00:00 GMT", 0, true},
		{"Fri, 31 Dec 9999 23:59:59 GMT", MaxRetryAfter, true},
		{"Wed, 25 Nov 2026 06:01:30 +0100", 0, false},
	}
	for _, tt := range tests {
		got, ok := ParseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestErrorFromStatusRetryAfterUsesDateHeader(t *testing.T) {
	h := http.Header{}
	h.Set("Retry-After", "Wed, 25 Nov 2026 06:01:00 GMT")
	// Without a Date header the client's clock is the reference.
	if d := ErrorFromStatusAt(503, h, now).RetryAfter; d != time.Minute {
		t.Fatalf("RetryAfter = %v", d)
	}
	// The server's Date header wins: its clock wrote Retry-After.
	h.Set("Date", "Wed, 25 Nov 2026 06:00:50 GMT")
	if d := ErrorFromStatusAt(503, h, now).RetryAfter; d != 10*time.Second {
		t.Fatalf("RetryAfter with Date = %v", d)
	}
	h.Set("Date", "garbage")
	if d := ErrorFromStatusAt(503, h, now).RetryAfter; d != time.Minute {
		t.Fatalf("RetryAfter with a bad Date = %v", d)
	}
}

func TestParseProblem(t *testing.T) {
	tests := []struct {
		name       string
		resp       *http.Response
		kind       Kind
		code       string
		detail     string
		fields     int
		retryAfter time.Duration
		problem    bool
	}{
		{"problem json", response(422, ProblemContentType,
			`{"type":"about:blank","status":422,"code":"payment.invalid","detail":"2 fields are invalid","invalid-params":[{"name":"amount","reason":"must be positive"},{"name":"currency","reason":"unknown"}]}`),
			KindInvalid, "payment.invalid", "2 fields are invalid", 2, 0, true},
		{"rate limited with Retry-After", response(429, ProblemContentType, `{"status":429,"code":"rate_limited"}`, "Retry-After", "3"),
			KindRateLimited, "rate_limited", "", 0, 3 * time.Second, true},
		{"overloaded code refines 503", response(503, ProblemContentType, `{"code":"overloaded"}`), KindOverloaded, "overloaded", "", 0, 0, true},
		{"code naming another status does not change the kind", response(503, ProblemContentType, `{"code":"invalid"}`), KindUnavailable, "invalid", "", 0, 0, true},
		{"plain json tolerated", response(409, "application/json; charset=utf-8", `{"detail":"already captured","error":"conflict"}`), KindConflict, "", "already captured", 0, 0, true},
		{"no content type tolerated", response(404, "", `{"detail":"no such charge"}`), KindNotFound, "", "no such charge", 0, 0, true},
		{"html error page", response(502, "text/html", `<html><body>Bad Gateway</body></html>`), KindUnavailable, "", "", 0, 0, false},
		{"broken json", response(500, ProblemContentType, `{"detail":`), KindInternal, "", "", 0, 0, false},
		{"json array", response(400, "application/json", `[1,2]`), KindMalformed, "", "", 0, 0, false},
		{"empty body", response(504, ProblemContentType, ``), KindTimeout, "", "", 0, 0, false},
		{"status member ignored", response(503, ProblemContentType, `{"status":200}`), KindUnavailable, "", "", 0, 0, true},
		{"too large body ignored", response(503, ProblemContentType, `{"detail":"`+strings.Repeat("x", MaxProblemBody)+`"}`, "Retry-After", "2"),
			KindUnavailable, "", "", 0, 2 * time.Second, false},
		{"hostile Retry-After capped", response(429, "", ``, "Retry-After", "999999999"), KindRateLimited, "", "", 0, MaxRetryAfter, false},
		{"negative Retry-After ignored", response(429, "", ``, "Retry-After", "-1"), KindRateLimited, "", "", 0, 0, false},
		{"control characters cleaned", response(400, ProblemContentType, `{"detail":"bad\ninput\u0000!","code":"x\ty"}`), KindMalformed, "x y", "bad input !", 0, 0, true},
		// A repeated member is read as its first value by some clients
		// and its last by others: such a problem is not read at all.
		{"repeated retryable", response(503, ProblemContentType, `{"retryable":true,"retryable":false}`), KindUnavailable, "", "", 0, 0, false},
		{"repeated code", response(503, ProblemContentType, `{"code":"overloaded","detail":"x","code":"unavailable"}`), KindUnavailable, "", "", 0, 0, false},
		{"repeated through an escape", response(429, ProblemContentType, `{"detail":"a","det\u0061il":"b"}`), KindRateLimited, "", "", 0, 0, false},
		{"repeated in an extension", response(409, ProblemContentType, `{"detail":"a","errors":[{"id":1,"id":2}]}`), KindConflict, "", "", 0, 0, false},
		{"repeated in an invalid-params entry", response(422, ProblemContentType, `{"detail":"a","invalid-params":[{"name":"a","reason":"r","name":"b"}]}`), KindInvalid, "", "", 0, 0, false},
		// encoding/json matches an entry's "name" and "NAME" to one field:
		// that entry is left out, as one of the wrong type is.
		{"invalid-params entry naming a field twice ignoring case", response(422, ProblemContentType,
			`{"detail":"a","invalid-params":[{"name":"a","NAME":"b","reason":"r"},{"name":"c","reason":"r"},{"Name":"d"}]}`), KindInvalid, "", "a", 2, 0, true},
		{"members differing in case are distinct", response(503, ProblemContentType, `{"code":"overloaded","Code":"unavailable"}`), KindOverloaded, "overloaded", "", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ParseProblemAt(tt.resp, now)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("ParseProblem = %v (%T), want *Error", err, err)
			}
			if e.Kind != tt.kind || e.Code != tt.code || e.Detail != tt.detail || len(e.Fields) != tt.fields || e.RetryAfter != tt.retryAfter {
				t.Errorf("got kind %v code %q detail %q fields %d retry-after %v", e.Kind, e.Code, e.Detail, len(e.Fields), e.RetryAfter)
			}
			var re *ResponseError
			if !errors.As(err, &re) || re.StatusCode != tt.resp.StatusCode || (re.Problem != nil) != tt.problem {
				t.Errorf("ResponseError = %+v", re)
			}
			if e.Op != "POST psp.example:8443" {
				t.Errorf("Op = %q: must be method and host, never the query", e.Op)
			}
			if strings.Contains(err.Error(), "sk_live") {
				t.Errorf("error text leaks the query: %v", err)
			}
		})
	}
}

func TestIsJSONMediaType(t *testing.T) {
	for ct, want := range map[string]bool{
		"":                                true, // missing: tried
		"application/json":                true,
		"application/json; charset=utf-8": true,
		"application/problem+json":        true,
		"Application/Problem+JSON":        true, // media types are case-insensitive
		"APPLICATION/JSON; Charset=UTF-8": true,
		"application/vnd.api+json":        true,
		"text/plain":                      false,
		"text/html; charset=utf-8":        false,
		"application/jsonl":               false,
		"application/x-ndjson":            false,
		"text/json-ish":                   false,
		"application/json; charset":       false, // does not parse
		";":                               false,
	} {
		if got := IsJSONMediaType(ct); got != want {
			t.Errorf("IsJSONMediaType(%q) = %v, want %v", ct, got, want)
		}
		// ParseProblem decodes the body under the same rule.
		resp := response(503, "", `{"code":"overloaded"}`)
		resp.Header.Set("Content-Type", ct)
		if got := KindOf(ParseProblemAt(resp, now)) == KindOverloaded; got != want {
			t.Errorf("ParseProblem with Content-Type %q decoded the body: %v, want %v", ct, got, want)
		}
	}
}

func TestParseProblemSuccessAndNil(t *testing.T) {
	for _, status := range []int{200, 201, 204, 304, 399} {
		if err := ParseProblemAt(response(status, "", "{}"), now); err != nil {
			t.Errorf("status %d: %v", status, err)
		}
	}
	err := ParseProblem(nil)
	if KindOf(err) != KindInternal {
		t.Errorf("nil response: %v", err)
	}
	resp := response(503, "", "")
	resp.Body = nil
	if KindOf(ParseProblem(resp)) != KindUnavailable {
		t.Error("nil body")
	}
}

func TestParseProblemReadsBoundedBody(t *testing.T) {
	r := &countingReader{}
	resp := &http.Response{StatusCode: 500, Header: http.Header{"Content-Type": {ProblemContentType}}, Body: io.NopCloser(r)}
	if KindOf(ParseProblem(resp)) != KindInternal {
		t.Fatal("kind")
	}
	if r.n > MaxProblemBody+1 {
		t.Fatalf("read %d bytes of an endless body", r.n)
	}
}

type countingReader struct{ n int }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	r.n += len(p)
	return len(p), nil
}

func TestWriteThenParseRoundTrip(t *testing.T) {
	for k := range kindNames {
		kind := Kind(k)
		in := New(kind, "svc", "detail for "+kind.String()).WithCode("svc." + kind.String()).WithRetryAfter(4 * time.Second)
		if kind == KindInvalid {
			in.Fields = []FieldError{{Name: "amount", Reason: "must be positive"}}
		}
		rec := httptest.NewRecorder()
		WriteProblem(rec, httptest.NewRequest("GET", "/x", nil), in)
		out := As(ParseProblemAt(rec.Result(), now))
		if out.Kind != kind {
			t.Errorf("%v: read back as %v", kind, out.Kind)
		}
		if kind == KindInternal {
			if out.Detail != "internal error" {
				t.Errorf("internal detail %q", out.Detail)
			}
			continue
		}
		if out.Code != in.Code || out.Detail != in.Detail || len(out.Fields) != len(in.Fields) {
			t.Errorf("%v: got %+v", kind, out)
		}
		hasRetry := kind == KindRateLimited || kind == KindUnavailable
		if (out.RetryAfter == 4*time.Second) != hasRetry {
			t.Errorf("%v: RetryAfter %v", kind, out.RetryAfter)
		}
	}
}

// An overloaded error with a code of its own ("payments.overloaded") must
// not read back as a retryable unavailable: the server asked callers not to
// retry, and retry and breaker act on the parsed kind.
func TestOverloadedWithOwnCodeReadsBackAsOverloaded(t *testing.T) {
	tests := []struct {
		name string
		err  *Error
		kind Kind
	}{
		{"overloaded with its own code", New(KindOverloaded, "payments", "shedding load").WithCode("payments.overloaded"), KindOverloaded},
		{"unavailable made not retryable", New(KindUnavailable, "payments", "").WithCode("payments.down").WithRetryable(false), KindOverloaded},
		{"unavailable with its own code stays retryable", New(KindUnavailable, "payments", "").WithCode("payments.down"), KindUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			WriteProblem(rec, httptest.NewRequest("POST", "/payments", nil), tt.err)
			out := As(ParseProblemAt(rec.Result(), now))
			if out.Kind != tt.kind || out.Retryable() != tt.kind.Retryable() || out.Code != tt.err.Code {
				t.Errorf("read back as %v (code %q, retryable %v), want %v (code %q, retryable %v); body %s",
					out.Kind, out.Code, out.Retryable(), tt.kind, tt.err.Code, tt.kind.Retryable(), rec.Body)
			}
		})
	}
}
