package idempotency_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/idempotency/storetest"
)

type mwEnv struct {
	clk   *storetest.FakeClock
	fault *faultyStore
	meter *countingMeter
	mw    *idempotency.Middleware
	runs  atomic.Int32
}

// callerScope reads the caller from a header, as an auth middleware would
// have put it on the request.
func callerScope(r *http.Request) (string, error) { return r.Header.Get("X-Caller"), nil }

func newMW(t *testing.T, mod func(*idempotency.MiddlewareConfig)) *mwEnv {
	t.Helper()
	env := &mwEnv{clk: storetest.NewFakeClock(epoch), meter: newCountingMeter()}
	env.fault = &faultyStore{Store: newMemory(t, idempotency.MemoryConfig{Clock: env.clk})}
	cfg := idempotency.MiddlewareConfig{
		Config: idempotency.Config{Store: env.fault, Clock: env.clk, MeterProvider: env.meter},
		Scope:  callerScope,
	}
	if mod != nil {
		mod(&cfg)
	}
	mw, err := idempotency.NewMiddleware(cfg)
	if err != nil {
		t.Fatalf("NewMiddleware: %v", err)
	}
	env.mw = mw
	return env
}

// paymentHandler creates a payment: it echoes the body and counts runs.
func (env *mwEnv) paymentHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := env.runs.Add(1)
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Location", "/payments/pay_"+string(rune('0'+n)))
		w.Header().Set("Set-Cookie", "session=secret")
		w.Header().Add("Link", "</a>; rel=a")
		w.Header().Add("Link", "</b>; rel=b")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"run":`))
		_, _ = w.Write([]byte{byte('0' + n)})
		_, _ = w.Write([]byte(`,"echo":` + string(body) + "}\x00"))
	})
}

func req(method, target, caller, key, body string) *http.Request {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if caller != "" {
		r.Header.Set("X-Caller", caller)
	}
	if key != "" {
		r.Header.Set("Idempotency-Key", key)
	}
	return r
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func problemCode(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != contract.ProblemContentType {
		t.Fatalf("content type %q, want a problem; body %s", ct, w.Body)
	}
	var p struct {
		Status int    `json:"status"`
		Code   string `json:"code"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatalf("problem body %q: %v", w.Body, err)
	}
	if p.Status != w.Code {
		t.Fatalf("problem status %d != HTTP status %d", p.Status, w.Code)
	}
	return p.Code
}

func TestMiddlewareReplaysExactly(t *testing.T) {
	env := newMW(t, nil)
	h := env.mw.Wrap(env.paymentHandler())
	first := serve(h, req("POST", "/payments?x=1", "alice", `"k-1"`, `{"amount":10}`))
	if first.Code != 201 || first.Header().Get(idempotency.HeaderReplayed) != "" {
		t.Fatalf("first: %d %v", first.Code, first.Header())
	}
	for range 3 {
		again := serve(h, req("POST", "/payments?x=1", "alice", `"k-1"`, `{"amount":10}`))
		if again.Code != first.Code || again.Body.String() != first.Body.String() {
			t.Fatalf("replay: %d %q, want %d %q", again.Code, again.Body, first.Code, first.Body)
		}
		if again.Header().Get(idempotency.HeaderReplayed) != "true" {
			t.Fatalf("replay lacks Idempotent-Replayed: %v", again.Header())
		}
		for _, hname := range []string{"Content-Type", "Location", "Link"} {
			if g, w := again.Header().Values(hname), first.Header().Values(hname); strings.Join(g, "|") != strings.Join(w, "|") {
				t.Fatalf("replayed %s = %q, want %q", hname, g, w)
			}
		}
		if again.Header().Get("Set-Cookie") != "" {
			t.Fatal("Set-Cookie was stored and replayed")
		}
	}
	if env.runs.Load() != 1 {
		t.Fatalf("handler ran %d times", env.runs.Load())
	}
	// Bare (unquoted) keys name the same key as the quoted form.
	bare := serve(h, req("POST", "/payments?x=1", "alice", `k-1`, `{"amount":10}`))
	if bare.Header().Get(idempotency.HeaderReplayed) != "true" {
		t.Fatalf("bare key: %d, want a replay", bare.Code)
	}
}

func TestMiddlewareStatuses(t *testing.T) {
	env := newMW(t, nil)
	h := env.mw.Wrap(env.paymentHandler())
	serve(h, req("POST", "/payments", "alice", "k", `{"amount":10}`))
	tests := []struct {
		name   string
		r      *http.Request
		status int
		code   string
	}{
		{"missing key", req("POST", "/payments", "alice", "", `{}`), 400, "idempotency.key_missing"},
		{"bad key", req("POST", "/payments", "alice", `"unterminated`, `{}`), 400, "idempotency.key_invalid"},
		{"key too long", req("POST", "/payments", "alice", strings.Repeat("a", 256), `{}`), 400, "idempotency.key_invalid"},
		{"other body", req("POST", "/payments", "alice", "k", `{"amount":11}`), 422, "idempotency.key_reused"},
		{"other path", req("POST", "/refunds", "alice", "k", `{"amount":10}`), 422, "idempotency.key_reused"},
		{"other query", req("POST", "/payments?dry=1", "alice", "k", `{"amount":10}`), 422, "idempotency.key_reused"},
		{"other method", req("PATCH", "/payments", "alice", "k", `{"amount":10}`), 422, "idempotency.key_reused"},
		{"no caller", req("POST", "/payments", "", "k", `{"amount":10}`), 401, "idempotency.no_scope"},
		{"body too large", req("POST", "/payments", "alice", "k2", strings.Repeat("x", idempotency.DefaultMaxBodyBytes+1)), 413, "idempotency.body_too_large"},
	}
	for _, tc := range tests {
		w := serve(h, tc.r)
		if w.Code != tc.status {
			t.Fatalf("%s: status %d, want %d (%s)", tc.name, w.Code, tc.status, w.Body)
		}
		if code := problemCode(t, w); code != tc.code {
			t.Fatalf("%s: code %q, want %q", tc.name, code, tc.code)
		}
	}
	r := req("POST", "/payments", "alice", "", `{}`)
	r.Header.Add("Idempotency-Key", "a")
	r.Header.Add("Idempotency-Key", "b")
	if w := serve(h, r); w.Code != 400 {
		t.Fatalf("repeated header: %d", w.Code)
	}
	// GET is not configured: passes through without a key.
	if w := serve(h, req("GET", "/payments", "alice", "", "")); w.Code != 201 {
		t.Fatalf("GET: %d", w.Code)
	}
	if env.runs.Load() != 2 || env.meter.get(idempotency.OutcomeMismatch) != 4 {
		t.Fatalf("runs %d, mismatches %d", env.runs.Load(), env.meter.get(idempotency.OutcomeMismatch))
	}
}

func TestMiddlewareInFlightConflict(t *testing.T) {
	env := newMW(t, func(c *idempotency.MiddlewareConfig) { c.Lease = 10 * time.Second })
	entered, release := make(chan struct{}), make(chan struct{})
	h := env.mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		w.WriteHeader(204)
	}))
	done := make(chan *httptest.ResponseRecorder)
	go func() { done <- serve(h, req("POST", "/p", "alice", "k", "{}")) }()
	<-entered
	w := serve(h, req("POST", "/p", "alice", "k", "{}"))
	if w.Code != 409 || w.Header().Get("Retry-After") != "10" || problemCode(t, w) != "idempotency.in_progress" {
		t.Fatalf("in flight: %d Retry-After %q %s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	close(release)
	if first := <-done; first.Code != 204 {
		t.Fatalf("first: %d", first.Code)
	}
	if w := serve(h, req("POST", "/p", "alice", "k", "{}")); w.Code != 204 || w.Header().Get(idempotency.HeaderReplayed) != "true" {
		t.Fatalf("after completion: %d %v", w.Code, w.Header())
	}
}

func TestMiddlewareStorePolicy(t *testing.T) {
	for _, tc := range []struct {
		status int
		stored bool
	}{{200, true}, {201, true}, {400, true}, {404, true}, {409, true}, {422, true}, {408, false}, {429, false}, {500, false}, {502, false}, {503, false}} {
		env := newMW(t, nil)
		h := env.mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			env.runs.Add(1)
			w.WriteHeader(tc.status)
		}))
		serve(h, req("POST", "/p", "alice", "k", "{}"))
		w := serve(h, req("POST", "/p", "alice", "k", "{}"))
		if w.Code != tc.status {
			t.Fatalf("status %d: second answer %d", tc.status, w.Code)
		}
		if replayed := w.Header().Get(idempotency.HeaderReplayed) == "true"; replayed != tc.stored || (env.runs.Load() == 1) != tc.stored {
			t.Fatalf("status %d: replayed=%v runs=%d, want stored=%v", tc.status, replayed, env.runs.Load(), tc.stored)
		}
	}
}

