package pgstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sadpath/sadpath/idempotency"
)

// TestNestedCallOnAnotherStoreOfTheSameTableFailsAtOnce: two Stores built
// over the same table (one per handler, on the same pool or on another
// pool to the same database) share records, so a call nested in an
// operation holding the same key through the other Store can only meet
// that operation's claim in progress. Compared with ==, the Stores looked
// different: a DoTx answered ErrInProgress, and a Do under Wait waited
// for itself until its context ended. It now fails at once with
// ErrNestedCall. A Store on another table is still another store.
func TestNestedCallOnAnotherStoreOfTheSameTableFailsAtOnce(t *testing.T) {
	p, _ := newPool(t, "pgstore-nested-identity", nil)
	p2, _ := newPool(t, "pgstore-nested-identity-2", nil)
	table := newTable()
	s := newStore(t, p, table)
	samePool, err := New(Config{Pool: p, Schema: testSchema, Table: table})
	if err != nil {
		t.Fatal(err)
	}
	otherPool, err := New(Config{Pool: p2, Schema: testSchema, Table: table})
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := newStore(t, p, newTable())
	for _, inner := range []struct {
		name  string
		store *Store
	}{{"same pool", samePool}, {"other pool", otherPool}} {
		for _, outer := range nestedCalls(t) {
			for _, nested := range nestedCalls(t) {
				t.Run(inner.name+"/"+outer.name+"/"+nested.name, func(t *testing.T) {
					k := idempotency.Key{Scope: "tenant", Key: "identity-" + randomSuffix()}
					// Bounded so that the defect fails rather than hangs.
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					var nestedErr error
					_, outerErr := outer.call(ctx, s, k, func(ctx context.Context) (int, error) {
						_, nestedErr = nested.call(ctx, inner.store, k, func(context.Context) (int, error) {
							t.Error("the nested call ran its function")
							return 0, nil
						})
						return 0, nestedErr
					})
					if ctx.Err() != nil {
						t.Fatalf("the nested call waited for its context to end: %v", nestedErr)
					}
					if !errors.Is(nestedErr, idempotency.ErrNestedCall) || !errors.Is(outerErr, idempotency.ErrNestedCall) {
						t.Fatalf("nested: %v, outer: %v; want ErrNestedCall", nestedErr, outerErr)
					}
				})
			}
		}
	}
	// The same key on another table is not nested: it runs.
	k := idempotency.Key{Scope: "tenant", Key: "identity-elsewhere"}
	v, err := DoTx(context.Background(), s, k, "fp", func(ctx context.Context, _ pgx.Tx) (int, error) {
		return DoTx(ctx, elsewhere, k, "fp", func(context.Context, pgx.Tx) (int, error) { return 3, nil })
	})
	if err != nil || v != 3 {
		t.Fatalf("another table: %v, %v; want 3, nil", v, err)
	}
}

// TestStoreIdentityNamesTheTable: the identity is the table's, in the
// database at the address the pool connects to; the user's name stands
// for a database the configuration does not name, as on the server.
func TestStoreIdentityNamesTheTable(t *testing.T) {
	base := pgconn.Config{Host: "db.internal", Port: 5432, Database: "app", User: "svc"}
	id := identity(base, "public", "t")
	for name, cfg := range map[string]pgconn.Config{
		"host":     {Host: "db2.internal", Port: 5432, Database: "app", User: "svc"},
		"port":     {Host: "db.internal", Port: 5433, Database: "app", User: "svc"},
		"database": {Host: "db.internal", Port: 5432, Database: "app2", User: "svc"},
	} {
		if identity(cfg, "public", "t") == id {
			t.Errorf("another %s: same identity %q", name, id)
		}
	}
	if identity(base, "other", "t") == id || identity(base, "public", "t2") == id {
		t.Errorf("another schema or table: same identity %q", id)
	}
	if got := identity(pgconn.Config{Host: "db.internal", Port: 5432, User: "svc", Password: "x"}, "public", "t"); got != identity(pgconn.Config{Host: "db.internal", Port: 5432, Database: "svc", User: "other"}, "public", "t") {
		t.Errorf("no database named: %q; want the user's database", got)
	}
}
