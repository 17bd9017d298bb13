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

// The same through retry.Transport: a request carrying an Idempotency-Key
// that meets the 409 of its first attempt still in flight, a problem
// saying "retryable": true, is retried after its Retry-After (capped by
// MaxDelay) with the same key, and the caller gets the first request's
// result. The IETF draft's 409 means exactly that: the original is still
// being processed. It used to be returned at once: 409 is no RetryStatuses
// status.
func TestTransportRetriesInProgressConflict(t *testing.T) {
	for name, lease := range map[string]time.Duration{"hint": 5 * time.Second, "capped": time.Minute} {
		t.Run(name, func(t *testing.T) {
			srv, release, firstDone := inProgressServer(t, lease)
			var hints []string
			base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
				resp, err := srv.Client().Transport.RoundTrip(r)
				if err == nil && resp.StatusCode == http.StatusConflict {
					hints = append(hints, resp.Header.Get("Retry-After"))
				}
				return resp, err
			})
			clk := retrytest.NewClock()
			clk.OnSleep(func(time.Duration) {
				release()
				<-firstDone
			})
			tr := newTransport(t, base, clk, retry.TransportConfig{}, retry.Config{})
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/payments", strings.NewReader(`{"amount":1}`))
			req.Header.Set("Idempotency-Key", "k1")
			resp, err := (&http.Client{Transport: tr}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated || string(b) != "pay_1" || resp.Header.Get("Idempotent-Replayed") != "true" {
				t.Fatalf("got %d %q (replayed %q), want the first request's 201 pay_1 replayed", resp.StatusCode, b, resp.Header.Get("Idempotent-Replayed"))
			}
			if len(hints) != 1 {
				t.Fatalf("Retry-After of the 409s: %q, want one", hints)
			}
			hint, ok := contract.ParseRetryAfter(hints[0], time.Now())
			if want := min(hint, retry.DefaultMaxDelay); !ok || len(clk.Sleeps()) != 1 || clk.Sleeps()[0] != want {
				t.Fatalf("waits %v, want [%s] (Retry-After %q capped by MaxDelay)", clk.Sleeps(), want, hints[0])
			}
		})
	}
}

// Only a 409 that says "retryable": true, answering a request that carries
// an Idempotency-Key, is retried: any other 409 is a conflict the caller
// must see (an edit lost to another, a key whose response was not stored),
// and without a key a retry would not be the same request to the server.
// Either is returned at once, its body intact.
func TestTransportOtherConflictsAreFinal(t *testing.T) {
	inProgress := contract.New(contract.KindConflict, "", "still running").WithCode("idempotency.in_progress").WithRetryable(true).WithRetryAfter(time.Second)
	for _, tt := range []struct {
		name   string
		method string
		key    string
		err    error
	}{
		{"no key", http.MethodPut, "", inProgress},
		{"not retryable", http.MethodPost, "k1", contract.New(contract.KindConflict, "", "version mismatch")},
		{"not stored", http.MethodPost, "k1", contract.New(contract.KindConflict, "", "not stored").WithCode("idempotency.response_not_stored")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			contract.WriteProblem(rec, nil, tt.err)
			base := &scripted{steps: []step{{status: rec.Code, header: rec.Header(), body: rec.Body.String()}, {status: 200}}}
			tr := newTransport(t, base, retrytest.NewClock(), retry.TransportConfig{}, retry.Config{})
			req, _ := http.NewRequest(tt.method, "http://dep.test/payments/1", strings.NewReader(`{}`))
			if tt.key != "" {
				req.Header.Set("Idempotency-Key", tt.key)
			}
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusConflict || string(b) != rec.Body.String() || len(base.seen) != 1 {
				t.Fatalf("got %d %q after %d attempts, want the 409 as is after 1", resp.StatusCode, b, len(base.seen))
			}
		})
	}
}
