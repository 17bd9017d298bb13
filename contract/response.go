package contract

import (
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxProblemBody is the most ParseProblem reads of a response body. A larger
// body is not decoded: the error is built from the status and headers alone.
const MaxProblemBody = 64 << 10

// MaxRetryAfter caps every Retry-After read from a response: a hostile or
// broken server cannot park a client for a year.
const MaxRetryAfter = 24 * time.Hour

// maxRemoteText caps the length of a detail or code copied from a response.
const maxRemoteText = 512

// ResponseError is the Cause of the *Error that ParseProblem and
// ErrorFromStatus return: the HTTP status and, when the body was a problem,
// the decoded problem with all its extension members.
type ResponseError struct {
	StatusCode int      // the HTTP status of the response
	Problem    *Problem // the decoded body; nil when it was absent, too large or not JSON
}

// Error reads "http 503 Service Unavailable".
func (e *ResponseError) Error() string {
	s := "http " + strconv.Itoa(e.StatusCode)
	if t := http.StatusText(e.StatusCode); t != "" {
		s += " " + t
	}
	return s
}

// ParseProblem turns an HTTP response into an error for the caller: nil for
// a status below 400, else an *Error whose Kind follows from the status (see
// ErrorFromStatus), with the Retry-After hint and, when the body is a
// problem (application/problem+json, or plain JSON), the problem's code,
// detail and invalid-params. A problem "code" naming a Kind with the same
// HTTP status refines the Kind (503 with code "overloaded" is
// KindOverloaded), and so does a 503 problem with "retryable": false
// (RetryableMember), whatever its code: it is KindOverloaded, which retry
// does not retry. Any other status with "retryable": false keeps its Kind
// and is made not retryable (WithRetryable(false)): a 429 that asks not to
// be retried is KindRateLimited, and Retryable reports false. A problem
// with "retryable": true keeps its Kind and is made retryable
// (WithRetryable(true)): a 409 for a request whose Idempotency-Key is still
// in progress (idempotency.ErrInProgress) is a KindConflict that retry
// retries after its Retry-After. Bodies that are not JSON, too large or malformed are
// tolerated: the status alone decides. So does a problem that repeats a
// member name in one of its objects ({"retryable":false,"retryable":true}),
// which clients keeping the first value and clients keeping the last read
// differently; an invalid-params entry naming "name" twice in different
// cases is left out.
//
// ParseProblem reads at most MaxProblemBody bytes of resp.Body and does not
// close it; the caller still does. HTTP-date Retry-After values are measured
// against the response's Date header, or the current time when it has none;
// ParseProblemAt takes that time explicitly.
//
// The error describes the call to the dependency, not your client's request:
// a 422 from a payment provider is not your caller's 422. Classify it (retry,
// breaker), then wrap it before answering your own client, for example
// contract.Wrap(contract.KindUnavailable, "payments.create", err), so its
// kind and detail do not leak through WriteProblem.
func ParseProblem(resp *http.Response) error {
	return ParseProblemAt(resp, time.Now())
}

// ParseProblemAt is ParseProblem with now as the current time.
func ParseProblemAt(resp *http.Response, now time.Time) error {
	if resp == nil {
		return &Error{Kind: KindInternal, Op: "contract.ParseProblem", Detail: "nil response"}
	}
	if resp.StatusCode < 400 {
		return nil
	}
	e := ErrorFromStatusAt(resp.StatusCode, resp.Header, now)
	if req := resp.Request; req != nil && req.URL != nil {
		// Host only: paths and queries may carry identifiers or tokens.
		e.Op = req.Method + " " + req.URL.Host
	}
	if resp.Body == nil || resp.Body == http.NoBody || !IsJSONMediaType(resp.Header.Get("Content-Type")) {
		return e
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxProblemBody+1))
	if err != nil || len(body) == 0 || len(body) > MaxProblemBody {
		return e
	}
	var p Problem
	if json.Unmarshal(body, &p) != nil {
		return e
	}
	e.Cause.(*ResponseError).Problem = &p
	if p.Code != "" {
		e.Code = cleanRemoteText(p.Code)
		if k, ok := ParseKind(p.Code); ok && HTTPStatus(k) == resp.StatusCode {
			e.Kind = k
		}
	}
	switch p.Extensions[RetryableMember] {
	case false:
		if resp.StatusCode == http.StatusServiceUnavailable {
			e.Kind = KindOverloaded
		} else {
			e.WithRetryable(false) // a 429 or 504 keeps its Kind
		}
	case true:
		e.WithRetryable(true) // a 409 in progress stays KindConflict
	}
	e.Detail = cleanRemoteText(p.Detail)
	if len(p.InvalidParams) > 0 {
		e.Fields = make([]FieldError, len(p.InvalidParams))
		for i, f := range p.InvalidParams {
			e.Fields[i] = FieldError{Name: cleanRemoteText(f.Name), Reason: cleanRemoteText(f.Reason)}
		}
	}
	return e
}

