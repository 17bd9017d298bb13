package redisstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/internal/testenv"
)

// lossyConn loses the reply of the next EVALSHA once armed: the command
// reaches Redis and runs, its reply is read off the socket and dropped, and
// the client sees the connection end (io.EOF) — a network blip between the
// server's execution and the client's read. go-redis then re-sends the
// command on a new connection.
type lossyConn struct {
	net.Conn
	armed *atomic.Bool
	drop  bool // the reply to the command just written is lost
}

func (c *lossyConn) Write(b []byte) (int, error) {
	if bytes.Contains(b, []byte("evalsha")) && c.armed.CompareAndSwap(true, false) {
		c.drop = true
	}
	return c.Conn.Write(b)
}

func (c *lossyConn) Read(b []byte) (int, error) {
	if c.drop {
		c.drop = false
		_, _ = c.Conn.Read(b) // the server has run the script: drop its reply
		_ = c.Conn.Close()
		return 0, io.EOF
	}
	return c.Conn.Read(b)
}

// lossyStore returns a Store on a client with go-redis's default options
// (MaxRetries 3), as in the package's Wiring example, and the switch that
// loses the next script reply. The scripts are loaded first, so the lost
// reply is the script's own, not a NOSCRIPT.
func lossyStore(t *testing.T) (*Store, *atomic.Bool) {
	t.Helper()
	armed := new(atomic.Bool)
	c := redis.NewClient(&redis.Options{
		Addr: testenv.RedisAddr(t),
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &lossyConn{Conn: conn, armed: armed}, nil
		},
	})
	t.Cleanup(func() { _ = c.Close() })
	for _, sc := range []*redis.Script{claimScript, completeScript, releaseScript, renewScript, getScript} {
		if err := sc.Load(context.Background(), c).Err(); err != nil {
			t.Fatalf("script load: %v", err)
		}
	}
	return newStore(t, c, testPrefix(t)), armed
}

// lose arms the connection to lose the next script reply, runs call, and
// fails the test unless the reply was indeed lost.
func lose(t *testing.T, armed *atomic.Bool, call func()) {
	t.Helper()
	armed.Store(true)
	call()
	if armed.Load() {
		t.Fatal("no script reply was lost: the test did not exercise a re-send")
	}
}

// TestLostReplyResent: go-redis re-sends a script whose reply it lost,
// although Redis already ran it. The re-run recognises the call's own
// change and answers as the first run did: the sole claimer is not told
// InProgress for its own claim (which would block the key for the lease),
// and a stored result or a release is not reported as ErrLeaseLost.
func TestLostReplyResent(t *testing.T) {
	ctx := context.Background()
	t.Run("claim", func(t *testing.T) {
		s, armed := lossyStore(t)
		req := claimReq("k", "fp", 30*time.Second)
		var c idempotency.Claim
		var err error
		lose(t, armed, func() { c, err = s.Claim(ctx, req) })
		if err != nil || c.Status != idempotency.Claimed {
			t.Fatalf("sole claimer whose reply was lost got %+v, %v; want Claimed", c, err)
		}
		rec, err := s.Get(ctx, req.Key)
		if err != nil || rec.State != idempotency.StateInProgress || rec.Token != c.Token {
			t.Fatalf("Get = %+v, %v; want in progress with token %d", rec, err, c.Token)
		}
		// Another call with the same payload is still told InProgress.
		if dup, err := s.Claim(ctx, req); err != nil || dup.Status != idempotency.InProgress || dup.Token != c.Token {
			t.Fatalf("duplicate = %+v, %v; want InProgress", dup, err)
		}
		if err := s.Complete(ctx, req.Key, c.Token, idempotency.Result{Body: []byte("done")}); err != nil {
			t.Fatalf("Complete with the re-sent claim's token: %v", err)
		}
	})
	t.Run("complete", func(t *testing.T) {
		s, armed := lossyStore(t)
		req := claimReq("k", "fp", 30*time.Second)
		c, err := s.Claim(ctx, req)
		if err != nil || c.Status != idempotency.Claimed {
			t.Fatal(c, err)
		}
		lose(t, armed, func() {
			err = s.Complete(ctx, req.Key, c.Token, idempotency.Result{StatusCode: 201, Body: []byte("paid")})
		})
		if err != nil {
			t.Fatalf("Complete whose reply was lost = %v; want nil (the result was stored)", err)
		}
		rec, err := s.Get(ctx, req.Key)
		if err != nil || rec.State != idempotency.StateCompleted || rec.Token != c.Token || rec.Result == nil || string(rec.Result.Body) != "paid" {
			t.Fatalf("Get = %+v, %v; want completed with the result", rec, err)
		}
		// Completed is still final: a second call is refused.
		if err := s.Complete(ctx, req.Key, c.Token, idempotency.Result{Body: []byte("again")}); !errors.Is(err, idempotency.ErrLeaseLost) {
			t.Fatalf("second Complete = %v; want ErrLeaseLost", err)
		}
	})
	t.Run("release", func(t *testing.T) {
		s, armed := lossyStore(t)
		req := claimReq("k", "fp", 30*time.Second)
		c, err := s.Claim(ctx, req)
		if err != nil || c.Status != idempotency.Claimed {
			t.Fatal(c, err)
		}
		lose(t, armed, func() { err = s.Release(ctx, req.Key, c.Token) })
		if err != nil {
			t.Fatalf("Release whose reply was lost = %v; want nil", err)
		}
		if rec, err := s.Get(ctx, req.Key); err != nil || rec.State != idempotency.StateReleased || rec.Token != c.Token {
			t.Fatalf("Get = %+v, %v; want released", rec, err)
		}
		if err := s.Release(ctx, req.Key, c.Token); !errors.Is(err, idempotency.ErrLeaseLost) {
			t.Fatalf("second Release = %v; want ErrLeaseLost", err)
		}
	})
	t.Run("renew", func(t *testing.T) {
		s, armed := lossyStore(t)
		req := claimReq("k", "fp", time.Second)
		c, err := s.Claim(ctx, req)
		if err != nil || c.Status != idempotency.Claimed {
			t.Fatal(c, err)
		}
		lose(t, armed, func() { err = s.Renew(ctx, req.Key, c.Token, time.Minute) })
		if err != nil {
			t.Fatalf("Renew whose reply was lost = %v; want nil", err)
		}
		if rec, err := s.Get(ctx, req.Key); err != nil || rec.LeaseRemaining <= 50*time.Second {
			t.Fatalf("Get = %+v, %v; want the renewed lease", rec, err)
		}
	})
}

