package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/idempotency/pgstore"
	"github.com/sadpath/sadpath/internal/testenv"
	"github.com/sadpath/sadpath/logctx"
)

// fakeDeleter answers DeleteExpired from a script, then 0; block makes a
// call wait for its context.
type fakeDeleter struct {
	mu      sync.Mutex
	script  []int64
	err     error
	block   bool
	calls   int
	limits  []int
	running bool
}

func (d *fakeDeleter) DeleteExpired(ctx context.Context, limit int) (int64, error) {
	d.mu.Lock()
	d.calls++
	d.limits = append(d.limits, limit)
	d.running = true
	block, err := d.block, d.err
	var n int64
	if len(d.script) > 0 {
		n, d.script = d.script[0], d.script[1:]
	}
	d.mu.Unlock()
	defer func() { d.mu.Lock(); d.running = false; d.mu.Unlock() }()
	if block {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	return n, err
}

func (d *fakeDeleter) state() (calls int, running bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls, d.running
}

func testLogger(t *testing.T) (*slog.Logger, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	h, err := logctx.NewHandler(logctx.HandlerConfig{Next: slog.NewJSONHandler(logs, nil)})
	if err != nil {
		t.Fatal(err)
	}
	return slog.New(h), logs
}

// A tick deletes batch after batch while they come back full, logs the
// total with its coordinates, and stop leaves no goroutine behind.
func TestCleanupLoopsWhileBatchesAreFull(t *testing.T) {
	logger, logs := testLogger(t)
	d := &fakeDeleter{script: []int64{3, 3, 1}}
	stop := startCleanup(context.Background(), d, 10*time.Millisecond, 3, logger)
	waitFor(t, 10*time.Second, "the first round to finish", func() bool { return strings.Contains(logs.String(), `"deleted":7`) })
	stop()
	calls, running := d.state()
	if running {
		t.Fatal("DeleteExpired still running after stop")
	}
	time.Sleep(50 * time.Millisecond) // five more ticks, were it still running
	if again, _ := d.state(); again != calls {
		t.Fatalf("%d calls after stop", again-calls)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.limits) < 3 || d.limits[0] != 3 || d.limits[1] != 3 || d.limits[2] != 3 {
		t.Fatalf("limits %v, want batches of 3, three calls in the first round", d.limits)
	}
	line := logs.String()
	for _, want := range []string{`"msg":"expired idempotency records deleted"`, `"operation":"payments.idempotency_cleanup"`, `"correlation_id":"`} {
		if !strings.Contains(line, want) {
			t.Errorf("log lacks %s:\n%s", want, line)
		}
	}
}

// A failing store is logged as a decision with coordinates and tried again
// at the next tick; stopping during a call is not an error.
func TestCleanupLogsFailuresAndStopsQuietly(t *testing.T) {
	logger, logs := testLogger(t)
	d := &fakeDeleter{err: errors.New("connection refused")}
	stop := startCleanup(context.Background(), d, 10*time.Millisecond, 1000, logger)
	waitFor(t, 10*time.Second, "a second attempt", func() bool { c, _ := d.state(); return c >= 2 })
	stop()
	out := logs.String()
	for _, want := range []string{`"level":"ERROR"`, `"decision":"expired records not deleted"`, `"reason":"idempotency store failed"`,
		`"operation":"payments.idempotency_cleanup"`, `"correlation_id":"`, `connection refused`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}

	logger, logs = testLogger(t)
	d = &fakeDeleter{block: true}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop = startCleanup(ctx, d, 10*time.Millisecond, 1000, logger)
	waitFor(t, 10*time.Second, "a call in flight", func() bool { _, r := d.state(); return r })
	cancel() // shutdown: the service's context ends
	stop()
	if _, running := d.state(); running {
		t.Fatal("DeleteExpired still running after stop")
	}
	if out := logs.String(); out != "" {
		t.Errorf("shutdown logged: %s", out)
	}
}

// With -store postgres, run deletes expired records on its own and stops
// doing so when it shuts down.
func TestRunDeletesExpiredRecords(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	table := fmt.Sprintf("examples_payments_cleanup_%d", time.Now().UnixNano())
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), "DROP TABLE IF EXISTS "+table) })
	st, err := pgstore.New(pgstore.Config{Pool: pool, Table: table})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		life := time.Millisecond // expired almost at once
		if i == 0 {
			life = time.Hour // still within retention: kept
		}
		if _, err := st.Claim(ctx, idempotency.ClaimRequest{Key: idempotency.Key{Scope: "cleanup", Key: fmt.Sprint(i)},
			Fingerprint: "fp", Lease: life, Retention: life}); err != nil {
			t.Fatal(err)
		}
	}
	rows := func() int {
		var n int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := rows(); n != 4 {
		t.Fatalf("%d rows before the service starts, want 4", n)
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(runCtx, []string{"-addr", "127.0.0.1:0", "-store", "postgres", "-pg-dsn", dsn, "-pg-table", table,
			"-pg-cleanup-interval", "50ms"}, io.Discard, ready)
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("service did not start")
	}
	waitFor(t, 10*time.Second, "the expired records to be deleted", func() bool { return rows() == 1 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v after shutdown", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after shutdown")
	}
}

func TestRunRejectsNegativeCleanupInterval(t *testing.T) {
	if err := run(context.Background(), []string{"-pg-cleanup-interval", "-1s", "-addr", "127.0.0.1:0"}, io.Discard, nil); err == nil {
		t.Fatal("want an error")
	}
}

// An interval of 1ns (or 1ms, a typo for 1m) turns the cleanup into a
// tight DELETE loop against the database: refused, naming the flag. 0
// (disabled) and the test's 50ms stay accepted.
func TestParseFlagsRejectsTinyCleanupInterval(t *testing.T) {
	for _, v := range []string{"1ns", "1us", "1ms", "9ms"} {
		o, err := parseFlags([]string{"-pg-cleanup-interval", v}, io.Discard)
		if err == nil {
			t.Errorf("-pg-cleanup-interval %s accepted as %v, want an error", v, o.pgCleanup)
		} else if !strings.Contains(err.Error(), "-pg-cleanup-interval") {
			t.Errorf("-pg-cleanup-interval %s: error %q does not name the flag", v, err)
		}
	}
	for _, v := range []string{"0", "10ms", "50ms", "1m"} {
		if _, err := parseFlags([]string{"-pg-cleanup-interval", v}, io.Discard); err != nil {
			t.Errorf("-pg-cleanup-interval %s: %v, want it accepted", v, err)
		}
	}
}

// A store that never answers a round (a partition without a connection
// reset: pgstore has no timeout of its own) costs that round, not the
// cleanup: the call is given up, logged, and the next tick tries again.
func TestCleanupGivesUpAStuckRound(t *testing.T) {
	logger, logs := testLogger(t)
	d := &fakeDeleter{block: true}
	stop := startCleanup(context.Background(), d, 10*time.Millisecond, 1000, logger)
	defer stop()
	waitFor(t, 20*time.Second, "a round after the stuck one", func() bool { c, _ := d.state(); return c >= 2 })
	if out := logs.String(); !strings.Contains(out, `"decision":"expired records not deleted"`) || !strings.Contains(out, context.DeadlineExceeded.Error()) {
		t.Errorf("the stuck round was not logged as given up:\n%s", out)
	}
}
