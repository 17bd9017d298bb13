package breaker_test

import (
	"math"
	"testing"
	"time"

	"github.com/sadpath/sadpath/breaker"
)

// TestOpenDelayIgnoresRandOutOfRange: Config.Rand is documented to return a
// value in [0, 1). One that does not (a negative value, 1 or more, NaN, ±Inf:
// rand.NormFloat64 passed by mistake, a broken source) must not push the open
// delay past MaxOpenTimeout, nor below OpenTimeout, nor make it depend on how
// the platform converts NaN to an integer: such a value counts as 0 (no
// jitter), as package retry treats its Config.Random.
func TestOpenDelayIgnoresRandOutOfRange(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    float64
	}{
		{"negative", -1},
		{"very negative", -1e300},
		{"one", 1},
		{"above one", 3},
		{"huge", 1e300},
		{"NaN", math.NaN()},
		{"+Inf", math.Inf(1)},
		{"-Inf", math.Inf(-1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, breaker.Config{OpenTimeout: 10 * time.Second, MaxOpenTimeout: 40 * time.Second, Jitter: 1,
				HalfOpenProbes: 1, Rand: func() float64 { return tc.r }})
			for range 4 {
				_ = h.call(errDown)
			}
			// Trips 2, 3, 4: 20s, 40s, 40s unjittered.
			for _, want := range []time.Duration{20 * time.Second, 40 * time.Second, 40 * time.Second} {
				d := h.trans[len(h.trans)-1].OpenFor
				h.clock.Advance(d)
				_ = h.call(errDown) // failed probe: the next trip
				tr := h.trans[len(h.trans)-1]
				if tr.To != breaker.StateOpen || tr.OpenFor != want {
					t.Fatalf("Rand %v: %+v, want open for %v (no jitter)", tc.r, tr, want)
				}
			}
		})
	}
}
