package logctx

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
)

const testPAN = "4111111111111111" // Visa test number, Luhn-valid

func TestRedactSecretKeys(t *testing.T) {
	secrets := []string{
		"Authorization", "authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "set_cookie",
		"password", "db_password", "Password", "passwd", "passphrase", "pwd",
		"token", "access_token", "refresh_token", "id_token", "X-Auth-Token", "csrfToken",
		"secret", "client_secret", "api_key", "X-Api-Key", "apikey", "private_key",
		"credentials", "card_number", "cvv", "pan", "pin", "jwt", "session_id",
		"idempotency_key", "Idempotency-Key",
		// camelCase forms of the compound keys
		"apiKey", "privateKey", "creditCard", "creditCardNumber", "cardNumber",
		"sessionId", "idempotencyKey", "clientSecret", "accessToken",
		// signed URLs and webhooks
		"X-Amz-Signature", "X-Goog-Signature", "sig", "X-Hub-Signature-256", "signature",
		// vendors' credential headers
		"X-Amz-Security-Token", "X-Goog-Api-Key", "X-Auth-Key", "authKey", "Ocp-Apim-Subscription-Key",
		"subscription-key", "x-functions-key", "X-Registry-Auth", "registryAuth", "X-Registry-Config",
		"DD-APPLICATION-KEY", "applicationKey", "X-Sentry-Auth", "X-Goog-Iap-Jwt-Assertion",
		"X-Amz-Server-Side-Encryption-Customer-Key", "X-Amz-Copy-Source-Server-Side-Encryption-Customer-Key",
		"SSECustomerKey", "X-Goog-Encryption-Key", "X-Goog-Copy-Source-Encryption-Key",
	}
	for _, k := range secrets {
		t.Run(k, func(t *testing.T) {
			l, buf := newJSONLogger(t, HandlerConfig{})
			l.Info("m", k, "s3cr3t-value")
			out := buf.String()
			if strings.Contains(out, "s3cr3t-value") {
				t.Fatalf("secret under %q printed: %s", k, out)
			}
			if got := jsonLines(t, buf)[0][k]; got != DefaultRedacted {
				t.Errorf("%s = %v, want %q", k, got, DefaultRedacted)
			}
		})
	}
	// Key hashes are logged on purpose and stay visible in every spelling:
	// idempotency.KeyHash ("idempotency_key_hash") and the stores' "key_hash".
	for _, k := range []string{"amount", "currency", "user", "status", "key_id", "path",
		"idempotency_key_hash", "idempotencyKeyHash", "Idempotency-Key-Hash", "key_hash", "keyHash",
		"author", "authority", "subscription", "subscription_id", "registry", "functions",
		"encryption_key_id", "X-Auth-Email", "Sec-WebSocket-Key", "WWW-Authenticate"} {
		l, buf := newJSONLogger(t, HandlerConfig{})
		l.Info("m", k, "visible")
		if got := jsonLines(t, buf)[0][k]; got != "visible" {
			t.Errorf("non-secret %s = %v", k, got)
		}
	}
}

func TestRedactEverywhere(t *testing.T) {
	// Record attrs, nested groups, logger.With attrs (with and without an
	// open group), context attrs and the message are all redacted.
	l, buf := newJSONLogger(t, HandlerConfig{RedactKeys: []string{"X-Tenant-Key"}})
	ctx := With(WithEntity(context.Background(), "card", testPAN), slog.String("session", "ctx-secret"))
	l.With("token", "with-secret").WithGroup("g").With("password", "group-with-secret").
		InfoContext(ctx, "card "+testPAN+" declined",
			slog.Group("auth", slog.String("Authorization", "Bearer grp-secret")),
			slog.Group("req", slog.String("x_tenant_key", "custom-secret"), slog.String("note", "pan "+testPAN)),
			slog.Any("err", fmt.Errorf("charge %s: declined", testPAN)),
		)
	out := buf.String()
	for _, leak := range []string{"ctx-secret", "with-secret", "group-with-secret", "grp-secret", "custom-secret", testPAN} {
		if strings.Contains(out, leak) {
			t.Errorf("%q leaked: %s", leak, out)
		}
	}
	if !strings.Contains(out, "card ************1111 declined") {
		t.Errorf("message not masked as expected: %s", out)
	}
}

func TestRedactHeadersURLsMaps(t *testing.T) {
	l, buf := newJSONLogger(t, HandlerConfig{})
	h := http.Header{
		"Authorization": {"Bearer hdr-secret"},
		"Cookie":        {"sid=cookie-secret"},
		"Accept":        {"application/json"},
	}
	u, _ := url.Parse("https://user:url-secret@example.com/pay")
	l.Info("m",
		"headers", h,
		"raw", map[string][]string{"Set-Cookie": {"a=set-cookie-secret"}},
		"form", url.Values{"password": {"form-secret"}, "q": {"ok"}},
		"labels", map[string]string{"api_key": "map-secret", "env": "prod"},
		"url", u,
	)
	out := buf.String()
	for _, leak := range []string{"hdr-secret", "cookie-secret", "set-cookie-secret", "form-secret", "map-secret", "url-secret"} {
		if strings.Contains(out, leak) {
			t.Errorf("%q leaked: %s", leak, out)
		}
	}
	for _, keep := range []string{"application/json", `"env":"prod"`, "example.com"} {
		if !strings.Contains(out, keep) {
			t.Errorf("%q lost: %s", keep, out)
		}
	}
	// The caller's header map is not modified.
	if h.Get("Authorization") != "Bearer hdr-secret" {
		t.Error("caller's header was modified")
	}
}

