package idempotency_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Heartbeat and poll timers run callbacks in goroutines: none may outlive a test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
