//go:build unix

package idempotency_test

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time (user+system) the test process used so
// far. Benchmarks report it per op next to wall time: on a shared, loaded
// machine wall time mostly measures waiting for a core.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
