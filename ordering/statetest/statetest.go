package statetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/ordering"
)

// Run checks the State contract. newState returns an empty State for each
// subtest; subjects used are unique within a subtest only, so a shared
// backend must be emptied or namespaced by newState.
func Run(t *testing.T, newState func(t *testing.T) ordering.State) {
	t.Helper()
	ctx := context.Background()

	t.Run("UnknownSubjectIsZero", func(t *testing.T) {
		s := newState(t)
		last, err := s.Last(ctx, "nobody")
		if err != nil || last != 0 {
			t.Fatalf("Last(unknown) = %d, %v; want 0, nil", last, err)
		}
	})

	t.Run("AdvanceStoresGreater", func(t *testing.T) {
		s := newState(t)
		for _, step := range []struct{ give, want uint64 }{{1, 1}, {2, 2}, {5, 5}, {3, 5}, {5, 5}, {0, 5}, {6, 6}} {
			var seen uint64
			err := s.Advance(ctx, "a", func(_ context.Context, last uint64) (uint64, error) {
				seen = last
				return step.give, nil
			})
			if err != nil {
				t.Fatalf("Advance(%d): %v", step.give, err)
			}
			last, err := s.Last(ctx, "a")
			if err != nil || last != step.want {
				t.Fatalf("after Advance(%d) from %d: Last = %d, %v; want %d", step.give, seen, last, err, step.want)
			}
		}
	})

	t.Run("FailedFnStoresNothing", func(t *testing.T) {
		s := newState(t)
		mustAdvance(t, s, "a", 3)
		boom := errors.New("effect failed")
		calls := 0
		err := s.Advance(ctx, "a", func(context.Context, uint64) (uint64, error) { calls++; return 9, boom })
		if err != boom { // unchanged: the caller classifies it (retry or dead-letter)
			t.Fatalf("Advance error = %v, want the fn's error unchanged, not wrapped: callers classify it", err)
		}
		if calls != 1 {
			t.Fatalf("fn called %d times, want once: a failed fn must not be run again (its effects would be applied twice)", calls)
		}
		if last, _ := s.Last(ctx, "a"); last != 3 {
			t.Fatalf("Last after failed fn = %d, want 3", last)
		}
	})

	t.Run("SubjectsAreIndependent", func(t *testing.T) {
		s := newState(t)
		mustAdvance(t, s, "a", 7)
		mustAdvance(t, s, "b", 2)
		for subj, want := range map[string]uint64{"a": 7, "b": 2, "c": 0} {
			if last, err := s.Last(ctx, subj); err != nil || last != want {
				t.Fatalf("Last(%q) = %d, %v; want %d", subj, last, err, want)
			}
		}
	})

	t.Run("OpaqueSubjects", func(t *testing.T) {
		s := newState(t)
		subjects := []string{"ünïcødé/✓", "with space", "quote'\"", "nul\x00byte", "\xff\xfe", strings.Repeat("long", 256),
			// Subjects are compared byte for byte: none of these is one of
			// the above, nor each other, whatever a backend's collation,
			// key length or string type says (two entities sharing one
			// sequence drop each other's events as stale).
			"With Space", "with space ", "nul", "nul\x00other", strings.Repeat("long", 256) + "er", "caf\u00e9", "cafe\u0301"}
		for i, subj := range subjects {
			mustAdvance(t, s, subj, uint64(i+1))
		}
		for i, subj := range subjects {
			if last, err := s.Last(ctx, subj); err != nil || last != uint64(i+1) {
				t.Fatalf("Last(%q) = %d, %v; want %d", subj, last, err, i+1)
			}
		}
	})

	t.Run("ConcurrentAdvanceIsSerialised", func(t *testing.T) {
		s := newState(t)
		const workers, each = 8, 10
		var mu sync.Mutex
		seen := make(map[uint64]int)
		var wg sync.WaitGroup
		errs := make(chan error, workers*each)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					err := s.Advance(ctx, "hot", func(_ context.Context, last uint64) (uint64, error) {
						mu.Lock()
						seen[last]++
						mu.Unlock()
						return last + 1, nil
					})
					if err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("Advance: %v", err)
		}
		if last, _ := s.Last(ctx, "hot"); last != workers*each {
			t.Fatalf("Last = %d after %d increments, want %d (lost update)", last, workers*each, workers*each)
		}
		for last, n := range seen {
			if n != 1 {
				t.Fatalf("fn saw last=%d %d times: Advance calls overlapped", last, n)
			}
		}
	})

	t.Run("SequenceRange", func(t *testing.T) {
		s := newState(t)
		b, bounded := s.(ordering.BoundedState)
		if !bounded {
			// Not a BoundedState: the Guard relies on every sequence
			// being recordable.
			mustAdvance(t, s, "a", math.MaxUint64)
			if last, err := s.Last(ctx, "a"); err != nil || last != math.MaxUint64 {
				t.Fatalf("Last = %d, %v; want %d (a State that is not an ordering.BoundedState records any uint64)", last, err, uint64(math.MaxUint64))
			}
			return
		}
		limit := b.MaxSequence()
		if limit == 0 {
			t.Fatal("MaxSequence() = 0, want at least 1")
		}
		mustAdvance(t, s, "a", limit)
		if last, err := s.Last(ctx, "a"); err != nil || last != limit {
			t.Fatalf("Last = %d, %v; want MaxSequence %d", last, err, limit)
		}
		if limit == math.MaxUint64 {
			return
		}
		err := s.Advance(ctx, "b", func(context.Context, uint64) (uint64, error) { return limit + 1, nil })
		if !errors.Is(err, contract.ErrInvalid) {
			t.Fatalf("Advance(MaxSequence+1) = %v, want an error of KindInvalid", err)
		}
		if last, _ := s.Last(ctx, "b"); last != 0 {
			t.Fatalf("Last after refused Advance = %d, want 0", last)
		}
	})

	t.Run("HugeSubject", func(t *testing.T) {
		// A 1 MiB subject (incompressible): a State records it, or refuses
		// it with an error matching ordering.ErrInvalidEvent, not
		// retryable, since no redelivery can record it (a consumer then
		// dead-letters the event at once instead of retrying it until
		// MaxAttempts while the subject's later events wait).
		b := make([]byte, 512<<10)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		subject := hex.EncodeToString(b)
		s := newState(t)
		err := s.Advance(ctx, subject, func(context.Context, uint64) (uint64, error) { return 1, nil })
		want := uint64(1)
		if err != nil {
			if !errors.Is(err, ordering.ErrInvalidEvent) || contract.Retryable(err) {
				t.Fatalf("Advance on a 1 MiB subject = %v; want nil, or an error matching ordering.ErrInvalidEvent, not retryable", err)
			}
			want = 0
		}
		if last, err := s.Last(ctx, subject); err != nil || last != want {
			t.Fatalf("Last(1 MiB subject) = %d, %v; want %d", last, err, want)
		}
		mustAdvance(t, s, "a", 1) // a short subject is still recorded
	})

	t.Run("CanceledContext", func(t *testing.T) {
		s := newState(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		called := false
		err := s.Advance(cctx, "a", func(ctx context.Context, last uint64) (uint64, error) {
			called = true
			return last + 1, ctx.Err()
		})
		if err == nil {
			t.Fatalf("Advance with a canceled context: nil error (fn called: %v)", called)
		}
		if last, _ := s.Last(ctx, "a"); last != 0 {
			t.Fatalf("Last after canceled Advance = %d, want 0", last)
		}
	})

	t.Run("CanceledDuringFn", func(t *testing.T) {
		// A shutdown cancels the context while fn runs and succeeds: the
		// State may store the sequence or fail (a transaction whose commit
		// is canceled rolls back), but a nil answer means it is stored —
		// the caller takes the event as applied and acknowledges it.
		s := newState(t)
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		err := s.Advance(cctx, "a", func(_ context.Context, last uint64) (uint64, error) {
			cancel()
			return last + 1, nil
		})
		last, lerr := s.Last(ctx, "a")
		if lerr != nil {
			t.Fatalf("Last: %v", lerr)
		}
		if err == nil && last != 1 {
			t.Fatalf("Advance canceled during fn = nil, but Last = %d, want 1: a nil answer must mean the sequence is stored", last)
		}
	})

	if _, ok := newState(t).(ordering.RedeliveryState); ok {
		runRedelivery(t, newState)
	}
}

