package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/limit"
	"github.com/sadpath/sadpath/logctx"
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
		// The gateway ran the charge and kept no answer (too large to
		// store): money may have moved. Not a rejection the client would
		// take as final (and retry under a new key, charged twice).
		{"409 response not stored", problem(409, "idempotency.response_not_stored", nil), 500, "payments.gateway_unexpected", 0},
		{"409 result not stored", problem(409, "idempotency.result_not_stored", nil), 500, "payments.gateway_unexpected", 0},
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
// was lost on its way back: the service answered 503 and released the key)
// and reuses the key with another body. The gateway's permanent 422
// reaches the client as the README's 422 idempotency.key_reused, without
// Retry-After, and is stored: retries get it replayed and never reach the
// gateway again. (As a 503 it told the client to retry the same request,
// which the middleware let through to the gateway every time, forever.)
func TestPaymentsGatewayRejectionIsFinal(t *testing.T) {
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			var lose atomic.Bool
			f := startWrapped(t, newStore(t), &FakeGateway{}, loseAnswers(&lose))
			lose.Store(true)
			if r := f.do(t, "POST", "/payments", goodBody, auth("reused-1")); r.status != 503 {
				t.Fatalf("lost answer: %d %s, want 503", r.status, r.body)
			}
			if got := f.gw.Charges(); got != 1 {
				t.Fatalf("the gateway charged %d times for the lost request, want 1", got)
			}
			lose.Store(false)

			other := strings.Replace(goodBody, "1999", "2999", 1)
			first := f.do(t, "POST", "/payments", other, auth("reused-1"))
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

// loseAnswers loses the gateway's answers while lose is set: the gateway
// really processes the charge (and completes its own idempotency record),
// but the service sees a 503, as after a proxy timeout.
func loseAnswers(lose *atomic.Bool) func(http.Handler) http.Handler {
	return func(gh http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !lose.Load() {
				gh.ServeHTTP(w, r)
				return
			}
			gh.ServeHTTP(httptest.NewRecorder(), r) // processed, answer lost
			contract.WriteProblem(w, r, contract.New(contract.KindUnavailable, "proxy", "upstream timed out"))
		})
	}
}

// After a lost answer (the gateway charged, the service saw 503 and
// released the key), a client that reuses the key for another payment gets
// the README's 422 idempotency.key_reused, whichever field it changed: the
// charge request carries the whole payment, so the gateway's fingerprint
// sees the change. (Without payer and payee in it, a retry to another payee
// got 201 with the charge made for the first one.)
func TestPaymentsReusedKeyAfterLostAnswer(t *testing.T) {
	for _, tc := range []struct{ field, from, to string }{
		{"amount_minor", `"amount_minor":1999`, `"amount_minor":2999`},
		{"currency", `"currency":"EUR"`, `"currency":"USD"`},
		{"payer", `"payer":"acct_alice"`, `"payer":"acct_carol"`},
		{"payee", `"payee":"acct_bob"`, `"payee":"acct_mallory"`},
		{"reference", `"reference":"order-1"`, `"reference":"order-2"`},
	} {
		t.Run(tc.field, func(t *testing.T) {
			var lose atomic.Bool
			f := startWrapped(t, stores(t)["memory"](t), &FakeGateway{}, loseAnswers(&lose))
			lose.Store(true)
			if r := f.do(t, "POST", "/payments", goodBody, auth("lost-1")); r.status != 503 {
				t.Fatalf("lost answer: %d %s, want 503", r.status, r.body)
			}
			if got := f.gw.Charges(); got != 1 {
				t.Fatalf("the gateway charged %d times for the lost request, want 1", got)
			}
			lose.Store(false)
			other := strings.Replace(goodBody, tc.from, tc.to, 1)
			if other == goodBody {
				t.Fatalf("%s not found in the body", tc.from)
			}
			r := f.do(t, "POST", "/payments", other, auth("lost-1"))
			var p contract.Problem
			if err := json.Unmarshal(r.body, &p); err != nil || r.status != 422 || p.Code != "idempotency.key_reused" {
				t.Fatalf("the same key with another %s after a lost answer: %d %s, want 422 idempotency.key_reused", tc.field, r.status, r.body)
			}
			if again := f.do(t, "POST", "/payments", other, auth("lost-1")); again.status != 422 || again.header.Get("Idempotent-Replayed") != "true" {
				t.Errorf("retry: %d replayed=%q, want the stored 422", again.status, again.header.Get("Idempotent-Replayed"))
			}
			if got := f.gw.Charges(); got != 1 {
				t.Errorf("gateway charged %d times, want 1", got)
			}
		})
	}
}