// TestLostReplyOnCompleteThroughDo: one lost reply on Complete must not turn
// a recorded operation into an ErrLeaseLost ("result not recorded") for
// the caller of Do.
func TestLostReplyOnCompleteThroughDo(t *testing.T) {
	s, armed := lossyStore(t)
	exec, err := idempotency.New(idempotency.Config{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	k := idempotency.Key{Scope: "tenant-a", Key: "do"}
	v, err := idempotency.Do(context.Background(), exec, k, "payload", func(context.Context) (string, error) {
		armed.Store(true) // the next script is Complete
		return "charged", nil
	})
	if armed.Load() {
		t.Fatal("no script reply was lost")
	}
	if err != nil || v != "charged" {
		t.Fatalf("Do = %q, %v; want charged, nil", v, err)
	}
	if rec, err := s.Get(context.Background(), k); err != nil || rec.State != idempotency.StateCompleted {
		t.Fatalf("Get = %+v, %v; want completed", rec, err)
	}
}

// stallProxy forwards TCP connections to the test server and, while
// stalled, holds the server's replies: a server or network that stops
// answering.
type stallProxy struct {
	addr string
	mu   sync.Mutex
	held chan struct{} // non-nil while stalled; closed to let replies through
}

func newStallProxy(t *testing.T) *stallProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{addr: l.Addr().String()}
	target := testenv.RedisAddr(t)
	var (
		wg    sync.WaitGroup
		cmu   sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		p.resume()
		_ = l.Close()
		cmu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		cmu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			cmu.Lock()
			conns = append(conns, c, s)
			cmu.Unlock()
			wg.Go(func() { _, _ = io.Copy(s, c); _ = s.Close() })
			wg.Go(func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := s.Read(buf)
					if n > 0 {
						p.wait()
						if _, err := c.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			})
		}
	})
	return p
}

func (p *stallProxy) stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held == nil {
		p.held = make(chan struct{})
	}
}

func (p *stallProxy) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held != nil {
		close(p.held)
		p.held = nil
	}
}

func (p *stallProxy) wait() {
	p.mu.Lock()
	h := p.held
	p.mu.Unlock()
	if h != nil {
		<-h
	}
}

// inflightHook counts the commands in flight, so a test can wait for the
// ones a call abandoned on cancel.
type inflightHook struct{ n atomic.Int64 }

func (h *inflightHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *inflightHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		defer h.n.Add(-1)
		return next(ctx, cmd)
	}
}
func (h *inflightHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		defer h.n.Add(-1)
		return next(ctx, cmds)
	}
}

