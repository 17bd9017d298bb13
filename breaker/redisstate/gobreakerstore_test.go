package redisstate_test

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

	"github.com/sadpath/sadpath/breaker/redisstate"
	"github.com/sadpath/sadpath/internal/testenv"
)

// lostReplyProxy forwards connections to a Redis server, except that the
// first command naming key that the server runs without an error has its
// reply thrown away and its connection closed: the command ran, and the
// client saw the connection drop. (An error reply, such as NOSCRIPT before
// go-redis sends a script's text, is forwarded: that command did nothing.)
type lostReplyProxy struct {
	ln     net.Listener
	target string
	key    []byte
	armed  atomic.Bool
	lost   atomic.Bool // a reply was thrown away
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

func newLostReplyProxy(t *testing.T, target, key string) *lostReplyProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &lostReplyProxy{ln: ln, target: target, key: []byte(key)}
	p.armed.Store(true)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *lostReplyProxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
}

func (p *lostReplyProxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.track(client)
		p.track(server)
		var drop atomic.Bool // the command just forwarded is the one to lose
		p.wg.Add(2)
		go func() { // client to server
			defer p.wg.Done()
			defer server.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := client.Read(buf)
				if err != nil {
					return
				}
				if p.armed.Load() && bytes.Contains(buf[:n], p.key) {
					drop.Store(true)
				}
				if _, err := server.Write(buf[:n]); err != nil {
					return
				}
			}
		}()
		go func() { // server to client
			defer p.wg.Done()
			defer client.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := server.Read(buf)
				if err != nil {
					return
				}
				if drop.Swap(false) && buf[0] != '-' && p.armed.CompareAndSwap(true, false) {
					p.lost.Store(true)
					return // the reply is lost with the connection
				}
				if _, err := client.Write(buf[:n]); err != nil {
					return
				}
			}
		}()
	}
}

// lostReplyHook hands the caller an error for the first command naming key,
// after the server ran it: go-redis's own retries are behind it, so the
// error reaches the caller (its retries exhausted, or MaxRetries -1).
type lostReplyHook struct {
	key  string
	lost atomic.Bool
}

func (h *lostReplyHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *lostReplyHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if err != nil {
			return err
		}
		for _, a := range cmd.Args() {
			if s, ok := a.(string); ok && s == h.key && h.lost.CompareAndSwap(false, true) {
				cmd.SetErr(io.ErrUnexpectedEOF)
				return io.ErrUnexpectedEOF
			}
		}
		return nil
	}
}
func (h *lostReplyHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// The SET that takes the lock runs, and its reply is lost: the retry, by
// go-redis or by gobreaker (which calls Lock again every 500ms for up to
// 5s), found the lock held — by itself — and waited for it to expire after
// lockTTL, or failed the call. Lock recognises its own lock now; another
// store still cannot take it, and Unlock releases it.
func TestGobreakerStoreLockSurvivesALostReply(t *testing.T) {
	c, _ := client(t)
	addr := testenv.RedisAddr(t)
	check := func(t *testing.T, a *redisstate.GobreakerStore, lock string, lost *atomic.Bool, callerRetries bool) {
		t.Helper()
		other, err := redisstate.NewGobreakerStore(c, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Del(context.Background(), lock) })
		err = a.Lock(lock)
		if !lost.Load() {
			t.Fatal("no reply was lost")
		}
		if callerRetries {
			if err == nil {
				t.Fatal("Lock reported the lock taken, though its reply was lost")
			}
			err = a.Lock(lock) // as gobreaker does
		}
		if err != nil {
			t.Fatalf("Lock after its lost reply: %v; want the lock, taken by the lost SET", err)
		}
		if err := other.Lock(lock); !errors.Is(err, redisstate.ErrLocked) {
			t.Fatalf("another store while the lock is held: %v, want ErrLocked", err)
		}
		if err := a.Unlock(lock); err != nil {
			t.Fatal(err)
		}
		if err := other.Lock(lock); err != nil {
			t.Fatalf("another store after Unlock: %v", err)
		}
	}
	t.Run("go-redis retries", func(t *testing.T) {
		lock := testPrefix + uniqueName(t) + ":lock"
		p := newLostReplyProxy(t, addr, lock)
		pc := redis.NewClient(&redis.Options{Addr: p.ln.Addr().String()})
		t.Cleanup(func() { pc.Close() })
		a, err := redisstate.NewGobreakerStore(pc, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		check(t, a, lock, &p.lost, false)
	})
	t.Run("the caller retries", func(t *testing.T) {
		lock := testPrefix + uniqueName(t) + ":lock"
		hc := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { hc.Close() })
		h := &lostReplyHook{key: lock}
		hc.AddHook(h)
		a, err := redisstate.NewGobreakerStore(hc, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		check(t, a, lock, &h.lost, true)
	})
}

// Two goroutines share a store: the first holds the lock past lockTTL (a
// slow call), it expires, and the second takes it. The first one's late
// Unlock — Unlock(name) does not say whose lock — released the second
// one's, letting a third holder in alongside it. Now a lock stays held
// until every goroutine that took it through the store has unlocked (the
// store cannot tell which of the two unlocks first; either way, only the
// second one's lock is still held).
func TestGobreakerStoreLateUnlockKeepsTheNewerLock(t *testing.T) {
	c, _ := client(t)
	ctx := context.Background()
	lock := testPrefix + uniqueName(t) + ":lock"
	t.Cleanup(func() { c.Del(ctx, lock) })
	a, err := redisstate.NewGobreakerStore(c, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := redisstate.NewGobreakerStore(c, time.Minute)
	if err := a.Lock(lock); err != nil { // the first goroutine
		t.Fatal(err)
	}
	// Its lock expires.
	c.Del(ctx, lock)
	if err := a.Lock(lock); err != nil { // the second goroutine
		t.Fatal(err)
	}
	if err := a.Unlock(lock); err != nil { // one of them is done
		t.Fatal(err)
	}
	if err := other.Lock(lock); !errors.Is(err, redisstate.ErrLocked) {
		t.Fatalf("after one of the two Unlocks, another holder: %v, want ErrLocked", err)
	}
	if err := a.Unlock(lock); err != nil { // and the other
		t.Fatal(err)
	}
	if err := other.Lock(lock); err != nil {
		t.Fatalf("after both Unlocks, another holder: %v", err)
	}
}

// A lockTTL under a millisecond is accepted: the lock is taken for 1ms,
// as go-redis's SetNX rounds it up. Written in whole milliseconds by the
// lock script, it was PX 0, which Redis refuses: every Lock failed.
func TestGobreakerStoreSubMillisecondLockTTL(t *testing.T) {
	c, _ := client(t)
	lock := testPrefix + uniqueName(t) + ":lock"
	t.Cleanup(func() { c.Del(context.Background(), lock) })
	s, err := redisstate.NewGobreakerStore(c, 500*time.Microsecond)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Lock(lock); err != nil {
		t.Fatalf("Lock with a lockTTL of 500µs: %v", err)
	}
	if ttl := c.PTTL(context.Background(), lock).Val(); ttl > time.Millisecond {
		t.Fatalf("the lock lives %v, want at most 1ms", ttl)
	}
}
