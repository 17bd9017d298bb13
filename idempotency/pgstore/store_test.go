package pgstore

import (
	"context"
	"errors"
	"fmt"
	"math"
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

// TestMigrateDoesNotQueueBehindWriters: Migrate runs on every start, while
// other instances serve traffic. CREATE INDEX IF NOT EXISTS takes a
// ShareLock on the table before it looks for the index, so it waited for
// every open write transaction (a DoTx transaction past its complete, say),
// and every claim arriving meanwhile queued behind it.
func TestMigrateDoesNotQueueBehindWriters(t *testing.T) {
	p, _ := newPool(t, "pgstore-migrate-lock", nil)
	s := newStore(t, p, newTable())
	ctx := context.Background()
	tx, err := p.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `UPDATE `+s.qualified+` SET state = state WHERE false`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Migrate(ctx) }()
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			return
		default:
		}
		var waiting bool
		err := p.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE relation = to_regclass($1) AND NOT granted)`, s.qualified).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting {
			_ = tx.Rollback(ctx)
			<-done
			t.Fatal("Migrate of an existing table waits for a lock behind an open write transaction")
		}
		time.Sleep(time.Millisecond)
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
	if err != nil || c.Status != idempotency.Claimed || c.Token == 0 {
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

// TestStaleOwnerFencedAfterDeleteExpired: a stalled owner's row expires and
// DeleteExpired removes it; another caller claims the key again. The new
// token is larger than the stale owner's (a fresh row does not restart at
// 1), so the stale owner can neither complete, release nor renew the new
// owner's claim.
func TestStaleOwnerFencedAfterDeleteExpired(t *testing.T) {
	p, _ := newPool(t, "pgstore-stale", nil)
	s := newStore(t, p, newTable())
	ctx := context.Background()
	k := keyOf("k")
	req := idempotency.ClaimRequest{Key: k, Fingerprint: "fp", Lease: time.Second, Retention: time.Hour}
	a, err := s.Claim(ctx, req)
	if err != nil || a.Status != idempotency.Claimed {
		t.Fatal(a, err)
	}
	// The owner stalls past its lease and retention, as time would.
	if _, err := p.Exec(ctx, `UPDATE `+s.qualified+` SET lease_until = now() - interval '2 seconds', expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteExpired(ctx, 0); err != nil || n != 1 {
		t.Fatalf("DeleteExpired = %d, %v; want the stale owner's row", n, err)
	}
	b, err := s.Claim(ctx, req)
	if err != nil || b.Status != idempotency.Claimed {
		t.Fatal(b, err)
	}
	if b.Token <= a.Token {
		t.Fatalf("new owner's token %d after the stale owner's %d; tokens must keep increasing after the row is deleted", b.Token, a.Token)
	}
	if err := s.Complete(ctx, k, a.Token, idempotency.Result{Body: []byte("stale")}); !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("stale owner Complete = %v", err)
	}
	if err := s.Release(ctx, k, a.Token); !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("stale owner Release = %v", err)
	}
	if err := s.Renew(ctx, k, a.Token, time.Hour); !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("stale owner Renew = %v", err)
	}
	rec, err := s.Get(ctx, k)
	if err != nil || rec.State != idempotency.StateInProgress || rec.Token != b.Token || rec.LeaseRemaining > time.Second {
		t.Fatalf("after the stale owner's calls: %+v, %v; want the new owner's claim unchanged", rec, err)
	}
	if err := s.Complete(ctx, k, b.Token, idempotency.Result{Body: []byte("fresh")}); err != nil {
		t.Fatal(err)
	}
	if rec, _ := s.Get(ctx, k); rec.Result == nil || string(rec.Result.Body) != "fresh" {
		t.Fatalf("stored %+v", rec.Result)
	}
}

// TestTokenOfLegacyRowGrows: a row whose token was counted from 1 (by an
// earlier version) is claimed again with a larger token.
func TestTokenOfLegacyRowGrows(t *testing.T) {
	p, _ := newPool(t, "pgstore-legacy", nil)
	s := newStore(t, p, newTable())
	ctx := context.Background()
	k := keyOf("k")
	if _, err := p.Exec(ctx, `INSERT INTO `+s.qualified+` (id, fingerprint, state, token, retention_us, expires_at)
VALUES ($1, 'fp', 3, 7, 3600000000, now() + interval '1 hour')`, recordID(k)); err != nil {
		t.Fatal(err)
	}
	c, err := s.Claim(ctx, idempotency.ClaimRequest{Key: k, Fingerprint: "fp", Lease: time.Second, Retention: time.Hour})
	if err != nil || c.Status != idempotency.Claimed || c.Token <= 7 {
		t.Fatalf("claim over a legacy row = %+v, %v", c, err)
	}
	if err := s.Release(ctx, k, 7); !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("legacy token Release = %v", err)
	}
	if err := s.Complete(ctx, k, c.Token, idempotency.Result{}); err != nil {
		t.Fatal(err)
	}
}

