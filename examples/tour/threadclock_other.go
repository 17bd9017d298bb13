//go:build !linux

package main

// readThreadUsage has no per-thread usage to read outside Linux: every call
// is then measured on the wall clock, scheduler delay included.
func readThreadUsage() (threadUsage, bool) { return threadUsage{}, false }
