package logctx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/slogtest"

	"github.com/sadpath/sadpath/contract"
	"go.opentelemetry.io/otel/trace"
)

func mustHandler(t testing.TB, cfg HandlerConfig) *Handler {
	t.Helper()
	h, err := NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// jsonLines parses every JSON line written to buf.
func jsonLines(t testing.TB, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range bytes.Split(buf.Bytes(), []byte{'\n'}) {
		if len(line) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("unmarshal %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func newJSONLogger(t testing.TB, cfg HandlerConfig) (*slog.Logger, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	cfg.Next = slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: dropTime})
	return slog.New(mustHandler(t, cfg)), &buf
}

// dropTime leaves the record's time out of the test loggers' output: its
// digits (nanoseconds) hold any short number now and then, and a test
// checking that "1234" did not leak failed on "03:48:31.000201234Z".
func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

func TestSlogtestJSON(t *testing.T) {
	var buf bytes.Buffer
	newHandler := func(*testing.T) slog.Handler {
		buf.Reset()
		return mustHandler(t, HandlerConfig{Next: slog.NewJSONHandler(&buf, nil)})
	}
	result := func(t *testing.T) map[string]any {
		lines := jsonLines(t, &buf)
		if len(lines) != 1 {
			t.Fatalf("want 1 line, got %d: %s", len(lines), buf.String())
		}
		return lines[0]
	}
	slogtest.Run(t, newHandler, result)
}

func TestSlogtestText(t *testing.T) {
	var buf bytes.Buffer
	newHandler := func(*testing.T) slog.Handler {
		buf.Reset()
		return mustHandler(t, HandlerConfig{Next: slog.NewTextHandler(&buf, nil)})
	}
	result := func(t *testing.T) map[string]any {
		return parseTextLine(t, buf.String())
	}
	slogtest.Run(t, newHandler, result)
}

// parseTextLine parses the text handler's key=value output into nested
// maps by splitting dotted keys. Values in these tests have no spaces.
func parseTextLine(t *testing.T, s string) map[string]any {
	t.Helper()
	s = strings.TrimSuffix(s, "\n")
	if strings.Contains(s, "\n") {
		t.Fatalf("more than one line: %q", s)
	}
	m := map[string]any{}
	for _, f := range strings.Fields(s) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			t.Fatalf("no '=' in %q", f)
		}
		keys := strings.Split(k, ".")
		cur := m
		for _, g := range keys[:len(keys)-1] {
			sub, ok := cur[g].(map[string]any)
			if !ok {
				sub = map[string]any{}
				cur[g] = sub
			}
			cur = sub
		}
		cur[keys[len(keys)-1]] = v
	}
	return m
}

// withCoords puts coordinates on the context of every record, so slogtest
// runs with the Handler actually adding them.
type withCoords struct{ h slog.Handler }

func (w withCoords) Enabled(ctx context.Context, l slog.Level) bool { return w.h.Enabled(ctx, l) }
func (w withCoords) Handle(ctx context.Context, r slog.Record) error {
	return w.h.Handle(fullCtx(), r)
}
func (w withCoords) WithAttrs(as []slog.Attr) slog.Handler { return withCoords{w.h.WithAttrs(as)} }
func (w withCoords) WithGroup(n string) slog.Handler       { return withCoords{w.h.WithGroup(n)} }

func TestSlogtestJSONWithCoordinates(t *testing.T) {
	var buf bytes.Buffer
	newHandler := func(*testing.T) slog.Handler {
		buf.Reset()
		return withCoords{mustHandler(t, HandlerConfig{Next: slog.NewJSONHandler(&buf, nil)})}
	}
	result := func(t *testing.T) map[string]any {
		lines := jsonLines(t, &buf)
		if len(lines) != 1 {
			t.Fatalf("want 1 line, got %d: %s", len(lines), buf.String())
		}
		m := lines[0]
		// Every line carries the coordinates at the top level.
		if m[KeyCorrelationID] != "corr-1" || m[KeyTraceID] != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Errorf("coordinates missing: %v", m)
		}
		checkCoordinatesTopLevel(t, m)
		return m
	}
	slogtest.Run(t, newHandler, result)
}

func TestNewHandlerConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   HandlerConfig
		field string
	}{
		{"nil next", HandlerConfig{}, "HandlerConfig.Next"},
		{"double wrap", HandlerConfig{Next: mustHandler(t, HandlerConfig{Next: slog.DiscardHandler})}, "HandlerConfig.Next"},
		{"empty key", HandlerConfig{Next: slog.DiscardHandler, RedactKeys: []string{"ok", ""}}, "HandlerConfig.RedactKeys[1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := NewHandler(tc.cfg)
			if h != nil || err == nil {
				t.Fatalf("NewHandler = %v, %v; want error", h, err)
			}
			if !errors.Is(err, contract.ErrInvalid) {
				t.Errorf("error %v is not contract.ErrInvalid", err)
			}
			ce := contract.As(err)
			if ce == nil || ce.Code != CodeConfigInvalid || !strings.Contains(ce.Detail, tc.field) {
				t.Errorf("error %#v does not name %s with code %s", ce, tc.field, CodeConfigInvalid)
			}
		})
	}
}

func fullCtx() context.Context {
	ctx := WithCorrelationID(context.Background(), "corr-1")
	ctx = WithOperation(ctx, "payments.capture")
	ctx = WithEntity(ctx, "payment", "pay_123")
	ctx = With(ctx, slog.String(KeyDependency, "acquirer"))
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	return trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled,
	}))
}

func TestHandlerAddsAllCoordinates(t *testing.T) {
	l, buf := newJSONLogger(t, HandlerConfig{})
	l.InfoContext(fullCtx(), "captured", "amount", 1250)
	got := jsonLines(t, buf)[0]
	want := map[string]any{
		KeyCorrelationID: "corr-1",
		KeyOperation:     "payments.capture",
		KeyEntityKind:    "payment",
		KeyEntityID:      "pay_123",
		KeyDependency:    "acquirer",
		KeyTraceID:       "4bf92f3577b34da6a3ce929d0e0e4736",
		KeySpanID:        "00f067aa0ba902b7",
		"amount":         float64(1250),
		"msg":            "captured",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (line %v)", k, got[k], v, got)
		}
	}
}

func TestHandlerCoordinatesTopLevelInsideGroups(t *testing.T) {
	l, buf := newJSONLogger(t, HandlerConfig{})
	l = l.With("svc", "api").WithGroup("req").With("method", "POST").WithGroup("body")
	l.InfoContext(fullCtx(), "m", "amount", 5)
	got := jsonLines(t, buf)[0]
	if got[KeyCorrelationID] != "corr-1" || got[KeyTraceID] == nil || got[KeyDependency] != "acquirer" {
		t.Fatalf("coordinates not top-level: %v", got)
	}
	if got["svc"] != "api" {
		t.Errorf("pre-group attr lost: %v", got)
	}
	req, _ := got["req"].(map[string]any)
	if req == nil || req["method"] != "POST" {
		t.Fatalf("req group wrong: %v", got)
	}
	body, _ := req["body"].(map[string]any)
	if body == nil || body["amount"] != float64(5) {
		t.Fatalf("body group wrong: %v", got)
	}
	if _, ok := req[KeyCorrelationID]; ok {
		t.Errorf("coordinate duplicated inside group: %v", got)
	}

	// A record without attrs drops the empty innermost group but keeps
	// the attrs of the outer one.
	buf.Reset()
	l.InfoContext(context.Background(), "empty")
	got = jsonLines(t, buf)[0]
	req, _ = got["req"].(map[string]any)
	if req == nil || req["method"] != "POST" {
		t.Fatalf("req group wrong: %v", got)
	}
	if _, ok := req["body"]; ok {
		t.Errorf("empty group printed: %v", got)
	}
}

func TestHandlerNestedCallsAndGoroutines(t *testing.T) {
	l, buf := newJSONLogger(t, HandlerConfig{})
	// The JSON handler serializes writes to buf, so goroutines may share it.
	root := WithCorrelationID(context.Background(), "req-9")

	capture := func(ctx context.Context, id string) {
		ctx = WithEntity(ctx, "payment", id)
		ctx = WithOperation(ctx, "payments.capture")
		l.InfoContext(ctx, "captured")
	}
	refund := func(ctx context.Context, id string) {
		ctx = WithOperation(ctx, "payments.refund")
		ctx = With(ctx, slog.Int("attempt", 2))
		l.InfoContext(ctx, "refunded")
		capture(ctx, id) // deeper call overrides operation, keeps correlation id and attrs
	}
	const n = 50
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			refund(root, "pay_"+string(rune('a'+i%26)))
		}()
	}
	wg.Wait()
	l.InfoContext(root, "done")

	lines := jsonLines(t, buf)
	if len(lines) != 2*n+1 {
		t.Fatalf("got %d lines, want %d", len(lines), 2*n+1)
	}
	var refunds, captures int
	for _, m := range lines {
		if m[KeyCorrelationID] != "req-9" {
			t.Fatalf("line without correlation id: %v", m)
		}
		switch m["msg"] {
		case "refunded":
			refunds++
			if m[KeyOperation] != "payments.refund" || m["attempt"] != float64(2) || m[KeyEntityID] != nil {
				t.Errorf("refund line: %v", m)
			}
		case "captured":
			captures++
			if m[KeyOperation] != "payments.capture" || m["attempt"] != float64(2) || m[KeyEntityKind] != "payment" {
				t.Errorf("capture line: %v", m)
			}
		case "done":
			// The root context never saw the children's coordinates.
			if m[KeyOperation] != nil || m["attempt"] != nil {
				t.Errorf("parent context mutated: %v", m)
			}
		}
	}
	if refunds != n || captures != n {
		t.Errorf("refunds=%d captures=%d, want %d each", refunds, captures, n)
	}
}

func TestHandlerNilContext(t *testing.T) {
	var buf bytes.Buffer
	h := mustHandler(t, HandlerConfig{Next: slog.NewJSONHandler(&buf, nil)})
	r := slog.NewRecord(testTime, slog.LevelInfo, "no ctx", 0)
	r.AddAttrs(slog.String("k", "v"))
	if err := h.Handle(nilCtx, r); err != nil {
		t.Fatal(err)
	}
	got := jsonLines(t, &buf)[0]
	if got["k"] != "v" || got["msg"] != "no ctx" {
		t.Errorf("got %v", got)
	}
	if !h.Enabled(nilCtx, slog.LevelInfo) {
		t.Error("Enabled(nil) = false")
	}
}

type failingHandler struct {
	slog.Handler
	err error
}

func (f failingHandler) Handle(context.Context, slog.Record) error { return f.err }

func TestHandlerReturnsWrappedError(t *testing.T) {
	want := errors.New("disk full")
	h := mustHandler(t, HandlerConfig{Next: failingHandler{Handler: slog.DiscardHandler, err: want}})
	r := slog.NewRecord(testTime, slog.LevelInfo, "m", 0)
	if err := h.Handle(fullCtx(), r); !errors.Is(err, want) {
		t.Errorf("Handle error = %v, want %v", err, want)
	}
	if err := h.WithGroup("g").Handle(fullCtx(), r); !errors.Is(err, want) {
		t.Errorf("grouped Handle error = %v, want %v", err, want)
	}
}

func TestHandlerEnabledDelegates(t *testing.T) {
	h := mustHandler(t, HandlerConfig{Next: slog.NewJSONHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: slog.LevelWarn})})
	for _, hh := range []slog.Handler{h, h.WithGroup("g"), h.WithAttrs([]slog.Attr{slog.Int("a", 1)})} {
		if hh.Enabled(context.Background(), slog.LevelInfo) {
			t.Error("Info enabled under a Warn handler")
		}
		if !hh.Enabled(context.Background(), slog.LevelError) {
			t.Error("Error disabled under a Warn handler")
		}
	}
}

