// Command payments is an HTTP payments service composing every sadpath
// package: correlation ids and access logs (logctx), strict decoding and
// validation with RFC 9457 problems (contract), the Idempotency-Key
// middleware (idempotency, on memory, Redis or PostgreSQL), and a gateway
// client protected by a bulkhead (limit), retries carrying the same key
// (retry) and a circuit breaker (breaker).
//
//	go run ./examples/payments                       # in-memory, fake gateway in-process
//	go run ./examples/payments -store redis -redis-addr 127.0.0.1:6379
//	go run ./examples/payments -store postgres -pg-dsn postgres://postgres@127.0.0.1:5432/test
//	                           # deletes expired records every -pg-cleanup-interval (1m, at least 10ms; 0 on all instances but one)
//	go run ./examples/payments -gateway-fail-rate 0.3 -gateway-latency 200ms
//
// The payments themselves are kept in memory, per process: with -store
// redis or postgres the idempotency records are shared and survive a
// restart, so a 201 replayed by another instance, or after a restart,
// carries the whole payment in its body, but its Location answers 404
// there. A real service keeps its payments in its database, written in the
// same transaction as the idempotency record (pgstore.DoTx).
//
// See examples/README.md for the contract and curl lines.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/idempotency/pgstore"
	"github.com/sadpath/sadpath/idempotency/redisstore"
	"github.com/sadpath/sadpath/logctx"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "payments:", err)
		os.Exit(1)
	}
}

// minCleanupInterval is the shortest -pg-cleanup-interval: each round is
// at least one DELETE statement, so 1ns (or 1ms typed for 1m) would be a
// tight loop against the database. Production wants minutes; 10ms lets
// tests see a round quickly.
const minCleanupInterval = 10 * time.Millisecond

// options are the command-line flags.
type options struct {
	addr, store, redisAddr, redisPrefix, pgDSN, pgTable string
	failRate                                            float64
	latency, pgCleanup                                  time.Duration
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("payments", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "listen address")
	fs.StringVar(&o.store, "store", "memory", "idempotency store: memory, redis or postgres")
	fs.StringVar(&o.redisAddr, "redis-addr", "127.0.0.1:6379", "Redis address (-store redis)")
	fs.StringVar(&o.redisPrefix, "redis-prefix", "payments:idem:", "Redis key prefix (-store redis)")
	fs.StringVar(&o.pgDSN, "pg-dsn", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "PostgreSQL DSN (-store postgres)")
	fs.StringVar(&o.pgTable, "pg-table", "payments_idempotency", "PostgreSQL table (-store postgres)")
	fs.DurationVar(&o.pgCleanup, "pg-cleanup-interval", time.Minute, "how often expired records are deleted (-store postgres), at least 10ms; 0 disables it: run it on one instance")
	fs.Float64Var(&o.failRate, "gateway-fail-rate", 0, "share of gateway charges failing with 503, in [0, 1]")
	fs.DurationVar(&o.latency, "gateway-latency", 0, "latency added to every gateway charge")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if !(o.failRate >= 0 && o.failRate <= 1) { // also rejects NaN
		return o, fmt.Errorf("-gateway-fail-rate must be in [0, 1], got %v", o.failRate)
	}
	if o.latency < 0 {
		return o, fmt.Errorf("-gateway-latency must be >= 0, got %v", o.latency)
	}
	if o.pgCleanup != 0 && o.pgCleanup < minCleanupInterval {
		return o, fmt.Errorf("-pg-cleanup-interval must be 0 (disabled) or at least %v, got %v", minCleanupInterval, o.pgCleanup)
	}
	return o, nil
}

// openStore opens the idempotency store the flags name; close releases it.
func openStore(ctx context.Context, o options, logger *slog.Logger) (store idempotency.Store, close func(), err error) {
	switch o.store {
	case "memory":
		s, err := idempotency.NewMemoryStore(idempotency.MemoryConfig{})
		return s, func() {}, err
	case "redis":
		client := redis.NewClient(&redis.Options{Addr: o.redisAddr})
		if err := client.Ping(ctx).Err(); err != nil {
			client.Close()
			return nil, nil, fmt.Errorf("redis at %s: %w", o.redisAddr, err)
		}
		s, err := redisstore.New(redisstore.Config{Client: client, Prefix: o.redisPrefix, Logger: logger})
		if err != nil {
			client.Close()
			return nil, nil, err
		}
		return s, func() { client.Close() }, nil
	case "postgres":
		pool, err := pgxpool.New(ctx, o.pgDSN)
		if err != nil {
			return nil, nil, fmt.Errorf("postgres: %w", err)
		}
		s, err := pgstore.New(pgstore.Config{Pool: pool, Table: o.pgTable, Logger: logger})
		if err == nil {
			err = s.Migrate(ctx)
		}
		if err != nil {
			pool.Close()
			return nil, nil, err
		}
		return s, pool.Close, nil
	}
	return nil, nil, fmt.Errorf("-store must be memory, redis or postgres, got %q", o.store)
}

// expiredDeleter is a store whose expired records stay on disk until deleted
// (pgstore; Redis expires its keys itself, the memory store evicts).
type expiredDeleter interface {
	DeleteExpired(ctx context.Context, limit int) (int64, error)
}

// minCleanupCallTimeout is the least time one DeleteExpired call is given
// (see startCleanup).
const minCleanupCallTimeout = time.Second

