package logctx

import (
	"time"

	"github.com/sadpath/sadpath/contract"
)

// CodeConfigInvalid is the contract code of the error returned by the
// constructors for a bad configuration value.
const CodeConfigInvalid = "config.invalid"

// configError returns the *contract.Error (KindInvalid, Code
// "config.invalid") naming the bad field, so that
// errors.Is(err, contract.ErrInvalid) holds.
func configError(field, problem string) error {
	return contract.New(contract.KindInvalid, "logctx", field+": "+problem).WithCode(CodeConfigInvalid)
}

// Clock tells the time. The middleware measures request durations with it;
// tests inject a fake one. The zero configuration uses the system clock.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }
