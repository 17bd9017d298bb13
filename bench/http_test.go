package bench

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/sadpath/sadpath/breaker"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/logctx"
	sretry "github.com/sadpath/sadpath/retry"
)

// BenchmarkHTTPClient: a GET through retry + breaker transports to a
// loopback server that answers 200.
func BenchmarkHTTPClient(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	get := func(b *testing.B, c *http.Client) {
		b.ReportAllocs()
		for b.Loop() {
			resp, err := c.Get(srv.URL)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	b.Run(sadpath, func(b *testing.B) {
		reg := must(breaker.NewRegistry(breaker.RegistryConfig{}))
		bt := must(breaker.NewTransport(breaker.TransportConfig{Registry: reg, Next: srv.Client().Transport}))
		rt := must(sretry.NewTransport(sretry.TransportConfig{Base: bt, Policy: must(sretry.New(sretry.Config{Clock: noSleep{}}))}))
		get(b, &http.Client{Transport: rt})
	})
	b.Run("retryablehttp", func(b *testing.B) {
		c := retryablehttp.NewClient()
		c.HTTPClient = srv.Client()
		c.Logger = nil
		get(b, c.StandardClient())
	})
	b.Run(direct, func(b *testing.B) {
		get(b, srv.Client())
	})
}

// mutexMap is the lower bound of "dedup": a map under a mutex, no leases,
// no fencing, no retention, no fingerprints.
type mutexMap struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (d *mutexMap) do(key string, fn func() []byte) []byte {
	d.mu.Lock()
	if v, ok := d.m[key]; ok {
		d.mu.Unlock()
		return v
	}
	d.mu.Unlock()
	v := fn()
	d.mu.Lock()
	d.m[key] = v
	d.mu.Unlock()
	return v
}

type payment struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

var paySink payment

func BenchmarkIdempotencyFresh(b *testing.B) {
	ctx := context.Background()
	fp := idempotency.Fingerprint([]byte("POST /payments"), []byte(`{"amount_minor":100}`))
	b.Run(sadpath, func(b *testing.B) {
		store := must(idempotency.NewMemoryStore(idempotency.MemoryConfig{}))
		ex := must(idempotency.New(idempotency.Config{Store: store, Heartbeat: -1}))
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			paySink, sink = idempotency.Do(ctx, ex, idempotency.Key{Scope: "m", Key: strconv.Itoa(i)}, fp,
				func(context.Context) (payment, error) { return payment{"pay_1", "captured"}, nil })
		}
	})
	b.Run("mutexmap", func(b *testing.B) {
		d := &mutexMap{m: map[string][]byte{}}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			_ = d.do(strconv.Itoa(i), func() []byte { return []byte(`{"id":"pay_1","status":"captured"}`) })
		}
	})
}

func BenchmarkIdempotencyReplay(b *testing.B) {
	ctx := context.Background()
	fp := idempotency.Fingerprint([]byte("POST /payments"), []byte(`{"amount_minor":100}`))
	b.Run(sadpath, func(b *testing.B) {
		store := must(idempotency.NewMemoryStore(idempotency.MemoryConfig{}))
		ex := must(idempotency.New(idempotency.Config{Store: store, Heartbeat: -1}))
		key := idempotency.Key{Scope: "m", Key: "k"}
		fn := func(context.Context) (payment, error) { return payment{"pay_1", "captured"}, nil }
		_, _ = idempotency.Do(ctx, ex, key, fp, fn)
		b.ReportAllocs()
		for b.Loop() {
			paySink, sink = idempotency.Do(ctx, ex, key, fp, fn)
		}
	})
	b.Run("mutexmap", func(b *testing.B) {
		d := &mutexMap{m: map[string][]byte{}}
		fn := func() []byte { return []byte(`{"id":"pay_1","status":"captured"}`) }
		d.do("k", fn)
		b.ReportAllocs()
		for b.Loop() {
			_ = d.do("k", fn)
		}
	})
}

// BenchmarkIdempotencyMiddlewareReplay: a POST replayed by the middleware vs
// the same POST to the trivial handler itself.
func BenchmarkIdempotencyMiddlewareReplay(b *testing.B) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"id":"pay_1","status":"captured"}`)
	})
	body := []byte(`{"amount_minor":100,"currency":"EUR"}`)
	serve := func(b *testing.B, h http.Handler) {
		b.ReportAllocs()
		for b.Loop() {
			req := httptest.NewRequest(http.MethodPost, "/payments", bytes.NewReader(body))
			req.Header.Set("Idempotency-Key", "order-1")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusCreated {
				b.Fatalf("status %d", rec.Code)
			}
		}
	}
	b.Run(sadpath, func(b *testing.B) {
		store := must(idempotency.NewMemoryStore(idempotency.MemoryConfig{}))
		mw := must(idempotency.NewMiddleware(idempotency.MiddlewareConfig{
			Config: idempotency.Config{Store: store, Heartbeat: -1},
			Scope:  func(*http.Request) (string, error) { return "merchant", nil },
		}))
		serve(b, mw.Wrap(handler))
	})
	b.Run(direct, func(b *testing.B) { serve(b, handler) })
}

// BenchmarkLogRecord: one record with 3 coordinates + 2 attributes.
func BenchmarkLogRecord(b *testing.B) {
	b.Run(sadpath, func(b *testing.B) {
		h := must(logctx.NewHandler(logctx.HandlerConfig{Next: slog.NewJSONHandler(io.Discard, nil)}))
		l := slog.New(h)
		ctx := logctx.WithEntity(logctx.WithOperation(logctx.WithCorrelationID(context.Background(), "c0ffee"), "payments.create"), "payment", "pay_1")
		b.ReportAllocs()
		for b.Loop() {
			l.LogAttrs(ctx, slog.LevelInfo, "charged", slog.Int("amount_minor", 100), slog.String("currency", "EUR"))
		}
	})
	b.Run("plainslog", func(b *testing.B) {
		l := slog.New(slog.NewJSONHandler(io.Discard, nil))
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			l.LogAttrs(ctx, slog.LevelInfo, "charged", slog.String("correlation_id", "c0ffee"), slog.String("operation", "payments.create"),
				slog.String("entity_kind", "payment"), slog.String("entity_id", "pay_1"), slog.Int("amount_minor", 100), slog.String("currency", "EUR"))
		}
	})
}
