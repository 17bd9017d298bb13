package retry

import (
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// schedule is the per-call wait state: the plain exponential curve comes
// from a backoff/v4 ExponentialBackOff created for this call only (it is not
// safe for concurrent use) with its randomization and MaxElapsedTime turned
// off; jitter and every time bound are applied here.
type schedule struct {
	p    *Policy
	exp  *backoff.ExponentialBackOff
	prev time.Duration // previous wait, for DecorrelatedJitter
}

// noClock keeps backoff/v4 from reading the time: with MaxElapsedTime 0 it
// never uses the elapsed time it computes.
type noClock struct{}

func (noClock) Now() time.Time { return time.Time{} }

func (s *schedule) rand() float64 {
	if s.p.random != nil {
		r := s.p.random()
		if r < 0 || r >= 1 || r != r {
			return 0
		}
		return r
	}
	return rand.Float64()
}

// curve returns the next point of min(cap, base·m^(n-1)).
func (s *schedule) curve() time.Duration {
	if s.exp == nil {
		s.exp = &backoff.ExponentialBackOff{
			InitialInterval:     s.p.initial,
			RandomizationFactor: 0,
			Multiplier:          s.p.multiplier,
			MaxInterval:         s.p.maxDelay,
			MaxElapsedTime:      0,
			Stop:                backoff.Stop,
			Clock:               noClock{},
		}
		s.exp.Reset()
	}
	d := s.exp.NextBackOff()
	if d < 0 || d > s.p.maxDelay {
		d = s.p.maxDelay
	}
	return d
}

// next returns the wait before the next retry, before Retry-After and the
// time bounds are applied.
func (s *schedule) next() time.Duration {
	p := s.p
	switch p.strategy {
	case Constant:
		return p.initial
	case DecorrelatedJitter:
		if s.prev < p.initial {
			s.prev = p.initial
		}
		// In float64: 3·prev overflows time.Duration near its limit.
		lo := float64(p.initial)
		hi := min(3*float64(s.prev), 3*float64(p.maxDelay))
		d := clampDur(lo+s.rand()*(hi-lo), p.maxDelay)
		s.prev = d
		return d
	}
	e := s.curve()
	switch p.strategy {
	case EqualJitter:
		half := e / 2
		return clampDur(float64(half)+s.rand()*float64(e-half), e)
	case Exponential:
		return e
	default: // FullJitter
		return clampDur(s.rand()*float64(e), e)
	}
}

// clampDur converts x to a Duration in [0, hi].
func clampDur(x float64, hi time.Duration) time.Duration {
	if !(x > 0) {
		return 0
	}
	if x >= float64(hi) {
		return hi
	}
	return time.Duration(x)
}

// BackOff returns a fresh backoff/v4 BackOff producing this policy's waits
// (strategy, jitter, MaxDelay) and backoff.Stop after MaxAttempts-1 waits,
// for code that drives its own loop or uses backoff.Retry. Like backoff/v4's
// own, the value is for one call at a time: it is not safe for concurrent
// use. It knows nothing of Retry-After, budgets, classification or
// MaxElapsedTime: Do applies those.
func (p *Policy) BackOff() backoff.BackOff {
	if p == nil {
		p = defaultPolicy
	}
	return &policyBackOff{s: schedule{p: p}}
}

type policyBackOff struct {
	s       schedule
	retries int
}

func (b *policyBackOff) NextBackOff() time.Duration {
	if b.retries >= b.s.p.maxAttempts-1 {
		return backoff.Stop
	}
	b.retries++
	return b.s.next()
}

func (b *policyBackOff) Reset() {
	b.s = schedule{p: b.s.p}
	b.retries = 0
}