// The middleware parses Idempotency-Key: "order-9" (a structured-field
// string) and order-9 (a bare token) are one key. The gateway key is
// derived from the parsed key, so after a lost answer a retry spelled the
// other way reaches the gateway under the same key and is not charged
// again. (Derived from the raw header, it was charged twice.)
func TestPaymentsKeySpellingsAreOneGatewayKey(t *testing.T) {
	for _, spell := range [][2]string{{`"order-9"`, `order-9`}, {`order-9`, `"order-9"`}} {
		t.Run(spell[0]+" then "+spell[1], func(t *testing.T) {
			var lose atomic.Bool
			f := startWrapped(t, stores(t)["memory"](t), &FakeGateway{}, loseAnswers(&lose))
			lose.Store(true)
			if r := f.do(t, "POST", "/payments", goodBody, auth(spell[0])); r.status != 503 {
				t.Fatalf("lost answer: %d %s, want 503", r.status, r.body)
			}
			lose.Store(false)
			if r := f.do(t, "POST", "/payments", goodBody, auth(spell[1])); r.status != 201 {
				t.Fatalf("retry: %d %s, want 201", r.status, r.body)
			}
			if r := f.do(t, "POST", "/payments", goodBody, auth(spell[0])); r.status != 201 || r.header.Get("Idempotent-Replayed") != "true" {
				t.Fatalf("the first spelling again: %d replayed=%q, want a replay (one key for the middleware)", r.status, r.header.Get("Idempotent-Replayed"))
			}
			if got := f.gw.Charges(); got != 1 {
				t.Fatalf("one client request charged %d times at the gateway, want 1", got)
			}
		})
	}
}

