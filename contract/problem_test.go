package contract

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestProblemJSONRoundTrip(t *testing.T) {
	p := Problem{
		Type: "https://example.com/probs/out-of-credit", Title: "You do not have enough credit.",
		Status: 403, Detail: "Your current balance is 30, but that costs 50.", Instance: "/account/12345/msgs/abc",
		Code:          "account.out_of_credit",
		InvalidParams: []FieldError{{Name: "amount", Reason: "must be <= 30"}},
		Extensions:    map[string]any{"balance": json.Number("30"), "accounts": []any{"/account/12345", "/account/67890"}},
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"https://example.com/probs/out-of-credit","title":"You do not have enough credit.","status":403,` +
		`"detail":"Your current balance is 30, but that costs 50.","instance":"/account/12345/msgs/abc","code":"account.out_of_credit",` +
		`"invalid-params":[{"name":"amount","reason":"must be \u003c= 30"}],"accounts":["/account/12345","/account/67890"],"balance":30}`
	if string(b) != want {
		t.Fatalf("Marshal =\n%s\nwant\n%s", b, want)
	}
	var back Problem
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, p) {
		t.Fatalf("round trip =\n%#v\nwant\n%#v", back, p)
	}
}

func TestProblemUnmarshalTolerance(t *testing.T) {
	// RFC 9457 3.1: a member with the wrong type is ignored.
	var p Problem
	in := `{"type":5,"title":"T","status":"503","detail":["x"],"instance":null,"code":"c",` +
		`"invalid-params":[{"name":"a","reason":"r"},{"name":7},"junk",{"reason":"no name"},{"name":"b","extra":1}],` +
		`"big":12345678901234567890123,"nested":{"k":[1,2]}}`
	if err := json.Unmarshal([]byte(in), &p); err != nil {
		t.Fatal(err)
	}
	want := Problem{
		Title: "T", Code: "c",
		InvalidParams: []FieldError{{Name: "a", Reason: "r"}, {Name: "b"}},
		Extensions: map[string]any{
			"big":    json.Number("12345678901234567890123"),
			"nested": map[string]any{"k": []any{json.Number("1"), json.Number("2")}},
		},
	}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("got\n%#v\nwant\n%#v", p, want)
	}
	for _, bad := range []string{`[]`, `"x"`, `{`, `1`} {
		if err := json.Unmarshal([]byte(bad), &p); err == nil {
			t.Errorf("Unmarshal(%s) accepted a non-object", bad)
		}
	}
}

// A member name repeated in one object of a problem, at any depth, is
// refused as DecodeJSON refuses it; names differing in case are distinct
// members.
func TestProblemUnmarshalRepeatedNames(t *testing.T) {
	for _, in := range []string{
		`{"status":503,"status":200}`, `{"code":"a","c\u006fde":"b"}`, `{"x":{"y":[{"z":1,"z":2}]}}`,
		`{"invalid-params":[{"name":"a","reason":"r","reason":"s"}]}`,
		// encoding/json reads each byte that is not UTF-8 as U+FFFD:
		// these three names are one.
		"{\"code\xff\":\"a\",\"code\xfe\":\"b\"}", "{\"x\":{\"a\xc3\":1,\"a\\ufffd\":2}}",
	} {
		var p Problem
		err := json.Unmarshal([]byte(in), &p)
		if e := As(err); e == nil || e.Kind != KindMalformed || e.Code != "json.duplicate_field" {
			t.Errorf("%s: %v, want json.duplicate_field", in, err)
		}
	}
	var p Problem
	if err := json.Unmarshal([]byte(`{"status":503,"Status":200,"x":{"a":1,"A":2}}`), &p); err != nil || p.Status != 503 || p.Extensions["Status"] == nil {
		t.Errorf("names differing in case: %v, %+v", err, p)
	}
}

func TestProblemExtensionsCannotOverrideStandardMembers(t *testing.T) {
	b, err := json.Marshal(Problem{Status: 404, Extensions: map[string]any{"status": 200, "type": "x", "ok": true}})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"status":404,"ok":true}` {
		t.Fatalf("Marshal = %s", b)
	}
	if _, err := json.Marshal(Problem{Extensions: map[string]any{"ch": make(chan int)}}); err == nil {
		t.Fatal("an unencodable extension must be an error, not a broken document")
	}
}

func TestHTTPStatusEveryKind(t *testing.T) {
	want := map[Kind]int{
		KindInternal: 500, KindInvalid: 422, KindMalformed: 400, KindUnauthorized: 401, KindForbidden: 403,
		KindNotFound: 404, KindConflict: 409, KindPreconditionFailed: 412, KindTooLarge: 413,
		KindRateLimited: 429, KindUnavailable: 503, KindOverloaded: 503, KindTimeout: 504, KindCanceled: 499,
	}
	if len(want) != len(kindNames) {
		t.Fatalf("table covers %d of %d kinds", len(want), len(kindNames))
	}
	for k, status := range want {
		if got := HTTPStatus(k); got != status {
			t.Errorf("HTTPStatus(%v) = %d, want %d", k, got, status)
		}
	}
}

func TestWriteProblem(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		status     int
		retryAfter string
		detail     string
		code       string
	}{
		{"rate limited", New(KindRateLimited, "api", "slow down").WithRetryAfter(1500 * time.Millisecond), 429, "2", "slow down", "rate_limited"},
		{"unavailable", Wrap(KindUnavailable, "psp", errors.New("dial tcp 10.0.0.7:443: refused")).WithRetryAfter(30 * time.Second), 503, "30", "", "unavailable"},
		{"unavailable without hint", New(KindUnavailable, "psp", ""), 503, "", "", "unavailable"},
		{"hint in a joined cause", Wrap(KindUnavailable, "fanout", errors.Join(New(KindUnavailable, "a", ""), New(KindRateLimited, "b", "").WithRetryAfter(30*time.Second))), 503, "30", "", "unavailable"},
		{"overloaded never has Retry-After", New(KindOverloaded, "psp", "").WithRetryAfter(time.Minute), 503, "", "", "overloaded"},
		{"conflict ignores hint", New(KindConflict, "", "in flight").WithRetryAfter(time.Minute), 409, "", "in flight", "conflict"},
		{"invalid", New(KindInvalid, "", "bad amount").WithCode("payment.amount"), 422, "", "bad amount", "payment.amount"},
		{"malformed", New(KindMalformed, "", "bad json"), 400, "", "bad json", "malformed"},
		{"plain error is internal", errors.New("pq: password authentication failed for user admin"), 500, "", "internal error", "internal"},
		{"internal detail hidden", New(KindInternal, "db", "SELECT * FROM secrets failed"), 500, "", "internal error", "internal"},
		// A Kind outside the defined ones is answered as 500, and hidden as
		// an internal error is: its detail may be anything.
		{"undefined kind hidden as internal", New(Kind(99), "db", "password rejected for user x"), 500, "", "internal error", "kind(99)"},
		{"net timeout", fmt.Errorf("psp: %w", errNetTimeout), 504, "", "", "timeout"},
		{"nil error", nil, 500, "", "internal error", "internal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			WriteProblem(rec, httptest.NewRequest("POST", "/payments/pay_1?token=secret", nil), tt.err)
			res := rec.Result()
			if res.StatusCode != tt.status {
				t.Errorf("status %d, want %d", res.StatusCode, tt.status)
			}
			if ct := res.Header.Get("Content-Type"); ct != ProblemContentType {
				t.Errorf("Content-Type %q", ct)
			}
			if got := res.Header.Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tt.retryAfter)
			}
			if res.Header.Get("Cache-Control") != "no-store" {
				t.Error("problem responses must not be cached")
			}
			var p Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if p.Status != res.StatusCode {
				t.Errorf("problem status %d != HTTP status %d", p.Status, res.StatusCode)
			}
			if p.Detail != tt.detail || p.Code != tt.code {
				t.Errorf("detail %q code %q, want %q %q", p.Detail, p.Code, tt.detail, tt.code)
			}
			if p.Instance != "/payments/pay_1" {
				t.Errorf("instance %q: must be the path without the query", p.Instance)
			}
			if p.Type != "about:blank" || p.Title != http.StatusText(tt.status) {
				t.Errorf("type %q title %q", p.Type, p.Title)
			}
			body := rec.Body.String()
			for _, secret := range []string{"password", "SELECT", "10.0.0.7", "secret"} {
				if strings.Contains(body, secret) {
					t.Errorf("body leaks %q: %s", secret, body)
				}
			}
		})
	}
}

