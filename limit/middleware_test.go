package limit

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/limit/limittest"
)

// problemOf decodes a problem response and checks the RFC 9457 basics.
func problemOf(t *testing.T, rec *httptest.ResponseRecorder, status int, retryAfter string) map[string]any {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status = %d, want %d (body %s)", rec.Code, status, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != contract.ProblemContentType {
		t.Fatalf("Content-Type = %q, want %q", ct, contract.ProblemContentType)
	}
	if got := rec.Header().Get("Retry-After"); got != retryAfter {
		t.Fatalf("Retry-After = %q, want %q", got, retryAfter)
	}
	var p map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("body %q: %v", rec.Body, err)
	}
	if p["status"] != float64(status) {
		t.Fatalf("problem status = %v, want %d", p["status"], status)
	}
	return p
}

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })

func TestLimiterMiddlewareAnswers429(t *testing.T) {
	clk := limittest.NewClock(epoch)
	l, _ := NewLimiter(LimiterConfig{Rate: 4, Burst: 1, Clock: clk})
	h := l.Middleware(okHandler)

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/payments", nil))
	if rec.Code != 200 || rec.Body.String() != "ok" {
		t.Fatalf("first request: %d %q", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/payments", nil))
	p := problemOf(t, rec, http.StatusTooManyRequests, "1") // 250ms rounds up to 1s
	if p["code"] != CodeRateLimited || p["instance"] != "/payments" {
		t.Fatalf("problem = %v", p)
	}
	clk.Advance(250 * time.Millisecond)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/payments", nil))
	if rec.Code != 200 {
		t.Fatalf("after refill: %d", rec.Code)
	}
}

func TestBulkheadMiddlewareAnswers503AndReleases(t *testing.T) {
	b, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 1, RetryAfter: 2500 * time.Millisecond})
	entered, unblock := make(chan struct{}), make(chan struct{})
	h := b.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			close(entered)
			<-unblock
		case "/panic":
			panic("handler bug")
		}
		w.WriteHeader(http.StatusNoContent)
	}))

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/slow", nil))
		if rec.Code != http.StatusNoContent {
			t.Errorf("slow request: %d", rec.Code)
		}
	}()
	<-entered
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/other", nil))
	p := problemOf(t, rec, http.StatusServiceUnavailable, "3")
	if p["code"] != CodeBulkheadFull {
		t.Fatalf("problem = %v", p)
	}
	close(unblock)
	wg.Wait()

	func() {
		defer func() {
			if recover() != "handler bug" {
				t.Fatal("panic not propagated")
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/panic", nil))
	}()
	if b.InFlight() != 0 {
		t.Fatalf("InFlight = %d after handler panic, want 0", b.InFlight())
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/other", nil))
	if rec.Code != http.StatusNoContent {
		t.Fatalf("after panic: %d", rec.Code)
	}
}

func TestBulkheadMiddlewareClientGoneWhileWaiting(t *testing.T) {
	clk := limittest.NewClock(epoch)
	b, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 1, MaxWaiting: 1, MaxWait: time.Hour, Clock: clk})
	_ = b.Acquire(context.Background())
	called := false
	h := b.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true }))
	ctx, cancel := context.WithCancel(context.Background())
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil).WithContext(ctx))
	}()
	clk.BlockUntilTimers(1)
	cancel()
	<-done
	if called || rec.Code != 499 {
		t.Fatalf("called %v status %d, want handler skipped and 499", called, rec.Code)
	}
	b.Release()
}

