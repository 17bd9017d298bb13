package pgstore

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/idempotency/storetest"
)

func TestExactlyOnceTwoInstances(t *testing.T) {
	p1, _ := newPool(t, "pgstore-once", nil)
	p2, _ := newPool(t, "pgstore-once", nil)
	table := newTable()
	a := newStore(t, p1, table)
	b, _ := New(Config{Pool: p2, Schema: testSchema, Table: table})
	r := storetest.ExactlyOnce(t, []idempotency.Store{a, b}, storetest.ExactlyOnceConfig{Lease: 10 * time.Second, Timeout: 3 * time.Minute})
	if r.StoreFailures != 0 {
		t.Errorf("%d store failures without any fault injected", r.StoreFailures)
	}
}

// terminateBackends ends every backend of application app (this test's own
// pools only: other tests share the server) and returns how many.
func terminateBackends(ctx context.Context, admin *pgxpool.Pool, app string) int {
	var n int
	_ = admin.QueryRow(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1 AND pid <> pg_backend_pid()`, app).Scan(&n)
	return n
}

// TestExactlyOnceUnderBackendTermination terminates this test's backends
// with pg_terminate_backend every few milliseconds during the run: calls fail
// with retryable unavailable errors, nothing panics, every effect runs
// exactly once and every completed result survives.
func TestExactlyOnceUnderBackendTermination(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test")
	}
	app := "pgstore-kill-" + randomSuffix()
	p1, _ := newPool(t, app, nil)
	p2, _ := newPool(t, app, nil)
	admin, _ := newPool(t, "pgstore-kill-admin", nil)
	table := newTable()
	a := newStore(t, p1, table)
	b, _ := New(Config{Pool: p2, Schema: testSchema, Table: table})

	stop := make(chan struct{})
	done := make(chan struct{})
	var kills atomic.Int64
	// The first kill comes 50 ms into the run, then one a second: the run
	// must see at least one however fast it has become.
	go func() {
		defer close(done)
		wait := 50 * time.Millisecond
		for {
			select {
			case <-stop:
				return
			case <-time.After(wait):
			}
			kills.Add(int64(terminateBackends(context.Background(), admin, app)))
			wait = time.Second
		}
	}()
	r := storetest.ExactlyOnce(t, []idempotency.Store{a, b}, storetest.ExactlyOnceConfig{Lease: 5 * time.Second, Timeout: 3 * time.Minute, StopFaults: func() { close(stop); <-done }})
	t.Logf("%d backends terminated", kills.Load())
	if kills.Load() == 0 || r.StoreFailures == 0 {
		t.Fatalf("no fault was injected (terminated %d, failures seen %d)", kills.Load(), r.StoreFailures)
	}
}
