package limit_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/sadpath/sadpath/limit"
	"github.com/sadpath/sadpath/limit/limittest"
)

// Rate limiting per client IP in front of a handler: the refused request
// gets a 429 problem with Retry-After.
func ExampleKeyedLimiter_Middleware() {
	clk := limittest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	k, _ := limit.NewKeyedLimiter(limit.KeyedConfig{
		Limiter: limit.LimiterConfig{Name: "api", Rate: 2, Burst: 1, Clock: clk},
	})
	h := k.Middleware(limit.RemoteIP)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "created")
	}))
	for range 2 {
		req := httptest.NewRequest("POST", "/payments", nil)
		req.RemoteAddr = "198.51.100.7:5555"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		fmt.Printf("%d Retry-After=%q\n", rec.Code, rec.Header().Get("Retry-After"))
		fmt.Println(strings.TrimSpace(rec.Body.String()))
	}
	// Output:
	// 200 Retry-After=""
	// created
	// 429 Retry-After="1"
	// {"type":"about:blank","title":"Too Many Requests","status":429,"detail":"too many requests; retry after the indicated delay","instance":"/payments","code":"limit.rate_limited"}
}

// A bulkhead in front of a handler answers 503 with Retry-After when full.
func ExampleBulkhead_Middleware() {
	b, _ := limit.NewBulkhead(limit.BulkheadConfig{Name: "reports", MaxConcurrent: 1, RetryAfter: 5 * time.Second})
	h := b.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	_ = b.Acquire(context.Background()) // a long report holds the only slot
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/reports", nil))
	fmt.Println(rec.Code, rec.Header().Get("Retry-After"))
	b.Release()
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/reports", nil))
	fmt.Println(rec.Code)
	// Output:
	// 503 5
	// 204
}
