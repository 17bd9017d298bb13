package limit

import (
	"net"
	"net/http"

	"github.com/sadpath/sadpath/contract"
)

// Middleware runs each request in a slot of b. A request that gets no slot
// is answered with an RFC 9457 problem (application/problem+json) written by
// contract.WriteProblem: 503 Service Unavailable with a Retry-After header
// for a full bulkhead or a wait timeout. A request whose context ends while
// waiting gets the problem of that context error. The slot is released
// when next returns, or panics (the panic continues up the stack).
func (b *Bulkhead) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := b.Acquire(r.Context()); err != nil {
			contract.WriteProblem(w, r, err)
			return
		}
		defer b.Release()
		next.ServeHTTP(w, r)
	})
}

// Middleware lets each request through l: a refused request is answered
// with an RFC 9457 problem written by contract.WriteProblem, 429 Too Many
// Requests with a Retry-After header (whole seconds, rounded up).
func (l *Limiter) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := l.Take(r.Context()); err != nil {
			contract.WriteProblem(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Middleware returns middleware that limits each request under the key
// returned by key (for instance RemoteIP, or an authenticated tenant id read
// from the context), answering refusals as Limiter.Middleware does. A nil
// key limits every request under one shared key.
func (k *KeyedLimiter) Middleware(key func(*http.Request) string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var kv string
			if key != nil {
				kv = key(r)
			}
			if err := k.Take(r.Context(), kv); err != nil {
				contract.WriteProblem(w, r, err)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// RemoteIP is a key function for KeyedLimiter.Middleware: the IP address of
// the connection's peer (r.RemoteAddr without its port). It deliberately
// ignores X-Forwarded-For and similar headers, which any client can forge;
// behind a trusted proxy, write a key function that reads the address the
// proxy appends. An unparsable RemoteAddr is returned unchanged.
func RemoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
