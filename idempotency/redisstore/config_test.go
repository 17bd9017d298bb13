package redisstore

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
)

func TestNewRejectsBadConfig(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialed
	defer c.Close()
	cases := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"nil client", Config{}, "Config.Client"},
		{"nil *redis.Client", Config{Client: (*redis.Client)(nil)}, "Config.Client"},
		{"nil *redis.ClusterClient", Config{Client: (*redis.ClusterClient)(nil)}, "Config.Client"},
		{"brace in prefix", Config{Client: c, Prefix: "a{b"}, "Config.Prefix"},
		{"closing brace", Config{Client: c, Prefix: "a}"}, "Config.Prefix"},
		{"long prefix", Config{Client: c, Prefix: strings.Repeat("p", 257)}, "Config.Prefix"},
		{"negative max", Config{Client: c, MaxResultBytes: -1}, "Config.MaxResultBytes"},
		{"max over Redis's bulk limit", Config{Client: c, MaxResultBytes: MaxMaxResultBytes + 1}, "Config.MaxResultBytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.cfg)
			if s != nil || !errors.Is(err, contract.ErrInvalid) {
				t.Fatalf("New = %v, %v; want KindInvalid", s, err)
			}
			e := contract.As(err)
			if e.Code != "config.invalid" || !strings.HasPrefix(e.Detail, tc.field+":") {
				t.Fatalf("code %q detail %q; want config.invalid naming %s", e.Code, e.Detail, tc.field)
			}
		})
	}
	s, err := New(Config{Client: c})
	if err != nil || s.prefix != DefaultPrefix || s.maxBytes != DefaultMaxResultBytes {
		t.Fatalf("defaults: %+v, %v", s, err)
	}
}

func TestClaimRejectsBadRequest(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	s, _ := New(Config{Client: c})
	ctx := context.Background()
	for _, req := range []idempotency.ClaimRequest{
		{Lease: 0, Retention: 1},
		{Lease: -1, Retention: 1},
		{Lease: 2, Retention: 1},
	} {
		if _, err := s.Claim(ctx, req); !errors.Is(err, contract.ErrInvalid) {
			t.Errorf("Claim(%+v) = %v; want KindInvalid", req, err)
		}
	}
	if err := s.Renew(ctx, idempotency.Key{}, 1, 0); !errors.Is(err, contract.ErrInvalid) {
		t.Errorf("Renew(lease 0) = %v; want KindInvalid", err)
	}
}

func TestTooLargeResult(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	s, _ := New(Config{Client: c, MaxResultBytes: 10})
	err := s.Complete(context.Background(), idempotency.Key{Key: "k"}, 1, idempotency.Result{Body: make([]byte, 11)})
	if !errors.Is(err, contract.ErrTooLarge) {
		t.Fatalf("err = %v; want KindTooLarge", err)
	}
}

// A server that is not there: every call is a retryable unavailable error,
// promptly, never a panic.
func TestUnreachableServerIsUnavailable(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	defer c.Close()
	s, _ := New(Config{Client: c})
	ctx := context.Background()
	_, err := s.Claim(ctx, idempotency.ClaimRequest{Key: idempotency.Key{Key: "k"}, Lease: 1e9, Retention: 1e9})
	if !errors.Is(err, contract.ErrUnavailable) || !contract.Retryable(err) {
		t.Fatalf("Claim err = %v; want retryable KindUnavailable", err)
	}
	if _, err := s.Get(ctx, idempotency.Key{Key: "k"}); !errors.Is(err, contract.ErrUnavailable) {
		t.Fatalf("Get err = %v", err)
	}
}

func TestMapError(t *testing.T) {
	cases := []struct {
		err  error
		kind contract.Kind
	}{
		{context.Canceled, contract.KindCanceled},
		{context.DeadlineExceeded, contract.KindTimeout},
		{&net.OpError{Op: "read", Err: timeoutErr{}}, contract.KindTimeout},
		{io.EOF, contract.KindUnavailable},
		{redis.ErrClosed, contract.KindUnavailable},
		{redis.ErrPoolTimeout, contract.KindUnavailable},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, contract.KindUnavailable},
		{redisErr("READONLY You can't write against a read only replica."), contract.KindUnavailable},
		{redisErr("LOADING Redis is loading the dataset in memory"), contract.KindUnavailable},
		{redisErr("CLUSTERDOWN The cluster is down"), contract.KindUnavailable},
		{redisErr("OOM command not allowed when used memory > 'maxmemory'."), contract.KindUnavailable},
		{redisErr("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled"), contract.KindUnavailable},
		{redisErr("ERR Error running script"), contract.KindInternal},
		// Before Redis 7 (and on servers that kept its format, such as
		// Dragonfly) an error raised by a command inside a script comes
		// back wrapped in "ERR Error running script …": the code a failover
		// or a full memory gives is inside it.
		{redisErr("ERR Error running script (call to f_1028a5dba704e1d8a01fd96efeba25bb78f62df2): @user_script:4: @user_script: 4: -READONLY You can't write against a read only replica."), contract.KindUnavailable},
		{redisErr("ERR Error running script (call to f_d8f2fad9f8e86a53d2a6ebd960b33c4972cacc37): @user_script:2: -READONLY You can't write against a read only replica."), contract.KindUnavailable},
		{redisErr("ERR Error running script (call to f_7c3c72256b7000c652f63d624211576357d51abb): @user_script:12: @user_script: 12: -OOM command not allowed when used memory > 'maxmemory'."), contract.KindUnavailable},
		{redisErr("ERR Error running script (call to f_7c3c72256b7000c652f63d624211576357d51abb): @user_script:3: @user_script: 3: -WRONGTYPE Operation against a key holding the wrong kind of value"), contract.KindInternal},
		{redisErr("ERR Error running script (call to f_7c3c72256b7000c652f63d624211576357d51abb): @user_script:3: user_script:3: attempt to perform arithmetic on a nil value"), contract.KindInternal},
		{redisErr("WRONGTYPE Operation against a key holding the wrong kind of value"), contract.KindInternal},
		{errReply, contract.KindInternal},
	}
	for _, tc := range cases {
		e := mapError("redisstore.test", tc.err)
		if e.Kind != tc.kind || !errors.Is(e, tc.err) || e.Op != "redisstore.test" {
			t.Errorf("mapError(%v) = %v (kind %v); want kind %v wrapping the cause", tc.err, e, e.Kind, tc.kind)
		}
	}
	if !errors.Is(mapError("op", context.Canceled), context.Canceled) {
		t.Error("canceled error must match context.Canceled")
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

type redisErr string

func (e redisErr) Error() string { return string(e) }
func (redisErr) RedisError()     {}
