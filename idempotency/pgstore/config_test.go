package pgstore

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sadpath/sadpath/contract"
)

// lazyPool returns a pool that never dials until used.
func lazyPool(t *testing.T) *pgxpool.Pool {
	p, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func TestNewRejectsBadConfig(t *testing.T) {
	p := lazyPool(t)
	cases := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"nil pool", Config{}, "Config.Pool"},
		{"quoted schema", Config{Pool: p, Schema: `a"; drop table x; --`}, "Config.Schema"},
		{"upper-case table", Config{Pool: p, Table: "Records"}, "Config.Table"},
		{"digit first", Config{Pool: p, Table: "1t"}, "Config.Table"},
		{"long table", Config{Pool: p, Table: strings.Repeat("t", 49)}, "Config.Table"},
		{"negative max", Config{Pool: p, MaxResultBytes: -1}, "Config.MaxResultBytes"},
		{"max over PostgreSQL's field limit", Config{Pool: p, MaxResultBytes: 1 << 30}, "Config.MaxResultBytes"},
		{"negative batch", Config{Pool: p, CleanupBatch: -5}, "Config.CleanupBatch"},
		{"tiny lease", Config{Pool: p, TxLease: time.Microsecond}, "Config.TxLease"},
		{"retention under lease", Config{Pool: p, TxLease: time.Minute, TxRetention: time.Second}, "Config.TxRetention"},
		{"read-only transactions", Config{Pool: p, TxOptions: pgx.TxOptions{AccessMode: pgx.ReadOnly}}, "Config.TxOptions"},
		{"unknown isolation level", Config{Pool: p, TxOptions: pgx.TxOptions{IsoLevel: "serialisable"}}, "Config.TxOptions"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.cfg)
			if s != nil || !errors.Is(err, contract.ErrInvalid) {
				t.Fatalf("New = %v, %v; want KindInvalid", s, err)
			}
			e := contract.As(err)
			if e.Code != "config.invalid" || !strings.HasPrefix(e.Detail, tc.field+":") {
				t.Fatalf("code %q detail %q; want config.invalid naming %s", e.Code, e.Detail, tc.field)
			}
		})
	}
	s, err := New(Config{Pool: p})
	if err != nil || s.qualified != `"public"."sadpath_idempotency"` || s.batch != DefaultCleanupBatch ||
		s.txLease != 30*time.Second || s.txRetention != 24*time.Hour || s.maxBytes != DefaultMaxResultBytes {
		t.Fatalf("defaults: %+v, %v", s, err)
	}
}

func TestUnreachableServerIsUnavailable(t *testing.T) {
	s, _ := New(Config{Pool: lazyPool(t)})
	_, err := s.Get(context.Background(), keyOf("k"))
	if !errors.Is(err, contract.ErrUnavailable) || !contract.Retryable(err) {
		t.Fatalf("err = %v; want retryable KindUnavailable", err)
	}
}

func TestMapError(t *testing.T) {
	pg := func(code string) error { return &pgconn.PgError{Code: code, Message: "m"} }
	cases := []struct {
		err  error
		kind contract.Kind
		code string
	}{
		{context.Canceled, contract.KindCanceled, "pgstore.canceled"},
		{context.DeadlineExceeded, contract.KindTimeout, "pgstore.timeout"},
		{&net.OpError{Op: "read", Err: timeoutErr{}}, contract.KindTimeout, "pgstore.timeout"},
		{io.ErrUnexpectedEOF, contract.KindUnavailable, "pgstore.unavailable"},
		{pg("57014"), contract.KindTimeout, "pgstore.statement_timeout"},
		{pg("55P03"), contract.KindTimeout, "pgstore.lock_timeout"},
		{pg("25P04"), contract.KindTimeout, "pgstore.transaction_timeout"},
		{pg("40001"), contract.KindUnavailable, "pgstore.serialization_failure"},
		{pg("40P01"), contract.KindUnavailable, "pgstore.deadlock"},
		{pg("57P01"), contract.KindUnavailable, "pgstore.connection_lost"},
		{pg("08006"), contract.KindUnavailable, "pgstore.connection_lost"},
		{pg("53300"), contract.KindUnavailable, "pgstore.insufficient_resources"},
		{pg("42P01"), contract.KindInternal, "pgstore.server_error"},
		{pg("23505"), contract.KindInternal, "pgstore.server_error"},
		{errCorrupt, contract.KindInternal, "pgstore.corrupt"},
	}
	for _, tc := range cases {
		e := mapError("pgstore.test", tc.err)
		if e.Kind != tc.kind || e.Code != tc.code || !errors.Is(e, tc.err) {
			t.Errorf("mapError(%v) = %v; want kind %v code %s wrapping the cause", tc.err, e, tc.kind, tc.code)
		}
		if want := tc.kind == contract.KindTimeout || tc.kind == contract.KindUnavailable; contract.Retryable(e) != want {
			t.Errorf("mapError(%v): retryable %v, want %v", tc.err, contract.Retryable(e), want)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }
