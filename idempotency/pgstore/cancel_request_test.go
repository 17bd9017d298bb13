package pgstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/internal/testenv"
)

// cancelRequestPool is a pool whose connections answer a canceled context
// with a cancel request to the server, as pgx recommends for statements
// that should stop on the server too: the statement then fails with the
// server's 57014 (canceling statement due to user request), not ctx.Err().
func cancelRequestPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(testenv.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: time.Minute}
	}
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// waitLocked waits until a statement waits for a lock on the table.
func waitLocked(t *testing.T, p *pgxpool.Pool, table string) {
	t.Helper()
	for {
		var waiting bool
		err := p.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
  WHERE NOT l.granted AND a.query LIKE '%' || $1 || '%')`, table).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// holdRows locks every row of s's table until the test ends.
func holdRows(t *testing.T, p *pgxpool.Pool, s *Store) pgx.Tx {
	t.Helper()
	tx, err := p.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	if _, err := tx.Exec(context.Background(), `SELECT 1 FROM `+s.qualified+` FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	return tx
}

func TestCanceledMidStatementIsCanceledWithCancelRequests(t *testing.T) {
	p := cancelRequestPool(t)
	s := newStore(t, p, newTable())
	ctx := context.Background()
	c, err := s.Claim(ctx, idempotency.ClaimRequest{Key: keyOf("k"), Fingerprint: "fp", Lease: time.Minute, Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	holdRows(t, p, s)
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Renew(cctx, keyOf("k"), c.Token, time.Minute) }()
	waitLocked(t, p, s.table)
	cancel()
	err = <-done
	if !errors.Is(err, context.Canceled) || !errors.Is(err, contract.ErrCanceled) {
		t.Fatalf("err = %v (kind %v); want KindCanceled matching context.Canceled", err, contract.KindOf(err))
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v; want the server's error still wrapped", err)
	}
}

func TestDoTxCanceledMidStatementIsCanceledWithCancelRequests(t *testing.T) {
	p := cancelRequestPool(t)
	s := newStore(t, p, newTable())
	other := newStore(t, p, newTable())
	ctx := context.Background()
	if _, err := other.Claim(ctx, idempotency.ClaimRequest{Key: keyOf("k"), Fingerprint: "fp", Lease: time.Minute, Retention: time.Hour}); err != nil {
		t.Fatal(err)
	}
	holdRows(t, p, other)
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := DoTx(cctx, s, keyOf("k"), "fp", func(ctx context.Context, tx pgx.Tx) (int, error) {
			_, err := tx.Exec(ctx, `UPDATE `+other.qualified+` SET state = state`)
			return 0, err
		})
		done <- err
	}()
	waitLocked(t, p, other.table)
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) || !errors.Is(err, contract.ErrCanceled) {
		t.Fatalf("err = %v (kind %v); want KindCanceled matching context.Canceled", err, contract.KindOf(err))
	}
}
