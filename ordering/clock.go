package ordering

import "time"

// Clock tells the time. The Guard reads it to time held events and the
// Memory state to find idle subjects. Tests inject a fake; the default is
// the system clock.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }
