package contract

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

type payment struct {
	Payer       string    `json:"payer"`
	AmountMinor int64     `json:"amount_minor"`
	Currency    string    `json:"currency"`
	BookedAt    time.Time `json:"booked_at"`
	Items       []struct {
		Qty uint32 `json:"qty"`
	} `json:"items"`
}

func TestDecodeJSON(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		limit  int64
		kind   Kind
		code   string
		detail string
		field  string
	}{
		{"valid", `{"payer":"ACME","amount_minor":1250,"currency":"EUR"}`, 0, 0, "", "", ""},
		{"valid with trailing white space", "{\"payer\":\"ACME\"}\n\t \r\n", 0, 0, "", "", ""},
		{"empty", ``, 0, KindMalformed, "json.empty", "body is empty: a JSON value is required", ""},
		{"only white space", "  \n", 0, KindMalformed, "json.empty", "body is empty: a JSON value is required", ""},
		{"syntax", `{"payer":"ACME",}`, 0, KindMalformed, "json.syntax", "invalid JSON at offset 17: invalid character '}' looking for beginning of object key string", ""},
		{"truncated", `{"payer":"AC`, 0, KindMalformed, "json.syntax", "unexpected end of JSON input at offset 12", ""},
		{"wrong type", `{"payer":"ACME","amount_minor":"12.50"}`, 0, KindMalformed, "json.type",
			`field "amount_minor" must be an integer, got string at offset 38`, "amount_minor"},
		{"overflow", `{"amount_minor":1e30}`, 0, KindMalformed, "json.type",
			`field "amount_minor" must be an integer, got number (4 characters) at offset 20`, "amount_minor"},
		{"nested wrong type", `{"items":[{"qty":-1}]}`, 0, KindMalformed, "json.type",
			`field "items.qty" must be a non-negative integer, got number (2 characters) at offset 19`, "items.qty"},
		{"top-level wrong type", `[1,2]`, 0, KindMalformed, "json.type", "body must be an object, got array", ""},
		{"unknown field", `{"payer":"ACME","admin":true}`, 0, KindMalformed, "json.unknown_field", `unknown field "admin"`, "admin"},
		{"long unknown field clipped", `{"` + strings.Repeat("a", 500) + `":1}`, 0, KindMalformed, "json.unknown_field",
			`unknown field "` + strings.Repeat("a", 64) + `…"`, strings.Repeat("a", 64) + "…"},
		{"trailing data", `{"payer":"ACME"}{"payer":"EVIL"}`, 0, KindMalformed, "json.trailing_data", "unexpected data after the JSON value at offset 16", ""},
		{"trailing garbage", `{"payer":"ACME"} x`, 0, KindMalformed, "json.trailing_data", "unexpected data after the JSON value at offset 16", ""},
		{"bad time", `{"booked_at":"yesterday"}`, 0, KindMalformed, "json.value",
			`invalid value: parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse "yesterday" as "2006"`, ""},
		{"too large", `{"payer":"` + strings.Repeat("x", 100) + `"}`, 64, KindTooLarge, "json.too_large", "body exceeds the limit of 64 bytes", ""},
		{"too large by trailing space", `{"payer":"x"}` + strings.Repeat(" ", 100), 20, KindTooLarge, "json.too_large", "body exceeds the limit of 20 bytes", ""},
		{"exactly at the limit", `{"payer":"x"}`, 13, 0, "", "", ""},
		{"one over the limit", `{"payer":"xy"}`, 13, KindTooLarge, "json.too_large", "body exceeds the limit of 13 bytes", ""},
		// Invalid UTF-8 is not JSON text (RFC 8259 8.1); encoding/json would
		// turn each bad byte into U+FFFD, collapsing distinct payers into one.
		{"invalid UTF-8 in a string", "{\"payer\":\"AC\xffME\"}", 0, KindMalformed, "json.utf8", "body is not valid UTF-8 at offset 12", ""},
		{"surrogate encoded in UTF-8", "{\"payer\":\"\xed\xa0\x80\"}", 0, KindMalformed, "json.utf8", "body is not valid UTF-8 at offset 10", ""},
		{"truncated rune at the end", "{\"payer\":\"x\xe2\x82", 0, KindMalformed, "json.utf8", "body is not valid UTF-8 at offset 11", ""},
		{"multi-byte runes are valid", `{"payer":"Zürich €𝄞"}`, 0, 0, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p payment
			err := DecodeJSON(strings.NewReader(tt.body), tt.limit, &p)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("DecodeJSON = %v", err)
				}
				if p.Payer == "" {
					t.Fatal("nothing decoded")
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("DecodeJSON = %v (%T), want *Error", err, err)
			}
			if e.Kind != tt.kind || e.Code != tt.code {
				t.Errorf("kind %v code %q, want %v %q (%v)", e.Kind, e.Code, tt.kind, tt.code, err)
			}
			if tt.detail != "" && e.Detail != tt.detail {
				t.Errorf("detail\n%q\nwant\n%q", e.Detail, tt.detail)
			}
			if tt.field != "" && (len(e.Fields) != 1 || e.Fields[0].Name != tt.field) {
				t.Errorf("fields %v, want %q", e.Fields, tt.field)
			}
		})
	}
}

func TestDecodeJSONTarget(t *testing.T) {
	var p payment
	if KindOf(DecodeJSON(strings.NewReader(`{}`), 0, p)) != KindInternal {
		t.Error("a non-pointer target is a bug: KindInternal")
	}
	if KindOf(DecodeJSON(strings.NewReader(`{}`), 0, nil)) != KindInternal {
		t.Error("a nil target is a bug: KindInternal")
	}
	var m map[string]any
	if err := DecodeJSON(strings.NewReader(`{"any":"thing"}`), 0, &m); err != nil || m["any"] != "thing" {
		t.Errorf("map target: %v %v", err, m)
	}
}

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

func TestDecodeJSONReadErrors(t *testing.T) {
	tests := []struct {
		err  error
		kind Kind
	}{
		{context.DeadlineExceeded, KindTimeout},
		{context.Canceled, KindCanceled},
		{timeoutErr{timeout: true}, KindTimeout},
		{errors.New("connection reset by peer"), KindMalformed},
		{&http.MaxBytesError{Limit: 5}, KindTooLarge},
	}
	for _, tt := range tests {
		var p payment
		err := DecodeJSON(failingReader{tt.err}, 0, &p)
		if KindOf(err) != tt.kind {
			t.Errorf("read error %v: got %v, want %v", tt.err, err, tt.kind)
		}
		if !errors.Is(err, tt.err) && tt.kind != KindTooLarge {
			t.Errorf("read error %v lost from the chain: %v", tt.err, err)
		}
	}
	// A read error after a complete value is still reported.
	r := io.MultiReader(strings.NewReader(`{"payer":"x"}`), failingReader{context.DeadlineExceeded})
	var p payment
	if KindOf(DecodeJSON(r, 0, &p)) != KindTimeout {
		t.Error("read error after the value")
	}
}

func TestDecodeJSONWithMaxBytesReader(t *testing.T) {
	rec := httptest.NewRecorder()
	body := http.MaxBytesReader(rec, io.NopCloser(strings.NewReader(`{"payer":"`+strings.Repeat("x", 100)+`"}`)), 10)
	var p payment
	err := DecodeJSON(body, 1<<20, &p)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v", err)
	}
	// The detail named DecodeJSON's 1 MiB, not the 10 bytes the client hit.
	if d := As(err).Detail; !strings.Contains(d, "limit of 10 bytes") {
		t.Errorf("detail %q, want the MaxBytesReader's limit of 10 bytes", d)
	}
}

func TestDecodeRequest(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		body        string
		length      int64
		kind        Kind
		code        string
	}{
		{"json", "application/json", `{"payer":"x"}`, -1, 0, ""},
		{"json utf-8", "application/json; charset=UTF-8", `{"payer":"x"}`, -1, 0, ""},
		{"+json", "application/vnd.acme.payment+json", `{"payer":"x"}`, -1, 0, ""},
		{"missing content type", "", `{"payer":"x"}`, -1, KindMalformed, "request.content_type"},
		{"form", "application/x-www-form-urlencoded", `payer=x`, -1, KindMalformed, "request.content_type"},
		{"text json", "text/json", `{"payer":"x"}`, -1, KindMalformed, "request.content_type"},
		{"latin1", "application/json; charset=latin1", `{"payer":"x"}`, -1, KindMalformed, "request.content_type"},
		{"broken media type", "application/json; charset", `{"payer":"x"}`, -1, KindMalformed, "request.content_type"},
		{"declared too large", "application/json", `{}`, 1 << 30, KindTooLarge, "json.too_large"},
		{"unknown field", "application/json", `{"payer":"x","role":"admin"}`, -1, KindMalformed, "json.unknown_field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/payments", strings.NewReader(tt.body))
			r.ContentLength = tt.length
			if tt.contentType != "" {
				r.Header.Set("Content-Type", tt.contentType)
			}
			var p payment
			err := DecodeRequest(r, 1024, &p)
			if tt.code == "" {
				if err != nil || p.Payer != "x" {
					t.Fatalf("DecodeRequest = %v, %+v", err, p)
				}
				return
			}
			e := As(err)
			if e == nil || e.Kind != tt.kind || e.Code != tt.code {
				t.Fatalf("DecodeRequest = %v, want %v %s", err, tt.kind, tt.code)
			}
		})
	}
	r := httptest.NewRequest("POST", "/payments", nil)
	r.Header.Set("Content-Type", "application/json")
	r.Body = nil
	if e := As(DecodeRequest(r, 0, &payment{})); e.Code != "json.empty" {
		t.Fatalf("nil body: %v", e)
	}
}

func TestDecodeJSONExtremeLimitsAndNilReader(t *testing.T) {
	var p payment
	if err := DecodeJSON(strings.NewReader(`{"payer":"x"}`), math.MaxInt64, &p); err != nil || p.Payer != "x" {
		t.Fatalf("MaxInt64 limit: %v", err)
	}
	if err := DecodeJSON(strings.NewReader(`{"payer":"x"}`), 1, &p); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("limit 1: %v", err)
	}
	if e := As(DecodeJSON(nil, 0, &p)); e == nil || e.Code != "json.empty" {
		t.Fatalf("nil reader: %v", e)
	}
}

// A rune split across reads is valid; an invalid byte is refused wherever
// the reads split the body.
func TestDecodeJSONUTF8AcrossReads(t *testing.T) {
	for _, body := range []string{`{"payer":"Zürich €𝄞 ok"}`, "{\"payer\":\"Z\xc3\xbcrich \xe2\x82\"}"} {
		valid := utf8.ValidString(body)
		for _, size := range []int{1, 2, 3, 5, 7} {
			var p payment
			err := DecodeJSON(&chunkReader{s: body, size: size}, 0, &p)
			if valid && (err != nil || p.Payer != "Zürich €𝄞 ok") {
				t.Errorf("%q in reads of %d: %v, payer %q", body, size, err, p.Payer)
			}
			if e := As(err); !valid && (e == nil || e.Code != "json.utf8") {
				t.Errorf("%q in reads of %d: %v, want json.utf8", body, size, err)
			}
		}
	}
}

type chunkReader struct {
	s    string
	size int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.size)], r.s)
	r.s = r.s[n:]
	return n, nil
}

