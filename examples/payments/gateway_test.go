package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
)

// Each gateway answer becomes the error our client gets: only what may
// succeed later is a retryable 503; the gateway's final word on a payment
// keeps its kind (and is stored by the idempotency middleware); the gateway
// refusing us is our own 500.
func TestGatewayErrorClassification(t *testing.T) {
	problem := func(status int, code string, header map[string]string) *http.Response {
		rec := httptest.NewRecorder()
		for k, v := range header {
			rec.Header().Set(k, v)
		}
		e := &contract.Error{Kind: contract.KindInternal, Code: code, Detail: "from the gateway"}
		if k, ok := contract.ParseKind(code); ok {
			e.Kind = k
		}
		rec.Header().Set("Content-Type", contract.ProblemContentType)
		rec.WriteHeader(status)
		p := contract.ProblemFrom(e)
		p.Status, p.Title = status, http.StatusText(status)
		_ = json.NewEncoder(rec).Encode(p)
		resp := rec.Result()
		resp.Request = httptest.NewRequest(http.MethodPost, "http://gateway.test/charges", nil)
		return resp
	}
	for _, tc := range []struct {
		name       string
		resp       *http.Response
		status     int    // our client's status
		code       string // our client's problem code
		retryAfter time.Duration
	}{
		{"500", problem(500, "internal", nil), 503, "payments.gateway_unavailable", time.Second},
		{"503 with Retry-After", problem(503, "unavailable", map[string]string{"Retry-After": "7"}), 503, "payments.gateway_unavailable", 7 * time.Second},
		{"502", problem(502, "unavailable", nil), 503, "payments.gateway_unavailable", time.Second},
		{"504", problem(504, "timeout", nil), 503, "payments.gateway_unavailable", time.Second},
		{"429", problem(429, "rate_limited", map[string]string{"Retry-After": "3"}), 503, "payments.gateway_unavailable", 3 * time.Second},
		{"408", problem(408, "timeout", nil), 503, "payments.gateway_unavailable", time.Second},
		{"425", problem(425, "too_early", nil), 503, "payments.gateway_unavailable", time.Second},
		{"499", problem(499, "canceled", nil), 503, "payments.gateway_unavailable", time.Second},
		{"409 in progress", problem(409, "idempotency.in_progress", map[string]string{"Retry-After": "2"}), 503, "payments.gateway_unavailable", 2 * time.Second},
		{"202", problem(202, "accepted", nil), 503, "payments.gateway_unavailable", time.Second},
		{"422 key reused", problem(422, "idempotency.key_reused", nil), 422, "idempotency.key_reused", 0},
		{"422 invalid", problem(422, "invalid", nil), 422, "payments.gateway_rejected", 0},
		{"402 declined", problem(402, "card_declined", nil), 422, "payments.gateway_rejected", 0},
		{"400", problem(400, "malformed", nil), 400, "payments.gateway_rejected", 0},
		{"409 conflict", problem(409, "charge.already_refunded", nil), 409, "payments.gateway_rejected", 0},
		{"401", problem(401, "unauthorized", nil), 500, "payments.gateway_refused", 0},
		{"403", problem(403, "forbidden", nil), 500, "payments.gateway_refused", 0},
		{"404", problem(404, "not_found", nil), 500, "payments.gateway_refused", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := gatewayError(tc.resp)
			rec := httptest.NewRecorder()
			contract.WriteProblem(rec, httptest.NewRequest(http.MethodPost, "/payments", nil), err)
			var p contract.Problem
			if jerr := json.Unmarshal(rec.Body.Bytes(), &p); jerr != nil {
				t.Fatal(jerr)
			}
			if rec.Code != tc.status || p.Code != tc.code {
				t.Fatalf("client gets %d %q, want %d %q (%v)", rec.Code, p.Code, tc.status, tc.code, err)
			}
			if got, _ := contract.RetryAfter(err); got != tc.retryAfter {
				t.Errorf("retry after %s, want %s", got, tc.retryAfter)
			}
			if retry := contract.Retryable(err); retry != (tc.status == 503) {
				t.Errorf("retryable %v for a %d", retry, tc.status)
			}
			stored := idempotency.DefaultStoreStatus(rec.Code)
			if stored != (tc.status < 500) {
				t.Errorf("the middleware stores a %d: %v", rec.Code, stored)
			}
			if strings.Contains(rec.Body.String(), "from the gateway") {
				t.Errorf("the gateway's own detail reached our client: %s", rec.Body)
			}
		})
	}
}

// A client gives up on a request after the gateway charged it (the answer
// was lost) and reuses the key with another body. The gateway's permanent
// 422 reaches the client as the README's 422 idempotency.key_reused, without
// Retry-After, and is stored: retries get it replayed and never reach the
// gateway again. (As a 503 it told the client to retry the same request,
// which the middleware let through to the gateway every time, forever.)
func TestPaymentsGatewayRejectionIsFinal(t *testing.T) {
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			f := start(t, newStore(t), &FakeGateway{Latency: 300 * time.Millisecond})
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.url+"/payments", strings.NewReader(goodBody))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range auth("reused-1") {
				req.Header.Set(k, v)
			}
			req.Header.Set("Content-Type", "application/json")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
				t.Fatalf("the first request should have timed out on the client, got %d", resp.StatusCode)
			}
			waitFor(t, 10*time.Second, "the gateway to charge the abandoned request", func() bool { return f.gw.Charges() == 1 })

			other := strings.Replace(goodBody, "1999", "2999", 1)
			var first response
			waitFor(t, 10*time.Second, "the abandoned request to release its key", func() bool {
				first = f.do(t, "POST", "/payments", other, auth("reused-1"))
				return first.status != http.StatusConflict // 409: the service is still finishing it
			})
			var p contract.Problem
			if err := json.Unmarshal(first.body, &p); err != nil || first.status != 422 || p.Code != "idempotency.key_reused" {
				t.Fatalf("same key, other body: %d %s, want 422 idempotency.key_reused", first.status, first.body)
			}
			if ra := first.header.Get("Retry-After"); ra != "" {
				t.Errorf("a permanent answer carries Retry-After %q", ra)
			}
			calls := f.gw.Calls()
			for i := range 3 {
				r := f.do(t, "POST", "/payments", other, auth("reused-1"))
				if r.status != 422 || !bytes.Equal(r.body, first.body) || r.header.Get("Idempotent-Replayed") != "true" {
					t.Errorf("retry %d: %d replayed=%q %s, want the stored 422", i+1, r.status, r.header.Get("Idempotent-Replayed"), r.body)
				}
			}
			if got := f.gw.Calls(); got != calls {
				t.Errorf("the retries reached the gateway %d more times, want 0", got-calls)
			}
			if got := f.gw.Charges(); got != 1 {
				t.Errorf("gateway charged %d times, want 1", got)
			}
			if !strings.Contains(f.logs.String(), `"reason":"gateway rejected the payment"`) {
				t.Errorf("no decision logged for the rejection:\n%s", f.logs.String())
			}
		})
	}
}

// waitFor polls cond every 20 ms until it holds, failing after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
