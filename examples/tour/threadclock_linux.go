//go:build linux

package main

import (
	"syscall"
	"time"
)

// rusageThread is Linux's RUSAGE_THREAD (not exported by package syscall):
// the resource usage of the calling thread only.
const rusageThread = 1

// readThreadUsage reads the CPU time and context-switch counts of the OS
// thread running the calling goroutine, and that thread's id. ok is false
// if the goroutine moved to another thread while reading.
func readThreadUsage() (threadUsage, bool) {
	tid := syscall.Gettid()
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil || syscall.Gettid() != tid {
		return threadUsage{}, false
	}
	return threadUsage{
		thread:      tid,
		cpu:         time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		voluntary:   int64(ru.Nvcsw),
		involuntary: int64(ru.Nivcsw),
	}, true
}