var errNetTimeout = timeoutErr{timeout: true}

func TestWriteProblemInvalidParamsAndHead(t *testing.T) {
	v := NewValidator()
	v.Required("payer", "")
	v.Range("amount_minor", -5, 1, 1_000_000)
	rec := httptest.NewRecorder()
	WriteProblem(rec, httptest.NewRequest("POST", "/p", nil), v.Err())
	var p Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if rec.Code != 422 || len(p.InvalidParams) != 2 || p.InvalidParams[1].Name != "amount_minor" {
		t.Fatalf("%d %+v", rec.Code, p)
	}

	// Internal errors never show field errors either.
	rec = httptest.NewRecorder()
	WriteProblem(rec, nil, &Error{Kind: KindInternal, Fields: []FieldError{{Name: "dsn", Reason: "postgres://u:pw@h"}}})
	if strings.Contains(rec.Body.String(), "pw@h") {
		t.Fatalf("internal field errors leaked: %s", rec.Body)
	}

	rec = httptest.NewRecorder()
	WriteProblem(rec, httptest.NewRequest("HEAD", "/p", nil), New(KindNotFound, "", "no such payment"))
	if rec.Code != 404 || rec.Body.Len() != 0 {
		t.Fatalf("HEAD: %d %q", rec.Code, rec.Body)
	}
}

