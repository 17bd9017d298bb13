package main

import (
	"context"
	"time"
)

// threadUsage is what the OS accounted to one thread: CPU time, and how many
// times it left the CPU because it blocked (voluntary) or because the OS gave
// the CPU to another thread (involuntary).
type threadUsage struct {
	thread                 int
	cpu                    time.Duration
	voluntary, involuntary int64
}

// timing is one call's latency, measured so that a loaded machine does not
// pass its scheduling delay off as the library's.
type timing struct {
	wall    time.Duration // wall clock, everything included
	latency time.Duration // what the call itself cost: see measure
	// preempted: the OS took the CPU away during the call while it never
	// blocked; latency is then its CPU time, not its wall time.
	preempted bool
}

// measure times call on the wall clock and on the clock of the OS thread
// that runs it.
//
// Why not the wall clock alone: on a machine with more runnable threads than
// cores (CI running other test packages beside the tour), the OS deschedules
// a thread for milliseconds in the middle of a 300 ns rejection, and the
// wall clock charges that to the breaker. Why not the CPU clock alone: it
// stops while the call waits (on a lock, a channel, a timer), so a rejection
// that waited for the slow dependency would look free. The rule below keeps
// every wait and drops only the OS scheduler's share:
//
//   - the goroutine ended on another thread than it started on, or the
//     thread slept at least once (a voluntary switch: it had nothing to
//     run): latency = wall time, nothing excused;
//   - the thread never slept but the OS took the CPU from it at least once
//     (an involuntary switch): through the whole call the thread was either
//     on a CPU, running this call or other goroutines while this one waited
//     (both charged: they are in its CPU time), or runnable and waiting for
//     a core, which is the OS scheduler's delay. latency = the thread's CPU
//     time (preempted = true, so the report can count these);
//   - neither: latency = wall time (the two agree).
//
// The goroutine is not locked to its thread (locking 48 callers to threads
// changes how the Go scheduler runs them); a goroutine that left and came
// back is charged the thread's work meanwhile, which only overstates.
// Without per-thread usage (not Linux) latency is the wall time.
func measure(ctx context.Context, call func(context.Context) error) (timing, error) {
	u0, ok0 := readThreadUsage()
	t0 := time.Now()
	err := call(ctx)
	wall := time.Since(t0)
	u1, ok1 := readThreadUsage()
	t := timing{wall: wall, latency: wall}
	if ok0 && ok1 && u0.thread == u1.thread && u1.voluntary == u0.voluntary && u1.involuntary > u0.involuntary {
		t.latency = min(wall, u1.cpu-u0.cpu)
		t.preempted = true
	}
	return t, err
}
