package logctx

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"go.opentelemetry.io/otel/trace"
)

type mwFixture struct {
	h   http.Handler
	buf *bytes.Buffer
	got chan string // correlation ids seen by the handler
}

func newMW(t *testing.T, cfg MiddlewareConfig, inner http.HandlerFunc) mwFixture {
	t.Helper()
	l, buf := newJSONLogger(t, HandlerConfig{})
	if cfg.Logger == nil {
		cfg.Logger = l
	}
	if cfg.Clock == nil {
		cfg.Clock = &fakeClock{t: testTime, step: 1500 * time.Microsecond}
	}
	mw, err := NewMiddleware(cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1000)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /payments/{id}", func(w http.ResponseWriter, r *http.Request) {
		got <- CorrelationID(r.Context())
		if inner != nil {
			inner(w, r)
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, "hello")
	})
	return mwFixture{h: mw(mux), buf: buf, got: got}
}

func (f mwFixture) do(header http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", "/payments/pay_1", nil)
	for k, vs := range header {
		req.Header[k] = vs
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

func TestMiddlewareAcceptsValidID(t *testing.T) {
	f := newMW(t, MiddlewareConfig{}, nil)
	rec := f.do(http.Header{"X-Correlation-Id": {"req-42"}})
	if id := <-f.got; id != "req-42" {
		t.Errorf("handler saw %q", id)
	}
	if got := rec.Header().Get(HeaderCorrelationID); got != "req-42" {
		t.Errorf("echoed %q", got)
	}
	lines := jsonLines(t, f.buf)
	if len(lines) != 1 {
		t.Fatalf("want one access line, got %v", lines)
	}
	a := lines[0]
	want := map[string]any{
		"msg": "http request", KeyCorrelationID: "req-42", KeyMethod: "POST", KeyRoute: "POST /payments/{id}",
		KeyStatus: float64(201), KeyBytes: float64(5), KeyDurationMS: 1.5,
	}
	for k, v := range want {
		if a[k] != v {
			t.Errorf("%s = %v, want %v (%v)", k, a[k], v, a)
		}
	}
}

func TestMiddlewareReplacesInvalidID(t *testing.T) {
	hostile := map[string][]string{
		"newline":   {"abc\ninjected=1"},
		"crlf":      {"abc\r\nSet-Cookie: x"},
		"control":   {"abc\x01"},
		"quote":     {`abc"def`},
		"space":     {"abc def"},
		"oversize":  {strings.Repeat("a", 129)},
		"huge":      {strings.Repeat("b", 1<<20)},
		"non-ascii": {"påyment"},
		"repeated":  {"one", "two"},
		"empty":     {""},
	}
	for name, vs := range hostile {
		t.Run(name, func(t *testing.T) {
			f := newMW(t, MiddlewareConfig{}, nil)
			rec := f.do(http.Header{"X-Correlation-Id": vs})
			id := <-f.got
			if ValidateCorrelationID(id) != nil || len(id) != 32 {
				t.Fatalf("replacement %q is not a fresh id", id)
			}
			if rec.Header().Get(HeaderCorrelationID) != id {
				t.Errorf("echoed %q, want %q", rec.Header().Get(HeaderCorrelationID), id)
			}
			lines := jsonLines(t, f.buf)
			if len(lines) != 2 {
				t.Fatalf("want replacement notice + access line, got %d", len(lines))
			}
			n := lines[0]
			if n[KeyDecision] != "correlation id replaced" || n[KeyReason] == "" || n[KeyCorrelationID] != id || n["level"] != "WARN" {
				t.Errorf("notice = %v", n)
			}
			for _, v := range vs {
				if len(v) > 2 && strings.Contains(f.buf.String(), v) {
					t.Errorf("hostile value logged: %.60q", v)
				}
			}
		})
	}
}

func TestMiddlewareDerivesFromTraceparent(t *testing.T) {
	const tid = "4bf92f3577b34da6a3ce929d0e0e4736"
	f := newMW(t, MiddlewareConfig{}, nil)
	f.do(http.Header{"Traceparent": {"00-" + tid + "-00f067aa0ba902b7-01"}})
	if id := <-f.got; id != tid {
		t.Errorf("id = %q, want trace id", id)
	}
	// An invalid X-Correlation-ID falls back to the trace id too.
	f.do(http.Header{"Traceparent": {"00-" + tid + "-00f067aa0ba902b7-01"}, "X-Correlation-Id": {"bad id"}})
	if id := <-f.got; id != tid {
		t.Errorf("id = %q, want trace id", id)
	}
	// An invalid traceparent is ignored.
	f.do(http.Header{"Traceparent": {"00-" + strings.ToUpper(tid) + "-00f067aa0ba902b7-01"}})
	if id := <-f.got; id == tid || len(id) != 32 {
		t.Errorf("id = %q from an invalid traceparent", id)
	}
	// IgnoreTraceparent generates instead.
	g := newMW(t, MiddlewareConfig{IgnoreTraceparent: true}, nil)
	g.do(http.Header{"Traceparent": {"00-" + tid + "-00f067aa0ba902b7-01"}})
	if id := <-g.got; id == tid {
		t.Error("traceparent used despite IgnoreTraceparent")
	}
}

func TestMiddlewareDerivesFromSpanOnContext(t *testing.T) {
	const tid = "0af7651916cd43dd8448eb211c80319c"
	f := newMW(t, MiddlewareConfig{}, nil)
	traceID, _ := trace.TraceIDFromHex(tid)
	spanID, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: spanID}))
	req := httptest.NewRequest("POST", "/payments/x", nil).WithContext(ctx)
	f.h.ServeHTTP(httptest.NewRecorder(), req)
	if id := <-f.got; id != tid {
		t.Errorf("id = %q, want the span's trace id", id)
	}
}

