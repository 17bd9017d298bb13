package ordering_test

import (
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/sadpath/sadpath/ordering"
)

func TestLatestKeepsNewest(t *testing.T) {
	var l ordering.Latest[string]
	if _, _, ok := l.Get("k"); ok {
		t.Fatal("empty Latest has a value")
	}
	steps := []struct {
		version uint64
		value   string
		stored  bool
	}{{2, "b", true}, {1, "a", false}, {2, "b'", false}, {5, "e", true}, {3, "c", false}}
	for _, s := range steps {
		if got := l.Put("k", s.version, s.value); got != s.stored {
			t.Fatalf("Put(v%d) = %v, want %v", s.version, got, s.stored)
		}
	}
	if v, ver, ok := l.Get("k"); !ok || v != "e" || ver != 5 {
		t.Fatalf("Get = %q v%d %v, want e v5", v, ver, ok)
	}
	if l.Len() != 1 || !ordering.Newer(6, 5) || ordering.Newer(5, 5) {
		t.Fatal("Len or Newer wrong")
	}
}

func TestLatestConcurrentAnyOrder(t *testing.T) {
	// Versions put from many goroutines in random order: the newest wins.
	var l ordering.Latest[uint64]
	const versions = 2000
	perm := rand.Perm(versions)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < versions; i += 8 {
				v := uint64(perm[i] + 1)
				l.Put("acct", v, v*10)
			}
		}(w)
	}
	wg.Wait()
	if v, ver, _ := l.Get("acct"); ver != versions || v != versions*10 {
		t.Fatalf("Get = %d v%d, want %d v%d", v, ver, versions*10, versions)
	}
}
