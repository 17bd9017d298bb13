package redisstore

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/idempotency/storetest"
)

// privateRedis runs a redis-server of this test's own on a free loopback
// port, with an append-only file fsynced on every write, so it can be
// restarted without touching the shared server. It returns the address and
// a restart function.
func privateRedis(t *testing.T, extra ...string) (addr string, restart func()) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server not installed; in CI the restart test must run")
		}
		t.Skip("redis-server not installed")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	addr = "127.0.0.1:" + strconv.Itoa(port)
	dir := t.TempDir()
	var cmd *exec.Cmd
	// start may run on the restarting goroutine: it reports with t.Error,
	// never t.Fatal.
	start := func() {
		args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
			"--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no", "--logfile", ""}
		cmd = exec.Command(bin, append(args, extra...)...)
		if err := cmd.Start(); err != nil {
			t.Error(err)
			return
		}
		c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		defer c.Close()
		for range 200 {
			if c.Ping(context.Background()).Err() == nil {
				return
			}
			time.Sleep(25 * time.Millisecond)
		}
		t.Error("private redis-server did not come up")
	}
	stop := func() {
		if cmd.Process == nil {
			return
		}
		_ = cmd.Process.Signal(syscall.SIGTERM) // graceful: flushes the AOF
		_ = cmd.Wait()
	}
	start()
	t.Cleanup(stop)
	if t.Failed() {
		t.FailNow()
	}
	return addr, func() { stop(); start() }
}

// TestExactlyOnceUnderRedisRestart restarts Redis (a private server with an
// fsynced append-only file) several times during a 16 × 500 run: calls fail
// with retryable unavailable errors while it is down, nothing panics, every
// effect runs exactly once and no completed result is lost.
func TestExactlyOnceUnderRedisRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test")
	}
	addr, restart := privateRedis(t)
	ca := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 16})
	cb := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 16, MaxRetries: -1})
	t.Cleanup(func() { _ = ca.Close(); _ = cb.Close() })
	a, err := New(Config{Client: ca})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := New(Config{Client: cb})

	stop := make(chan struct{})
	done := make(chan struct{})
	var restarts atomic.Int64
	// The first restart comes 20 ms into the run, then one every 500 ms:
	// the run (a second or two on a quiet machine) must see at least one,
	// however fast the store has become.
	go func() {
		defer close(done)
		wait := 20 * time.Millisecond
		for {
			select {
			case <-stop:
				return
			case <-time.After(wait):
			}
			restart()
			restarts.Add(1)
			wait = 500 * time.Millisecond
		}
	}()
	r := storetest.ExactlyOnce(t, []idempotency.Store{a, b}, storetest.ExactlyOnceConfig{Lease: 5 * time.Second, StopFaults: func() { close(stop); <-done }})
	t.Logf("%d restarts", restarts.Load())
	if restarts.Load() == 0 || r.StoreFailures == 0 {
		t.Fatalf("no fault was injected (restarts %d, failures seen %d)", restarts.Load(), r.StoreFailures)
	}
}