// A group named by a secret key is redacted whole, whether it is opened
// with Logger.WithGroup or passed as slog.Group: slog defines both as the
// same record. An empty group prints nothing either way.
func TestRedactSecretGroup(t *testing.T) {
	for _, g := range []string{"credentials", "secret", "password", "Authorization", "privateKey"} {
		t.Run(g, func(t *testing.T) {
			l, buf := newJSONLogger(t, HandlerConfig{})
			ctx := WithCorrelationID(context.Background(), "corr-1")
			l.InfoContext(ctx, "attr group", slog.Group(g, slog.String("value", "hunter2")))
			l.WithGroup(g).InfoContext(ctx, "logger group", "value", "hunter2")
			l.WithGroup(g).With("value", "hunter2").InfoContext(ctx, "logger group, With")
			l.WithGroup("outer").WithGroup(g).WithGroup("inner").InfoContext(ctx, "nested", "value", "hunter2")
			l.InfoContext(ctx, "empty attr group", slog.Group(g))
			l.WithGroup(g).InfoContext(ctx, "empty logger group")
			if strings.Contains(buf.String(), "hunter2") {
				t.Fatalf("secret printed: %s", buf)
			}
			lines := jsonLines(t, buf)
			for _, got := range lines[:3] {
				if got[g] != DefaultRedacted || got[KeyCorrelationID] != "corr-1" {
					t.Errorf("%s: %s = %v, want %q, coordinates top-level (%v)", got["msg"], g, got[g], DefaultRedacted, got)
				}
			}
			if outer, _ := lines[3]["outer"].(map[string]any); outer == nil || outer[g] != DefaultRedacted {
				t.Errorf("nested: %v", lines[3])
			}
			for _, got := range lines[4:] {
				if _, ok := got[g]; ok {
					t.Errorf("%s: empty group printed: %v", got["msg"], got)
				}
			}
		})
	}
	// A group with an ordinary name keeps its content.
	l, buf := newJSONLogger(t, HandlerConfig{})
	l.WithGroup("http").Info("m", "status", 201)
	if h, _ := jsonLines(t, buf)[0]["http"].(map[string]any); h == nil || h["status"] != float64(201) {
		t.Errorf("ordinary group: %s", buf)
	}
}

func TestRedactOptions(t *testing.T) {
	l, buf := newJSONLogger(t, HandlerConfig{NoDefaultKeys: true, RedactKeys: []string{"ssn"}, Replacement: "xxx", NoCardScan: true})
	l.Info("m", "password", "shown", "SSN", "hidden", "card", testPAN)
	got := jsonLines(t, buf)[0]
	if got["password"] != "shown" || got["SSN"] != "xxx" || got["card"] != testPAN {
		t.Errorf("got %v", got)
	}
}

// secretValuer counts its LogValue calls.
type secretValuer struct{ calls *atomic.Int32 }

func (s secretValuer) LogValue() slog.Value {
	s.calls.Add(1)
	return slog.GroupValue(slog.String("user", "ann"), slog.String("password", "valuer-secret"))
}

type tokenValuer string

func (tokenValuer) LogValue() slog.Value { return slog.StringValue("pan=" + testPAN) }

func TestRedactLogValuerLazyThenRedacted(t *testing.T) {
	var calls atomic.Int32
	var buf bytes.Buffer
	h := mustHandler(t, HandlerConfig{Next: slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})})
	l := slog.New(h)
	l.Debug("disabled", "user", secretValuer{&calls})
	if calls.Load() != 0 {
		t.Fatalf("LogValue called %d times for a disabled record", calls.Load())
	}
	l.Info("enabled", "user", secretValuer{&calls}, "note", tokenValuer("x"))
	if calls.Load() != 1 {
		t.Errorf("LogValue called %d times, want 1", calls.Load())
	}
	out := buf.String()
	if strings.Contains(out, "valuer-secret") || strings.Contains(out, testPAN) {
		t.Errorf("resolved secret leaked: %s", out)
	}
	if !strings.Contains(out, `"user":"ann"`) {
		t.Errorf("resolved value lost: %s", out)
	}
}

// The wrapped handler does not matter: redaction happens before it.
func TestRedactWhicheverHandler(t *testing.T) {
	for name, mk := range map[string]func(*bytes.Buffer) slog.Handler{
		"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		"text-grouped": func(b *bytes.Buffer) slog.Handler {
			return slog.NewTextHandler(b, nil).WithGroup("app")
		},
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			l := slog.New(mustHandler(t, HandlerConfig{Next: mk(&buf)}))
			l.Info("m", "Authorization", "Bearer abc.def", "cookie", "sid=zz9", "card", "4111-1111-1111-1111")
			out := buf.String()
			for _, leak := range []string{"abc.def", "zz9", "4111-1111-1111-1111"} {
				if strings.Contains(out, leak) {
					t.Errorf("%q leaked: %s", leak, out)
				}
			}
		})
	}
}

func TestMaskPANs(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{testPAN, "************1111"},
		{"card 4111 1111 1111 1111 ok", "card **** **** **** 1111 ok"},
		{"card 4111-1111-1111-1111", "card ****-****-****-1111"},
		{"amex 378282246310005.", "amex ***********0005."},
		{"mc=5555555555554444&x=1", "mc=************4444&x=1"},
		{"19 digits 6011000990139424000 no", "19 digits 6011000990139424000 no"}, // not Luhn-valid
		{"two 4111111111111111 and 5555555555554444", "two ************1111 and ************4444"},
		{"followed 4111 1111 1111 1111 2030", "followed **** **** **** 1111 2030"},
		{"\"pan\":\"4012888888881881\"", "\"pan\":\"************1881\""},
		// Other digit groups around a card: every card number is masked,
		// overlapping ones included, leaving at most its last four digits.
		{"ref 14 4111 1111 1111 1111", "ref ** **** **** **** 1111"},
		{"ref 14-4111-1111-1111-1111", "ref **-****-****-****-1111"},
		{"4111 1111 1111 1111 5555 5555 5555 4444", "**** **** **** **** **** **** **** 4444"},
		{"4111-1111-1111-1111-5555-5555-5555-4444", "****-****-****-****-****-****-****-4444"},
		{"4111 1111 1111 1111 5", "**** **** **** 1111 5"},
		{"1 2 3 4111 1111 1111 1111 9 8 7", "1 2 * **** **** **** ***1 9 8 7"},
		// A letter glued to another group does not hide the card.
		{"id1 4111 1111 1111 1111", "id1 **** **** **** 1111"},
		{"4111 1111 1111 1111 2x", "**** **** **** 1111 2x"},
	} {
		got, ok := maskPANs(tc.in)
		if got != tc.want || ok != (tc.in != tc.want) {
			t.Errorf("maskPANs(%q) = %q, %v; want %q", tc.in, got, ok, tc.want)
		}
	}
	for _, s := range []string{
		"4111111111111112",           // fails Luhn
		"order ord4111111111111111",  // glued to letters: an identifier
		"ord4111 1111 1111 1111",     // the same, in groups
		"1234567890123",              // 13 digits, not Luhn-valid
		"ts 20261125060000123456789", // long number, not a card
		"phone +1 415 555 0100",      // too few digits
		strings.Repeat("9", 1000),    // huge run
		strings.Repeat("1 ", 10000),  // many groups
		"",                           // empty
		"short",
	} {
		if got, ok := maskPANs(s); ok || got != s {
			t.Errorf("maskPANs(%.40q) changed it to %.40q", s, got)
		}
	}
}

