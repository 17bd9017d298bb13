package logctxtest

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sadpath/sadpath/logctx"
)

// Entry is one recorded record.
type Entry struct {
	Time    time.Time
	Level   slog.Level
	Message string
	// Attrs holds every attribute, resolved, under its key qualified by its
	// groups with "." ("http.status"). Empty attributes and empty groups are
	// left out, as slog handlers must.
	Attrs map[string]slog.Value
}

// String returns the attribute under key as a string ("" when absent).
func (e Entry) String(key string) string {
	v, ok := e.Attrs[key]
	if !ok {
		return ""
	}
	return v.String()
}

// Has reports whether the entry has an attribute under key.
func (e Entry) Has(key string) bool {
	_, ok := e.Attrs[key]
	return ok
}

// Recorder is a slog.Handler that records every record at every level.
// The zero value is not usable; call NewRecorder.
type Recorder struct {
	shared *shared
	prefix string      // open groups, "a.b." ("" when none)
	attrs  []slog.Attr // from WithAttrs, already qualified
}

type shared struct {
	mu      sync.Mutex
	entries []Entry
}

var _ slog.Handler = (*Recorder)(nil)

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{shared: &shared{}} }

// NewLogger returns a logger writing through a logctx.Handler (default
// configuration: coordinates and redaction) to a new Recorder.
func NewLogger() (*slog.Logger, *Recorder) {
	rec := NewRecorder()
	h, err := logctx.NewHandler(logctx.HandlerConfig{Next: rec})
	if err != nil {
		panic(err) // unreachable: the configuration is valid
	}
	return slog.New(h), rec
}

// Enabled reports true: a Recorder keeps every level.
func (r *Recorder) Enabled(context.Context, slog.Level) bool { return true }

// Handle records rec.
func (r *Recorder) Handle(_ context.Context, rec slog.Record) error {
	e := Entry{Time: rec.Time, Level: rec.Level, Message: rec.Message, Attrs: map[string]slog.Value{}}
	for _, a := range r.attrs {
		add(e.Attrs, "", a)
	}
	rec.Attrs(func(a slog.Attr) bool {
		add(e.Attrs, r.prefix, a)
		return true
	})
	r.shared.mu.Lock()
	r.shared.entries = append(r.shared.entries, e)
	r.shared.mu.Unlock()
	return nil
}

// add stores a, resolved, under prefix+key, flattening groups.
func add(m map[string]slog.Value, prefix string, a slog.Attr) {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p = prefix + a.Key + "."
		}
		for _, m2 := range v.Group() {
			add(m, p, m2)
		}
		return
	}
	if a.Key == "" && v.Equal(slog.Value{}) {
		return
	}
	m[prefix+a.Key] = v
}

// WithAttrs returns a Recorder that adds attrs, qualified by the open
// groups, to every entry.
func (r *Recorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return r
	}
	n := *r
	n.attrs = slices.Clip(r.attrs)
	if r.prefix == "" {
		n.attrs = append(n.attrs, attrs...)
		return &n
	}
	// Qualify now: the group prefix applies to these attrs for good.
	for _, a := range attrs {
		n.attrs = append(n.attrs, slog.Attr{Key: r.prefix[:len(r.prefix)-1], Value: slog.GroupValue(a)})
	}
	return &n
}

// WithGroup returns a Recorder that qualifies later attrs by name.
func (r *Recorder) WithGroup(name string) slog.Handler {
	if name == "" {
		return r
	}
	n := *r
	n.prefix = r.prefix + name + "."
	return &n
}

// Entries returns a copy of the entries recorded so far, oldest first.
func (r *Recorder) Entries() []Entry {
	r.shared.mu.Lock()
	defer r.shared.mu.Unlock()
	return slices.Clone(r.shared.entries)
}

// Decisions returns the entries logged with logctx.Decision (those with a
// decision attribute, at the top level or inside groups), oldest first.
func (r *Recorder) Decisions() []Entry {
	var out []Entry
	for _, e := range r.Entries() {
		for k := range e.Attrs {
			if k == logctx.KeyDecision || strings.HasSuffix(k, "."+logctx.KeyDecision) {
				out = append(out, e)
				break
			}
		}
	}
	return out
}

// Reset forgets every entry.
func (r *Recorder) Reset() {
	r.shared.mu.Lock()
	r.shared.entries = nil
	r.shared.mu.Unlock()
}