func TestProblemFromCanceledTitle(t *testing.T) {
	p := ProblemFrom(New(KindCanceled, "", ""))
	if p.Status != 499 || p.Title != "Client Closed Request" {
		t.Fatalf("%+v", p)
	}
}

func TestWriteProblemDoesNotEscapeHTML(t *testing.T) {
	rec := httptest.NewRecorder()
	err := ConfigError("retry", "Config.MaxAttempts", "must be >= 1, got -1 <&>")
	WriteProblem(rec, nil, err)
	if !strings.Contains(rec.Body.String(), `"detail":"Config.MaxAttempts: must be >= 1, got -1 <&>"`) {
		t.Fatalf("body %s", rec.Body)
	}
	if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Fatal("unescaped problems must be served with nosniff")
	}
	if rec.Header().Get("Content-Length") != strconv.Itoa(rec.Body.Len()) {
		t.Fatalf("Content-Length %q for %d bytes", rec.Header().Get("Content-Length"), rec.Body.Len())
	}
}

func TestWriteProblemRetryAfterNeverOverflows(t *testing.T) {
	for _, d := range []time.Duration{1, time.Second, time.Second + 1, MaxRetryAfter, MaxRetryAfter + 1, 1<<63 - 1} {
		rec := httptest.NewRecorder()
		WriteProblem(rec, nil, New(KindUnavailable, "op", "down").WithRetryAfter(d))
		got, err := strconv.ParseInt(rec.Header().Get("Retry-After"), 10, 64)
		if err != nil || got < 1 || got > int64(MaxRetryAfter/time.Second) {
			t.Errorf("RetryAfter %v: header %q, want 1..%d seconds", d, rec.Header().Get("Retry-After"), int64(MaxRetryAfter/time.Second))
		}
	}
}

func TestFormatRetryAfter(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second:                    "0",
		0:                               "0",
		time.Nanosecond:                 "1",
		time.Second:                     "1",
		1500 * time.Millisecond:         "2",
		MaxRetryAfter:                   strconv.FormatInt(int64(MaxRetryAfter/time.Second), 10),
		MaxRetryAfter + time.Nanosecond: strconv.FormatInt(int64(MaxRetryAfter/time.Second), 10),
		time.Duration(1<<63 - 1):        strconv.FormatInt(int64(MaxRetryAfter/time.Second), 10),
	} {
		if got := FormatRetryAfter(d); got != want {
			t.Errorf("FormatRetryAfter(%v) = %q, want %q", d, got, want)
		}
	}
}