// TestHugeDurationsAreCapped: a Lease or Retention near math.MaxInt64
// ("forever") is taken as 100 years. It used to overflow the conversion to
// microseconds: the completed record was invisible at once and a duplicate
// ran again.
func TestHugeDurationsAreCapped(t *testing.T) {
	p, _ := newPool(t, "pgstore-huge", nil)
	s := newStore(t, p, newTable())
	ctx := context.Background()
	const century = 100 * 365 * 24 * time.Hour
	for _, d := range []time.Duration{math.MaxInt64, math.MaxInt64 - time.Microsecond + 1, century + time.Nanosecond} {
		if got := micros(d); got != micros(century) {
			t.Fatalf("micros(%d) = %d, want %d", d, got, micros(century))
		}
	}

	k := keyOf("forever")
	req := idempotency.ClaimRequest{Key: k, Fingerprint: "fp", Lease: time.Second, Retention: math.MaxInt64}
	a, err := s.Claim(ctx, req)
	if err != nil || a.Status != idempotency.Claimed {
		t.Fatal(a, err)
	}
	if err := s.Complete(ctx, k, a.Token, idempotency.Result{Body: []byte("done")}); err != nil {
		t.Fatal(err)
	}
	dup, err := s.Claim(ctx, req)
	if err != nil || dup.Status != idempotency.Completed || dup.Token != a.Token || dup.Result == nil || string(dup.Result.Body) != "done" {
		t.Fatalf("duplicate after completion = %+v, %v; want completed", dup, err)
	}
	var keepDays float64
	if err := p.QueryRow(ctx, `SELECT extract(epoch FROM expires_at - now()) / 86400 FROM `+s.qualified+` WHERE id = $1`, recordID(k)).Scan(&keepDays); err != nil || keepDays < 36499 || keepDays > 36500 {
		t.Fatalf("kept %v days, %v; want 100 years (36500 days)", keepDays, err)
	}

	// A lease as long: held, renewable, reported without overflow.
	k = keyOf("forever-lease")
	req = idempotency.ClaimRequest{Key: k, Fingerprint: "fp", Lease: math.MaxInt64, Retention: math.MaxInt64}
	b, err := s.Claim(ctx, req)
	if err != nil || b.Status != idempotency.Claimed {
		t.Fatal(b, err)
	}
	dup, err = s.Claim(ctx, req)
	if err != nil || dup.Status != idempotency.InProgress || dup.LeaseRemaining < century-time.Hour || dup.LeaseRemaining > century {
		t.Fatalf("duplicate in flight = %+v, %v; want in progress for 100 years", dup, err)
	}
	if err := s.Renew(ctx, k, b.Token, math.MaxInt64); err != nil {
		t.Fatal(err)
	}
	if rec, err := s.Get(ctx, k); err != nil || rec.LeaseRemaining < century-time.Hour || rec.LeaseRemaining > century {
		t.Fatalf("after Renew: %+v, %v", rec, err)
	}
	if err := s.Complete(ctx, k, b.Token, idempotency.Result{Body: []byte("done")}); err != nil {
		t.Fatal(err)
	}
	if dup, err := s.Claim(ctx, req); err != nil || dup.Status != idempotency.Completed {
		t.Fatalf("duplicate after completion = %+v, %v", dup, err)
	}
}

// TestReadOnlyServerIsUnavailable: a pool that reaches a read-only server (a
// standby after a failover, or a demoted primary; here a connection whose
// transactions default to read only) gets retryable KindUnavailable errors
// from every write, with code pgstore.read_only, as the Redis store's
// READONLY does; reads still work.
func TestReadOnlyServerIsUnavailable(t *testing.T) {
	admin, _ := newPool(t, "pgstore-readonly-admin", nil)
	table := newTable()
	rw := newStore(t, admin, table)
	ctx := context.Background()
	k := keyOf("k")
	c, err := rw.Claim(ctx, idempotency.ClaimRequest{Key: k, Fingerprint: "fp", Lease: time.Minute, Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := newPool(t, "pgstore-readonly", map[string]string{"default_transaction_read_only": "on"})
	s, err := New(Config{Pool: p, Schema: testSchema, Table: table})
	if err != nil {
		t.Fatal(err)
	}
	expect := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, contract.ErrUnavailable) || !contract.Retryable(err) || contract.As(err).Code != "pgstore.read_only" {
			t.Fatalf("%s on a read-only server: %v; want retryable unavailable, code pgstore.read_only", what, err)
		}
	}
	_, err = s.Claim(ctx, idempotency.ClaimRequest{Key: keyOf("other"), Fingerprint: "fp", Lease: time.Second, Retention: time.Hour})
	expect("Claim", err)
	expect("Complete", s.Complete(ctx, k, c.Token, idempotency.Result{}))
	expect("Release", s.Release(ctx, k, c.Token))
	expect("Renew", s.Renew(ctx, k, c.Token, time.Minute))
	_, err = s.DeleteExpired(ctx, 0)
	expect("DeleteExpired", err)
	if rec, err := s.Get(ctx, k); err != nil || rec.State != idempotency.StateInProgress || rec.Token != c.Token {
		t.Fatalf("Get on a read-only server: %+v, %v", rec, err)
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

// A cleanup batch above what PostgreSQL's int4 holds still works: the
// LIMIT is a bigint.
func TestCleanupBatchAboveInt32(t *testing.T) {
	p, _ := newPool(t, "cleanup", nil)
	tbl := newTable()
	_ = newStore(t, p, tbl)
	s, err := New(Config{Pool: p, Schema: testSchema, Table: tbl, CleanupBatch: 1 << 31})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteExpired(context.Background(), 0); err != nil {
		t.Fatalf("DeleteExpired with a batch of 2^31: %v", err)
	}
}
