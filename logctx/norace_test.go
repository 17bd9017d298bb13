//go:build !race

package logctx

// Allocation counts are only meaningful without the race detector, so these
// tests are built only without it; scripts/test.sh runs them in a pass of
// its own (go test -run Alloc, no -race).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestHandlerZeroExtraAllocs(t *testing.T) {
	// The figure as a test: 3 coordinates + 2 attrs allocate no
	// more than the same 5 attrs written directly.
	var sink bytes.Buffer
	direct := slog.New(slog.NewJSONHandler(&sink, nil))
	wrapped := slog.New(mustHandler(t, HandlerConfig{Next: slog.NewJSONHandler(&sink, nil)}))
	ctx := WithCorrelationID(context.Background(), "c-1")
	ctx = WithOperation(ctx, "op")
	ctx = With(ctx, slog.String("tenant", "acme"))
	bg := context.Background()
	d := testing.AllocsPerRun(200, func() {
		sink.Reset()
		direct.LogAttrs(bg, slog.LevelInfo, "m", slog.String(KeyCorrelationID, "c-1"), slog.String(KeyOperation, "op"),
			slog.String("tenant", "acme"), slog.Int("amount", 1), slog.String("currency", "EUR"))
	})
	w := testing.AllocsPerRun(200, func() {
		sink.Reset()
		wrapped.LogAttrs(ctx, slog.LevelInfo, "m", slog.Int("amount", 1), slog.String("currency", "EUR"))
	})
	if w > d {
		t.Errorf("wrapped allocs %v > direct allocs %v", w, d)
	}
}

func TestHandlerBytesNoExtraAllocs(t *testing.T) {
	// A []byte without a card number (a request body, a message payload)
	// is scanned in place: it costs no copy of its own.
	body := bytes.Repeat([]byte(`{"amount":1250,"currency":"EUR"} `), 64)
	checkNoExtraAllocs(t, textHandler, HandlerConfig{}, slog.Any("body", body))
}

func jsonHandler(w io.Writer, o *slog.HandlerOptions) slog.Handler { return slog.NewJSONHandler(w, o) }
func textHandler(w io.Writer, o *slog.HandlerOptions) slog.Handler { return slog.NewTextHandler(w, o) }

// checkNoExtraAllocs fails when attr, logged through a Handler configured
// with cfg over a handler made by next, allocates more than attr logged
// through next directly. It returns what the Handler's last line wrote.
func checkNoExtraAllocs(t *testing.T, next func(io.Writer, *slog.HandlerOptions) slog.Handler, cfg HandlerConfig, attr slog.Attr) string {
	t.Helper()
	var sink bytes.Buffer
	direct := slog.New(next(&sink, nil))
	cfg.Next = next(&sink, nil)
	wrapped := slog.New(mustHandler(t, cfg))
	bg := context.Background()
	d := testing.AllocsPerRun(200, func() {
		sink.Reset()
		direct.LogAttrs(bg, slog.LevelInfo, "m", attr)
	})
	w := testing.AllocsPerRun(200, func() {
		sink.Reset()
		wrapped.LogAttrs(bg, slog.LevelInfo, "m", attr)
	})
	if w > d {
		t.Errorf("wrapped allocs %v > direct allocs %v", w, d)
	}
	return sink.String()
}

func TestHandlerPlainSlicesNoExtraAllocs(t *testing.T) {
	// Values of kind Any that hold nothing to redact (slices, arrays and
	// maps of plain values, a struct, a clean []http.Header) cost no
	// allocation of the Handler's own: the walk of slices of containers
	// copies only what it changes.
	type point struct {
		X, Y int
		Name string
	}
	plain, body := "plain text", &map[string]any{"n": 1.0}
	var boxed any = map[string]any{"n": 1.0}
	values := map[string]any{
		"ints":    []int64{1, 2, 3, 4},
		"strings": []string{"a", "b"},
		"array":   [4]float64{1, 2, 3, 4},
		"map":     map[string]int{"a": 1},
		"int_map": map[int]string{1: "a", 2: "b"},
		"any_map": map[any]any{"a": 1, 2: "b"},
		"labels":  labels{"env": "prod", "team": "payments"},
		"named":   []cardNumber{"not a card", "1234"},
		"texts":   [2]string{"a", "b"},
		"raw":     json.RawMessage(`{"amount":1250,"currency":"EUR","tags":["a","b"]}`),
		"pointer": &map[string]any{"n": 1.0},
		"ptr_ptr": &body,
		"ptr_any": &boxed,
		"ptr_str": &plain,
		"struct":  point{1, 2, "p"},
		"structs": []point{{1, 2, "p"}},
		"headers": []http.Header{{"Accept": {"text/plain"}}, {"Content-Type": {"application/json"}}},
		"nested":  [][]map[string]any{{{"n": 1.0}}},
		"lists":   [][]any{{"a", 1.0}, {map[string]any{"n": "x"}}},
		"bodies":  [][]byte{[]byte(`{"amount":1250}`)},
	}
	for name, v := range values {
		t.Run(name, func(t *testing.T) {
			checkNoExtraAllocs(t, jsonHandler, HandlerConfig{}, slog.Any("v", v))
		})
	}
}

