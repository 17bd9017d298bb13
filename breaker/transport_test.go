package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/sadpath/sadpath/breaker"
	"github.com/sadpath/sadpath/contract"
)

func newTransport(t *testing.T, cfg breaker.Config) (*breaker.Registry, *http.Client) {
	t.Helper()
	cfg.DisableMetrics = true
	if cfg.Window == 0 {
		cfg.Window = time.Hour
	}
	if cfg.MinCalls == 0 {
		cfg.MinCalls = 5
	}
	reg, err := breaker.NewRegistry(breaker.RegistryConfig{Breaker: cfg})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := breaker.NewTransport(breaker.TransportConfig{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(http.DefaultTransport.(*http.Transport).CloseIdleConnections)
	return reg, &http.Client{Transport: tr}
}

func get(t *testing.T, c *http.Client, u string) (int, error) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func TestTransportOneBreakerPerHost(t *testing.T) {
	var badHits atomic.Int64
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		badHits.Add(1)
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer bad.Close()
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer good.Close()
	reg, c := newTransport(t, breaker.Config{})

	for i := range 5 {
		code, err := get(t, c, bad.URL)
		if err != nil || code != http.StatusBadGateway {
			t.Fatalf("call %d: %d %v: 5xx responses must reach the caller", i, code, err)
		}
	}
	_, err := get(t, c, bad.URL)
	if !errors.Is(err, contract.ErrUnavailable) || !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("after 5 failures: %v, want the open breaker's error", err)
	}
	var ue *url.Error
	if !errors.As(err, &ue) {
		t.Fatalf("want a *url.Error from http.Client, got %T", err)
	}
	if ra, ok := contract.RetryAfter(err); !ok || ra <= 0 {
		t.Fatalf("RetryAfter %v %v", ra, ok)
	}
	if badHits.Load() != 5 {
		t.Fatalf("bad server hit %d times, want 5 (the rejected call must not be sent)", badHits.Load())
	}
	// Another host is unaffected.
	for range 10 {
		if code, err := get(t, c, good.URL); err != nil || code != 200 {
			t.Fatalf("good host: %d %v", code, err)
		}
	}
	hostBad := strings.TrimPrefix(bad.URL, "http://")
	hostGood := strings.TrimPrefix(good.URL, "http://")
	if reg.Get(hostBad).State() != breaker.StateOpen || reg.Get(hostGood).State() != breaker.StateClosed {
		t.Fatal("per-host states wrong")
	}
	if n := len(reg.Breakers()); n != 2 {
		t.Fatalf("%d breakers, want 2", n)
	}
}

// Host names are case-insensitive: the spellings of one failing host share
// its breaker (named in lower case), so its failures add up and it trips
// once, instead of each spelling needing MinCalls failures of its own (and
// a registry slot).
func TestTransportKeyIgnoresHostCase(t *testing.T) {
	reg, err := breaker.NewRegistry(breaker.RegistryConfig{Breaker: breaker.Config{DisableMetrics: true, Window: time.Hour, MinCalls: 4}})
	if err != nil {
		t.Fatal(err)
	}
	var sent atomic.Int64
	tr, err := breaker.NewTransport(breaker.TransportConfig{Registry: reg, Next: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		sent.Add(1)
		return &http.Response{StatusCode: http.StatusBadGateway, Body: http.NoBody, Request: r}, nil
	})})
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: tr}
	for _, u := range []string{"http://API.example:8080/a", "http://api.example:8080/b", "http://Api.Example:8080/c", "http://api.EXAMPLE:8080/d"} {
		if code, err := get(t, c, u); err != nil || code != http.StatusBadGateway {
			t.Fatalf("%s: %d %v", u, code, err)
		}
	}
	if _, err := get(t, c, "http://API.EXAMPLE:8080/e"); !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("after 4 failures of one host: %v, want its open breaker's error", err)
	}
	if n := sent.Load(); n != 4 {
		t.Fatalf("%d requests sent, want 4", n)
	}
	if bs := reg.Breakers(); len(bs) != 1 || bs[0].Name() != "api.example:8080" {
		t.Fatalf("%d breakers, first %q; want one, api.example:8080", len(bs), bs[0].Name())
	}
}