// A \u escape of an unpaired UTF-16 surrogate is JSON syntax but no
// Unicode text: encoding/json decodes every one of them as U+FFFD, so
// "\ud800" and "\udc00" (and a literal "\ufffd") decoded as the same payer,
// the invalid-UTF-8 collapse DecodeJSON refuses, reached through escapes.
// Paired surrogates (𝄞 as "\ud834\udd1e") are one valid rune.
func TestDecodeJSONUnpairedSurrogateEscapes(t *testing.T) {
	for _, tt := range []struct {
		body string
		at   int
	}{
		{`{"payer":"x\ud800"}`, 11},
		{`{"payer":"x\udc00"}`, 11},
		{`{"payer":"\uDBFFx"}`, 10},
		{`{"payer":"\ud800\u0041"}`, 10},
		{`{"payer":"\ud800\n"}`, 10},
		{`{"payer":"\ud834\ud834\udd1e"}`, 10},
		{`{"payer":"ok","\udc00":1}`, 15},
		{`{"payer":"ok"} "\ud800"`, 16},
	} {
		for _, size := range []int{1, 3, 512} {
			var p payment
			err := DecodeJSON(&chunkReader{s: tt.body, size: size}, 0, &p)
			e := As(err)
			want := "body has an unpaired UTF-16 surrogate escape at offset " + strconv.Itoa(tt.at) + ": strings must be valid Unicode"
			if e == nil || e.Kind != KindMalformed || e.Code != "json.utf8" || e.Detail != want {
				t.Errorf("%s in reads of %d: %v (payer %q), want json.utf8 %q", tt.body, size, err, p.Payer, want)
			}
		}
	}
	for _, body := range []string{`{"payer":"\ud834\udd1e"}`, `{"payer":"\\ud800"}`, `{"payer":"\\\ud834\uDD1E"}`, `{"payer":"\u00e9\uFFFD"}`} {
		for _, size := range []int{1, 2, 512} {
			var p payment
			if err := DecodeJSON(&chunkReader{s: body, size: size}, 0, &p); err != nil || p.Payer == "" {
				t.Errorf("%s in reads of %d: %v, payer %q", body, size, err, p.Payer)
			}
		}
	}
}

