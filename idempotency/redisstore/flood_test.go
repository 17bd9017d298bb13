package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/internal/logcount"
	"github.com/sadpath/sadpath/internal/lograte"
	"github.com/sadpath/sadpath/logctx"
)

// downHook fails every command while down is set, as an unreachable
// server does, without touching the server.
type downHook struct{ down *atomic.Bool }

var errUnreachable = &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}

func (h downHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h downHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.down.Load() {
			cmd.SetErr(errUnreachable)
			return errUnreachable
		}
		return next(ctx, cmd)
	}
}
func (h downHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

// TestLogFloodRedisDown: with Redis unreachable every call fails; at
// 10,000 calls a second the store logs a few failures per 10s with the
// call's coordinates, not one per call, and, when Redis answers again,
// the end once.
func TestLogFloodRedisDown(t *testing.T) {
	const rate, seconds = 10_000, 20
	const calls = rate * seconds
	log, h := logcount.New()
	c := newClient(t, "redisstore-flood")
	var down atomic.Bool
	c.AddHook(downHook{&down})
	s, err := New(Config{Client: c, Prefix: testPrefix(t), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dropPrefix(c, s.prefix) })
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	s.clock = clk
	ctx := logctx.WithCorrelationID(context.Background(), "req-1")
	req := func(i int) idempotency.ClaimRequest {
		return idempotency.ClaimRequest{Key: idempotency.Key{Scope: "m", Key: fmt.Sprint("k", i)}, Fingerprint: "fp", Lease: time.Second, Retention: time.Minute}
	}
	down.Store(true)
	for i := range calls {
		if _, err := s.Claim(ctx, req(i)); err == nil {
			t.Fatal("claimed with Redis down")
		}
		clk.t = clk.t.Add(time.Second / rate)
	}
	lines := h.Decision("idempotency store call failed")
	if n, max := h.AtLeastInfo(), (seconds/10+1)*lograte.Burst; n > max || len(lines) == 0 {
		t.Fatalf("%d lines at Info and above (%d failures) for %d failed calls in %ds, want 1 to %d", n, len(lines), calls, seconds, max)
	}
	for _, e := range lines {
		if e.Level != slog.LevelWarn || e.String(logctx.KeyCorrelationID) != "req-1" || e.String(logctx.KeyDependency) != "redis" || e.String("store_op") != "redisstore.claim" {
			t.Errorf("line without its coordinates: %s %v", e.Level, e.Attrs)
		}
	}
	if n := h.Count(slog.LevelDebug); n != calls-len(lines) {
		t.Errorf("%d lines at Debug, want the %d failures not logged at Warn", n, calls-len(lines))
	}

	down.Store(false)
	clk.t = clk.t.Add(10 * time.Second)
	h.Reset()
	for i := range 3 {
		if _, err := s.Claim(ctx, req(calls+i)); err != nil {
			t.Fatal(err)
		}
	}
	ends := h.Decision("idempotency store calls succeed again")
	if len(ends) != 1 || h.AtLeastInfo() != 1 || ends[0].Level != slog.LevelInfo || ends[0].String(logctx.KeyDependency) != "redis" {
		t.Fatalf("after Redis came back: %d lines, %d ends, want one end at Info", h.AtLeastInfo(), len(ends))
	}
	if got := logcount.Represented(lines) + ends[0].Attrs[logctx.KeySuppressed].Int64(); got != calls {
		t.Errorf("lines account for %d failures, want %d", got, calls)
	}
}
