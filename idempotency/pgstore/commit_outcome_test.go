package pgstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/internal/testenv"
)

// commitFault breaks the connection at DoTx's COMMIT, once armed.
type commitFault int

const (
	// replyLost: the COMMIT reaches the server, which commits and answers;
	// the connection dies before the client reads the answer.
	replyLost commitFault = iota + 1
	// neverSent: the client's write of COMMIT fails, but the socket stays
	// open (a network partition): the server, unaware, keeps the
	// transaction open and its locks held, until the test lets go.
	neverSent
)

// lossyDialer wraps the pool's connections to inject a commitFault.
type lossyDialer struct {
	fault atomic.Int32 // the commitFault of the next COMMIT, 0 for none
	mu    sync.Mutex
	held  []net.Conn // neverSent sockets, still open on the server's side
}

func (d *lossyDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &lossyConn{Conn: c, d: d}, nil
}

// letGo closes the held sockets: the server sees the client gone and rolls
// their transactions back.
func (d *lossyDialer) letGo() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.held {
		_ = c.Close()
	}
	d.held = nil
}

type lossyConn struct {
	net.Conn
	d         *lossyDialer
	dropReply atomic.Bool
	hold      atomic.Bool
}

var errReset = &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}

func (c *lossyConn) Write(b []byte) (int, error) {
	if c.hold.Load() {
		// Nothing more reaches the server (not even pgconn's Terminate
		// when it closes the connection).
		return 0, &net.OpError{Op: "write", Net: "tcp", Err: syscall.ECONNRESET}
	}
	if bytes.Contains(b, []byte("commit\x00")) {
		switch commitFault(c.d.fault.Swap(0)) {
		case replyLost:
			c.dropReply.Store(true)
		case neverSent:
			c.hold.Store(true)
			c.d.mu.Lock()
			c.d.held = append(c.d.held, c.Conn)
			c.d.mu.Unlock()
			return 0, &net.OpError{Op: "write", Net: "tcp", Err: syscall.ECONNRESET}
		}
	}
	return c.Conn.Write(b)
}

// Read, after a replyLost COMMIT, reads the server's whole answer (up to
// ReadyForQuery: the server has committed), drops it and fails as a reset
// connection would.
func (c *lossyConn) Read(b []byte) (int, error) {
	if c.dropReply.Load() {
		var hdr [5]byte
		for hdr[0] != 'Z' {
			if _, err := io.ReadFull(c.Conn, hdr[:]); err != nil {
				return 0, err
			}
			if _, err := io.CopyN(io.Discard, c.Conn, int64(binary.BigEndian.Uint32(hdr[1:]))-4); err != nil {
				return 0, err
			}
		}
		_ = c.Conn.Close()
		return 0, errReset
	}
	return c.Conn.Read(b)
}

func (c *lossyConn) Close() error {
	if c.hold.Load() {
		return nil // left open: see lossyDialer.letGo
	}
	return c.Conn.Close()
}

// lossyStore is a Store on the txEnv's table whose pool injects commit
// faults through the returned dialer.
func lossyStore(t *testing.T, e *txEnv) (*Store, *lossyDialer) {
	cfg, err := pgxpool.ParseConfig(testenv.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	d := &lossyDialer{}
	cfg.ConnConfig.DialFunc = d.dial
	cfg.ConnConfig.RuntimeParams["application_name"] = "pgstore-commit-outcome"
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.letGo(); p.Close() })
	s, err := New(Config{Pool: p, Schema: testSchema, Table: e.s.table, TxLease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return s, d
}

// The connection dies while the COMMIT's answer is on its way: the server
// committed. DoTx must not report a failure (let alone a retryable
// "unavailable", read as "not done") for work that is done: it settles the
// outcome from the record and returns fn's value.
func TestDoTxCommitReplyLostReportsTheCommit(t *testing.T) {
	e := newTxEnv(t, time.Minute)
	s, d := lossyStore(t, e)
	ctx := context.Background()
	k := idempotency.Key{Scope: "tx", Key: "reply-lost"}
	got, err := DoTx(ctx, s, k, "fp", func(ctx context.Context, tx pgx.Tx) (payment, error) {
		p, err := e.insert(ctx, tx, k.Key)
		d.fault.Store(int32(replyLost))
		return p, err
	})
	if d.fault.Load() != 0 {
		t.Fatal("the fault was not injected: no COMMIT seen")
	}
	if n := e.rows(t, k.Key); n != 1 {
		t.Fatalf("%d business rows; the server should have committed one", n)
	}
	if err != nil {
		t.Fatalf("DoTx = %v after the server committed; want fn's value", err)
	}
	if got.Key != k.Key || got.Row != e.rowID(t, k.Key) {
		t.Fatalf("DoTx = %+v, want the committed row %d", got, e.rowID(t, k.Key))
	}
	again, err := DoTx(ctx, e.s, k, "fp", func(ctx context.Context, tx pgx.Tx) (payment, error) {
		t.Error("fn ran again on a committed key")
		return payment{}, nil
	})
	if err != nil || again != got {
		t.Fatalf("replay = %+v, %v", again, err)
	}
}

// The COMMIT never reaches a server that still holds the transaction open
// (a partition): DoTx cannot know whether it will commit. It must say so —
// KindTimeout ("it may have succeeded"), code pgstore.commit_unknown,
// retryable — not that the database was unavailable. A retry is safe
// because the record commits with fn's writes: once the server lets the
// transaction go, the retry runs fn exactly once.
func TestDoTxCommitUnknownSaysSo(t *testing.T) {
	e := newTxEnv(t, time.Minute)
	s, d := lossyStore(t, e)
	ctx := context.Background()
	k := idempotency.Key{Scope: "tx", Key: "never-sent"}
	_, err := DoTx(ctx, s, k, "fp", func(ctx context.Context, tx pgx.Tx) (payment, error) {
		p, err := e.insert(ctx, tx, k.Key)
		d.fault.Store(int32(neverSent))
		return p, err
	})
	if d.fault.Load() != 0 {
		t.Fatal("the fault was not injected: no COMMIT seen")
	}
	ce := contract.As(err)
	if ce == nil || ce.Kind != contract.KindTimeout || ce.Code != "pgstore.commit_unknown" || !contract.Retryable(err) {
		t.Fatalf("DoTx = %v; want a retryable KindTimeout pgstore.commit_unknown", err)
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("DoTx = %v; want the connection error wrapped", err)
	}
	d.letGo()
	// The server rolls the transaction back once it sees the client gone;
	// this UPDATE waits for that (the transaction holds the row), then ends
	// the lease the stalled claim would keep for a minute.
	if err := e.expireLease(ctx, k); err != nil {
		t.Fatal(err)
	}
	if n := e.rows(t, k.Key); n != 0 {
		t.Fatalf("%d business rows after the rollback", n)
	}
	got := e.retryUntilDone(t, k)
	if n := e.rows(t, k.Key); n != 1 || got.Row != e.rowID(t, k.Key) {
		t.Fatalf("after the retry: %d rows, DoTx = %+v", n, got)
	}
}
