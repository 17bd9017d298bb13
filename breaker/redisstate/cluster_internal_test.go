package redisstate

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sadpath/sadpath/breaker"
)

// privateCluster starts a Redis Cluster of two private redis-server nodes
// on free loopback ports, each owning half of the slots, and returns their
// addresses. It leaves the shared server alone.
func privateCluster(t *testing.T) []string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server not installed; in CI the cluster test must run")
		}
		t.Skip("redis-server not installed")
	}
	ctx := context.Background()
	var addrs []string
	var admins []*redis.Client
	for i := range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		dir := t.TempDir()
		cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
			"--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", "",
			"--cluster-enabled", "yes", "--cluster-config-file", dir+"/nodes.conf")
		out := &serverLog{ready: make(chan struct{})}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		var exitErr error
		go func() { exitErr = cmd.Wait(); close(exited) }()
		t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); <-exited })
		// Its own word, not a ping: a ping could reach another process
		// that took the port first, while this one fails to bind it.
		select {
		case <-out.ready:
		case <-exited:
			t.Fatalf("private redis-server exited: %v\n%s", exitErr, out)
		case <-time.After(10 * time.Second):
			t.Fatalf("private redis-server not ready after 10s:\n%s", out)
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		admin := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		t.Cleanup(func() { _ = admin.Close() })
		if err := admin.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", i*8192, i*8192+8191).Err(); err != nil {
			t.Fatal(err)
		}
		addrs, admins = append(addrs, addr), append(admins, admin)
	}
	host, port, _ := net.SplitHostPort(addrs[1])
	if err := admins[0].ClusterMeet(ctx, host, port).Err(); err != nil {
		t.Fatal(err)
	}
	for _, a := range admins {
		for j := 0; ; j++ {
			info, _ := a.ClusterInfo(ctx).Result()
			if strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:2") {
				break
			}
			if j == 400 {
				t.Fatalf("cluster not ok:\n%s", info)
			}
			time.Sleep(25 * time.Millisecond)
		}
	}
	return addrs
}

// serverLog collects a redis-server's log, and closes ready at the line
// saying it accepts connections.
type serverLog struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ready chan struct{}
}

func (l *serverLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	select {
	case <-l.ready:
	default:
		if bytes.Contains(l.buf.Bytes(), []byte("Ready to accept connections")) {
			close(l.ready)
		}
	}
	return len(p), nil
}

func (l *serverLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// A breaker name may start with '}' (any valid UTF-8 is a valid name). Put
// between the braces of the hash tag as it is, it closed the tag at once:
// an empty tag, so Redis Cluster hashed each of the breaker's keys whole and
// spread its state hash and window buckets over slots, on other nodes than
// the one its scripts run on. Every merge and every trip then failed, and
// the breaker never shared anything.
func TestNameStartingWithBraceWorksOnACluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private Redis Cluster")
	}
	addrs := privateCluster(t)
	ctx := context.Background()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { _ = cc.Close() })
	for _, name := range []string{"}", "}api", "}}", "api}", "{api}", "api"} {
		s, err := New(Config{Client: cc, Prefix: "sadpath-test:breaker:", SyncInterval: time.Hour, InstanceID: "a",
			Breaker: breaker.Config{Name: name, DisableMetrics: true}})
		if err != nil {
			t.Fatal(err)
		}
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = s.run(tctx, openScript, 60000, "a", s.bucketMs, s.buckets).Err()
		if err == nil {
			err = s.run(tctx, syncScript, s.bucketMs, s.buckets, 1, 1, s.minCalls, "0.5", s.openMs, "a", -1).Err()
		}
		var st string
		if err == nil {
			st, err = cc.HGet(tctx, s.base+":state", "state").Result()
		}
		cancel()
		_ = s.Close()
		if err != nil || st != "open" {
			t.Errorf("breaker %q: trip and merge on a cluster: state %q, %v", name, st, err)
		}
	}
}
