package limit

import (
	"fmt"
	"time"

	"github.com/sadpath/sadpath/contract"
)

// Stable machine codes of the errors returned by this package. Match an
// error's kind with errors.Is(err, contract.ErrUnavailable) or
// errors.Is(err, contract.ErrRateLimited), and its code with contract.As(err).Code.
// Every refusal (the codes below but CodeConfigInvalid) wraps
// contract.ErrRefusedLocally: errors.Is tells it from an error of the same
// kind and code that a dependency answered.
const (
	// CodeBulkheadFull: every slot is taken and the wait queue is full (or
	// MaxWaiting is 0). Kind: contract.KindUnavailable.
	CodeBulkheadFull = "limit.bulkhead_full"
	// CodeBulkheadWaitTimeout: the call waited MaxWait for a slot and got
	// none. Kind: contract.KindUnavailable.
	CodeBulkheadWaitTimeout = "limit.bulkhead_wait_timeout"
	// CodeRateLimited: the rate limiter refused the call (Reject mode, or
	// Wait mode when the wait would exceed MaxWait or the context deadline).
	// Kind: contract.KindRateLimited.
	CodeRateLimited = "limit.rate_limited"
	// CodeConfigInvalid: a constructor rejected its config. Kind: contract.KindInvalid.
	CodeConfigInvalid = "config.invalid"
)

// invalidField is the error of a constructor given a bad config value: a
// *contract.Error of KindInvalid whose Detail names the field, e.g.
// "limit: BulkheadConfig.MaxConcurrent: must be >= 1, got 0".
func invalidField(field, rule string, got any) error {
	e := contract.New(contract.KindInvalid, "limit",
		fmt.Sprintf("%s: %s, got %v", field, rule, got)).WithCode(CodeConfigInvalid)
	e.Fields = []contract.FieldError{{Name: field, Reason: rule}}
	return e
}

// ctxError converts a context error met while waiting into a contract error:
// KindCanceled for context.Canceled, KindTimeout for a passed deadline. The
// context error stays reachable with errors.Is. The protected call never ran.
func ctxError(op string, err error) error {
	return contract.Wrap(contract.KindOf(err), op, err)
}

// maxRetryAfter caps retry-after hints. Absurd-but-valid settings (a rate of
// one call per century) would otherwise give hints near the largest
// Duration, which overflow whoever adds to them (rounding up to seconds).
const maxRetryAfter = 365 * 24 * time.Hour

// rejected is a refusal: its Cause, contract.ErrRefusedLocally, tells it
// from the same kind of error returned by the dependency, and keeps it off
// a retry Budget (the call never reached the dependency).
func rejected(kind contract.Kind, op, code, detail string, retryAfter time.Duration) error {
	retryAfter = min(retryAfter, maxRetryAfter)
	return &contract.Error{Kind: kind, Code: code, Op: op, Detail: detail, RetryAfter: retryAfter, Cause: contract.ErrRefusedLocally}
}