// runRedelivery checks the ordering.RedeliveryState contract.
func runRedelivery(t *testing.T, newState func(t *testing.T) ordering.State) {
	ctx := context.Background()
	at := func(sec int64) time.Time { return time.Unix(2_000_000_000+sec, 0) }
	rstate := func(t *testing.T) ordering.RedeliveryState {
		return newState(t).(ordering.RedeliveryState)
	}
	// dueOf returns what due(to) says for subject, read in an
	// AdvanceRedelivery that stores nothing.
	dueOf := func(t *testing.T, s ordering.RedeliveryState, subject string, to uint64) time.Time {
		t.Helper()
		var got time.Time
		err := s.AdvanceRedelivery(ctx, subject, func(ctx context.Context, last uint64, due func(context.Context, uint64) (time.Time, error)) (uint64, ordering.Redelivery, error) {
			var err error
			got, err = due(ctx, to)
			return last, ordering.Redelivery{}, err
		})
		if err != nil {
			t.Fatalf("AdvanceRedelivery(%q) reading due(%d): %v", subject, to, err)
		}
		return got
	}
	wantDue := func(t *testing.T, s ordering.RedeliveryState, subject string, to uint64, want time.Time) {
		t.Helper()
		if got := dueOf(t, s, subject, to); !got.Equal(want) {
			t.Fatalf("due(%d) on %q = %v, want %v", to, subject, got, want)
		}
	}

	t.Run("RedeliveryKeptWhenFnFails", func(t *testing.T) {
		s := rstate(t)
		mustAdvance(t, s, "a", 3)
		boom := errors.New("effect failed")
		calls := 0
		err := s.AdvanceRedelivery(ctx, "a", func(context.Context, uint64, func(context.Context, uint64) (time.Time, error)) (uint64, ordering.Redelivery, error) {
			calls++
			return 4, ordering.Redelivery{Sequence: 4, At: at(10)}, boom
		})
		if err != boom || calls != 1 {
			t.Fatalf("AdvanceRedelivery with a failing fn = %v after %d calls; want the fn's error unchanged, fn called once", err, calls)
		}
		if last, _ := s.Last(ctx, "a"); last != 3 {
			t.Fatalf("Last after failed fn = %d, want 3", last)
		}
		wantDue(t, s, "a", 3, time.Time{}) // (3, 3] is empty
		wantDue(t, s, "a", 4, at(10))      // kept although fn failed
		// A Redelivery at or below the last applied sequence is not
		// recorded (nor reported: due covers (last, to] only).
		err = s.AdvanceRedelivery(ctx, "a", func(context.Context, uint64, func(context.Context, uint64) (time.Time, error)) (uint64, ordering.Redelivery, error) {
			return 0, ordering.Redelivery{Sequence: 3, At: at(99)}, boom
		})
		if err != boom {
			t.Fatalf("AdvanceRedelivery = %v, want the fn's error", err)
		}
		wantDue(t, s, "a", 100, at(10))
	})

	t.Run("RedeliveryRecordedWhenFnSucceeds", func(t *testing.T) {
		s := rstate(t)
		err := s.AdvanceRedelivery(ctx, "a", func(context.Context, uint64, func(context.Context, uint64) (time.Time, error)) (uint64, ordering.Redelivery, error) {
			return 4, ordering.Redelivery{Sequence: 6, At: at(5)}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if last, _ := s.Last(ctx, "a"); last != 4 {
			t.Fatalf("Last = %d, want 4", last)
		}
		wantDue(t, s, "a", 5, time.Time{})
		wantDue(t, s, "a", 6, at(5))
	})

	t.Run("RedeliveringLaterWins", func(t *testing.T) {
		s := rstate(t)
		mustAdvance(t, s, "a", 3)
		for _, r := range []ordering.Redelivery{{Sequence: 5, At: at(20)}, {Sequence: 5, At: at(10)}, {Sequence: 7, At: at(30)}, {Sequence: 2, At: at(99)}} {
			if err := s.Redelivering(ctx, "a", r); err != nil {
				t.Fatalf("Redelivering(%+v): %v", r, err)
			}
		}
		wantDue(t, s, "a", 4, time.Time{})
		wantDue(t, s, "a", 6, at(20)) // the later At of sequence 5 stays
		wantDue(t, s, "a", 7, at(30)) // the latest in (3, 7]
		// A subject never applied, and subjects that differ after a NUL
		// byte, are their own.
		if err := s.Redelivering(ctx, "nul\x00byte", ordering.Redelivery{Sequence: 1, At: at(40)}); err != nil {
			t.Fatal(err)
		}
		wantDue(t, s, "nul\x00byte", 1, at(40))
		wantDue(t, s, "nul", 1, time.Time{})
		wantDue(t, s, "b", 10, time.Time{})
	})

	t.Run("RedeliveriesEndWithTheirSequence", func(t *testing.T) {
		s := rstate(t)
		mustAdvance(t, s, "a", 3)
		for _, r := range []ordering.Redelivery{{Sequence: 4, At: at(50)}, {Sequence: 6, At: at(10)}} {
			if err := s.Redelivering(ctx, "a", r); err != nil {
				t.Fatal(err)
			}
		}
		wantDue(t, s, "a", 6, at(50))
		err := s.AdvanceRedelivery(ctx, "a", func(_ context.Context, last uint64, _ func(context.Context, uint64) (time.Time, error)) (uint64, ordering.Redelivery, error) {
			return last + 2, ordering.Redelivery{}, nil // 4 and 5 applied (or skipped)
		})
		if err != nil {
			t.Fatal(err)
		}
		wantDue(t, s, "a", 6, at(10)) // 4 is no longer due
	})
}

func mustAdvance(t *testing.T, s ordering.State, subject string, to uint64) {
	t.Helper()
	err := s.Advance(context.Background(), subject, func(context.Context, uint64) (uint64, error) { return to, nil })
	if err != nil {
		t.Fatal(fmt.Errorf("Advance(%q, %d): %w", subject, to, err))
	}
}