// A short digit group before a card number made a Luhn-valid window of its
// own with the card's first groups; masking only that window left the
// card's last eight digits in clear ("ref ** **** **** 1111 1111").
func TestRedactCardAfterShortDigitGroup(t *testing.T) {
	l, buf := newJSONLogger(t, HandlerConfig{})
	l.Info("m", "note", "ref 14 4111 1111 1111 1111")
	out := buf.String()
	if strings.Contains(out, "1111 1111") || !strings.Contains(out, "ref ** **** **** **** 1111") {
		t.Fatalf("more than the last four digits of the card are visible: %s", out)
	}
}

// Whatever digit groups surround a card number, at most its last four
// digits stay visible.
func TestMaskPANsShowsAtMostLastFourOfEveryCard(t *testing.T) {
	cards := []string{testPAN, "5555555555554444", "378282246310005", "6011111111111117", "4012888888881881"}
	var inputs []string
	for _, c := range cards {
		for _, sep := range []string{" ", "-"} {
			grouped := c[:4] + sep + c[4:8] + sep + c[8:12] + sep + c[12:]
			for _, before := range []string{"", "1" + sep, "14" + sep, "9" + sep + "87" + sep, "id1" + sep, "x "} {
				for _, after := range []string{"", sep + "5", sep + "2030", sep + "12" + sep + "30", sep + "2x", sep + testPAN, " ."} {
					inputs = append(inputs, before+c+after, before+grouped+after)
				}
			}
		}
	}
	for _, s := range inputs {
		out, _ := maskPANs(s)
		if card, ok := cardLeak(s, out); ok {
			t.Errorf("maskPANs(%q) = %q: more than the last four digits of %q visible", s, out, card)
		}
	}
}

// cardLeak returns a card number of s (13 to 19 Luhn-valid digits,
// contiguous or in groups separated by single spaces or dashes, not glued
// to letters or digits) of which out, s masked, shows more than the last
// four digits.
func cardLeak(s, out string) (string, bool) {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) || (i > 0 && isAlnum(s[i-1])) {
			continue
		}
		var digits []byte
		for j := i; j < len(s) && len(digits) < 19; j++ {
			if !isDigit(s[j]) {
				if (s[j] != ' ' && s[j] != '-') || j+1 == len(s) || !isDigit(s[j+1]) {
					break
				}
				continue
			}
			digits = append(digits, s[j]-'0')
			if len(digits) < 13 || !luhn(digits) || (j+1 < len(s) && isAlnum(s[j+1])) {
				continue
			}
			for k, seen := j, 0; k >= i; k-- {
				if isDigit(s[k]) {
					if seen >= 4 && out[k] != '*' {
						return s[i : j+1], true
					}
					seen++
				}
			}
		}
	}
	return "", false
}

func TestLuhn(t *testing.T) {
	d := func(s string) []byte {
		b := []byte(s)
		for i := range b {
			b[i] -= '0'
		}
		return b
	}
	for _, s := range []string{"4111111111111111", "5555555555554444", "378282246310005", "6011111111111117", "79927398713"} {
		if !luhn(d(s)) {
			t.Errorf("luhn(%s) = false", s)
		}
	}
	for _, s := range []string{"4111111111111112", "79927398710", "1234567812345678"} {
		if luhn(d(s)) {
			t.Errorf("luhn(%s) = true", s)
		}
	}
}

func TestRedactorKeysConcurrent(t *testing.T) {
	r := newRedactor(HandlerConfig{Next: slog.DiscardHandler})
	keys := []string{"password", "amount", "Authorization", "user", "api_key", "status"}
	want := []bool{true, false, true, false, true, false}
	done := make(chan bool)
	for g := range 8 {
		go func() {
			ok := true
			for i := range 2000 {
				k := (i + g) % len(keys)
				if r.secretKey(keys[k]) != want[k] {
					ok = false
				}
				if r.secretKey(fmt.Sprintf("field_%d", i)) {
					ok = false
				}
			}
			done <- ok
		}()
	}
	for range 8 {
		if !<-done {
			t.Error("wrong verdict under concurrency")
		}
	}
}

func TestSecretKeyNoAllocs(t *testing.T) {
	r := newRedactor(HandlerConfig{Next: slog.DiscardHandler})
	keys := make([]string, 500) // many distinct, dynamic keys
	for i := range keys {
		keys[i] = fmt.Sprintf("Field-%d-Name", i)
	}
	i := 0
	if n := testing.AllocsPerRun(1000, func() { r.secretKey(keys[i%len(keys)]); i++ }); n != 0 {
		t.Errorf("secretKey allocates %v times", n)
	}
}

// refSecretKey is the obvious, slow definition the automaton must agree with.
func refSecretKey(exact, parts []string, k string) bool {
	if k == "" {
		return false
	}
	fold := func(s string) string {
		b := []byte(s)
		for i := range b {
			b[i] = foldKeyByte(b[i])
		}
		return string(b)
	}
	n := fold(k)
	for _, e := range exact {
		if n == fold(e) {
			return true
		}
	}
	for _, p := range parts {
		if strings.Contains(n, fold(p)) {
			return true
		}
	}
	return false
}

func FuzzSecretKey(f *testing.F) {
	for _, s := range []string{"password", "Set-Cookie", "pan", "pans", "x_pan", "amount", "", "\x01pan\x02", "TOKEN", "tok", "cvv2", "api key"} {
		f.Add(s, "x-custom")
	}
	f.Fuzz(func(t *testing.T, key, custom string) {
		if custom == "" {
			custom = "c"
		}
		r := newRedactor(HandlerConfig{Next: slog.DiscardHandler, RedactKeys: []string{custom}})
		exact := append(append([]string(nil), defaultSecretKeys...), custom)
		want := refSecretKey(exact, defaultSecretParts, key)
		if got := r.secretKey(key); got != want {
			// The marks may appear inside a hostile key; then the
			// automaton may redact more than the reference, never less.
			if want || !strings.ContainsAny(key+custom, "\x01\x02") {
				t.Fatalf("secretKey(%q) with custom %q = %v, want %v", key, custom, got, want)
			}
		}
	})
}

func FuzzMaskPANs(f *testing.F) {
	for _, s := range []string{testPAN, "card 4111 1111 1111 1111", "4111-1111-1111-1111 2030", "x", "", "1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6", strings.Repeat("4111111111111111 ", 5),
		"ref 14 4111 1111 1111 1111", "4111 1111 1111 1111 5555 5555 5555 4444", "id1 4111-1111-1111-1111-2x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, ok := maskPANs(s)
		if len(out) != len(s) {
			t.Fatalf("length changed: %q -> %q", s, out)
		}
		if !ok && out != s {
			t.Fatalf("changed without ok: %q -> %q", s, out)
		}
		// Masking only ever replaces digits by '*'.
		for i := range len(s) {
			if out[i] != s[i] && (out[i] != '*' || !isDigit(s[i])) {
				t.Fatalf("byte %d changed from %q to %q", i, s[i], out[i])
			}
		}
		// Every isolated run of 13-19 digits that passes Luhn is masked.
		for i := 0; i < len(s); {
			if !isDigit(s[i]) {
				i++
				continue
			}
			j := i
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			if isolatedRun(s, i, j) && j-i >= 13 && j-i <= 19 && luhnString(s[i:j]) && out[i:j-4] != strings.Repeat("*", j-i-4) {
				t.Fatalf("card number %q at %d not masked: %q", s[i:j], i, out)
			}
			i = j
		}
		// Whatever surrounds a card number, at most its last four digits
		// stay visible.
		if card, leak := cardLeak(s, out); leak {
			t.Fatalf("more than the last four digits of %q visible: %q", card, out)
		}
	})
}

func TestRedactErrorNil(t *testing.T) {
	l, buf := newJSONLogger(t, HandlerConfig{})
	var err error
	l.Info("m", "err", err, "e2", errors.New("plain"))
	if got := jsonLines(t, buf)[0]["e2"]; got != "plain" {
		t.Errorf("e2 = %v", got)
	}
}

// isolatedRun reports whether the digit run s[i:j] touches neither letters
// or digits nor a separator that joins it to more digits.
func isolatedRun(s string, i, j int) bool {
	if i > 0 {
		c := s[i-1]
		if isAlnum(c) || ((c == ' ' || c == '-') && i > 1 && isDigit(s[i-2])) {
			return false
		}
	}
	if j < len(s) {
		c := s[j]
		if isAlnum(c) || ((c == ' ' || c == '-') && j+1 < len(s) && isDigit(s[j+1])) {
			return false
		}
	}
	return true
}

func luhnString(s string) bool {
	b := []byte(s)
	for i := range b {
		b[i] -= '0'
	}
	return luhn(b)
}

func TestRedactRequestResponse(t *testing.T) {
	for name, mk := range map[string]func(*bytes.Buffer) slog.Handler{
		"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			l := slog.New(mustHandler(t, HandlerConfig{Next: mk(&buf)}))
			req, _ := http.NewRequest("POST", "https://api.example.com/pay?token=query-secret", nil)
			req.Header.Set("Authorization", "Bearer req-secret")
			req.Header.Set("Accept", "application/json")
			resp := &http.Response{StatusCode: 502, Header: http.Header{"Set-Cookie": {"sid=resp-secret"}}}
			l.Info("m", "req", req, "resp", resp)
			out := buf.String()
			for _, leak := range []string{"query-secret", "req-secret", "resp-secret"} {
				if strings.Contains(out, leak) {
					t.Errorf("%q leaked: %s", leak, out)
				}
			}
			for _, keep := range []string{"POST", "/pay", "application/json", "502"} {
				if !strings.Contains(out, keep) {
					t.Errorf("%q lost: %s", keep, out)
				}
			}
		})
	}
}

type ptrError struct{ msg string }

func (e *ptrError) Error() string { return e.msg } // panics on a nil receiver

type ptrWrapError struct{ err error }

func (e *ptrWrapError) Error() string { return e.err.Error() } // panics on a nil receiver
func (e *ptrWrapError) Unwrap() error { return e.err }         // panics on a nil receiver

func TestRedactNilPointerError(t *testing.T) {
	l, buf := newJSONLogger(t, HandlerConfig{})
	var pe *ptrError
	var we *ptrWrapError
	l.Info("m", "err", error(pe), "err2", error(we), "ok", "yes")
	if got := jsonLines(t, buf)[0]; got["ok"] != "yes" {
		t.Errorf("line %v", got)
	}
}

