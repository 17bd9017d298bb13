package retry_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/retry"
	"github.com/sadpath/sadpath/retry/retrytest"
)

// FuzzTransportResponse feeds the Transport hostile answers: any status,
// Retry-After, Content-Type and body. It must not panic or hang, never wait
// longer than MaxDelay, and hand back either a later success or the last
// answer with its body byte for byte.
func FuzzTransportResponse(f *testing.F) {
	f.Add(503, "1743441600000", "application/problem+json", []byte(`{"status":503,"code":"overloaded"}`))
	f.Add(429, "Wed, 21 Oct 2015 07:28:00 GMT", "application/json", []byte(`{"detail":"\u0000"}`))
	f.Add(502, "-1", "text/plain", []byte("bad gateway"))
	f.Add(504, "", "application/json", []byte(strings.Repeat("[", 70000)))
	f.Add(200, "5", "", []byte("ok"))
	f.Add(503, "99999999999999999999999", "application/problem+json; charset=utf-8", []byte(`{"status":"x","invalid-params":[{"name":1}]}`))
	f.Add(-1, "\r\n", "\x00", []byte{0xff, 0xfe})
	f.Fuzz(func(t *testing.T, status int, retryAfter, contentType string, body []byte) {
		if status < 100 || status > 999 {
			status = 503
		}
		clk := retrytest.NewClock()
		h := http.Header{}
		h.Set("Retry-After", retryAfter)
		h.Set("Content-Type", contentType)
		base := &scripted{steps: []step{{status: status, header: h, body: string(body)}}}
		p := mustPolicy(t, retry.Config{Clock: clk, MaxDelay: 2 * time.Second, MaxAttempts: 3})
		tr, err := retry.NewTransport(retry.TransportConfig{Base: base, Policy: p})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, "http://dep.test/", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("RoundTrip error %v for a response", err)
		}
		got, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr != nil || string(got) != string(body) || resp.StatusCode != status {
			t.Errorf("got %d %q (%v), want %d and the body intact", resp.StatusCode, got, rerr, status)
		}
		for _, d := range clk.Sleeps() {
			if d < 0 || d > 2*time.Second {
				t.Errorf("waited %v, outside [0, MaxDelay]", d)
			}
		}
	})
}

// FuzzConfig feeds New arbitrary values: it must return either a
// KindInvalid error or a Policy whose waits stay in [0, MaxDelay] and stop
// after MaxAttempts-1.
func FuzzConfig(f *testing.F) {
	f.Add(uint8(0), int64(0), int64(0), 0.0, 0, int64(0), int64(0))
	f.Add(uint8(2), int64(5e6), int64(2e9), 3.0, 50, int64(3600e9), int64(1e9))
	f.Add(uint8(1), int64(-1), int64(1<<62), 1e308, 1<<30, int64(1<<62), int64(-5))
	f.Add(uint8(3), int64(1), int64(1), 1.0, 1, int64(1), int64(0))
	f.Add(uint8(9), int64(1<<62), int64(1<<62), 1.0000001, 1000, int64(1<<62), int64(1<<62))
	f.Fuzz(func(t *testing.T, strategy uint8, initial, maxDelay int64, mult float64, attempts int, elapsed, attemptTimeout int64) {
		cfg := retry.Config{
			Strategy: retry.Strategy(strategy), InitialDelay: time.Duration(initial), MaxDelay: time.Duration(maxDelay),
			Multiplier: mult, MaxAttempts: attempts, MaxElapsedTime: time.Duration(elapsed), AttemptTimeout: time.Duration(attemptTimeout),
		}
		p, err := retry.New(cfg)
		if err != nil {
			if !errors.Is(err, contract.ErrInvalid) {
				t.Fatalf("New error %v is not KindInvalid", err)
			}
			return
		}
		limit := retry.DefaultMaxDelay
		if cfg.MaxDelay > 0 {
			limit = cfg.MaxDelay
		}
		b := p.BackOff()
		for n := 0; n < 200; n++ {
			d := b.NextBackOff()
			if d == backoff.Stop {
				return
			}
			if d < 0 || d > limit {
				t.Fatalf("wait %d = %v outside [0, %v] for %+v", n+1, d, limit, cfg)
			}
		}
		// 200 waits without a stop: only with that many attempts.
		if attempts != 0 && attempts <= 200 {
			t.Fatalf("no stop after 200 waits with MaxAttempts %d", attempts)
		}
		_ = context.Background
	})
}

// FuzzLogsHideURLQuery: whatever the URL of a *url.Error in a retried
// failure, its query never reaches the logs, and logging never panics.
func FuzzLogsHideURLQuery(f *testing.F) {
	for _, s := range []string{"https://psp.test/v1", "http://u:p@h/a", "", "//x@y", "h/p\t\x00\"", "://@/", "a@b@c/d", "\xff\u2028"} {
		f.Add(s)
	}
	const secret = "Zsk_live_fuzz"
	f.Fuzz(func(t *testing.T, prefix string) {
		if strings.Contains(prefix, "Zsk") {
			return
		}
		sink := &logSink{}
		p := mustPolicy(t, retry.Config{Clock: retrytest.NewClock(), MaxAttempts: 2, Logger: sink.logger()})
		uerr := &url.Error{Op: "Get", URL: prefix + "?api_key=" + secret, Err: io.ErrUnexpectedEOF}
		failure := contract.Wrap(contract.KindUnavailable, "dep.get", uerr)
		_, _ = retry.Do(context.Background(), p, func(context.Context) (int, error) { return 0, failure })
		recs := sink.records(t)
		if len(recs) != 2 {
			t.Fatalf("%d records, want 2", len(recs))
		}
		for _, r := range recs {
			if msg, _ := r["error"].(string); strings.Contains(msg, secret) || strings.Contains(msg, strconv.Quote(secret)) {
				t.Fatalf("URL %q: logged %q", uerr.URL, msg)
			}
		}
	})
}
