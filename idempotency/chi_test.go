package idempotency_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/sadpath/sadpath/idempotency"
)

// The middleware works in a chi router, as router-wide middleware (Use,
// before routing) and per route (With): URL parameters reach the handler,
// two mounts of one route are two requests (the target as received is
// fingerprinted), and a panic caught by a recoverer outside the
// middleware releases the key, so the client's retry runs the handler.
func TestMiddlewareWithChi(t *testing.T) {
	env := newMW(t, nil)
	var panics atomic.Int32
	panics.Store(1)
	pay := func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Panic") != "" && panics.Add(-1) >= 0 {
			panic("handler crashed before the effect")
		}
		env.runs.Add(1)
		body, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, chi.URLParam(r, "id")+":"+string(body))
	}
	router := chi.NewRouter()
	router.Use(recoverer, env.mw.Wrap)
	router.Post("/accounts/{id}/payments", pay)
	v1 := chi.NewRouter()
	v1.Post("/accounts/{id}/payments", pay)
	router.Mount("/v1", v1)
	srv := httptest.NewServer(router)
	defer srv.Close()
	perRoute := chi.NewRouter() // the middleware on one route only
	perRoute.Post("/accounts/{id}/payments", pay)
	perRoute.With(env.mw.Wrap).Post("/accounts/{id}/refunds", pay)
	srv2 := httptest.NewServer(perRoute)
	defer srv2.Close()

	post := func(path, key, body string, panic bool) (int, string, string) {
		t.Helper()
		url := srv.URL + path
		if rest, ok := strings.CutPrefix(path, "/route"); ok {
			url = srv2.URL + rest
		}
		r, _ := http.NewRequest("POST", url, strings.NewReader(body))
		r.Header.Set("Idempotency-Key", key)
		r.Header.Set("X-Caller", "alice")
		if panic {
			r.Header.Set("X-Panic", "1")
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header.Get(idempotency.HeaderReplayed)
	}
	if c, b, rp := post("/accounts/acc_7/payments", "k1", "pay 5", false); c != 201 || b != "acc_7:pay 5" || rp != "" {
		t.Fatalf("first: %d %q replayed %q", c, b, rp)
	}
	if c, b, rp := post("/accounts/acc_7/payments", "k1", "pay 5", false); c != 201 || b != "acc_7:pay 5" || rp != "true" {
		t.Fatalf("retry: %d %q replayed %q, want the replay", c, b, rp)
	}
	if c, _, _ := post("/v1/accounts/acc_7/payments", "k1", "pay 5", false); c != http.StatusUnprocessableEntity {
		t.Fatalf("same key under the /v1 mount: %d, want 422", c)
	}
	if c, b, _ := post("/route/accounts/acc_8/refunds", "k2", "refund 1", false); c != 201 || b != "acc_8:refund 1" {
		t.Fatalf("per-route middleware: %d %q", c, b)
	}
	if c, _, rp := post("/route/accounts/acc_8/refunds", "k2", "refund 1", false); c != 201 || rp != "true" {
		t.Fatalf("per-route retry: %d replayed %q", c, rp)
	}
	if c, _, _ := post("/accounts/acc_9/payments", "k3", "pay 9", true); c != http.StatusInternalServerError {
		t.Fatalf("panicking handler behind a recoverer: %d, want 500", c)
	}
	if c, b, rp := post("/accounts/acc_9/payments", "k3", "pay 9", true); c != 201 || b != "acc_9:pay 9" || rp != "" {
		t.Fatalf("retry after the panic: %d %q replayed %q, want a fresh run", c, b, rp)
	}
	if n := env.runs.Load(); n != 3 {
		t.Fatalf("handler ran %d times, want 3", n)
	}
}

// recoverer answers a handler's panic with 500, as chi's Recoverer does
// (without printing the stack).
func recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if recover() != nil {
				w.WriteHeader(http.StatusInternalServerError)
			}
		}()
		next.ServeHTTP(w, r)
	})
}