// A URL that spells out its scheme's default port names the same host,
// and net/http the same connection, as one that leaves it out: they share
// one breaker (named without the port), as the spellings of a host's case do.
func TestTransportKeyIgnoresDefaultPort(t *testing.T) {
	for _, tt := range []struct {
		urls []string
		name string
	}{
		{[]string{"https://api.example/a", "https://api.example:443/b", "https://API.example:443/c", "https://api.example:/d"}, "api.example"},
		{[]string{"http://api.example/a", "http://api.example:80/b", "http://Api.example:80/c", "http://api.example:/d"}, "api.example"},
		{[]string{"http://[::1]/a", "http://[::1]:80/b", "http://[::1]:/c", "http://[::1]:80/d"}, "[::1]"},
	} {
		reg, err := breaker.NewRegistry(breaker.RegistryConfig{Breaker: breaker.Config{DisableMetrics: true, Window: time.Hour, MinCalls: 4}})
		if err != nil {
			t.Fatal(err)
		}
		tr, err := breaker.NewTransport(breaker.TransportConfig{Registry: reg, Next: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: http.StatusBadGateway, Body: http.NoBody, Request: r}, nil
		})})
		if err != nil {
			t.Fatal(err)
		}
		c := &http.Client{Transport: tr}
		for _, u := range tt.urls {
			if code, err := get(t, c, u); err != nil || code != http.StatusBadGateway {
				t.Fatalf("%s: %d %v", u, code, err)
			}
		}
		if bs := reg.Breakers(); len(bs) != 1 || bs[0].Name() != tt.name {
			names := make([]string, len(bs))
			for i, b := range bs {
				names[i] = b.Name()
			}
			t.Errorf("%v: breakers %q; want one, %q", tt.urls, names, tt.name)
		}
	}
	// Another port is another host's breaker.
	reg, _ := breaker.NewRegistry(breaker.RegistryConfig{Breaker: breaker.Config{DisableMetrics: true}})
	tr, _ := breaker.NewTransport(breaker.TransportConfig{Registry: reg, Next: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: r}, nil
	})})
	c := &http.Client{Transport: tr}
	for _, u := range []string{"https://api.example:8443/", "https://api.example:80/", "http://api.example:443/"} {
		if _, err := get(t, c, u); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(reg.Breakers()); n != 3 {
		t.Errorf("%d breakers for three ports that are not the default, want 3", n)
	}
}

func TestTransportClassification(t *testing.T) {
	statuses := []struct {
		code  int
		trips bool
	}{
		{400, false}, {401, false}, {403, false}, {404, false}, {409, false}, {422, false},
		{429, true}, {500, true}, {502, true}, {503, true}, {504, true}, {200, false}, {302, false},
	}
	for _, s := range statuses {
		t.Run(fmt.Sprint(s.code), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if s.code == 302 {
					w.Header().Set("Location", "/x")
				}
				w.WriteHeader(s.code)
			}))
			defer srv.Close()
			reg, _ := newTransport(t, breaker.Config{})
			tr, _ := breaker.NewTransport(breaker.TransportConfig{Registry: reg})
			for range 10 {
				req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
				resp, err := tr.RoundTrip(req)
				if err != nil {
					break
				}
				resp.Body.Close()
			}
			got := reg.Get(strings.TrimPrefix(srv.URL, "http://")).State() == breaker.StateOpen
			if got != s.trips {
				t.Fatalf("status %d: tripped=%v, want %v", s.code, got, s.trips)
			}
		})
	}
}

