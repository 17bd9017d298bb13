package retry

import (
	"testing"
	"time"
)

// TestScheduleDoesNotInheritBackoffDefaults pins the backoff/v4 pitfalls Do
// must not inherit. Its ExponentialBackOff stops (returns backoff.Stop) once
// its own MaxElapsedTime, 15 minutes by default, has passed on its own
// clock, real time by default, and randomizes every wait by ±50 %. A fast
// test cannot wait 15 real minutes, so the instance Do builds is inspected:
// no MaxElapsedTime, no randomization, no clock that moves. The curve it
// yields must be the exact min(MaxDelay, InitialDelay·2^(n-1)), past 15
// minutes of waits.
func TestScheduleDoesNotInheritBackoffDefaults(t *testing.T) {
	p, err := New(Config{Strategy: Exponential, InitialDelay: time.Minute, MaxDelay: 10 * time.Minute,
		MaxElapsedTime: 24 * time.Hour, MaxAttempts: 100, DisableTelemetry: true})
	if err != nil {
		t.Fatal(err)
	}
	s := schedule{p: p}
	var total time.Duration
	for n := 1; n < 100; n++ {
		want := min(10*time.Minute, time.Minute<<min(n-1, 10))
		if d := s.next(); d != want {
			t.Fatalf("wait %d = %v after %v of waits, want %v", n, d, total, want)
		}
		total += want
	}
	if s.exp == nil {
		t.Fatal("the Exponential strategy did not use backoff/v4's ExponentialBackOff")
	}
	if s.exp.MaxElapsedTime != 0 {
		t.Errorf("ExponentialBackOff.MaxElapsedTime = %v: it would stop retrying on its own clock", s.exp.MaxElapsedTime)
	}
	if s.exp.RandomizationFactor != 0 {
		t.Errorf("ExponentialBackOff.RandomizationFactor = %v, want 0: jitter is applied by the Strategy", s.exp.RandomizationFactor)
	}
	if e := s.exp.GetElapsedTime(); e != 0 {
		t.Errorf("ExponentialBackOff measures %v elapsed: it reads a clock", e)
	}
}
