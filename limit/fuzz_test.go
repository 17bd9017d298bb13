package limit

import (
	"context"
	"errors"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/limit/limittest"
	"golang.org/x/time/rate"
)

// FuzzRemoteIP: any RemoteAddr yields a key without panicking, and the key
// is never invented: it is part of the address, the IPv4 address an
// IPv4-mapped one holds, or the /64 (with the zone) holding an IPv6 one.
func FuzzRemoteIP(f *testing.F) {
	for _, s := range []string{"192.0.2.1:80", "[::1]:443", "", ":", "[", "]:", "a:b:c", "[::1", "\x00:\xff", strings.Repeat("9", 4096) + ":1",
		"[fe80::1%eth0]:80", "[::ffff:192.0.2.1]:80", "2001:db8::1", "[2001:db8::1%]:1", "[::ffff:1.2.3.4%z]:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		got := RemoteIP(&http.Request{RemoteAddr: addr})
		if strings.Contains(addr, got) {
			return
		}
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		a, err := netip.ParseAddr(host)
		if err != nil {
			t.Fatalf("RemoteIP(%q) = %q: not taken from the address", addr, got)
		}
		if a.Is4In6() {
			if got != a.Unmap().String() {
				t.Fatalf("RemoteIP(%q) = %q, want the IPv4 address %v", addr, got, a.Unmap())
			}
			return
		}
		prefix, zone, _ := strings.Cut(got, "%")
		p, err := netip.ParsePrefix(prefix)
		if err != nil || p.Bits() != 64 || !p.Contains(a.WithZone("")) || zone != a.Zone() || p != p.Masked() {
			t.Fatalf("RemoteIP(%q) = %q, want the /64 holding %v", addr, got, a)
		}
	})
}

// FuzzKeyedLimiterKeys: hostile keys (empty, huge, binary, colliding
// prefixes) never panic, the key count stays within MaxKeys and matches the
// keys the shards hold (up to 200 keys: two shards from 128), and every
// answer is a pass or a rate-limited refusal with a positive retry-after.
func FuzzKeyedLimiterKeys(f *testing.F) {
	f.Add("a", "b", 3, uint16(0))
	f.Add("", "", 0, uint16(200))
	f.Add(strings.Repeat("k", 200), strings.Repeat("k", 199)+"j", 7, uint16(1))
	f.Add("\x00\xff", "\u2028", 1, uint16(5000))
	f.Fuzz(func(t *testing.T, k1, k2 string, maxKeys int, stepMs uint16) {
		if maxKeys < 0 {
			maxKeys = -maxKeys
		}
		maxKeys = maxKeys%200 + 1
		clk := limittest.NewClock(epoch)
		k, err := NewKeyedLimiter(KeyedConfig{Limiter: LimiterConfig{Rate: 5, Burst: 2, Clock: clk}, MaxKeys: maxKeys})
		if err != nil {
			t.Fatal(err)
		}
		keys := []string{k1, k2, k1 + k2, k2 + k1, strings.Repeat(k1, 3)}
		for i := range 300 {
			key := keys[i%len(keys)]
			if i%3 == 2 {
				key = k2 + strconv.Itoa(i) // new keys, to fill the limiter
			}
			err := k.Take(context.Background(), key)
			if err != nil {
				e := contract.As(err)
				if e.Kind != contract.KindRateLimited || e.RetryAfter <= 0 || e.RetryAfter > time.Second {
					t.Fatalf("refusal %v: kind %v retry-after %v", err, e.Kind, e.RetryAfter)
				}
			}
			if n := k.Len(); n > maxKeys {
				t.Fatalf("Len %d > MaxKeys %d", n, maxKeys)
			}
			clk.Advance(time.Duration(stepMs) * time.Millisecond)
		}
		checkKeyCount(t, k)
	})
}

// FuzzNewBulkheadConfig: any numbers give either a KindInvalid error or a
// bulkhead that admits exactly MaxConcurrent calls.
func FuzzNewBulkheadConfig(f *testing.F) {
	f.Add(1, 0, int64(0), int64(0))
	f.Add(0, 0, int64(0), int64(0))
	f.Add(-5, 3, int64(-1), int64(5))
	f.Add(3, 2, int64(time.Second), int64(-1))
	f.Add(math.MaxInt, math.MaxInt, int64(math.MaxInt64), int64(math.MaxInt64))
	f.Fuzz(func(t *testing.T, n, waiting int, maxWait, retryAfter int64) {
		b, err := NewBulkhead(BulkheadConfig{MaxConcurrent: n, MaxWaiting: waiting, MaxWait: time.Duration(maxWait), RetryAfter: time.Duration(retryAfter)})
		if err != nil {
			if !errors.Is(err, contract.ErrInvalid) || b != nil {
				t.Fatalf("bad config error %v (bulkhead %v)", err, b)
			}
			return
		}
		admit := min(n, 100)
		for i := range admit {
			if err := b.Acquire(context.Background()); err != nil {
				t.Fatalf("acquire %d of %d: %v", i, n, err)
			}
		}
		if n <= 100 && waiting == 0 {
			if err := b.Acquire(context.Background()); !errors.Is(err, contract.ErrUnavailable) {
				t.Fatalf("acquire beyond %d: %v", n, err)
			}
		}
		for range admit {
			b.Release()
		}
		if b.InFlight() != 0 {
			t.Fatalf("InFlight %d", b.InFlight())
		}
	})
}

