package ordering

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sadpath/sadpath/contract"
)

// MemoryConfig configures a Memory state. The zero value is valid.
type MemoryConfig struct {
	// MaxSubjects bounds how many subjects are remembered. Zero means the
	// default, 100,000. Only subjects with a sequence recorded take a
	// place: one whose events were all gaps, refused or failed is
	// forgotten at once, its last applied sequence being 0 either way. When the state is full, a new subject takes the place
	// of one idle for at least IdleTTL; when there is none, Advance fails with
	// an error of KindOverloaded (code "ordering.state_full").
	MaxSubjects int

	// MaxBytes bounds the bytes the remembered subjects take: each counts
	// its length plus a fixed overhead (memEntryOverhead, 160 bytes: the
	// entry and its map slot). Zero means the default: 64 MiB for the
	// default 100,000 subjects, and as much per subject (671 bytes:
	// subjects of up to about 500 bytes) for another MaxSubjects, so that
	// MaxSubjects ordinary subjects always fit. Subjects are opaque and may be as
	// long as an event allows; without this bound, events applied on new
	// huge subjects would grow the state to MaxSubjects times their size.
	// When a new subject does not fit, the state makes room as for
	// MaxSubjects: it forgets subjects idle for IdleTTL, or Advance fails
	// with ordering.state_full (retryable: it passes as subjects go idle).
	// A subject that would not fit even in an empty state (its length plus
	// the overhead above MaxBytes) can never be remembered: Advance, and
	// so the Guard, refuse it with an error matching ErrInvalidEvent whose
	// detail names its size and MaxBytes, which a consumer dead-letters at
	// once (as ordering/pgstate refuses a subject too long for its index).
	// Negative is invalid.
	MaxBytes int64

	// IdleTTL is how long a subject must go untouched before it may be
	// forgotten to make room. Zero means subjects are never forgotten.
	// A forgotten subject starts again from sequence 0: its next event is
	// judged a gap (or applied, when it is sequence 1), so choose an IdleTTL
	// longer than any redelivery window.
	IdleTTL time.Duration

	// Clock tells the time for IdleTTL. Nil means the system clock.
	Clock Clock
}

// Memory is a bounded in-memory State for tests and single-process services.
// The zero value is an empty Memory with the defaults of a zero MemoryConfig,
// as NewMemory(MemoryConfig{}) returns. It is safe for concurrent use:
// Advance calls for different subjects run in parallel, for the same subject
// one at a time. What it remembers is lost with the process; use
// ordering/pgstate for a durable, shared state.
type Memory struct {
	mu       sync.RWMutex
	subjects map[string]*memEntry
	max      int
	maxBytes int64
	bytes    int64 // of the remembered subjects, under mu
	idle     time.Duration
	clock    Clock
}

// memEntryOverhead is what a remembered subject costs beyond its bytes: the
// memEntry (about 64 bytes allocated) and its map slot (a string header, a
// pointer, the map's growth slack).
const memEntryOverhead = 160

// defaultBytesPer100k is the default MaxBytes per 100,000 subjects.
const defaultBytesPer100k = 64 << 20

func subjectCost(subject string) int64 { return int64(len(subject)) + memEntryOverhead }

type memEntry struct {
	mu   sync.Mutex
	last atomic.Uint64 // written under mu; Last reads it without
	used time.Time     // last Advance, when IdleTTL > 0
	dead atomic.Bool   // forgotten: look the subject up again (written under mu)
}

var _ State = (*Memory)(nil)

// NewMemory returns an empty Memory state configured by cfg.
func NewMemory(cfg MemoryConfig) (*Memory, error) {
	if cfg.MaxSubjects < 0 {
		return nil, configError("MemoryConfig.MaxSubjects", "must be >= 0, got %d", cfg.MaxSubjects)
	}
	if cfg.MaxBytes < 0 {
		return nil, configError("MemoryConfig.MaxBytes", "must be >= 0, got %d", cfg.MaxBytes)
	}
	if cfg.IdleTTL < 0 {
		return nil, configError("MemoryConfig.IdleTTL", "must be >= 0, got %s", cfg.IdleTTL)
	}
	m := &Memory{max: cfg.MaxSubjects, maxBytes: cfg.MaxBytes, idle: cfg.IdleTTL, clock: cfg.Clock}
	m.initLocked() // not shared yet
	return m, nil
}

// initLocked applies the defaults of the zero fields; m.mu is held, or m
// is not shared yet. NewMemory calls it, and create does for a zero Memory
// (one not built by NewMemory) before its first subject: the fields it sets
// are read only under m.mu, but for clock, which is read without it only
// when IdleTTL > 0, never the case of a zero Memory.
func (m *Memory) initLocked() {
	m.subjects = make(map[string]*memEntry)
	if m.max == 0 {
		m.max = 100_000
	}
	if m.maxBytes == 0 {
		// Scaled with MaxSubjects: a fixed 64 MiB would refuse new
		// subjects well below a MaxSubjects raised for many short ones.
		m.maxBytes = math.MaxInt64 // a MaxSubjects that large bounds nothing either
		if int64(m.max) <= math.MaxInt64/defaultBytesPer100k {
			m.maxBytes = int64(m.max) * defaultBytesPer100k / 100_000
		}
	}
	if m.clock == nil {
		m.clock = systemClock{}
	}
}

