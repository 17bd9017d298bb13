// Package lograte keeps a decision that a failing or overloaded dependency
// makes on every call — a give-up, a rejection, a store error — from
// flooding the logs for as long as the failure lasts.
//
// Each such decision of one component (a retry Policy, a Bulkhead, an
// idempotency Executor…) has a Limiter. Of its occurrences, the first Burst
// in a window of Interval are written at the decision's level, the others
// at Debug; the next line at the decision's level carries
// logctx.KeySuppressed: how many were written at Debug since the previous
// one. A decision that occurs now and then is therefore logged as it was,
// each occurrence at its level; every occurrence is still written at Debug
// (a handler at Debug loses nothing) and still counted by the component's
// metrics. When the decision was paced (some occurrences written at Debug)
// and has not occurred for an Interval since, the next call that succeeds
// writes its end once, at Info, with what was suppressed since the last
// line, if anything: the recovery. A decision never paced gets no end line: each of its
// occurrences is already in the log at its level.
//
// At 10,000 failing calls a second a component writes at most Burst lines
// per Interval per decision, instead of 10,000 a second.
package lograte

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sadpath/sadpath/logctx"
)

// Interval is the window in which at most Burst occurrences of a decision
// are written at its level, and how long it must not occur to count as
// ended.
const Interval = 10 * time.Second

// Burst is how many occurrences of a decision a window of Interval writes
// at its level.
const Burst = 5

// Limiter paces the lines of one decision. The zero value is ready; it is
// safe for concurrent use.
type Limiter struct {
	active     atomic.Bool // occurred since its end was last written
	mu         sync.Mutex
	window     time.Time // start of the current window; zero: none
	lines      int       // occurrences written at their level in the window
	last       time.Time // the last occurrence
	suppressed int64     // occurrences written at Debug since the last line at level
	paced      bool      // some occurrence of the run was written at Debug
}

// Occur records an occurrence at now and returns the level to write it at:
// level for the first Burst occurrences of a window of Interval (a window
// starts with the first occurrence after the previous one has passed, or
// when the clock went back), with the number of occurrences written at
// Debug since the previous line at level; slog.LevelDebug and 0 otherwise.
func (l *Limiter) Occur(now time.Time, level slog.Level) (slog.Level, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last = now
	if !l.active.Load() {
		l.active.Store(true)
	}
	if l.window.IsZero() || now.Sub(l.window) >= Interval || now.Before(l.window) {
		l.window, l.lines = now, 0
	}
	if l.lines < Burst {
		l.lines++
		n := l.suppressed
		l.suppressed = 0
		return level, n
	}
	l.suppressed++
	l.paced = true
	return slog.LevelDebug, 0
}

// Active reports whether the decision occurred since its end was last
// written: a success path checks it, without a lock, before Ended.
func (l *Limiter) Active() bool { return l.active.Load() }

