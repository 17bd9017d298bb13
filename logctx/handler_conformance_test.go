package logctx

import (
	"bytes"
	"context"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"testing/slogtest"
	"time"
)

// coordinateKeys are the keys fullCtx makes the Handler add.
var coordinateKeys = []string{
	KeyCorrelationID, KeyOperation, KeyEntityKind, KeyEntityID, KeyDependency, KeyTraceID, KeySpanID,
}

// checkCoordinatesTopLevel encodes logctx's one deliberate deviation from
// plain slog group semantics: the coordinates are written at the top level
// of every line, whatever groups the logger is in, and never inside one.
func checkCoordinatesTopLevel(t *testing.T, m map[string]any) {
	t.Helper()
	for _, k := range coordinateKeys {
		if _, ok := m[k].(string); !ok {
			t.Errorf("coordinate %s not at the top level: %v", k, m)
		}
	}
	var walk func(path string, g map[string]any)
	walk = func(path string, g map[string]any) {
		for k, v := range g {
			sub, ok := v.(map[string]any)
			if !ok {
				continue
			}
			for _, c := range coordinateKeys {
				if _, ok := sub[c]; ok {
					t.Errorf("coordinate %s inside group %s%s: %v", c, path, k, m)
				}
			}
			walk(path+k+".", sub)
		}
	}
	walk("", m)
}

func TestSlogtestTextWithCoordinates(t *testing.T) {
	var buf bytes.Buffer
	newHandler := func(*testing.T) slog.Handler {
		buf.Reset()
		return withCoords{mustHandler(t, HandlerConfig{Next: slog.NewTextHandler(&buf, nil)})}
	}
	result := func(t *testing.T) map[string]any {
		m := parseTextLine(t, buf.String())
		checkCoordinatesTopLevel(t, m)
		return m
	}
	slogtest.Run(t, newHandler, result)
}

// groupEdgeCases are the WithGroup and WithAttrs sequences and record
// attrs that slog's Handler contract has rules for: zero attrs, empty
// groups (named, inline, nested), inline groups, groups opened with
// nothing in them. group is the name the cases open groups with.
type handlerOp struct {
	group string // WithGroup(group) when set, else WithAttrs(attrs)
	attrs []slog.Attr
}

func groupEdgeCases(group string) (opsSets [][]handlerOp, attrSets [][]slog.Attr) {
	zero := slog.Attr{}
	empty := slog.Group("e")
	emptyInline := slog.Group("")
	inline := slog.Group("", slog.Int("i", 1))
	// slog.Group drops empty groups; built by hand they stay.
	nestedEmpty := slog.Attr{Key: "n", Value: slog.GroupValue(slog.Attr{Key: "m", Value: slog.GroupValue()})}
	inlineOfZero := slog.Attr{Value: slog.GroupValue(zero)}
	groupOfZero := slog.Attr{Key: "z", Value: slog.GroupValue(zero, zero)}
	attrSets = [][]slog.Attr{
		nil, {zero}, {zero, zero}, {empty}, {emptyInline}, {nestedEmpty}, {inlineOfZero},
		{groupOfZero}, {inline}, {slog.Int("a", 1)}, {zero, slog.Int("a", 1)},
		{slog.Any("lv", slog.GroupValue())},
	}
	w := []slog.Attr{slog.Int("w", 1)}
	opsSets = [][]handlerOp{
		nil,
		{{group: group}},
		{{group: group}, {group: "H"}},
		{{attrs: w}, {group: group}},
		{{group: group}, {attrs: w}, {group: "H"}},
		{{group: "H"}, {group: group}, {attrs: w}},
		{{group: group}, {attrs: []slog.Attr{zero}}},
		{{group: group}, {attrs: []slog.Attr{zero}}, {group: "H"}},
		{{group: group}, {attrs: []slog.Attr{groupOfZero}}},
		{{group: group}, {attrs: []slog.Attr{inlineOfZero}}},
		{{group: group}, {attrs: []slog.Attr{inline}}},
		{{group: group}, {attrs: []slog.Attr{nestedEmpty}}, {group: "H"}},
	}
	return opsSets, attrSets
}

func applyOps(h slog.Handler, ops []handlerOp) slog.Handler {
	for _, o := range ops {
		if o.group != "" {
			h = h.WithGroup(o.group)
		} else {
			h = h.WithAttrs(o.attrs)
		}
	}
	return h
}