// Last returns the last applied sequence of subject, or 0. It does not
// wait for an Advance of subject to finish (it returns the sequence that
// Advance started from): called from inside one — from an ApplyFunc, on
// the goroutine holding the subject's lock — it would wait for ever.
func (m *Memory) Last(ctx context.Context, subject string) (uint64, error) {
	m.mu.RLock()
	e := m.subjects[subject]
	m.mu.RUnlock()
	if e == nil || e.dead.Load() {
		return 0, nil
	}
	return e.last.Load(), nil
}

// Len returns how many subjects are remembered.
func (m *Memory) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.subjects)
}

// Advance implements State.
func (m *Memory) Advance(ctx context.Context, subject string, fn func(ctx context.Context, last uint64) (uint64, error)) error {
	e, err := m.lock(subject)
	if err != nil {
		return err
	}
	defer m.unlock(subject, e)
	next, err := fn(ctx, e.last.Load())
	if err != nil {
		return err
	}
	if next > e.last.Load() {
		e.last.Store(next)
	}
	return nil
}

// lock returns subject's entry, locked, creating it when needed. The Guard
// calls it directly so that the in-order path allocates nothing.
func (m *Memory) lock(subject string) (*memEntry, error) {
	for {
		m.mu.RLock()
		e := m.subjects[subject]
		m.mu.RUnlock()
		if e == nil {
			var err error
			if e, err = m.create(subject); err != nil {
				return nil, err
			}
		}
		e.mu.Lock()
		if e.dead.Load() {
			e.mu.Unlock()
			continue
		}
		if m.idle > 0 {
			e.used = m.clock.Now()
		}
		return e, nil
	}
}

// unlock unlocks subject's entry e, forgetting it when nothing was ever
// recorded for the subject (its last applied sequence is 0, as for a subject
// never seen): a subject whose events were all gaps, refused or failed must
// not take one of the MaxSubjects slots, or a producer inventing subjects
// would fill the state for good and every new subject be refused.
func (m *Memory) unlock(subject string, e *memEntry) {
	if e.last.Load() == 0 {
		// e.mu is held: taking m.mu now is safe, since no one holding m.mu
		// waits for an entry's lock (evictLocked only tries it).
		m.mu.Lock()
		if m.subjects[subject] == e {
			delete(m.subjects, subject)
			m.bytes -= subjectCost(subject)
		}
		m.mu.Unlock()
		e.dead.Store(true) // Advance calls waiting for e look the subject up again
	}
	e.mu.Unlock()
}

func (m *Memory) create(subject string) (*memEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.subjects == nil {
		m.initLocked() // a zero Memory
	}
	if e := m.subjects[subject]; e != nil {
		return e, nil
	}
	cost := subjectCost(subject)
	if cost > m.maxBytes {
		// It would not fit in an empty state: no redelivery, and no
		// subject going idle, can ever record it. The event's fault, as
		// pgstate's subject too long for its index: dead-lettered by a
		// consumer at once, not retried as state_full until MaxAttempts
		// while the subject's later events wait.
		return nil, &contract.Error{
			Kind: contract.KindInvalid,
			Code: "ordering.invalid_event",
			Op:   "ordering.memory",
			Detail: fmt.Sprintf("the subject is %d bytes long and would take %d bytes (with %d of overhead), more than MaxBytes %d: it can never be remembered",
				len(subject), cost, memEntryOverhead, m.maxBytes),
		}
	}
	for len(m.subjects) >= m.max || m.bytes+cost > m.maxBytes {
		if !m.evictLocked() {
			return nil, (&contract.Error{
				Kind:   contract.KindOverloaded,
				Code:   "ordering.state_full",
				Op:     "ordering.memory",
				Detail: fmt.Sprintf("state holds %d subjects (%d bytes) and none is idle; the new subject takes %d bytes", len(m.subjects), m.bytes, cost),
			})
		}
	}
	e := &memEntry{}
	if m.idle > 0 {
		e.used = m.clock.Now()
	}
	// A copy: the key must not keep alive a larger buffer the caller's
	// subject may be a slice of.
	m.subjects[strings.Clone(subject)] = e
	m.bytes += cost
	return e, nil
}

// evictLocked forgets one subject idle for at least IdleTTL. It scans the
// map: eviction only happens when the state is full.
func (m *Memory) evictLocked() bool {
	if m.idle <= 0 {
		return false
	}
	now := m.clock.Now()
	for k, e := range m.subjects {
		if !e.mu.TryLock() {
			continue // in use: not idle
		}
		if now.Sub(e.used) >= m.idle {
			e.dead.Store(true)
			e.mu.Unlock()
			delete(m.subjects, k)
			m.bytes -= subjectCost(k)
			return true
		}
		e.mu.Unlock()
	}
	return false
}
