package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzParseProblem: any status, headers and body give nil (below 400) or an
// *Error, never a panic; the detail stays bounded and printable, the
// retry-after within [0, MaxRetryAfter].
func FuzzParseProblem(f *testing.F) {
	f.Add(503, ProblemContentType, "5", `{"type":"about:blank","status":503,"code":"unavailable","detail":"down"}`)
	f.Add(422, ProblemContentType, "", `{"invalid-params":[{"name":"a","reason":"b"}],"x":{"y":[1,2.5e400]}}`)
	f.Add(429, "application/json", "Wed, 25 Nov 2026 06:01:30 GMT", `{"detail":"\u0000\n"}`)
	f.Add(500, "text/html", "-1", `<html>`)
	f.Add(400, "", "99999999999999999999", `{"status":"x","code":7,"invalid-params":"no"}`)
	f.Add(200, "", "", ``)
	f.Add(0, "application/problem+json; charset=\"", "", `{"a":`+strings.Repeat("[", 5000))
	f.Fuzz(func(t *testing.T, status int, contentType, retryAfter, body string) {
		h := http.Header{}
		h.Set("Content-Type", contentType)
		h.Set("Retry-After", retryAfter)
		resp := &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(body))}
		err := ParseProblemAt(resp, now)
		if status < 400 {
			if err != nil {
				t.Fatalf("status %d: %v", status, err)
			}
			return
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("ParseProblem = %v (%T)", err, err)
		}
		if e.RetryAfter < 0 || e.RetryAfter > MaxRetryAfter {
			t.Fatalf("RetryAfter %v", e.RetryAfter)
		}
		for _, s := range []string{e.Detail, e.Code} {
			if len(s) > maxRemoteText || !utf8.ValidString(s) || strings.ContainsAny(s, "\n\r\x00") {
				t.Fatalf("unclean remote text %q", s)
			}
		}
		_ = err.Error()
	})
}

// FuzzDecodeJSON: any body decodes or fails with an *Error, never a panic;
// a body within the limit never fails as too large; a body that is not
// valid UTF-8 never decodes.
func FuzzDecodeJSON(f *testing.F) {
	for _, seed := range []string{
		`{"payer":"ACME","amount_minor":1250,"currency":"EUR","items":[{"qty":1}]}`,
		``, `   `, `{`, `{"payer":"x",}`, `{"amount_minor":"1"}`, `{"amount_minor":1e400}`,
		`{"items":[{"qty":-1}]}`, `{"admin":true}`, `{} {}`, `{}x`, `[]`, `null`, `"\ud800"`,
		`{"booked_at":"2026-13-45T99:00:00Z"}`, strings.Repeat(`[`, 20000), "\xff\xfe{}",
		`{"payer":"\ud834\udd1e"}`, `{"payer":"\udc00"}`, `{"payer":"\\\ud800"}`,
		`{"payer":"a","payer":"b"}`, `{"payer":"a","PAYER":"b"}`, `{"payer":"a","p\u0061yer":"b"}`,
		`{"items":[{"qty":1},{"qty":2,"Qty":3}]}`, `{"booked_at":"2026-11-25T06:00:00Z","BOO\u212aED_AT":"2026-11-25T06:00:00Z"}`,
		`{"payer":"{\"payer\":1,\"payer\":2}","currency":"EUR"}`, `{"payer":"x"} {"payer":"x","payer":"y"}`,
	} {
		f.Add([]byte(seed), int64(64))
	}
	f.Add([]byte(`{"payer":"x"}`), int64(math.MaxInt64))
	f.Add([]byte(`{"payer":"x"}`), int64(-1))
	f.Add([]byte(`{"payer":"x"}`), int64(1))
	f.Fuzz(func(t *testing.T, body []byte, limit int64) {
		var p payment
		err := DecodeJSON(bytes.NewReader(body), limit, &p)
		if err == nil {
			if !utf8.Valid(body) {
				t.Fatalf("%q is not valid UTF-8 but decoded", body)
			}
			if repeatedName(json.NewDecoder(bytes.NewReader(body)), true) {
				t.Fatalf("%q repeats a member name but decoded", body)
			}
			// U+FFFD is decoded only from itself, never from a bad byte
			// or an unpaired surrogate escape.
			lower := bytes.ToLower(body)
			if strings.ContainsRune(p.Payer, utf8.RuneError) && !bytes.ContainsRune(body, utf8.RuneError) && !bytes.Contains(lower, []byte(`\ufffd`)) {
				t.Fatalf("%q decoded a payer with U+FFFD: %q", body, p.Payer)
			}
			return
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("DecodeJSON = %v (%T)", err, err)
		}
		effective := limit
		if effective <= 0 {
			effective = DefaultJSONLimit
		}
		if e.Kind == KindTooLarge && int64(len(body)) <= effective {
			t.Fatalf("%d bytes within limit %d reported too large", len(body), effective)
		}
		if e.Kind != KindMalformed && e.Kind != KindTooLarge {
			t.Fatalf("unexpected kind %v: %v", e.Kind, err)
		}
		if len(e.Detail) > 1024 {
			t.Fatalf("detail of %d bytes", len(e.Detail))
		}
		if e.Code == "json.duplicate_field" && json.Valid(body) && !repeatedName(json.NewDecoder(bytes.NewReader(body)), true) {
			t.Fatalf("%q repeats no member name: %v", body, err)
		}
	})
}