func TestMiddlewarePanicReleases(t *testing.T) {
	env := newMW(t, nil)
	panicking := true
	h := env.mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env.runs.Add(1)
		if panicking {
			panic(http.ErrAbortHandler)
		}
		w.WriteHeader(201)
	}))
	func() {
		defer func() {
			if r := recover(); r != http.ErrAbortHandler {
				t.Fatalf("recovered %v", r)
			}
		}()
		serve(h, req("POST", "/p", "alice", "k", "{}"))
	}()
	panicking = false
	if w := serve(h, req("POST", "/p", "alice", "k", "{}")); w.Code != 201 || env.runs.Load() != 2 {
		t.Fatalf("after a panic: %d runs=%d, want the retry to run", w.Code, env.runs.Load())
	}
}

func TestMiddlewareResponseTooLarge(t *testing.T) {
	env := newMW(t, func(c *idempotency.MiddlewareConfig) { c.MaxResponseBytes = 1000 })
	big := strings.Repeat("b", 1001)
	h := env.mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env.runs.Add(1)
		_, _ = io.WriteString(w, big[:500])
		_, _ = io.WriteString(w, big[500:])
	}))
	first := serve(h, req("POST", "/p", "alice", "k", "{}"))
	if first.Code != 200 || first.Body.String() != big {
		t.Fatalf("first: %d, %d bytes: the client must get the whole response", first.Code, first.Body.Len())
	}
	second := serve(h, req("POST", "/p", "alice", "k", "{}"))
	if second.Code != 409 || problemCode(t, second) != "idempotency.response_not_stored" || env.runs.Load() != 1 {
		t.Fatalf("duplicate of an unstorable response: %d %s runs=%d", second.Code, second.Body, env.runs.Load())
	}
}

// A response under MaxResponseBytes that the store refuses as too large
// (over a MemoryStore shard's budget) is handled like one over
// MaxResponseBytes: duplicates get 409, the handler runs once.
func TestMiddlewareResponseRefusedByStore(t *testing.T) {
	env := newMW(t, func(c *idempotency.MiddlewareConfig) {
		c.Store = newMemory(t, idempotency.MemoryConfig{Clock: c.Clock, MaxBytes: 16 << 10, MaxEntries: 16, Shards: 1})
	})
	big := strings.Repeat("b", 32<<10)
	h := env.mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env.runs.Add(1)
		_, _ = io.WriteString(w, big)
	}))
	first := serve(h, req("POST", "/p", "alice", "k", "{}"))
	if first.Code != 200 || first.Body.String() != big {
		t.Fatalf("first: %d, %d bytes: the client must get the whole response", first.Code, first.Body.Len())
	}
	second := serve(h, req("POST", "/p", "alice", "k", "{}"))
	if second.Code != 409 || problemCode(t, second) != "idempotency.response_not_stored" || env.runs.Load() != 1 {
		t.Fatalf("duplicate of a response the store refused: %d %s runs=%d", second.Code, second.Body, env.runs.Load())
	}
}

// A store that refuses even the 409 recording that the response was not
// stored (here a shard too small for it) holds the key in progress for the
// retention period instead: duplicates get 409 idempotency.in_progress,
// past the lease too, and the handler never runs twice.
func TestMiddlewareNotStoredRecordRefusedToo(t *testing.T) {
	env := newMW(t, func(c *idempotency.MiddlewareConfig) {
		c.Store = newMemory(t, idempotency.MemoryConfig{Clock: c.Clock, MaxBytes: 1024, MaxEntries: 16, Shards: 1})
		c.Lease, c.Retention, c.Heartbeat = time.Minute, time.Hour, -1
	})
	big := strings.Repeat("b", 4<<10)
	h := env.mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env.runs.Add(1)
		_, _ = io.WriteString(w, big)
	}))
	if first := serve(h, req("POST", "/p", "alice", "k", "{}")); first.Code != 200 || first.Body.String() != big {
		t.Fatalf("first: %d, %d bytes: the client must get the whole response", first.Code, first.Body.Len())
	}
	for _, wait := range []time.Duration{0, 2 * time.Minute, 50 * time.Minute} {
		env.clk.Advance(wait)
		w := serve(h, req("POST", "/p", "alice", "k", "{}"))
		if w.Code != 409 || problemCode(t, w) != "idempotency.in_progress" || w.Header().Get("Retry-After") == "" || env.runs.Load() != 1 {
			t.Fatalf("duplicate %v later: %d (%d bytes) Retry-After %q runs=%d, want 409 in_progress and one run",
				env.clk.Now().Sub(epoch), w.Code, w.Body.Len(), w.Header().Get("Retry-After"), env.runs.Load())
		}
	}
}

// A replay carries what the first client was sent, not what the handler
// tried to write, where net/http refused bytes no client could receive:
// past a declared Content-Length, a body on a 204.
func TestMiddlewareReplayHoldsOnlyDeliveredBytes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		status  int
		body    string
	}{
		{"past Content-Length", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5")
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte("hello"))
			if _, err := w.Write([]byte(" EXTRA")); !errors.Is(err, http.ErrContentLength) {
				t.Errorf("test premise: writing past Content-Length: %v, want http.ErrContentLength", err)
			}
		}, http.StatusCreated, "hello"},
		{"body on a 204", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNoContent)
			if _, err := w.Write([]byte("no body allowed")); !errors.Is(err, http.ErrBodyNotAllowed) {
				t.Errorf("test premise: a body on a 204: %v, want http.ErrBodyNotAllowed", err)
			}
		}, http.StatusNoContent, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newMW(t, nil)
			srv := httptest.NewServer(env.mw.Wrap(tc.handler))
			defer srv.Close()
			send := func() (int, string, string) {
				r, _ := http.NewRequest("POST", srv.URL+"/p", strings.NewReader("{}"))
				r.Header.Set("X-Caller", "alice")
				r.Header.Set("Idempotency-Key", `"k-cl"`)
				resp, err := srv.Client().Do(r)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b), resp.Header.Get(idempotency.HeaderReplayed)
			}
			s1, b1, _ := send()
			s2, b2, replayed := send()
			if replayed != "true" || s1 != s2 || b1 != b2 || s1 != tc.status || b1 != tc.body {
				t.Fatalf("first client got %d %q, replay (replayed %q) %d %q; want %d %q", s1, b1, replayed, s2, b2, tc.status, tc.body)
			}
		})
	}
}

// hijackedWriter is the writer of a connection hijacked before the
// middleware saw it: every write fails with http.ErrHijacked.
type hijackedWriter struct{ *httptest.ResponseRecorder }

func (hijackedWriter) Write([]byte) (int, error) { return 0, http.ErrHijacked }

// goneWriter is the writer of a client that went away part way through
// the response: it takes room more bytes, then fails every write (short
// says how: with an error, or, breaking io.Writer's contract, without).
type goneWriter struct {
	header http.Header
	room   int
	short  bool
	status int
	got    []byte
}

