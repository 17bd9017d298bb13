package idempotency

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestExpHeapRandomOperations drives the expiry heap with random pushes,
// removals, key changes and pops of the minimum, checking after every step
// that the heap order holds, that every record knows its index, and that
// the minimum is the least key of a reference list.
func TestExpHeapRandomOperations(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h expHeap
	ref := map[*memEntry]int64{}
	check := func(step int) {
		t.Helper()
		if len(h) != len(ref) {
			t.Fatalf("step %d: heap holds %d, want %d", step, len(h), len(ref))
		}
		for i, it := range h {
			if int(it.e.idx) != i {
				t.Fatalf("step %d: record at %d says idx %d", step, i, it.e.idx)
			}
			if it.at != ref[it.e] {
				t.Fatalf("step %d: key %d, want %d", step, it.at, ref[it.e])
			}
			if i > 0 && h[(i-1)/heapArity].at > it.at {
				t.Fatalf("step %d: parent of %d has a larger key", step, i)
			}
		}
		if len(h) > 0 {
			keys := make([]int64, 0, len(ref))
			for _, k := range ref {
				keys = append(keys, k)
			}
			if m := slices.Min(keys); h[0].at != m {
				t.Fatalf("step %d: top %d, want the least key %d", step, h[0].at, m)
			}
		}
	}
	for step := range 20_000 {
		switch op := rng.IntN(10); {
		case op < 4 || len(h) == 0:
			e := &memEntry{}
			at := rng.Int64N(1000) // repeats on purpose: ties
			h.push(e, at)
			ref[e] = at
		case op < 6:
			e := h[rng.IntN(len(h))].e
			h.remove(int(e.idx))
			if e.idx != -1 {
				t.Fatalf("step %d: removed record keeps idx %d", step, e.idx)
			}
			delete(ref, e)
		case op < 8:
			e := h[rng.IntN(len(h))].e
			at := rng.Int64N(1000)
			h.fix(int(e.idx), at)
			ref[e] = at
		default:
			e := h[0].e
			h.remove(0)
			delete(ref, e)
		}
		check(step)
	}
}

// TestAfterSaturates: a tick far in the future stays in the future; it
// never wraps around into the past (a record that would expire at once).
func TestAfterSaturates(t *testing.T) {
	if got := after(10, 5); got != 15 {
		t.Fatalf("after(10, 5) = %d", got)
	}
	if got := after(math.MaxInt64-3, 10); got != math.MaxInt64 {
		t.Fatalf("after(max-3, 10) = %d, want max", got)
	}
	if got := after(1<<62, time.Duration(math.MaxInt64)); got != math.MaxInt64 {
		t.Fatalf("after(2^62, max) = %d, want max", got)
	}
}