// TestContextEndsCallWhileServerStalls: the Store contract says a canceled
// context returns promptly. go-redis never reacts to a cancel while it waits
// for a reply, and without ContextTimeoutEnabled not to a deadline either:
// it would wait for a stalled reply until ReadTimeout (5 s by default).
// Every operation must return at once instead, canceled or timed out as its
// context says. The abandoned command still ends on its own once the server
// answers. The stalled server answers only after serverAnswers, far longer
// than the 20 ms the context allows (and shorter than ReadTimeout, so a call
// that waits for the reply gets it and fails the test in that time): each call
// must return while its reply is still held.
func TestContextEndsCallWhileServerStalls(t *testing.T) {
	const serverAnswers = 3 * time.Second
	p := newStallProxy(t)
	c := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{p.addr}})
	t.Cleanup(func() { _ = c.Close() })
	inflight := &inflightHook{}
	c.AddHook(inflight)
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	s := newStore(t, c, testPrefix(t))
	req := claimReq("k", "fp", time.Minute)
	ops := []struct {
		name string
		call func(context.Context) error
	}{
		{"claim", func(ctx context.Context) error { _, err := s.Claim(ctx, req); return err }},
		{"complete", func(ctx context.Context) error { return s.Complete(ctx, req.Key, 1, idempotency.Result{}) }},
		{"release", func(ctx context.Context) error { return s.Release(ctx, req.Key, 1) }},
		{"renew", func(ctx context.Context) error { return s.Renew(ctx, req.Key, 1, time.Minute) }},
		{"get", func(ctx context.Context) error { _, err := s.Get(ctx, req.Key); return err }},
	}
	for _, end := range []string{"cancel", "deadline"} {
		for _, op := range ops {
			if end == "deadline" && op.name != "claim" {
				continue // every call ends the same way; one maps the deadline
			}
			t.Run(end+"/"+op.name, func(t *testing.T) {
				t.Cleanup(p.resume)
				var ctx context.Context
				var cancel context.CancelFunc
				if end == "cancel" {
					ctx, cancel = context.WithCancel(context.Background())
					time.AfterFunc(20*time.Millisecond, cancel)
				} else {
					ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
				}
				defer cancel()
				p.stall()
				var err error
				done := make(chan struct{})
				go func() { defer close(done); err = op.call(ctx) }()
				// The reply is held until the call returns or serverAnswers
				// passes: returning first is returning before the server
				// answered, however late this goroutine gets to look.
				server := time.NewTimer(serverAnswers)
				select {
				case <-done:
				case <-server.C:
					select {
					case <-done: // returned just in time; the reply is still held
					default:
						t.Errorf("no return within %v of a 20 ms context: the call waits for the server's reply", serverAnswers)
						p.resume()
						<-done
					}
				}
				server.Stop()
				p.resume()
				// The abandoned command gets its reply now and ends.
				for deadline := time.Now().Add(5 * time.Second); inflight.n.Load() != 0; time.Sleep(time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatal("the abandoned command did not end after the server answered")
					}
				}
				if end == "cancel" && (!errors.Is(err, context.Canceled) || !errors.Is(err, contract.ErrCanceled)) {
					t.Errorf("err = %v; want KindCanceled matching context.Canceled", err)
				}
				if end == "deadline" && (!errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, contract.ErrTimeout) || !contract.Retryable(err)) {
					t.Errorf("err = %v; want retryable KindTimeout matching context.DeadlineExceeded", err)
				}
			})
		}
	}
	// The abandoned Claims ran on the server all the same: the outcome of a
	// canceled call is ambiguous, like a timeout's.
	if rec, err := s.Get(context.Background(), req.Key); err != nil || rec.State != idempotency.StateInProgress {
		t.Fatalf("Get = %+v, %v; want the record an abandoned Claim wrote", rec, err)
	}
}

// panicHook panics in every command, as a faulty tracing or metrics hook
// would.
type panicHook struct{}

func (panicHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (panicHook) ProcessHook(redis.ProcessHook) redis.ProcessHook {
	return func(context.Context, redis.Cmder) error { panic("hook panicked") }
}
func (panicHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A panic in the client reaches the caller's goroutine, where its recover
// (net/http's, the executor's) can see it, also when the call ran on a
// goroutine of its own because the context can be canceled: there nothing
// could recover it and the process would end.
func TestClientPanicReachesTheCaller(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { _ = c.Close() })
	c.AddHook(panicHook{})
	s, err := New(Config{Client: c, Prefix: testPrefix(t)}) // nothing reaches Redis: no cleanup
	if err != nil {
		t.Fatal(err)
	}
	for name, ctx := range map[string]context.Context{
		"background": context.Background(),
		"cancelable": t.Context(),
	} {
		got := func() (p any) {
			defer func() { p = recover() }()
			_, _ = s.Get(ctx, idempotency.Key{Scope: "s", Key: "k"})
			return nil
		}()
		if got != "hook panicked" {
			t.Errorf("%s context: the caller recovered %v, want the hook's panic", name, got)
		}
	}
}
