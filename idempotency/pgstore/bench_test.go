package pgstore

import (
	"context"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sadpath/sadpath/idempotency"
)

// benchStore returns a migrated Store on a pool whose statements are
// counted, with every statement already prepared on every connection.
func benchStore(b *testing.B) (*Store, *tracer) {
	p, tr := newPool(b, "pgstore-bench", nil)
	s := newStore(b, p, newTable())
	ctx := context.Background()
	done := make(chan struct{})
	for w := range 16 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 8 {
				k := idempotency.Key{Scope: "warm", Key: strconv.Itoa(w*100 + i)}
				c, err := s.Claim(ctx, idempotency.ClaimRequest{Key: k, Fingerprint: "fp", Lease: time.Minute, Retention: time.Hour})
				if err == nil {
					_ = s.Complete(ctx, k, c.Token, idempotency.Result{})
					_, _ = s.Claim(ctx, idempotency.ClaimRequest{Key: k, Fingerprint: "fp", Lease: time.Minute, Retention: time.Hour})
				}
			}
		}()
	}
	for range 16 {
		<-done
	}
	return s, tr
}

func parallel16(b *testing.B) {
	b.SetParallelism((16 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
}

var benchResult = idempotency.Result{StatusCode: 201, Body: []byte(`{"id":"pay_0123456789","status":"accepted"}`)}

// BenchmarkFreshKey: claim a new key and complete it, 16 concurrent callers.
func BenchmarkFreshKey(b *testing.B) {
	s, tr := benchStore(b)
	var seq atomic.Int64
	parallel16(b)
	b.ReportAllocs()
	tr.n.Store(0)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			k := idempotency.Key{Scope: "bench", Key: strconv.FormatInt(seq.Add(1), 10)}
			c, err := s.Claim(ctx, idempotency.ClaimRequest{Key: k, Fingerprint: "fp", Lease: time.Minute, Retention: time.Hour})
			if err != nil || c.Status != idempotency.Claimed {
				b.Fatal(c, err)
			}
			if err := s.Complete(ctx, k, c.Token, benchResult); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(tr.n.Load())/float64(b.N), "roundtrips/op")
}

// BenchmarkReplay: a duplicate of a completed key gets the stored result,
// 16 concurrent callers.
func BenchmarkReplay(b *testing.B) {
	s, tr := benchStore(b)
	ctx := context.Background()
	const keys = 256
	for i := range keys {
		k := idempotency.Key{Scope: "bench", Key: strconv.Itoa(i)}
		c, err := s.Claim(ctx, idempotency.ClaimRequest{Key: k, Fingerprint: "fp", Lease: time.Minute, Retention: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Complete(ctx, k, c.Token, benchResult); err != nil {
			b.Fatal(err)
		}
	}
	var seq atomic.Int64
	parallel16(b)
	b.ReportAllocs()
	tr.n.Store(0)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k := idempotency.Key{Scope: "bench", Key: strconv.FormatInt(seq.Add(1)%keys, 10)}
			c, err := s.Claim(ctx, idempotency.ClaimRequest{Key: k, Fingerprint: "fp", Lease: time.Minute, Retention: time.Hour})
			if err != nil || c.Status != idempotency.Completed {
				b.Fatal(c, err)
			}
		}
	})
	b.ReportMetric(float64(tr.n.Load())/float64(b.N), "roundtrips/op")
}

// BenchmarkDoTx: a fresh key through DoTx with one business insert: claim,
// begin, insert, complete, commit — 5 statements, 16 concurrent callers.
func BenchmarkDoTx(b *testing.B) {
	s, tr := benchStore(b)
	ctx := context.Background()
	biz := pgx.Identifier{testSchema, s.table + "_biz"}.Sanitize()
	if _, err := s.pool.Exec(ctx, `CREATE TABLE `+biz+` (id bigserial PRIMARY KEY, key text NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _, _ = s.pool.Exec(context.Background(), `DROP TABLE `+biz) })
	var seq atomic.Int64
	parallel16(b)
	b.ReportAllocs()
	tr.n.Store(0)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			key := strconv.FormatInt(seq.Add(1), 10)
			_, err := DoTx(ctx, s, idempotency.Key{Scope: "bench-tx", Key: key}, "fp", func(ctx context.Context, tx pgx.Tx) (int64, error) {
				var id int64
				err := tx.QueryRow(ctx, `INSERT INTO `+biz+` (key) VALUES ($1) RETURNING id`, key).Scan(&id)
				return id, err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(tr.n.Load())/float64(b.N), "roundtrips/op")
}