func TestRedactURLQuery(t *testing.T) {
	l, buf := newJSONLogger(t, HandlerConfig{})
	u1, _ := url.Parse("https://api.example.com/cb?access_token=q-secret&state=ok")
	u2, _ := url.Parse("https://api.example.com/plain?page=2")
	u3, _ := url.Parse("https://api.example.com/x?%zz=bad-escape-secret")
	// Presigned URLs: whoever holds the signature holds the access.
	u4, _ := url.Parse("https://bucket.s3.amazonaws.com/k?X-Amz-Credential=AKIA%2F20261207&X-Amz-Signature=amz-sig-secret&X-Amz-Expires=900")
	u5, _ := url.Parse("https://acct.blob.core.windows.net/c/b?sv=2022-11-02&se=2026-12-08&sp=r&sig=azure-sig-secret")
	l.Info("m", "u1", u1, "u2", u2, "u3", u3, "u4", u4, "u5", u5)
	out := buf.String()
	for _, leak := range []string{"q-secret", "bad-escape-secret", "amz-sig-secret", "azure-sig-secret"} {
		if strings.Contains(out, leak) {
			t.Errorf("%q leaked: %s", leak, out)
		}
	}
	got := jsonLines(t, buf)[0]
	if s, _ := got["u1"].(string); !strings.Contains(s, "state=ok") || !strings.Contains(s, "/cb") {
		t.Errorf("u1 = %v", got["u1"])
	}
	if !strings.Contains(out, "page=2") {
		t.Errorf("plain URL changed: %s", out)
	}
}

// User information and fragments hold secrets as well as queries: an OAuth
// implicit-flow callback carries its token in the fragment, a git remote
// its token as the user name. Whatever the wrapped handler (a text handler
// prints the URL with its String method), they are redacted.
func TestRedactURLUserAndFragment(t *testing.T) {
	for _, tt := range []struct{ raw, want string }{
		{"https://app.example/callback#access_token=frag-s3cr3t&token_type=bearer",
			// token_type is redacted too: it contains "token".
			"https://app.example/callback#access_token=%5BREDACTED%5D&token_type=%5BREDACTED%5D"},
		{"https://app.example/callback?access_token=q-s3cr3t#access_token=frag-s3cr3t",
			"https://app.example/callback?access_token=%5BREDACTED%5D#access_token=%5BREDACTED%5D"},
		{"https://ghp_s3cr3tToken@github.com/org/repo.git", "https://[REDACTED]@github.com/org/repo.git"},
		{"https://user:s3cr3t@example.com/pay?page=2#top", "https://[REDACTED]@example.com/pay?page=2#top"},
		// A fragment that is not a query is dropped rather than leaked.
		{"https://app.example/cb#a=1;token=s3cr3t", "https://app.example/cb"},
		// A fragment without secrets is kept as it is.
		{"https://docs.example/guide#section-2", "https://docs.example/guide#section-2"},
		// An opaque URL has no parsed user information, though it may
		// hold one: a JDBC URL, or a DSN without a scheme, whose user
		// name url.Parse takes for one. What comes before its last '@'
		// (after a "//") is replaced.
		{"jdbc:postgresql://app:s3cr3t@db.example:5432/pay?ssl=true", "jdbc:postgresql://[REDACTED]@db.example:5432/pay?ssl=true"},
		{"app:s3cr3t@db.example:5432", "app:[REDACTED]@db.example:5432"},
	} {
		u, err := url.Parse(tt.raw)
		if err != nil {
			t.Fatal(err)
		}
		for name, mk := range map[string]func(*bytes.Buffer) slog.Handler{
			"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
			"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		} {
			var buf bytes.Buffer
			slog.New(mustHandler(t, HandlerConfig{Next: mk(&buf)})).Info("redirect", "url", u)
			if strings.Contains(buf.String(), "s3cr3t") {
				t.Errorf("%s: secret printed: %s", name, strings.TrimSpace(buf.String()))
			}
			switch name {
			case "text":
				if !strings.Contains(buf.String(), tt.want) {
					t.Errorf("%s: %s\nwant %s in the line", name, strings.TrimSpace(buf.String()), tt.want)
				}
			case "json":
				// An unchanged URL is passed on as the *url.URL it is.
				if got, ok := jsonLines(t, &buf)[0]["url"].(string); (ok || tt.raw != tt.want) && got != tt.want {
					t.Errorf("%s: %s\n got %v\nwant %v", name, tt.raw, got, tt.want)
				}
			}
		}
	}
	// The configured replacement replaces the user information; the
	// caller's URL is untouched.
	u, _ := url.Parse("https://ghp_s3cr3tToken@github.com/org/repo.git")
	var buf bytes.Buffer
	slog.New(mustHandler(t, HandlerConfig{Next: slog.NewJSONHandler(&buf, nil), Replacement: "***"})).Info("m", "url", u)
	if got := jsonLines(t, &buf)[0]["url"]; got != "https://***@github.com/org/repo.git" {
		t.Errorf("url = %v", got)
	}
	if u.User.Username() != "ghp_s3cr3tToken" {
		t.Error("caller's URL was modified")
	}
}

func FuzzHandlerRedaction(f *testing.F) {
	f.Add("password", "hunter2")
	f.Add("Set-Cookie", "sid=1")
	f.Add("note", "card 4111 1111 1111 1111")
	f.Add("", "x")
	f.Add("a\x00b", "\xff\xfe")
	f.Fuzz(func(t *testing.T, key, value string) {
		var buf bytes.Buffer
		h := mustHandler(t, HandlerConfig{Next: slog.NewJSONHandler(&buf, nil)})
		secret := "Zq9" + value + "Zq9" // a marker that cannot occur by chance
		ctx := With(WithCorrelationID(context.Background(), "c"), slog.String(key, secret))
		slog.New(h).WithGroup("g").InfoContext(ctx, "m", key, secret, "nested", slog.GroupValue(slog.String(key, secret)))
		lines := jsonLines(t, &buf) // must be valid JSON whatever the input
		if len(lines) != 1 {
			t.Fatalf("%d lines", len(lines))
		}
		if h.red.secretKey(key) && strings.Contains(buf.String(), "Zq9") {
			t.Fatalf("secret under key %q printed: %s", key, buf.String())
		}
	})
}