// A 503 whose error was made not retryable says "retryable": false in its
// body, as an overloaded one does; it also got a Retry-After header, which
// every HTTP client reads as "retry after this long", and ParseProblem read
// it back as overloaded carrying a retry hint. What the body forbids, no
// header may invite: no error that reads back as not retryable has one.
func TestWriteProblemNoRetryAfterWhenNotRetryable(t *testing.T) {
	for k := Kind(0); int(k) < len(kindNames); k++ {
		for _, override := range []retryOverride{retryDefault, retryYes, retryNo} {
			e := New(k, "psp", "").WithRetryAfter(time.Minute)
			e.retry = override
			rec := httptest.NewRecorder()
			WriteProblem(rec, httptest.NewRequest("POST", "/payments", nil), e)
			res := rec.Result()
			parsed := ParseProblem(res)
			if h := res.Header.Get("Retry-After"); h != "" && !Retryable(parsed) {
				t.Errorf("%v (retry override %d): Retry-After %q with a body that reads back as %v, not retryable: %s",
					k, override, h, parsed, rec.Body)
			}
		}
	}
}

// JSON member names are case-sensitive, but encoding/json, which most Go
// clients decode problems with, matches them case-insensitively and keeps
// the last: an extension "Status" or "DETAIL", written after the standard
// members, replaced them for those clients (a relayed upstream problem
// could swap the detail a server had cleaned, or claim status 200).
func TestProblemExtensionsCannotOverrideStandardMembersIgnoringCase(t *testing.T) {
	p := Problem{Type: "about:blank", Title: "Not Found", Status: 404, Detail: "no such payment", Code: "payment.not_found",
		InvalidParams: []FieldError{{Name: "id", Reason: "unknown"}},
		Extensions: map[string]any{"Status": 200, "DETAIL": "all good", "Code": "ok", "Type": "https://evil.example/",
			"TITLE": "OK", "Instance": "/x", "Invalid-Params": []any{}, "balance": 7, "ſtatus": 201}}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var client struct {
		Type          string
		Title         string
		Status        int
		Detail        string
		Instance      string
		Code          string
		InvalidParams []FieldError `json:"invalid-params"`
		Balance       int
	}
	if err := json.Unmarshal(b, &client); err != nil {
		t.Fatal(err)
	}
	if client.Type != "about:blank" || client.Title != "Not Found" || client.Status != 404 || client.Detail != "no such payment" ||
		client.Instance != "" || client.Code != "payment.not_found" || len(client.InvalidParams) != 1 || client.Balance != 7 {
		t.Fatalf("an encoding/json client reads %+v from %s", client, b)
	}
}

// "instance" is a URI reference resolved against the response's URL, and
// RFC 9457 lets clients dereference it. A request path starting with "//"
// (a router in front of any path cleaning lets it through) was written as
// is: a network-path reference, which resolves to another host
// ("//evil.example/x" is https://evil.example/x), where a client following
// it would send its request, credentials included. The instance must
// resolve to the request's own path on the server.
func TestWriteProblemInstanceStaysOnTheServer(t *testing.T) {
	base, _ := url.Parse("https://api.example/payments")
	for _, target := range []string{"//evil.example/x", "///evil.example/x", "//evil.example", "http://api.example//evil.example/y", "/a//b", "/payments/pay_1"} {
		r := httptest.NewRequest("GET", target, nil)
		rec := httptest.NewRecorder()
		WriteProblem(rec, r, New(KindRateLimited, "", ""))
		var p Problem
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		ref, err := url.Parse(p.Instance)
		if err != nil {
			t.Fatalf("%s: instance %q: %v", target, p.Instance, err)
		}
		got := base.ResolveReference(ref)
		if got.Host != "api.example" || got.EscapedPath() != r.URL.EscapedPath() {
			t.Errorf("%s: instance %q resolves to %v, want the path %q on api.example", target, p.Instance, got, r.URL.EscapedPath())
		}
	}
}

