package retry_test

import (
	"context"
	"hash/crc32"
	"io"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/sadpath/sadpath/retry"
	"github.com/sadpath/sadpath/retry/retrytest"
)

var benchSink int

// benchCtx is a request-like context the compiler cannot see through: with
// a local context.Background() it devirtualizes and deletes the baseline's
// ctx.Err() call, which would make the "direct + context check" baseline a
// bare call.
var benchCtx context.Context

func init() {
	var cancel context.CancelFunc
	benchCtx, cancel = context.WithCancel(context.Background())
	_ = cancel // lives for the test binary
}

//go:noinline
func work(ctx context.Context) (int, error) { return 42, nil }

//go:noinline
func workErr() error { return nil }

var payload = make([]byte, 512)

// work512 is a small but real function: a CRC of 512 bytes.
//
//go:noinline
func work512(ctx context.Context) (int, error) { return int(crc32.ChecksumIEEE(payload)), nil }

// BenchmarkFirstTryCRC is BenchmarkFirstTry with a function that does a
// little work, to show the fixed overhead against a non-empty call.
func BenchmarkFirstTryCRC(b *testing.B) {
	ctx := benchCtx
	b.Run("direct+ctx", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if ctx.Err() != nil {
				b.Fatal("done")
			}
			v, err := work512(ctx)
			if err != nil {
				b.Fatal(err)
			}
			benchSink += v
		}
	})
	b.Run("retry.Do", func(b *testing.B) {
		p := mustPolicy(b, retry.Config{})
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			v, err := retry.Do(ctx, p, work512)
			if err != nil {
				b.Fatal(err)
			}
			benchSink += v
		}
	})
	b.Run("backoff.Retry/ExponentialBackOff-per-call", func(b *testing.B) {
		op := func() error { _, err := work512(ctx); return err }
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if err := backoff.Retry(op, backoff.WithContext(backoff.NewExponentialBackOff(), ctx)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkFirstTry compares a first-try success through Do with the same
// call made directly (plus the context check Do makes) and with backoff/v4.
func BenchmarkFirstTry(b *testing.B) {
	ctx := benchCtx
	b.Run("direct+ctx", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if ctx.Err() != nil {
				b.Fatal("done")
			}
			v, err := work(ctx)
			if err != nil {
				b.Fatal(err)
			}
			benchSink += v
		}
	})
	b.Run("retry.Do", func(b *testing.B) {
		p := mustPolicy(b, retry.Config{})
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			v, err := retry.Do(ctx, p, work)
			if err != nil {
				b.Fatal(err)
			}
			benchSink += v
		}
	})
	b.Run("retry.Do/token-bucket", func(b *testing.B) {
		tb, _ := retry.NewTokenBucket(retry.TokenBucketConfig{})
		p := mustPolicy(b, retry.Config{Budget: tb})
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			v, err := retry.Do(ctx, p, work)
			if err != nil {
				b.Fatal(err)
			}
			benchSink += v
		}
	})
	b.Run("retry.Do/ratio-budget", func(b *testing.B) {
		rb, _ := retry.NewRatioBudget(retry.RatioBudgetConfig{})
		p := mustPolicy(b, retry.Config{Budget: rb})
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			v, err := retry.Do(ctx, p, work)
			if err != nil {
				b.Fatal(err)
			}
			benchSink += v
		}
	})
	b.Run("retry.Do/attempt-timeout", func(b *testing.B) {
		p := mustPolicy(b, retry.Config{AttemptTimeout: time.Second})
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			v, err := retry.Do(ctx, p, work)
			if err != nil {
				b.Fatal(err)
			}
			benchSink += v
		}
	})
	b.Run("backoff.Retry/ExponentialBackOff-per-call", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if err := backoff.Retry(workErr, backoff.WithContext(backoff.NewExponentialBackOff(), ctx)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("backoff.RetryWithData/shared-ZeroBackOff", func(b *testing.B) {
		zb := &backoff.ZeroBackOff{}
		op := func() (int, error) { return work(ctx) }
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			v, err := backoff.RetryWithData(op, zb)
			if err != nil {
				b.Fatal(err)
			}
			benchSink += v
		}
	})
}