// Card numbers in a logged request's path or a *url.URL's path are masked
// like those in any string value, whether or not the URL is rewritten for
// a secret query parameter.
func TestRedactCardInRequestAndURLPaths(t *testing.T) {
	l, buf := newJSONLogger(t, HandlerConfig{})
	l.Info("m", "req", httptest.NewRequest("GET", "/cards/"+testPAN+"/charge", nil))
	for _, raw := range []string{
		"https://api.example/cards/" + testPAN,
		"https://api.example/cards/" + testPAN + "?token=x",
	} {
		u, _ := url.Parse(raw)
		l.Info("m", "url", u)
	}
	out := buf.String()
	if strings.Contains(out, testPAN) || strings.Count(out, "1111") != 3 {
		t.Errorf("card number not masked to its last four digits in every line: %s", out)
	}
}

type failingRT struct{}

func (failingRT) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("dial tcp 10.0.0.1:443: connect: connection refused")
}

// An http.Client error is a *url.Error whose text holds the request URL:
// its user information and secret query and fragment parameters are
// redacted as those of a *url.URL are, wherever the *url.Error is in the
// error's tree.
func TestRedactURLInError(t *testing.T) {
	_, err := (&http.Client{Transport: failingRT{}}).Get("https://ghp_usertoken@api.example.com/v1/charges?api_key=q-secret&page=2#access_token=f-secret")
	if err == nil {
		t.Fatal("no error")
	}
	for name, mk := range map[string]func(*bytes.Buffer) slog.Handler{
		"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			l := slog.New(mustHandler(t, HandlerConfig{Next: mk(&buf), NoCardScan: true}))
			l.Info("m", "err", err, "wrapped", fmt.Errorf("charge: %w", errors.Join(errors.New("other"), err)))
			out := buf.String()
			for _, leak := range []string{"ghp_usertoken", "q-secret", "f-secret"} {
				if strings.Contains(out, leak) {
					t.Errorf("%q leaked: %s", leak, out)
				}
			}
			for _, keep := range []string{"api.example.com/v1/charges", "page=2", "connection refused", "charge: other"} {
				if !strings.Contains(out, keep) {
					t.Errorf("%q lost: %s", keep, out)
				}
			}
		})
	}
}

// newTextLogger is newJSONLogger with the text handler, which prints a
// value of kind Any with its String method or as %+v.
// checkBothHandlers logs attrs through a Handler wrapping the JSON and the
// text handler (default HandlerConfig) and fails when either output holds
// one of leaks, or lacks one of keeps (checked in the JSON output only when
// keepsJSONOnly: the text handler prints some values in another form).
func checkBothHandlers(t *testing.T, attrs []any, leaks, keeps []string, keepsJSONOnly bool) {
	t.Helper()
	for name, mk := range map[string]func(testing.TB, HandlerConfig) (*slog.Logger, *bytes.Buffer){
		"json": newJSONLogger, "text": newTextLogger,
	} {
		t.Run(name, func(t *testing.T) {
			l, buf := mk(t, HandlerConfig{})
			l.Info("m", attrs...)
			out := buf.String()
			for _, leak := range leaks {
				if strings.Contains(out, leak) {
					t.Errorf("%q leaked: %s", leak, out)
				}
			}
			if keepsJSONOnly && name != "json" {
				return
			}
			for _, keep := range keeps {
				if !strings.Contains(out, keep) {
					t.Errorf("%q lost: %s", keep, out)
				}
			}
		})
	}
}

func newTextLogger(t testing.TB, cfg HandlerConfig) (*slog.Logger, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	cfg.Next = slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: dropTime})
	return slog.New(mustHandler(t, cfg)), &buf
}

// A *url.Userinfo is a URL's credentials on their own: its String method
// prints "user:password".
func TestRedactURLUserinfo(t *testing.T) {
	u, _ := url.Parse("https://bob:pw-secret@example.com/")
	tok, _ := url.Parse("https://ghp-token-secret@github.com/")
	l, buf := newTextLogger(t, HandlerConfig{})
	l.Info("m", "user", u.User, "creds", tok.User, "none", (*url.Userinfo)(nil))
	out := buf.String()
	for _, leak := range []string{"pw-secret", "ghp-token-secret", "bob"} {
		if strings.Contains(out, leak) {
			t.Errorf("%q leaked: %s", leak, out)
		}
	}
	if !strings.Contains(out, "user="+DefaultRedacted) {
		t.Errorf("userinfo not replaced: %s", out)
	}
}

// A url.URL held by value (a struct field, *req.URL) has no String method:
// both handlers print its fields, RawQuery, Fragment and User included.
func TestRedactURLByValue(t *testing.T) {
	u, _ := url.Parse("https://bob:pw-secret@example.com/cb?access_token=q-secret&page=2#id_token=f-secret")
	plain, _ := url.Parse("https://example.com/cb?page=2")
	checkBothHandlers(t, []any{"url", *u, "plain", *plain}, []string{"pw-secret", "q-secret", "f-secret"}, []string{"example.com/cb", "page=2"}, false)
}

// A pointer to a header map is printed through by both handlers
// ("&map[Authorization:[…]]" by the text handler).
func TestRedactHeaderPointer(t *testing.T) {
	h := http.Header{"Authorization": {"Bearer hdr-secret"}, "Accept": {"application/json"}}
	for name, mk := range map[string]func(testing.TB, HandlerConfig) (*slog.Logger, *bytes.Buffer){
		"json": newJSONLogger, "text": newTextLogger,
	} {
		t.Run(name, func(t *testing.T) {
			l, buf := mk(t, HandlerConfig{})
			l.Info("m", "h", &h, "none", (*http.Header)(nil))
			out := buf.String()
			if strings.Contains(out, "hdr-secret") {
				t.Errorf("header leaked: %s", out)
			}
			if !strings.Contains(out, "application/json") {
				t.Errorf("header lost: %s", out)
			}
		})
	}
	if h.Get("Authorization") != "Bearer hdr-secret" {
		t.Error("caller's header was modified")
	}
}

// A cookie is a credential whatever key it is logged under: the text
// handler prints it with its String method ("sid=…"), the JSON handler
// marshals its Value field. resp.Cookies() returns a []*http.Cookie.
func TestRedactCookies(t *testing.T) {
	c := &http.Cookie{Name: "sid", Value: "cookie-secret", Path: "/app", HttpOnly: true}
	checkBothHandlers(t, []any{"c", c, "set", []*http.Cookie{c, {Name: "csrf", Value: "csrf-secret"}, nil}, "none", (*http.Cookie)(nil)}, []string{"cookie-secret", "csrf-secret"}, []string{"sid=" + DefaultRedacted, "Path=/app", "csrf=" + DefaultRedacted}, false)
	if c.Value != "cookie-secret" {
		t.Error("caller's cookie was modified")
	}
}

// A decoded JSON body is a map[string]any of maps, slices and strings:
// secret keys and card numbers are redacted at every level, as in a group.
func TestRedactAnyMaps(t *testing.T) {
	body := map[string]any{
		"user":     "bob",
		"password": "top-secret",
		"payment": map[string]any{
			"Authorization": "Bearer nested-secret",
			"note":          "card " + testPAN,
			"amount":        1250.0,
		},
		"items": []any{map[string]any{"access_token": "list-secret"}, "pan " + testPAN, 3.0},
		"meta":  map[string]string{"api_key": "labels-secret"},
	}
	checkBothHandlers(t, []any{"body", body, "list", []any{map[string]any{"secret": "top-list-secret"}}}, []string{"top-secret", "nested-secret", "list-secret", "labels-secret", testPAN}, []string{"bob", "1250", "************1111"}, false)
	if body["password"] != "top-secret" || body["payment"].(map[string]any)["note"] != "card "+testPAN {
		t.Error("caller's map was modified")
	}
}

// A map that contains itself is walked to a bounded depth, not forever.
func TestRedactAnyMapCycle(t *testing.T) {
	m := map[string]any{"token": "cycle-secret"}
	m["self"] = m
	l, buf := newJSONLogger(t, HandlerConfig{})
	l.Info("m", "m", m)
	if out := buf.String(); strings.Contains(out, "cycle-secret") {
		t.Errorf("leaked: %s", out)
	}
}

// A []byte is text to the handlers (the text handler quotes it, the JSON
// handler writes it in base64): a card number in it is masked as in a
// string, and the value stays a []byte.
func TestRedactCardInBytes(t *testing.T) {
	raw := []byte(`{"card":"` + testPAN + `","amount":1250}`)
	l, buf := newTextLogger(t, HandlerConfig{})
	l.Info("m", "body", raw)
	if out := buf.String(); strings.Contains(out, testPAN) || !strings.Contains(out, "************1111") {
		t.Errorf("card not masked: %s", out)
	}
	l, buf = newJSONLogger(t, HandlerConfig{})
	l.Info("m", "body", raw)
	b64, _ := jsonLines(t, buf)[0]["body"].(string)
	got, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatalf("body %q: %v", b64, err)
	}
	if want := `{"card":"************1111","amount":1250}`; string(got) != want {
		t.Errorf("body = %s, want %s", got, want)
	}
	if !bytes.Contains(raw, []byte(testPAN)) {
		t.Error("caller's bytes were modified")
	}
}

// A map or slice that contains itself more than once is cut where it
// recurs: walked to the depth bound instead, it cost 2^32 visits (a hang
// in the logging call) and gave the handler as many to print.
func TestRedactAnyCycleTwice(t *testing.T) {
	m := map[string]any{"note": "card " + testPAN}
	m["a"], m["b"] = m, m
	l := make([]any, 3)
	l[0], l[1], l[2] = l, l, "pan "+testPAN
	lg, buf := newJSONLogger(t, HandlerConfig{})
	lg.Info("m", "m", m, "l", l)
	got := jsonLines(t, buf)[0]
	wantM := map[string]any{"note": "card ************1111", "a": DefaultRedacted, "b": DefaultRedacted}
	if !reflect.DeepEqual(got["m"], wantM) {
		t.Errorf("m = %v, want %v", got["m"], wantM)
	}
	wantL := []any{DefaultRedacted, DefaultRedacted, "pan ************1111"}
	if !reflect.DeepEqual(got["l"], wantL) {
		t.Errorf("l = %v, want %v", got["l"], wantL)
	}
}

// maskedCard hides its number only through LogValue, relying on the
// Handler to mask what it returns, as the package example's Card does.
type maskedCard struct {
	Holder string
	Number string
}

func (c maskedCard) LogValue() slog.Value {
	return slog.GroupValue(slog.String("holder", c.Holder), slog.String("number", c.Number), slog.String("pin", "1234"))
}

// A LogValuer inside a map[string]any or []any is resolved and redacted,
// as in a group: passed on as is, the JSON handler marshalled its fields
// (the card number and the PIN in clear) and the text handler printed them.
func TestRedactAnyMapLogValuer(t *testing.T) {
	card := maskedCard{Holder: "Ann", Number: testPAN}
	body := map[string]any{"card": card, "cards": []any{card}, "ref": tokenValuer("x")}
	checkBothHandlers(t, []any{"body", body}, []string{testPAN, "1234"}, []string{"Ann", "************1111", "pan=", "holder"}, false)
	l, buf := newJSONLogger(t, HandlerConfig{})
	l.Info("m", "body", body)
	want := map[string]any{"holder": "Ann", "number": "************1111", "pin": DefaultRedacted}
	if got := jsonLines(t, buf)[0]["body"].(map[string]any)["card"]; !reflect.DeepEqual(got, want) {
		t.Errorf("card = %v, want %v", got, want)
	}
}

// chainValuer's LogValue returns a group that holds another chainValuer:
// each resolution is a new level, cut at the depth bound.
type chainValuer struct{}