var errBrokenPipe = errors.New("write tcp 127.0.0.1:8080->127.0.0.1:50000: write: broken pipe")

func (g *goneWriter) Header() http.Header { return g.header }
func (g *goneWriter) WriteHeader(code int) {
	if g.status == 0 {
		g.status = code
	}
}

func (g *goneWriter) Write(p []byte) (int, error) {
	n := min(len(p), g.room)
	g.room -= n
	g.got = append(g.got, p[:n]...)
	if n < len(p) && !g.short {
		return n, errBrokenPipe
	}
	return n, nil
}

// The sad path the package exists for: the client timed out and went
// away, the handler did the work anyway and answered 201 with its body.
// The retry with the same key gets that whole answer — not the part of it
// that reached the gone client, which would be replayed for the whole
// retention period.
func TestMiddlewareReplayHoldsWholeAnswerForGoneClient(t *testing.T) {
	body := strings.Repeat("0123456789abcdef", 4<<10/16) // 4 KiB, under MaxResponseBytes
	for _, tc := range []struct {
		name  string
		room  int
		short bool
	}{
		{"connection broken mid-body", 1500, false},
		{"connection broken before the body", 0, false},
		{"short write without an error", 1500, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newMW(t, nil)
			h := env.mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				env.runs.Add(1)
				w.Header().Set("Content-Type", "text/plain")
				w.WriteHeader(http.StatusCreated)
				for p := body; len(p) > 0; p = p[1024:] {
					_, _ = io.WriteString(w, p[:1024])
				}
			}))
			gone := &goneWriter{header: http.Header{}, room: tc.room, short: tc.short}
			h.ServeHTTP(gone, req("POST", "/orders", "alice", `"order-1"`, "{}"))
			if gone.status != http.StatusCreated || len(gone.got) != tc.room {
				t.Fatalf("test premise: the gone client got %d and %d bytes", gone.status, len(gone.got))
			}
			w := serve(h, req("POST", "/orders", "alice", `"order-1"`, "{}"))
			if w.Code != http.StatusCreated || w.Header().Get(idempotency.HeaderReplayed) != "true" || w.Body.String() != body || env.runs.Load() != 1 {
				t.Fatalf("retry: %d replayed=%q, %d body bytes of the %d the handler wrote, runs %d; want a replay of the whole answer",
					w.Code, w.Header().Get(idempotency.HeaderReplayed), w.Body.Len(), len(body), env.runs.Load())
			}
		})
	}
}

// The same through a real connection: the client gives up and closes it,
// the handler answers after that; the retry gets the whole answer.
func TestMiddlewareReplayHoldsWholeAnswerForClosedConnection(t *testing.T) {
	env := newMW(t, nil)
	body := bytes.Repeat([]byte("0123456789abcdef"), 64<<10/16) // 64 KiB: more than net/http buffers
	started, finished := make(chan struct{}, 1), make(chan struct{}, 1)
	inner := env.mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env.runs.Add(1)
		started <- struct{}{}
		<-r.Context().Done() // the client closed the connection; the work completes anyway
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusCreated)
		for p := body; len(p) > 0; p = p[1024:] {
			_, _ = w.Write(p[:1024])
		}
	}))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inner.ServeHTTP(w, r)
		finished <- struct{}{} // the key is completed (or released) by now
	}))
	defer srv.Close()
	send := func(ctx context.Context) (*http.Response, error) {
		r, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/orders", strings.NewReader("{}"))
		r.Header.Set("X-Caller", "alice")
		r.Header.Set("Idempotency-Key", `"order-1"`)
		return srv.Client().Do(r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel() // the client's timeout
	}()
	if resp, err := send(ctx); err == nil {
		resp.Body.Close()
		t.Fatal("test premise: the first request should fail on the client")
	}
	<-finished
	resp, err := send(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated || resp.Header.Get(idempotency.HeaderReplayed) != "true" || !bytes.Equal(got, body) || env.runs.Load() != 1 {
		t.Fatalf("retry: %d replayed=%q, %d body bytes of the %d the handler wrote, runs %d; want a replay of the whole answer",
			resp.StatusCode, resp.Header.Get(idempotency.HeaderReplayed), len(got), len(body), env.runs.Load())
	}
}

// expiringCtx is a context whose deadline passes when expire is closed:
// a timeout at a moment the test picks.
type expiringCtx struct {
	context.Context
	expire chan struct{}
}

func (c expiringCtx) Done() <-chan struct{} { return c.expire }

func (c expiringCtx) Err() error {
	select {
	case <-c.expire:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

// Behind http.TimeoutHandler: the client got 503 "timeout", then the
// handler created the order (201 with its id), every write failing with
// http.ErrHandlerTimeout. The retry gets the order, not an empty 201.
func TestMiddlewareReplayHoldsWholeAnswerBehindTimeoutHandler(t *testing.T) {
	env := newMW(t, nil)
	started, proceed, finished := make(chan struct{}), make(chan struct{}), make(chan struct{})
	inner := env.mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if env.runs.Add(1) == 1 {
			close(started)
			<-proceed // slower than the timeout, but it commits
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		if _, err := w.Write([]byte(`{"order":"ord_123"}`)); env.runs.Load() == 1 && !errors.Is(err, http.ErrHandlerTimeout) {
			t.Errorf("test premise: writing after the timeout: %v, want http.ErrHandlerTimeout", err)
		}
	}))
	var served atomic.Int32
	h := http.TimeoutHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inner.ServeHTTP(w, r)
		if served.Add(1) == 1 {
			close(finished) // the key is completed (or released) by now
		}
	}), time.Minute, "timeout")
	// The request times out once the handler runs: TimeoutHandler's
	// context ends with DeadlineExceeded, as at its own deadline.
	r := req("POST", "/orders", "alice", "k1", "{}")
	ctx := expiringCtx{Context: r.Context(), expire: make(chan struct{})}
	firstDone := make(chan *httptest.ResponseRecorder)
	go func() { firstDone <- serve(h, r.WithContext(ctx)) }()
	<-started
	close(ctx.expire)
	first := <-firstDone // TimeoutHandler answered, the handler still running
	close(proceed)
	<-finished
	if first.Code != http.StatusServiceUnavailable || first.Body.String() != "timeout" {
		t.Fatalf("test premise: first answer %d %q, want TimeoutHandler's 503", first.Code, first.Body)
	}
	w := serve(h, req("POST", "/orders", "alice", "k1", "{}"))
	if w.Code != http.StatusCreated || w.Header().Get(idempotency.HeaderReplayed) != "true" || w.Body.String() != `{"order":"ord_123"}` || env.runs.Load() != 1 {
		t.Fatalf("retry: %d replayed=%q %q runs %d, want a replay of the order", w.Code, w.Header().Get(idempotency.HeaderReplayed), w.Body, env.runs.Load())
	}
}