// Only a succeeded charge with a charge id is captured. A declined or
// failed charge is the gateway's final word: a 422 the middleware stores
// and replays without calling the gateway again. Anything else (pending,
// an unknown status, no charge id) is a 500 that records nothing and
// releases the key, logged as an error.
func TestPaymentsChargeStatus(t *testing.T) {
	for _, tc := range []struct {
		name, answer string
		status       int
		code         string
		stored       bool
	}{
		{"succeeded", `{"charge_id":"ch_1","status":"succeeded"}`, 201, "", true},
		{"declined", `{"charge_id":"ch_1","status":"declined"}`, 422, "payments.gateway_rejected", true},
		{"failed", `{"charge_id":"ch_1","status":"failed"}`, 422, "payments.gateway_rejected", true},
		{"pending", `{"charge_id":"ch_1","status":"pending"}`, 500, "payments.gateway_unexpected", false},
		{"unknown status", `{"charge_id":"ch_1","status":"captured"}`, 500, "payments.gateway_unexpected", false},
		{"no status", `{"charge_id":"ch_1"}`, 500, "payments.gateway_unexpected", false},
		{"succeeded without a charge id", `{"status":"succeeded"}`, 500, "payments.gateway_unexpected", false},
		// A 201 whose body is not a charge at all: the gateway replays it
		// to every retry, so it is as unexpected as an unknown status, not
		// a 503 "retry" answered forever and logged as a mere warning.
		{"not JSON", `<html>charged</html>`, 500, "payments.gateway_unexpected", false},
		{"wrong type", `{"charge_id":17,"status":"succeeded"}`, 500, "payments.gateway_unexpected", false},
		// A body over our 64 KiB read limit is the gateway's answer too,
		// replayed whole to every retry: not a body cut short on its way.
		{"over 64 KiB", `{"charge_id":"ch_1","status":"succeeded","note":"` + strings.Repeat("x", 64<<10) + `"}`, 500, "payments.gateway_unexpected", false},
		{"64 KiB of white space first", strings.Repeat(" ", 64<<10) + `{"charge_id":"ch_1","status":"succeeded"}`, 500, "payments.gateway_unexpected", false},
		// A body that ended whole before any JSON value (a body cut short
		// fails with io.ErrUnexpectedEOF, not io.EOF) is no charge either.
		{"empty body", ``, 500, "payments.gateway_unexpected", false},
		{"white space only", " \r\n", 500, "payments.gateway_unexpected", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int64
			f := startWrapped(t, stores(t)["memory"](t), &FakeGateway{}, func(http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					calls.Add(1)
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusCreated)
					_, _ = w.Write([]byte(tc.answer))
				})
			})
			first := f.do(t, "POST", "/payments", goodBody, auth("status-1"))
			if first.status != tc.status {
				t.Fatalf("gateway answered 201 %.100s: we answer %d %s, want %d", tc.answer, first.status, first.body, tc.status)
			}
			if tc.code != "" {
				var p contract.Problem
				if err := json.Unmarshal(first.body, &p); err != nil || p.Code != tc.code {
					t.Fatalf("problem %s, want code %s", first.body, tc.code)
				}
			}
			again := f.do(t, "POST", "/payments", goodBody, auth("status-1"))
			if replayed := again.header.Get("Idempotent-Replayed") == "true"; replayed != tc.stored || again.status != tc.status {
				t.Errorf("the same request again: %d replayed=%v, want %d replayed=%v", again.status, replayed, tc.status, tc.stored)
			}
			if want := map[bool]int64{true: 1, false: 2}[tc.stored]; calls.Load() != want {
				t.Errorf("the gateway was called %d times, want %d", calls.Load(), want)
			}
			var list struct{ Payments []Payment }
			r := f.do(t, "GET", "/payments", "", map[string]string{"X-Api-Key": key1})
			if err := json.Unmarshal(r.body, &list); err != nil {
				t.Fatalf("list: %d %s", r.status, r.body)
			}
			if want := map[bool]int{true: 1, false: 0}[tc.status == 201]; len(list.Payments) != want {
				t.Errorf("%d payments recorded, want %d: %s", len(list.Payments), want, r.body)
			}
			if tc.status == 500 && !strings.Contains(f.logs.String(), `"level":"ERROR","msg":"payment not charged"`) {
				t.Errorf("an unexpected charge is not logged as an error:\n%s", f.logs.String())
			}
		})
	}
}

// A 201 whose body is cut short on its way (the connection drops before
// Content-Length bytes arrived) may arrive whole next time: 503, the key
// released, nothing recorded; the retry gets the charge replayed.
func TestPaymentsGatewayBodyCutShort(t *testing.T) {
	var calls atomic.Int64
	f := startWrapped(t, stores(t)["memory"](t), &FakeGateway{}, func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			answer := `{"charge_id":"ch_1","status":"succeeded"}`
			if calls.Add(1) == 1 {
				answer = answer[:20] // the server closes the connection: fewer bytes than declared
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "41")
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(answer))
		})
	})
	first := f.do(t, "POST", "/payments", goodBody, auth("cut-1"))
	var p contract.Problem
	if err := json.Unmarshal(first.body, &p); err != nil || first.status != 503 || p.Code != "payments.gateway_unavailable" {
		t.Fatalf("a 201 cut short: %d %s, want 503 payments.gateway_unavailable", first.status, first.body)
	}
	if again := f.do(t, "POST", "/payments", goodBody, auth("cut-1")); again.status != 201 {
		t.Fatalf("the retry: %d %s, want 201", again.status, again.body)
	}
}

// A 201 whose body is cut short on its way (fewer bytes than its
// Content-Length, none at all included) may arrive whole next time: a
// retryable 503, the key released, unlike an empty body sent whole.
func TestPaymentsChargeBodyCutShort(t *testing.T) {
	for _, sent := range []string{``, `{"charge_id":"ch_1",`} {
		f := startWrapped(t, stores(t)["memory"](t), &FakeGateway{}, func(http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Content-Length", "64")
				w.WriteHeader(http.StatusCreated)
				_, _ = w.Write([]byte(sent))
			})
		})
		if r := f.do(t, "POST", "/payments", goodBody, auth("cut-1")); r.status != 503 {
			t.Errorf("gateway's 201 cut short after %q: we answer %d %s, want 503", sent, r.status, r.body)
		}
	}
}