func TestHandlerWithEmptyIsSame(t *testing.T) {
	h := mustHandler(t, HandlerConfig{Next: slog.DiscardHandler})
	if h.WithGroup("") != slog.Handler(h) || h.WithAttrs(nil) != slog.Handler(h) {
		t.Error("WithGroup(\"\") or WithAttrs(nil) did not return the same handler")
	}
}

func TestHandlerPassesRecordUntouchedWithoutCoordinates(t *testing.T) {
	// No coordinates, nothing to redact: the record goes through as is
	// (the fast path) and still prints correctly.
	l, buf := newJSONLogger(t, HandlerConfig{})
	l.Info("plain", "a", 1, "b", "x")
	got := jsonLines(t, buf)[0]
	if got["a"] != float64(1) || got["b"] != "x" || len(got) != 4 { // level, msg, a, b (the time dropped)
		t.Errorf("got %v", got)
	}
}

func TestDecision(t *testing.T) {
	l, buf := newJSONLogger(t, HandlerConfig{})
	ctx := WithCorrelationID(context.Background(), "c-1")
	Decision(ctx, l, slog.LevelInfo, "replayed stored response", "idempotency key already completed",
		slog.String(KeyState, "completed"))
	got := jsonLines(t, buf)[0]
	if got["msg"] != "replayed stored response" || got[KeyDecision] != "replayed stored response" ||
		got[KeyReason] != "idempotency key already completed" || got[KeyState] != "completed" ||
		got[KeyCorrelationID] != "c-1" {
		t.Errorf("got %v", got)
	}
	// nil logger and nil context are harmless.
	Decision(ctx, nil, slog.LevelInfo, "d", "r")
	buf.Reset()
	Decision(nilCtx, l, slog.LevelInfo, "d", "r")
	if jsonLines(t, buf)[0][KeyDecision] != "d" {
		t.Error("decision with nil ctx not logged")
	}
	// Many attrs (beyond the stack buffer) are all kept.
	buf.Reset()
	var many []slog.Attr
	for i := range 10 {
		many = append(many, slog.Int("a"+string(rune('0'+i)), i))
	}
	Decision(ctx, l, slog.LevelWarn, "gave up", "10 attempts", many...)
	got = jsonLines(t, buf)[0]
	if got["a9"] != float64(9) || got["a0"] != float64(0) {
		t.Errorf("attrs lost: %v", got)
	}
}

func TestDecisionDisabledAllocs(t *testing.T) {
	h := mustHandler(t, HandlerConfig{Next: slog.NewJSONHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: slog.LevelError})})
	l := slog.New(h)
	ctx := WithCorrelationID(context.Background(), "c")
	allocs := testing.AllocsPerRun(100, func() {
		Decision(ctx, l, slog.LevelInfo, "d", "r", slog.Int("n", 1))
	})
	if allocs != 0 {
		t.Errorf("disabled Decision allocates %v times", allocs)
	}
}

func TestHandlerDoesNotCorruptSharedRecord(t *testing.T) {
	var buf bytes.Buffer
	h := mustHandler(t, HandlerConfig{Next: slog.NewJSONHandler(&buf, nil)})
	r := slog.NewRecord(testTime, slog.LevelInfo, "m", 0)
	for i := range 7 { // two beyond the inline five: a back slice
		r.AddAttrs(slog.Int("a"+string(rune('0'+i)), i))
	}
	ctx := fullCtx()
	for range 3 {
		if err := h.Handle(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if r.NumAttrs() != 7 {
		t.Errorf("caller's record now has %d attrs", r.NumAttrs())
	}
	for _, line := range jsonLines(t, &buf) {
		if _, bug := line["!BUG"]; bug || line["a6"] != float64(6) || line[KeyCorrelationID] != "corr-1" {
			t.Errorf("line %v", line)
		}
	}
}