// Ended reports, once per run of occurrences, whether the decision has not
// occurred for an Interval at now; whether the run was paced (some of its
// occurrences written at Debug, in any of its windows), and the number of
// occurrences written at Debug since the last line at level. The next
// occurrence after it is written at its level again. A reading before the
// last occurrence's (the clock went back) starts the Interval again from
// it, rather than wait for the clock to catch up.
func (l *Limiter) Ended(now time.Time) (ended, paced bool, n int64) {
	if !l.active.Load() {
		return false, false, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.active.Load() {
		return false, false, 0
	}
	if now.Before(l.last) {
		l.last = now
	}
	if now.Sub(l.last) < Interval {
		return false, false, 0
	}
	l.active.Store(false)
	l.window, l.lines = time.Time{}, 0
	paced, n = l.paced, l.suppressed
	l.paced, l.suppressed = false, 0
	return true, paced, n
}

// Clock tells the time: the component's injectable clock.
type Clock interface{ Now() time.Time }

// System is the system clock, for components that have no clock of their own.
type System struct{}

// Now returns time.Now().
func (System) Now() time.Time { return time.Now() }

// Log writes one occurrence of decision through logctx.Decision at the
// level Occur gives it, with logctx.KeySuppressed when occurrences were
// suppressed. A nil logger records nothing and reads no clock.
func (l *Limiter) Log(ctx context.Context, log *slog.Logger, clock Clock, level slog.Level, decision, reason string, attrs ...slog.Attr) {
	if log == nil {
		return
	}
	level, n := l.Occur(clock.Now(), level)
	if !log.Enabled(ctx, level) {
		return
	}
	logctx.Decision(ctx, log, level, decision, reason, Suppressed(attrs, n)...)
}

// LogEnd writes the end of the decision at Info, once, when Ended reports
// it of a paced run: decision and reason name the end ("retry budget
// available again"), attrs give the coordinates the occurrences carried,
// and logctx.KeySuppressed the occurrences written at Debug since the last
// line at their level, if any. It costs an atomic load while the decision
// is not active.
func (l *Limiter) LogEnd(ctx context.Context, log *slog.Logger, clock Clock, decision, reason string, attrs ...slog.Attr) {
	if log == nil || !l.active.Load() {
		return
	}
	if ended, paced, n := l.Ended(clock.Now()); ended && paced {
		logctx.Decision(ctx, log, slog.LevelInfo, decision, reason, Suppressed(attrs, n)...)
	}
}

// Suppressed returns attrs with logctx.KeySuppressed set to n when n > 0.
func Suppressed(attrs []slog.Attr, n int64) []slog.Attr {
	if n <= 0 {
		return attrs
	}
	return append(attrs[:len(attrs):len(attrs)], slog.Int64(logctx.KeySuppressed, n))
}

// EndReason is the reason of a line that writes a decision's end.
const EndReason = "not seen for 10s, and a call succeeded"

// Set is the Limiters of one component's decisions, indexed by the
// component's own constants, with one flag for its success path to check.
// Create it with NewSet; it is safe for concurrent use.
type Set struct {
	any atomic.Bool // some Limiter is active
	l   []Limiter
}

// NewSet returns a Set of n Limiters.
func NewSet(n int) *Set { return &Set{l: make([]Limiter, n)} }

// Limiter returns the i-th Limiter. An occurrence recorded on it directly
// (Occur) must be followed by Mark, so that LogEnds looks for its end.
func (s *Set) Limiter(i int) *Limiter { return &s.l[i] }

// Mark tells the Set that one of its Limiters has occurred.
func (s *Set) Mark() {
	if !s.any.Load() {
		s.any.Store(true)
	}
}

// Occur is Limiter.Occur on the i-th Limiter, followed by Mark: for a
// caller that builds the line's attributes only when its level is enabled.
func (s *Set) Occur(i int, now time.Time, level slog.Level) (slog.Level, int64) {
	level, n := s.l[i].Occur(now, level)
	s.Mark()
	return level, n
}

// Log is Limiter.Log on the i-th Limiter.
func (s *Set) Log(ctx context.Context, log *slog.Logger, clock Clock, i int, level slog.Level, decision, reason string, attrs ...slog.Attr) {
	if log == nil {
		return
	}
	s.l[i].Log(ctx, log, clock, level, decision, reason, attrs...)
	s.Mark()
}

// Active reports whether some Limiter of the Set is active: one atomic
// load, for a success path to check before LogEnds.
func (s *Set) Active() bool { return s.any.Load() }

// LogEnds writes, at Info, the end of every Limiter of the Set that Ended
// reports of a paced run (see LogEnd), named by end(i) (a decision and a
// reason), with attrs. A success
// path calls it only when Active reports true, so that its arguments cost
// nothing the rest of the time.
func (s *Set) LogEnds(ctx context.Context, log *slog.Logger, clock Clock, end func(i int) (decision, reason string), attrs ...slog.Attr) {
	if log == nil || !s.any.Load() {
		return
	}
	now := clock.Now()
	still := false
	for i := range s.l {
		l := &s.l[i]
		if !l.Active() {
			continue
		}
		ended, paced, n := l.Ended(now)
		if !ended {
			still = true
			continue
		}
		if !paced {
			continue // every occurrence was written at its level: nothing to sum up
		}
		decision, reason := end(i)
		logctx.Decision(ctx, log, slog.LevelInfo, decision, reason, Suppressed(attrs, n)...)
	}
	if still {
		return
	}
	// Cleared, then checked again: an occurrence whose Mark saw the flag
	// still set is seen here, and one after it sets the flag again.
	s.any.Store(false)
	for i := range s.l {
		if s.l[i].Active() {
			s.any.Store(true)
			return
		}
	}
}
