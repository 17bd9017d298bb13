package idempotency

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

type endOrderStore struct {
	Store
	mu   sync.Mutex
	done map[Key]uint64
	bad  []string
}

func (s *endOrderStore) Complete(ctx context.Context, k Key, tok uint64, r Result) error {
	s.mu.Lock()
	s.done[k] = tok
	s.mu.Unlock()
	return s.Store.Complete(ctx, k, tok, r)
}
func (s *endOrderStore) Release(ctx context.Context, k Key, tok uint64) error {
	s.mu.Lock()
	s.done[k] = tok
	s.mu.Unlock()
	return s.Store.Release(ctx, k, tok)
}
func (s *endOrderStore) Renew(ctx context.Context, k Key, tok uint64, d time.Duration) error {
	s.mu.Lock()
	if t, ok := s.done[k]; ok && t == tok {
		s.bad = append(s.bad, fmt.Sprint(k))
	}
	s.mu.Unlock()
	time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
	return s.Store.Renew(ctx, k, tok, d)
}

// TestHeartbeatNeverRenewsAfterTheEnd runs 2,400 operations on 16
// goroutines with a 2 ms heartbeat, a slow Renew, panics and errors: no
// renewal may reach the store after the operation's Complete or Release,
// no lease may be lost (the lease is far longer than any stall), and the
// list of young operations must end empty.
func TestHeartbeatNeverRenewsAfterTheEnd(t *testing.T) {
	ms, err := NewMemoryStore(MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	st := &endOrderStore{Store: ms, done: map[Key]uint64{}}
	ex, err := New(Config{Store: st, Lease: 5 * time.Second, Heartbeat: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var lostMu sync.Mutex
	lost := 0
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 150 {
				k := Key{Scope: "s", Key: fmt.Sprint(g, "-", i)}
				d := time.Duration(rand.IntN(6000)) * time.Microsecond
				func() {
					defer func() { _ = recover() }() // the panics are the test's own
					_, err := Do(context.Background(), ex, k, "fp", func(ctx context.Context) (int, error) {
						time.Sleep(d)
						if i%7 == 0 {
							panic("x")
						}
						if i%5 == 0 {
							return 0, fmt.Errorf("fail")
						}
						return i, nil
					})
					if err != nil && err.Error() != "fail" {
						lostMu.Lock()
						lost++
						lostMu.Unlock()
						t.Logf("%v: %v", k, err)
					}
				}()
			}
		}()
	}
	wg.Wait()
	ex.young.mu.Lock()
	head := ex.young.head
	ex.young.mu.Unlock()
	if head != nil {
		t.Fatalf("young list not empty after all operations ended")
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.bad) > 0 {
		t.Fatalf("renewals after completion/release: %v", st.bad[:min(5, len(st.bad))])
	}
	if lost > 0 {
		t.Fatalf("%d operations lost their lease", lost)
	}
}