// IsJSONMediaType reports whether a Content-Type header value is one whose
// body ParseProblem decodes: a missing (empty) Content-Type, application/json
// or any +json type such as application/problem+json, with any parameters.
// Media types are case-insensitive (RFC 9110 8.3.1):
// "Application/Problem+JSON" is JSON. A value that does not parse as a media
// type is not. Code that peeks at a response before calling ParseProblem
// uses it to read the body under the same rule.
func IsJSONMediaType(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// cleanRemoteText makes text from another service safe to carry in an error
// and a log line: valid UTF-8, no control characters, at most maxRemoteText
// bytes.
func cleanRemoteText(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) {
			clean = false
			break
		}
	}
	if clean && len(s) <= maxRemoteText {
		return s
	}
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if unicode.IsControl(r) {
			r = ' '
		}
		if b.Len()+utf8.RuneLen(r) > maxRemoteText {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// ErrorFromStatus returns the *Error for an HTTP error status and its
// headers, for RoundTrippers that do not read bodies. The Kind follows
// the status:
//
//	400 malformed, 401 unauthorized, 403 forbidden, 404 and 410 not found,
//	408 timeout, 409 conflict, 412 and 428 precondition failed, 413 too large,
//	422 invalid, 425 (too early) unavailable, 429 rate limited,
//	499 canceled, 502 and 503 unavailable, 504 timeout,
//	any other 4xx invalid, 500 and any other status internal.
//
// A Retry-After header (delta-seconds or HTTP-date, measured against the
// Date header or the current time) becomes the RetryAfter hint, capped at
// MaxRetryAfter; negative or unparsable values are ignored. The Cause is a
// *ResponseError. Call it for statuses >= 400: any other status is reported
// as an internal error (an answer the caller did not expect).
func ErrorFromStatus(status int, header http.Header) *Error {
	return ErrorFromStatusAt(status, header, time.Now())
}

// ErrorFromStatusAt is ErrorFromStatus with now as the current time.
func ErrorFromStatusAt(status int, header http.Header, now time.Time) *Error {
	e := &Error{Kind: kindFromStatus(status), Cause: &ResponseError{StatusCode: status}}
	if v := header.Get("Retry-After"); v != "" {
		ref := now
		if date, err := http.ParseTime(header.Get("Date")); err == nil {
			ref = date
		}
		if d, ok := ParseRetryAfter(v, ref); ok {
			e.RetryAfter = d
		}
	}
	return e
}

func kindFromStatus(status int) Kind {
	switch status {
	case http.StatusBadRequest:
		return KindMalformed
	case http.StatusUnauthorized:
		return KindUnauthorized
	case http.StatusForbidden:
		return KindForbidden
	case http.StatusNotFound, http.StatusGone:
		return KindNotFound
	case http.StatusRequestTimeout, http.StatusGatewayTimeout:
		return KindTimeout
	case http.StatusConflict:
		return KindConflict
	case http.StatusPreconditionFailed, http.StatusPreconditionRequired:
		return KindPreconditionFailed
	case http.StatusRequestEntityTooLarge:
		return KindTooLarge
	case http.StatusUnprocessableEntity:
		return KindInvalid
	case http.StatusTooManyRequests:
		return KindRateLimited
	case StatusClientClosedRequest:
		return KindCanceled
	case http.StatusTooEarly, http.StatusBadGateway, http.StatusServiceUnavailable:
		return KindUnavailable
	}
	if status >= 400 && status < 500 {
		return KindInvalid
	}
	return KindInternal
}

// ParseRetryAfter parses a Retry-After header value (RFC 9110 10.2.3): either
// delta-seconds ("120") or an HTTP-date, which is measured against now. It
// reports false for an empty, negative or unparsable value. The result is
// capped at MaxRetryAfter; a date in the past means zero (retry now).
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" || len(v) > 64 {
		return 0, false
	}
	if isDigits(v) {
		// Compare in seconds: multiplying first could overflow.
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter, true
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	if d < 0 {
		return 0, true
	}
	return min(d, MaxRetryAfter), true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