// FuzzNewLimiterConfig: any numbers give either a KindInvalid error or a
// limiter whose answers are passes or well-formed refusals.
func FuzzNewLimiterConfig(f *testing.F) {
	f.Add(1.0, 1, uint8(0), int64(0))
	f.Add(0.0, 0, uint8(1), int64(0))
	f.Add(math.Inf(1), 0, uint8(0), int64(0))
	f.Add(math.Inf(-1), -1, uint8(2), int64(-1))
	f.Add(1e-300, 1<<40, uint8(1), int64(math.MaxInt64))
	f.Add(math.NaN(), 3, uint8(1), int64(time.Millisecond))
	f.Add(1e300, 0, uint8(1), int64(1))
	f.Fuzz(func(t *testing.T, r float64, burst int, mode uint8, maxWait int64) {
		clk := limittest.NewClock(epoch)
		l, err := NewLimiter(LimiterConfig{Rate: rate.Limit(r), Burst: burst, Mode: Mode(mode), MaxWait: time.Duration(maxWait), Clock: clk})
		if err != nil {
			if !errors.Is(err, contract.ErrInvalid) || l != nil {
				t.Fatalf("bad config error %v (limiter %v)", err, l)
			}
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // a Wait-mode call must never block this test
		for range 5 {
			err := l.Take(ctx)
			if err == nil {
				continue
			}
			switch e := contract.As(err); e.Kind {
			case contract.KindRateLimited:
				if e.RetryAfter < 0 || e.RetryAfter > maxRetryAfter {
					t.Fatalf("negative retry-after %v", e.RetryAfter)
				}
			case contract.KindCanceled:
			default:
				t.Fatalf("unexpected %v", err)
			}
		}
	})
}

// FuzzNewKeyedLimiterConfig: any numbers give either a KindInvalid error or
// a keyed limiter whose IdleTimeout covers the bucket refill time,
// Burst/Rate plus MaxWait in Wait mode, saturating rather than overflowing.
func FuzzNewKeyedLimiterConfig(f *testing.F) {
	f.Add(1.0, 1, uint8(1), int64(time.Second), int64(time.Second))
	f.Add(1.0, 1, uint8(1), int64(time.Second), int64(2*time.Second))
	f.Add(1.0, 0, uint8(0), int64(0), int64(0))
	f.Add(1e-300, 1<<40, uint8(1), int64(math.MaxInt64), int64(0))
	f.Add(1.0, 1, uint8(1), int64(math.MaxInt64), int64(math.MaxInt64))
	f.Add(math.Inf(1), 0, uint8(1), int64(time.Hour), int64(time.Nanosecond))
	f.Add(1e300, 0, uint8(1), int64(1), int64(-1))
	f.Fuzz(func(t *testing.T, r float64, burst int, mode uint8, maxWait, idle int64) {
		k, err := NewKeyedLimiter(KeyedConfig{
			Limiter:     LimiterConfig{Rate: rate.Limit(r), Burst: burst, Mode: Mode(mode), MaxWait: time.Duration(maxWait)},
			MaxKeys:     1,
			IdleTimeout: time.Duration(idle),
		})
		if err != nil {
			if !errors.Is(err, contract.ErrInvalid) || k != nil {
				t.Fatalf("bad config error %v (limiter %v)", err, k)
			}
			return
		}
		if idle > 0 && k.idle != time.Duration(idle) {
			t.Fatalf("idle %v, configured %v", k.idle, time.Duration(idle))
		}
		if k.idle <= 0 {
			t.Fatalf("idle %v", k.idle)
		}
		if k.core.limit == rate.Inf || math.IsInf(float64(k.core.limit), 1) {
			return // never limited
		}
		refill := float64(k.core.burst) / float64(k.core.limit) * float64(time.Second)
		if k.core.mode == Wait {
			refill += float64(k.core.maxWait)
		}
		if want := min(refill, float64(math.MaxInt64)); float64(k.idle) < want*(1-1e-9)-2 {
			t.Fatalf("idle %v shorter than the refill time %v (%+v)", k.idle, time.Duration(want), k.core)
		}
	})
}
