package retrytest_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine running: the
// fake clock must never start one (its Sleep returns at once).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
