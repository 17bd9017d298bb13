package main

import (
	"container/heap"
	"context"
	"math"
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/sadpath/sadpath/retry"
)

// scenario is one row of the experiment: a strategy, optionally with a
// shared retry budget.
type scenario struct {
	name     string
	strategy retry.Strategy
	none     bool // no backoff at all: retry after the network delay only
	budget   bool // a RatioBudget shared by all clients
}

var scenarios = []scenario{
	{name: "none", none: true},
	{name: "exponential", strategy: retry.Exponential},
	{name: "equal jitter", strategy: retry.EqualJitter},
	{name: "full jitter", strategy: retry.FullJitter},
	{name: "decorrelated jitter", strategy: retry.DecorrelatedJitter},
	{name: "full jitter + budget", strategy: retry.FullJitter, budget: true},
}

const (
	baseDelay = 5 * time.Millisecond
	capDelay  = 2 * time.Second
)

// result is one simulated run, or the average of several.
type result struct {
	calls     float64       // server calls: reads plus writes
	time      time.Duration // when the last client finished (or gave up)
	completed float64       // clients whose write succeeded
}

// event kinds
const (
	evRead = iota
	evWrite
)

type event struct {
	at      time.Duration
	kind    int
	client  int
	version int // the version read, for a write
	seq     int // tie-break: events at the same instant keep their order
}

type events []event

func (e events) Len() int { return len(e) }
func (e events) Less(i, j int) bool {
	if e[i].at != e[j].at {
		return e[i].at < e[j].at
	}
	return e[i].seq < e[j].seq
}
func (e events) Swap(i, j int) { e[i], e[j] = e[j], e[i] }
func (e *events) Push(x any)   { *e = append(*e, x.(event)) }
func (e *events) Pop() any {
	old := *e
	x := old[len(old)-1]
	*e = old[:len(old)-1]
	return x
}

// clock is the simulated time, read by the shared budget.
type clock struct{ now time.Duration }

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func (c *clock) Now() time.Time { return epoch.Add(c.now) }

// Sleep is never called: the event queue moves time.
func (c *clock) Sleep(ctx context.Context, d time.Duration) error { return ctx.Err() }

// simulate plays n clients each updating one shared row once under
// optimistic concurrency, with the message model of the original AWS
// simulator: every hop (request or response) takes a network delay
// |Normal(10ms, 2ms)|; a client reads the version, then sends a write
// carrying it; the write fails if another write landed in between, and the
// client then waits backoff(attempt) before its next read. Server calls are
// writes, as in the original. The waits come from the strategy's
// retry.Policy (one BackOff per client, as Do makes one per call); the
// budget scenario shares one retry.RatioBudget among all clients, and a
// client refused a retry gives up.
func simulate(s scenario, n int, seed uint64) result {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	net := func() time.Duration {
		return time.Duration(math.Abs(rng.NormFloat64()*2+10) * float64(time.Millisecond))
	}
	clk := &clock{}
	// The original numbers attempts from 1, so its first exponential wait
	// is 2·base; decorrelated jitter starts from base itself.
	initial := 2 * baseDelay
	if s.strategy == retry.DecorrelatedJitter {
		initial = baseDelay
	}
	policy, err := retry.New(retry.Config{
		Strategy:       s.strategy,
		InitialDelay:   initial,
		MaxDelay:       capDelay,
		MaxAttempts:    1 << 20, // the experiment retries until it succeeds
		MaxElapsedTime: 24 * time.Hour,
		Random:         rng.Float64,
	})
	if err != nil {
		panic(err)
	}
	var budget retry.Budget
	if s.budget {
		budget, err = retry.NewRatioBudget(retry.RatioBudgetConfig{Clock: clk})
		if err != nil {
			panic(err)
		}
	}
	backoffs := make([]backoff.BackOff, n)
	q := &events{}
	seq := 0
	push := func(e event) { e.seq = seq; seq++; heap.Push(q, e) }
	for c := 0; c < n; c++ {
		backoffs[c] = policy.BackOff()
		if budget != nil {
			budget.Call()
		}
		push(event{at: net(), kind: evRead, client: c})
	}
	version := 0
	var r result
	for q.Len() > 0 {
		e := heap.Pop(q).(event)
		clk.now = e.at
		switch e.kind {
		case evRead: // the server reads; response and write request travel
			push(event{at: e.at + net() + net(), kind: evWrite, client: e.client, version: version})
		case evWrite:
			r.calls++
			done := e.at + net() // the response reaches the client
			if e.version == version {
				version++
				r.completed++
				r.time = max(r.time, done)
				if budget != nil {
					budget.Success()
				}
				continue
			}
			clk.now = done
			if budget != nil {
				budget.Failure()
				if !budget.Retry() {
					r.time = max(r.time, done) // gave up
					continue
				}
			}
			var wait time.Duration
			if !s.none {
				wait = backoffs[e.client].NextBackOff()
			}
			push(event{at: done + wait + net(), kind: evRead, client: e.client})
		}
	}
	return r
}

// average runs simulate for runs seeds derived from seed and averages.
func average(s scenario, n, runs int, seed uint64) result {
	var sum result
	for i := 1; i <= runs; i++ {
		r := simulate(s, n, seed*7919+uint64(i)*1000003+uint64(n))
		sum.calls += r.calls
		sum.time += r.time
		sum.completed += r.completed
	}
	return result{calls: sum.calls / float64(runs), time: sum.time / time.Duration(runs), completed: sum.completed / float64(runs)}
}