func TestTransportTimeoutsCountCancelsDoNot(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	host := strings.TrimPrefix(srv.URL, "http://")

	reg, c := newTransport(t, breaker.Config{})
	for range 5 { // canceled by the caller: ignored
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		time.AfterFunc(5*time.Millisecond, cancel)
		if _, err := c.Do(req); err == nil {
			t.Fatal("canceled request succeeded")
		}
		cancel()
	}
	if st, n := reg.Get(host).State(), reg.Get(host).Counts(); st != breaker.StateClosed || n.Ignored != 5 {
		t.Fatalf("after cancels: %v %+v", st, n)
	}
	for range 5 { // deadline exceeded: failures
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		_, _ = c.Do(req)
		cancel()
	}
	if st := reg.Get(host).State(); st != breaker.StateOpen {
		t.Fatalf("after timeouts: %v, want open", st)
	}
}

func TestTransportClosesBodyWhenRejecting(t *testing.T) {
	reg, _ := newTransport(t, breaker.Config{})
	tr, _ := breaker.NewTransport(breaker.TransportConfig{Registry: reg, Key: func(*http.Request) string { return "k" }})
	reg.Get("k").ForceOpen(context.Background(), "")
	body := &closeRecorder{Reader: strings.NewReader("payload")}
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:1/", body)
	resp, err := tr.RoundTrip(req)
	if resp != nil || !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("got %v %v", resp, err)
	}
	if !body.closed {
		t.Fatal("request body not closed")
	}
}

