//go:build !linux

package logctx

import "time"

// threadCPU falls back to wall time where the thread CPU clock is not
// wired up.
func threadCPU() time.Duration { return time.Duration(time.Now().UnixNano()) }
