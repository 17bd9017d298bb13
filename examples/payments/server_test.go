package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// shortened is t with every timeout it sets cut to a fraction of a second
// (write to a few seconds: a charge must still be answered), and every
// timeout it leaves unset left unset: the server as run builds it, in
// test time.
func shortened(t serverTimeouts) serverTimeouts {
	short := func(d, to time.Duration) time.Duration { return min(d, to) }
	return serverTimeouts{readHeader: short(t.readHeader, 100*time.Millisecond), read: short(t.read, 200*time.Millisecond),
		write: short(t.write, 5*time.Second), idle: short(t.idle, 200*time.Millisecond)}
}

// A client sending its body slowly, or keeping an idle connection open,
// must not hold a connection forever nor delay a shutdown: the server's
// timeouts (the service's own, shortened) cut it off. failSafe only ends
// a test that would otherwise hang; no assertion depends on timing.
func TestServerCutsOffSlowClients(t *testing.T) {
	const failSafe = 10 * time.Second
	logger, _ := testLogger(t)
	gw := &FakeGateway{}
	gh, err := gw.Handler(logger)
	if err != nil {
		t.Fatal(err)
	}
	gsrv := httptest.NewServer(gh)
	t.Cleanup(gsrv.Close)
	handler, err := NewHandler(Config{Store: stores(t)["memory"](t), Keys: testKeys(t), GatewayURL: gsrv.URL, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	reached := make(chan struct{}, 1)
	srv := newServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			reached <- struct{}{}
		}
		handler.ServeHTTP(w, r)
	}), shortened(defaultTimeouts))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	dial := func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.SetDeadline(time.Now().Add(failSafe)); err != nil {
			t.Fatal(err)
		}
		return c
	}
	closedByServer := func(what string, r io.Reader) {
		t.Helper()
		if _, err := io.Copy(io.Discard, r); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Errorf("%s: the connection was still open after %v", what, failSafe)
			}
		}
	}

	// An idle keep-alive connection is closed.
	idle := dial()
	if _, err := io.WriteString(idle, "GET /healthz HTTP/1.1\r\nHost: payments\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(idle)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	closedByServer("an idle keep-alive connection", br)

	// A body sent slowly is cut off, and does not hold up a shutdown.
	slow := dial()
	head := "POST /payments HTTP/1.1\r\nHost: payments\r\nX-Api-Key: " + key1 + "\r\nIdempotency-Key: slow-1\r\n" +
		"Content-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(goodBody)) + "\r\n\r\n" + goodBody[:10]
	if _, err := io.WriteString(slow, head); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reached:
	case <-time.After(failSafe):
		t.Fatal("the request never reached the handler")
	}
	ctx, cancel := context.WithTimeout(context.Background(), failSafe)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with a slow body in flight: %v", err)
	}
	closedByServer("a slow body", slow)
	if n := gw.Calls(); n != 0 {
		t.Fatalf("the gateway was called %d times for a payment whose body never arrived", n)
	}
}

// The write timeout runs from the end of the request's headers: it must
// cover the slowest request the service answers (its body read within
// the read timeout, a bulkhead wait of 1 s, a charge of up to
// chargeTimeout, the idempotency store's calls), or a charged payment's
// 201 is cut off on its way to the client.
func TestDefaultTimeoutsCoverACharge(t *testing.T) {
	d := defaultTimeouts
	if d.readHeader <= 0 || d.read < d.readHeader || d.idle <= 0 {
		t.Fatalf("timeouts %+v: want read header, read and idle timeouts, read >= read header", d)
	}
	if slowest := d.read + time.Second + chargeTimeout; d.write < slowest+5*time.Second {
		t.Fatalf("write timeout %v, want at least %v (the slowest request) with 5s to spare for the store", d.write, slowest)
	}
}
