package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/logctx"
	"github.com/sadpath/sadpath/retry"
)

func timeoutButProcessed(ctx context.Context, e *env, r *report) error {
	// The downstream gateway: idempotent on its side (sadpath middleware),
	// and slow on the first charge — slower than the client waits.
	store, err := idempotency.NewMemoryStore(idempotency.MemoryConfig{})
	if err != nil {
		return err
	}
	var charges atomic.Int64
	const slowCharge = 300 * time.Millisecond
	gw, err := idempotency.NewMiddleware(idempotency.MiddlewareConfig{
		Config: idempotency.Config{Store: store, Duplicate: idempotency.Wait, Logger: e.logger.With(slog.String(logctx.KeyDependency, "gateway"))},
		Scope:  func(*http.Request) (string, error) { return "payments-service", nil },
	})
	if err != nil {
		return err
	}
	srv := httptest.NewServer(gw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		n := charges.Add(1)
		time.Sleep(slowCharge) // processes anyway, whether the client still waits or not
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"charge":"ch_`+string(rune('0'+n))+`","status":"succeeded"}`)
	})))
	defer srv.Close()

	// The caller: retries with a per-attempt timeout shorter than the charge,
	// carrying the same Idempotency-Key on every attempt.
	var retries []string
	policy, err := retry.New(retry.Config{
		Name:           "gateway",
		AttemptTimeout: 100 * time.Millisecond,
		InitialDelay:   50 * time.Millisecond,
		MaxDelay:       200 * time.Millisecond,
		MaxAttempts:    6,
		MaxElapsedTime: 5 * time.Second,
		Logger:         e.logger,
		OnRetry: func(attempt int, delay time.Duration, err error) {
			retries = append(retries, err.Error())
		},
	})
	if err != nil {
		return err
	}
	rt, err := retry.NewTransport(retry.TransportConfig{Policy: policy, Base: srv.Client().Transport})
	if err != nil {
		return err
	}
	client := &http.Client{Transport: rt}
	req, err := http.NewRequestWithContext(logctx.WithOperation(logctx.WithCorrelationID(ctx, "corr-timeout-1"), "payments.charge"),
		http.MethodPost, srv.URL+"/charges", strings.NewReader(`{"amount_minor":1999,"currency":"EUR"}`))
	if err != nil {
		return err
	}
	req.Header.Set("Idempotency-Key", "pay_0001-charge")
	req.Header.Set("Content-Type", "application/json")
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		r.fail("the caller got an error instead of the original result: %v", err)
		return nil
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(t0)
	// Let the gateway's first (abandoned) request finish storing its result.
	time.Sleep(10 * time.Millisecond)

	r.did("the gateway takes %s to charge; the caller gives each attempt %s", slowCharge, 100*time.Millisecond)
	r.did("POST /charges with Idempotency-Key through retry.Transport")
	r.decided("attempt 1 timed out on the caller's side, but the gateway kept charging")
	r.decided("retried %d time(s) with the same key; the gateway answered the retry from its idempotency record", len(retries))
	r.figure("caller attempts", "%d", len(retries)+1)
	r.figure("gateway charges executed", "%d", charges.Load())
	r.figure("final answer", "%d %s (Idempotent-Replayed: %q) after %s", resp.StatusCode, strings.TrimSpace(string(body)), resp.Header.Get("Idempotent-Replayed"), took.Round(time.Millisecond))
	r.expect(len(retries) >= 1, "the first attempt timed out and was retried")
	r.expect(charges.Load() == 1, "the gateway charged exactly once (charged %d times)", charges.Load())
	r.expect(resp.StatusCode == http.StatusCreated && strings.Contains(string(body), `"ch_1"`),
		"the caller got the original result of the first charge")
	r.expect(resp.Header.Get("Idempotent-Replayed") == "true", "the result the caller got was a replay")
	return nil
}
