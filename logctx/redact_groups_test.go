package logctx

import (
	"bytes"
	"log/slog"
	"runtime/debug"
	"strings"
	"testing"
)

// node logs its child: two nodes that are each other's child make a
// cycle of LogValuers that return groups.
type node struct {
	name  string
	child *node
}

func (n *node) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", n.name), slog.Any("child", n.child))
}

// groupFan's LogValue returns a group of two fresh groupFans: no group
// recurs, so only the LogValue budget bounds it (2^maxWalkDepth calls
// otherwise). It stops after 1<<16 calls only so that an unbounded walk
// ends.
type groupFan struct{ calls *int }

func (f groupFan) LogValue() slog.Value {
	if *f.calls++; *f.calls > 1<<16 {
		return slog.StringValue("leaf")
	}
	return slog.GroupValue(slog.Any("a", f), slog.Any("b", f))
}

// LogValuers whose groups hold LogValuers were resolved attribute by
// attribute with no bound: a cycle (two nodes logging each other), an
// endless chain, or a group that holds itself recursed until the stack
// overflowed, a fatal error that no recover catches, killing the process
// from one log line. The walk of a group now has the depth bound, cycle
// check and LogValue budget of the other walks.
func TestRedactLogValuerGroupsBounded(t *testing.T) {
	// Unbounded, the recursion fails fast rather than after a gigabyte.
	defer debug.SetMaxStack(debug.SetMaxStack(64 << 20))

	a, b := &node{name: "a"}, &node{name: "b"}
	a.child, b.child = b, a
	self := make([]slog.Attr, 1) // a group that holds itself
	self[0] = slog.Any("g", slog.GroupValue(self...))
	for name, log := range map[string]func(*slog.Logger){
		"cycle":          func(l *slog.Logger) { l.Info("m", "v", a) },
		"chain":          func(l *slog.Logger) { l.Info("m", "v", chainValuer{}) },
		"in a group":     func(l *slog.Logger) { l.Info("m", slog.Group("g", "n", a)) },
		"in WithAttrs":   func(l *slog.Logger) { l.With("n", a).Info("m") },
		"in WithGroup":   func(l *slog.Logger) { l.WithGroup("g").Info("m", "n", a) },
		"self":           func(l *slog.Logger) { l.Info("m", "v", self[0].Value) },
		"self in a list": func(l *slog.Logger) { l.Info("m", "v", []any{self[0].Value}) },
		"secret self":    func(l *slog.Logger) { l.Info("m", slog.Any("token", self[0].Value)) },
	} {
		for hname, mk := range map[string]func(testing.TB, HandlerConfig) (*slog.Logger, *bytes.Buffer){
			"json": newJSONLogger, "text": newTextLogger,
		} {
			t.Run(name+"/"+hname, func(t *testing.T) {
				l, buf := mk(t, HandlerConfig{})
				log(l)
				out := buf.String()
				if !strings.Contains(out, DefaultRedacted) || strings.Contains(out, "chain-secret") {
					t.Errorf("got %.300s", out)
				}
				if hname == "json" {
					jsonLines(t, buf) // valid JSON
				}
			})
		}
	}
	calls := 0
	l, buf := newJSONLogger(t, HandlerConfig{})
	l.Info("m", "v", groupFan{&calls})
	if calls > maxWalkValuers {
		t.Errorf("%d LogValue calls, want at most %d", calls, maxWalkValuers)
	}
	if !strings.Contains(buf.String(), DefaultRedacted) {
		t.Errorf("nothing replaced: %.200s", buf.String())
	}
}
