package limit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/logctx"
)

// wantErr asserts err is a *contract.Error of kind k with the given code,
// wrapping contract.ErrRefusedLocally if and only if it is a refusal (rate
// limited or unavailable), not a context error.
func wantErr(t *testing.T, err error, k contract.Kind, code string) *contract.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want %v (%s)", k, code)
	}
	var e *contract.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want *contract.Error", err, err)
	}
	if e.Kind != k || (code != "" && e.Code != code) {
		t.Fatalf("err = %v: kind %v code %q, want kind %v code %q", err, e.Kind, e.Code, k, code)
	}
	refusal := k == contract.KindRateLimited || k == contract.KindUnavailable
	if got := errors.Is(err, contract.ErrRefusedLocally); got != refusal {
		t.Fatalf("err = %v: errors.Is(err, contract.ErrRefusedLocally) = %v, want %v", err, got, refusal)
	}
	return e
}

// wantInvalid asserts err is a config error naming field.
func wantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	if !errors.Is(err, contract.ErrInvalid) {
		t.Fatalf("err = %v, want errors.Is(err, contract.ErrInvalid)", err)
	}
	e := contract.As(err)
	if e.Code != CodeConfigInvalid {
		t.Fatalf("code = %q, want %q", e.Code, CodeConfigInvalid)
	}
	if !strings.Contains(err.Error(), field+": ") {
		t.Fatalf("err = %q, want it to name %s", err, field)
	}
	if len(e.Fields) != 1 || e.Fields[0].Name != field {
		t.Fatalf("fields = %+v, want one naming %s", e.Fields, field)
	}
}

// logBuffer is a concurrency-safe JSON log sink for asserting decisions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// logger logs JSON through a logctx.Handler, which adds the context's
// coordinates (correlation id, operation, …) to each record.
func (b *logBuffer) logger() *slog.Logger {
	h, err := logctx.NewHandler(logctx.HandlerConfig{Next: slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})})
	if err != nil {
		panic(err)
	}
	return slog.New(h)
}

// records returns the logged records, decoded.
func (b *logBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(b.buf.Bytes()), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("bad log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// runtimeYield lets other goroutines run while a slot is held, so the
// concurrency tests actually overlap calls.
func runtimeYield() {
	for range 3 {
		runtime.Gosched()
	}
}

// manualCtx is a context the test ends with the error of its choice
// (context.DeadlineExceeded included) without real time passing.
type manualCtx struct {
	context.Context
	done chan struct{}
	mu   sync.Mutex
	err  error
}

func newManualCtx() *manualCtx {
	return &manualCtx{Context: context.Background(), done: make(chan struct{})}
}

func (c *manualCtx) Done() <-chan struct{} { return c.done }

func (c *manualCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *manualCtx) end(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
	close(c.done)
}
