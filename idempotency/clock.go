package idempotency

import (
	"fmt"
	"time"

	"github.com/sadpath/sadpath/contract"
)

// Clock tells the time. The memory store, the executor and the middleware
// read time only through it, so tests can drive them with a fake clock
// (storetest.FakeClock) instead of sleeping. A nil Clock in a config means
// the system clock.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// configError returns the KindInvalid error for a bad config field, e.g.
// "idempotency: MemoryConfig.MaxEntries: must be >= 0, got -1".
func configError(field, format string, args ...any) error {
	return &contract.Error{
		Kind:   contract.KindInvalid,
		Code:   "config.invalid",
		Op:     "idempotency",
		Detail: field + ": " + fmt.Sprintf(format, args...),
	}
}
