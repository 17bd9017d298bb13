package redisstate

import (
	"testing"

	"github.com/sadpath/sadpath/breaker"
)

// When the local breaker opens, by its own counts or by a trip applied from
// the shared state, the counts it has not merged yet are dropped: the trip
// cleared the shared window. Only local changes are published.
func TestLocalOpenDropsUnmergedCounts(t *testing.T) {
	for _, tc := range []struct {
		t       breaker.Transition
		drop    bool
		publish bool
	}{
		{breaker.Transition{From: breaker.StateClosed, To: breaker.StateOpen, Reason: "failure rate 1.00 over 4 calls >= 0.50"}, true, true},
		{breaker.Transition{From: breaker.StateHalfOpen, To: breaker.StateOpen, Reason: "probe failed"}, true, true},
		{breaker.Transition{From: breaker.StateClosed, To: breaker.StateOpen, Reason: peerPrefix + "tripped by instance b"}, true, false},
		{breaker.Transition{From: breaker.StateHalfOpen, To: breaker.StateClosed, Reason: "3 probes succeeded"}, false, true},
		{breaker.Transition{From: breaker.StateOpen, To: breaker.StateHalfOpen, Reason: "probe requested"}, false, false},
	} {
		s := &Shared{pub: make(chan breaker.Transition, 1)}
		s.succ.Store(2)
		s.fail.Store(3)
		s.onLocalChange(tc.t)
		name := tc.t.From.String() + ">" + tc.t.To.String() + " (" + tc.t.Reason + ")"
		if dropped := s.succ.Load() == 0 && s.fail.Load() == 0; dropped != tc.drop {
			t.Errorf("%s: counts %d/%d left, want dropped %v", name, s.succ.Load(), s.fail.Load(), tc.drop)
		}
		if published := len(s.pub) == 1; published != tc.publish {
			t.Errorf("%s: published %v, want %v", name, published, tc.publish)
		}
	}
}
