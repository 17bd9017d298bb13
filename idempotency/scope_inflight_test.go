package idempotency_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sadpath/sadpath/idempotency"
)

// The security property while a request is in flight: another caller
// sending the same Idempotency-Key (with the same payload or another) is
// neither told 409 (it would learn the key is in use, and be blocked) nor
// 422 (it would learn the key exists), nor made to wait under Wait: its
// request runs as its own. Neither caller's key nor body reaches the logs.
func TestMiddlewareScopeIsolationInFlight(t *testing.T) {
	for _, policy := range []idempotency.DuplicatePolicy{idempotency.FailFast, idempotency.Wait} {
		t.Run(map[idempotency.DuplicatePolicy]string{idempotency.FailFast: "FailFast", idempotency.Wait: "Wait"}[policy], func(t *testing.T) {
			var logs bytes.Buffer
			env := newMW(t, func(c *idempotency.MiddlewareConfig) {
				c.Lease = 10 * time.Second
				c.Duplicate = policy
				c.Logger = slog.New(slog.NewJSONHandler(&lockedWriter{w: &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
			})
			entered, release := make(chan struct{}), make(chan struct{})
			inner := env.paymentHandler()
			h := env.mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("X-Caller") == "alice" && env.runs.Load() == 0 {
					close(entered)
					<-release // alice's first request stays in flight
				}
				inner.ServeHTTP(w, r)
			}))
			const key, body = "alice-secret-key-7", `{"card":"4111-1111-SECRET"}`
			done := make(chan struct{})
			go func() {
				defer close(done)
				serve(h, req("POST", "/payments", "alice", key, body))
			}()
			<-entered
			for _, caller := range []struct{ name, body string }{{"mallory", body}, {"eve", `{"card":"other"}`}} {
				w := serve(h, req("POST", "/payments", caller.name, key, caller.body))
				if w.Code != http.StatusCreated || w.Header().Get(idempotency.HeaderReplayed) != "" {
					t.Fatalf("%s with alice's key while alice's request is in flight: %d %s, want its own fresh 201", caller.name, w.Code, w.Body)
				}
			}
			// Alice herself is held off while her request runs (FailFast).
			if policy == idempotency.FailFast {
				if w := serve(h, req("POST", "/payments", "alice", key, body)); w.Code != http.StatusConflict {
					t.Fatalf("alice's own duplicate in flight: %d, want 409", w.Code)
				}
			}
			close(release)
			<-done
			if w := serve(h, req("POST", "/payments", "alice", key, body)); w.Header().Get(idempotency.HeaderReplayed) != "true" {
				t.Fatalf("alice's retry: %d %s, want her replay", w.Code, w.Body)
			}
			if w := serve(h, req("POST", "/payments", "alice", key, `{"card":"changed"}`)); w.Code != http.StatusUnprocessableEntity {
				t.Fatalf("alice's key with another payload: %d, want 422", w.Code)
			}
			if n := env.runs.Load(); n != 3 {
				t.Fatalf("handler ran %d times, want 3 (alice, mallory, eve)", n)
			}
			got := logs.String()
			for _, secret := range []string{key, "SECRET", "alice", "mallory"} {
				if strings.Contains(got, secret) {
					t.Fatalf("logs carry %q:\n%s", secret, got)
				}
			}
			for _, d := range []string{"executed", "replayed", "mismatch"} {
				if !strings.Contains(got, `"decision":"`+d+`"`) {
					t.Fatalf("logs miss the %s decision:\n%s", d, got)
				}
			}
		})
	}
}
