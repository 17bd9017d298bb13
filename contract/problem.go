package contract

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ProblemContentType is the media type of RFC 9457 problem details.
const ProblemContentType = "application/problem+json"

// Problem is an RFC 9457 problem details object.
//
// The standard members are typed fields; "code" (the Error's stable machine
// code) and "invalid-params" (field errors) are the two extension members
// sadpath defines. Every other member is kept in Extensions when decoding
// and written back when encoding, so a client never loses what a server
// sent, but for a member named like a typed one in another case
// ("Status"), which is decoded into Extensions and never written. As RFC
// 9457 requires, a standard member whose JSON value has the wrong type
// ("status": "503") is ignored when decoding, not an error; a member name
// repeated in one object, at any depth, is (see UnmarshalJSON).
type Problem struct {
	Type          string         `json:"type,omitempty"`           // URI reference identifying the problem type; "about:blank" when none
	Title         string         `json:"title,omitempty"`          // short summary of the type; the HTTP status text for about:blank
	Status        int            `json:"status,omitempty"`         // the HTTP status code; always equal to the response status
	Detail        string         `json:"detail,omitempty"`         // explanation that helps the client fix the request; never debugging text
	Instance      string         `json:"instance,omitempty"`       // URI reference of this occurrence (the request path)
	Code          string         `json:"code,omitempty"`           // extension: stable machine code (Error.CodeOrKind)
	InvalidParams []FieldError   `json:"invalid-params,omitempty"` // extension: one entry per invalid field
	Extensions    map[string]any `json:"-"`                        // every other member; names of typed members, in any case, are not written
}

// problemMembers are the members Problem types itself.
var problemMembers = [...]string{"type", "title", "status", "detail", "instance", "code", "invalid-params"}

// isProblemMember reports whether name is a member Problem types itself,
// ignoring case as encoding/json does when it decodes into a struct
// (strings.EqualFold is its rule: "Status", "STATUS", even "ſtatus" with
// a long s, all fill a Status field).
func isProblemMember(name string) bool {
	for _, m := range problemMembers {
		if strings.EqualFold(name, m) {
			return true
		}
	}
	return false
}

