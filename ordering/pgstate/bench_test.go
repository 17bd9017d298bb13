package pgstate_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/internal/testenv"
	"github.com/sadpath/sadpath/ordering"
	"github.com/sadpath/sadpath/ordering/pgstate"
)

// BenchmarkGuardInOrder measures one in-order event through a Guard on
// PostgreSQL: begin, lock the row, (no-op effect), update, commit.
func BenchmarkGuardInOrder(b *testing.B) { benchInOrder(b, ordering.Config{}) }

// BenchmarkGuardInOrderTimeoutSkip is BenchmarkGuardInOrder under GapHold
// with TimeoutSkip, where the Guard uses AdvanceRedelivery: the same four
// round trips, with a savepoint sent with the row lock and the
// redeliveries of the subject deleted with the update.
func BenchmarkGuardInOrderTimeoutSkip(b *testing.B) {
	benchInOrder(b, ordering.Config{Gap: ordering.GapHold, OnTimeout: ordering.TimeoutSkip})
}

func benchInOrder(b *testing.B, cfg ordering.Config) {
	ctx := context.Background()
	p, err := pgxpool.New(ctx, testenv.PostgresDSN(b))
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	const name = "pgstate_bench"
	_, _ = p.Exec(ctx, "DROP TABLE IF EXISTS "+name+", "+name+"_retry")
	defer p.Exec(context.Background(), "DROP TABLE IF EXISTS "+name+", "+name+"_retry") //nolint:errcheck
	st, err := pgstate.New(pgstate.Config{DB: p, Table: name})
	if err != nil {
		b.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	cfg.State = st
	g, err := ordering.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	apply := func(context.Context, *contract.Event) error { return nil }
	e := &contract.Event{ID: "x", Source: "/b", Subject: "acct"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.Sequence++
		if o, err := g.Process(ctx, e, apply, nil); err != nil || o.Decision != ordering.Apply {
			b.Fatal(o, err)
		}
	}
}