type closeRecorder struct {
	*strings.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

func TestRegistryBoundedAndConcurrent(t *testing.T) {
	reg, err := breaker.NewRegistry(breaker.RegistryConfig{MaxBreakers: 8, Breaker: breaker.Config{DisableMetrics: true}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	got := make([][]*breaker.Breaker, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				got[g] = append(got[g], reg.Get(fmt.Sprint("host-", i%8)))
			}
		}()
	}
	wg.Wait()
	for g := range got {
		for i, b := range got[g] {
			if b != got[0][i] {
				t.Fatalf("goroutines got different breakers for key %d", i%8)
			}
		}
	}
	if o := reg.Get("one-too-many"); o.Name() != breaker.OverflowName || reg.Get("another") != o {
		t.Fatalf("overflow breaker %q", o.Name())
	}
	if n := len(reg.Breakers()); n != 9 {
		t.Fatalf("%d breakers", n)
	}
	if b := reg.Get(""); b.Name() != breaker.OverflowName {
		t.Fatalf("name %q", b.Name())
	}
	long := strings.Repeat("h", 10000)
	reg2, _ := breaker.NewRegistry(breaker.RegistryConfig{Breaker: breaker.Config{DisableMetrics: true}})
	if b := reg2.Get(long); len(b.Name()) != 256 {
		t.Fatalf("long key name length %d", len(b.Name()))
	}
	if b := reg2.Get(""); b.Name() != "(empty)" {
		t.Fatalf("empty key name %q", b.Name())
	}
	if _, err := breaker.NewRegistry(breaker.RegistryConfig{Breaker: breaker.Config{FailureRatio: 3}}); !errors.Is(err, contract.ErrInvalid) ||
		!strings.Contains(err.Error(), "RegistryConfig.Breaker.FailureRatio") {
		t.Fatalf("bad template: %v", err)
	}
	if _, err := breaker.NewRegistry(breaker.RegistryConfig{MaxBreakers: -1}); !errors.Is(err, contract.ErrInvalid) {
		t.Fatalf("bad max: %v", err)
	}
	if _, err := breaker.NewTransport(breaker.TransportConfig{}); !errors.Is(err, contract.ErrInvalid) ||
		!strings.Contains(err.Error(), "TransportConfig.Registry") {
		t.Fatalf("nil registry: %v", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A next RoundTripper that breaks its contract, answering neither a
// response nor an error, is a failure of the dependency: the breaker does
// not panic on it (http.Client turns the nil response into an error), and
// such answers trip it.
// A key that reads like the name of the overflow or the empty-key breaker
// does not share its name (nor its metric label): every breaker of a
// registry, special or not, has a name of its own, and every other key keeps
// its name.
func TestRegistryKeysNeverTakeTheSpecialNames(t *testing.T) {
	keys := []string{"(overflow)", "(empty)", "((overflow)", "(((empty)", "(overflow", "overflow)", "(x)", "(", "api.example"}
	reg, err := breaker.NewRegistry(breaker.RegistryConfig{MaxBreakers: len(keys) + 1, Breaker: breaker.Config{DisableMetrics: true}})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{} // name -> key
	for _, k := range append(keys, "") {
		n := reg.Get(k).Name()
		if other, ok := names[n]; ok {
			t.Fatalf("keys %q and %q share the name %q", other, k, n)
		}
		names[n] = k
	}
	if n := reg.Get("one-too-many").Name(); n != breaker.OverflowName {
		t.Fatalf("overflow breaker named %q", n)
	} else if k, ok := names[n]; ok {
		t.Fatalf("key %q is named like the overflow breaker %q", k, n)
	}
	if n := reg.Get("").Name(); n != "(empty)" {
		t.Fatalf("empty key named %q", n)
	}
	for _, k := range []string{"(overflow", "overflow)", "(x)", "(", "api.example"} {
		if n := reg.Get(k).Name(); n != k {
			t.Fatalf("key %q named %q, want the key", k, n)
		}
	}
	// At the name's length limit (256 bytes): still a valid breaker (no
	// panic), not named like a special one nor like the key one '(' shorter.
	for _, k := range []string{strings.Repeat("(", 247) + "overflow)", strings.Repeat("(", 250) + "empty)"} {
		reg2, _ := breaker.NewRegistry(breaker.RegistryConfig{Breaker: breaker.Config{DisableMetrics: true}})
		n, shorter := reg2.Get(k).Name(), reg2.Get(k[1:]).Name()
		if n == breaker.OverflowName || n == "(empty)" || len(n) > 256 || n == shorter {
			t.Fatalf("key of %d bytes named %q (the key one shorter %q)", len(k), n, shorter)
		}
	}
}

func TestTransportNilResponseWithoutError(t *testing.T) {
	reg, err := breaker.NewRegistry(breaker.RegistryConfig{Breaker: breaker.Config{
		DisableMetrics: true, Window: time.Hour, MinCalls: 2}})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := breaker.NewTransport(breaker.TransportConfig{Registry: reg,
		Next: roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, nil })})
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: tr}
	for range 2 {
		if _, err := c.Get("http://dep.test/"); err == nil {
			t.Fatal("no error for a nil response")
		}
	}
	if st := reg.Get("dep.test").State(); st != breaker.StateOpen {
		t.Fatalf("state %v after two nil responses, want open", st)
	}
}

// A long key is cut for the breaker's name on a character boundary: the
// name goes into logs and metric attributes, where invalid UTF-8 is
// rejected or mangled (an OTLP export fails on it).
func TestRegistryCutsLongKeysOnCharacters(t *testing.T) {
	reg, err := breaker.NewRegistry(breaker.RegistryConfig{Breaker: breaker.Config{DisableMetrics: true}})
	if err != nil {
		t.Fatal(err)
	}
	key := strings.Repeat("h", 255) + strings.Repeat("é", 10)
	name := reg.Get(key).Name()
	if !utf8.ValidString(name) || len(name) != 255 || !strings.HasPrefix(key, name) {
		t.Fatalf("name of a long key: %q (%d bytes)", name, len(name))
	}
}

// A key that is not valid UTF-8 (a host such as "%ff.example", which
// url.Parse decodes to a raw byte: a webhook URL a user registered) gets a
// name that is: the name goes into logs and metric attributes, where
// invalid UTF-8 is rejected (an OTLP export fails on it). The keys still
// keep their breakers apart, and the name stays within 256 bytes.
func TestRegistryNamesInvalidUTF8KeysValidly(t *testing.T) {
	reg, err := breaker.NewRegistry(breaker.RegistryConfig{Breaker: breaker.Config{DisableMetrics: true}})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse("http://dep%ff.test/")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{u.Host, "dep\xfe.test", strings.Repeat("\xffa", 200), strings.Repeat("h", 250) + "\xff\xfe\xfd\xfc\xfb\xfa\xf9",
		strings.Repeat("\x80", 300)} { // no character boundary to cut on: the name must not be empty
		name := reg.Get(key).Name()
		if !utf8.ValidString(name) || len(name) > 256 || name == "" {
			t.Errorf("name of key %q: %q (%d bytes)", key, name, len(name))
		}
	}
	if reg.Get("dep\xff.test") == reg.Get("dep\xfe.test") {
		t.Error("two invalid keys share a breaker")
	}
	// Through a Transport: a hostile URL fails its request, it does not
	// panic the caller.
	tr, err := breaker.NewTransport(breaker.TransportConfig{Registry: reg,
		Next: roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, errors.New("test: unreachable") })})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&http.Client{Transport: tr}).Get("http://" + strings.Repeat("%80", 300) + "/"); err == nil {
		t.Error("no error")
	}
}