// MarshalJSON writes the standard members in RFC order, then "code",
// "invalid-params" and the Extensions sorted by name. An extension named like
// a standard member, in any case ("Status", "DETAIL"), is skipped: it cannot
// override a typed field, not even for a client decoding with encoding/json,
// which matches member names case-insensitively and keeps the last.
func (p Problem) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	n := 0
	var val bytes.Buffer
	enc := json.NewEncoder(&val)
	enc.SetEscapeHTML(false)
	member := func(name string, v any) error {
		val.Reset()
		if err := enc.Encode(name); err != nil {
			return err
		}
		val.Truncate(val.Len() - 1) // Encode's newline
		val.WriteByte(':')
		if err := enc.Encode(v); err != nil {
			return err
		}
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		b.Write(val.Bytes()[:val.Len()-1])
		return nil
	}
	// Typed members cannot fail to marshal.
	if p.Type != "" {
		_ = member("type", p.Type)
	}
	if p.Title != "" {
		_ = member("title", p.Title)
	}
	if p.Status != 0 {
		_ = member("status", p.Status)
	}
	if p.Detail != "" {
		_ = member("detail", p.Detail)
	}
	if p.Instance != "" {
		_ = member("instance", p.Instance)
	}
	if p.Code != "" {
		_ = member("code", p.Code)
	}
	if len(p.InvalidParams) > 0 {
		_ = member("invalid-params", p.InvalidParams)
	}
	names := make([]string, 0, len(p.Extensions))
	for name := range p.Extensions {
		if !isProblemMember(name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		if err := member(name, p.Extensions[name]); err != nil {
			return nil, err
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON decodes a problem object. The input must be a JSON object
// (or null) that repeats no member name in any of its objects (the
// json.duplicate_field error of DecodeJSON: a client keeping the first of
// {"retryable":false,"retryable":true} and one keeping the last would read
// two problems); standard members with a value of the wrong type are
// ignored; unknown members go to Extensions, numbers as json.Number so
// they survive a round trip exactly. Member names are matched exactly:
// "Status" is an extension, not the status.
func (p *Problem) UnmarshalJSON(data []byte) error {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		return err
	}
	if err := checkNames(data, &members); err != nil {
		return err
	}
	*p = Problem{}
	for name, raw := range members {
		switch name {
		case "type":
			_ = json.Unmarshal(raw, &p.Type)
		case "title":
			_ = json.Unmarshal(raw, &p.Title)
		case "status":
			var status int
			if json.Unmarshal(raw, &status) == nil && status >= 100 && status <= 999 {
				p.Status = status
			}
		case "detail":
			_ = json.Unmarshal(raw, &p.Detail)
		case "instance":
			_ = json.Unmarshal(raw, &p.Instance)
		case "code":
			_ = json.Unmarshal(raw, &p.Code)
		case "invalid-params":
			p.InvalidParams = decodeInvalidParams(raw)
		default:
			d := json.NewDecoder(bytes.NewReader(raw))
			d.UseNumber()
			var v any
			if d.Decode(&v) != nil {
				continue
			}
			if p.Extensions == nil {
				p.Extensions = make(map[string]any)
			}
			p.Extensions[name] = v
		}
	}
	return nil
}

// decodeInvalidParams keeps the well-typed entries of an invalid-params
// array, at most maxFieldErrors of them: not one naming "name" or "reason"
// twice in different cases ("name" and "NAME"), which encoding/json reads
// as one field.
func decodeInvalidParams(raw json.RawMessage) []FieldError {
	var entries []json.RawMessage
	if json.Unmarshal(raw, &entries) != nil {
		return nil
	}
	var out []FieldError
	for _, entry := range entries {
		if len(out) == maxFieldErrors {
			break
		}
		var fe struct {
			Name   *string `json:"name"`
			Reason string  `json:"reason"`
		}
		if json.Unmarshal(entry, &fe) != nil || fe.Name == nil || checkNames(entry, &fe) != nil {
			continue
		}
		out = append(out, FieldError{Name: *fe.Name, Reason: fe.Reason})
	}
	return out
}

// HTTPStatus returns the HTTP status for a Kind:
//
//	malformed 400, invalid 422, unauthorized 401, forbidden 403, not found 404,
//	conflict 409, precondition failed 412, too large 413, rate limited 429,
//	unavailable and overloaded 503, timeout 504, canceled 499, internal 500.
func HTTPStatus(k Kind) int {
	switch k {
	case KindMalformed:
		return http.StatusBadRequest
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
		return StatusClientClosedRequest
	}
	return http.StatusInternalServerError
}

// StatusClientClosedRequest (499, from nginx) is the status written for
// KindCanceled: the client went away before the answer; nobody reads it, but
// logs and metrics see a client-side outcome rather than a server error.
const StatusClientClosedRequest = 499

// internalDetail is the only detail an internal error ever shows.
const internalDetail = "internal error"

// RetryableMember is the extension member ProblemFrom adds to a problem
// whose error is not retryable (KindOverloaded, or an error made so with
// WithRetryable(false)) but whose status alone reads back as retryable
// (429, 503, 504): "retryable": false. A 503 is shared with KindUnavailable
// and the "code" is the error's own ("payments.overloaded"), so this member
// is what tells ParseProblem the server asked callers not to retry. The
// other way round, an error made retryable (WithRetryable(true)) whose
// status and code alone read back as not retryable — a 409 for a request
// still in progress, idempotency.ErrInProgress — gets "retryable": true.
const RetryableMember = "retryable"

// readBackKind is the kind ParseProblem reads from a status and a problem
// code, before any "retryable" member: the status's kind, refined by a
// code naming a kind of the same status.
func readBackKind(status int, code string) Kind {
	if k, ok := ParseKind(code); ok && HTTPStatus(k) == status {
		return k
	}
	return kindFromStatus(status)
}

// ProblemFrom builds the problem for err (a nil err is an internal error):
// type about:blank, the status of its Kind and that status's text as title,
// its Detail, its code (Error.CodeOrKind) and its field errors as
// invalid-params; a 429, 503 or 504 for an error that is not retryable
// also gets "retryable": false (RetryableMember), and an error made
// retryable whose status and code alone read back as not retryable (a 409
// made so with WithRetryable(true)) gets "retryable": true. Internal errors get a generic
// detail and no field errors: neither their Detail nor their Cause ever
// reaches the client.
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
	if p.Title == "" {
		p.Title = "Client Closed Request"
	}
	if !e.Retryable() && kindFromStatus(status).Retryable() {
		// The status alone (429, 503, 504) reads back as retryable.
		p.Extensions = map[string]any{RetryableMember: false}
	} else if e.Retryable() && !readBackKind(status, p.Code).Retryable() {
		// A retryable error of a kind that is not (a conflict in
		// progress) would read back as not retryable.
		p.Extensions = map[string]any{RetryableMember: true}
	}
	if status == http.StatusInternalServerError {
		p.Detail = internalDetail
		p.InvalidParams = nil
	}
	return p
}

// WriteProblem writes err as an application/problem+json response: the
// status of its Kind (equal to the problem's "status" member), the problem
// built by ProblemFrom with the request path as "instance" (a path starting
// with "//" is written "/.//…", which resolves to the same path on this
// server instead of to another host), and, for rate
// limited and unavailable errors that carry a retry-after hint, and for
// errors whose problem says "retryable": true, a
// Retry-After header in whole seconds (rounded up). Overloaded errors never
// get Retry-After: the dependency asked callers not to retry, which their
// problem says with "retryable": false whatever their code (unless one was
// made retryable with WithRetryable(true): its problem then says
// "retryable": true, and it gets Retry-After as any such error); nor does a
// rate limited or unavailable error made not retryable
// (WithRetryable(false)), whose problem says the same. Responses are
// marked Cache-Control: no-store, and a HEAD request gets no body.
func WriteProblem(w http.ResponseWriter, r *http.Request, err error) {
	p := ProblemFrom(err)
	if r != nil && r.URL != nil {
		p.Instance = r.URL.EscapedPath()
		if strings.HasPrefix(p.Instance, "//") {
			// A network-path reference: it would resolve to the host
			// after the slashes. "/." resolves to the same path here.
			p.Instance = "/." + p.Instance
		}
	}
	h := w.Header()
	// A problem saying "retryable": false never invites a retry with
	// Retry-After, whatever its Kind.
	if k := KindOf(err); err != nil && (k == KindRateLimited || k == KindUnavailable || p.Extensions[RetryableMember] == true) && p.Extensions[RetryableMember] != false {
		if d, ok := RetryAfter(err); ok {
			h.Set("Retry-After", FormatRetryAfter(d))
		}
	}
	body, mErr := marshalProblem(p)
	if mErr != nil {
		// Unreachable with the typed members ProblemFrom sets; kept so a
		// future extension can never turn a problem into a panic.
		p = Problem{Type: "about:blank", Title: http.StatusText(500), Status: 500, Detail: internalDetail, Code: KindInternal.String()}
		body, _ = marshalProblem(p)
		h.Del("Retry-After")
	}
	h.Set("Content-Type", ProblemContentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	if r != nil && r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}

// marshalProblem encodes p without HTML escaping: a problem is read by
// programs and people with curl ("must be >= 1"), never rendered as HTML
// (the response is marked nosniff). MarshalJSON escapes nothing itself;
// json.Marshal would add the escaping in a second pass.
func marshalProblem(p Problem) ([]byte, error) {
	return p.MarshalJSON()
}

// FormatRetryAfter returns the Retry-After header value for a retry-after
// hint d, as WriteProblem writes it: whole seconds rounded up, capped at
// MaxRetryAfter so that a huge hint can never overflow into a negative
// header, and never below 0.
func FormatRetryAfter(d time.Duration) string {
	d = min(max(d, 0), MaxRetryAfter)
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
}
