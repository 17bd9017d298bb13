package logctx

import (
	"log/slog"
	"strings"
	"testing"
)

// fanOut's LogValue returns two fresh LogValuers: no container recurs, so
// the cycle check never cuts it, and the depth bound alone let one value
// cost 2^maxWalkDepth LogValue calls (a hang; the JSON handler on its own
// marshals fanOut's fields and is done). It stops after 1<<16 calls only
// so that an unbounded walk ends.
type fanOut struct{ calls *int }

func (f fanOut) LogValue() slog.Value {
	if *f.calls++; *f.calls > 1<<16 {
		return slog.StringValue("leaf")
	}
	return slog.AnyValue([]any{f, f})
}

func TestRedactWalkBoundsLogValueCalls(t *testing.T) {
	for name, v := range map[string]func(fanOut) any{
		"value":      func(f fanOut) any { return f },
		"in a list":  func(f fanOut) any { return []any{f} },
		"in a map":   func(f fanOut) any { return map[string]any{"f": f} },
		"typed list": func(f fanOut) any { return []fanOut{f} },
	} {
		t.Run(name, func(t *testing.T) {
			calls := 0
			l, buf := newJSONLogger(t, HandlerConfig{})
			l.Info("m", "v", v(fanOut{&calls}))
			if calls > maxWalkValuers+1 { // +1: the Handler resolves an attribute's own LogValuer
				t.Errorf("%d LogValue calls, want at most %d", calls, maxWalkValuers+1)
			}
			if !strings.Contains(buf.String(), DefaultRedacted) {
				t.Errorf("nothing replaced: %.200s", buf.String())
			}
		})
	}
	// Under the bound, every LogValuer is resolved and redacted.
	list := make([]tokenValuer, 1000)
	l, buf := newJSONLogger(t, HandlerConfig{})
	l.Info("m", "refs", list)
	if n := strings.Count(buf.String(), "pan=************1111"); n != len(list) {
		t.Errorf("%d of %d LogValuers resolved and masked", n, len(list))
	}
}