// The decision logged for a failed charge says what happened, so that only
// the gateway's own refusals read "gateway rejected the payment", and only
// a charge never sent reads "client went away".
func TestNotChargedReason(t *testing.T) {
	hold := func(t *testing.T, cfg limit.BulkheadConfig) *limit.Bulkhead {
		b, err := limit.NewBulkhead(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Release)
		return b
	}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	bg := context.Background()
	queued := hold(t, limit.BulkheadConfig{MaxConcurrent: 1, MaxWaiting: 1})
	full := hold(t, limit.BulkheadConfig{MaxConcurrent: 1})
	slow := hold(t, limit.BulkheadConfig{MaxConcurrent: 1, MaxWaiting: 1, MaxWait: time.Millisecond})
	for _, tc := range []struct {
		name   string
		ctx    context.Context
		err    error
		sent   bool // the charge reached the gateway
		level  slog.Level
		reason string
	}{
		{"the client gave up while queued", gone, queued.Acquire(gone), false, slog.LevelInfo, "client went away"},
		{"the client gave up as its slot was granted", gone, contract.Wrap(contract.KindCanceled, "payments.create", context.Canceled), false, slog.LevelInfo, "client went away"},
		// Once sent, a charge is followed to its answer whatever the
		// client does: its failure is the gateway's, never "went away".
		{"the client gave up during the call, the gateway failed", gone, unavailable(errors.New("503")), true, slog.LevelWarn, "gateway unavailable"},
		{"the client gave up during the call, the gateway declined", gone, chargeError(201, chargeResponse{ChargeID: "ch_1", Status: chargeDeclined}), true, slog.LevelWarn, "gateway rejected the payment"},
		{"bulkhead full", bg, full.Acquire(bg), false, slog.LevelWarn, "gateway bulkhead full"},
		{"bulkhead wait timed out", bg, slow.Acquire(bg), false, slog.LevelWarn, "gateway bulkhead full"},
		{"gateway down", bg, unavailable(errors.New("connection refused")), true, slog.LevelWarn, "gateway unavailable"},
		{"gateway rejection", bg, &contract.Error{Kind: contract.KindInvalid, Code: "payments.gateway_rejected"}, true, slog.LevelWarn, "gateway rejected the payment"},
		{"charge declined", bg, chargeError(201, chargeResponse{ChargeID: "ch_1", Status: chargeDeclined}), true, slog.LevelWarn, "gateway rejected the payment"},
		{"gateway refuses us", bg, &contract.Error{Kind: contract.KindInternal, Code: "payments.gateway_refused"}, true, slog.LevelError, "gateway call failed"},
		{"unexpected charge", bg, chargeError(201, chargeResponse{Status: "pending"}), true, slog.LevelError, "gateway call failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil {
				t.Fatal("no error to classify")
			}
			level, reason := notChargedReason(tc.ctx, tc.err, tc.sent)
			if level != tc.level || reason != tc.reason {
				t.Errorf("%v: %s %q, want %s %q", tc.err, level, reason, tc.level, tc.reason)
			}
		})
	}
}

