package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
)

type payment struct {
	Key string `json:"key"`
	Row int64  `json:"row"`
}

// txEnv is a store with a business table ("payments": deliberately without
// a unique constraint on key, so only DoTx can keep it to one row per key).
type txEnv struct {
	pool, admin *pgxpool.Pool
	s           *Store
	biz         string
	calls       atomic.Int64 // fn invocations
}

func newTxEnv(t *testing.T, lease time.Duration) *txEnv {
	p, _ := newPool(t, "pgstore-dotx", nil)
	admin, _ := newPool(t, "pgstore-dotx-admin", nil)
	table := newTable()
	s, err := New(Config{Pool: p, Schema: testSchema, Table: table, TxLease: lease})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	biz := pgx.Identifier{testSchema, table + "_payments"}.Sanitize()
	if _, err := p.Exec(context.Background(), `CREATE TABLE `+biz+` (row_id bigserial PRIMARY KEY, key text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), `DROP TABLE IF EXISTS `+biz+`, `+s.qualified)
	})
	return &txEnv{pool: p, admin: admin, s: s, biz: biz}
}

// insert is the business write: one row per payment.
func (e *txEnv) insert(ctx context.Context, tx pgx.Tx, key string) (payment, error) {
	var id int64
	err := tx.QueryRow(ctx, `INSERT INTO `+e.biz+` (key) VALUES ($1) RETURNING row_id`, key).Scan(&id)
	return payment{Key: key, Row: id}, err
}

// terminate ends the backend of conn and waits until it is gone.
func (e *txEnv) terminate(t *testing.T, pid uint32) {
	ctx := context.Background()
	if _, err := e.admin.Exec(ctx, `SELECT pg_terminate_backend($1)`, int32(pid)); err != nil {
		t.Errorf("pg_terminate_backend: %v", err)
	}
	for range 200 {
		var alive bool
		_ = e.admin.QueryRow(ctx, `SELECT exists(SELECT 1 FROM pg_stat_activity WHERE pid = $1)`, int32(pid)).Scan(&alive)
		if !alive {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Errorf("backend %d still alive", pid)
}

func backendPID(ctx context.Context, tx pgx.Tx) uint32 { return tx.Conn().PgConn().PID() }

// TestDoTxExactlyOnceUnderKills kills the work at every step — before and
// after the business write, inside fn and at the claim, begin, complete and
// commit statements, by panic, error, context cancellation, statement
// timeout, lease expiry and pg_terminate_backend — then runs DoTx again until
// it succeeds. The business table must end with exactly one row per key,
// and DoTx must return that row from then on without calling fn.
func TestDoTxExactlyOnceUnderKills(t *testing.T) {
	e := newTxEnv(t, 2*time.Second)
	short, err := New(Config{Pool: e.pool, Schema: testSchema, Table: e.s.table, TxLease: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	type step struct {
		name  string
		store *Store
		// fn is the caller's work for the first, faulty attempt; cancel
		// cancels that attempt's context.
		fn func(t *testing.T, ctx context.Context, cancel context.CancelFunc, tx pgx.Tx, key string) (payment, error)
		// f injects a fault at a statement of DoTx itself.
		f func(t *testing.T, cancel context.CancelFunc) *fault
	}
	write := func(t *testing.T, ctx context.Context, cancel context.CancelFunc, tx pgx.Tx, key string) (payment, error) {
		return e.insert(ctx, tx, key)
	}
	atSQL := func(match func(string) bool, at string, do func(t *testing.T, cancel context.CancelFunc, conn *pgx.Conn)) func(*testing.T, context.CancelFunc) *fault {
		return func(t *testing.T, cancel context.CancelFunc) *fault {
			var once atomic.Bool
			f := &fault{}
			hit := func(conn *pgx.Conn, sql string) {
				if match(sql) && once.CompareAndSwap(false, true) {
					do(t, cancel, conn)
				}
			}
			if at == "start" {
				f.onStart = func(_ context.Context, conn *pgx.Conn, sql string) { hit(conn, sql) }
			} else {
				f.onEnd = func(_ context.Context, conn *pgx.Conn, sql string, err error) {
					if err == nil {
						hit(conn, sql)
					}
				}
			}
			return f
		}
	}
	kill := func(t *testing.T, _ context.CancelFunc, conn *pgx.Conn) { e.terminate(t, conn.PgConn().PID()) }
	cancelIt := func(_ *testing.T, cancel context.CancelFunc, _ *pgx.Conn) { cancel() }
	isClaim := func(sql string) bool { return sql == e.s.sqlClaim }
	isBegin := func(sql string) bool { return strings.HasPrefix(sql, "begin") }
	isComplete := func(sql string) bool { return sql == e.s.sqlComplete }
	isCommit := func(sql string) bool { return sql == "commit" }

	steps := []step{
		{name: "panic before write", fn: func(*testing.T, context.Context, context.CancelFunc, pgx.Tx, string) (payment, error) {
			panic("boom before write")
		}},
		{name: "panic after write", fn: func(t *testing.T, ctx context.Context, c context.CancelFunc, tx pgx.Tx, key string) (payment, error) {
			if _, err := e.insert(ctx, tx, key); err != nil {
				return payment{}, err
			}
			panic("boom after write")
		}},
		{name: "error after write", fn: func(t *testing.T, ctx context.Context, c context.CancelFunc, tx pgx.Tx, key string) (payment, error) {
			if _, err := e.insert(ctx, tx, key); err != nil {
				return payment{}, err
			}
			return payment{}, errors.New("card declined by a flaky gateway")
		}},
		{name: "cancel after write", fn: func(t *testing.T, ctx context.Context, cancel context.CancelFunc, tx pgx.Tx, key string) (payment, error) {
			p, err := e.insert(ctx, tx, key)
			if err != nil {
				return payment{}, err
			}
			cancel()
			return p, nil
		}},
		{name: "terminate after write", fn: func(t *testing.T, ctx context.Context, c context.CancelFunc, tx pgx.Tx, key string) (payment, error) {
			p, err := e.insert(ctx, tx, key)
			if err != nil {
				return payment{}, err
			}
			e.terminate(t, backendPID(ctx, tx))
			return p, nil
		}},
		{name: "statement timeout after write", fn: func(t *testing.T, ctx context.Context, c context.CancelFunc, tx pgx.Tx, key string) (payment, error) {
			p, err := e.insert(ctx, tx, key)
			if err != nil {
				return payment{}, err
			}
			if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = '50ms'`); err != nil {
				return payment{}, err
			}
			_, err = tx.Exec(ctx, `SELECT pg_sleep(1)`)
			return p, err
		}},
		{name: "lease expired before commit", store: short, fn: func(t *testing.T, ctx context.Context, c context.CancelFunc, tx pgx.Tx, key string) (payment, error) {
			p, err := e.insert(ctx, tx, key)
			time.Sleep(400 * time.Millisecond) // a stalled owner
			return p, err
		}},
		{name: "terminate at claim", fn: write, f: atSQL(isClaim, "start", kill)},
		{name: "cancel at begin", fn: write, f: atSQL(isBegin, "start", cancelIt)},
		{name: "terminate at begin", fn: write, f: atSQL(isBegin, "start", kill)},
		{name: "terminate at complete", fn: write, f: atSQL(isComplete, "start", kill)},
		{name: "cancel at complete", fn: write, f: atSQL(isComplete, "start", cancelIt)},
		{name: "terminate at commit", fn: write, f: atSQL(isCommit, "start", kill)},
		{name: "cancel at commit", fn: write, f: atSQL(isCommit, "start", cancelIt)},
		{name: "terminate after commit", fn: write, f: atSQL(isCommit, "end", kill)},
	}
	const keysPerStep = 3
	for _, st := range steps {
		for i := range keysPerStep {
			key := fmt.Sprintf("%s/%d", strings.ReplaceAll(st.name, " ", "-"), i)
			k := idempotency.Key{Scope: "tx", Key: key}
			s := e.s
			if st.store != nil {
				s = st.store
			}
			ctx, cancel := context.WithCancel(context.Background())
			if st.f != nil {
				ctx = withFault(ctx, st.f(t, cancel))
			}
			panicked, firstErr := func() (panicked any, err error) {
				defer func() { panicked = recover() }()
				_, err = DoTx(ctx, s, k, "fp", func(ctx context.Context, tx pgx.Tx) (payment, error) {
					e.calls.Add(1)
					return st.fn(t, ctx, cancel, tx, key)
				})
				return nil, err
			}()
			cancel()
			if st.name == "terminate after commit" {
				if firstErr != nil {
					t.Errorf("%s: the commit happened, DoTx said %v", key, firstErr)
				}
			} else if firstErr == nil && panicked == nil {
				t.Errorf("%s: the faulty attempt succeeded", key)
			}
			if firstErr != nil && !contract.Retryable(firstErr) && !errors.Is(firstErr, context.Canceled) &&
				!errors.Is(firstErr, idempotency.ErrLeaseLost) && !strings.Contains(firstErr.Error(), "card declined") {
				t.Errorf("%s: faulty attempt error is not a clean contract error: %v", key, firstErr)
			}
			// Nothing half-written: before a commit, no business row.
			if st.name != "terminate after commit" && e.rows(t, key) != 0 {
				t.Errorf("%s: the failed attempt left %d business rows", key, e.rows(t, key))
			}
			got := e.retryUntilDone(t, k)
			if n := e.rows(t, key); n != 1 {
				t.Errorf("%s: %d business rows, want exactly 1", key, n)
			}
			if got.Key != key || got.Row != e.rowID(t, key) {
				t.Errorf("%s: DoTx returned %+v, want the committed row %d", key, got, e.rowID(t, key))
			}
			// From now on: replayed, fn never called.
			before := e.calls.Load()
			again, err := DoTx(context.Background(), e.s, k, "fp", func(ctx context.Context, tx pgx.Tx) (payment, error) {
				e.calls.Add(1)
				return e.insert(ctx, tx, key)
			})
			if err != nil || again != got || e.calls.Load() != before {
				t.Errorf("%s: replay = %+v, %v (fn calls %d→%d)", key, again, err, before, e.calls.Load())
			}
		}
	}
	// And a different payload on a used key is refused without running fn.
	before := e.calls.Load()
	_, err = DoTx(context.Background(), e.s, idempotency.Key{Scope: "tx", Key: "panic-before-write/0"}, "other-fp", func(ctx context.Context, tx pgx.Tx) (payment, error) {
		e.calls.Add(1)
		return payment{}, nil
	})
	if !errors.Is(err, idempotency.ErrMismatch) || e.calls.Load() != before {
		t.Errorf("reused key with another payload: %v", err)
	}
}