func (c chainValuer) LogValue() slog.Value {
	return slog.GroupValue(slog.String("token", "chain-secret"), slog.Any("next", c))
}

func TestRedactAnyMapLogValuerChain(t *testing.T) {
	l, buf := newJSONLogger(t, HandlerConfig{})
	l.Info("m", "body", map[string]any{"c": chainValuer{}})
	if out := buf.String(); strings.Contains(out, "chain-secret") || !strings.Contains(out, `"next":"[REDACTED]"`) {
		t.Errorf("got %s", out)
	}
}

// A LogValuer inside a map runs exactly once per record, as one logged on
// its own does, though the Handler finds out only by resolving it that the
// record must change.
func TestRedactAnyMapLogValuerOnce(t *testing.T) {
	var calls atomic.Int32
	l, buf := newJSONLogger(t, HandlerConfig{})
	l.Info("m", "a", 1, "body", map[string]any{"user": secretValuer{&calls}}, "b", 2)
	if n := calls.Load(); n != 1 {
		t.Errorf("LogValue ran %d times, want 1", n)
	}
	got := jsonLines(t, buf)[0]
	want := map[string]any{"user": map[string]any{"user": "ann", "password": DefaultRedacted}}
	if !reflect.DeepEqual(got["body"], want) || got["a"] != 1.0 || got["b"] != 2.0 {
		t.Errorf("got %v", got)
	}
}

// A request or response inside a map[string]any is written as it is on its
// own, method, path, status and redacted headers: it was the group's
// []slog.Attr, which the JSON handler marshalled as
// [{"Key":"method","Value":{}},…], every value lost.
func TestRedactAnyMapRequest(t *testing.T) {
	req := httptest.NewRequest(http.MethodPost, "/pay", nil)
	req.Header.Set("Authorization", "Bearer req-secret")
	resp := &http.Response{StatusCode: 503, Header: http.Header{"Retry-After": {"3"}}}
	l, buf := newJSONLogger(t, HandlerConfig{})
	l.Info("m", "call", map[string]any{"req": req, "resp": resp})
	got := jsonLines(t, buf)[0]["call"].(map[string]any)
	wantReq := map[string]any{"method": "POST", "path": "/pay", "header": map[string]any{"Authorization": []any{DefaultRedacted}}}
	if !reflect.DeepEqual(got["req"], wantReq) {
		t.Errorf("req = %v, want %v", got["req"], wantReq)
	}
	wantResp := map[string]any{"status": 503.0, "header": map[string]any{"Retry-After": []any{"3"}}}
	if !reflect.DeepEqual(got["resp"], wantResp) {
		t.Errorf("resp = %v, want %v", got["resp"], wantResp)
	}
}

// A json.RawMessage (contract.Event.Data, a payload kept undecoded) is a
// []byte the JSON handler writes inline and the text handler quotes: card
// numbers in it are masked as in a []byte, and it stays inline JSON when
// that is still valid JSON, else it is written as a string.
func TestRedactCardInRawMessage(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want any
	}{
		{`{"card":"` + testPAN + `","amount":1250}`, map[string]any{"card": "************1111", "amount": 1250.0}},
		{`{"card":` + testPAN + `}`, `{"card":************1111}`},
	} {
		raw := json.RawMessage(tc.raw)
		l, buf := newJSONLogger(t, HandlerConfig{})
		l.Info("m", "data", raw)
		if got := jsonLines(t, buf)[0]["data"]; !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: data = %#v, want %#v", tc.raw, got, tc.want)
		}
		l, buf = newTextLogger(t, HandlerConfig{})
		l.Info("m", "data", raw)
		if out := buf.String(); strings.Contains(out, testPAN) || !strings.Contains(out, "************1111") {
			t.Errorf("%s: card not masked: %s", tc.raw, out)
		}
		if string(raw) != tc.raw {
			t.Error("caller's bytes were modified")
		}
	}
}

// An http.Cookie by value (a struct field, a dereferenced *http.Cookie) is
// written as a *http.Cookie is: it has no String method on the value, so
// both handlers printed its fields, Value included.
func TestRedactCookieByValue(t *testing.T) {
	c := http.Cookie{Name: "sid", Value: "cookie-secret", Path: "/", HttpOnly: true}
	for name, mk := range map[string]func(testing.TB, HandlerConfig) (*slog.Logger, *bytes.Buffer){
		"json": newJSONLogger, "text": newTextLogger,
	} {
		l, buf := mk(t, HandlerConfig{})
		l.Info("m", "c", c, "m", map[string]any{"c": c})
		if out := buf.String(); strings.Contains(out, "cookie-secret") || strings.Count(out, "sid=[REDACTED]; Path=/; HttpOnly") != 2 {
			t.Errorf("%s: %s", name, out)
		}
	}
}

// An http.Request or http.Response by value (a dereferenced r, a struct
// field) is written as a pointer to it is: the text handler printed its
// fields, the Authorization and Cookie headers included.
func TestRedactRequestResponseByValue(t *testing.T) {
	req := httptest.NewRequest(http.MethodGet, "/orders?token=query-secret", nil)
	req.Header.Set("Authorization", "Bearer req-secret")
	resp := http.Response{StatusCode: 200, Header: http.Header{"Set-Cookie": {"sid=resp-secret"}}}
	for name, mk := range map[string]func(testing.TB, HandlerConfig) (*slog.Logger, *bytes.Buffer){
		"json": newJSONLogger, "text": newTextLogger,
	} {
		l, buf := mk(t, HandlerConfig{})
		l.Info("m", "req", *req, "resp", resp)
		out := buf.String()
		for _, leak := range []string{"req-secret", "resp-secret", "query-secret"} {
			if strings.Contains(out, leak) {
				t.Errorf("%s: %q leaked: %s", name, leak, out)
			}
		}
		if !strings.Contains(out, "/orders") || !strings.Contains(out, "200") {
			t.Errorf("%s: lost: %s", name, out)
		}
	}
}