// A Registry keeps no string of its caller alive: a key sliced from a
// larger one (URL.Host is sliced from the whole URL) is copied, and a long
// key is stored hashed, so MaxBreakers hostile keys cost little.
func TestRegistryKeepsNoCallerString(t *testing.T) {
	reg, err := breaker.NewRegistry(breaker.RegistryConfig{Breaker: breaker.Config{DisableMetrics: true}})
	if err != nil {
		t.Fatal(err)
	}
	collected := make(chan string, 2)
	func() {
		u := "http://dep.test/?q=" + strings.Repeat("q", 1<<20)
		long := strings.Repeat("h", 1<<20)
		runtime.AddCleanup(unsafe.StringData(u), func(s string) { collected <- s }, "sliced key's URL")
		runtime.AddCleanup(unsafe.StringData(long), func(s string) { collected <- s }, "long key")
		if b := reg.Get(u[7:15]); b.Name() != "dep.test" {
			t.Fatalf("name %q", b.Name())
		}
		b := reg.Get(long)
		if reg.Get(strings.Repeat("h", 1<<20)) != b || reg.Get(long[1:]) == b {
			t.Fatal("long keys do not keep their breakers apart")
		}
	}()
	for range 2 {
		runtime.GC()
		select {
		case <-collected:
		case <-time.After(10 * time.Second):
			t.Fatal("the registry keeps a caller's string alive")
		}
	}
	if reg.Get("dep.test").Name() != "dep.test" || len(reg.Breakers()) != 3 {
		t.Fatalf("breakers: %d", len(reg.Breakers()))
	}
}

// closeCounter is a request body that counts its Close calls.
type closeCounter struct {
	strings.Reader
	closed atomic.Int32
}

func (c *closeCounter) Close() error { c.closed.Add(1); return nil }

// A Transport not built by NewTransport (a zero value, or a nil pointer
// in a struct field) answers with an error and closes the request body,
// as a RoundTripper must: it does not panic inside http.Client.
func TestZeroTransportErrsWithoutPanicking(t *testing.T) {
	for name, tr := range map[string]*breaker.Transport{"zero": {}, "nil": nil} {
		t.Run(name, func(t *testing.T) {
			body := &closeCounter{}
			req, err := http.NewRequest(http.MethodPost, "http://127.0.0.1:1/x", body)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := tr.RoundTrip(req)
			var ce *contract.Error
			if resp != nil || !errors.As(err, &ce) || ce.Kind != contract.KindInternal {
				t.Fatalf("RoundTrip = %v, %v; want no response and a KindInternal *contract.Error", resp, err)
			}
			if body.closed.Load() != 1 {
				t.Fatalf("request body closed %d times, want 1", body.closed.Load())
			}
		})
	}
}
