package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/idempotency/pgstore"
	"github.com/sadpath/sadpath/idempotency/redisstore"
	"github.com/sadpath/sadpath/internal/testenv"
	"github.com/sadpath/sadpath/logctx"
)

// syncBuffer collects the service's JSON logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fixture struct {
	url  string
	gw   *FakeGateway
	logs *syncBuffer
	keys *Keys // the service's API keys: the test rotates and revokes them
}

// The API keys tests use, from demoKeys (TestRunGracefulShutdown calls
// run, which serves those): merchant-1 holds two, merchant-2 one.
const (
	key1      = "sk_test_merchant1_a"
	key1Other = "sk_test_merchant1_b"
	key2      = "sk_test_merchant2_a"
)

// testKeys returns a fresh table of demoKeys.
func testKeys(t *testing.T) *Keys {
	t.Helper()
	k, err := NewKeys(demoKeys())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// stores returns the idempotency stores the service is tested on: memory
// always, Redis and PostgreSQL from their environment variables.
func stores(t *testing.T) map[string]func(t *testing.T) idempotency.Store {
	return map[string]func(t *testing.T) idempotency.Store{
		"memory": func(t *testing.T) idempotency.Store {
			s, err := idempotency.NewMemoryStore(idempotency.MemoryConfig{})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		"redis": func(t *testing.T) idempotency.Store {
			client := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
			t.Cleanup(func() { client.Close() })
			s, err := redisstore.New(redisstore.Config{Client: client, Prefix: fmt.Sprintf("sadpath:examples:payments:%d:", time.Now().UnixNano())})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		"postgres": func(t *testing.T) idempotency.Store {
			pool, err := pgxpool.New(context.Background(), testenv.PostgresDSN(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pool.Close)
			table := fmt.Sprintf("examples_payments_idem_%d", time.Now().UnixNano())
			s, err := pgstore.New(pgstore.Config{Pool: pool, Table: table})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Migrate(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _, _ = pool.Exec(context.Background(), "DROP TABLE IF EXISTS "+table) })
			return s
		},
	}
}

func start(t *testing.T, store idempotency.Store, gw *FakeGateway) *fixture {
	t.Helper()
	return startWrapped(t, store, gw, nil)
}

// startWrapped is start with the gateway's handler wrapped by wrap (nil:
// none), for a gateway whose answers get lost or that answers oddly.
func startWrapped(t *testing.T, store idempotency.Store, gw *FakeGateway, wrap func(http.Handler) http.Handler) *fixture {
	t.Helper()
	return startWith(t, store, gw, wrap, nil)
}

// startWith is startWrapped with the service's handler wrapped by
// wrapService too (nil: none), for a test that watches the service's
// requests.
func startWith(t *testing.T, store idempotency.Store, gw *FakeGateway, wrap, wrapService func(http.Handler) http.Handler) *fixture {
	t.Helper()
	logs := &syncBuffer{}
	h, err := logctx.NewHandler(logctx.HandlerConfig{Next: slog.NewJSONHandler(logs, nil)})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(h)
	gh, err := gw.Handler(logger)
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		gh = wrap(gh)
	}
	gsrv := httptest.NewServer(gh)
	t.Cleanup(gsrv.Close)
	keys := testKeys(t)
	handler, err := NewHandler(Config{Store: store, Keys: keys, GatewayURL: gsrv.URL, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if wrapService != nil {
		handler = wrapService(handler)
	}
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return &fixture{url: srv.URL, gw: gw, logs: logs, keys: keys}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (f *fixture) do(t *testing.T, method, path, body string, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(method, f.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

const goodBody = `{"amount_minor":1999,"currency":"EUR","payer":"acct_alice","payee":"acct_bob","reference":"order-1"}`

func auth(key string) map[string]string {
	return map[string]string{"X-Api-Key": key1, "Idempotency-Key": key}
}

func problemParams(t *testing.T, r response) []string {
	t.Helper()
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("Content-Type %q, want a problem: %s", ct, r.body)
	}
	var p struct {
		Status int `json:"status"`
		Params []struct {
			Name string `json:"name"`
		} `json:"invalid-params"`
	}
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem body %s: %v", r.body, err)
	}
	if p.Status != r.status {
		t.Fatalf("problem status %d differs from HTTP status %d", p.Status, r.status)
	}
	var names []string
	for _, f := range p.Params {
		names = append(names, f.Name)
	}
	return names
}

func TestPaymentsContract(t *testing.T) {
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			f := start(t, newStore(t), &FakeGateway{})

			// Authentication and the key are required.
			if r := f.do(t, "POST", "/payments", goodBody, map[string]string{"Idempotency-Key": "k1"}); r.status != 401 {
				t.Fatalf("without X-Api-Key: %d, want 401", r.status)
			} else {
				problemParams(t, r)
			}
			if r := f.do(t, "POST", "/payments", goodBody, map[string]string{"X-Api-Key": key1}); r.status != 400 {
				t.Fatalf("without Idempotency-Key: %d, want 400", r.status)
			}

			// Create, then replay byte for byte.
			first := f.do(t, "POST", "/payments", goodBody, auth("k1"))
			if first.status != 201 || first.header.Get("Location") == "" {
				t.Fatalf("create: %d %s (Location %q)", first.status, first.body, first.header.Get("Location"))
			}
			if first.header.Get("X-Correlation-ID") == "" {
				t.Fatal("no X-Correlation-ID echoed")
			}
			replay := f.do(t, "POST", "/payments", goodBody, auth("k1"))
			if replay.status != 201 || !bytes.Equal(replay.body, first.body) || replay.header.Get("Idempotent-Replayed") != "true" {
				t.Fatalf("replay: %d %q replayed=%q, want the identical 201", replay.status, replay.body, replay.header.Get("Idempotent-Replayed"))
			}
			if replay.header.Get("Location") != first.header.Get("Location") {
				t.Fatalf("replayed Location %q, want %q", replay.header.Get("Location"), first.header.Get("Location"))
			}
			if got := f.gw.Charges(); got != 1 {
				t.Fatalf("gateway charged %d times, want 1", got)
			}

			// Another caller with the same key is another payment: keys are scoped.
			other := f.do(t, "POST", "/payments", goodBody, map[string]string{"X-Api-Key": key2, "Idempotency-Key": "k1"})
			if other.status != 201 || bytes.Equal(other.body, first.body) {
				t.Fatalf("another caller's request with the same key: %d %s, want its own 201", other.status, other.body)
			}

			// The same key with another payload.
			if r := f.do(t, "POST", "/payments", strings.Replace(goodBody, "1999", "2999", 1), auth("k1")); r.status != 422 {
				t.Fatalf("reused key: %d, want 422", r.status)
			}

			// Absurd data: every bad field listed.
			absurd := `{"amount_minor":-5,"currency":"XXQ","payer":"acct_1","payee":"acct_1","reference":""}`
			r := f.do(t, "POST", "/payments", absurd, auth("k2"))
			if r.status != 422 {
				t.Fatalf("absurd payment: %d %s, want 422", r.status, r.body)
			}
			if got := strings.Join(problemParams(t, r), ","); got != "amount_minor,currency,payee,reference" {
				t.Fatalf("invalid-params %s", got)
			}
			if r := f.do(t, "POST", "/payments", `{"amount_minor":1,"currency":"EUR","payer":"a","payee":"b","reference":"r","admin":true}`, auth("k3")); r.status != 400 {
				t.Fatalf("unknown field: %d, want 400", r.status)
			}
			if r := f.do(t, "POST", "/payments", `{"reference":"`+strings.Repeat("x", 70<<10)+`"}`, auth("k4")); r.status != 413 {
				t.Fatalf("body over 64 KiB: %d, want 413", r.status)
			}

			// Reads: the caller's own payments (TestPaymentsReadsAreScoped
			// covers the other callers).
			loc := first.header.Get("Location")
			m1 := map[string]string{"X-Api-Key": key1}
			if r := f.do(t, "GET", loc, "", m1); r.status != 200 || !bytes.Contains(r.body, []byte(`"charge_id"`)) {
				t.Fatalf("GET %s: %d %s", loc, r.status, r.body)
			}
			if r := f.do(t, "GET", "/payments/pay_nope", "", m1); r.status != 404 {
				t.Fatalf("GET unknown: %d, want 404", r.status)
			} else {
				problemParams(t, r)
			}
			var list struct{ Payments []Payment }
			if r := f.do(t, "GET", "/payments", "", m1); json.Unmarshal(r.body, &list) != nil || len(list.Payments) != 1 {
				t.Fatalf("list: %s, want merchant-1's 1 payment", r.body)
			}
			if r := f.do(t, "GET", "/healthz", "", nil); r.status != 200 {
				t.Fatalf("healthz %d", r.status)
			}

			// Every log line of a request carries its correlation id.
			id := first.header.Get("X-Correlation-ID")
			lines := 0
			for _, l := range strings.Split(f.logs.String(), "\n") {
				if strings.Contains(l, id) {
					lines++
				}
			}
			if lines < 2 {
				t.Fatalf("only %d log lines carry correlation id %s:\n%s", lines, id, f.logs.String())
			}
			if strings.Contains(f.logs.String(), key1) {
				t.Fatal("the API key reached the logs")
			}
		})
	}
}

// Reads need X-Api-Key and show only the caller's own payments: another
// caller's payment is a 404 exactly like a missing one, so an id seen
// elsewhere (ids are random, but they travel in logs and URLs) tells
// nothing and cannot be probed.
func TestPaymentsReadsAreScoped(t *testing.T) {
	f := start(t, stores(t)["memory"](t), &FakeGateway{})
	m1 := map[string]string{"X-Api-Key": key1}
	m2 := map[string]string{"X-Api-Key": key2}
	p1 := f.do(t, "POST", "/payments", goodBody, auth("scoped-1"))
	p2 := f.do(t, "POST", "/payments", goodBody, map[string]string{"X-Api-Key": key2, "Idempotency-Key": "scoped-1"})
	if p1.status != 201 || p2.status != 201 {
		t.Fatalf("create: %d, %d", p1.status, p2.status)
	}
	loc1, loc2 := p1.header.Get("Location"), p2.header.Get("Location")

	for _, path := range []string{loc1, "/payments"} {
		if r := f.do(t, "GET", path, "", nil); r.status != 401 {
			t.Errorf("GET %s without X-Api-Key: %d %s, want 401", path, r.status, r.body)
		}
	}
	if r := f.do(t, "GET", loc1, "", m1); r.status != 200 || !bytes.Equal(r.body, p1.body) {
		t.Errorf("owner's GET %s: %d %s, want its payment", loc1, r.status, r.body)
	}
	foreign := f.do(t, "GET", loc1, "", m2)
	missing := f.do(t, "GET", "/payments/pay_999999", "", m2)
	if foreign.status != 404 || missing.status != 404 {
		t.Fatalf("another caller's payment: %d, a missing one: %d, want 404 both", foreign.status, missing.status)
	}
	problemParams(t, foreign)
	id1 := strings.TrimPrefix(loc1, "/payments/")
	if a, b := strings.ReplaceAll(string(foreign.body), id1, "ID"), strings.ReplaceAll(string(missing.body), "pay_999999", "ID"); a != b {
		t.Errorf("another caller's payment and a missing one answer differently:\n%s\n%s", a, b)
	}
	for who, h := range map[string]map[string]string{loc1: m1, loc2: m2} {
		var list struct{ Payments []Payment }
		r := f.do(t, "GET", "/payments", "", h)
		if err := json.Unmarshal(r.body, &list); err != nil || r.status != 200 || len(list.Payments) != 1 || "/payments/"+list.Payments[0].ID != who {
			t.Errorf("%s lists %d %s, want only %s", h["X-Api-Key"], r.status, r.body, who)
		}
	}
	if strings.Contains(string(p1.body), "merchant-1") || strings.Contains(string(p1.body), key1) {
		t.Errorf("the owner (merchant) or its API key is serialized: %s", p1.body)
	}
}

func TestPaymentsGatewayDownThenRetry(t *testing.T) {
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			f := start(t, newStore(t), &FakeGateway{})
			f.gw.SetDown(true)
			r := f.do(t, "POST", "/payments", goodBody, auth("down-1"))
			if r.status != 503 || r.header.Get("Retry-After") == "" {
				t.Fatalf("gateway down: %d %s (Retry-After %q), want 503 with Retry-After", r.status, r.body, r.header.Get("Retry-After"))
			}
			problemParams(t, r)
			if f.gw.Charges() != 0 {
				t.Fatal("a failed gateway charged")
			}
			// The key was released: the client retries with the same key and succeeds once.
			f.gw.SetDown(false)
			r = f.do(t, "POST", "/payments", goodBody, auth("down-1"))
			if r.status != 201 {
				t.Fatalf("retry after recovery: %d %s, want 201", r.status, r.body)
			}
			if r := f.do(t, "POST", "/payments", goodBody, auth("down-1")); r.status != 201 || r.header.Get("Idempotent-Replayed") != "true" {
				t.Fatalf("third try: %d, want a replay", r.status)
			}
			if got := f.gw.Charges(); got != 1 {
				t.Fatalf("gateway charged %d times, want 1", got)
			}
		})
	}
}

