// Package contract is the shared language of sadpath: errors that say what
// kind of failure happened, RFC 9457 problem details that carry those errors
// over HTTP and back, validation that reports every bad field at once,
// strict JSON decoding, and a CloudEvents 1.0 envelope for events.
//
// Every other sadpath package speaks it, so a retrier can tell "the
// dependency is down, try again in 30 s" from "the amount is negative, never
// retry", and a circuit breaker can count the first and ignore the second,
// without matching strings. Contracts are boring on purpose: explicit,
// documented, no magic. The package imports only the standard library and
// starts no goroutines.
//
// # Errors
//
// An [*Error] carries a [Kind], a stable machine Code ("payment.amount",
// defaulting to the kind's name), the operation that failed (Op), a Detail
// safe to show the client, an optional RetryAfter hint, field errors and the
// wrapped Cause, which is internal and never shown. Build one with [New] or
// [Wrap] and the With methods:
//
//	return contract.New(contract.KindConflict, "payments.capture", "payment already captured").
//		WithCode("payment.already_captured")
//
// Match kinds with errors.Is against the sentinels ([ErrUnavailable],
// [ErrInvalid], …) through any wrapping, read the details with errors.As or
// [As], and ask [KindOf], [Retryable] and [RetryAfter]. KindOf, Retryable
// and As read the first *Error in errors.As order; RetryAfter returns the
// first hint anywhere in the tree, so in errors.Join(invalid, rateLimited)
// the rate-limited error's hint is found. An *Error whose Cause is
// [ErrRefusedLocally] was refused by a guard of this process (a rate
// limiter, a bulkhead) before the call was made: errors.Is tells it from
// the same kind returned by the dependency. Errors that are not an *Error
// are classified:
//
//	context.DeadlineExceeded, net.Error and any Timeout() == true   timeout
//	context.Canceled                                                canceled
//	connection refused, failed dial (nothing was sent)              unavailable
//	*http.MaxBytesError                                             too_large
//	anything else                                                   internal
//
// The kinds, their HTTP status and whether they are retryable by default
// (WithRetryable overrides it for one error):
//
//	Kind                    String                status  retryable
//	KindMalformed           malformed             400     no   syntactically broken input: bad JSON, wrong types, unknown or repeated fields
//	KindInvalid             invalid               422     no   well-formed but meaningless: amount -5, currency "XYZ"
//	KindUnauthorized        unauthorized          401     no
//	KindForbidden           forbidden             403     no
//	KindNotFound            not_found             404     no
//	KindConflict            conflict              409     no   duplicate, in flight, version mismatch
//	KindPreconditionFailed  precondition_failed   412     no
//	KindTooLarge            too_large             413     no
//	KindRateLimited         rate_limited          429     yes  with Retry-After
//	KindUnavailable         unavailable           503     yes  with Retry-After
//	KindOverloaded          overloaded            503     no   the dependency asks callers not to retry at all
//	KindTimeout             timeout               504     yes  it may have succeeded: retry only what is idempotent
//	KindCanceled            canceled              499     no   the caller went away
//	KindInternal            internal              500     no   a bug or an unknown failure; the zero Kind
//
// The String names are part of the contract (they appear in problem "code"
// members and logs) and never change. Constructors across sadpath reject a
// bad configuration with [ConfigError]: KindInvalid, code "config.invalid",
// and a message naming the field ("retry: invalid (config.invalid):
// Config.MaxAttempts: must be >= 1, got -1").
//
// # Problem details
//
// [WriteProblem] answers any error as application/problem+json (RFC 9457):
//
//	HTTP/1.1 429 Too Many Requests
//	Content-Type: application/problem+json
//	Retry-After: 3
//
//	{"type":"about:blank","title":"Too Many Requests","status":429,
//	 "detail":"slow down","instance":"/payments","code":"rate_limited"}
//
// The status is the kind's and always equals the "status" member; the title
// is the status text; "code" is the error's code; field errors become
// "invalid-params" ([{"name":…,"reason":…}]); a 429, 503 or 504 whose
// error is not retryable (overloaded, or WithRetryable(false)) adds
// "retryable": false, so that an overloaded error keeps a code of its own
// ("payments.overloaded") and still reads back as overloaded, and a rate
// limited error made not retryable reads back as not retryable. The other
// way round, an error made retryable whose status and code alone read back
// as not retryable (a conflict: idempotency.ErrInProgress, a 409 while the
// first request with the key runs) adds "retryable": true. Rate limited
// and unavailable errors with a hint get Retry-After in whole seconds,
// rounded up, unless their problem says "retryable": false; so do errors
// whose problem says "retryable": true. An
// internal error shows only "internal error": neither its Detail, its field
// errors nor its Cause ever reach the client. Responses are marked
// Cache-Control: no-store and X-Content-Type-Options: nosniff. "instance"
// is the request path; one starting with "//", which a client would resolve
// to another host, is written "/.//…", the same path on this server.
//
// [Problem] is the document itself. It keeps every member it does not know
// in Extensions when decoding and writes them back (never one named like a
// typed member in another case, "Status" or "DETAIL", which a
// case-insensitive JSON client would read instead of the typed member),
// and, as RFC 9457 requires, ignores a standard member of the wrong type
// instead of failing. A problem repeating a member name in one of its
// objects ({"retryable":false,"retryable":true}) is refused, as DecodeJSON
// refuses it: clients keeping the first value and clients keeping the last
// would read two problems; ParseProblem then goes by the status alone.
//
// On the client side, [ParseProblem] turns a response back into an *Error:
// nil below 400; otherwise the kind follows the status (400 malformed, 401,
// 403, 404/410, 408 and 504 timeout, 409, 412/428, 413, 422 invalid, 429,
// 502/503 unavailable, other 4xx invalid, other 5xx internal), refined by
// a "code" naming a kind with the same status (503 + "overloaded"); a 503
// with "retryable": false is overloaded whatever its code, and any other
// status with it keeps its kind and is not retryable; "retryable": true
// keeps the kind and makes it retryable (a 409 in progress). The
// problem's code, detail and invalid-params are copied, cleaned of control
// characters and bounded; the body is read up to [MaxProblemBody] and may be
// a problem, plain JSON or anything else (then the status alone decides).
// Retry-After (delta-seconds or HTTP-date, measured against the response's
// Date header) becomes the RetryAfter hint, capped at [MaxRetryAfter];
// negative and unparsable values are ignored. [ErrorFromStatus] does the
// same from a status and headers for RoundTrippers that do not read bodies,
// and [ParseRetryAfter] parses one header value against a given time. The
// *Error's Cause is a [*ResponseError] holding the status and the decoded
// problem with all its extensions. Such an error describes your call to the
// dependency, not your client's request: wrap it in an error of your own
// before WriteProblem, or a provider's 422 becomes your client's 422.
//
// # Validation
//
// "Valid JSON, absurd meaning" is the common sad path: a negative amount, an
// unknown currency, a booking date in 1970, a quantity of 10^12. A
// [Validator] checks each field with a small set of typed rules (Required,
// Range, Length, OneOf, Pattern, Currency for active ISO 4217 codes,
// TimeWithin for timestamps near an injected now, Check and Add for
// anything else) and reports every failure at once:
//
//	v := contract.NewValidator()
//	v.Required("payer", req.Payer)
//	v.Range("amount_minor", req.AmountMinor, 1, 100_000_000)
//	v.Currency("currency", req.Currency)
//	v.TimeWithin("booked_at", req.BookedAt, clock.Now(), 30*24*time.Hour, 5*time.Minute)
//	if err := v.Err(); err != nil {
//		contract.WriteProblem(w, r, err) // 422 with invalid-params
//		return
//	}
//
// A field keeps its first error only, at most 100 field errors are listed,
// and [CurrencyMinorUnits] exposes the embedded currency table.
//
// # Strict JSON
//
// [DecodeJSON] and [DecodeRequest] decode one JSON value and refuse what
// encoding/json lets through: unknown fields, data after the value, bodies
// that are not valid UTF-8 (encoding/json would turn each bad byte in a
// string into U+FFFD, so two distinct ids would decode as one) or that
// escape an unpaired UTF-16 surrogate ("\ud800", decoded as U+FFFD too),
// bodies over a limit (KindTooLarge, 413, without reading past the limit), a
// body that is null where an object (or array, number …) is expected
// (encoding/json leaves the target as it was: a struct would pass as its
// zero value; a pointer, interface or json.Unmarshaler target still takes
// null), and, for requests, a Content-Type other than JSON. Syntax errors and invalid UTF-8
// name the offset, wrong types name the field, the JSON type and the
// offset, never the value (a card number sent as a JSON number is not
// echoed to the client or the logs); all are
// KindMalformed (400) with codes json.syntax, json.type, json.unknown_field,
// json.duplicate_field, json.trailing_data, json.utf8, json.empty,
// json.value and request.content_type.
//
// A member name repeated in one object, at any depth, is refused
// (json.duplicate_field, naming the member and the offset of its
// repetition): encoding/json keeps the last value of
// {"amount":1,"amount":100000} where a gateway, a signature check or an
// audit log in another language keeps the first or refuses it, as RFC 7493
// (I-JSON) and encoding/json/v2 do. Names are compared unescaped. As with
// encoding/json, names match struct fields case-insensitively, so in an
// object decoded into a struct two names of one field ("amount" and
// "AMOUNT") are a repetition too; the keys of a map or an interface, and
// fields tagged "a" and "A", stay distinct.
//
// # Events
//
// [Event] is a CloudEvents 1.0 envelope in the JSON event format: id,
// source, specversion, type, time, subject, datacontenttype, dataschema and
// data (raw JSON), plus two extensions: "sequence", an unsigned integer that
// increases per subject (the ordering package applies events in that order;
// 0 means absent; written as a JSON number, read from a number or, as the
// CloudEvents sequence extension defines it, a decimal string) and
// "correlationid". Other extension attributes are kept in
// Extensions, with names [a-z0-9]{1,20} and string, boolean or int32 values.
// (Source, ID) is the event's identity: [Event.DedupKey].
//
// [DecodeEvent] is strict: one JSON object, no repeated attributes, each
// attribute valid UTF-8 and of its JSON type, time in RFC 3339, sequence a JSON number or
// decimal string, no data_base64 (KindMalformed); then [Event.Validate]:
// id, source and type present, specversion "1.0", every string valid
// UTF-8 without control characters or noncharacters (as CloudEvents
// strings are; correlationid, validated by its consumers, need only be
// UTF-8), source a URI-reference, dataschema an absolute URI,
// datacontenttype a media type, data JSON in UTF-8 (KindInvalid).
// Both report every bad attribute in Fields. When data is present without a
// datacontenttype, "application/json" is set, as the JSON format implies.
// json.Marshal writes the canonical form, and decoding it gives the same
// event back.
//
// # Concurrency
//
// Every function is safe for concurrent use; an *Error, a Problem and an
// Event are plain values, safe to share once no one writes them. A
// Validator belongs to one request and is not safe for concurrent use.
package contract