// A card number, PIN or account number sent as a JSON number where the
// type wants something else used to be quoted in the detail ("got number
// 4111111111111111"), which reaches the client and every log line of the
// error. No failure may echo the value; its JSON type and field path say
// what is wrong.
func TestDecodeJSONDoesNotEchoValues(t *testing.T) {
	const secret = "4111111111111111"
	type card struct {
		PAN    int32           `json:"pan"`
		PIN    uint8           `json:"pin"`
		Digits int             `json:"digits,string"`
		Keyed  map[int8]string `json:"keyed"`
		Name   string          `json:"name"`
		Check  echoingDecoder  `json:"check"`
	}
	tests := []struct {
		name, body, field string
	}{
		{"overflow", `{"pan":` + secret + `}`, "pan"},
		{"fraction", `{"pan":` + secret + `.5}`, "pan"},
		{"negative into unsigned", `{"pin":-` + secret + `}`, "pin"},
		{"exponent", `{"pin":` + secret + `e3}`, "pin"},
		{"number into a string", `{"name":` + secret + `}`, "name"},
		{"quoted overflow", `{"digits":"` + secret + `9999"}`, "digits"},
		{"quoted non-number", `{"digits":"` + secret + `x"}`, "digits"},
		{"quoted with spaces", `{"digits":"` + secret + ` ` + secret + `"}`, "digits"},
		{"map key overflow", `{"keyed":{"` + secret + `":"x"}}`, "keyed"},
		{"custom decoder quoting a type error", `{"check":` + secret + `}`, ""},
		{"custom decoder quoting a quoted literal", `{"check":"` + secret + ` ` + secret + `"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c card
			err := DecodeJSON(strings.NewReader(tt.body), 0, &c)
			e := As(err)
			if e == nil || e.Kind != KindMalformed {
				t.Fatalf("DecodeJSON = %v, want a KindMalformed *Error", err)
			}
			rec := httptest.NewRecorder()
			WriteProblem(rec, httptest.NewRequest("POST", "/cards", nil), err)
			for where, s := range map[string]string{"Error()": err.Error(), "problem": rec.Body.String()} {
				if strings.Contains(s, secret) {
					t.Errorf("%s echoes the value: %s", where, s)
				}
			}
			if tt.field != "" && (len(e.Fields) != 1 || e.Fields[0].Name != tt.field || !strings.Contains(e.Detail, strconv.Quote(tt.field))) {
				t.Errorf("detail %q fields %v: want field %q named", e.Detail, e.Fields, tt.field)
			}
		})
	}
}

// encoding/json's own errors for a string it cannot read as the number a
// json.Number or a ",string" field wants ("invalid number literal, trying to
// unmarshal \"\\\"4111…\\\"\" into Number", "invalid use of ,string struct
// tag, trying to unmarshal \"4111…\" into bool") are not type errors: they
// reached the json.value detail with the string quoted in full.
func TestDecodeJSONDoesNotEchoQuotedLiterals(t *testing.T) {
	const secret = "4111111111111111"
	var v struct {
		Amount json.Number `json:"amount"`
		Flag   bool        `json:"flag,string"`
		PIN    int         `json:"pin,string"`
	}
	for _, body := range []string{
		`{"amount":"` + secret + `x"}`,
		`{"amount":"card ` + secret + `"}`,
		`{"flag":"` + secret + `"}`,
		`{"pin":"x` + secret + `"}`,
		`{"pin":"x\"` + secret + `"}`,
	} {
		err := DecodeJSON(strings.NewReader(body), 0, &v)
		e := As(err)
		if e == nil || e.Kind != KindMalformed {
			t.Fatalf("%s: DecodeJSON = %v, want a KindMalformed *Error", body, err)
		}
		rec := httptest.NewRecorder()
		WriteProblem(rec, httptest.NewRequest("POST", "/cards", nil), err)
		if strings.Contains(err.Error(), secret) || strings.Contains(rec.Body.String(), secret) {
			t.Errorf("%s: the error echoes the value: %v", body, err)
		}
	}
}

// echoingDecoder fails as a careless UnmarshalJSON does: with the text of
// json.Unmarshal's error, not wrapped, which quotes the number literal (a
// quoted one too, for a ",string" field).
type echoingDecoder struct{}

func (*echoingDecoder) UnmarshalJSON(b []byte) error {
	var n struct {
		N int8 `json:"n,string"`
	}
	err := json.Unmarshal(b, &n.N)
	if b[0] == '"' {
		err = json.Unmarshal([]byte(`{"n":`+string(b)+`}`), &n)
	}
	if err != nil {
		return fmt.Errorf("check: %v", err)
	}
	return nil
}

// DecodeEvent names the attribute and what it must be, never its value.
func TestDecodeEventDoesNotEchoValues(t *testing.T) {
	const secret = "4111111111111111"
	for _, member := range []string{`"id":` + secret, `"sequence":-` + secret, `"sequence":` + secret + `.5`,
		`"pan":` + secret, `"pan":` + secret + `e3`, `"time":` + secret} {
		body := `{"specversion":"1.0","source":"/s","type":"t",` + member + `}`
		if !strings.Contains(member, `"id"`) {
			body = `{"specversion":"1.0","id":"1","source":"/s","type":"t",` + member + `}`
		}
		_, err := DecodeEvent([]byte(body))
		if err == nil {
			t.Fatalf("%s: no error", member)
		}
		rec := httptest.NewRecorder()
		WriteProblem(rec, nil, err)
		if strings.Contains(err.Error(), secret) || strings.Contains(rec.Body.String(), secret) {
			t.Errorf("%s: the error echoes the value: %v %s", member, err, rec.Body)
		}
	}
}

// rejectingDecoder fails with whatever text it holds, as an UnmarshalJSON
// method that quotes its input does.
type rejectingDecoder string

func (d *rejectingDecoder) UnmarshalJSON([]byte) error { return errors.New(string(*d)) }

// The text of an UnmarshalJSON error reaches the client bounded: a short
// prefix (128 bytes, cut at a rune), valid UTF-8, its control
// characters escaped rather than blanked, so a multi-line message stays
// readable and on one line. It used to be copied up to 512 bytes.
func TestDecodeJSONCustomDecoderTextBounded(t *testing.T) {
	long := "bad\nvalue\t\x00\x1b[31m\xff\u202e|" + strings.Repeat("x€", 300)
	tests := []struct{ msg, want string }{
		{"not a colour", "invalid value: not a colour"},
		{"line one\r\nline two", `invalid value: line one\r\nline two`},
		{long, ""},
	}
	for _, tt := range tests {
		var v struct {
			D *rejectingDecoder `json:"d"`
		}
		v.D = new(rejectingDecoder)
		*v.D = rejectingDecoder(tt.msg)
		e := As(DecodeJSON(strings.NewReader(`{"d":1}`), 0, &v))
		if e == nil || e.Code != "json.value" {
			t.Fatalf("%q: got %v, want json.value", tt.msg, e)
		}
		if tt.want != "" && e.Detail != tt.want {
			t.Errorf("detail %q, want %q", e.Detail, tt.want)
		}
		quoted := strings.TrimPrefix(e.Detail, "invalid value: ")
		if n := len(strings.TrimSuffix(quoted, "…")); n > 128 {
			t.Errorf("%d bytes of the message quoted, want at most %d: %q", n, 128, quoted)
		}
		if !utf8.ValidString(e.Detail) {
			t.Errorf("detail is not valid UTF-8: %q", e.Detail)
		}
		for _, r := range e.Detail {
			if r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == '\u202e' {
				t.Errorf("detail holds %U: %q", r, e.Detail)
			}
		}
	}
	e := As(DecodeJSON(strings.NewReader(`{"d":1}`), 0, &struct {
		D *rejectingDecoder `json:"d"`
	}{D: func() *rejectingDecoder { d := rejectingDecoder(long); return &d }()}))
	if want := `invalid value: bad\nvalue\t\x00\x1b[31m` + "\uFFFD" + `\u202e|x€`; !strings.HasPrefix(e.Detail, want) || !strings.HasSuffix(e.Detail, "…") {
		t.Errorf("detail %q, want it to start with %q and end with …", e.Detail, want)
	}
}

// A top-level null is a body of the wrong type, like [] or 0: encoding/json
// leaves the target untouched for null, so a struct contract decoded it as
// its zero value (then a 422 for every required field) while [] got a 400.
// Targets that can hold null (a pointer, an interface) or decide for
// themselves (a json.Unmarshaler: json.RawMessage) still take it.
func TestDecodeJSONTopLevelLiterals(t *testing.T) {
	for _, body := range []string{`null`, ` null `, `true`, `0`, `"x"`, `[]`} {
		var p payment
		err := DecodeJSON(strings.NewReader(body), 0, &p)
		e := As(err)
		typ := strings.Fields(body)[0]
		want := map[string]string{"null": "null", "true": "bool", "0": "number", `"x"`: "string", "[]": "array"}[typ]
		if e == nil || e.Kind != KindMalformed || e.Code != "json.type" || e.Detail != "body must be an object, got "+want {
			t.Errorf("%q into a struct: %v, want 400 json.type: body must be an object, got %s", body, err, want)
		}
	}
	for name, target := range map[string]any{"map": new(map[string]int), "slice": new([]int), "int": new(int), "string": new(string)} {
		if err := DecodeJSON(strings.NewReader("null"), 0, target); KindOf(err) != KindMalformed || As(err).Code != "json.type" {
			t.Errorf("null into a %s: %v, want 400 json.type", name, err)
		}
	}
	var ptr *payment
	var anything any = 1
	var raw json.RawMessage
	for name, target := range map[string]any{"pointer": &ptr, "interface": &anything, "json.RawMessage": &raw} {
		if err := DecodeJSON(strings.NewReader("null"), 0, target); err != nil {
			t.Errorf("null into a %s: %v, want it accepted", name, err)
		}
	}
	if ptr != nil || anything != nil || string(raw) != "null" {
		t.Errorf("null decoded as %v, %v, %q", ptr, anything, raw)
	}
}
