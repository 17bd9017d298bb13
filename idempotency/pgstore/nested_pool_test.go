package pgstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/internal/testenv"
)

// smallPool returns a pool of at most n connections with a counting tracer.
func smallPool(t *testing.T, n int32) (*pgxpool.Pool, *tracer) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(testenv.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	tr := &tracer{}
	cfg.ConnConfig.Tracer = tr
	cfg.MaxConns = n
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, tr
}

// TestNestedCallOnPoolHeldByItsCallersFailsAtOnce: a DoTx, or an
// idempotency.Do over a Store, called inside DoTx's fn needs a connection
// of the pool while the enclosing DoTx transactions hold theirs until it
// returns. When they hold them all (a pool of one, or as deep a nesting as
// the pool has connections) it waited for one until its context ended,
// then failed as a retryable timeout that every retry met again. It now
// fails at once with ErrNestedPoolExhausted, without a statement (through
// Do, as the store failure it reports: ErrStoreUnavailable wrapping it),
// and the enclosing DoTx, failing with it, releases its key.
func TestNestedCallOnPoolHeldByItsCallersFailsAtOnce(t *testing.T) {
	p1, tr1 := smallPool(t, 1)
	s1 := newStore(t, p1, newTable())
	sameTable := newStore(t, p1, newTable()) // another Store on the same pool
	p2, tr2 := smallPool(t, 2)
	s2 := newStore(t, p2, newTable())
	dotx := func(s *Store) func(ctx context.Context, k idempotency.Key) error {
		return func(ctx context.Context, k idempotency.Key) error {
			_, err := DoTx(ctx, s, k, "fp", func(context.Context, pgx.Tx) (int, error) {
				t.Error("the nested DoTx ran its function")
				return 0, nil
			})
			return err
		}
	}
	do := func(s *Store) func(ctx context.Context, k idempotency.Key) error {
		ex, err := idempotency.New(idempotency.Config{Store: s})
		if err != nil {
			t.Fatal(err)
		}
		return func(ctx context.Context, k idempotency.Key) error {
			_, err := idempotency.Do(ctx, ex, k, "fp", func(context.Context) (int, error) {
				t.Error("the nested Do ran its function")
				return 0, nil
			})
			return err
		}
	}
	for _, tc := range []struct {
		name   string
		outer  *Store
		tr     *tracer
		depth  int // DoTx calls enclosing the nested one
		nested func(ctx context.Context, k idempotency.Key) error
		viaDo  bool
	}{
		{"MaxConns=1/DoTx", s1, tr1, 1, dotx(s1), false},
		{"MaxConns=1/DoTx on another Store of the pool", s1, tr1, 1, dotx(sameTable), false},
		{"MaxConns=1/Do", s1, tr1, 1, do(s1), true},
		{"MaxConns=2/DoTx at depth 3", s2, tr2, 2, dotx(s2), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // a regression fails rather than hangs
			defer cancel()
			key := func(level int) idempotency.Key {
				return idempotency.Key{Scope: "tenant", Key: fmt.Sprintf("pool-%d-%s", level, randomSuffix())}
			}
			outerKey := key(0)
			var nestedErr error
			var enclose func(ctx context.Context, level int) (int, error)
			enclose = func(ctx context.Context, level int) (int, error) {
				k := outerKey
				if level > 0 {
					k = key(level)
				}
				return DoTx(ctx, tc.outer, k, "fp", func(ctx context.Context, _ pgx.Tx) (int, error) {
					if level+1 < tc.depth {
						return enclose(ctx, level+1)
					}
					before := tc.tr.n.Load()
					nestedErr = tc.nested(ctx, key(level+1))
					if n := tc.tr.n.Load() - before; n != 0 {
						t.Errorf("the nested call ran %d statements, want none", n)
					}
					return 0, nestedErr
				})
			}
			_, outerErr := enclose(ctx, 0)
			if ctx.Err() != nil {
				t.Fatalf("the nested call waited for its context to end: %v", nestedErr)
			}
			switch {
			case !errors.Is(nestedErr, ErrNestedPoolExhausted):
				t.Fatalf("nested call: %v; want ErrNestedPoolExhausted", nestedErr)
			case tc.viaDo && !errors.Is(nestedErr, idempotency.ErrStoreUnavailable):
				t.Fatalf("nested Do: %v; want the executor's ErrStoreUnavailable wrapping ErrNestedPoolExhausted", nestedErr)
			case !tc.viaDo && (contract.KindOf(nestedErr) != contract.KindInternal || contract.Retryable(nestedErr)):
				t.Fatalf("nested DoTx: %v; want KindInternal, not retryable", nestedErr)
			}
			if !errors.Is(outerErr, ErrNestedPoolExhausted) {
				t.Fatalf("outer DoTx: %v; want the nested call's error", outerErr)
			}
			v, err := DoTx(ctx, tc.outer, outerKey, "fp", func(context.Context, pgx.Tx) (int, error) { return 7, nil })
			if err != nil || v != 7 {
				t.Fatalf("the outer key after the failure: %v, %v; want it released (7)", v, err)
			}
		})
	}
}

// TestNestedCallWithConnectionsLeftRuns: a nesting the pool has a
// connection for runs (a nested DoTx commits on its own), and so does one
// on a Store of another pool.
func TestNestedCallWithConnectionsLeftRuns(t *testing.T) {
	p1, _ := smallPool(t, 1)
	s1 := newStore(t, p1, newTable())
	p2, _ := smallPool(t, 2)
	s2 := newStore(t, p2, newTable())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	k := func() idempotency.Key { return idempotency.Key{Scope: "tenant", Key: "left-" + randomSuffix()} }
	one := func(context.Context, pgx.Tx) (int, error) { return 1, nil }
	v, err := DoTx(ctx, s2, k(), "fp", func(ctx context.Context, _ pgx.Tx) (int, error) {
		a, err := DoTx(ctx, s2, k(), "fp", one) // the second connection of p2
		if err != nil {
			return 0, err
		}
		b, err := DoTx(ctx, s1, k(), "fp", func(ctx context.Context, _ pgx.Tx) (int, error) {
			return DoTx(ctx, s2, k(), "fp", one) // p1's transaction holds none of p2's
		})
		return a + b, err
	})
	if ctx.Err() != nil || err != nil || v != 2 {
		t.Fatalf("%v, %v (context: %v); want 2: each nested call had a connection", v, err, ctx.Err())
	}
}
