package rwcap_test

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sadpath/sadpath/internal/rwcap"
)

// plain has neither capability.
type plain struct{ http.ResponseWriter }

// wrapper hides its writer's methods but unwraps to it.
type wrapper struct{ w http.ResponseWriter }

func (w wrapper) Header() http.Header                         { return w.w.Header() }
func (w wrapper) Write(b []byte) (int, error)                 { return w.w.Write(b) }
func (w wrapper) WriteHeader(code int)                        { w.w.WriteHeader(code) }
func (w wrapper) Unwrap() http.ResponseWriter                 { return w.w }
func (flushErr) FlushError() error                            { return nil }
func (hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) { return nil, nil, nil }

type flushErr struct{ plain }
type hijacker struct{ plain }

func TestCapabilities(t *testing.T) {
	rec := httptest.NewRecorder() // a Flusher, not a Hijacker
	bare := plain{}
	for _, tt := range []struct {
		name          string
		w             http.ResponseWriter
		flush, hijack bool
	}{
		{"recorder", rec, true, false},
		{"plain", bare, false, false},
		{"FlushError only", flushErr{}, true, false},
		{"hijacker", hijacker{}, false, true},
		{"wrapper of recorder", wrapper{rec}, true, false},
		{"wrapper of wrapper of hijacker", wrapper{wrapper{hijacker{}}}, false, true},
		{"wrapper of plain", wrapper{bare}, false, false},
	} {
		if got := rwcap.CanFlush(tt.w); got != tt.flush {
			t.Errorf("%s: CanFlush = %v, want %v", tt.name, got, tt.flush)
		}
		if got := rwcap.CanHijack(tt.w); got != tt.hijack {
			t.Errorf("%s: CanHijack = %v, want %v", tt.name, got, tt.hijack)
		}
		// http.ResponseController agrees on Flush.
		if err := http.NewResponseController(tt.w).Flush(); (err == nil) != tt.flush {
			t.Errorf("%s: ResponseController.Flush = %v, CanFlush %v", tt.name, err, tt.flush)
		}
	}
}
