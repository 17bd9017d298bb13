package redisstore

import (
	"testing"

	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/idempotency/storetest"
)

// TestConformance runs the shared idempotency.Store suite against the real
// Redis server, on real time (nil Clock): two store instances on two clients
// alternate, as two service instances would.
func TestConformance(t *testing.T) {
	c1 := newClient(t, "redisstore-conformance")
	c2 := newClient(t, "redisstore-conformance")
	prefix := testPrefix(t)
	a := newStore(t, c1, prefix)
	b, err := New(Config{Client: c2, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	storetest.Run(t, func(t *testing.T) (idempotency.Store, storetest.Clock) {
		n++
		if n%2 == 0 {
			return b, nil
		}
		return a, nil
	})
}
