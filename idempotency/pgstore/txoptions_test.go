package pgstore

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
)

// refusedTxOptions are transaction options New refuses, with the field its
// error names. TestRefusedTxOptionsBreakDoTx shows each one really breaks
// DoTx on a server.
var refusedTxOptions = []struct {
	name  string
	o     pgx.TxOptions
	field string
}{
	{"begin read only", pgx.TxOptions{BeginQuery: "BEGIN READ ONLY"}, "Config.TxOptions.BeginQuery"},
	{"start transaction read only", pgx.TxOptions{BeginQuery: "START TRANSACTION READ ONLY"}, "Config.TxOptions.BeginQuery"},
	{"read only after an isolation level", pgx.TxOptions{BeginQuery: "begin isolation level serializable,read\n\tonly"}, "Config.TxOptions.BeginQuery"},
	{"read only behind a comment", pgx.TxOptions{BeginQuery: "BEGIN READ /* why not */ ONLY"}, "Config.TxOptions.BeginQuery"},
	{"set transaction read only", pgx.TxOptions{BeginQuery: "BEGIN; SET TRANSACTION READ ONLY"}, "Config.TxOptions.BeginQuery"},
	{"set local transaction_read_only", pgx.TxOptions{BeginQuery: "BEGIN; SET LOCAL transaction_read_only = on"}, "Config.TxOptions.BeginQuery"},
	{"not a begin", pgx.TxOptions{BeginQuery: "SELECT 1"}, "Config.TxOptions.BeginQuery"},
	{"begin then commit", pgx.TxOptions{BeginQuery: "BEGIN; COMMIT"}, "Config.TxOptions.BeginQuery"},
	{"begin then rollback", pgx.TxOptions{BeginQuery: "begin;rollback"}, "Config.TxOptions.BeginQuery"},
	{"a commit that does not commit", pgx.TxOptions{CommitQuery: "SELECT 1"}, "Config.TxOptions.CommitQuery"},
	{"a commit that rolls back", pgx.TxOptions{CommitQuery: "ROLLBACK"}, "Config.TxOptions.CommitQuery"},
}

func TestNewRejectsBadTxOptions(t *testing.T) {
	p := lazyPool(t)
	cases := append([]struct {
		name  string
		o     pgx.TxOptions
		field string
	}{
		{"begin query with modes pgx ignores", pgx.TxOptions{IsoLevel: pgx.Serializable, BeginQuery: "BEGIN"}, "Config.TxOptions.BeginQuery"},
		{"unknown access mode", pgx.TxOptions{AccessMode: "readonly"}, "Config.TxOptions"},
		{"unknown deferrable mode", pgx.TxOptions{DeferrableMode: "deferable"}, "Config.TxOptions"},
		{"empty begin", pgx.TxOptions{BeginQuery: "  -- nothing\n"}, "Config.TxOptions.BeginQuery"},
	}, refusedTxOptions...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(Config{Pool: p, TxOptions: tc.o})
			if s != nil || !errors.Is(err, contract.ErrInvalid) {
				t.Fatalf("New = %v, %v; want KindInvalid", s, err)
			}
			e := contract.As(err)
			if e.Code != "config.invalid" || !strings.HasPrefix(e.Detail, tc.field+":") {
				t.Fatalf("code %q detail %q; want config.invalid naming %s", e.Code, e.Detail, tc.field)
			}
		})
	}
}

// acceptedTxOptions are accepted by New and work: DoTx's writes commit
// with the record, or not at all.
var acceptedTxOptions = []pgx.TxOptions{
	{AccessMode: pgx.ReadWrite},
	{IsoLevel: pgx.Serializable, DeferrableMode: pgx.Deferrable},
	{BeginQuery: "BEGIN"},
	{BeginQuery: "start transaction isolation level repeatable read, read write"},
	{BeginQuery: "BEGIN; SET LOCAL lock_timeout = '1s'; SET LOCAL application_name = 'not read only; commit'"},
	{BeginQuery: "/* a comment */ BEGIN -- read only? no\n ISOLATION LEVEL SERIALIZABLE"},
	{CommitQuery: "COMMIT"},
	{CommitQuery: "end transaction"},
}