// BenchmarkFirstTryRatio alternates blocks of direct calls and Do calls
// on one locked OS thread and times each block with the thread CPU clock,
// so load from other processes on this shared machine does not skew the
// comparison. It reports the CPU ns per call of each and their ratio.
func BenchmarkFirstTryRatio(b *testing.B) {
	for _, tc := range []struct {
		name string
		fn   func(context.Context) (int, error)
	}{{"empty", work}, {"crc512", work512}} {
		b.Run(tc.name, func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			ctx, fn := benchCtx, tc.fn
			p := mustPolicy(b, retry.Config{})
			const block = 4096
			var direct, wrapped, floor time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; done += 2 * block {
				tf := threadCPU()
				for i := 0; i < block; i++ {
					v, _ := minimalWrapper(ctx, fn)
					benchSink += v
				}
				t0 := threadCPU()
				floor += t0 - tf
				for i := 0; i < block; i++ {
					if ctx.Err() != nil {
						b.Fatal("done")
					}
					v, _ := fn(ctx)
					benchSink += v
				}
				t1 := threadCPU()
				for i := 0; i < block; i++ {
					v, _ := retry.Do(ctx, p, fn)
					benchSink += v
				}
				t2 := threadCPU()
				direct += t1 - t0
				wrapped += t2 - t1
			}
			calls := float64((b.N + 2*block - 1) / (2 * block) * block)
			b.ReportMetric(float64(direct.Nanoseconds())/calls, "direct-cpu-ns/call")
			b.ReportMetric(float64(wrapped.Nanoseconds())/calls, "do-cpu-ns/call")
			b.ReportMetric(float64(wrapped)/float64(direct), "do/direct")
			b.ReportMetric(float64(floor)/float64(direct), "minimal-wrapper/direct")
		})
	}
}

// minimalWrapper is the least any generic retry wrapper that is not inlined
// must do on a first-try success: check the context and call fn through its
// func value. Its ratio to the direct call is the floor for Do's.
//
//go:noinline
func minimalWrapper[T any](ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	if err := ctx.Err(); err != nil {
		var zero T
		return zero, err
	}
	return fn(ctx)
}

// BenchmarkTwoRetries measures the failure path: two transient failures,
// then success, on the fake clock (no sleeping).
func BenchmarkTwoRetries(b *testing.B) {
	ctx := context.Background()
	p := mustPolicy(b, retry.Config{Clock: retrytest.NewClockAt(time.Unix(0, 0)), MaxElapsedTime: time.Duration(1<<62) / 2})
	err := unavailable()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		n := 0
		v, rerr := retry.Do(ctx, p, func(context.Context) (int, error) {
			if n++; n < 3 {
				return 0, err
			}
			return n, nil
		})
		if rerr != nil {
			b.Fatal(rerr)
		}
		benchSink += v
	}
}

func BenchmarkBudgetParallel(b *testing.B) {
	b.Run("token-bucket", func(b *testing.B) {
		tb, _ := retry.NewTokenBucket(retry.TokenBucketConfig{})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				tb.Failure()
				if tb.Retry() {
					benchSink++
				}
				tb.Success()
			}
		})
	})
	b.Run("ratio", func(b *testing.B) {
		rb, _ := retry.NewRatioBudget(retry.RatioBudgetConfig{})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				rb.Call()
				if rb.Retry() {
					benchSink++
				}
			}
		})
	})
}

type staticRT struct{}

func (staticRT) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
}

// BenchmarkTransportFirstTry is the Transport's overhead on a successful
// GET over a base that answers at once.
func BenchmarkTransportFirstTry(b *testing.B) {
	tr, err := retry.NewTransport(retry.TransportConfig{Base: staticRT{}})
	if err != nil {
		b.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://dep.test/", nil)
	b.Run("base", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			resp, _ := staticRT{}.RoundTrip(req)
			_, _ = io.Copy(io.Discard, resp.Body)
		}
	})
	b.Run("retry.Transport", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			resp, err := tr.RoundTrip(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
		}
	})
}
