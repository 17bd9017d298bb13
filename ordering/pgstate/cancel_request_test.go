package pgstate_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/internal/testenv"
)

// A pool whose connections answer a canceled context with a cancel request
// to the server (pgconn.CancelRequestContextWatcherHandler) gets the
// server's 57014 rather than ctx.Err(): an Advance canceled while it waits
// for the subject's row is still KindCanceled matching context.Canceled,
// not a retryable statement timeout, as in idempotency/pgstore.
func TestAdvanceCanceledMidStatementIsCanceledWithCancelRequests(t *testing.T) {
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
	st, name := table(t, p)
	ctx := context.Background()
	if err := st.Advance(ctx, "acct", func(context.Context, uint64) (uint64, error) { return 1, nil }); err != nil {
		t.Fatal(err)
	}
	tx, err := p.Begin(ctx) // holds the subject's row
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT 1 FROM `+name+` FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- st.Advance(cctx, "acct", func(context.Context, uint64) (uint64, error) { return 2, nil })
	}()
	for { // until the Advance waits for the row
		var waiting bool
		err := p.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
  WHERE NOT l.granted AND a.query LIKE '%' || $1 || '%')`, name).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	err = <-done
	if !errors.Is(err, context.Canceled) || contract.KindOf(err) != contract.KindCanceled {
		t.Fatalf("err = %v (kind %v); want KindCanceled matching context.Canceled", err, contract.KindOf(err))
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v; want the server's error still wrapped", err)
	}
}
