package pgstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sadpath/sadpath/internal/testenv"
)

// testSchema is this test package's own schema on the shared server; every
// test makes its own table in it.
const testSchema = "sadpath_pgstore_test"

func randomSuffix() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// tracer counts statements (one statement is one round trip: pgx sends
// Parse/Bind/Execute/Sync together once a statement is prepared on the
// connection) and lets a test inject a fault when a statement starts or
// ends, chosen by a value on the statement's context.
type tracer struct {
	n atomic.Int64
}

type faultKey struct{}

// fault runs at a statement's start (before it is sent) or end.
type fault struct {
	onStart func(ctx context.Context, conn *pgx.Conn, sql string)
	onEnd   func(ctx context.Context, conn *pgx.Conn, sql string, err error)
}

func withFault(ctx context.Context, f *fault) context.Context {
	return context.WithValue(ctx, faultKey{}, f)
}

type sqlKey struct{}

func (t *tracer) TraceQueryStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	t.n.Add(1)
	if f, _ := ctx.Value(faultKey{}).(*fault); f != nil && f.onStart != nil {
		f.onStart(ctx, conn, data.SQL)
	}
	return context.WithValue(ctx, sqlKey{}, data.SQL)
}

func (t *tracer) TraceQueryEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryEndData) {
	if f, _ := ctx.Value(faultKey{}).(*fault); f != nil && f.onEnd != nil {
		sql, _ := ctx.Value(sqlKey{}).(string)
		f.onEnd(ctx, conn, sql, data.Err)
	}
}

// newPool returns a pool on the test server with a counting tracer and the
// given application_name (so fault tests can find their own backends),
// closed at cleanup.
func newPool(t testing.TB, app string, params map[string]string) (*pgxpool.Pool, *tracer) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(testenv.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	tr := &tracer{}
	cfg.ConnConfig.Tracer = tr
	cfg.MaxConns = 16
	cfg.ConnConfig.RuntimeParams["application_name"] = app
	for k, v := range params {
		cfg.ConnConfig.RuntimeParams[k] = v
	}
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	warm(t, p, int(cfg.MaxConns))
	return p, tr
}

// warm opens n connections up front, so that dialing and authentication
// are not part of the first concurrent calls (the suite's real-time leases
// are short).
func warm(t testing.TB, p *pgxpool.Pool, n int) {
	t.Helper()
	conns := make([]*pgxpool.Conn, 0, n)
	for range n {
		c, err := p.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Release()
	}
}

// newStore returns a migrated Store on a fresh table of the test schema,
// dropped at cleanup.
func newStore(t testing.TB, p *pgxpool.Pool, table string) *Store {
	t.Helper()
	s, err := New(Config{Pool: p, Schema: testSchema, Table: table})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = p.Exec(context.Background(), "DROP TABLE IF EXISTS "+s.qualified)
	})
	return s
}

func newTable() string { return "t_" + randomSuffix() }