// A handler that takes the connection over — hijacking it (through
// http.ResponseController or http.Hijacker) or switching protocols (101) —
// answers past the middleware: nothing is written for it afterwards (on a
// hijacked connection net/http would log it), and a retry gets a 409
// idempotency.response_not_stored, neither a second run nor an invented
// empty 200.
func TestMiddlewareConnectionTakenOverIsNotStored(t *testing.T) {
	hijackers := map[string]func(w http.ResponseWriter) (net.Conn, *bufio.ReadWriter, error){
		"ResponseController": func(w http.ResponseWriter) (net.Conn, *bufio.ReadWriter, error) {
			return http.NewResponseController(w).Hijack()
		},
		"Hijacker": func(w http.ResponseWriter) (net.Conn, *bufio.ReadWriter, error) {
			hj, ok := w.(http.Hijacker)
			if !ok {
				return nil, nil, http.ErrNotSupported
			}
			return hj.Hijack()
		},
	}
	for name, hijack := range hijackers {
		t.Run("hijacked through "+name, func(t *testing.T) {
			env := newMW(t, nil)
			finished := make(chan struct{}, 2)
			inner := env.mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				env.runs.Add(1)
				conn, brw, err := hijack(w)
				if err != nil {
					t.Errorf("hijack: %v", err)
					return
				}
				defer conn.Close()
				_, _ = brw.WriteString("HTTP/1.1 202 Accepted\r\nContent-Length: 12\r\nConnection: close\r\n\r\n{\"job\":\"j1\"}")
				_ = brw.Flush()
			}))
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				inner.ServeHTTP(w, r)
				finished <- struct{}{}
			}))
			var serverLog bytes.Buffer
			srv.Config.ErrorLog = log.New(&lockedWriter{w: &serverLog}, "", 0)
			srv.Start()
			defer srv.Close()
			send := func() (int, string) {
				r, _ := http.NewRequest("POST", srv.URL+"/jobs", strings.NewReader("{}"))
				r.Header.Set("X-Caller", "alice")
				r.Header.Set("Idempotency-Key", "k1")
				resp, err := srv.Client().Do(r)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
			if s, b := send(); s != http.StatusAccepted || b != `{"job":"j1"}` {
				t.Fatalf("test premise: the hijacking handler answered %d %q", s, b)
			}
			<-finished
			s, b := send()
			<-finished
			if s != http.StatusConflict || !strings.Contains(b, "idempotency.response_not_stored") || env.runs.Load() != 1 {
				t.Fatalf("retry: %d %s runs %d, want 409 idempotency.response_not_stored and one run", s, b, env.runs.Load())
			}
			if strings.Contains(serverLog.String(), "hijacked") {
				t.Fatalf("the middleware wrote to the hijacked connection: %s", serverLog.String())
			}
		})
	}
	t.Run("101 Switching Protocols", func(t *testing.T) {
		env := newMW(t, nil)
		h := env.mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			env.runs.Add(1)
			w.Header().Set("Connection", "Upgrade")
			w.Header().Set("Upgrade", "example/1")
			w.WriteHeader(http.StatusSwitchingProtocols)
		}))
		if w := serve(h, req("POST", "/jobs", "alice", "k1", "{}")); w.Code != http.StatusSwitchingProtocols {
			t.Fatalf("test premise: first answer %d", w.Code)
		}
		w := serve(h, req("POST", "/jobs", "alice", "k1", "{}"))
		if w.Code != http.StatusConflict || problemCode(t, w) != "idempotency.response_not_stored" || env.runs.Load() != 1 {
			t.Fatalf("retry: %d %s runs %d, want 409 idempotency.response_not_stored and one run", w.Code, w.Body, env.runs.Load())
		}
	})
	// A connection hijacked past the recorder (an outer middleware, or
	// the handler unwrapping the writer) shows in a write failing with
	// http.ErrHijacked: nothing to keep there either.
	t.Run("hijacked past the middleware", func(t *testing.T) {
		env := newMW(t, nil)
		h := env.mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			env.runs.Add(1)
			_, _ = io.WriteString(w, "too late")
		}))
		h.ServeHTTP(hijackedWriter{httptest.NewRecorder()}, req("POST", "/jobs", "alice", "k1", "{}"))
		w := serve(h, req("POST", "/jobs", "alice", "k1", "{}"))
		if w.Code != http.StatusConflict || problemCode(t, w) != "idempotency.response_not_stored" || env.runs.Load() != 1 {
			t.Fatalf("retry: %d %s runs %d, want 409 idempotency.response_not_stored and one run", w.Code, w.Body, env.runs.Load())
		}
	})
	// A writer that cannot be hijacked says so, and the handler's ordinary
	// answer is stored as usual.
	t.Run("hijack not supported", func(t *testing.T) {
		env := newMW(t, nil)
		h := env.mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			env.runs.Add(1)
			if _, _, err := http.NewResponseController(w).Hijack(); !errors.Is(err, http.ErrNotSupported) {
				t.Errorf("hijacking an httptest.ResponseRecorder: %v, want http.ErrNotSupported", err)
			}
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, "created")
		}))
		serve(h, req("POST", "/jobs", "alice", "k1", "{}"))
		w := serve(h, req("POST", "/jobs", "alice", "k1", "{}"))
		if w.Code != http.StatusCreated || w.Body.String() != "created" || w.Header().Get(idempotency.HeaderReplayed) != "true" || env.runs.Load() != 1 {
			t.Fatalf("retry: %d %q replayed=%q runs %d, want a replay", w.Code, w.Body, w.Header().Get(idempotency.HeaderReplayed), env.runs.Load())
		}
	})
}

// Request bodies that cannot be read: one cut off by an outer
// http.MaxBytesHandler is 413, like one over MaxBodyBytes; the handler
// never runs.
func TestMiddlewareOuterBodyLimitIs413(t *testing.T) {
	env := newMW(t, nil)
	h := http.MaxBytesHandler(env.mw.Wrap(env.paymentHandler()), 16)
	w := serve(h, req("POST", "/payments", "alice", "k-1", `{"amount":`+strings.Repeat("1", 100)+`}`))
	if w.Code != http.StatusRequestEntityTooLarge || env.runs.Load() != 0 {
		t.Fatalf("status %d, runs %d: want 413 and no run (%s)", w.Code, env.runs.Load(), w.Body)
	}
}

// Problems name the request with its escaped path, a URI reference.
func TestMiddlewareProblemInstanceIsEscaped(t *testing.T) {
	env := newMW(t, nil)
	w := serve(env.mw.Wrap(env.paymentHandler()), req("POST", "/pay%20ments/a%3Fb", "alice", "", `{}`))
	var p struct{ Instance string }
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || w.Code != 400 {
		t.Fatalf("%d %s: %v", w.Code, w.Body, err)
	}
	if p.Instance != "/pay%20ments/a%3Fb" {
		t.Fatalf("instance %q, want %q", p.Instance, "/pay%20ments/a%3Fb")
	}
}

// The security property: keys live per caller scope, so a caller can
// neither replay nor probe (422/409) another caller's request.
func TestMiddlewareScopeIsolation(t *testing.T) {
	env := newMW(t, nil)
	h := env.mw.Wrap(env.paymentHandler())
	alice := serve(h, req("POST", "/payments", "alice", "shared-key", `{"to":"alice"}`))
	// Mallory reuses Alice's key with Alice's payload: she does not get Alice's response.
	m1 := serve(h, req("POST", "/payments", "mallory", "shared-key", `{"to":"alice"}`))
	if m1.Header().Get(idempotency.HeaderReplayed) != "" || m1.Body.String() == alice.Body.String() {
		t.Fatalf("another caller got a replay of alice's response: %s", m1.Body)
	}
	// With another payload she learns nothing either (no 422 telling her the key exists).
	m2 := serve(h, req("POST", "/payments", "eve", "shared-key", `{"to":"eve"}`))
	if m2.Code != 201 || m2.Header().Get(idempotency.HeaderReplayed) != "" {
		t.Fatalf("probe by another caller: %d %s", m2.Code, m2.Body)
	}
	// Alice still gets her own response.
	a2 := serve(h, req("POST", "/payments", "alice", "shared-key", `{"to":"alice"}`))
	if a2.Body.String() != alice.Body.String() || a2.Header().Get(idempotency.HeaderReplayed) != "true" {
		t.Fatalf("alice's replay: %s", a2.Body)
	}
	// Scope strings that could collide if joined with the key do not.
	c1 := serve(h, req("POST", "/payments", "a:b", "c", `{}`))
	c2 := serve(h, req("POST", "/payments", "a", "b:c", `{}`))
	if c2.Header().Get(idempotency.HeaderReplayed) != "" || c1.Body.String() == c2.Body.String() {
		t.Fatal("scope a:b key c collided with scope a key b:c")
	}
}

