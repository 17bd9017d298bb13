package main

import (
	"testing"
	"time"
)

func TestRecoveryBound(t *testing.T) {
	ms := time.Millisecond
	t.Run("idle machine: the stated 400 ms", func(t *testing.T) {
		l := &timerLog{}
		l.fired(slowUntil+50*ms, 0)
		bound, late, excused := recoveryBound([]time.Duration{slowUntil - 20*ms}, l, 200*ms)
		if bound != closeBound || late != 0 || excused != 0 {
			t.Fatalf("bound, late, excused = %s, %s, %d; want %s, 0, 0", bound, late, excused, closeBound)
		}
	})
	t.Run("a stall in the recovery window widens it by 4 × the stall", func(t *testing.T) {
		l := &timerLog{}
		l.fired(slowUntil-200*ms, 900*ms) // before the window: ignored
		l.fired(slowUntil+30*ms, 80*ms)
		l.fired(slowUntil+900*ms, 700*ms) // after the breaker closed: ignored
		bound, late, _ := recoveryBound(nil, l, 450*ms)
		if late != 80*ms || bound != closeBound+320*ms {
			t.Fatalf("bound, late = %s, %s; want %s, 80ms", bound, late, closeBound+320*ms)
		}
	})
	t.Run("a reopening by a healthy answer made slow is excused", func(t *testing.T) {
		l := &timerLog{}
		l.fired(slowUntil+150*ms, 10*ms)
		l.slowHealthy(slowUntil + 300*ms)
		// The first reopening is the probe sent before recovery timing out;
		// the second came from the slow healthy answer.
		bound, late, excused := recoveryBound([]time.Duration{slowUntil + 90*ms, slowUntil + 300*ms}, l, 620*ms)
		want := closeBound + 4*late + openTimeout + probeSlack + 4*late
		if excused != 1 || bound != want {
			t.Fatalf("bound, excused = %s, %d; want %s, 1", bound, excused, want)
		}
	})
	t.Run("a reopening nothing slow explains is not excused", func(t *testing.T) {
		l := &timerLog{}
		bound, _, excused := recoveryBound([]time.Duration{slowUntil + 300*ms}, l, 620*ms)
		if excused != 0 || bound != closeBound {
			t.Fatalf("bound, excused = %s, %d; want %s, 0 (a breaker reopening on fast successful probes must fail the check)", bound, excused, closeBound)
		}
	})
	t.Run("never closed: lateness up to the end of the run", func(t *testing.T) {
		l := &timerLog{}
		l.fired(runFor-10*ms, 40*ms)
		if _, late, _ := recoveryBound(nil, l, -1); late != 40*ms {
			t.Fatalf("late = %s, want 40ms", late)
		}
	})
}
