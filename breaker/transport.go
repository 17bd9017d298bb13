package breaker

import (
	"net/http"
	"strings"

	"github.com/sadpath/sadpath/contract"
)

// TransportConfig configures a Transport.
type TransportConfig struct {
	// Registry holds the breakers, one per key. Required.
	Registry *Registry
	// Key returns the breaker key of a request. Default: the request's
	// host (URL.Host, with its port) in lower case and without the
	// scheme's default port (:443 for https, :80 for http, or an empty
	// one), so one failing host never opens the breaker of another, and
	// the spellings of one host ("API.example", "api.example:443": host
	// names are case-insensitive, and net/http dials the default port
	// when none is given) share its breaker.
	Key func(*http.Request) string
	// Next performs the requests. Default http.DefaultTransport.
	Next http.RoundTripper
	// Classify decides how a finished round trip counts (Rejected, or a
	// value past the Outcome constants, counts as a Failure). Default
	// ClassifyResponse.
	Classify func(resp *http.Response, err error) Outcome
}

// ClassifyResponse is the default classification of a round trip: 5xx and
// 429 responses and transport errors (timeouts, refused connections) are
// failures; other 4xx are the caller's and ignored; a request canceled by its
// caller is ignored; anything else is a success. A RoundTripper that
// answers neither a response nor an error is broken: a failure.
func ClassifyResponse(resp *http.Response, err error) Outcome {
	if err != nil {
		return Classify(err)
	}
	if resp == nil {
		return Failure
	}
	switch s := resp.StatusCode; {
	case s >= 500, s == http.StatusTooManyRequests:
		return Failure
	case s >= 400:
		return Ignore
	}
	return Success
}

// Transport is an http.RoundTripper that guards each downstream (by key)
// with its own Breaker. A request whose breaker is open is not sent: RoundTrip
// returns the breaker's *contract.Error (KindUnavailable, with RetryAfter),
// which http.Client wraps in a *url.Error; errors.Is and errors.As reach it.
// Responses are returned unchanged, 5xx included: the breaker only counts
// them. The time to read a response body is not part of the call.
//
// A Transport is safe for concurrent use. Build one with NewTransport: a
// zero Transport sends nothing and answers every request with an error of
// KindInternal.
type Transport struct {
	reg      *Registry
	key      func(*http.Request) string
	next     http.RoundTripper
	classify func(*http.Response, error) Outcome
}

// NewTransport returns a Transport, or a *contract.Error of KindInvalid naming
// the first bad field.
func NewTransport(cfg TransportConfig) (*Transport, error) {
	if cfg.Registry == nil {
		return nil, invalidField("breaker", "TransportConfig.Registry", "must not be nil", nil)
	}
	t := &Transport{reg: cfg.Registry, key: cfg.Key, next: cfg.Next, classify: cfg.Classify}
	if t.key == nil {
		t.key = hostKey
	}
	if t.next == nil {
		t.next = http.DefaultTransport
	}
	if t.classify == nil {
		t.classify = ClassifyResponse
	}
	return t, nil
}

// Middleware returns a client middleware that wraps a RoundTripper with the
// breakers of cfg (cfg.Next is ignored).
func Middleware(cfg TransportConfig) (func(http.RoundTripper) http.RoundTripper, error) {
	if _, err := NewTransport(cfg); err != nil {
		return nil, err
	}
	return func(next http.RoundTripper) http.RoundTripper {
		c := cfg
		c.Next = next
		t, _ := NewTransport(c)
		return t
	}, nil
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t == nil || t.reg == nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, contract.New(contract.KindInternal, "breaker.Transport", "not created with NewTransport")
	}
	b := t.reg.Get(t.key(req))
	var (
		resp *http.Response
		err  error
	)
	if rej := b.exec(req.Context(), func() Outcome {
		resp, err = t.next.RoundTrip(req)
		return t.classify(resp, err)
	}); rej != nil {
		if req.Body != nil {
			req.Body.Close() // RoundTrip must close the body, even on errors
		}
		return nil, rej
	}
	return resp, err
}

// hostKey is the default Key: the request's host in lower case (no copy
// when it already is) without its scheme's default port, as net/http
// dials it: "API.example:443" over https is "api.example".
func hostKey(r *http.Request) string {
	h := strings.ToLower(r.URL.Host)
	var port string
	switch r.URL.Scheme {
	case "https":
		port = ":443"
	case "http":
		port = ":80"
	}
	if port != "" {
		h = strings.TrimSuffix(h, port)
	}
	return strings.TrimSuffix(h, ":") // an empty port is the default one
}