// Scope's errors become problems with the status of their kind; what
// contract.KindOf cannot classify is 401. The handler never runs.
func TestMiddlewareScopeErrors(t *testing.T) {
	for _, c := range []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"unclassified", errors.New("token signature invalid"), 401, "idempotency.no_scope"},
		{"contract error keeps its kind", contract.New(contract.KindForbidden, "auth", "key revoked").WithCode("auth.revoked"), 403, "auth.revoked"},
		{"identity lookup timed out", fmt.Errorf("auth lookup: %w", context.DeadlineExceeded), 504, "timeout"},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := newMW(t, func(cfg *idempotency.MiddlewareConfig) {
				cfg.Scope = func(*http.Request) (string, error) { return "", c.err }
			})
			w := serve(env.mw.Wrap(env.paymentHandler()), req("POST", "/payments", "alice", "k", `{}`))
			if w.Code != c.status || problemCode(t, w) != c.code || env.runs.Load() != 0 {
				t.Fatalf("status %d code %q runs %d, want %d %q 0 (%s)", w.Code, problemCode(t, w), env.runs.Load(), c.status, c.code, w.Body)
			}
		})
	}
}

func TestMiddlewareStoreDownFailsClosed(t *testing.T) {
	env := newMW(t, nil)
	env.fault.set(&env.fault.claimErr, func() error { return errDown })
	h := env.mw.Wrap(env.paymentHandler())
	w := serve(h, req("POST", "/p", "alice", "k", "{}"))
	if w.Code != 503 || w.Header().Get("Retry-After") == "" || problemCode(t, w) != "idempotency.store_unavailable" || env.runs.Load() != 0 {
		t.Fatalf("store down: %d %v %s runs=%d", w.Code, w.Header(), w.Body, env.runs.Load())
	}
}

func TestMiddlewareWithServeMux(t *testing.T) {
	env := newMW(t, nil)
	mux := http.NewServeMux()
	mux.Handle("POST /accounts/{id}/payments", env.mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env.runs.Add(1)
		body, _ := io.ReadAll(r.Body)
		_, _ = io.WriteString(w, r.PathValue("id")+":"+string(body))
	})))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	post := func() (string, string) {
		r, _ := http.NewRequest("POST", srv.URL+"/accounts/acc_7/payments", strings.NewReader("pay 5"))
		r.Header.Set("Idempotency-Key", `"abc"`)
		r.Header.Set("X-Caller", "alice")
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), resp.Header.Get(idempotency.HeaderReplayed)
	}
	b1, r1 := post()
	b2, r2 := post()
	if b1 != "acc_7:pay 5" || b2 != b1 || r1 != "" || r2 != "true" || env.runs.Load() != 1 {
		t.Fatalf("through ServeMux: %q %q %q %q runs=%d", b1, r1, b2, r2, env.runs.Load())
	}
}

func TestMiddlewareConfigValidation(t *testing.T) {
	s := newMemory(t, idempotency.MemoryConfig{})
	for _, tc := range []struct {
		cfg   idempotency.MiddlewareConfig
		field string
	}{
		{idempotency.MiddlewareConfig{Config: idempotency.Config{Store: s}}, "MiddlewareConfig.Scope"},
		{idempotency.MiddlewareConfig{Scope: callerScope}, "MiddlewareConfig.Store"},
		{idempotency.MiddlewareConfig{Config: idempotency.Config{Store: s, Lease: 2}, Scope: callerScope}, "MiddlewareConfig.Lease"},
		{idempotency.MiddlewareConfig{Config: idempotency.Config{Store: s}, Scope: callerScope, MaxBodyBytes: -1}, "MiddlewareConfig.MaxBodyBytes"},
		{idempotency.MiddlewareConfig{Config: idempotency.Config{Store: s}, Scope: callerScope, Methods: []string{""}}, "MiddlewareConfig.Methods"},
	} {
		_, err := idempotency.NewMiddleware(tc.cfg)
		if !errors.Is(err, contract.ErrInvalid) || !strings.Contains(contract.As(err).Detail, tc.field) {
			t.Fatalf("%s: %v", tc.field, err)
		}
	}
}

// With a MemoryStore the executor replays the stored result without a
// copy; a caller changing the replayed response must not change the store.
func TestMiddlewareReplayDoesNotShareStoredHeaders(t *testing.T) {
	mw, err := idempotency.NewMiddleware(idempotency.MiddlewareConfig{
		Config: idempotency.Config{Store: newMemory(t, idempotency.MemoryConfig{})},
		Scope:  callerScope,
	})
	if err != nil {
		t.Fatal(err)
	}
	h := mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Add("Link", "</a>; rel=a")
		w.Header().Add("Link", "</b>; rel=b")
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	serve(h, req("POST", "/p", "alice", "k", "{}"))
	for range 3 {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req("POST", "/p", "alice", "k", "{}"))
		if got := w.Header().Get("Content-Type"); got != "application/json" || w.Body.String() != `{"ok":true}` {
			t.Fatalf("replay: %q %q", got, w.Body)
		}
		if got := strings.Join(w.Header().Values("Link"), "|"); got != "</a>; rel=a|</b>; rel=b" {
			t.Fatalf("replayed Link %q", got)
		}
		if got := w.Header().Get(idempotency.HeaderReplayed); got != "true" {
			t.Fatalf("replayed %s %q", idempotency.HeaderReplayed, got)
		}
		// Change everything in place, on the live header map, and grow
		// the slices: none of it may reach the next replay.
		hdr := w.Header()
		hdr["Content-Type"][0] = "text/evil"
		hdr["Link"][0] = "</evil>"
		hdr["Link"] = append(hdr["Link"][:1], "</evil2>", "</evil3>")
		hdr["Content-Type"] = append(hdr["Content-Type"], "x")
		hdr[idempotency.HeaderReplayed][0] = "false"
		w.Body.Bytes()[0] = 'X'
	}
}

func TestMiddlewareWaitPolicyReplaysFirstResponse(t *testing.T) {
	env := newMW(t, func(c *idempotency.MiddlewareConfig) { c.Duplicate = idempotency.Wait })
	entered, release := make(chan struct{}), make(chan struct{})
	h := env.mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env.runs.Add(1)
		close(entered)
		<-release
		w.WriteHeader(201)
		_, _ = io.WriteString(w, "created once")
	}))
	first := make(chan *httptest.ResponseRecorder)
	go func() { first <- serve(h, req("POST", "/p", "alice", "k", "{}")) }()
	<-entered
	second := make(chan *httptest.ResponseRecorder, 1)
	secondDone := make(chan struct{})
	go func() {
		defer close(secondDone)
		second <- serve(h, req("POST", "/p", "alice", "k", "{}"))
	}()
	// The duplicate parks on a poll timer next to the owner's heartbeat.
	waitFor(t, "the duplicate to wait", func() bool { return env.clk.Waiters() >= 2 })
	close(release)
	if w := <-first; w.Code != 201 {
		t.Fatalf("first: %d", w.Code)
	}
	advanceUntil(t, env.clk, 10*time.Millisecond, secondDone)
	w2 := <-second
	if w2.Code != 201 || w2.Body.String() != "created once" || w2.Header().Get(idempotency.HeaderReplayed) != "true" || env.runs.Load() != 1 {
		t.Fatalf("waiting duplicate: %d %q %v runs=%d", w2.Code, w2.Body, w2.Header(), env.runs.Load())
	}
}