// TestHandlerSecretGroupEmptyPrintsNothing: a group under a secret key is
// written as the replacement only when slog would print it at all. A group
// holding nothing but zero attrs or empty groups is empty by slog's Handler
// contract (slogtest's "empty-attr" and "empty-group" cases), so it prints
// nothing — not a "[REDACTED]" suggesting a secret was there.
func TestHandlerSecretGroupEmptyPrintsNothing(t *testing.T) {
	opsSets, attrSets := groupEdgeCases("auth")
	for oi, ops := range opsSets {
		for ai, as := range attrSets {
			var plainBuf, wrappedBuf bytes.Buffer
			plain := applyOps(slog.NewJSONHandler(&plainBuf, nil), ops)
			wrapped := applyOps(mustHandler(t, HandlerConfig{Next: slog.NewJSONHandler(&wrappedBuf, nil)}), ops)
			r := slog.NewRecord(time.Time{}, slog.LevelInfo, "m", 0)
			r.AddAttrs(as...)
			_ = plain.Handle(context.Background(), r)
			_ = wrapped.Handle(context.Background(), r)
			p, w := jsonLines(t, &plainBuf)[0], jsonLines(t, &wrappedBuf)[0]
			_, plainHas := cutKey(p, "auth")
			wv, wrappedHas := cutKey(w, "auth")
			switch {
			case plainHas && wv != DefaultRedacted:
				t.Errorf("ops[%d] attrs[%d]: auth = %v, want %q (plain %v)", oi, ai, wv, DefaultRedacted, p)
			case !plainHas && wrappedHas:
				t.Errorf("ops[%d] attrs[%d]: empty secret group printed as %v (plain %v)", oi, ai, wv, p)
			}
			if !reflect.DeepEqual(p, w) {
				t.Errorf("ops[%d] attrs[%d]: outside the secret group\nplain   %v\nwrapped %v", oi, ai, p, w)
			}
		}
	}

	// The same through a Logger, as slogtest's empty-attr case logs it.
	l, buf := newJSONLogger(t, HandlerConfig{})
	l.WithGroup("auth").Info("m", "", nil)
	l.Info("m", slog.Group("password", "", nil))
	for _, m := range jsonLines(t, buf) {
		if len(m) != 2 { // level, msg (the test loggers drop the time)
			t.Errorf("empty secret group printed: %v", m)
		}
	}
}

// cutKey removes key from m or from the group map that holds it, at any
// depth, and returns its value.
func cutKey(m map[string]any, key string) (any, bool) {
	if v, ok := m[key]; ok {
		delete(m, key)
		return v, true
	}
	for _, v := range m {
		if sub, ok := v.(map[string]any); ok {
			if v, ok := cutKey(sub, key); ok {
				return v, true
			}
		}
	}
	return nil, false
}

// TestHandlerGroupOfZeroAttrsKeepsLineValid: a group holding only zero
// attrs prints nothing, by slog's Handler contract; the JSON and text
// handlers (as of Go 1.26) still open it and break the next attr's
// output: `"msg":"m""a":1`, invalid JSON a log pipeline drops, and
// "z.a=1". The Handler drops such a group before passing the record on.
func TestHandlerGroupOfZeroAttrsKeepsLineValid(t *testing.T) {
	zero := slog.Attr{}
	z := slog.Attr{Key: "z", Value: slog.GroupValue(zero, zero)}
	inl := slog.Attr{Value: slog.GroupValue(zero)}
	for _, as := range [][]slog.Attr{{z, slog.Int("a", 1)}, {inl, slog.Int("a", 1)}, {slog.Group("g", z, slog.Int("a", 1))}} {
		l, buf := newJSONLogger(t, HandlerConfig{})
		l.InfoContext(WithOperation(context.Background(), "op"), "m", attrsToAny(as)...)
		l.WithGroup("G").With(z).Info("m", "a", 1)
		for _, m := range jsonLines(t, buf) { // fails on invalid JSON
			if _, ok := m["z"]; ok {
				t.Errorf("empty group printed: %v", m)
			}
		}
		var tb bytes.Buffer
		tl := slog.New(mustHandler(t, HandlerConfig{Next: slog.NewTextHandler(&tb, nil)}))
		tl.Info("m", attrsToAny(as)...)
		tl.WithGroup("G").With(z).Info("m", "a", 1)
		if strings.Contains(tb.String(), "z.") {
			t.Errorf("text line carries the empty group's name: %s", tb.String())
		}
	}
}

func attrsToAny(as []slog.Attr) []any {
	out := make([]any, len(as))
	for i, a := range as {
		out[i] = a
	}
	return out
}

// TestHandlerMatchesWrappedHandlerOnGroupEdgeCases checks, beyond
// slogtest, that wrapping changes nothing about how the JSON and text
// handlers print groups, zero attrs and empty groups when there is nothing
// to add or redact: the wrapped line is byte for byte the plain one.
func TestHandlerMatchesWrappedHandlerOnGroupEdgeCases(t *testing.T) {
	opsSets, attrSets := groupEdgeCases("G")
	for _, text := range []bool{false, true} {
		for oi, ops := range opsSets {
			for ai, as := range attrSets {
				var plainBuf, wrappedBuf bytes.Buffer
				var plain slog.Handler = slog.NewJSONHandler(&plainBuf, nil)
				next := slog.Handler(slog.NewJSONHandler(&wrappedBuf, nil))
				if text {
					plain, next = slog.NewTextHandler(&plainBuf, nil), slog.NewTextHandler(&wrappedBuf, nil)
				}
				plain = applyOps(plain, ops)
				wrapped := applyOps(mustHandler(t, HandlerConfig{Next: next}), ops)
				r := slog.NewRecord(time.Time{}, slog.LevelInfo, "m", 0)
				r.AddAttrs(as...)
				if err := plain.Handle(context.Background(), r); err != nil {
					t.Fatal(err)
				}
				if err := wrapped.Handle(context.Background(), r); err != nil {
					t.Fatal(err)
				}
				if plainBuf.String() != wrappedBuf.String() {
					t.Errorf("text=%v ops[%d] attrs[%d]:\nplain   %swrapped %s", text, oi, ai, plainBuf.String(), wrappedBuf.String())
				}
			}
		}
	}
}
