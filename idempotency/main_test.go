package idempotency_test

import (
	"testing"

	"go.uber.org/goleak"
)

// The executor starts a heartbeat goroutine per owned operation: none may outlive it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
