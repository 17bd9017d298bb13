package ordering

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/sadpath/sadpath/contract"
)

// hold is the bounded buffer of events waiting for a gap to fill, keyed by
// subject and sequence. Several deliveries of one event share an entry.
type hold struct {
	mu       sync.Mutex
	count    atomic.Int64 // deliveries held, over all subjects
	subjects map[string]map[uint64]*heldEvent
	inflight map[string]map[*heldEvent]struct{} // taken by drain, not yet settled or put back
	// restart is when the wait of a subject's held events restarted last
	// (see touch): their wait counts from it when it is later than the
	// time they were held. Kept only while the subject has entries.
	restart map[string]time.Time
}

// forgetLocked drops subject's restart time once it has no entry left.
func (h *hold) forgetLocked(subject string) {
	if len(h.subjects[subject]) == 0 && len(h.inflight[subject]) == 0 {
		delete(h.restart, subject)
	}
}

// claim is take for drain: the entry stays visible to oldest and touch
// until release or put.
func (h *hold) claim(subject string, seq uint64) *heldEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	he := h.subjects[subject][seq]
	if he == nil {
		return nil
	}
	delete(h.subjects[subject], seq)
	if len(h.subjects[subject]) == 0 {
		delete(h.subjects, subject)
	}
	h.count.Add(-int64(len(he.settles)))
	if h.inflight == nil {
		h.inflight = make(map[string]map[*heldEvent]struct{})
	}
	if h.inflight[subject] == nil {
		h.inflight[subject] = make(map[*heldEvent]struct{})
	}
	h.inflight[subject][he] = struct{}{}
	return he
}

// release forgets an entry claimed and settled.
func (h *hold) release(he *heldEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.releaseLocked(he)
	h.forgetLocked(he.ev.Subject)
}

func (h *hold) releaseLocked(he *heldEvent) {
	if m := h.inflight[he.ev.Subject]; m != nil {
		delete(m, he)
		if len(m) == 0 {
			delete(h.inflight, he.ev.Subject)
		}
	}
}

type heldEvent struct {
	ev      contract.Event
	apply   ApplyFunc
	settles []SettleFunc
	since   time.Time // when it was held (see hold.restart for its gap reopening)
}

// add holds ev, or attaches settle to the entry already holding it. It
// reports false when the buffer is full.
func (h *hold) add(ev *contract.Event, apply ApplyFunc, settle SettleFunc, now time.Time, max int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.count.Load() >= int64(max) {
		return false
	}
	if h.subjects == nil {
		h.subjects = make(map[string]map[uint64]*heldEvent)
	}
	s := h.subjects[ev.Subject]
	if s == nil {
		s = make(map[uint64]*heldEvent)
		h.subjects[ev.Subject] = s
	}
	if he := s[ev.Sequence]; he != nil {
		he.settles = append(he.settles, settle)
	} else {
		s[ev.Sequence] = &heldEvent{ev: *ev, apply: apply, settles: []SettleFunc{settle}, since: now}
	}
	h.count.Add(1)
	return true
}

// put returns an entry taken with take.
func (h *hold) put(he *heldEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.releaseLocked(he)
	if h.subjects == nil {
		h.subjects = make(map[string]map[uint64]*heldEvent)
	}
	s := h.subjects[he.ev.Subject]
	if s == nil {
		s = make(map[uint64]*heldEvent)
		h.subjects[he.ev.Subject] = s
	}
	if old := s[he.ev.Sequence]; old != nil {
		old.settles = append(old.settles, he.settles...)
		if he.since.Before(old.since) {
			old.since = he.since
		}
	} else {
		s[he.ev.Sequence] = he
	}
	h.count.Add(int64(len(he.settles)))
}

// take removes and returns the entry of (subject, seq), or nil.
func (h *hold) take(subject string, seq uint64) *heldEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.subjects[subject]
	he := s[seq]
	if he == nil {
		return nil
	}
	delete(s, seq)
	if len(s) == 0 {
		delete(h.subjects, subject)
	}
	h.forgetLocked(subject)
	h.count.Add(-int64(len(he.settles)))
	return he
}

// takeAll removes and returns every entry of subject, lowest sequence first.
func (h *hold) takeAll(subject string) []*heldEvent { return h.takeFrom(subject, 0) }

// takeFrom removes and returns the entries of subject whose sequence is at
// least from, lowest sequence first.
func (h *hold) takeFrom(subject string, from uint64) []*heldEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.subjects[subject]
	out := make([]*heldEvent, 0, len(s))
	for seq, he := range s {
		if seq >= from {
			out = append(out, he)
			delete(s, seq)
			h.count.Add(-int64(len(he.settles)))
		}
	}
	if len(s) == 0 {
		delete(h.subjects, subject)
	}
	h.forgetLocked(subject)
	for i := 1; i < len(out); i++ { // insertion sort: the buffer is small
		for j := i; j > 0 && out[j].ev.Sequence < out[j-1].ev.Sequence; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// touch restarts the wait of every entry of subject at t, unless it already
// restarts later: the gap before them has just opened again (see
// Guard.restartWait), or will at t, when the missing event is redelivered
// (see Guard.Retrying). Entries held afterwards wait from t as well.
func (h *hold) touch(subject string, t time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subjects[subject]) == 0 && len(h.inflight[subject]) == 0 {
		return
	}
	if cur, ok := h.restart[subject]; ok && !t.After(cur) {
		return
	}
	if h.restart == nil {
		h.restart = make(map[string]time.Time)
	}
	h.restart[subject] = t
}

// oldest returns the lowest held sequence of subject and the time the
// longest-waiting of its entries began to wait: when it was held, or when
// the subject's wait restarted last, whichever is later.
func (h *hold) oldest(subject string) (minSeq uint64, since time.Time, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for seq, he := range h.subjects[subject] {
		if !ok || seq < minSeq {
			minSeq = seq
		}
		if !ok || he.since.Before(since) {
			since = he.since
		}
		ok = true
	}
	for he := range h.inflight[subject] {
		if !ok || he.ev.Sequence < minSeq {
			minSeq = he.ev.Sequence
		}
		if !ok || he.since.Before(since) {
			since = he.since
		}
		ok = true
	}
	if r, found := h.restart[subject]; ok && found && r.After(since) {
		since = r
	}
	return minSeq, since, ok
}

// subjectsList returns the subjects with held events.
func (h *hold) subjectsList() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.subjects))
	for s := range h.subjects {
		out = append(out, s)
	}
	return out
}