// With NoCardScan, card numbers are not looked for: the values of a
// map[string]string and of a header were still scanned (each card number
// found cost a masked copy, thrown away) and the result ignored.
func TestHandlerNoCardScanNoExtraAllocs(t *testing.T) {
	values := map[string]any{
		"map":    map[string]string{"ref": testPAN, "note": "card " + testPAN},
		"header": http.Header{"X-Ref": {testPAN, "card " + testPAN}},
		"query":  url.Values{"ref": {testPAN}},
	}
	for name, v := range values {
		t.Run(name, func(t *testing.T) {
			out := checkNoExtraAllocs(t, jsonHandler, HandlerConfig{NoCardScan: true}, slog.Any("v", v))
			if !strings.Contains(out, testPAN) {
				t.Errorf("card number masked despite NoCardScan: %s", out)
			}
		})
	}
}

// TestMiddlewareAllocs: without the access line, the middleware costs two
// allocations per request of its own with a valid incoming id, three when
// it generates one, whatever optional interfaces the writer it wraps has.
func TestMiddlewareAllocs(t *testing.T) {
	mw, err := NewMiddleware(MiddlewareConfig{})
	if err != nil {
		t.Fatal(err)
	}
	app := http.HandlerFunc(benchApp)
	wrapped := mw(app)
	for name, w := range map[string]http.ResponseWriter{
		"plain":     &discardWriter{h: http.Header{}},
		"flusher":   &flushingDiscardWriter{discardWriter{h: http.Header{}}},
		"hijacker":  &hijackOnlyWriter{plainWriter: plainWriter{h: http.Header{}}},
		"both":      &flushHijackDiscardWriter{flushingDiscardWriter{discardWriter{h: http.Header{}}}},
		"unwrapped": unwrapOnly{&flushingDiscardWriter{discardWriter{h: http.Header{}}}},
	} {
		for _, tc := range []struct {
			name   string
			header http.Header
			want   float64
		}{
			{"valid-id", http.Header{"X-Correlation-Id": {"4bf92f3577b34da6a3ce929d0e0e4736"}}, 2},
			{"generated", http.Header{}, 3},
		} {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				req := httptest.NewRequest("POST", "/payments", nil)
				req.Header = tc.header
				serve := func(h http.Handler) func() {
					return func() { clear(w.Header()); h.ServeHTTP(w, req) }
				}
				bare := testing.AllocsPerRun(1000, serve(app))
				with := testing.AllocsPerRun(1000, serve(wrapped))
				if with-bare > tc.want {
					t.Errorf("middleware allocates %v times per request, want <= %v", with-bare, tc.want)
				}
			})
		}
	}
}

type flushingDiscardWriter struct{ discardWriter }

func (*flushingDiscardWriter) Flush() {}

type flushHijackDiscardWriter struct{ flushingDiscardWriter }

func (*flushHijackDiscardWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) { return nil, nil, nil }

// A *url.URL with nothing to redact — no user information, no secret
// query or fragment parameter, no card number — is passed on as it is,
// and cost an allocation or more of the Handler's own all the same: it
// was written out as a string (and its query and fragment parsed into
// maps) just to be scanned for card numbers. It is now checked in place.
func TestHandlerCleanURLNoExtraAllocs(t *testing.T) {
	for _, raw := range []string{
		"https://api.example.com/v1/orders/1234",
		"https://api.example.com:8443/v1/orders?page=2&sort=created_at&limit=50",
		"https://api.example.com/search?q=red+shoes&redirect=https%3A%2F%2Fshop.example%2Fcb",
		"https://docs.example.com/guide#section-2",
		"https://example.com/a%2Fb/c?flag",
		"https://[::1]:8080/health",
		"/relative/path?x=1",
		"mailto:ops.example.com",
	} {
		t.Run(raw, func(t *testing.T) {
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			out := checkNoExtraAllocs(t, textHandler, HandlerConfig{}, slog.Any("u", u))
			if want := u.String(); !strings.Contains(out, want) {
				t.Errorf("got %s, want %s in it", out, want)
			}
		})
	}
}