// A request whose context ended (client gone, server timeout) before the
// handler wrote a success releases the key: the retry runs.
func TestMiddlewareTimeoutReleases(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(w http.ResponseWriter)
	}{
		{"wrote nothing", func(http.ResponseWriter) {}},
		{"wrote 503", func(w http.ResponseWriter) { w.WriteHeader(503) }},
		{"wrote 400 after the deadline", func(w http.ResponseWriter) { w.WriteHeader(400) }},
	} {
		env := newMW(t, nil)
		h := env.mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if env.runs.Add(1) == 1 {
				<-r.Context().Done()
				tc.write(w)
				return
			}
			w.WriteHeader(201)
		}))
		ctx, cancel := context.WithCancel(context.Background())
		r := req("POST", "/p", "alice", "k", "{}").WithContext(ctx)
		done := make(chan struct{})
		go func() { defer close(done); serve(h, r) }()
		waitFor(t, "the handler to start", func() bool { return env.runs.Load() == 1 })
		cancel()
		<-done
		if w := serve(h, req("POST", "/p", "alice", "k", "{}")); w.Code != 201 || w.Header().Get(idempotency.HeaderReplayed) != "" {
			t.Fatalf("%s: retry got %d replayed=%q, want a fresh run", tc.name, w.Code, w.Header().Get(idempotency.HeaderReplayed))
		}
	}
}

// The middleware hashes into pooled buffers and lends the fingerprint to
// the store: what the MemoryStore keeps must not change when the buffer
// serves the next request.
func TestMiddlewareStoredFingerprintOutlivesItsBuffer(t *testing.T) {
	mw, err := idempotency.NewMiddleware(idempotency.MiddlewareConfig{
		Config: idempotency.Config{Store: newMemory(t, idempotency.MemoryConfig{})},
		Scope:  callerScope,
	})
	if err != nil {
		t.Fatal(err)
	}
	fail := true
	h := mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/flaky" && fail {
			fail = false
			w.WriteHeader(http.StatusServiceUnavailable) // releases the key: the retry re-claims it
			return
		}
		body, _ := io.ReadAll(r.Body)
		_, _ = w.Write(body)
	}))
	for _, path := range []string{"/p", "/flaky", "/flaky"} {
		serve(h, req("POST", path, "alice", "k-"+path, `{"first":true}`))
		for i := range 20 { // other requests through the same pool
			serve(h, req("POST", "/other", "alice", "o-"+path+strconv.Itoa(i), strings.Repeat("x", i)))
		}
	}
	for _, path := range []string{"/p", "/flaky"} {
		again := serve(h, req("POST", path, "alice", "k-"+path, `{"first":true}`))
		if again.Header().Get(idempotency.HeaderReplayed) != "true" || again.Body.String() != `{"first":true}` {
			t.Fatalf("%s: same payload: %d %q, want the replay", path, again.Code, again.Body)
		}
		if w := serve(h, req("POST", path, "alice", "k-"+path, `{"first":false}`)); w.Code != http.StatusUnprocessableEntity {
			t.Fatalf("%s: other payload: %d, want 422", path, w.Code)
		}
	}
}

// TestDefaultReplayHeadersIsACopy: changing what DefaultReplayHeaders
// returned changes neither its next result nor any middleware.
func TestDefaultReplayHeadersIsACopy(t *testing.T) {
	h := idempotency.DefaultReplayHeaders()
	if len(h) == 0 || h[0] != "Content-Type" {
		t.Fatalf("DefaultReplayHeaders() = %v", h)
	}
	for _, k := range h {
		if strings.EqualFold(k, "Set-Cookie") {
			t.Fatal("Set-Cookie must never be replayed by default")
		}
	}
	h[0] = "Set-Cookie"
	if got := idempotency.DefaultReplayHeaders()[0]; got != "Content-Type" {
		t.Fatalf("after changing a returned slice, DefaultReplayHeaders()[0] = %q", got)
	}
}

// The request body's buffer grows with the bytes that arrive, not with the
// Content-Length the client declares: a request declaring a large body and
// sending two bytes costs what a small request costs, and the largest
// length net/http parses (MaxInt64) under MaxBodyBytes = MaxInt64 ("no
// limit") overflows nothing.
func TestMiddlewareBodyAllocFollowsArrivedBytes(t *testing.T) {
	for _, limit := range []int64{64 << 20, math.MaxInt64} {
		t.Run(strconv.FormatInt(limit, 10), func(t *testing.T) {
			env := newMW(t, func(c *idempotency.MiddlewareConfig) { c.MaxBodyBytes = limit })
			h := env.mw.Wrap(env.paymentHandler())
			r := req(http.MethodPost, "/payments", "alice", `"k1"`, "{}")
			r.ContentLength = limit // a lie: the body ends after 2 bytes
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			w := func() *httptest.ResponseRecorder {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("Content-Length %d, MaxBodyBytes %d: panic %v", limit, limit, p)
					}
				}()
				return serve(h, r)
			}()
			runtime.ReadMemStats(&after)
			if w.Code != http.StatusCreated || !strings.Contains(w.Body.String(), `"echo":{}`) {
				t.Fatalf("%d %q", w.Code, w.Body)
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
				t.Fatalf("a 2-byte body declared as %d bytes allocated %d bytes", limit, got)
			}
		})
	}
}

// The Retry-After of a request in flight is the owner's remaining lease
// rounded up to seconds, capped at contract.MaxRetryAfter as contract caps
// every Retry-After: a lease near the largest Duration (a "never expire"
// configuration, which the MemoryStore saturates) gives no negative header.
func TestMiddlewareInFlightRetryAfterIsCapped(t *testing.T) {
	env := newMW(t, func(c *idempotency.MiddlewareConfig) {
		c.Lease, c.Retention, c.Heartbeat = math.MaxInt64, math.MaxInt64, -1
	})
	entered, release := make(chan struct{}), make(chan struct{})
	h := env.mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		w.WriteHeader(204)
	}))
	done := make(chan struct{})
	go func() { serve(h, req("POST", "/p", "alice", "k", "{}")); close(done) }()
	<-entered
	w := serve(h, req("POST", "/p", "alice", "k", "{}"))
	close(release)
	<-done
	want := strconv.FormatInt(int64(contract.MaxRetryAfter/time.Second), 10)
	if ra := w.Header().Get("Retry-After"); w.Code != 409 || ra != want {
		t.Fatalf("in flight: %d Retry-After %q, want 409 with %q", w.Code, ra, want)
	}
}

// Retry-After follows contract.WriteProblem: capped at MaxRetryAfter, and
// never on an overloaded error (the dependency asked not to be retried).
func TestMiddlewareRetryAfterFollowsContract(t *testing.T) {
	for _, c := range []struct {
		name   string
		err    error
		status int
		want   string
	}{
		{"unavailable", contract.New(contract.KindUnavailable, "auth", "down").WithRetryAfter(1500 * time.Millisecond), 503, "2"},
		{"unavailable, huge hint", contract.New(contract.KindUnavailable, "auth", "down").WithRetryAfter(math.MaxInt64), 503, "86400"},
		{"rate limited", contract.New(contract.KindRateLimited, "auth", "slow down").WithRetryAfter(3 * time.Second), 429, "3"},
		{"overloaded", contract.New(contract.KindOverloaded, "auth", "shedding").WithRetryAfter(time.Minute), 503, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := newMW(t, func(cfg *idempotency.MiddlewareConfig) {
				cfg.Scope = func(*http.Request) (string, error) { return "", c.err }
			})
			w := serve(env.mw.Wrap(env.paymentHandler()), req("POST", "/payments", "alice", "k", `{}`))
			if ra, ok := w.Header()["Retry-After"]; w.Code != c.status || (c.want == "") == ok || w.Header().Get("Retry-After") != c.want {
				t.Fatalf("status %d Retry-After %q, want %d %q", w.Code, ra, c.status, c.want)
			}
		})
	}
}

