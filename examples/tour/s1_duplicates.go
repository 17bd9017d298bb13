package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sadpath/sadpath/idempotency"
)

// paymentsHandler creates a payment and counts how often it really ran.
func paymentsHandler(executions *atomic.Int64, work time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := executions.Add(1)
		time.Sleep(work) // the charge takes a while: duplicates arrive meanwhile
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Location", fmt.Sprintf("/payments/pay_%04d", n))
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":"pay_%04d","status":"captured","created":%q}`, n, time.Now().UTC().Format(time.RFC3339Nano))
	})
}

func sameRequestTwice(ctx context.Context, e *env, r *report) error {
	store, err := idempotency.NewMemoryStore(idempotency.MemoryConfig{})
	if err != nil {
		return err
	}
	var executions atomic.Int64
	mw, err := idempotency.NewMiddleware(idempotency.MiddlewareConfig{
		Config: idempotency.Config{Store: store, Duplicate: idempotency.Wait, Logger: e.logger},
		// The caller's account, as authentication would establish it (not the
		// API key: a key rotation would move its retries to a new scope).
		Scope: func(r *http.Request) (string, error) { return r.Header.Get("X-Account-Id"), nil },
	})
	if err != nil {
		return err
	}
	h := mw.Wrap(paymentsHandler(&executions, 20*time.Millisecond))
	post := func(key, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/payments", strings.NewReader(body))
		req.Header.Set("Idempotency-Key", key)
		req.Header.Set("X-Account-Id", "merchant-42")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	body := `{"amount_minor":1999,"currency":"EUR","payer":"alice","payee":"bob","reference":"order-1"}`

	// 1. The same request twice, one after the other.
	first := post("order-1-attempt", body)
	second := post("order-1-attempt", body)
	r.did("POST /payments twice with the same Idempotency-Key and body")
	r.decided("first: executed (%d), second: replayed (%d, Idempotent-Replayed: %q)",
		first.Code, second.Code, second.Header().Get("Idempotent-Replayed"))
	r.expect(executions.Load() == 1, "the payment handler ran once (ran %d times)", executions.Load())
	r.expect(bytes.Equal(first.Body.Bytes(), second.Body.Bytes()) && first.Code == second.Code,
		"the replay is byte-for-byte the first response")
	r.expect(second.Header().Get("Idempotent-Replayed") == "true", "the replay says Idempotent-Replayed: true")

	// 2. The same key with another body: the client has a bug.
	other := post("order-1-attempt", strings.Replace(body, "1999", "2999", 1))
	r.did("POST again with the same key but another amount")
	r.decided("key reused with another payload: %d problem", other.Code)
	r.expect(other.Code == http.StatusUnprocessableEntity, "a reused key with another payload gets 422 (got %d)", other.Code)

	// 3. 50 concurrent duplicates of a fresh request.
	executions.Store(0)
	const n = 50
	recs := make([]*httptest.ResponseRecorder, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			recs[i] = post("order-2-attempt", strings.Replace(body, "order-1", "order-2", 1))
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(t0)
	identical, replayed := 0, 0
	for _, rec := range recs {
		if rec.Code == recs[0].Code && bytes.Equal(rec.Body.Bytes(), recs[0].Body.Bytes()) {
			identical++
		}
		if rec.Header().Get("Idempotent-Replayed") == "true" {
			replayed++
		}
	}
	r.did("fired %d concurrent POSTs with one fresh key (duplicate policy: wait for the first result)", n)
	r.decided("1 executed, %d waited for the first and replayed its stored response", replayed)
	r.figure("concurrent duplicates", "%d", n)
	r.figure("handler executions", "%d", executions.Load())
	r.figure("identical responses", "%d/%d (status %d)", identical, n, recs[0].Code)
	r.figure("wall time for all 50", "%s", elapsed.Round(time.Millisecond))
	r.expect(executions.Load() == 1, "50 concurrent duplicates: the handler ran once (ran %d times)", executions.Load())
	r.expect(identical == n, "every duplicate got the identical response (%d/%d)", identical, n)
	return nil
}