// startCleanup deletes s's expired records every interval, in batches of
// batch rows, calling again at once while a batch comes back full (each
// call is one short statement that skips locked rows). stop ends it and
// returns once the goroutine has: call it before closing the store.
//
// Each call is bounded by the interval (at least minCleanupCallTimeout):
// pgstore has no timeout of its own, and a database that stops answering
// without resetting the connection (a partition, a failover) would hold
// the call, and with it every later round, for as long as the kernel keeps
// the connection (a quarter of an hour and more). Given up, the round is
// logged as failed and the next tick tries again.
func startCleanup(ctx context.Context, s expiredDeleter, interval time.Duration, batch int, logger *slog.Logger) (stop func()) {
	callTimeout := max(interval, minCleanupCallTimeout)
	ctx, cancel := context.WithCancel(logctx.WithOperation(ctx, "payments.idempotency_cleanup"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			// One correlation id per round joins its lines with the store's own.
			rctx := logctx.WithCorrelationID(ctx, logctx.NewCorrelationID())
			var total int64
			for ctx.Err() == nil {
				cctx, cancel := context.WithTimeout(rctx, callTimeout)
				n, err := s.DeleteExpired(cctx, batch)
				cancel()
				total += n
				if err != nil {
					if ctx.Err() == nil { // not a shutdown: the next tick tries again
						logctx.Decision(rctx, logger, slog.LevelError, "expired records not deleted", "idempotency store failed",
							slog.String(logctx.KeyDependency, "idempotency-store"), slog.Int64("deleted", total), slog.Any("error", err))
					}
					break
				}
				if n < int64(batch) {
					break
				}
			}
			if total > 0 {
				logger.LogAttrs(rctx, slog.LevelInfo, "expired idempotency records deleted", slog.Int64("deleted", total))
			}
		}
	}()
	return func() { cancel(); <-done }
}

// demoKeys are the API keys run serves (API key → merchant): merchant-1
// holds two, as while it rotates them, and merchant-2 one. A real service
// keeps its keys in its database, hashed, and issues and revokes them
// through Keys.Issue and Keys.Revoke or its own table.
func demoKeys() map[string]string {
	return map[string]string{
		"sk_test_merchant1_a": "merchant-1",
		"sk_test_merchant1_b": "merchant-1",
		"sk_test_merchant2_a": "merchant-2",
	}
}

// serverTimeouts bound a connection of the service's HTTP server (see
// newServer).
type serverTimeouts struct {
	readHeader, read, write, idle time.Duration
}

// defaultTimeouts are the service's:
//
//   - readHeader 5 s and read 10 s, the whole request, its body included
//     (64 KiB at most): a client sending it slowly is cut off, its payment
//     never charged, instead of holding a connection, and a shutdown,
//     for as long as it likes.
//   - write 30 s, from the end of the request's headers: it must cover the
//     slowest request (its body within read, a bulkhead wait of 1 s, a
//     charge of up to chargeTimeout, the idempotency store's calls), or a
//     charged payment's 201 is cut off on its way; then the client's retry
//     with the same key gets it replayed. It also bounds a client reading
//     its answer slowly.
//   - idle 2 min: a keep-alive connection with no request is closed.
var defaultTimeouts = serverTimeouts{readHeader: 5 * time.Second, read: 10 * time.Second, write: 30 * time.Second, idle: 2 * time.Minute}

// newServer returns the service's HTTP server, bounded by t.
func newServer(h http.Handler, t serverTimeouts) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: t.readHeader, ReadTimeout: t.read, WriteTimeout: t.write,
		IdleTimeout: t.idle, MaxHeaderBytes: 64 << 10}
}

// run starts the fake gateway and the service, and serves until ctx is done;
// then it shuts down gracefully: in-flight requests finish. ready, when not
// nil, receives the service's address once it listens.
func run(ctx context.Context, args []string, logOut io.Writer, ready chan<- string) error {
	o, err := parseFlags(args, logOut)
	if err != nil {
		return err
	}
	h, err := logctx.NewHandler(logctx.HandlerConfig{Next: slog.NewJSONHandler(logOut, nil)})
	if err != nil {
		return err
	}
	logger := slog.New(h)

	store, closeStore, err := openStore(ctx, o, logger)
	if err != nil {
		return err
	}
	defer closeStore()
	stopCleanup := func() {}
	if d, ok := store.(expiredDeleter); ok && o.pgCleanup > 0 {
		stopCleanup = startCleanup(ctx, d, o.pgCleanup, pgstore.DefaultCleanupBatch, logger)
	}
	defer stopCleanup() // on every return, before closeStore (deferred calls run last in, first out)

	gw := &FakeGateway{FailRate: o.failRate, Latency: o.latency}
	gwHandler, err := gw.Handler(logger.With(slog.String("component", "fake-gateway")))
	if err != nil {
		return err
	}
	gwLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	gwSrv := &http.Server{Handler: gwHandler, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = gwSrv.Serve(gwLn) }()
	defer gwSrv.Close()

	keys, err := NewKeys(demoKeys())
	if err != nil {
		return err
	}
	handler, err := NewHandler(Config{Store: store, Keys: keys, GatewayURL: "http://" + gwLn.Addr().String(), Logger: logger})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	srv := newServer(handler, defaultTimeouts)
	logger.Info("payments listening", slog.String("addr", ln.Addr().String()), slog.String("store", o.store), slog.String("gateway", gwLn.Addr().String()))
	if ready != nil {
		ready <- ln.Addr().String()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down: finishing in-flight requests")
	stopCleanup() // a round in progress is abandoned: its statement is cancelled, the next instance's tick redoes it
	// A request lasts at most the write timeout: past it, every one in
	// flight has had its answer written or cut off.
	sctx, cancel := context.WithTimeout(context.Background(), defaultTimeouts.write+5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	logger.Info("shut down cleanly")
	return nil
}