// The README's placement: otelhttp outside the middleware. otelhttp starts
// the server span (a new root for a request without traceparent) on the
// request context before the middleware runs, so the correlation id is
// that span's trace id and the access line carries its trace_id. The other
// way round the span does not exist yet when the id is picked.
func TestMiddlewareInsideOtelhttp(t *testing.T) {
	tid := trace.TraceID{0x4b, 0xf9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}
	// fakeOtelhttp does what otelhttp.NewHandler does for a request without
	// traceparent: start a new root server span on the request context.
	fakeOtelhttp := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := trace.ContextWithSpanContext(r.Context(), trace.NewSpanContext(trace.SpanContextConfig{
				TraceID: tid, SpanID: trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}, TraceFlags: trace.FlagsSampled}))
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
	l, buf := newJSONLogger(t, HandlerConfig{})
	mw, err := NewMiddleware(MiddlewareConfig{Logger: l})
	if err != nil {
		t.Fatal(err)
	}
	var got string
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = CorrelationID(r.Context()) })

	fakeOtelhttp(mw(app)).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if got != tid.String() {
		t.Errorf("otelhttp outside: correlation id %q, want the server span's trace id %q", got, tid.String())
	}
	if line := jsonLines(t, buf)[0]; line[KeyCorrelationID] != tid.String() || line[KeyTraceID] != tid.String() {
		t.Errorf("otelhttp outside: access line %v", line)
	}

	mw(fakeOtelhttp(app)).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if got == tid.String() || ValidateCorrelationID(got) != nil {
		t.Errorf("otelhttp inside: correlation id %q, want a fresh one (the span starts after the middleware)", got)
	}
}

func TestMiddlewareGeneratesFromRand(t *testing.T) {
	src := bytes.NewReader(bytes.Repeat([]byte{0xab}, 16))
	f := newMW(t, MiddlewareConfig{Rand: src}, nil)
	f.do(nil)
	if id := <-f.got; id != strings.Repeat("ab", 16) {
		t.Errorf("id = %q", id)
	}
	// A failing source still yields distinct valid ids.
	g := newMW(t, MiddlewareConfig{Rand: errReader{}}, nil)
	g.do(nil)
	g.do(nil)
	a, b := <-g.got, <-g.got
	if a == b || ValidateCorrelationID(a) != nil || ValidateCorrelationID(b) != nil {
		t.Errorf("fallback ids %q, %q", a, b)
	}
}

func TestMiddlewareCustomHeader(t *testing.T) {
	f := newMW(t, MiddlewareConfig{Header: "x-request-id"}, nil)
	rec := f.do(http.Header{"X-Request-Id": {"abc"}})
	if id := <-f.got; id != "abc" {
		t.Errorf("id = %q", id)
	}
	if rec.Header().Get("X-Request-Id") != "abc" {
		t.Errorf("not echoed: %v", rec.Header())
	}
}

