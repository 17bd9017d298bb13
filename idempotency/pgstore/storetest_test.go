package pgstore

import (
	"testing"

	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/idempotency/storetest"
)

// TestConformance runs the shared idempotency.Store suite against the real
// PostgreSQL server, on real time (nil Clock): two store instances on two
// pools alternate, as two service instances would.
func TestConformance(t *testing.T) {
	p1, _ := newPool(t, "pgstore-conformance", nil)
	p2, _ := newPool(t, "pgstore-conformance", nil)
	table := newTable()
	a := newStore(t, p1, table)
	b, err := New(Config{Pool: p2, Schema: testSchema, Table: table})
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
