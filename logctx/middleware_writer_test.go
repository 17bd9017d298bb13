package logctx

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// plainWriter can neither flush nor be hijacked.
type plainWriter struct {
	h      http.Header
	status int
	body   strings.Builder
}

func (w *plainWriter) Header() http.Header { return w.h }
func (w *plainWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(p)
}
func (w *plainWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

// hijackOnlyWriter can be hijacked but cannot flush.
type hijackOnlyWriter struct {
	plainWriter
	hijacked bool
}

func (w *hijackOnlyWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.hijacked = true
	return nil, nil, nil
}

// unwrapOnly hides the writer it wraps behind Unwrap, as a middleware
// that does not forward Flush does: http.ResponseController still flushes
// through it.
type unwrapOnly struct{ http.ResponseWriter }

func (w unwrapOnly) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// TestMiddlewareWriterClaimsOnlyWhatItCanDo: the handler's writer is an
// http.Flusher (http.Hijacker) exactly when the writer it wraps can flush
// (be hijacked), as http.ResponseController finds it, so a handler that
// checks w.(http.Flusher) is not told its bytes are on their way when a
// Flush would do nothing, and agrees with http.ResponseController.
func TestMiddlewareWriterClaimsOnlyWhatItCanDo(t *testing.T) {
	for _, tt := range []struct {
		name             string
		w                func() http.ResponseWriter
		flusher, hijacks bool
	}{
		{"plain", func() http.ResponseWriter { return &plainWriter{h: http.Header{}} }, false, false},
		{"flusher", func() http.ResponseWriter { return httptest.NewRecorder() }, true, false},
		{"hijacker", func() http.ResponseWriter { return &hijackOnlyWriter{plainWriter: plainWriter{h: http.Header{}}} }, false, true},
		{"both", func() http.ResponseWriter { return &flushHijackRecorder{ResponseRecorder: httptest.NewRecorder()} }, true, true},
		{"flusher behind Unwrap", func() http.ResponseWriter { return unwrapOnly{httptest.NewRecorder()} }, true, false},
		{"plain behind Unwrap", func() http.ResponseWriter { return unwrapOnly{&plainWriter{h: http.Header{}}} }, false, false},
	} {
		for _, logged := range []bool{false, true} {
			name := tt.name
			if logged {
				name += "/access log"
			}
			t.Run(name, func(t *testing.T) {
				var cfg MiddlewareConfig
				if logged {
					cfg.Logger, _ = newJSONLogger(t, HandlerConfig{})
				}
				mw, err := NewMiddleware(cfg)
				if err != nil {
					t.Fatal(err)
				}
				mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					rc := http.NewResponseController(w)
					if _, ok := w.(http.Flusher); ok != tt.flusher {
						t.Errorf("writer is an http.Flusher: %v, want %v", ok, tt.flusher)
					}
					if err := rc.Flush(); (err == nil) != tt.flusher || (err != nil && !errors.Is(err, http.ErrNotSupported)) {
						t.Errorf("ResponseController.Flush = %v, flusher %v", err, tt.flusher)
					}
					if _, ok := w.(http.Hijacker); ok != tt.hijacks {
						t.Errorf("writer is an http.Hijacker: %v, want %v", ok, tt.hijacks)
					}
					if _, _, err := rc.Hijack(); (err == nil) != tt.hijacks || (err != nil && !errors.Is(err, http.ErrNotSupported)) {
						t.Errorf("ResponseController.Hijack = %v, hijacks %v", err, tt.hijacks)
					}
				})).ServeHTTP(tt.w(), httptest.NewRequest("GET", "/", nil))
			})
		}
	}
}

// TestMiddlewareFlushUnsupportedCommitsNothing: behind a writer that
// cannot flush, a handler falling back from streaming still sets its own
// status, in the response and in the access line.
func TestMiddlewareFlushUnsupportedCommitsNothing(t *testing.T) {
	f := newMW(t, MiddlewareConfig{}, func(w http.ResponseWriter, r *http.Request) {
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
			_, _ = w.Write([]byte("streamed"))
			return
		}
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte("queued"))
	})
	w := &plainWriter{h: http.Header{}}
	f.h.ServeHTTP(w, httptest.NewRequest("POST", "/payments/pay_1", nil))
	<-f.got
	if w.status != http.StatusAccepted || w.body.String() != "queued" {
		t.Errorf("answer %d %q, want 202 queued", w.status, w.body.String())
	}
	if !strings.Contains(f.buf.String(), `"status":202`) {
		t.Errorf("access line %s, want status 202", f.buf.String())
	}
}

// failingFlusher's flush fails, as net/http's does once the client is gone.
type failingFlusher struct{ plainWriter }

var errFlush = errors.New("write: broken pipe")

func (w *failingFlusher) FlushError() error { return errFlush }

// TestMiddlewareFlushErrorReachesHandler: http.ResponseController.Flush
// through the middleware returns the error the underlying flush met, so a
// streaming handler learns its client is gone, as it would without the
// middleware.
func TestMiddlewareFlushErrorReachesHandler(t *testing.T) {
	mw, err := NewMiddleware(MiddlewareConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var got error
	mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = http.NewResponseController(w).Flush()
	})).ServeHTTP(&failingFlusher{plainWriter{h: http.Header{}}}, httptest.NewRequest("GET", "/", nil))
	if !errors.Is(got, errFlush) {
		t.Errorf("ResponseController.Flush = %v, want %v", got, errFlush)
	}
}
