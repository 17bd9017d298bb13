package contract

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// ProblemContentType is the media type of RFC 9457 problem details.
const ProblemContentType = "application/problem+json"

// Problem is an RFC 9457 problem details object.
type Problem struct {
	Type          string         `json:"type,omitempty"`
	Title         string         `json:"title,omitempty"`
	Status        int            `json:"status,omitempty"`
	Detail        string         `json:"detail,omitempty"`
	Instance      string         `json:"instance,omitempty"`
	Code          string         `json:"code,omitempty"`
	InvalidParams []FieldError   `json:"invalid-params,omitempty"`
	Extensions    map[string]any `json:"-"`
}

// HTTPStatus returns the HTTP status for a Kind.
func HTTPStatus(k Kind) int {
	switch k {
	case KindInvalid:
		return http.StatusUnprocessableEntity
	case KindUnauthorized:
		return http.StatusUnauthorized
	case KindForbidden:
		return http.StatusForbidden
	case KindNotFound:
		return http.StatusNotFound
	case KindConflict:
		return http.StatusConflict
	case KindPreconditionFailed:
		return http.StatusPreconditionFailed
	case KindTooLarge:
		return http.StatusRequestEntityTooLarge
	case KindRateLimited:
		return http.StatusTooManyRequests
	case KindUnavailable, KindOverloaded:
		return http.StatusServiceUnavailable
	case KindTimeout:
		return http.StatusGatewayTimeout
	case KindCanceled:
		return 499
	}
	return http.StatusInternalServerError
}

// ProblemFrom builds the problem for err. Internal errors get a generic
// detail: their text never reaches the client.
func ProblemFrom(err error) Problem {
	e := As(err)
	if e == nil {
		e = &Error{Kind: KindInternal}
	}
	status := HTTPStatus(e.Kind)
	p := Problem{
		Type:          "about:blank",
		Title:         http.StatusText(status),
		Status:        status,
		Detail:        e.Detail,
		Code:          e.CodeOrKind(),
		InvalidParams: e.Fields,
	}
	if e.Kind == KindInternal {
		p.Detail = "internal error"
	}
	return p
}

// WriteProblem writes err as an application/problem+json response with the
// status of its kind and, when err carries a retry-after hint, a Retry-After
// header in whole seconds (rounded up).
func WriteProblem(w http.ResponseWriter, r *http.Request, err error) {
	p := ProblemFrom(err)
	if r != nil && r.URL != nil {
		p.Instance = r.URL.Path
	}
	if d, ok := RetryAfter(err); ok {
		w.Header().Set("Retry-After", strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10))
	}
	body, mErr := json.Marshal(p)
	if mErr != nil {
		body = []byte(`{"title":"Internal Server Error","status":500}`)
		p.Status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", ProblemContentType)
	w.WriteHeader(p.Status)
	_, _ = w.Write(body)
}

// errNoProblem is returned by ParseProblem for a response that is not a problem.
var errNoProblem = errors.New("contract: response is not a problem")
