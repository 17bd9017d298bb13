package limit

import (
	"net"
	"net/http"
	"net/netip"

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

// RemoteIP is a key function for KeyedLimiter.Middleware: the client's
// address taken from the connection's peer (r.RemoteAddr, its port
// dropped). It deliberately ignores X-Forwarded-For and similar headers,
// which any client can forge; behind a trusted proxy, write a key function
// that reads the address the proxy appends.
//
// An IPv4 client is keyed by its address, written the same whether it
// connected over IPv4 or as an IPv4-mapped IPv6 address (::ffff:192.0.2.1
// is 192.0.2.1). An IPv6 client is keyed by its /64 ("2001:db8:1:2::/64"),
// the block a single host is routinely given and can pick a fresh source
// address in for every connection: keyed by full address, one host would
// get a bucket per address and, with MaxKeys of them, push every other
// client's bucket out of the limiter. Distinct clients sharing a /64
// therefore share one bucket: the hosts of one LAN, or every IPv4 client
// when a translator in front of the server writes them into one IPv6
// prefix (as SIIT does with 64:ff9b::/96); there, key by something else.
// A link-local address keeps its zone ("fe80::/64%eth0"): each link is its
// own /64. A RemoteAddr whose host is not an IP address is keyed by that
// host, or by the whole RemoteAddr when it is not host:port.
func RemoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, perr := netip.ParseAddr(host)
	if perr != nil {
		return host
	}
	if a.Is4() {
		return host // ParseAddr takes only the canonical dotted quad
	}
	if a.Is4In6() {
		return a.Unmap().String()
	}
	key := netip.PrefixFrom(a, 64).Masked().String()
	if zone := a.Zone(); zone != "" {
		key += "%" + zone
	}
	return key
}