func TestKeyedMiddlewareLimitsPerRemoteIP(t *testing.T) {
	clk := limittest.NewClock(epoch)
	k, _ := NewKeyedLimiter(KeyedConfig{Limiter: LimiterConfig{Rate: 1, Burst: 1, Clock: clk}})
	h := k.Middleware(RemoteIP)(okHandler)
	do := func(addr string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = addr
		r.Header.Set("X-Forwarded-For", "10.9.9.9") // ignored: forgeable
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	if rec := do("192.0.2.1:1111"); rec.Code != 200 {
		t.Fatalf("first from .1: %d", rec.Code)
	}
	// Same IP, other port: same key.
	problemOf(t, do("192.0.2.1:2222"), http.StatusTooManyRequests, "1")
	if rec := do("[2001:db8::1]:443"); rec.Code != 200 {
		t.Fatalf("other client limited: %d", rec.Code)
	}
	if k.Len() != 2 {
		t.Fatalf("Len = %d, want 2 keys", k.Len())
	}
}

func TestKeyedMiddlewareNilKeySharesOneBucket(t *testing.T) {
	clk := limittest.NewClock(epoch)
	k, _ := NewKeyedLimiter(KeyedConfig{Limiter: LimiterConfig{Rate: 1, Burst: 1, Clock: clk}})
	h := k.Middleware(nil)(okHandler)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	rec2 := httptest.NewRecorder()
	h.ServeHTTP(rec2, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 200 || rec2.Code != http.StatusTooManyRequests {
		t.Fatalf("codes %d %d, want 200 429", rec.Code, rec2.Code)
	}
}

// TestKeyedMiddlewareOneBucketPerIPv6Slash64: an IPv6 host owns at least a
// /64 and can send each request from another address in it. Keyed by the
// full address, it got a fresh bucket per request, and with MaxKeys
// distinct addresses flushed every other client's bucket out of the
// limiter. RemoteIP now keys IPv6 clients by their /64.
func TestKeyedMiddlewareOneBucketPerIPv6Slash64(t *testing.T) {
	clk := limittest.NewClock(epoch)
	k, err := NewKeyedLimiter(KeyedConfig{Limiter: LimiterConfig{Name: "api", Rate: 1, Burst: 1, Clock: clk}, MaxKeys: 64})
	if err != nil {
		t.Fatal(err)
	}
	h := k.Middleware(RemoteIP)(okHandler)
	do := func(addr string) int {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = addr
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec.Code
	}
	if code := do("192.0.2.1:1111"); code != http.StatusOK {
		t.Fatalf("other client's first request: %d", code)
	}
	passed := 0
	for i := 1; i <= 200; i++ {
		if do(fmt.Sprintf("[2001:db8:1:2:%x::%x]:443", i, i)) == http.StatusOK { // one host, one /64
			passed++
		}
	}
	if passed != 1 {
		t.Errorf("one /64 rotating addresses got %d of 200 requests through a Burst 1 limit, want 1", passed)
	}
	if code := do("192.0.2.1:2222"); code != http.StatusTooManyRequests {
		t.Errorf("other client's second request: %d, want 429 (its bucket evicted by the rotating host)", code)
	}
	if code := do("[2001:db8:1:3::1]:443"); code != http.StatusOK {
		t.Errorf("a client of the next /64: %d, want 200", code)
	}
	if k.Len() != 3 {
		t.Errorf("Len = %d, want 3 keys", k.Len())
	}
}

func TestRemoteIP(t *testing.T) {
	for addr, want := range map[string]string{
		"192.0.2.1:1234":             "192.0.2.1",
		"[2001:db8::1]:443":          "2001:db8::/64",
		"[2001:db8:1:2:3:4:5:6]:443": "2001:db8:1:2::/64",
		"[2001:DB8:0:0:ffff::1]:443": "2001:db8::/64",
		"[::ffff:192.0.2.1]:80":      "192.0.2.1", // IPv4 on a dual-stack socket
		"[::1]:80":                   "::/64",
		"[fe80::1%eth0]:80":          "fe80::/64%eth0", // link-local: the /64 of one link
		"[fe80::2:3%eth1]:80":        "fe80::/64%eth1",
		"2001:db8::1":                "2001:db8::/64", // no port
		"192.0.2.1":                  "192.0.2.1",
		"":                           "",
		"garbage:::":                 "garbage:::",
		"@unix":                      "@unix",
		"[not-an-ip]:80":             "not-an-ip",
		"192.0.2.01:80":              "192.0.2.01",
		"[2001:db8::1]":              "[2001:db8::1]",
		"[2001:db8::1%]:80":          "2001:db8::1%",
	} {
		r := &http.Request{RemoteAddr: addr}
		if got := RemoteIP(r); got != want {
			t.Errorf("RemoteIP(%q) = %q, want %q", addr, got, want)
		}
	}
}
