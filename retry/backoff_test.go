package retry_test

import (
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/sadpath/sadpath/retry"
)

const (
	base  = 10 * time.Millisecond
	capD  = 640 * time.Millisecond
	tries = 12 // 11 waits: the curve reaches the cap at the 7th
)

// expAt is min(cap, base·2^(n-1)), the curve of the n-th retry.
func expAt(n int) time.Duration {
	d := base
	for i := 1; i < n; i++ {
		d *= 2
		if d >= capD {
			return capD
		}
	}
	return d
}

func jitterPolicy(t testing.TB, s retry.Strategy, random func() float64) *retry.Policy {
	return mustPolicy(t, retry.Config{
		Strategy: s, InitialDelay: base, MaxDelay: capD, MaxAttempts: tries,
		MaxElapsedTime: time.Hour, Random: random,
	})
}

// TestJitterBounds draws many schedules and checks every wait lies within
// the formula's bounds, and that the mean sits where the formula puts it.
func TestJitterBounds(t *testing.T) {
	const runs = 4000
	for _, s := range []retry.Strategy{retry.FullJitter, retry.EqualJitter, retry.DecorrelatedJitter, retry.Exponential, retry.Constant} {
		t.Run(s.String(), func(t *testing.T) {
			p := jitterPolicy(t, s, nil)
			sum := make([]float64, tries)
			for r := 0; r < runs; r++ {
				b := p.BackOff()
				prev := base
				for n := 1; ; n++ {
					d := b.NextBackOff()
					if d == backoff.Stop {
						if n != tries {
							t.Fatalf("stopped after %d waits, want %d", n-1, tries-1)
						}
						break
					}
					e := expAt(n)
					var lo, hi time.Duration // d must be in [lo, hi]
					switch s {
					case retry.FullJitter:
						lo, hi = 0, e
					case retry.EqualJitter:
						lo, hi = e/2, e
					case retry.DecorrelatedJitter:
						lo, hi = base, min(capD, 3*prev)
						prev = d
					case retry.Exponential:
						lo, hi = e, e
					case retry.Constant:
						lo, hi = base, base
					}
					if d < lo || d > hi {
						t.Fatalf("run %d wait %d = %v, outside [%v, %v]", r, n, d, lo, hi)
					}
					sum[n] += float64(d)
				}
			}
			// Means: full e/2, equal 3e/4. 4000 uniform samples put the
			// mean within a few percent; 10 % is a loose, stable bound.
			for n := 1; n < tries; n++ {
				mean := sum[n] / runs
				var want float64
				switch s {
				case retry.FullJitter:
					want = float64(expAt(n)) / 2
				case retry.EqualJitter:
					want = float64(expAt(n)) * 3 / 4
				default:
					continue
				}
				if mean < want*0.9 || mean > want*1.1 {
					t.Errorf("wait %d: mean %v, want about %v", n, time.Duration(mean), time.Duration(want))
				}
			}
		})
	}
}

// TestJitterExtremes pins the formulas with an injected random source.
func TestJitterExtremes(t *testing.T) {
	hiR := func() float64 { return 0.999999 }
	loR := func() float64 { return 0 }
	for _, tt := range []struct {
		s      retry.Strategy
		random func() float64
		want   []time.Duration
	}{
		{retry.FullJitter, loR, []time.Duration{0, 0, 0}},
		{retry.EqualJitter, loR, []time.Duration{5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond}},
		{retry.DecorrelatedJitter, loR, []time.Duration{base, base, base}},
		{retry.DecorrelatedJitter, hiR, decorrelatedHigh(3)},
		{retry.Exponential, hiR, []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond}},
	} {
		b := jitterPolicy(t, tt.s, tt.random).BackOff()
		for i, want := range tt.want {
			got := b.NextBackOff()
			// Float rounding may cost a nanosecond or two.
			if diff := got - want; diff < -10 || diff > 10 {
				t.Errorf("%v wait %d = %v, want %v", tt.s, i+1, got, want)
			}
		}
	}
	// A broken random source (out of range, NaN) cannot push a wait past
	// the bounds.
	b := jitterPolicy(t, retry.FullJitter, func() float64 { return 7 }).BackOff()
	if d := b.NextBackOff(); d < 0 || d > base {
		t.Errorf("random 7: wait %v outside [0, %v]", d, base)
	}
}

// decorrelatedHigh is the AWS formula sleep = min(cap, base + r·(3·sleep - base))
// with r = 0.999999, computed independently of the package.
func decorrelatedHigh(n int) []time.Duration {
	var out []time.Duration
	prev := float64(base)
	for i := 0; i < n; i++ {
		d := min(float64(base)+0.999999*(3*prev-float64(base)), float64(capD))
		out = append(out, time.Duration(d))
		prev = d
	}
	return out
}

// TestBackOffWithBackoffRetry shows the policy's waits plugged into
// backoff/v4's own loop, and Reset restarting the schedule.
func TestBackOffWithBackoffRetry(t *testing.T) {
	p := jitterPolicy(t, retry.Exponential, nil)
	b := p.BackOff()
	for i := 0; i < 3; i++ {
		b.NextBackOff()
	}
	b.Reset()
	if d := b.NextBackOff(); d != base {
		t.Errorf("after Reset the first wait is %v, want %v", d, base)
	}
	calls := 0
	p3 := mustPolicy(t, retry.Config{Strategy: retry.Constant, InitialDelay: time.Microsecond, MaxAttempts: 3})
	err := backoff.Retry(func() error { calls++; return unavailable() }, p3.BackOff())
	if err == nil || calls != 3 {
		t.Errorf("backoff.Retry with MaxAttempts 3: calls %d, err %v", calls, err)
	}
}