// Every problem the middleware writes is marked as contract.WriteProblem
// marks problems — Cache-Control: no-store, X-Content-Type-Options:
// nosniff, Content-Length, no body on HEAD, the "status" member equal to
// the response's — those it answers with a status of its own (400 for a
// key missing or invalid, 422 for a key reused) and the replayed 409 of a
// response that was not stored included.
func TestMiddlewareProblemsMarkedLikeContract(t *testing.T) {
	env := newMW(t, func(c *idempotency.MiddlewareConfig) {
		c.Methods = []string{http.MethodPost, http.MethodHead}
		c.MaxBodyBytes = 16
		c.MaxResponseBytes = 10 // every response is too large to keep
	})
	h := env.mw.Wrap(env.paymentHandler())
	if w := serve(h, req("POST", "/p", "alice", "k", `{"a":1}`)); w.Code != http.StatusCreated {
		t.Fatalf("first request: %d", w.Code)
	}
	repeated := req("POST", "/p", "alice", "", "{}")
	repeated.Header.Add(idempotency.HeaderKey, "a")
	repeated.Header.Add(idempotency.HeaderKey, "b")
	for _, tc := range []struct {
		name   string
		r      *http.Request
		status int
		code   string
	}{
		{"key missing", req("POST", "/p", "alice", "", "{}"), 400, "idempotency.key_missing"},
		{"key invalid", req("POST", "/p", "alice", `"unterminated`, "{}"), 400, "idempotency.key_invalid"},
		{"key repeated", repeated, 400, "idempotency.key_invalid"},
		{"key reused", req("POST", "/p", "alice", "k", `{"a":2}`), 422, "idempotency.key_reused"},
		{"no scope", req("POST", "/p", "", "k", `{"a":1}`), 401, "idempotency.no_scope"},
		{"body too large", req("POST", "/p", "alice", "k2", strings.Repeat("x", 17)), 413, "idempotency.body_too_large"},
		{"response not stored (replayed)", req("POST", "/p", "alice", "k", `{"a":1}`), 409, "idempotency.response_not_stored"},
		{"key missing, HEAD", req("HEAD", "/p", "alice", "", ""), 400, ""},
		{"key reused, HEAD", req("HEAD", "/p", "alice", "k", ""), 422, ""},
	} {
		w := serve(h, tc.r)
		hd := w.Header()
		if w.Code != tc.status || hd.Get("Content-Type") != contract.ProblemContentType ||
			hd.Get("Cache-Control") != "no-store" || hd.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %d, Content-Type %q, Cache-Control %q, X-Content-Type-Options %q; want %d marked as contract.WriteProblem marks problems",
				tc.name, w.Code, hd.Get("Content-Type"), hd.Get("Cache-Control"), hd.Get("X-Content-Type-Options"), tc.status)
			continue
		}
		if tc.r.Method == http.MethodHead {
			if w.Body.Len() != 0 || hd.Get("Content-Length") == "" {
				t.Errorf("%s: body %q, Content-Length %q; want no body and the length a GET would get", tc.name, w.Body, hd.Get("Content-Length"))
			}
			continue
		}
		if cl := hd.Get("Content-Length"); cl != strconv.Itoa(w.Body.Len()) {
			t.Errorf("%s: Content-Length %q for %d bytes", tc.name, cl, w.Body.Len())
		}
		if code := problemCode(t, w); code != tc.code {
			t.Errorf("%s: code %q, want %q", tc.name, code, tc.code)
		}
	}
	if n := env.runs.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
}

// A handler that did the work and answered 303 See Other (POST/redirect/
// GET) has succeeded, even if the client went away meanwhile: its retry
// gets the redirect replayed, never a second run.
func TestMiddlewareRedirectAfterClientGoneIsStored(t *testing.T) {
	env := newMW(t, nil)
	h := env.mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := env.runs.Add(1)
		if n == 1 {
			<-r.Context().Done()
		}
		w.Header().Set("Location", "/orders/1")
		w.WriteHeader(http.StatusSeeOther)
	}))
	ctx, cancel := context.WithCancel(context.Background())
	r := req("POST", "/orders", "alice", "k", "{}").WithContext(ctx)
	done := make(chan struct{})
	go func() { defer close(done); serve(h, r) }()
	waitFor(t, "the handler to start", func() bool { return env.runs.Load() == 1 })
	cancel()
	<-done
	w := serve(h, req("POST", "/orders", "alice", "k", "{}"))
	if w.Code != http.StatusSeeOther || w.Header().Get(idempotency.HeaderReplayed) != "true" || env.runs.Load() != 1 {
		t.Fatalf("retry got %d replayed=%q runs=%d, want the 303 replayed and one run", w.Code, w.Header().Get(idempotency.HeaderReplayed), env.runs.Load())
	}
}

// A method or header name no request can carry (a space left by splitting
// "POST, PATCH", a lowercase method: methods are case-sensitive) would
// silently take requests out of the middleware's protection or a header
// out of the fingerprint or the replay: NewMiddleware refuses it.
func TestMiddlewareConfigRefusesNamesThatNeverMatch(t *testing.T) {
	s := newMemory(t, idempotency.MemoryConfig{})
	for _, tc := range []struct {
		mod   func(*idempotency.MiddlewareConfig)
		field string
	}{
		{func(c *idempotency.MiddlewareConfig) { c.Methods = []string{"POST", " PATCH"} }, "MiddlewareConfig.Methods"},
		{func(c *idempotency.MiddlewareConfig) { c.Methods = []string{"post"} }, "MiddlewareConfig.Methods"},
		// An empty, non-nil list (built from config that came out empty)
		// would protect no request at all, silently.
		{func(c *idempotency.MiddlewareConfig) { c.Methods = []string{} }, "MiddlewareConfig.Methods"},
		{func(c *idempotency.MiddlewareConfig) { c.FingerprintHeaders = []string{"X-Account "} }, "MiddlewareConfig.FingerprintHeaders"},
		{func(c *idempotency.MiddlewareConfig) { c.FingerprintHeaders = []string{""} }, "MiddlewareConfig.FingerprintHeaders"},
		{func(c *idempotency.MiddlewareConfig) { c.ReplayHeaders = []string{"Location:"} }, "MiddlewareConfig.ReplayHeaders"},
	} {
		cfg := idempotency.MiddlewareConfig{Config: idempotency.Config{Store: s}, Scope: callerScope}
		tc.mod(&cfg)
		_, err := idempotency.NewMiddleware(cfg)
		if !errors.Is(err, contract.ErrInvalid) || !strings.Contains(contract.As(err).Detail, tc.field) {
			t.Fatalf("%s %q %q %q: %v", tc.field, cfg.Methods, cfg.FingerprintHeaders, cfg.ReplayHeaders, err)
		}
	}
	// Valid names, custom method included, are accepted.
	if _, err := idempotency.NewMiddleware(idempotency.MiddlewareConfig{
		Config: idempotency.Config{Store: s}, Scope: callerScope,
		Methods: []string{"POST", "PURGE"}, FingerprintHeaders: []string{"x-account"}, ReplayHeaders: []string{"Location"},
	}); err != nil {
		t.Fatal(err)
	}
}

// A handler that stops without an answer when its context ends (the lease
// was lost, or a deadline an outer middleware set passed) has not
// succeeded: its client, still there, gets a problem, never the empty
// 200 net/http writes for a handler that wrote nothing.
func TestMiddlewareNoAnswerAfterContextEndIsNotOK(t *testing.T) {
	t.Run("lease lost", func(t *testing.T) {
		env := newMW(t, func(c *idempotency.MiddlewareConfig) { c.Lease = 3 * time.Second; c.Heartbeat = time.Second })
		env.fault.set(&env.fault.renewErr, func() error { return idempotency.ErrLeaseLost })
		h := env.mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done() // gives up without writing, as a handler does
		}))
		done := make(chan *httptest.ResponseRecorder, 1)
		go func() { done <- serve(h, req("POST", "/p", "alice", "k", "{}")) }()
		var w *httptest.ResponseRecorder
		for w == nil {
			select {
			case w = <-done:
			default:
				env.clk.Advance(time.Second)
				runtime.Gosched()
			}
		}
		if w.Code != http.StatusConflict || problemCode(t, w) != "idempotency.lease_lost" {
			t.Fatalf("got %d %q, want a 409 lease_lost problem", w.Code, w.Body)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		env := newMW(t, nil)
		h := env.mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		}))
		// A deadline still ahead when the handler starts (had it passed
		// before, the claim would answer 504 without running anything).
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		w := serve(h, req("POST", "/p", "alice", "k", "{}").WithContext(ctx))
		if w.Code != http.StatusGatewayTimeout {
			t.Fatalf("got %d %q, want 504", w.Code, w.Body)
		}
	})
}

// unflushable is a ResponseWriter that cannot flush (an outer middleware's
// wrapper without Flush or Unwrap).
type unflushable struct{ w http.ResponseWriter }

func (u unflushable) Header() http.Header         { return u.w.Header() }
func (u unflushable) Write(p []byte) (int, error) { return u.w.Write(p) }
func (u unflushable) WriteHeader(code int)        { u.w.WriteHeader(code) }

// Behind a writer that cannot flush, a handler's flush through
// http.ResponseController fails with http.ErrNotSupported, as it does
// without the middleware, and commits no status: the handler's 201 is what
// the client gets and what is replayed.
func TestMiddlewareFlushNotSupportedPassesThrough(t *testing.T) {
	env := newMW(t, nil)
	var flushErr error
	h := env.mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if env.runs.Add(1) == 1 {
			flushErr = http.NewResponseController(w).Flush()
		}
		w.WriteHeader(http.StatusCreated)
	}))
	rr := httptest.NewRecorder()
	h.ServeHTTP(unflushable{rr}, req("POST", "/p", "alice", "k", "{}"))
	if !errors.Is(flushErr, http.ErrNotSupported) || rr.Code != http.StatusCreated {
		t.Fatalf("flush error %v, status %d; want http.ErrNotSupported and 201", flushErr, rr.Code)
	}
	if w := serve(h, req("POST", "/p", "alice", "k", "{}")); w.Code != http.StatusCreated || env.runs.Load() != 1 {
		t.Fatalf("replay %d runs=%d, want 201 and one run", w.Code, env.runs.Load())
	}
}

// The fingerprint covers the request target as the client sent it, not
// r.URL as a router or http.StripPrefix rewrote it: the same key used under
// two mounts of one handler is two different requests (422), not a replay
// of the other mount's answer.
func TestMiddlewareFingerprintsTargetAsReceived(t *testing.T) {
	env := newMW(t, nil)
	h := env.mw.Wrap(env.paymentHandler())
	mux := http.NewServeMux()
	mux.Handle("/v1/", http.StripPrefix("/v1", h))
	mux.Handle("/v2/", http.StripPrefix("/v2", h))
	if w := serve(mux, req("POST", "/v1/payments", "alice", "k", `{"amount":10}`)); w.Code != 201 {
		t.Fatalf("v1: %d %s", w.Code, w.Body)
	}
	w := serve(mux, req("POST", "/v2/payments", "alice", "k", `{"amount":10}`))
	if w.Code != 422 || problemCode(t, w) != "idempotency.key_reused" {
		t.Fatalf("same key under /v2: %d %s (replayed %q), want 422", w.Code, w.Body, w.Header().Get(idempotency.HeaderReplayed))
	}
	if w := serve(mux, req("POST", "/v1/payments", "alice", "k", `{"amount":10}`)); w.Code != 201 || w.Header().Get(idempotency.HeaderReplayed) != "true" {
		t.Fatalf("retry under /v1: %d %s, want the replay", w.Code, w.Body)
	}
	if env.runs.Load() != 1 {
		t.Fatalf("runs %d, want 1", env.runs.Load())
	}
}

// A fingerprinted header that is absent and one present but empty are two
// different requests: a handler can tell them apart (a flag header).
func TestMiddlewareFingerprintsHeaderPresence(t *testing.T) {
	env := newMW(t, func(c *idempotency.MiddlewareConfig) { c.FingerprintHeaders = []string{"X-Dry-Run"} })
	h := env.mw.Wrap(env.paymentHandler())
	dry := req("POST", "/payments", "alice", "k", `{"amount":10}`)
	dry.Header["X-Dry-Run"] = []string{""}
	if w := serve(h, dry); w.Code != 201 {
		t.Fatalf("dry run: %d %s", w.Code, w.Body)
	}
	w := serve(h, req("POST", "/payments", "alice", "k", `{"amount":10}`))
	if w.Code != 422 || problemCode(t, w) != "idempotency.key_reused" {
		t.Fatalf("same key without the header: %d %s (replayed %q), want 422", w.Code, w.Body, w.Header().Get(idempotency.HeaderReplayed))
	}
}

// A middleware applied twice to one request — router-wide and again on a
// route (chi's Use and With), or on a router and a sub-router mounted in
// it — protects the request once. The inner one used to find the outer's
// claim in progress and answer 409, which the outer then stored as the
// request's answer: the handler never ran, and every retry got the
// replayed "still in progress" for the whole retention period.
func TestMiddlewareNestedProtectsOnce(t *testing.T) {
	t.Run("same middleware", func(t *testing.T) {
		env := newMW(t, nil)
		checkNestedOnce(t, env, env.mw.Wrap(env.mw.Wrap(env.paymentHandler())))
	})
	t.Run("two middlewares, one store", func(t *testing.T) {
		env := newMW(t, nil)
		inner, err := idempotency.NewMiddleware(idempotency.MiddlewareConfig{Config: idempotency.Config{Store: env.fault, Clock: env.clk}, Scope: callerScope})
		if err != nil {
			t.Fatal(err)
		}
		checkNestedOnce(t, env, env.mw.Wrap(inner.Wrap(env.paymentHandler())))
	})
	// A request made in process under the outer request's context with
	// another key (a batch endpoint's sub-request) is protected on its own.
	t.Run("sub-request with another key", func(t *testing.T) {
		env := newMW(t, nil)
		item := env.mw.Wrap(env.paymentHandler())
		batch := env.mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sub := req("POST", "/payments", "alice", "item-1", `{"amount":10}`).WithContext(r.Context())
			sw := serve(item, sub)
			w.Header().Set(idempotency.HeaderReplayed+"-Item", sw.Header().Get(idempotency.HeaderReplayed))
			w.WriteHeader(sw.Code)
		}))
		serve(batch, req("POST", "/batch", "alice", "batch-1", `[1]`))
		w := serve(batch, req("POST", "/batch", "alice", "batch-2", `[1]`))
		if w.Code != http.StatusCreated || w.Header().Get(idempotency.HeaderReplayed+"-Item") != "true" {
			t.Fatalf("second batch: %d, item replayed %q: want the item's replay", w.Code, w.Header().Get(idempotency.HeaderReplayed+"-Item"))
		}
		if n := env.runs.Load(); n != 1 {
			t.Fatalf("item handler ran %d times, want 1", n)
		}
	})
}

func checkNestedOnce(t *testing.T, env *mwEnv, h http.Handler) {
	t.Helper()
	first := serve(h, req("POST", "/payments", "alice", "k", `{"amount":10}`))
	if first.Code != http.StatusCreated || first.Header().Get(idempotency.HeaderReplayed) != "" {
		t.Fatalf("first request: %d %s, want the handler's 201", first.Code, first.Body)
	}
	again := serve(h, req("POST", "/payments", "alice", "k", `{"amount":10}`))
	if again.Code != http.StatusCreated || again.Body.String() != first.Body.String() || again.Header().Get(idempotency.HeaderReplayed) != "true" {
		t.Fatalf("retry: %d %s, want the replay of the first", again.Code, again.Body)
	}
	if w := serve(h, req("POST", "/payments", "alice", "k", `{"amount":11}`)); w.Code != http.StatusUnprocessableEntity {
		t.Fatalf("other payload: %d, want 422", w.Code)
	}
	if n := env.runs.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
}
