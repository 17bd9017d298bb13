package retry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/retry"
	"github.com/sadpath/sadpath/retry/retrytest"
)

// inProgressServer is a service behind idempotency.Middleware (default
// FailFast) whose handler holds the first request until release is
// called; firstDone is closed once that request's response is stored.
func inProgressServer(t *testing.T, lease time.Duration) (srv *httptest.Server, release func(), firstDone chan struct{}) {
	t.Helper()
	store, err := idempotency.NewMemoryStore(idempotency.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	mw, err := idempotency.NewMiddleware(idempotency.MiddlewareConfig{
		Config: idempotency.Config{Store: store, Lease: lease},
		Scope:  func(*http.Request) (string, error) { return "tenant", nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	released, firstDone := make(chan struct{}), make(chan struct{})
	release = sync.OnceFunc(func() { close(released) })
	started := make(chan struct{})
	h := mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started) // runs once: duplicates never reach it
		<-released
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, "pay_1")
	}))
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		if r.Header.Get("X-First") != "" {
			close(firstDone) // Wrap returned: the response is stored
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(release) // before srv.Close, which waits for the first request
	go func() {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/payments", strings.NewReader(`{"amount":1}`))
		req.Header.Set("Idempotency-Key", "k1")
		req.Header.Set("X-First", "1")
		if resp, err := srv.Client().Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	<-started
	return srv, release, firstDone
}

// A client retrying a POST with the same Idempotency-Key while the first
// is still running gets 409 + Retry-After (idempotency.ErrInProgress, a
// retryable conflict). Through contract.ParseProblem and retry.Do it is
// retried after its Retry-After, capped by MaxDelay, and the client gets
// the first request's result. It used to read back as a non-retryable
// conflict: Do gave up at once.
func TestDoRetriesInProgressConflictAfterRetryAfter(t *testing.T) {
	for name, lease := range map[string]time.Duration{"hint": 5 * time.Second, "capped": time.Minute} {
		t.Run(name, func(t *testing.T) {
			srv, release, firstDone := inProgressServer(t, lease)
			clk := retrytest.NewClock()
			clk.OnSleep(func(time.Duration) {
				release()
				<-firstDone
			})
			p := constPolicy(t, clk, retry.Config{})
			var hints []time.Duration
			body, err := retry.Do(context.Background(), p, func(ctx context.Context) (string, error) {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/payments", strings.NewReader(`{"amount":1}`))
				req.Header.Set("Idempotency-Key", "k1")
				resp, err := srv.Client().Do(req)
				if err != nil {
					return "", err
				}
				defer resp.Body.Close()
				if err := contract.ParseProblem(resp); err != nil {
					d, _ := contract.RetryAfter(err)
					hints = append(hints, d)
					return "", err
				}
				b, err := io.ReadAll(resp.Body)
				return string(b), err
			})
			if err != nil || body != "pay_1" {
				t.Fatalf("Do = %q, %v; want the first request's result after a wait", body, err)
			}
			if len(hints) != 1 || hints[0] <= 0 {
				t.Fatalf("hints %v, want one 409 with Retry-After", hints)
			}
			want := min(hints[0], retry.DefaultMaxDelay)
			if got := clk.Sleeps(); len(got) != 1 || got[0] != want {
				t.Fatalf("waits %v, want [%s] (Retry-After %s capped by MaxDelay)", got, want, hints[0])
			}
		})
	}
}