func TestMiddlewareConfigErrors(t *testing.T) {
	for _, h := range []string{"X Bad", "a:b", "é", "x\n"} {
		_, err := NewMiddleware(MiddlewareConfig{Header: h})
		if !errors.Is(err, contract.ErrInvalid) || !strings.Contains(err.Error(), "MiddlewareConfig.Header") {
			t.Errorf("Header %q: err = %v", h, err)
		}
	}
}

func TestMiddlewareAccessLine(t *testing.T) {
	t.Run("implicit 200 without pattern", func(t *testing.T) {
		l, buf := newJSONLogger(t, HandlerConfig{})
		mw, _ := NewMiddleware(MiddlewareConfig{Logger: l, Clock: &fakeClock{t: testTime, step: time.Millisecond}})
		h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("abc")) }))
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/secret/path?token=x", nil))
		a := jsonLines(t, buf)[0]
		if a[KeyStatus] != float64(200) || a[KeyBytes] != float64(3) || a[KeyRoute] != "" || a[KeyDurationMS] != 1.0 {
			t.Errorf("access = %v", a)
		}
		if strings.Contains(buf.String(), "token=x") {
			t.Error("raw URL logged")
		}
	})
	t.Run("5xx at warn", func(t *testing.T) {
		f := newMW(t, MiddlewareConfig{}, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusEarlyHints) // informational, not final
			w.WriteHeader(http.StatusServiceUnavailable)
		})
		f.do(nil)
		a := jsonLines(t, f.buf)[0]
		if a[KeyStatus] != float64(503) || a["level"] != "WARN" {
			t.Errorf("access = %v", a)
		}
	})
	t.Run("panic logged and propagated", func(t *testing.T) {
		f := newMW(t, MiddlewareConfig{}, func(w http.ResponseWriter, r *http.Request) { panic("boom") })
		func() {
			defer func() {
				if recover() != "boom" {
					t.Error("panic not propagated")
				}
			}()
			f.do(nil)
		}()
		a := jsonLines(t, f.buf)[0]
		if a[KeyStatus] != float64(500) || a["msg"] != "http request panicked" {
			t.Errorf("access = %v", a)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		f := newMW(t, MiddlewareConfig{NoAccessLog: true}, nil)
		f.do(nil)
		<-f.got
		if f.buf.Len() != 0 {
			t.Errorf("logged %s", f.buf)
		}
	})
	t.Run("no logger", func(t *testing.T) {
		mw, err := NewMiddleware(MiddlewareConfig{})
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		mw(http.NotFoundHandler()).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		if rec.Code != 404 || len(rec.Header().Get(HeaderCorrelationID)) != 32 {
			t.Errorf("code %d header %v", rec.Code, rec.Header())
		}
	})
}

func TestMiddlewareKeepsExistingCoordinates(t *testing.T) {
	f := newMW(t, MiddlewareConfig{}, func(w http.ResponseWriter, r *http.Request) {
		if Operation(r.Context()) != "outer" {
			t.Errorf("operation lost: %q", Operation(r.Context()))
		}
		// Cancellation of the parent still reaches the handler's context.
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
			t.Error("parent cancellation not seen")
		}
	})
	ctx, cancel := context.WithCancel(WithOperation(context.Background(), "outer"))
	cancel()
	req := httptest.NewRequest("POST", "/payments/x", nil).WithContext(ctx)
	f.h.ServeHTTP(httptest.NewRecorder(), req)
	<-f.got
}

type flushHijackRecorder struct {
	*httptest.ResponseRecorder
	hijacked bool
}

func (f *flushHijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	f.hijacked = true
	return nil, nil, nil
}

func TestMiddlewareWriterPassThrough(t *testing.T) {
	rec := &flushHijackRecorder{ResponseRecorder: httptest.NewRecorder()}
	mw, _ := NewMiddleware(MiddlewareConfig{})
	mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if err := rc.Flush(); err != nil {
			t.Errorf("Flush: %v", err)
		}
		if _, _, err := rc.Hijack(); err != nil {
			t.Errorf("Hijack: %v", err)
		}
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		} else {
			t.Error("writer is not an http.Flusher")
		}
	})).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if !rec.Flushed || !rec.hijacked {
		t.Errorf("flushed=%v hijacked=%v", rec.Flushed, rec.hijacked)
	}
	// A writer that cannot be hijacked is not an http.Hijacker, and
	// http.ResponseController reports http.ErrNotSupported.
	mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(http.Hijacker); ok {
			t.Error("writer is an http.Hijacker over one that is not")
		}
		if _, _, err := http.NewResponseController(w).Hijack(); !errors.Is(err, http.ErrNotSupported) {
			t.Errorf("Hijack err = %v", err)
		}
	})).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
}

