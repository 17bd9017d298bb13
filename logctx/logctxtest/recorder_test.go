package logctxtest_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/slogtest"

	"github.com/sadpath/sadpath/logctx"
	"github.com/sadpath/sadpath/logctx/logctxtest"
)

// nested turns an Entry back into the nested map slogtest expects.
func nested(e logctxtest.Entry) map[string]any {
	m := map[string]any{slog.MessageKey: e.Message, slog.LevelKey: e.Level}
	if !e.Time.IsZero() {
		m[slog.TimeKey] = e.Time
	}
	for k, v := range e.Attrs {
		parts := strings.Split(k, ".")
		cur := m
		for _, p := range parts[:len(parts)-1] {
			sub, ok := cur[p].(map[string]any)
			if !ok {
				sub = map[string]any{}
				cur[p] = sub
			}
			cur = sub
		}
		cur[parts[len(parts)-1]] = v.Any()
	}
	return m
}

func TestSlogtest(t *testing.T) {
	var rec *logctxtest.Recorder
	slogtest.Run(t, func(*testing.T) slog.Handler {
		rec = logctxtest.NewRecorder()
		return rec
	}, func(t *testing.T) map[string]any {
		es := rec.Entries()
		if len(es) != 1 {
			t.Fatalf("%d entries", len(es))
		}
		return nested(es[0])
	})
}

func TestNewLoggerRecordsCoordinatesAndDecisions(t *testing.T) {
	log, rec := logctxtest.NewLogger()
	ctx := logctx.WithOperation(logctx.WithCorrelationID(context.Background(), "c-1"), "payments.capture")
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			log.InfoContext(ctx, "step", "password", "hunter2")
			logctx.Decision(ctx, log.WithGroup("g"), slog.LevelWarn, "failed fast", "breaker open")
		}()
	}
	wg.Wait()
	if n := len(rec.Entries()); n != 40 {
		t.Fatalf("%d entries", n)
	}
	d := rec.Decisions()
	if len(d) != 20 {
		t.Fatalf("%d decisions", len(d))
	}
	// Coordinates top-level even in a group; decision attrs inside it.
	if d[0].String(logctx.KeyCorrelationID) != "c-1" || d[0].String("g."+logctx.KeyReason) != "breaker open" {
		t.Errorf("decision entry %v", d[0].Attrs)
	}
	for _, e := range rec.Entries() {
		if e.Message == "step" && e.String("password") != logctx.DefaultRedacted {
			t.Errorf("secret recorded: %v", e.Attrs)
		}
	}
	rec.Reset()
	if len(rec.Entries()) != 0 {
		t.Error("Reset kept entries")
	}
}

func TestWithAttrsInGroups(t *testing.T) {
	rec := logctxtest.NewRecorder()
	log := slog.New(rec).With("a", 1).WithGroup("g").With("b", 2).WithGroup("h")
	log.Info("m", "c", 3)
	e := rec.Entries()[0]
	if e.String("a") != "1" || e.String("g.b") != "2" || e.String("g.h.c") != "3" || len(e.Attrs) != 3 {
		t.Errorf("attrs %v", e.Attrs)
	}
	if e.Has("x") || e.String("x") != "" {
		t.Error("absent key reported")
	}
}
