package breaker_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sadpath/sadpath/breaker"
	"github.com/sadpath/sadpath/contract"
)

// Any configuration either is rejected with a KindInvalid error naming a
// field, or gives a breaker that works: no panic, no hang.
func FuzzNew(f *testing.F) {
	f.Add("n", int64(0), 0, 0, 0.0, int64(0), int64(0), int64(0), 0.0, 0)
	f.Add("", int64(-1), -1, -1, -1.0, int64(-1), int64(-1), int64(-1), -1.0, -1)
	f.Add("x", int64(time.Millisecond), 1000, 1, 1.0, int64(1), int64(1), int64(1), 1.0, 1<<20)
	f.Add("y", int64(1<<62), 1, 1<<31, 1e-300, int64(1<<62), int64(1<<62), int64(1<<63-1), 0.5, 7)
	f.Fuzz(func(t *testing.T, name string, window int64, buckets, minCalls int, ratio float64,
		slow, open, maxOpen int64, jitter float64, probes int) {
		b, err := breaker.New(breaker.Config{
			Name: name, Window: time.Duration(window), Buckets: buckets, MinCalls: minCalls,
			FailureRatio: ratio, SlowCallThreshold: time.Duration(slow), OpenTimeout: time.Duration(open),
			MaxOpenTimeout: time.Duration(maxOpen), Jitter: jitter, HalfOpenProbes: probes, DisableMetrics: true,
		})
		if err != nil {
			ce := contract.As(err)
			if !errors.Is(err, contract.ErrInvalid) || ce.Code != breaker.CodeConfigInvalid || len(ce.Fields) != 1 {
				t.Fatalf("bad config error %v", err)
			}
			return
		}
		ctx := context.Background()
		down := errors.New("down")
		for range 3 {
			_ = b.Execute(ctx, func(context.Context) error { return down })
			_ = b.Execute(ctx, func(context.Context) error { return nil })
		}
		b.Trip(ctx, 0, "fuzz")
		if st := b.State(); st != breaker.StateOpen && st != breaker.StateHalfOpen {
			t.Fatalf("after Trip: %v", st)
		}
		if err := b.Execute(ctx, func(context.Context) error { return nil }); err != nil && !errors.Is(err, contract.ErrUnavailable) {
			t.Fatalf("call after trip: %v", err)
		}
		b.ForceClosed(ctx, "")
		b.Reset(ctx)
	})
}

// FuzzRegistryKeys: registry keys come from outside (a request's host, a
// tenant id). Any two keys get a breaker each (the same one on every Get),
// distinct keys distinct breakers, named in valid UTF-8 within 256 bytes;
// only "" is named EmptyName, and no key is named OverflowName until the
// registry is full.
func FuzzRegistryKeys(f *testing.F) {
	for _, k := range [][2]string{
		{"api.example", "API.example"}, {"", "(empty)"}, {"(overflow)", "((overflow)"},
		{"\xff", "\xfe"}, {strings.Repeat("é", 200), strings.Repeat("é", 129) + "x"},
		{strings.Repeat("(", 300) + "overflow)", strings.Repeat("\x80", 300)},
	} {
		f.Add(k[0], k[1])
	}
	f.Fuzz(func(t *testing.T, k1, k2 string) {
		reg, err := breaker.NewRegistry(breaker.RegistryConfig{MaxBreakers: 2, Breaker: breaker.Config{DisableMetrics: true}})
		if err != nil {
			t.Fatal(err)
		}
		b1, b2 := reg.Get(k1), reg.Get(k2)
		if reg.Get(k1) != b1 || reg.Get(k2) != b2 {
			t.Fatal("a key's breaker changed")
		}
		if (k1 == k2) != (b1 == b2) {
			t.Fatalf("keys %q and %q: same breaker %v", k1, k2, b1 == b2)
		}
		for _, kb := range []struct {
			k string
			b *breaker.Breaker
		}{{k1, b1}, {k2, b2}} {
			name := kb.b.Name()
			if !utf8.ValidString(name) || name == "" || len(name) > 256 {
				t.Fatalf("key %q: name %q", kb.k, name)
			}
			if (name == breaker.EmptyName) != (kb.k == "") || name == breaker.OverflowName {
				t.Fatalf("key %q: name %q", kb.k, name)
			}
		}
		if o := reg.Get(k1 + k2 + "!"); k1 != k2 && o.Name() != breaker.OverflowName {
			t.Fatalf("third key in a registry of 2: %q", o.Name())
		}
	})
}