func (e *txEnv) rows(t *testing.T, key string) int {
	var n int
	if err := e.admin.QueryRow(context.Background(), `SELECT count(*) FROM `+e.biz+` WHERE key = $1`, key).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (e *txEnv) rowID(t *testing.T, key string) int64 {
	var id int64
	_ = e.admin.QueryRow(context.Background(), `SELECT min(row_id) FROM `+e.biz+` WHERE key = $1`, key).Scan(&id)
	return id
}

// retryUntilDone is the caller retrying after a failure: it waits out a
// claim left in progress (its lease) and retries retryable errors.
func (e *txEnv) retryUntilDone(t *testing.T, k idempotency.Key) payment {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		p, err := DoTx(context.Background(), e.s, k, "fp", func(ctx context.Context, tx pgx.Tx) (payment, error) {
			e.calls.Add(1)
			return e.insert(ctx, tx, k.Key)
		})
		if err == nil {
			return p
		}
		if !errors.Is(err, idempotency.ErrInProgress) && !contract.Retryable(err) {
			t.Fatalf("%s: retry failed for good: %v", k.Key, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not done in 30s", k.Key)
	return payment{}
}

// A key in progress elsewhere is idempotency.ErrInProgress as the executor
// returns it: retryable, with the remaining lease as a retry-after hint.
func TestDoTxInProgressIsRetryable(t *testing.T) {
	p, _ := newPool(t, "pgstore-dotx-inprogress", nil)
	s := newStore(t, p, newTable())
	ctx := context.Background()
	k := idempotency.Key{Scope: "tenant", Key: "in-progress"}
	if _, err := s.Claim(ctx, idempotency.ClaimRequest{Key: k, Fingerprint: "fp", Lease: 10 * time.Second, Retention: time.Hour}); err != nil {
		t.Fatal(err)
	}
	ran := false
	_, err := DoTx(ctx, s, k, "fp", func(context.Context, pgx.Tx) (int, error) { ran = true; return 1, nil })
	if !errors.Is(err, idempotency.ErrInProgress) || ran {
		t.Fatalf("DoTx on a key in progress: %v (fn ran: %v), want ErrInProgress", err, ran)
	}
	if !contract.Retryable(err) {
		t.Errorf("contract.Retryable(%v) = false, want true (ErrInProgress is retryable)", err)
	}
	if d, ok := contract.RetryAfter(err); !ok || d <= 0 || d > 10*time.Second {
		t.Errorf("RetryAfter = %v, %v; want the remaining lease, in (0, 10s]", d, ok)
	}
}

// Concurrent DoTx calls on the same keys from two store instances: the
// business table ends with one row per key.
func TestDoTxConcurrent(t *testing.T) {
	e := newTxEnv(t, 10*time.Second)
	other, _ := New(Config{Pool: e.admin, Schema: testSchema, Table: e.s.table})
	const keys, callers = 20, 8
	errs := make(chan error, keys*callers)
	done := make(chan struct{})
	for c := range callers {
		go func() {
			defer func() { done <- struct{}{} }()
			s := e.s
			if c%2 == 1 {
				s = other
			}
			for i := range keys {
				k := idempotency.Key{Scope: "tx", Key: fmt.Sprint("k", i)}
				for {
					_, err := DoTx(context.Background(), s, k, "fp", func(ctx context.Context, tx pgx.Tx) (payment, error) {
						return e.insert(ctx, tx, k.Key)
					})
					if errors.Is(err, idempotency.ErrInProgress) {
						time.Sleep(5 * time.Millisecond)
						continue
					}
					if err != nil {
						errs <- err
					}
					break
				}
			}
		}()
	}
	for range callers {
		<-done
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range keys {
		if n := e.rows(t, fmt.Sprint("k", i)); n != 1 {
			t.Errorf("k%d: %d rows", i, n)
		}
	}
}

// A serialization failure inside fn is a retryable contract error, and
// nothing is written.
func TestDoTxSerializationFailure(t *testing.T) {
	e := newTxEnv(t, 10*time.Second)
	ser, _ := New(Config{Pool: e.pool, Schema: testSchema, Table: e.s.table, TxOptions: pgx.TxOptions{IsoLevel: pgx.Serializable}})
	ctx := context.Background()
	k := idempotency.Key{Scope: "tx", Key: "ser"}
	_, err := DoTx(ctx, ser, k, "fp", func(ctx context.Context, tx pgx.Tx) (payment, error) {
		// Read, let another transaction write what we read, then write:
		// a serialization failure at our write or commit.
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+e.biz).Scan(&n); err != nil {
			return payment{}, err
		}
		other, err := e.admin.Begin(ctx)
		if err != nil {
			return payment{}, err
		}
		if _, err := other.Exec(ctx, `SET TRANSACTION ISOLATION LEVEL SERIALIZABLE`); err != nil {
			return payment{}, err
		}
		var m int
		_ = other.QueryRow(ctx, `SELECT count(*) FROM `+e.biz).Scan(&m)
		if _, err := other.Exec(ctx, `INSERT INTO `+e.biz+` (key) VALUES ('other')`); err != nil {
			return payment{}, err
		}
		if err := other.Commit(ctx); err != nil {
			return payment{}, err
		}
		return e.insert(ctx, tx, k.Key)
	})
	if !errors.Is(err, contract.ErrUnavailable) || !contract.Retryable(err) || contract.As(err).Code != "pgstore.serialization_failure" {
		t.Fatalf("err = %v; want a retryable serialization failure", err)
	}
	if n := e.rows(t, k.Key); n != 0 {
		t.Fatalf("%d rows written", n)
	}
	// Released: the retry runs at once and commits.
	if _, err := DoTx(ctx, e.s, k, "fp", func(ctx context.Context, tx pgx.Tx) (payment, error) { return e.insert(ctx, tx, k.Key) }); err != nil {
		t.Fatal(err)
	}
	if n := e.rows(t, k.Key); n != 1 {
		t.Fatalf("%d rows", n)
	}
}

// DoTx refuses an empty Key.Key as idempotency.Do does: were it claimed,
// every call made without a key would share one record and replay the
// first one's value. fn does not run and no record is made.
func TestDoTxEmptyKeyIsInvalid(t *testing.T) {
	env := newTxEnv(t, time.Minute)
	ctx := context.Background()
	key := idempotency.Key{Scope: "tenant", Key: ""}
	_, err := DoTx(ctx, env.s, key, "fp", func(ctx context.Context, tx pgx.Tx) (payment, error) {
		env.calls.Add(1)
		return env.insert(ctx, tx, "")
	})
	if env.calls.Load() != 0 || !errors.Is(err, idempotency.ErrKeyInvalid) || contract.Retryable(err) {
		t.Fatalf("empty key: %d calls, err %v; want fn not run and a non-retryable ErrKeyInvalid", env.calls.Load(), err)
	}
	if _, gerr := env.s.Get(ctx, key); !errors.Is(gerr, idempotency.ErrNotFound) {
		t.Fatalf("a record was made for the empty key: %v", gerr)
	}
}

// DoTx takes a nil context as context.Background(), as idempotency.Do
// does: the call runs once, is recorded, and replays.
func TestDoTxNilContext(t *testing.T) {
	env := newTxEnv(t, time.Minute)
	key := idempotency.Key{Scope: "tenant", Key: "nil-ctx"}
	var nilCtx context.Context
	for range 2 {
		if _, err := DoTx(nilCtx, env.s, key, "fp", func(ctx context.Context, tx pgx.Tx) (payment, error) {
			env.calls.Add(1)
			return env.insert(ctx, tx, "nil-ctx")
		}); err != nil {
			t.Fatalf("DoTx(nil ctx): %v", err)
		}
	}
	if n := env.calls.Load(); n != 1 {
		t.Fatalf("fn ran %d times, want once (the second call replays)", n)
	}
}
