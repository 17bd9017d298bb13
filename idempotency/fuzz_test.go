package idempotency_test

import (
	"bytes"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sadpath/sadpath/idempotency"
)

func quoteSF(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

func FuzzParseKey(f *testing.F) {
	for _, s := range []string{`"abc"`, `abc`, `""`, `"a\"b"`, `"a\\b"`, `"a\b"`, `"unterminated`, `"a"b`, "\"\x00\"", `"é"`, ` "x" `, `a,b`, strings.Repeat("k", 300), `"` + strings.Repeat(`\\`, 200) + `"`} {
		f.Add(s, 0, false)
		f.Add(s, 8, true)
	}
	f.Fuzz(func(t *testing.T, v string, maxLen int, strict bool) {
		// No key is longer than the value it is parsed from: a huge maxLen
		// (no limit) answers as a maxLen of the value's length does.
		kHuge, errHuge := idempotency.ParseKey(v, math.MaxInt, strict)
		kLen, errLen := idempotency.ParseKey(v, max(len(v), 1), strict)
		if kHuge != kLen || (errHuge == nil) != (errLen == nil) {
			t.Fatalf("ParseKey(%q): maxLen MaxInt gives %q %v, maxLen len(v) %q %v", v, kHuge, errHuge, kLen, errLen)
		}
		maxLen %= 4096
		k, err := idempotency.ParseKey(v, maxLen, strict)
		if err != nil {
			if !errors.Is(err, idempotency.ErrKeyInvalid) {
				t.Fatalf("ParseKey(%q): %v, want ErrKeyInvalid", v, err)
			}
			return
		}
		limit := maxLen
		if limit <= 0 {
			limit = idempotency.DefaultMaxKeyLength
		}
		if len(k) == 0 || len(k) > limit {
			t.Fatalf("ParseKey(%q) = %q: length %d outside [1, %d]", v, k, len(k), limit)
		}
		for i := 0; i < len(k); i++ {
			if k[i] < 0x20 || k[i] > 0x7e {
				t.Fatalf("ParseKey(%q) = %q: non-printable byte", v, k)
			}
		}
		// The structured-field form of the key parses back to the key.
		if k2, err := idempotency.ParseKey(quoteSF(k), limit, true); err != nil || k2 != k {
			t.Fatalf("round trip of %q: %q %v", k, k2, err)
		}
	})
}

func FuzzMiddleware(f *testing.F) {
	f.Add("POST", "/payments?a=1", `"key-1"`, "alice", []byte(`{"amount":1}`))
	f.Add("PATCH", "/x", "bare", "bob", []byte{0, 1, 2})
	f.Add("POST", "/", `"`, "", []byte(nil))
	f.Add("GET", "/%zz", "k", "c", []byte("x"))
	f.Add("POST", "/p", strings.Repeat("k", 300), "c", bytes.Repeat([]byte("b"), 5000))
	store := newMemory(f, idempotency.MemoryConfig{})
	mw, err := idempotency.NewMiddleware(idempotency.MiddlewareConfig{
		Config:       idempotency.Config{Store: store},
		Scope:        callerScope,
		MaxBodyBytes: 4096,
	})
	if err != nil {
		f.Fatal(err)
	}
	h := mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(r.Body)
		w.WriteHeader(201)
		_, _ = w.Write(buf.Bytes())
	}))
	allowed := map[int]bool{201: true, 400: true, 401: true, 409: true, 413: true, 422: true}
	f.Fuzz(func(t *testing.T, method, target, key, caller string, body []byte) {
		build := func() *http.Request {
			r, err := http.NewRequest(method, "http://example.test"+target, bytes.NewReader(body))
			if err != nil {
				return nil
			}
			r.Header["Idempotency-Key"] = []string{key}
			r.Header["X-Caller"] = []string{caller}
			return r
		}
		r1 := build()
		if r1 == nil {
			return
		}
		w1 := httptest.NewRecorder()
		h.ServeHTTP(w1, r1)
		if !allowed[w1.Code] {
			t.Fatalf("status %d for %q %q key %q", w1.Code, method, target, key)
		}
		w2 := httptest.NewRecorder()
		h.ServeHTTP(w2, build())
		if w1.Code == 201 && w1.Header().Get(idempotency.HeaderReplayed) == "" && (method == "POST" || method == "PATCH") {
			if w2.Code != 201 || w2.Header().Get(idempotency.HeaderReplayed) != "true" || !bytes.Equal(w2.Body.Bytes(), w1.Body.Bytes()) {
				t.Fatalf("second request: %d %q, want a replay of %q", w2.Code, w2.Body, w1.Body)
			}
		}
	})
}
