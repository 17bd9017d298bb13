// Package logcount is a test helper: a logger that counts the lines written
// at each level and keeps those at Info and above, so that a test can drive
// many failing calls and assert how many lines an operator would read.
package logcount

import (
	"context"
	"log/slog"
	"sync"

	"github.com/sadpath/sadpath/logctx"
	"github.com/sadpath/sadpath/logctx/logctxtest"
)

// Handler counts records per level; it passes those at Info and above to a
// logctxtest.Recorder and drops the others once counted.
type Handler struct {
	s     *state
	inner slog.Handler
}

type state struct {
	mu     sync.Mutex
	counts map[slog.Level]int
	rec    *logctxtest.Recorder
}

// New returns a logger writing through a logctx.Handler (coordinates and
// redaction) to a new counting Handler, and the Handler.
func New() (*slog.Logger, *Handler) {
	rec := logctxtest.NewRecorder()
	h := &Handler{s: &state{counts: map[slog.Level]int{}, rec: rec}, inner: rec}
	lh, err := logctx.NewHandler(logctx.HandlerConfig{Next: h})
	if err != nil {
		panic(err)
	}
	return slog.New(lh), h
}

// Enabled reports true: every level is counted.
func (h *Handler) Enabled(context.Context, slog.Level) bool { return true }

// Handle counts r and keeps it when at Info or above.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	h.s.mu.Lock()
	h.s.counts[r.Level]++
	h.s.mu.Unlock()
	if r.Level < slog.LevelInfo {
		return nil
	}
	return h.inner.Handle(ctx, r)
}

// WithAttrs returns a Handler counting into the same counts.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &Handler{s: h.s, inner: h.inner.WithAttrs(attrs)}
}

// WithGroup returns a Handler counting into the same counts.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{s: h.s, inner: h.inner.WithGroup(name)}
}

// Count returns the number of records written at level.
func (h *Handler) Count(level slog.Level) int {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	return h.s.counts[level]
}

// AtLeastInfo returns the number of records written at Info and above.
func (h *Handler) AtLeastInfo() int {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	n := 0
	for l, c := range h.s.counts {
		if l >= slog.LevelInfo {
			n += c
		}
	}
	return n
}

// Lines returns the records kept (Info and above), oldest first.
func (h *Handler) Lines() []logctxtest.Entry { return h.s.rec.Entries() }

// Decision returns the kept records whose decision attribute is d.
func (h *Handler) Decision(d string) []logctxtest.Entry {
	var out []logctxtest.Entry
	for _, e := range h.s.rec.Entries() {
		if e.String(logctx.KeyDecision) == d {
			out = append(out, e)
		}
	}
	return out
}

// Represented returns how many occurrences the kept records es stand for:
// one each, plus what each says it suppressed (logctx.KeySuppressed).
func Represented(es []logctxtest.Entry) int64 {
	var n int64
	for _, e := range es {
		n++
		if v, ok := e.Attrs[logctx.KeySuppressed]; ok {
			n += v.Int64()
		}
	}
	return n
}

// Reset forgets the counts and the records kept.
func (h *Handler) Reset() {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	h.s.counts = map[slog.Level]int{}
	h.s.rec.Reset()
}
