package limittest

import "sync/atomic"

// Probe counts how many calls are inside a protected section at once and
// remembers the highest count seen: the way to prove that code behind a
// bulkhead never runs more than N at a time. Call Enter at the start of the
// protected function and the returned function (usually deferred) at its
// end. The zero value is ready to use; a Probe is safe for concurrent use.
type Probe struct {
	cur, max, total atomic.Int64
}

// Enter records one more call inside and returns the function that records
// it leaving.
func (p *Probe) Enter() (leave func()) {
	n := p.cur.Add(1)
	p.total.Add(1)
	for {
		m := p.max.Load()
		if n <= m || p.max.CompareAndSwap(m, n) {
			break
		}
	}
	return p.leave
}

func (p *Probe) leave() { p.cur.Add(-1) }

// Current returns the number of calls inside now.
func (p *Probe) Current() int { return int(p.cur.Load()) }

// Max returns the highest number of calls seen inside at once.
func (p *Probe) Max() int { return int(p.max.Load()) }

// Total returns the number of calls that ever entered.
func (p *Probe) Total() int { return int(p.total.Load()) }