// What WriteProblem writes for an error that is not retryable reads back as
// not retryable, whatever its status: a 429 or 504 made not retryable
// (WithRetryable(false)) used to get Retry-After and no "retryable": false,
// so ParseProblem read it back as retryable and clients retried what the
// server refused to see again. Only 503 was covered.
func TestWriteProblemNotRetryableReadsBack(t *testing.T) {
	for k := Kind(0); int(k) < len(kindNames); k++ {
		for _, override := range []retryOverride{retryDefault, retryYes, retryNo} {
			e := New(k, "psp", "").WithRetryAfter(time.Minute)
			e.retry = override
			rec := httptest.NewRecorder()
			WriteProblem(rec, httptest.NewRequest("POST", "/payments", nil), e)
			res := rec.Result()
			parsed := ParseProblem(res)
			if e.Retryable() {
				continue
			}
			if Retryable(parsed) {
				t.Errorf("%v (retry override %d): not retryable, read back as retryable %v: %s", k, override, parsed, rec.Body)
			}
			if h := res.Header.Get("Retry-After"); h != "" {
				t.Errorf("%v (retry override %d): not retryable, with Retry-After %q", k, override, h)
			}
			if got := KindOf(parsed); HTTPStatus(got) != HTTPStatus(k) {
				t.Errorf("%v (retry override %d): read back as %v, a kind of another status", k, override, got)
			}
		}
	}
	// The rate limited kind survives: a 429 stays KindRateLimited.
	rec := httptest.NewRecorder()
	WriteProblem(rec, nil, New(KindRateLimited, "", "quota spent for today").WithRetryable(false).WithRetryAfter(time.Hour))
	if !strings.Contains(rec.Body.String(), `"retryable":false`) {
		t.Errorf("body %s lacks \"retryable\": false", rec.Body)
	}
	if err := ParseProblem(rec.Result()); KindOf(err) != KindRateLimited || Retryable(err) {
		t.Errorf("read back as %v (retryable %v), want rate_limited, not retryable", err, Retryable(err))
	}
}

// The mirror of TestWriteProblemNotRetryableReadsBack: what WriteProblem
// writes for an error made retryable (WithRetryable(true)) reads back as
// retryable, with its hint. Only "retryable": false went on the wire, so a
// retryable conflict (idempotency.ErrInProgress: the first request with
// the key is still running, 409 + Retry-After) came back through
// ParseProblem as a conflict that retry never retries, and a client gave up
// on a request it only had to wait for.
func TestWriteProblemRetryableReadsBack(t *testing.T) {
	for k := Kind(0); int(k) < len(kindNames); k++ {
		for _, override := range []retryOverride{retryDefault, retryYes, retryNo} {
			e := New(k, "psp", "").WithRetryAfter(time.Minute)
			e.retry = override
			if !e.Retryable() {
				continue
			}
			rec := httptest.NewRecorder()
			WriteProblem(rec, httptest.NewRequest("POST", "/payments", nil), e)
			parsed := ParseProblem(rec.Result())
			if !Retryable(parsed) {
				t.Errorf("%v (retry override %d): retryable, read back as not retryable %v: %s", k, override, parsed, rec.Body)
			}
			if got := KindOf(parsed); HTTPStatus(got) != HTTPStatus(k) {
				t.Errorf("%v (retry override %d): read back as %v, a kind of another status", k, override, got)
			}
			if override == retryYes && !k.Retryable() {
				if d, ok := RetryAfter(parsed); !ok || d != time.Minute {
					t.Errorf("%v (retry override %d): hint read back as %v, %v; want 1m: header %q", k, override, d, ok, rec.Header().Get("Retry-After"))
				}
			}
		}
	}
	// The conflict keeps its kind and code: a 409 in progress.
	rec := httptest.NewRecorder()
	WriteProblem(rec, nil, New(KindConflict, "", "still running").WithCode("idempotency.in_progress").WithRetryable(true).WithRetryAfter(2*time.Second))
	if !strings.Contains(rec.Body.String(), `"retryable":true`) {
		t.Errorf("body %s lacks \"retryable\": true", rec.Body)
	}
	err := ParseProblem(rec.Result())
	if d, _ := RetryAfter(err); KindOf(err) != KindConflict || !Retryable(err) || As(err).Code != "idempotency.in_progress" || d != 2*time.Second {
		t.Errorf("read back as %v (retryable %v, hint %v), want a retryable conflict after 2s", err, Retryable(err), d)
	}
	// An error retryable by its kind carries no member: the status says it.
	rec = httptest.NewRecorder()
	WriteProblem(rec, nil, New(KindUnavailable, "", "").WithRetryable(true))
	if strings.Contains(rec.Body.String(), RetryableMember) {
		t.Errorf("body %s: a retryable member the status already implies", rec.Body)
	}
}
