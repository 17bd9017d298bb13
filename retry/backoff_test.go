package retry_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/sadpath/sadpath/retry"
	"github.com/sadpath/sadpath/retry/retrytest"
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

// TestJitterIsUniformThroughDo: bounds and means alone let a "jitter" that
// is not random pass (a constant exp(n)/2 has the right mean), and so would
// calls that all draw the same schedule, which is the lockstep jitter
// exists to break. Over many calls of Do with the default random source,
// the jitter draw of every wait, u = (wait - lo) / (hi - lo) within the
// formula's range [lo, hi), must be spread uniformly across calls: its
// empirical quantiles sit at the uniform's, at each retry and pooled.
func TestJitterIsUniformThroughDo(t *testing.T) {
	const runs = 4000
	quantiles := []float64{0.1, 0.25, 0.5, 0.75, 0.9}
	// check reports whether the share of us below each quantile q is q
	// within tol (4000 samples: sd <= 0.008, tol 0.05 is over 6 sd).
	check := func(t *testing.T, what string, us []float64, tol float64) {
		t.Helper()
		for _, q := range quantiles {
			below := 0
			for _, u := range us {
				if u < q {
					below++
				}
			}
			if got := float64(below) / float64(len(us)); got < q-tol || got > q+tol {
				t.Errorf("%s: %.3f of %d draws below %.2f, want %.2f±%.2f", what, got, len(us), q, q, tol)
			}
		}
	}
	for _, s := range []retry.Strategy{retry.FullJitter, retry.EqualJitter, retry.DecorrelatedJitter} {
		t.Run(s.String(), func(t *testing.T) {
			clk := retrytest.NewClock()
			p := mustPolicy(t, retry.Config{Strategy: s, InitialDelay: base, MaxDelay: capD, MaxAttempts: tries,
				MaxElapsedTime: time.Hour, Clock: clk, DisableTelemetry: true})
			for r := 0; r < runs; r++ {
				_, err := retry.Do(context.Background(), p, func(context.Context) (int, error) { return 0, unavailable() })
				if !errors.Is(err, retry.StopAttempts) {
					t.Fatalf("run %d: %v, want StopAttempts", r, err)
				}
			}
			sleeps := clk.Sleeps()
			if len(sleeps) != runs*(tries-1) {
				t.Fatalf("%d waits, want %d", len(sleeps), runs*(tries-1))
			}
			perWait := make([][]float64, tries)
			var pooled []float64
			for r := 0; r < runs; r++ {
				prev := base
				for n := 1; n < tries; n++ {
					d := sleeps[r*(tries-1)+n-1]
					var lo, hi time.Duration
					switch s {
					case retry.FullJitter:
						lo, hi = 0, expAt(n)
					case retry.EqualJitter:
						lo, hi = expAt(n)/2, expAt(n)
					case retry.DecorrelatedJitter:
						lo, hi = base, 3*prev
						prev = d
						if hi > capD {
							continue // the draw may be cut to the cap: not uniform
						}
					}
					if d < lo || d > hi {
						t.Fatalf("run %d wait %d = %v, outside [%v, %v]", r, n, d, lo, hi)
					}
					u := float64(d-lo) / float64(hi-lo)
					perWait[n] = append(perWait[n], u)
					pooled = append(pooled, u)
				}
			}
			for n := 1; n < tries; n++ {
				if len(perWait[n]) >= runs/2 {
					check(t, "wait "+strconv.Itoa(n), perWait[n], 0.05)
				}
			}
			check(t, "all waits", pooled, 0.02)
		})
	}
}
