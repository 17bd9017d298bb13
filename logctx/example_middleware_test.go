package logctx_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/logctx"
)

// dropVolatile removes the time and duration so the output is stable.
func dropVolatile(groups []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey || a.Key == logctx.KeyDurationMS {
		return slog.Attr{}
	}
	return a
}

// The middleware accepts a valid X-Correlation-ID, puts it on the request
// context, echoes it and writes one access line per request. An invalid
// id is replaced by a fresh one, and the replacement is logged.
func ExampleNewMiddleware() {
	h, _ := logctx.NewHandler(logctx.HandlerConfig{
		Next: slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{ReplaceAttr: dropVolatile}),
	})
	mw, err := logctx.NewMiddleware(logctx.MiddlewareConfig{Logger: slog.New(h)})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /payments", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, "ok")
	})
	srv := mw(mux)

	req := httptest.NewRequest("POST", "/payments", nil)
	req.Header.Set("X-Correlation-ID", "req-42")
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	fmt.Println("echoed:", rec.Header().Get("X-Correlation-ID"))
	// Output:
	// {"level":"INFO","msg":"http request","method":"POST","route":"POST /payments","status":201,"bytes":2,"correlation_id":"req-42"}
	// echoed: req-42
}

// The Transport sends the context's correlation id (and otel context) to
// the services it calls, so a chain of services shares one id.
func ExampleNewTransport() {
	downstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Println("downstream got:", r.Header.Get("X-Correlation-ID"))
	}))
	defer downstream.Close()

	tr, _ := logctx.NewTransport(logctx.TransportConfig{})
	client := &http.Client{Transport: tr}
	defer client.CloseIdleConnections()

	ctx := logctx.WithCorrelationID(context.Background(), "req-42")
	req, _ := http.NewRequestWithContext(ctx, "GET", downstream.URL, nil)
	resp, err := client.Do(req)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	// Output:
	// downstream got: req-42
}

// Events and messages carry the correlation id too: Inject/Extract for
// header maps (http.Header, nats.Header, map[string][]string through
// MapHeader), InjectEvent/ExtractEvent for contract.Event.
func ExampleInjectEvent() {
	ctx := logctx.WithCorrelationID(context.Background(), "req-42")

	e := &contract.Event{ID: "evt_1", Source: "/payments", Type: "payment.captured.v1"}
	logctx.InjectEvent(ctx, e)

	headers := map[string][]string{}
	logctx.Inject(ctx, logctx.MapHeader(headers))

	// On the consumer side:
	consumerCtx, err := logctx.ExtractEvent(context.Background(), e)
	fmt.Println(e.CorrelationID, headers["X-Correlation-ID"], logctx.CorrelationID(consumerCtx), err)
	// Output:
	// req-42 [req-42] req-42 <nil>
}
