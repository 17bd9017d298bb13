package pgstate_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sadpath/sadpath/internal/testenv"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/ordering"
	"github.com/sadpath/sadpath/ordering/pgstate"
)

// sharedTable returns the name of a migrated table of its own (prefix
// pgstate_shared_), dropped with its table of redeliveries when the test
// ends.
func sharedTable(t *testing.T, p *pgxpool.Pool) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "pgstate_shared_" + hex.EncodeToString(b[:])
	st, err := pgstate.New(pgstate.Config{DB: p, Table: name})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = p.Exec(context.Background(), "DROP TABLE IF EXISTS "+name+", "+name+"_retry")
	})
	return name
}

// twoProcesses is two consumer instances of one subject space: two Guards,
// each with its own hold buffer and its own pgstate.State (and pool) over
// one table, under GapHold with TimeoutSkip, on one clock moved by hand.
type twoProcesses struct {
	name    string
	admin   *pgxpool.Pool
	stA     *pgstate.State
	clk     *stepClock
	a, b    *ordering.Guard
	mu      sync.Mutex
	applied []uint64
	settled []string

	beforeCommitB atomic.Pointer[func()]
}

// hookedCommit opens process B's transactions, which call
// tp.beforeCommitB before they commit.
type hookedCommit struct {
	p  *pgxpool.Pool
	tp *twoProcesses
}

func (h hookedCommit) Begin(ctx context.Context) (pgx.Tx, error) {
	tx, err := h.p.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return hookedTx{Tx: tx, tp: h.tp}, nil
}

type hookedTx struct {
	pgx.Tx
	tp *twoProcesses
}

func (t hookedTx) Commit(ctx context.Context) error {
	if f := t.tp.beforeCommitB.Load(); f != nil {
		(*f)()
	}
	return t.Tx.Commit(ctx)
}

const sharedHold = 30 * time.Second

// newTwoProcesses starts the two processes; poolA, when not nil, is
// process A's pool. B's transactions call tp.beforeCommitB, when set,
// before they commit.
func newTwoProcesses(t *testing.T, poolA *pgxpool.Pool) *twoProcesses {
	t.Helper()
	tp := &twoProcesses{admin: pool(t), clk: &stepClock{}}
	tp.name = sharedTable(t, tp.admin)
	tp.clk.now.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	if poolA == nil {
		poolA = pool(t)
	}
	for _, g := range []struct {
		p pgstate.Beginner
		g **ordering.Guard
	}{{poolA, &tp.a}, {hookedCommit{pool(t), tp}, &tp.b}} {
		st, err := pgstate.New(pgstate.Config{DB: g.p, Table: tp.name})
		if err != nil {
			t.Fatal(err)
		}
		if tp.stA == nil {
			tp.stA = st
		}
		*g.g, err = ordering.New(ordering.Config{State: st, Gap: ordering.GapHold, OnTimeout: ordering.TimeoutSkip,
			HoldTimeout: sharedHold, Clock: tp.clk})
		if err != nil {
			t.Fatal(err)
		}
	}
	return tp
}

func (tp *twoProcesses) advance(d time.Duration) { tp.clk.now.Add(int64(d)) }

func (tp *twoProcesses) apply(_ context.Context, e *contract.Event) error {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	tp.applied = append(tp.applied, e.Sequence)
	return nil
}

func (tp *twoProcesses) settle(_ context.Context, e *contract.Event, o ordering.Outcome, err error) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	tp.settled = append(tp.settled, fmt.Sprintf("%d=%s/%v", e.Sequence, o.Decision, err))
}

func ev(seq uint64) *contract.Event {
	return &contract.Event{ID: fmt.Sprint("e", seq), Source: "/t", Type: "t", Subject: "acct", Sequence: seq}
}

var errInjected = contract.New(contract.KindUnavailable, "ledger", "injected failure")