func TestAcceptedTxOptionsWork(t *testing.T) {
	e := newTxEnv(t, idempotency.DefaultLease)
	for i, o := range acceptedTxOptions {
		s, err := New(Config{Pool: e.pool, Schema: testSchema, Table: e.s.table, TxOptions: o})
		if err != nil {
			t.Fatalf("%+v: %v", o, err)
		}
		key := "accepted/" + strings.Repeat("x", i)
		k := idempotency.Key{Scope: "tx", Key: key}
		// fn fails after its write: nothing stays.
		_, err = DoTx(context.Background(), s, k, "fp", func(ctx context.Context, tx pgx.Tx) (payment, error) {
			if _, err := e.insert(ctx, tx, key); err != nil {
				return payment{}, err
			}
			return payment{}, errors.New("declined")
		})
		if err == nil || err.Error() != "declined" || e.rows(t, key) != 0 {
			t.Fatalf("%+v: failed fn: %v, %d rows; want its error and no row", o, err, e.rows(t, key))
		}
		got, err := DoTx(context.Background(), s, k, "fp", func(ctx context.Context, tx pgx.Tx) (payment, error) {
			return e.insert(ctx, tx, key)
		})
		if err != nil || e.rows(t, key) != 1 || got.Row != e.rowID(t, key) {
			t.Fatalf("%+v: DoTx = %+v, %v with %d rows; want the one committed row", o, got, err, e.rows(t, key))
		}
		again, err := DoTx(context.Background(), s, k, "fp", func(ctx context.Context, tx pgx.Tx) (payment, error) {
			t.Errorf("%+v: fn ran on a completed key", o)
			return payment{}, nil
		})
		if err != nil || again != got {
			t.Fatalf("%+v: replay = %+v, %v", o, again, err)
		}
	}
}

// TestRefusedTxOptionsBreakDoTx runs DoTx with each option New refuses (set
// behind New's back) and shows the harm: it never succeeds, or a failed
// attempt leaves its write behind (so the retry repeats it), or a reported
// success left nothing.
func TestRefusedTxOptionsBreakDoTx(t *testing.T) {
	e := newTxEnv(t, idempotency.DefaultLease)
	for i, tc := range refusedTxOptions {
		s, err := New(Config{Pool: e.pool, Schema: testSchema, Table: e.s.table})
		if err != nil {
			t.Fatal(err)
		}
		s.txOptions = tc.o
		key := "refused/" + strings.Repeat("x", i)
		k := idempotency.Key{Scope: "tx", Key: key}
		_, ferr := DoTx(context.Background(), s, k, "fp", func(ctx context.Context, tx pgx.Tx) (payment, error) {
			if _, err := e.insert(ctx, tx, key); err != nil {
				return payment{}, err
			}
			return payment{}, errors.New("declined")
		})
		leftover := e.rows(t, key)
		_, err = DoTx(context.Background(), s, k, "fp", func(ctx context.Context, tx pgx.Tx) (payment, error) {
			return e.insert(ctx, tx, key)
		})
		rec, gerr := s.Get(context.Background(), k)
		switch {
		case leftover != 0:
			t.Logf("%s: a failed attempt left %d rows; after the retry %d", tc.name, leftover, e.rows(t, key))
		case err != nil:
			t.Logf("%s: DoTx never succeeds: %v", tc.name, err)
		case err == nil && (e.rows(t, key) == 0 || gerr != nil || rec.State != idempotency.StateCompleted):
			t.Logf("%s: DoTx reported success; rows %d, record %+v, %v", tc.name, e.rows(t, key), rec, gerr)
		default:
			t.Errorf("%s: DoTx worked (first %v, then %v, %d rows): New need not refuse it", tc.name, ferr, err, e.rows(t, key))
		}
	}
}