func TestMiddlewareConcurrentRequests(t *testing.T) {
	f := newMW(t, MiddlewareConfig{}, nil)
	const n = 200
	var wg sync.WaitGroup
	echoed := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := http.Header{}
			if i%2 == 0 {
				h.Set(HeaderCorrelationID, "c-"+strings.Repeat("x", i%10)+"-"+string(rune('a'+i%26)))
			}
			rec := f.do(h)
			echoed <- rec.Header().Get(HeaderCorrelationID)
		}()
	}
	wg.Wait()
	close(echoed)
	close(f.got)
	seen := map[string]int{}
	for id := range f.got {
		seen[id]++
	}
	for id := range echoed {
		if seen[id] == 0 {
			t.Errorf("echoed id %q never seen by a handler", id)
		}
	}
	lines := jsonLines(t, f.buf)
	if len(lines) != n {
		t.Fatalf("%d access lines, want %d", len(lines), n)
	}
	for _, l := range lines {
		if seen[l[KeyCorrelationID].(string)] == 0 {
			t.Errorf("access line with unknown id: %v", l)
		}
	}
}

// An end-to-end run over a real server and client: the id set by the
// client transport reaches the server handler, and the server's access
// line carries it.
func TestMiddlewareAndTransportEndToEnd(t *testing.T) {
	l, buf := newJSONLogger(t, HandlerConfig{})
	mw, _ := NewMiddleware(MiddlewareConfig{Logger: l})
	seen := make(chan string, 1)
	srv := httptest.NewServer(mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- CorrelationID(r.Context())
	})))
	defer srv.Close()
	tr, _ := NewTransport(TransportConfig{Base: srv.Client().Transport})
	client := &http.Client{Transport: tr}
	defer client.CloseIdleConnections()
	ctx := WithCorrelationID(context.Background(), "chain-1")
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if id := <-seen; id != "chain-1" {
		t.Errorf("server saw %q", id)
	}
	if resp.Header.Get(HeaderCorrelationID) != "chain-1" {
		t.Errorf("echo %q", resp.Header.Get(HeaderCorrelationID))
	}
	if !strings.Contains(buf.String(), `"correlation_id":"chain-1"`) {
		t.Errorf("access line: %s", buf)
	}
	_ = slog.LevelInfo
}

func FuzzMiddlewareHeaders(f *testing.F) {
	f.Add("req-1", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Add("bad\nid", "garbage")
	f.Add("", "")
	f.Add(strings.Repeat("a", 200), "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x")
	mw, err := NewMiddleware(MiddlewareConfig{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, corr, traceparent string) {
		var seen string
		h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen = CorrelationID(r.Context())
		}))
		req := httptest.NewRequest("GET", "/", nil)
		req.Header["X-Correlation-Id"] = []string{corr}
		req.Header["Traceparent"] = []string{traceparent}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if err := ValidateCorrelationID(seen); err != nil {
			t.Fatalf("handler saw invalid id %q: %v", seen, err)
		}
		if ValidateCorrelationID(corr) == nil && seen != corr {
			t.Fatalf("valid id %q replaced by %q", corr, seen)
		}
		if rec.Header().Get(HeaderCorrelationID) != seen {
			t.Fatalf("echoed %q, handler saw %q", rec.Header().Get(HeaderCorrelationID), seen)
		}
	})
}

func TestMiddlewareNestedKeepsOneID(t *testing.T) {
	l, buf := newJSONLogger(t, HandlerConfig{})
	outer, _ := NewMiddleware(MiddlewareConfig{Logger: l})
	inner, _ := NewMiddleware(MiddlewareConfig{Logger: l})
	var seen string
	h := outer(inner(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = CorrelationID(r.Context())
	})))
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set(HeaderCorrelationID, "bad id") // rejected once, by the outer layer
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if len(seen) != 32 || rec.Header().Get(HeaderCorrelationID) != seen {
		t.Fatalf("seen %q, echoed %q", seen, rec.Header().Get(HeaderCorrelationID))
	}
	replaced := 0
	for _, line := range jsonLines(t, buf) {
		if line[KeyCorrelationID] != seen {
			t.Errorf("line with another id: %v", line)
		}
		if line[KeyDecision] == "correlation id replaced" {
			replaced++
		}
	}
	if replaced != 1 {
		t.Errorf("replacement logged %d times, want 1", replaced)
	}
}