// TestSharedStateTimeoutSkipHonoursFailureElsewhere: process A holds 3
// behind the missing 2; process B receives 2, whose apply fails (to be
// redelivered) 25s after A held 3. 35s after A held 3 — 10s after the
// failure — A's sweep must not skip 2: B's failure, recorded in the
// shared table, restarted the wait. B's redelivery of 2 is applied, not
// dropped as stale.
func TestSharedStateTimeoutSkipHonoursFailureElsewhere(t *testing.T) {
	ctx := context.Background()
	tp := newTwoProcesses(t, nil)
	if o, err := tp.a.Process(ctx, ev(1), tp.apply, tp.settle); err != nil || o.Decision != ordering.Apply {
		t.Fatalf("A: Process(1) = %+v, %v", o, err)
	}
	if o, err := tp.a.Process(ctx, ev(3), tp.apply, tp.settle); err != nil || !o.Held {
		t.Fatalf("A: Process(3) = %+v, %v; want held", o, err)
	}
	tp.advance(25 * time.Second)
	failing := func(context.Context, *contract.Event) error { return errInjected }
	if o, err := tp.b.Process(ctx, ev(2), failing, tp.settle); !errors.Is(err, errInjected) || o.Decision != ordering.Apply {
		t.Fatalf("B: Process(2) with a failing apply = %+v, %v; want the apply's error", o, err)
	}
	tp.advance(10 * time.Second)
	if n := tp.a.Sweep(ctx); n != 0 {
		t.Fatalf("A: Sweep settled %d subjects 10s after 2 failed in B; want none: 2 is about to be redelivered", n)
	}
	o, err := tp.b.Process(ctx, ev(2), tp.apply, tp.settle)
	if err != nil || o.Decision != ordering.Apply {
		t.Fatalf("B: redelivery of 2 = %+v, %v; want applied (it was lost: skipped by A's timeout, then dropped as stale)", o, err)
	}
	// A's held 3 is applied by A's next timeout, 30s after the failure
	// restarted its wait (the table says 2 is applied: nothing to skip).
	tp.advance(sharedHold)
	if n := tp.a.Sweep(ctx); n != 1 {
		t.Fatalf("A: Sweep = %d, want the held 3 released", n)
	}
	if fmt.Sprint(tp.applied) != "[1 2 3]" || fmt.Sprint(tp.settled) != "[3=apply/<nil>]" {
		t.Fatalf("applied %v, settled %v; want [1 2 3], [3=apply/<nil>]", tp.applied, tp.settled)
	}
	tp.wantLast(t, 3)
	if n := tp.redeliveries(t); n != 0 {
		t.Fatalf("%d redeliveries recorded once 2 is applied, want none", n)
	}
}

func (tp *twoProcesses) wantLast(t *testing.T, want uint64) {
	t.Helper()
	if last, err := tp.stA.Last(context.Background(), "acct"); err != nil || last != want {
		t.Fatalf("Last = %d, %v; want %d", last, err, want)
	}
}

// redeliveries counts the rows of the table of redeliveries.
func (tp *twoProcesses) redeliveries(t *testing.T) (n int) {
	t.Helper()
	if err := tp.admin.QueryRow(context.Background(), "SELECT count(*) FROM "+tp.name+"_retry").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// start has A apply 1 and hold 3: 2 is missing.
func (tp *twoProcesses) start(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if o, err := tp.a.Process(ctx, ev(1), tp.apply, tp.settle); err != nil || o.Decision != ordering.Apply {
		t.Fatalf("A: Process(1) = %+v, %v", o, err)
	}
	if o, err := tp.a.Process(ctx, ev(3), tp.apply, tp.settle); err != nil || !o.Held {
		t.Fatalf("A: Process(3) = %+v, %v; want held", o, err)
	}
}

// lockWaiters counts the sessions waiting for a lock in a statement naming
// table (the row lock of a subject, or the row another transaction is
// creating).
func lockWaiters(t *testing.T, p *pgxpool.Pool, table string) (n int) {
	err := p.QueryRow(context.Background(),
		`SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND strpos(query, $1) > 0`, table).Scan(&n)
	if err != nil {
		t.Error(err)
	}
	return n
}

// waitForLockWait returns once a session waits for a lock in a statement
// naming table.
func waitForLockWait(t *testing.T, p *pgxpool.Pool, table string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if lockWaiters(t, p, table) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no session waits for the subject's row lock")
		}
		time.Sleep(2 * time.Millisecond) // polling a condition, not timing one
	}
}

// TestSharedStateSkipWaitingForTheFailingApply: A's hold timeout fires
// while B applies the missing event, so A's skip waits for the subject's
// row lock (or, on a subject the table did not know, for the row B's
// transaction creates); B's apply then fails. The redelivery B records is
// committed before the lock is released (the transaction rolls back to a
// savepoint set after the row, records it and commits), so A's skip sees
// it and waits: with a READ COMMITTED transaction at once, with a
// REPEATABLE READ one (whose snapshot predates the record) by failing to
// serialize, B having touched the row, and seeing it on the next sweep.
func TestSharedStateSkipWaitingForTheFailingApply(t *testing.T) {
	for _, tc := range []struct {
		iso   string
		fresh bool // the subject has no row: A holds 3, B fails on 1
	}{{"read committed", false}, {"repeatable read", false}, {"read committed", true}, {"repeatable read", true}} {
		t.Run(fmt.Sprintf("%s/fresh=%v", tc.iso, tc.fresh), func(t *testing.T) {
			ctx := context.Background()
			cfg, err := pgxpool.ParseConfig(testenv.PostgresDSN(t))
			if err != nil {
				t.Fatal(err)
			}
			cfg.ConnConfig.RuntimeParams["default_transaction_isolation"] = tc.iso
			poolA, err := pgxpool.NewWithConfig(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(poolA.Close)
			tp := newTwoProcesses(t, poolA)
			missing, want := uint64(2), "[1 2 3]"
			if tc.fresh {
				missing, want = 1, "[1 3]" // then 2 is skipped
				if o, err := tp.a.Process(ctx, ev(3), tp.apply, tp.settle); err != nil || !o.Held {
					t.Fatalf("A: Process(3) = %+v, %v; want held", o, err)
				}
			} else {
				tp.start(t)
			}
			tp.advance(sharedHold + 5*time.Second) // A's wait is over before the missing event arrives

			started, release := make(chan struct{}), make(chan struct{})
			bDone := make(chan error, 1)
			go func() {
				_, err := tp.b.Process(ctx, ev(missing), func(context.Context, *contract.Event) error {
					close(started)
					<-release
					return errInjected
				}, tp.settle)
				bDone <- err
			}()
			<-started
			swept := make(chan int, 1)
			go func() { swept <- tp.a.Sweep(ctx) }()
			waitForLockWait(t, tp.admin, tp.name)
			// When B commits the failure and its redelivery, A still waits
			// for it: the lock was not released before (an insert of the
			// row inside the savepoint, rolled back to, would let A go).
			var waiting atomic.Int32
			hook := func() { waiting.Store(int32(lockWaiters(t, tp.admin, tp.name))) }
			tp.beforeCommitB.Store(&hook)
			close(release)
			if err := <-bDone; !errors.Is(err, errInjected) {
				t.Fatalf("B: Process(%d) = %v, want the apply's error", missing, err)
			}
			tp.beforeCommitB.Store(nil)
			if waiting.Load() != 1 {
				t.Fatalf("%d sessions waited for the subject when B committed its failure; want A's: it must not go before the redelivery is recorded", waiting.Load())
			}
			if n := <-swept; n != 0 {
				t.Fatalf("A: Sweep waiting for B's failing apply of %d settled %d subjects; want none", missing, n)
			}
			if n := tp.a.Sweep(ctx); n != 0 {
				t.Fatalf("A: second Sweep settled %d subjects; want none: %d failed just now", n, missing)
			}
			if o, err := tp.b.Process(ctx, ev(missing), tp.apply, tp.settle); err != nil || o.Decision != ordering.Apply {
				t.Fatalf("B: redelivery of %d = %+v, %v; want applied", missing, o, err)
			}
			tp.advance(sharedHold)
			if n := tp.a.Sweep(ctx); n != 1 || fmt.Sprint(tp.applied) != want {
				t.Fatalf("A: Sweep = %d, applied %v; want 3 released, %s applied", n, tp.applied, want)
			}
			tp.wantLast(t, 3)
		})
	}
}

// TestSharedStateRetryingDelayAndExpiry: B reports the retry delay of the
// failed 2 (as package consumer does with Guard.Retrying): A's timeout
// waits a full HoldTimeout from the redelivery, not from the failure; and
// when the redelivery never comes (B crashed), A skips 2 then, so a
// process gone does not hold the subject for ever.
func TestSharedStateRetryingDelayAndExpiry(t *testing.T) {
	ctx := context.Background()
	tp := newTwoProcesses(t, nil)
	tp.start(t)
	tp.advance(25 * time.Second)
	if _, err := tp.b.Process(ctx, ev(2), func(context.Context, *contract.Event) error { return errInjected }, tp.settle); !errors.Is(err, errInjected) {
		t.Fatalf("B: Process(2) = %v, want the apply's error", err)
	}
	const delay = time.Minute
	tp.b.Retrying(ctx, ev(2), delay)
	tp.advance(delay + sharedHold - time.Second) // 1s before the wait from the redelivery ends
	if n := tp.a.Sweep(ctx); n != 0 {
		t.Fatalf("A: Sweep = %d before HoldTimeout passed since 2's redelivery; want none", n)
	}
	tp.advance(time.Second)
	if n := tp.a.Sweep(ctx); n != 1 {
		t.Fatalf("A: Sweep = %d once HoldTimeout passed since 2's redelivery was due; want 2 skipped", n)
	}
	tp.wantLast(t, 3)
	if o, _ := tp.b.Process(ctx, ev(2), tp.apply, tp.settle); o.Decision != ordering.Stale {
		t.Fatalf("B: late redelivery of 2 = %+v, want stale (skipped after its wait)", o)
	}
	if n := tp.redeliveries(t); n != 0 {
		t.Fatalf("%d redeliveries recorded once 2 is skipped, want none", n)
	}
}

// TestSharedStateFailedBeforeDecided: B's own checks fail for a sequence
// before Process (a deduplication store down) and B reports it with
// Guard.Failed. One A's gap does not wait for (after the held event) does
// not hold A's skip back; the one it waits for does, a HoldTimeout from
// then.
func TestSharedStateFailedBeforeDecided(t *testing.T) {
	ctx := context.Background()
	tp := newTwoProcesses(t, nil)
	tp.start(t) // A holds 3: 2 is missing
	tp.advance(25 * time.Second)
	tp.b.Failed(ctx, ev(5))
	tp.advance(5 * time.Second)
	if n := tp.a.Sweep(ctx); n != 1 {
		t.Fatalf("A: Sweep = %d, want 2 skipped: the failure of 5 is not one of the gap's", n)
	}
	tp.wantLast(t, 3)

	if o, err := tp.a.Process(ctx, ev(5), tp.apply, tp.settle); err != nil || !o.Held {
		t.Fatalf("A: Process(5) = %+v, %v; want held", o, err)
	}
	tp.advance(25 * time.Second)
	tp.b.Failed(ctx, ev(4))
	tp.advance(sharedHold - time.Second)
	if n := tp.a.Sweep(ctx); n != 0 {
		t.Fatalf("A: Sweep = %d, %s after 4 failed in B; want none", n, sharedHold-time.Second)
	}
	if o, err := tp.b.Process(ctx, ev(4), tp.apply, tp.settle); err != nil || o.Decision != ordering.Apply {
		t.Fatalf("B: redelivery of 4 = %+v, %v; want applied", o, err)
	}
	tp.advance(time.Second)
	if n := tp.a.Sweep(ctx); n != 1 {
		t.Fatalf("A: Sweep = %d, want the held 5 released", n)
	}
	if fmt.Sprint(tp.applied) != "[1 3 4 5]" {
		t.Fatalf("applied %v, want [1 3 4 5]", tp.applied)
	}
	tp.wantLast(t, 5)
}

// TestSharedStateRetryingFromApplyDoesNotWait: Retrying and Failed, which
// an ApplyFunc may call for its own subject (the package documentation of
// ordering, "Calling the Guard from an ApplyFunc"), record the redelivery
// in the table beside the subjects' without waiting for the subject's
// row, which the ApplyFunc's own transaction holds.
func TestSharedStateRetryingFromApplyDoesNotWait(t *testing.T) {
	tp := newTwoProcesses(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	apply := func(ctx context.Context, e *contract.Event) error {
		tp.a.Retrying(ctx, ev(5), time.Minute)
		tp.a.Failed(ctx, ev(6))
		return nil
	}
	if o, err := tp.a.Process(ctx, ev(1), apply, nil); err != nil || o.Decision != ordering.Apply {
		t.Fatalf("Process(1) = %+v, %v; want applied", o, err)
	}
	if ctx.Err() != nil {
		t.Fatal("Retrying or Failed from the ApplyFunc waited for the subject's row")
	}
	if n := tp.redeliveries(t); n != 2 {
		t.Fatalf("%d redeliveries recorded, want 2 (5 and 6)", n)
	}
}
