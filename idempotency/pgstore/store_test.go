package pgstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
)

func keyOf(k string) idempotency.Key { return idempotency.Key{Scope: "tenant-a", Key: k} }

func TestMigrateIsIdempotentAndConcurrent(t *testing.T) {
	p, _ := newPool(t, "pgstore-migrate", nil)
	s := newStore(t, p, newTable())
	errs := make(chan error, 8)
	for range 8 {
		go func() { errs <- s.Migrate(context.Background()) }()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var n int
	err := p.QueryRow(context.Background(), `SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND tablename = $2`, testSchema, s.table).Scan(&n)
	if err != nil || n != 2 {
		t.Fatalf("indexes: %d, %v; want primary key and expires_at", n, err)
	}
}

func TestMissingTableIsInternal(t *testing.T) {
	p, _ := newPool(t, "pgstore-missing", nil)
	s, _ := New(Config{Pool: p, Schema: testSchema, Table: "never_migrated_" + randomSuffix()})
	_, err := s.Get(context.Background(), keyOf("k"))
	if !errors.Is(err, contract.ErrInternal) || contract.Retryable(err) {
		t.Fatalf("err = %v; want non-retryable internal", err)
	}
}

func TestLeaseFromServerClock(t *testing.T) {
	p, _ := newPool(t, "pgstore-lease", nil)
	s := newStore(t, p, newTable())
	ctx := context.Background()
	c, err := s.Claim(ctx, idempotency.ClaimRequest{Key: keyOf("k"), Fingerprint: "fp", Lease: 10 * time.Second, Retention: time.Minute})
	if err != nil || c.Status != idempotency.Claimed || c.Token != 1 {
		t.Fatal(c, err)
	}
	var leaseLeft, keep float64
	err = p.QueryRow(ctx, `SELECT extract(epoch FROM lease_until - now()), extract(epoch FROM expires_at - now()) FROM `+s.qualified).Scan(&leaseLeft, &keep)
	if err != nil || leaseLeft < 9 || leaseLeft > 10 || keep < 59 || keep > 60 {
		t.Fatalf("lease %vs, kept %vs, %v; want about 10s and 60s of server time", leaseLeft, keep, err)
	}
	dup, err := s.Claim(ctx, idempotency.ClaimRequest{Key: keyOf("k"), Fingerprint: "fp", Lease: 10 * time.Second, Retention: time.Minute})
	if err != nil || dup.Status != idempotency.InProgress || dup.LeaseRemaining < 9*time.Second || dup.LeaseRemaining > 10*time.Second {
		t.Fatalf("duplicate: %+v, %v", dup, err)
	}
	if err := s.Complete(ctx, keyOf("k"), c.Token, idempotency.Result{Body: []byte("done")}); err != nil {
		t.Fatal(err)
	}
	// Completion restarts retention from now: the row is kept a minute.
	err = p.QueryRow(ctx, `SELECT extract(epoch FROM expires_at - now()) FROM `+s.qualified).Scan(&keep)
	if err != nil || keep < 59 || keep > 60 {
		t.Fatalf("kept %vs after completion, %v", keep, err)
	}
}

func TestDeleteExpiredInBatches(t *testing.T) {
	p, _ := newPool(t, "pgstore-cleanup", nil)
	s := newStore(t, p, newTable())
	ctx := context.Background()
	for i := range 25 {
		k := keyOf(fmt.Sprint("old-", i))
		c, err := s.Claim(ctx, idempotency.ClaimRequest{Key: k, Fingerprint: "fp", Lease: time.Second, Retention: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := s.Complete(ctx, k, c.Token, idempotency.Result{Body: []byte("x")}); err != nil {
				t.Fatal(err)
			}
		}
	}
	live := keyOf("live")
	if _, err := s.Claim(ctx, idempotency.ClaimRequest{Key: live, Fingerprint: "fp", Lease: time.Second, Retention: time.Hour}); err != nil {
		t.Fatal(err)
	}
	// Age every record but one past its retention, as time would.
	if _, err := p.Exec(ctx, `UPDATE `+s.qualified+` SET expires_at = now() - interval '1 second' WHERE id <> $1`, recordID(live)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, keyOf("old-0")); !errors.Is(err, idempotency.ErrNotFound) {
		t.Fatalf("expired row still visible: %v", err)
	}
	var batches []int64
	for {
		n, err := s.DeleteExpired(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		batches = append(batches, n)
		if n < 10 {
			break
		}
	}
	if fmt.Sprint(batches) != "[10 10 5]" {
		t.Fatalf("batches %v, want [10 10 5]", batches)
	}
	var left int
	if err := p.QueryRow(ctx, `SELECT count(*) FROM `+s.qualified).Scan(&left); err != nil || left != 1 {
		t.Fatalf("%d rows left, %v; want the live one", left, err)
	}
	if _, err := s.Get(ctx, live); err != nil {
		t.Fatal(err)
	}
}

// An expired row that cleanup has not removed yet is claimable, and its
// token keeps growing.
func TestClaimOverExpiredRow(t *testing.T) {
	p, _ := newPool(t, "pgstore-expired", nil)
	s := newStore(t, p, newTable())
	ctx := context.Background()
	k := keyOf("k")
	c, _ := s.Claim(ctx, idempotency.ClaimRequest{Key: k, Fingerprint: "a", Lease: time.Second, Retention: time.Hour})
	if err := s.Complete(ctx, k, c.Token, idempotency.Result{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Exec(ctx, `UPDATE `+s.qualified+` SET expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	c2, err := s.Claim(ctx, idempotency.ClaimRequest{Key: k, Fingerprint: "b", Lease: time.Second, Retention: time.Hour})
	if err != nil || c2.Status != idempotency.Claimed || c2.Token <= c.Token {
		t.Fatalf("claim over expired row: %+v, %v", c2, err)
	}
}

func TestRoundTrips(t *testing.T) {
	p, tr := newPool(t, "pgstore-roundtrips", nil)
	s := newStore(t, p, newTable())
	ctx := context.Background()
	// Prepare the statements on every connection of the pool first: pgx
	// prepares a statement once per connection.
	for i := range 32 {
		k := keyOf(fmt.Sprint("warm-", i))
		c, _ := s.Claim(ctx, idempotency.ClaimRequest{Key: k, Fingerprint: "fp", Lease: time.Second, Retention: time.Hour})
		_ = s.Complete(ctx, k, c.Token, idempotency.Result{})
	}
	tr.n.Store(0)
	k := keyOf("fresh")
	c, err := s.Claim(ctx, idempotency.ClaimRequest{Key: k, Fingerprint: "fp", Lease: time.Second, Retention: time.Hour})
	if err != nil || c.Status != idempotency.Claimed {
		t.Fatal(c, err)
	}
	if err := s.Complete(ctx, k, c.Token, idempotency.Result{Body: []byte("r")}); err != nil {
		t.Fatal(err)
	}
	if n := tr.n.Swap(0); n != 2 {
		t.Fatalf("fresh key took %d statements, want 2", n)
	}
	if rp, err := s.Claim(ctx, idempotency.ClaimRequest{Key: k, Fingerprint: "fp", Lease: time.Second, Retention: time.Hour}); err != nil || rp.Status != idempotency.Completed {
		t.Fatal(rp, err)
	}
	if n := tr.n.Swap(0); n != 1 {
		t.Fatalf("replay took %d statements, want 1", n)
	}
}

func TestStatementTimeoutIsTimeout(t *testing.T) {
	p, _ := newPool(t, "pgstore-timeout", map[string]string{"statement_timeout": "100"})
	s := newStore(t, p, newTable())
	ctx := context.Background()
	k := keyOf("k")
	c, err := s.Claim(ctx, idempotency.ClaimRequest{Key: k, Fingerprint: "fp", Lease: 10 * time.Second, Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// Hold the row in another transaction: Complete waits on its lock until
	// statement_timeout cancels it.
	tx, err := p.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT 1 FROM `+s.qualified+` WHERE id = $1 FOR UPDATE`, recordID(k)); err != nil {
		t.Fatal(err)
	}
	err = s.Complete(ctx, k, c.Token, idempotency.Result{Body: []byte("x")})
	if !errors.Is(err, contract.ErrTimeout) || !contract.Retryable(err) || contract.As(err).Code != "pgstore.statement_timeout" {
		t.Fatalf("err = %v; want retryable statement timeout", err)
	}
	_ = tx.Rollback(ctx)
	// Nothing was half-written: the record is still in progress, and the
	// owner can complete it now.
	rec, err := s.Get(ctx, k)
	if err != nil || rec.State != idempotency.StateInProgress || rec.Result != nil {
		t.Fatalf("after the timeout: %+v, %v", rec, err)
	}
	if err := s.Complete(ctx, k, c.Token, idempotency.Result{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
}

func TestCanceledContext(t *testing.T) {
	p, _ := newPool(t, "pgstore-cancel", nil)
	s := newStore(t, p, newTable())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Claim(ctx, idempotency.ClaimRequest{Key: keyOf("k"), Fingerprint: "fp", Lease: time.Second, Retention: time.Hour})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, contract.ErrCanceled) {
		t.Fatalf("err = %v", err)
	}
}
