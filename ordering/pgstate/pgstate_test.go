package pgstate_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/puddle/v2"
	"go.uber.org/goleak"

	"github.com/sadpath/sadpath/consumer"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/internal/testenv"
	"github.com/sadpath/sadpath/ordering"
	"github.com/sadpath/sadpath/ordering/pgstate"
	"github.com/sadpath/sadpath/ordering/statetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func pool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(context.Background(), testenv.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// table returns a fresh, migrated State on a table of its own (prefix
// pgstate_test_), dropped when the test ends.
func table(t *testing.T, p *pgxpool.Pool) (*pgstate.State, string) {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "pgstate_test_" + hex.EncodeToString(b[:])
	st, err := pgstate.New(pgstate.Config{DB: p, Table: name})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = p.Exec(context.Background(), "DROP TABLE IF EXISTS "+name+", "+name+"_retry") })
	return st, name
}

func TestConformance(t *testing.T) {
	p := pool(t)
	statetest.Run(t, func(t *testing.T) ordering.State {
		st, _ := table(t, p)
		return st
	})
}

func TestConfigInvalid(t *testing.T) {
	for _, tc := range []struct {
		cfg  pgstate.Config
		want string
	}{
		{pgstate.Config{}, "Config.DB: required"},
		// A nil pool or connection in the interface (pgxpool.New's result
		// when its error was ignored) panicked at the first Advance.
		{pgstate.Config{DB: (*pgxpool.Pool)(nil)}, "Config.DB: nil *pgxpool.Pool"},
		{pgstate.Config{DB: (*pgx.Conn)(nil)}, "Config.DB: nil *pgx.Conn"},
		{pgstate.Config{DB: &pgxpool.Pool{}, Table: "Robert'); DROP TABLE x;--"}, `Config.Table: "Robert'); DROP TABLE x;--" is not a lower-case identifier [a-z_][a-z0-9_]*`},
		{pgstate.Config{DB: &pgxpool.Pool{}, Table: "a.b.c"}, `Config.Table: want table or schema.table, got "a.b.c"`},
		{pgstate.Config{DB: &pgxpool.Pool{}, Table: "s." + strings.Repeat("t", 58)}, `Config.Table: "` + strings.Repeat("t", 58) +
			`" is 58 bytes long, more than 57: the redelivery table beside it ("_retry" appended) would exceed PostgreSQL's 63`},
	} {
		_, err := pgstate.New(tc.cfg)
		ce := contract.As(err)
		if !errors.Is(err, contract.ErrInvalid) || ce.Code != "config.invalid" || ce.Detail != tc.want {
			t.Fatalf("New(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
		// The field is also machine-readable, as in limit and breaker.
		if len(ce.Fields) != 1 || !strings.HasPrefix(tc.want, ce.Fields[0].Name+": ") {
			t.Fatalf("New(%+v): fields %v, want the field of %q", tc.cfg, ce.Fields, tc.want)
		}
	}
	if _, err := pgstate.New(pgstate.Config{DB: &pgxpool.Pool{}, Table: strings.Repeat("t", 57)}); err != nil {
		t.Fatalf("New with a 57-byte table name: %v", err)
	}
}

// TestRedeliveryKeptEffectRolledBack: when the function of
// AdvanceRedelivery fails, what it wrote through Tx is rolled back, the
// sequence is not stored, and the Redelivery it returned is recorded —
// also for a subject the table did not know, whose row then stays at 0.
// Once the sequence is stored, its redelivery row is deleted.
func TestRedeliveryKeptEffectRolledBack(t *testing.T) {
	ctx := context.Background()
	p := pool(t)
	st, name := table(t, p)
	effects := name + "_effects"
	if _, err := p.Exec(ctx, "CREATE TABLE "+effects+" (subject text, seq bigint)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = p.Exec(context.Background(), "DROP TABLE IF EXISTS "+effects) })
	count := func(q string) (n int) {
		t.Helper()
		if err := p.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	boom := errors.New("effect failed")
	at := time.Date(2030, 1, 1, 0, 0, 0, 1, time.UTC) // rounded up to the microsecond
	for i, subject := range []string{"known", "new"} {
		if subject == "known" {
			if err := st.Advance(ctx, subject, func(context.Context, uint64) (uint64, error) { return 1, nil }); err != nil {
				t.Fatal(err)
			}
		}
		seq := uint64(2 - i) // the next one: 2 on "known", 1 on "new"
		err := st.AdvanceRedelivery(ctx, subject, func(ctx context.Context, last uint64, _ func(context.Context, uint64) (time.Time, error)) (uint64, ordering.Redelivery, error) {
			tx, _ := pgstate.Tx(ctx)
			if _, err := tx.Exec(ctx, "INSERT INTO "+effects+" VALUES ($1, $2)", subject, int64(seq)); err != nil {
				return 0, ordering.Redelivery{}, err
			}
			_, err := tx.Exec(ctx, "SELECT 1/0") // the transaction is aborted: only a rollback works
			if err == nil {
				t.Fatal("1/0 succeeded")
			}
			return seq, ordering.Redelivery{Sequence: seq, At: at}, boom
		})
		if err != boom {
			t.Fatalf("%s: AdvanceRedelivery = %v, want the fn's error unchanged", subject, err)
		}
		if last := mustLast(t, st, subject); last != seq-1 {
			t.Fatalf("%s: Last = %d, want %d", subject, last, seq-1)
		}
		var due time.Time
		err = st.AdvanceRedelivery(ctx, subject, func(ctx context.Context, last uint64, d func(context.Context, uint64) (time.Time, error)) (uint64, ordering.Redelivery, error) {
			var err error
			due, err = d(ctx, seq)
			return last, ordering.Redelivery{}, err
		})
		if err != nil || !due.Equal(at.Truncate(time.Microsecond).Add(time.Microsecond)) {
			t.Fatalf("%s: due = %v, %v; want %v rounded up to the microsecond", subject, due, err, at)
		}
	}
	if n := count("SELECT count(*) FROM " + effects); n != 0 {
		t.Fatalf("%d effects committed, want none: the failed fn's writes are rolled back", n)
	}
	if n := count("SELECT count(*) FROM " + name + " WHERE subject = 'new'::bytea AND last = 0"); n != 1 {
		t.Fatalf("%d rows at 0 for the new subject, want 1 (its redelivery recorded beside it)", n)
	}
	for _, subject := range []string{"known", "new"} {
		err := st.AdvanceRedelivery(ctx, subject, func(_ context.Context, last uint64, _ func(context.Context, uint64) (time.Time, error)) (uint64, ordering.Redelivery, error) {
			return last + 1, ordering.Redelivery{}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := count("SELECT count(*) FROM " + name + "_retry"); n != 0 {
		t.Fatalf("%d redelivery rows left once their sequences are stored, want none", n)
	}
}

// TestEffectAndSequenceCommitTogether writes the caller's effect through
// pgstate.Tx: when the apply fails, or the transaction cannot commit,
// neither the effect nor the sequence is stored.
func TestEffectAndSequenceCommitTogether(t *testing.T) {
	ctx := context.Background()
	p := pool(t)
	st, name := table(t, p)
	effects := name + "_effects"
	if _, err := p.Exec(ctx, "CREATE TABLE "+effects+" (subject text, seq bigint, PRIMARY KEY (subject, seq))"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = p.Exec(context.Background(), "DROP TABLE IF EXISTS "+effects) })
	g, err := ordering.New(ordering.Config{State: st})
	if err != nil {
		t.Fatal(err)
	}
	var failNext atomic.Bool
	apply := func(ctx context.Context, e *contract.Event) error {
		tx, ok := pgstate.Tx(ctx)
		if !ok {
			return errors.New("no transaction on the context")
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+effects+" VALUES ($1, $2)", e.Subject, int64(e.Sequence)); err != nil {
			return err
		}
		if failNext.Swap(false) {
			return contract.New(contract.KindUnavailable, "ledger", "injected failure after the write")
		}
		return nil
	}
	count := func() (n int) {
		if err := p.QueryRow(ctx, "SELECT count(*) FROM "+effects).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	ev := func(seq uint64) *contract.Event {
		return &contract.Event{ID: fmt.Sprint(seq), Source: "/t", Subject: "acct", Sequence: seq}
	}
	if _, err := g.Process(ctx, ev(1), apply, nil); err != nil {
		t.Fatal(err)
	}
	failNext.Store(true)
	if _, err := g.Process(ctx, ev(2), apply, nil); !errors.Is(err, contract.ErrUnavailable) {
		t.Fatalf("failing apply: %v", err)
	}
	if n, last := count(), mustLast(t, st, "acct"); n != 1 || last != 1 {
		t.Fatalf("after a failed apply: %d effects, last %d; want 1, 1 (rolled back together)", n, last)
	}
	// The context is canceled after the effect is written: the commit fails
	// and nothing of event 2 is stored.
	cctx, cancel := context.WithCancel(ctx)
	_, err = g.Process(cctx, ev(2), func(ctx context.Context, e *contract.Event) error {
		err := apply(ctx, e)
		cancel()
		return err
	}, nil)
	if err == nil {
		t.Fatal("commit after cancel succeeded")
	}
	if n, last := count(), mustLast(t, st, "acct"); n != 1 || last != 1 {
		t.Fatalf("after a failed commit: %d effects, last %d; want 1, 1", n, last)
	}
	if _, err := g.Process(ctx, ev(2), apply, nil); err != nil {
		t.Fatal(err)
	}
	if n, last := count(), mustLast(t, st, "acct"); n != 2 || last != 2 {
		t.Fatalf("after redelivery: %d effects, last %d; want 2, 2", n, last)
	}
}

// TestTwoProcessesExactlyOnce runs two Guards (two processes) over the same
// table, each receiving every event twice in its own order: each event's
// effect is written exactly once (the primary key would reject a second
// write, and the count proves none was attempted and lost).
func TestTwoProcessesExactlyOnce(t *testing.T) {
	ctx := context.Background()
	p := pool(t)
	_, name := table(t, p)
	effects := name + "_effects"
	if _, err := p.Exec(ctx, "CREATE TABLE "+effects+" (subject text, seq bigint, PRIMARY KEY (subject, seq))"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = p.Exec(context.Background(), "DROP TABLE IF EXISTS "+effects) })
	const subjects, events = 5, 20
	var applied atomic.Int64
	apply := func(ctx context.Context, e *contract.Event) error {
		tx, _ := pgstate.Tx(ctx)
		_, err := tx.Exec(ctx, "INSERT INTO "+effects+" VALUES ($1, $2)", e.Subject, int64(e.Sequence))
		if err == nil {
			applied.Add(1)
		}
		return err
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for proc := 0; proc < 2; proc++ {
		// Each process has its own Guard (and hold buffer) over the shared state.
		st2, err := pgstate.New(pgstate.Config{DB: p, Table: name})
		if err != nil {
			t.Fatal(err)
		}
		g, err := ordering.New(ordering.Config{State: st2})
		if err != nil {
			t.Fatal(err)
		}
		for s := 0; s < subjects; s++ {
			wg.Add(1)
			go func(proc, s int) {
				defer wg.Done()
				subject := fmt.Sprintf("acct_%d", s)
				// Every event twice, racing the other process.
				for seq := uint64(1); seq <= events; seq++ {
					for copy := 0; copy < 2; copy++ {
						e := &contract.Event{ID: fmt.Sprint(seq), Source: "/t", Subject: subject, Sequence: seq}
						if _, err := g.Process(ctx, e, apply, nil); err != nil && !errors.Is(err, ordering.ErrGap) {
							errs <- err
							return
						}
					}
				}
			}(proc, s)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var n int
	if err := p.QueryRow(ctx, "SELECT count(*) FROM "+effects).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != subjects*events || applied.Load() != subjects*events {
		t.Fatalf("%d effects stored, %d applies; want %d each: exactly once", n, applied.Load(), subjects*events)
	}
}

func TestLastOnMissingTableIsAnError(t *testing.T) {
	p := pool(t)
	st, err := pgstate.New(pgstate.Config{DB: p, Table: "pgstate_test_does_not_exist"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.Last(context.Background(), "x")
	if err == nil || contract.As(err) == nil || errors.Is(err, contract.ErrInvalid) {
		t.Fatalf("Last on a missing table: %v, want a contract error", err)
	}
}

func TestSequenceAboveBigintRefused(t *testing.T) {
	p := pool(t)
	st, _ := table(t, p)
	err := st.Advance(context.Background(), "s", func(context.Context, uint64) (uint64, error) { return 1 << 63, nil })
	if !errors.Is(err, contract.ErrInvalid) {
		t.Fatalf("sequence 2^63: %v, want KindInvalid", err)
	}
}

func mustLast(t *testing.T, st *pgstate.State, subject string) uint64 {
	t.Helper()
	last, err := st.Last(context.Background(), subject)
	if err != nil {
		t.Fatal(err)
	}
	return last
}

// TestHoldDrainsThroughPostgres holds gap events and releases them in
// order, each in its own transaction, once the missing one arrives.
func TestHoldDrainsThroughPostgres(t *testing.T) {
	ctx := context.Background()
	p := pool(t)
	st, _ := table(t, p)
	g, err := ordering.New(ordering.Config{State: st, Gap: ordering.GapHold})
	if err != nil {
		t.Fatal(err)
	}
	var applied []uint64
	apply := func(ctx context.Context, e *contract.Event) error {
		if _, ok := pgstate.Tx(ctx); !ok {
			return errors.New("held event applied outside the transaction")
		}
		applied = append(applied, e.Sequence)
		return nil
	}
	var settled []string
	settle := func(_ context.Context, e *contract.Event, o ordering.Outcome, err error) {
		settled = append(settled, fmt.Sprintf("%d=%s/%v", e.Sequence, o.Decision, err))
	}
	for _, seq := range []uint64{3, 2} {
		o, err := g.Process(ctx, &contract.Event{ID: fmt.Sprint(seq), Source: "/t", Subject: "acct", Sequence: seq}, apply, settle)
		if err != nil || !o.Held {
			t.Fatalf("seq %d: %+v %v, want held", seq, o, err)
		}
	}
	if _, err := g.Process(ctx, &contract.Event{ID: "1", Source: "/t", Subject: "acct", Sequence: 1}, apply, settle); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(applied) != "[1 2 3]" || fmt.Sprint(settled) != "[2=apply/<nil> 3=apply/<nil>]" {
		t.Fatalf("applied %v settled %v", applied, settled)
	}
	if last := mustLast(t, st, "acct"); last != 3 {
		t.Fatalf("last %d, want 3", last)
	}
}

// failingCommit opens transactions on a pool; while fail is set, their
// COMMIT fails as with a connection lost at that moment (after a rollback).
type failingCommit struct {
	p    *pgxpool.Pool
	fail atomic.Bool
}

func (f *failingCommit) Begin(ctx context.Context) (pgx.Tx, error) {
	tx, err := f.p.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return &failingCommitTx{Tx: tx, f: f}, nil
}

type failingCommitTx struct {
	pgx.Tx
	f *failingCommit
}

func (t *failingCommitTx) Commit(ctx context.Context) error {
	if t.f.fail.Load() {
		_ = t.Tx.Rollback(ctx)
		return errors.New("conn closed")
	}
	return t.Tx.Commit(ctx)
}

// TestHeldGapSurvivesFailedCommit: the transaction in which the Guard held
// a gap event fails to commit. It stored nothing (a gap writes no
// sequence), so the event stays held and Process says so with no error:
// the SettleFunc is the delivery's only answer, called once when the gap
// fills.
func TestHeldGapSurvivesFailedCommit(t *testing.T) {
	ctx := context.Background()
	p := pool(t)
	_, name := table(t, p)
	fc := &failingCommit{p: p}
	st, err := pgstate.New(pgstate.Config{DB: fc, Table: name})
	if err != nil {
		t.Fatal(err)
	}
	g, err := ordering.New(ordering.Config{State: st, Gap: ordering.GapHold})
	if err != nil {
		t.Fatal(err)
	}
	var applied []uint64
	apply := func(_ context.Context, e *contract.Event) error {
		applied = append(applied, e.Sequence)
		return nil
	}
	var settled []string
	settle := func(_ context.Context, e *contract.Event, o ordering.Outcome, err error) {
		settled = append(settled, fmt.Sprintf("%d=%s/%v", e.Sequence, o.Decision, err))
	}
	fc.fail.Store(true)
	o, err := g.Process(ctx, &contract.Event{ID: "2", Source: "/t", Subject: "acct", Sequence: 2}, apply, settle)
	fc.fail.Store(false)
	if err != nil || !o.Held {
		t.Fatalf("Process(2) with a failed commit: %+v %v, want held and no error", o, err)
	}
	if _, err := g.Process(ctx, &contract.Event{ID: "1", Source: "/t", Subject: "acct", Sequence: 1}, apply, settle); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(applied) != "[1 2]" || fmt.Sprint(settled) != "[2=apply/<nil>]" || g.Held() != 0 {
		t.Fatalf("applied %v settled %v held %d; want 2 applied and settled once", applied, settled, g.Held())
	}
	if last := mustLast(t, st, "acct"); last != 2 {
		t.Fatalf("last %d, want 2", last)
	}
}

// TestConsumerHeldGapFailedCommitDecidedOnce: through the consumer, the
// delivery whose hold transaction failed to commit is answered Hold, then
// settled once with Ack when the gap fills; it is not also dead-lettered.
func TestConsumerHeldGapFailedCommitDecidedOnce(t *testing.T) {
	ctx := context.Background()
	p := pool(t)
	_, name := table(t, p)
	fc := &failingCommit{p: p}
	st, err := pgstate.New(pgstate.Config{DB: fc, Table: name})
	if err != nil {
		t.Fatal(err)
	}
	g, err := ordering.New(ordering.Config{State: st, Gap: ordering.GapHold})
	if err != nil {
		t.Fatal(err)
	}
	var applied, dead []uint64
	c, err := consumer.New(consumer.Config{
		Guard:       g,
		MaxAttempts: 1,
		Handler: func(_ context.Context, e *contract.Event) error {
			applied = append(applied, e.Sequence)
			return nil
		},
		DeadLetter: func(_ context.Context, _ consumer.Delivery, e *contract.Event, _ error) {
			dead = append(dead, e.Sequence)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	data := func(seq uint64) []byte {
		return []byte(fmt.Sprintf(`{"specversion":"1.0","id":"e%d","source":"/t","type":"t","subject":"acct","sequence":%d}`, seq, seq))
	}
	var settles []string
	settle := func(r consumer.Result) { settles = append(settles, r.Action.String()) }
	fc.fail.Store(true)
	r2 := c.Handle(ctx, consumer.Delivery{Data: data(2), Attempt: 1, Settle: settle})
	fc.fail.Store(false)
	r1 := c.Handle(ctx, consumer.Delivery{Data: data(1), Attempt: 1, Settle: settle})
	if r2.Action != consumer.Hold || r1.Action != consumer.Ack {
		t.Fatalf("Handle(2) = %s, Handle(1) = %s; want hold, ack", r2.Action, r1.Action)
	}
	if fmt.Sprint(settles) != "[ack]" || fmt.Sprint(applied) != "[1 2]" || len(dead) != 0 {
		t.Fatalf("settles %v applied %v dead-lettered %v; want 2 settled once (ack), applied once, not dead-lettered", settles, applied, dead)
	}
}

// TestSequenceAboveBigintRefusedUpFront: State is an ordering.BoundedState,
// so the Guard refuses an event above math.MaxInt64 before running its
// apply (whose effect would be rolled back) or holding it (it could never
// be skipped to): a permanent ErrInvalidEvent, nothing held.
func TestSequenceAboveBigintRefusedUpFront(t *testing.T) {
	ctx := context.Background()
	p := pool(t)
	st, _ := table(t, p)
	if st.MaxSequence() != math.MaxInt64 {
		t.Fatalf("MaxSequence = %d, want math.MaxInt64", st.MaxSequence())
	}
	g, err := ordering.New(ordering.Config{State: st, Gap: ordering.GapHold})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Advance(ctx, "full", func(context.Context, uint64) (uint64, error) { return math.MaxInt64, nil }); err != nil {
		t.Fatal(err)
	}
	applies := 0
	apply := func(context.Context, *contract.Event) error { applies++; return nil }
	settles := 0
	settle := func(context.Context, *contract.Event, ordering.Outcome, error) { settles++ }
	for _, e := range []*contract.Event{
		{ID: "next", Source: "/t", Subject: "full", Sequence: math.MaxInt64 + 1}, // would be next
		{ID: "gap", Source: "/t", Subject: "acct", Sequence: math.MaxInt64 + 2},  // would be held
	} {
		o, err := g.Process(ctx, e, apply, settle)
		if !errors.Is(err, ordering.ErrInvalidEvent) || contract.Retryable(err) || o.Held {
			t.Fatalf("Process(%s/%d): %+v %v, want a permanent ErrInvalidEvent", e.Subject, e.Sequence, o, err)
		}
	}
	if applies != 0 || settles != 0 || g.Held() != 0 {
		t.Fatalf("%d applies, %d settles, %d held; want none", applies, settles, g.Held())
	}
}

// stepClock is an ordering.Clock moved by hand.
type stepClock struct{ now atomic.Int64 }

func (c *stepClock) Now() time.Time { return time.Unix(0, c.now.Load()) }

// TestTimeoutSkipAboveBigintSettlesHeldEvents: behind a wrapper that hides
// MaxSequence, the Guard holds an event above math.MaxInt64; the timeout
// skip to just before it is refused by PostgreSQL's range for good, so the
// held event is settled with that permanent error (the consumer
// dead-letters it) instead of failing every sweep and staying held forever.
func TestTimeoutSkipAboveBigintSettlesHeldEvents(t *testing.T) {
	ctx := context.Background()
	p := pool(t)
	st, _ := table(t, p)
	clk := &stepClock{}
	g, err := ordering.New(ordering.Config{State: struct{ ordering.State }{st}, Gap: ordering.GapHold, HoldTimeout: time.Second, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	apply := func(context.Context, *contract.Event) error { return nil }
	var settled []error
	settle := func(_ context.Context, _ *contract.Event, _ ordering.Outcome, err error) {
		settled = append(settled, err)
	}
	o, err := g.Process(ctx, &contract.Event{ID: "x", Source: "/t", Subject: "acct", Sequence: math.MaxInt64 + 2}, apply, settle)
	if err != nil || !o.Held {
		t.Fatalf("%+v %v, want held (the Guard does not know the bound)", o, err)
	}
	clk.now.Add(int64(time.Second))
	if n := g.Sweep(ctx); n != 1 || g.Held() != 0 {
		t.Fatalf("Sweep = %d, held %d; want the held event settled", n, g.Held())
	}
	if len(settled) != 1 || !errors.Is(settled[0], contract.ErrInvalid) || contract.As(settled[0]).Code != "ordering.sequence_range" {
		t.Fatalf("settled with %v, want the State's ordering.sequence_range error", settled)
	}
}

// failingBegin is a Beginner whose transactions never start: Begin returns
// err, as a pool does when it cannot get a connection.
type failingBegin struct{ err error }

func (f failingBegin) Begin(context.Context) (pgx.Tx, error) { return nil, f.err }

// TestErrorsClassified: the SQLSTATEs of a transient server condition (the
// list idempotency/pgstore uses) and connections lost on the way are
// retryable; a statement timeout is a timeout; a missing table or a dropped
// database are not retryable.
func TestErrorsClassified(t *testing.T) {
	for _, tc := range []struct {
		code string // a SQLSTATE, or the name of err
		err  error  // nil: a *pgconn.PgError with code
		want contract.Kind
	}{
		{code: "08006", want: contract.KindUnavailable}, // connection_failure
		{code: "08001", want: contract.KindUnavailable}, // sqlclient_unable_to_establish_sqlconnection
		{code: "53300", want: contract.KindUnavailable}, // too_many_connections
		{code: "53200", want: contract.KindUnavailable}, // out_of_memory
		{code: "53100", want: contract.KindUnavailable}, // disk_full
		{code: "57P01", want: contract.KindUnavailable}, // admin_shutdown
		{code: "57P02", want: contract.KindUnavailable}, // crash_shutdown
		{code: "57P03", want: contract.KindUnavailable}, // cannot_connect_now (starting up)
		{code: "57P05", want: contract.KindUnavailable}, // idle_session_timeout
		{code: "25P03", want: contract.KindUnavailable}, // idle_in_transaction_session_timeout
		{code: "25006", want: contract.KindUnavailable}, // read_only_sql_transaction (after a failover)
		{code: "40001", want: contract.KindUnavailable}, // serialization_failure
		{code: "40P01", want: contract.KindUnavailable}, // deadlock_detected
		{code: "55P03", want: contract.KindUnavailable}, // lock_not_available: the subject's row, before the ApplyFunc
		{code: "57014", want: contract.KindTimeout},     // query_canceled (statement_timeout)
		{code: "25P04", want: contract.KindTimeout},     // transaction_timeout (PostgreSQL 17): rolled back, as pgstore
		{code: "57P04", want: contract.KindInternal},    // database_dropped
		{code: "42P01", want: contract.KindInternal},    // undefined_table: call Migrate
		{code: "23505", want: contract.KindInternal},    // unique_violation
		{code: "reset", err: &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, want: contract.KindUnavailable},
		{code: "eof", err: fmt.Errorf("receive message: %w", io.ErrUnexpectedEOF), want: contract.KindUnavailable},
		{code: "deadline", err: fmt.Errorf("begin: %w", context.DeadlineExceeded), want: contract.KindTimeout},
		{code: "unknown", err: errors.New("scan: cannot convert"), want: contract.KindInternal},
	} {
		err := tc.err
		if err == nil {
			err = &pgconn.PgError{Severity: "FATAL", Code: tc.code, Message: "test"}
		}
		st, nerr := pgstate.New(pgstate.Config{DB: failingBegin{err: err}})
		if nerr != nil {
			t.Fatal(nerr)
		}
		got := st.Advance(context.Background(), "s", func(context.Context, uint64) (uint64, error) {
			t.Fatalf("%s: fn ran", tc.code)
			return 0, nil
		})
		if contract.KindOf(got) != tc.want || !errors.Is(got, err) {
			t.Errorf("Advance, %s: %v (kind %s), want kind %s wrapping the cause", tc.code, got, contract.KindOf(got), tc.want)
		}
		if _, got := st.Last(context.Background(), "s"); contract.KindOf(got) != tc.want {
			t.Errorf("Last, %s: kind %s, want %s", tc.code, contract.KindOf(got), tc.want)
		}
	}
}

// TestConnectionRefusedIsRetryable: a server that refuses new connections
// for a while (FATAL "too many connections", SQLSTATE 53300, here through
// a role with CONNECTION LIMIT 0; "the database system is starting up",
// 57P03, takes the same path) is an ordinary outage: the State's error is
// retryable, and the consumer retries the event rather than dead-letter it.
func TestConnectionRefusedIsRetryable(t *testing.T) {
	ctx := context.Background()
	admin := pool(t)
	_, name := table(t, admin)
	var b [6]byte
	_, _ = rand.Read(b[:])
	role := "pgstate_test_limited_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(ctx, "CREATE ROLE "+role+" LOGIN CONNECTION LIMIT 0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(context.Background(), "DROP ROLE IF EXISTS "+role); err != nil {
			t.Errorf("drop role %s: %v", role, err)
		}
	})

	cfg, err := pgxpool.ParseConfig(testenv.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.User = role
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	st, err := pgstate.New(pgstate.Config{DB: p, Table: name})
	if err != nil {
		t.Fatal(err)
	}

	err = st.Advance(ctx, "acct", func(context.Context, uint64) (uint64, error) {
		t.Fatal("fn ran without a connection")
		return 0, nil
	})
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "53300" {
		t.Fatalf("Advance as a role with CONNECTION LIMIT 0: %v, want the server's 53300", err)
	}
	if !errors.Is(err, contract.ErrUnavailable) || !contract.Retryable(err) {
		t.Fatalf("Advance while the server refuses connections: %v (kind %s), want a retryable KindUnavailable", err, contract.KindOf(err))
	}
	if _, err := st.Last(ctx, "acct"); !errors.Is(err, contract.ErrUnavailable) {
		t.Fatalf("Last while the server refuses connections: %v, want KindUnavailable", err)
	}

	g, err := ordering.New(ordering.Config{State: st})
	if err != nil {
		t.Fatal(err)
	}
	var ran, dead int
	c, err := consumer.New(consumer.Config{
		Guard:      g,
		Handler:    func(context.Context, *contract.Event) error { ran++; return nil },
		DeadLetter: func(context.Context, consumer.Delivery, *contract.Event, error) { dead++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte(`{"specversion":"1.0","id":"e1","source":"/ledger","type":"ledger.credited","subject":"acct","sequence":1}`)
	r := c.Handle(ctx, consumer.Delivery{Data: data, Attempt: 1})
	if r.Action != consumer.Retry || !contract.Retryable(r.Err) || ran != 0 || dead != 0 {
		t.Fatalf("Handle while PostgreSQL refuses connections = %s (%q, %v), handler ran %d, dead letters %d; want a retry", r.Action, r.Reason, r.Err, ran, dead)
	}
}

// TestClosedPoolIsRetryable: a pool closed under a running consumer (a
// shutdown closing the database first) refuses every transaction. Nothing
// ran and the event is not at fault: the error is retryable, and the
// consumer retries the event (another instance gets the redelivery) rather
// than dead-letter it.
func TestClosedPoolIsRetryable(t *testing.T) {
	ctx := context.Background()
	_, name := table(t, pool(t))
	p, err := pgxpool.New(ctx, testenv.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	st, err := pgstate.New(pgstate.Config{DB: p, Table: name})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	err = st.Advance(ctx, "acct", func(context.Context, uint64) (uint64, error) {
		t.Fatal("fn ran on a closed pool")
		return 0, nil
	})
	if !errors.Is(err, puddle.ErrClosedPool) || !errors.Is(err, contract.ErrUnavailable) || !contract.Retryable(err) {
		t.Fatalf("Advance on a closed pool: %v (kind %s), want a retryable KindUnavailable wrapping puddle.ErrClosedPool", err, contract.KindOf(err))
	}
	if _, err := st.Last(ctx, "acct"); !errors.Is(err, contract.ErrUnavailable) {
		t.Fatalf("Last on a closed pool: %v (kind %s), want KindUnavailable", err, contract.KindOf(err))
	}

	g, err := ordering.New(ordering.Config{State: st})
	if err != nil {
		t.Fatal(err)
	}
	var ran, dead int
	c, err := consumer.New(consumer.Config{
		Guard:      g,
		Handler:    func(context.Context, *contract.Event) error { ran++; return nil },
		DeadLetter: func(context.Context, consumer.Delivery, *contract.Event, error) { dead++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte(`{"specversion":"1.0","id":"e1","source":"/ledger","type":"ledger.credited","subject":"acct","sequence":1}`)
	if r := c.Handle(ctx, consumer.Delivery{Data: data, Attempt: 1}); r.Action != consumer.Retry || ran != 0 || dead != 0 {
		t.Fatalf("Handle on a closed pool = %s (%q, %v), handler ran %d, dead letters %d; want a retry", r.Action, r.Reason, r.Err, ran, dead)
	}
}

// TestReadOnlyServerIsRetryable: after a failover the pool may still reach
// the old primary, now a read-only standby, whose answer to a write is
// 25006 read_only_sql_transaction. The same write succeeds once the pool
// reaches the new primary: the error is retryable.
func TestReadOnlyServerIsRetryable(t *testing.T) {
	ctx := context.Background()
	admin := pool(t)
	_, name := table(t, admin)
	cfg, err := pgxpool.ParseConfig(testenv.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	st, err := pgstate.New(pgstate.Config{DB: p, Table: name})
	if err != nil {
		t.Fatal(err)
	}
	err = st.Advance(ctx, "acct", func(context.Context, uint64) (uint64, error) { return 1, nil })
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "25006" || !errors.Is(err, contract.ErrUnavailable) {
		t.Fatalf("Advance on a read-only server: %v (kind %s), want 25006 as KindUnavailable", err, contract.KindOf(err))
	}
}

// TestConcurrentMigrate: replicas of a service starting together each call
// Migrate on the same new table. CREATE TABLE IF NOT EXISTS alone is not
// safe against itself (two sessions both find no table and one fails on
// the catalog's unique index): every Migrate must succeed.
func TestConcurrentMigrate(t *testing.T) {
	p := pool(t)
	for round := 0; round < 5; round++ {
		var b [6]byte
		_, _ = rand.Read(b[:])
		name := "pgstate_test_" + hex.EncodeToString(b[:])
		t.Cleanup(func() { _, _ = p.Exec(context.Background(), "DROP TABLE IF EXISTS "+name+", "+name+"_retry") })
		const replicas = 8
		start := make(chan struct{})
		errs := make(chan error, replicas)
		var wg sync.WaitGroup
		for i := 0; i < replicas; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, err := pgstate.New(pgstate.Config{DB: p, Table: name})
				if err == nil {
					<-start
					err = st.Migrate(context.Background())
				}
				errs <- err
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: concurrent Migrate: %v", round, err)
			}
		}
	}
}
