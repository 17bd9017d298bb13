package contract

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestConcurrentUse proves the package functions share no mutable state:
// many goroutines decode, validate and write problems at once under -race.
func TestConcurrentUse(t *testing.T) {
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 64 {
		wg.Go(func() {
			for i := range 50 {
				ev, err := DecodeEvent([]byte(fullEvent))
				if err != nil || ev.Sequence != 7 {
					errs <- fmt.Errorf("DecodeEvent: %v", err)
					return
				}
				v := NewValidator()
				v.Currency("currency", "EUR")
				v.Range("amount", int64(g*i), 1, 1_000_000)
				if (g*i == 0) == (v.Err() == nil) {
					errs <- fmt.Errorf("validator for %d", g*i)
					return
				}
				rec := httptest.NewRecorder()
				WriteProblem(rec, nil, New(KindRateLimited, "", "").WithRetryAfter(time.Second))
				if KindOf(ParseProblemAt(rec.Result(), now)) != KindRateLimited {
					errs <- fmt.Errorf("problem round trip")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func BenchmarkKindOf(b *testing.B) {
	err := fmt.Errorf("call: %w", context.DeadlineExceeded)
	b.ReportAllocs()
	for b.Loop() {
		if KindOf(err) != KindTimeout {
			b.Fatal("kind")
		}
	}
}

func BenchmarkWriteProblem(b *testing.B) {
	err := New(KindInvalid, "payments.create", "2 fields are invalid").WithCode(CodeValidationFailed)
	err.Fields = []FieldError{{"amount_minor", "must be between 1 and 100000000"}, {"currency", "must be an active ISO 4217 currency code"}}
	req := httptest.NewRequest("POST", "/payments", nil)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		WriteProblem(w, req, err)
	}
}

type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

func BenchmarkParseProblem(b *testing.B) {
	body := []byte(`{"type":"about:blank","title":"Too Many Requests","status":429,"detail":"slow down","code":"rate_limited"}`)
	h := http.Header{"Content-Type": {ProblemContentType}, "Retry-After": {"3"}}
	b.ReportAllocs()
	for b.Loop() {
		resp := &http.Response{StatusCode: 429, Header: h, Body: io.NopCloser(bytes.NewReader(body))}
		if KindOf(ParseProblemAt(resp, now)) != KindRateLimited {
			b.Fatal("kind")
		}
	}
}

func BenchmarkDecodeJSON(b *testing.B) {
	body := `{"payer":"ACME","amount_minor":1250,"currency":"EUR","booked_at":"2026-11-25T06:00:00Z","items":[{"qty":1},{"qty":2}]}`
	b.ReportAllocs()
	for b.Loop() {
		var p payment
		if err := DecodeJSON(strings.NewReader(body), 0, &p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeJSONStdlib is the baseline: plain json.Unmarshal, no
// strictness, no limit.
func BenchmarkDecodeJSONStdlib(b *testing.B) {
	body := []byte(`{"payer":"ACME","amount_minor":1250,"currency":"EUR","booked_at":"2026-11-25T06:00:00Z","items":[{"qty":1},{"qty":2}]}`)
	b.ReportAllocs()
	for b.Loop() {
		var p payment
		if err := json.Unmarshal(body, &p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeEvent(b *testing.B) {
	in := []byte(fullEvent)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeEvent(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEventMarshal(b *testing.B) {
	ev, err := DecodeEvent([]byte(fullEvent))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidator(b *testing.B) {
	at := now.Add(-time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		v := NewValidator()
		v.Required("payer", "ACME")
		v.Range("amount_minor", 1250, 1, 100_000_000)
		v.Currency("currency", "EUR")
		v.OneOf("method", "card", "card", "sepa")
		v.TimeWithin("booked_at", at, now, 30*24*time.Hour, 5*time.Minute)
		if v.Err() != nil {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkValidatorFailing(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		v := NewValidator()
		v.Required("payer", "")
		v.Range("amount_minor", -1, 1, 100_000_000)
		v.Currency("currency", "XYZ")
		if v.Err() == nil {
			b.Fatal("valid")
		}
	}
}

// BenchmarkDecodeJSONLargeObject decodes an object of 5000 members into a
// map: past its first 32 names, an object's names are checked for
// repetitions through a hash index.
func BenchmarkDecodeJSONLargeObject(b *testing.B) {
	var body strings.Builder
	body.WriteString("{")
	for i := range 5000 {
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, `"member_%d":%d`, i, i)
	}
	body.WriteString("}")
	s := body.String()
	b.ReportAllocs()
	for b.Loop() {
		var m map[string]int
		if err := DecodeJSON(strings.NewReader(s), 0, &m); err != nil {
			b.Fatal(err)
		}
	}
}