// A client that gives up while its request waits for a gateway bulkhead
// slot is logged as a client that went away, at Info: the gateway never
// saw the payment, and under overload these are many. The bulkhead is
// held by the test, and the request is canceled once it is seen queued:
// no timing is involved.
func TestPaymentsClientGoneWhileQueued(t *testing.T) {
	logs := &syncBuffer{}
	h, err := logctx.NewHandler(logctx.HandlerConfig{Next: slog.NewJSONHandler(logs, nil)})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(h)
	gw, err := newGatewayClient("http://gateway.invalid", logger) // never called
	if err != nil {
		t.Fatal(err)
	}
	// One slot, taken by the test; a waiter leaves only when its context ends.
	if gw.bulkhead, err = limit.NewBulkhead(limit.BulkheadConfig{Name: "gateway", MaxConcurrent: 1, MaxWaiting: 1, MaxWait: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := gw.bulkhead.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer gw.bulkhead.Release()
	svc := &service{gw: gw, store: newPayments(), logger: logger}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/payments", strings.NewReader(goodBody))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range auth("queued-1") {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		authenticate(testKeys(t), http.HandlerFunc(svc.create)).ServeHTTP(rec, req)
	}()
	waitFor(t, 10*time.Second, "the request to queue in the bulkhead", func() bool { return gw.bulkhead.Waiting() == 1 })
	cancel()
	<-done

	if rec.Code != contract.StatusClientClosedRequest {
		t.Errorf("answer %d %s, want %d", rec.Code, rec.Body, contract.StatusClientClosedRequest)
	}
	out := logs.String()
	if strings.Contains(out, "gateway rejected the payment") {
		t.Errorf("a client that gave up in the bulkhead queue is logged as a gateway rejection:\n%s", out)
	}
	if !strings.Contains(out, `"level":"INFO","msg":"payment not charged","decision":"payment not charged","reason":"client went away"`) {
		t.Errorf("want an Info decision \"client went away\":\n%s", out)
	}
}

// A client that hangs up while its charge is at the gateway (a closed tab,
// a client timeout shorter than the gateway's latency, a proxy cutting
// connections) does not take the charge with it: once sent, the charge is
// followed to the gateway's answer and recorded, and the 201 is stored, so
// the client's retry with its key gets it replayed, never a second charge.
// (Sent on the client's context, the charge call was cut off with it: the
// service released the key, recorded nothing and logged "payment not
// charged", while the gateway charged.) The gateway holds the charge until
// the service has seen the client go, and the test waits on the service's
// request itself: no timing is involved.
func TestPaymentsClientGoneWhileCharging(t *testing.T) {
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			arrived, release, charged := make(chan struct{}), make(chan struct{}), make(chan struct{})
			releaseOnce := sync.OnceFunc(func() { close(release) })
			defer releaseOnce() // on a failure too: the servers' Close waits for the held charge
			var held atomic.Bool
			// The gateway holds the first charge until release, then makes
			// it whether or not the service still waits for the answer.
			hold := func(gh http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if !held.CompareAndSwap(false, true) {
						gh.ServeHTTP(w, r)
						return
					}
					close(arrived)
					<-release
					gh.ServeHTTP(w, r.WithContext(context.WithoutCancel(r.Context())))
					close(charged)
				})
			}
			gone, served := make(chan struct{}), make(chan struct{})
			var watched atomic.Bool
			// The service's first POST: gone once its context ends (the
			// client hung up), served once the handlers returned (the
			// idempotency middleware has stored or released the key).
			watch := func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.Method != http.MethodPost || !watched.CompareAndSwap(false, true) {
						h.ServeHTTP(w, r)
						return
					}
					context.AfterFunc(r.Context(), func() { close(gone) })
					defer close(served)
					h.ServeHTTP(w, r)
				})
			}
			f := startWith(t, newStore(t), &FakeGateway{}, hold, watch)

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.url+"/payments", strings.NewReader(goodBody))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			for k, v := range auth("gone-1") {
				req.Header.Set(k, v)
			}
			answered := make(chan error, 1)
			go func() {
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					resp.Body.Close()
					err = fmt.Errorf("the service answered %d", resp.StatusCode)
				}
				answered <- err
			}()
			waitClosed(t, arrived, "the charge to reach the gateway")
			cancel() // the client hangs up
			if err := <-answered; !errors.Is(err, context.Canceled) {
				t.Fatalf("the client that hung up got %v, want its own cancellation", err)
			}
			waitClosed(t, gone, "the service to see the client gone")
			releaseOnce()
			waitClosed(t, served, "the service to finish the request")
			waitClosed(t, charged, "the gateway to charge")

			var list struct{ Payments []Payment }
			r := f.do(t, "GET", "/payments", "", map[string]string{"X-Api-Key": key1})
			if err := json.Unmarshal(r.body, &list); err != nil || len(list.Payments) != 1 || list.Payments[0].ChargeID != "ch_000001" {
				t.Fatalf("the gateway charged ch_000001 (%d charges) for a client that hung up; the service recorded: %d %s\nlogs:\n%s",
					f.gw.Charges(), r.status, r.body, f.logs.String())
			}
			// The client comes back with its key: the 201 kept for it.
			again := f.do(t, "POST", "/payments", goodBody, auth("gone-1"))
			if loc := "/payments/" + list.Payments[0].ID; again.status != 201 || again.header.Get("Idempotent-Replayed") != "true" || again.header.Get("Location") != loc {
				t.Errorf("the client's retry: %d replayed=%q Location %q %s, want the stored 201 for %s",
					again.status, again.header.Get("Idempotent-Replayed"), again.header.Get("Location"), again.body, loc)
			}
			if got := f.gw.Charges(); got != 1 {
				t.Errorf("gateway charged %d times, want 1", got)
			}
			out := f.logs.String()
			if strings.Contains(out, "payment not charged") || !strings.Contains(out, `"msg":"payment captured"`) {
				t.Errorf("want \"payment captured\" and no \"payment not charged\" logged:\n%s", out)
			}
		})
	}
}