// FuzzDecodeJSONRepeatedNames: into an interface, where names differing in
// case are distinct, valid JSON decodes exactly when no object repeats a
// member name.
func FuzzDecodeJSONRepeatedNames(f *testing.F) {
	for _, seed := range []string{
		`{"a":1,"A":2,"\u212a":3,"k":4}`, `{"a":1,"a":2}`, `{"a":{"b":1},"b":{"a":[{"a":1},{"a":1,"A":1}]}}`,
		`[{"x":1},{"x":1,"y":[{"x":1,"x":1}]}]`, `{"\u00e9":1,"é":2}`, `{"\ud834\udd1e":1,"𝄞":1}`,
		`{"":1,"":2}`, `{"a\"b":1,"a\u0022b":1}`, `"a"`, `{}`, `[[[]]]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !json.Valid(body) || !utf8.Valid(body) || unpairedSurrogate(body) >= 0 {
			return
		}
		var v any
		err := DecodeJSON(bytes.NewReader(body), int64(len(body))+1, &v)
		if e := As(err); e != nil && e.Code == "json.type" {
			return // a number out of float64's range
		}
		if repeated := repeatedName(json.NewDecoder(bytes.NewReader(body)), false); repeated != (err != nil) {
			t.Fatalf("%q: repeated name %v, DecodeJSON = %v", body, repeated, err)
		}
		if e := As(err); e != nil && e.Code != "json.duplicate_field" {
			t.Fatalf("%q: %v", body, err)
		}
	})
}

// repeatedName reads one JSON value from dec and reports whether one of
// its objects repeats a member name, or, where asStruct (a payment, an
// item of its "items"), holds two names equal ignoring case: the reference
// DecodeJSON's check is compared with.
func repeatedName(dec *json.Decoder, asStruct bool) bool {
	tok, err := dec.Token()
	if err != nil {
		return false
	}
	switch tok {
	case json.Delim('{'):
		var seen []string
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return false
			}
			name := tok.(string)
			for _, earlier := range seen {
				if earlier == name || (asStruct && strings.EqualFold(earlier, name)) {
					return true
				}
			}
			seen = append(seen, name)
			if repeatedName(dec, asStruct && strings.EqualFold(name, "items")) {
				return true
			}
		}
	case json.Delim('['):
		for dec.More() {
			if repeatedName(dec, asStruct) {
				return true
			}
		}
	default:
		return false
	}
	_, _ = dec.Token()
	return false
}

// FuzzDecodeEvent: any input decodes or fails with an *Error, never a
// panic; what decodes is valid, encodes, and decodes again to the same
// event.
func FuzzDecodeEvent(f *testing.F) {
	for _, seed := range []string{
		fullEvent,
		`{"specversion":"1.0","id":"1","source":"s","type":"t"}`,
		`{"specversion":"1.0","id":"1","source":"s","type":"t","sequence":"42","data":null}`,
		`{"specversion":"1.0","id":"1","id":"1","source":"s","type":"t"}`,
		`{"specversion":"1.0","id":"1","source":"s","type":"t","x":1.5,"Y":1,"data_base64":"AA=="}`,
		`{"specversion":"1.0","id":"1","source":"s","type":"t","time":"2026-11-25T06:00:00+25:00"}`,
		`{"specversion":"1.0","id":"1","source":"s","type":"t","time":"2026-11-25T06:00:00+24:00"}`,
		`{"specversion":"1.0","id":"1","source":"s","type":"t","time":"2026-11-25T06:00:00-23:60"}`,
		`{"specversion":"1.0","id":"1","source":"s","type":"t","time":"2026-11-25T6:00:00.5+23:59"}`,
		`{"specversion":"1.0","id":"1","source":"s","type":"t","time":"2026-11-25T06:00:00,5Z"}`,
		`{"specversion":"1.0","id":"1","source":"s","type":"t","time":"0000-01-01T00:00:00.000000000001-00:00"}`,
		`{"specversion":"1.0","id":"1","source":"s","type":"t","data":"\u00e9\ud800"}`,
		``, `[]`, `{`, `{}`, `{"":""}`, `null`, `{"specversion":"1.0"} x`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := DecodeEvent(in)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("DecodeEvent = %v (%T)", err, err)
			}
			if ce.Kind != KindMalformed && ce.Kind != KindInvalid {
				t.Fatalf("unexpected kind %v", ce.Kind)
			}
			return
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("decoded event does not validate: %v", err)
		}
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("decoded event does not encode: %v", err)
		}
		back, err := DecodeEvent(b)
		if err != nil {
			t.Fatalf("re-decode of %s: %v", b, err)
		}
		if !back.Time.Equal(e.Time) {
			t.Fatalf("time %v != %v", back.Time, e.Time)
		}
		back.Time = e.Time
		if !bytes.Equal(compactJSON(back.Data), compactJSON(e.Data)) {
			t.Fatalf("data %s != %s", back.Data, e.Data)
		}
		back.Data, e.Data = nil, nil
		if !reflect.DeepEqual(back, e) {
			t.Fatalf("round trip\n%#v\n%#v", back, e)
		}
	})
}

// rfc3339 is the RFC 3339 date-time grammar (upper-case T and Z), the
// reference isRFC3339 is checked against.
var rfc3339 = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$`)

// FuzzIsRFC3339: isRFC3339 agrees with the RFC 3339 grammar, and a time that
// passes it and time.Parse encodes again.
func FuzzIsRFC3339(f *testing.F) {
	for _, seed := range []string{
		"2024-01-01T01:02:03Z", "2024-01-01T01:02:03.123456789+23:59", "2024-01-01T01:02:03+24:00",
		"2024-01-01T01:02:03-23:60", "2024-01-01T1:02:03Z", "2024-01-01T01:02:03,5Z", "2024-01-01T01:02:03.Z",
		"2024-01-01t01:02:03z", "2024-01-01T01:02:03+0100", "2024-01-01T01:02:03Z\n", "", "Z",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := isRFC3339(s)
		if want := rfc3339.MatchString(s); got != want {
			t.Fatalf("isRFC3339(%q) = %v, want %v", s, got, want)
		}
		if tm, err := time.Parse(time.RFC3339Nano, s); err == nil && got {
			if _, err := tm.MarshalText(); err != nil {
				t.Fatalf("%q is RFC 3339 and parses, but does not encode: %v", s, err)
			}
		}
	})
}

func compactJSON(b []byte) []byte {
	var c bytes.Buffer
	if len(b) > 0 {
		_ = json.Compact(&c, b)
	}
	return c.Bytes()
}