func TestPaymentsConcurrentDuplicates(t *testing.T) {
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			f := start(t, newStore(t), &FakeGateway{Latency: 200 * time.Millisecond})
			const n = 20
			results := make([]response, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i] = f.do(t, "POST", "/payments", goodBody, auth("dup-1"))
				}()
			}
			wg.Wait()
			created, inFlight := 0, 0
			for _, r := range results {
				switch r.status {
				case 201:
					created++
				case 409:
					inFlight++
					if r.header.Get("Retry-After") == "" {
						t.Error("409 without Retry-After")
					}
				default:
					t.Errorf("duplicate got %d %s", r.status, r.body)
				}
			}
			if created < 1 || created+inFlight != n {
				t.Fatalf("created %d, in flight %d of %d", created, inFlight, n)
			}
			if got := f.gw.Charges(); got != 1 {
				t.Fatalf("gateway charged %d times for one key, want 1", got)
			}
		})
	}
}

func TestRunGracefulShutdown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-gateway-latency", "300ms"}, io.Discard, ready)
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("service did not start")
	}
	f := &fixture{url: "http://" + addr}
	got := make(chan response, 1)
	go func() { got <- f.do(t, "POST", "/payments", goodBody, auth("shutdown-1")) }()
	time.Sleep(100 * time.Millisecond) // the request is in flight, waiting on the gateway
	cancel()                           // SIGTERM
	select {
	case r := <-got:
		if r.status != 201 {
			t.Fatalf("in-flight request during shutdown: %d %s, want 201", r.status, r.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("in-flight request never finished")
	}
	if err := <-done; err != nil {
		t.Fatalf("run returned %v after shutdown", err)
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-store", "mongodb"},
		{"-gateway-fail-rate", "1.5"},
		{"-gateway-latency", "-1s"},
	} {
		if err := run(context.Background(), append(args, "-addr", "127.0.0.1:0"), io.Discard, nil); err == nil {
			t.Errorf("run %v: want an error", args)
		}
	}
}

// Blank is empty: a payer, payee or reference of white space only names no
// account and no order, and must be refused like an empty one, before the
// gateway charges it.
func TestPaymentsRejectBlankFields(t *testing.T) {
	f := start(t, stores(t)["memory"](t), &FakeGateway{})
	blank := `{"amount_minor":1999,"currency":"EUR","payer":" ","payee":"\t","reference":"  \n"}`
	r := f.do(t, "POST", "/payments", blank, auth("blank-1"))
	if r.status != 422 {
		t.Fatalf("blank payer, payee and reference: %d %s, want 422", r.status, r.body)
	}
	if got := strings.Join(problemParams(t, r), ","); got != "payer,payee,reference" {
		t.Fatalf("invalid-params %s, want payer,payee,reference", got)
	}
	if got := f.gw.Calls(); got != 0 {
		t.Fatalf("the gateway was called %d times for a blank payment, want 0", got)
	}
}

// NaN is no rate: every comparison with it is false, so a range check
// written as "< 0 || > 1" lets it through and the gateway silently never
// fails. parseFlags, not run: run would serve on an accepted flag.
func TestParseFlagsRejectsNaNFailRate(t *testing.T) {
	for _, v := range []string{"NaN", "nan", "+Inf"} {
		if o, err := parseFlags([]string{"-gateway-fail-rate", v}, io.Discard); err == nil {
			t.Errorf("-gateway-fail-rate %s accepted as %v, want an error", v, o.failRate)
		}
	}
}

// A gateway URL the client cannot call (no scheme, another scheme, no
// host) or would call wrongly (a query or fragment the charge path is
// appended after, a trailing slash making "//charges") is a configuration
// error at start, not a 503 "retry" on every payment.
func TestNewHandlerRejectsBadGatewayURL(t *testing.T) {
	store := stores(t)["memory"](t)
	logger := slog.New(slog.DiscardHandler)
	for _, u := range []string{
		"gateway.internal:8443",
		"localhost",
		"ftp://gateway.internal",
		"http://",
		"http://gateway.internal/?token=x",
		"http://gateway.internal#x",
		"http://gateway.internal/",
		" http://gateway.internal",
	} {
		_, err := NewHandler(Config{Store: store, Keys: testKeys(t), GatewayURL: u, Logger: logger})
		if !errors.Is(err, contract.ErrInvalid) {
			t.Errorf("GatewayURL %q: %v, want an invalid config error", u, err)
		}
	}
	for _, u := range []string{"http://127.0.0.1:8081", "https://gateway.internal/v1"} {
		if _, err := NewHandler(Config{Store: store, Keys: testKeys(t), GatewayURL: u, Logger: logger}); err != nil {
			t.Errorf("GatewayURL %q: %v, want it accepted", u, err)
		}
	}
}