// waitClosed waits for ch to be closed, failing after a minute: a bound
// for a hung test, not a timing the test relies on.
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(time.Minute):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// A gateway answer that redirects (307/308 keep the method and body) is not
// followed: the charge, its payer and payee and its Idempotency-Key never
// go to a host the service was not configured with, and the 3xx is the
// documented 503 "ask again later", nothing recorded.
func TestPaymentsGatewayRedirectNotFollowed(t *testing.T) {
	var elsewhere atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"charge_id":"ch_elsewhere","status":"succeeded"}`))
	}))
	t.Cleanup(other.Close)
	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			f := startWrapped(t, stores(t)["memory"](t), &FakeGateway{}, func(http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, other.URL+"/charges", status)
				})
			})
			r := f.do(t, "POST", "/payments", goodBody, auth(fmt.Sprint("redirect-", status)))
			if n := elsewhere.Load(); n != 0 {
				t.Fatalf("the charge was sent %d times to the host the gateway redirected to", n)
			}
			var p contract.Problem
			if r.status != 503 || json.Unmarshal(r.body, &p) != nil || p.Code != "payments.gateway_unavailable" {
				t.Fatalf("gateway answered %d: we answer %d %s, want 503 payments.gateway_unavailable", status, r.status, r.body)
			}
		})
	}
}

// A charge whose outcome the service cannot tell (the gateway ran it but
// kept no answer, or answered a status or body that is not a charge) is
// logged as an error "for reconciliation": the line must say what the
// gateway knows the charge by, its Idempotency-Key, and whose payment it
// was, or nobody can find the money that may have moved. (It carried
// neither: only our correlation id, which the gateway does not index.)
func TestPaymentsUnknownChargeLoggedForReconciliation(t *testing.T) {
	for _, answer := range []func(w http.ResponseWriter, r *http.Request){
		func(w http.ResponseWriter, r *http.Request) {
			contract.WriteProblem(w, r, contract.New(contract.KindConflict, "gateway", "ran, answer not kept").WithCode("idempotency.response_not_stored"))
		},
		func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`<html>charged</html>`))
		},
	} {
		var sentKey atomic.Value
		f := startWrapped(t, stores(t)["memory"](t), &FakeGateway{}, func(http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				sentKey.Store(r.Header.Get("Idempotency-Key"))
				answer(w, r)
			})
		})
		if r := f.do(t, "POST", "/payments", goodBody, auth("unknown-1")); r.status != 500 {
			t.Fatalf("%d %s, want 500", r.status, r.body)
		}
		key, _ := sentKey.Load().(string)
		var line string
		for _, l := range strings.Split(f.logs.String(), "\n") {
			if strings.Contains(l, `"level":"ERROR","msg":"payment not charged"`) {
				line = l
			}
		}
		if key == "" || !strings.Contains(line, `"gateway_key":"`+key+`"`) || !strings.Contains(line, `"merchant":"merchant-1"`) {
			t.Errorf("the error logged for reconciliation does not name gateway key %q and merchant-1:\n%s", key, line)
		}
	}
}
