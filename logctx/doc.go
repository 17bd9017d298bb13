/*
Package logctx makes every log line answer: which operation, which entity,
which correlation id, which decision, which dependency, which state.

"Error processing request" with nothing else is a sticky note that says
good luck. logctx puts the coordinates of the work on the
[context.Context] as a request goes deeper, and a [slog.Handler] wrapper
writes them on every record logged with that context, so the code that
logs never has to remember them.

# Coordinates on the context

[WithCorrelationID], [WithOperation], [WithEntity] and [With] return a
child context carrying one more coordinate; the getters [CorrelationID],
[Operation], [Entity] and [Attrs] read them back. Each call copies the
coordinates into a new context node (one allocation; two for a With that
brings the context past four attributes), so a child never
changes what its parent or siblings see, and goroutines may share any of
them. A nil context passed by mistake is treated as
[context.Background].

	ctx = logctx.WithCorrelationID(ctx, id)
	ctx = logctx.WithOperation(ctx, "payments.capture")
	ctx = logctx.WithEntity(ctx, "payment", p.ID)
	ctx = logctx.With(ctx, slog.String(logctx.KeyDependency, "acquirer"))
	log.InfoContext(ctx, "captured", "amount", p.Amount)

# Stable attribute names

The Handler, the decision helper and the middleware write these keys. They
are part of the API: dashboards and alerts may depend on them, and they do
not change.

	correlation_id   KeyCorrelationID  the id shared by every service handling one request or message
	operation        KeyOperation      what is being done ("payments.capture")
	entity_kind      KeyEntityKind     what it is done to ("payment")
	entity_id        KeyEntityID       which one ("pay_123")
	trace_id         KeyTraceID        otel trace id, 32 hex, when a valid span is on the context
	span_id          KeySpanID         otel span id, 16 hex, likewise
	decision         KeyDecision       what the system decided (see Decision)
	reason           KeyReason         why
	dependency       KeyDependency     the downstream involved (used by retry, breaker, limit)
	state            KeyState          a state, e.g. of a breaker or an idempotency record
	suppressed       KeySuppressed     occurrences of a decision written at Debug since its last line at its level (see Decisions)
	method           KeyMethod         access line: request method
	route            KeyRoute          access line: the ServeMux pattern (Request.Pattern), "" if none
	status           KeyStatus         access line: response status code
	duration_ms      KeyDurationMS     access line: time to serve, milliseconds (float)
	bytes            KeyBytes          access line: response body bytes

On each line the attributes given to Logger.With come first (the wrapped
handler has already formatted them), then the record's own attributes,
then the coordinates: correlation_id, operation, entity_kind, entity_id,
the attributes added with [With] in the order added, trace_id and
span_id. Empty coordinates are left out.

Coordinate values are bounded: an event subject or entity id of a
megabyte, from a hostile or buggy producer, would otherwise be printed in
full on every line of every decision. A value longer than
HandlerConfig.MaxCoordinateBytes (default [DefaultMaxCoordinateBytes],
256; negative: no limit) is written as its first bytes — cut on a UTF-8
boundary and never inside a run of digits, so a card number is masked or
dropped, never cut into an unmasked shorter run — followed by
"...[truncated, N bytes]", N its full length: a subject of "subject."
and 1 MiB of 'a' is written as its first 256 bytes and
"...[truncated, 1048584 bytes]". This applies to the correlation id, operation, entity kind and id, and the
string values (after LogValue) of the attributes added with [With]; the
record's own attributes and message are the caller's choice on that line
and are not cut ([Short] cuts one the same way: package ordering logs an
event's subject through it, package consumer an event's type and source). A value of normal size costs one length check. (Appending the coordinates lets
the Handler pass the caller's record on instead of rebuilding it: about
20 % cheaper than putting them first.)

# The Handler

[NewHandler] wraps any [slog.Handler] (JSON, text, an otel bridge, a
vendor's). [Handler] passes [testing/slogtest] over the JSON and text
handlers and keeps the slog semantics of WithAttrs and WithGroup, with one
deliberate rule: coordinates stay at the top level even inside a group, so
a query on correlation_id finds every line whatever group the logger was
in:

	slog.New(h).WithGroup("http").InfoContext(ctx, "request", "status", 201)
	// {"msg":"request","http":{"status":201},"correlation_id":"req-7"}

Handler.Enabled is a direct call to the wrapped handler's Enabled: a
disabled level costs what it costs without logctx. Handle gathers the
coordinates on the stack and appends them to (a clone of) the caller's
record: with up to five attributes in all (slog keeps five inline) it
allocates nothing beyond what the wrapped handler does. Beyond
five, slog itself allocates for the record, wrapped or not; otel ids add
two small strings (the hex form) when a span is active; a logger with open
groups rebuilds the group nesting per record (a few allocations).

Handle returns the wrapped handler's error unchanged ([slog.Logger] ignores
it; call Handle directly to see it).

# Redaction

Secrets never reach the output, whichever handler is wrapped, because the
Handler rewrites attributes before passing them on:

  - Keys: a value is replaced by "[REDACTED]" (HandlerConfig.Replacement)
    when its key, compared case-insensitively with '-', '_' and ' ' alike,
    is one of auth, pwd, pass, pan, cvv, cvc, cvv2, pin, jwt, otp, bearer,
    session, sessionid, session_id, ssn, idempotency_key, idempotencykey
    (the raw key: a key's hash, idempotency_key_hash or key_hash, is
    logged), sig (an Azure SAS signature), X-Registry-Config,
    X-Sentry-Auth, X-Goog-Iap-Jwt-Assertion, X-Goog-Encryption-Key,
    X-Goog-Copy-Source-Encryption-Key, or contains one of password,
    passwd, passphrase, secret, token, authorization, cookie, api_key,
    apikey, private_key, privatekey, credential, card_number, cardnumber,
    credit_card, creditcard, signature, auth_key, authkey,
    subscription_key, subscriptionkey, functions_key, functionskey,
    registry_auth, registryauth, application_key, applicationkey,
    encryption_customer_key, sse_customer_key, ssecustomerkey —
    Authorization, Proxy-Authorization, Cookie, Set-Cookie, X-Api-Key,
    access_token, client_secret, db_password, privateKey, creditCard,
    X-Amz-Signature, X-Amz-Security-Token, X-Goog-Api-Key, X-Auth-Key,
    Ocp-Apim-Subscription-Key, x-functions-key, X-Registry-Auth,
    DD-Application-Key, X-Amz-Server-Side-Encryption-Customer-Key… — or
    one of HandlerConfig.RedactKeys. NoDefaultKeys keeps only RedactKeys.
    A group whose name is a secret key is redacted whole — its value is
    the replacement — whether it is an attribute (slog.Group) or opened
    with Logger.WithGroup; an empty group — nothing in it, or only zero
    attributes and empty groups, which slog ignores — still prints
    nothing. (A group of only zero attributes is dropped before the
    wrapped handler sees it: the JSON and text handlers would write it
    into the next attribute, the JSON line invalid.)
  - Card numbers: 13 to 19 digits, contiguous or in groups separated by
    single spaces or dashes, not glued to letters, that pass the Luhn
    check, are masked to their last four digits wherever they appear in a
    string value (of any string type, and in a []string, an array or map
    of strings), in a map key (two keys that mask to one text are both
    kept, the second as "**** **** **** 1111 (2)", second in the order of
    the unmasked keys, so that a map is written the same way on every
    line, whatever order Go's map iteration takes; a group written as a
    map — an slog.Value, Attr or LogValuer found in a []any or a map —
    likewise keeps every attribute slog's handlers would print, a key
    repeated in it written as the first free of "key (2)", "key (3)"…,
    its value replaced when the key is secret), in an attribute's or
    a group's key (a Logger.WithGroup name too), in a []byte (which stays a []byte), in a
    [encoding/json.RawMessage] (which stays inline JSON when still valid,
    else becomes a string), in an error's text,
    in the message and in the entity id ("4111 1111 1111 1111" becomes
    "**** **** **** 1111"), whatever digit
    groups come before or after them ("ref 14 4111 1111 1111 1111" becomes
    "ref ** **** **** **** 1111"): every candidate is masked, overlapping
    ones included, so at most a card's last four digits are visible, and
    sometimes fewer. NoCardScan turns this off.
  - Containers: [net/http.Header] (or a pointer to one),
    map[string][]string, [net/url.Values] and map[string]string are
    redacted key by key (a copy: the caller's map is untouched); a
    map[string]any or []any (a decoded JSON body) is walked like a group,
    nested maps and slices included (to a depth of 32, what lies deeper is
    replaced, as is a map or slice inside itself, where it recurs, and
    any LogValuer past the 4096th the walk of one value resolves), and so
    are slices, arrays and string-keyed maps of the values this list names
    ([]http.Header, []map[string]any, []*http.Request, []url.URL,
    map[string]*url.URL, [][]any…), of errors, of LogValuers and of
    interfaces, which are written as a []any or a map[string]any when an
    element changes; every other string-keyed map (map[string]int, a
    named map[string]string) has the values under its secret keys
    replaced; a map with keys of another type is walked likewise
    (map[int]string, map[int64]map[string]any; a key that is an
    interface holding a string, as in the map[any]any a YAML decoder
    returns, is read as a string key), and written as a map of the same
    key type to any when something changes; a pointer to any of these or to a string — through
    further pointers and interfaces (a **map[string]any, a *any) — is
    redacted as what it points to, and a [encoding/json.RawMessage] with a member under a
    secret key, at any level, is decoded, redacted as a map[string]any is
    and encoded again (numbers as written, members in key order; replaced
    whole when it does not parse): values
    under secret keys are replaced, card numbers masked, and LogValuers
    resolved, a group they return becoming a map; a
    [*net/http.Request] is written as method, path (no query) and
    redacted headers, a [*net/http.Response] as status and redacted
    headers (by pointer or value); a [*net/url.URL] with user information (a user name,
    with or without a password: https://ghp_…@github.com/…; in an
    opaque URL, what comes before its last '@':
    jdbc:postgresql://u:pw@h/db), secret query
    parameters (?access_token=…) or secret fragment parameters
    (#access_token=…, OAuth's implicit flow) is written as a string with
    the user information replaced by "[REDACTED]" and those parameters'
    values redacted; a query or fragment that does not parse as a query is
    dropped. Log URLs as *url.URL rather than strings to get this; a
    [net/url.URL] by value is written as a string, redacted likewise. A
    [*net/url.Userinfo] on its own is written as "[REDACTED]". A
    [*net/http.Cookie] (or an http.Cookie by value, or a []*http.Cookie,
    as Response.Cookies returns)
    is written as its Set-Cookie form with the value redacted, whatever
    its key ("sid=[REDACTED]; Path=/; HttpOnly"). An
    error is written as its text with the URL of every [*net/url.Error]
    in its tree — what an http.Client call fails with, `Get "https://…
    ?api_key=…": dial tcp: …` — redacted the same way (a URL that does
    not parse is replaced whole).
  - Groups are walked recursively, with the bounds of the walk of a map:
    a group nested deeper than 32 levels, or inside itself, is replaced,
    and so is any LogValuer past the 4096th that the walk of one
    attribute resolves — LogValuers whose groups hold LogValuers (two
    values that log each other) would otherwise recurse until the stack
    overflows, which kills the process (plain slog does). Attributes
    given to WithAttrs are redacted once, when the logger is made;
    attributes from [With] on every record.

Values implementing [slog.LogValuer] stay lazy: LogValue runs only when the
record is enabled, exactly once, and its result is then redacted like any
other value. An [slog.Attr] or [slog.Value] given as a value
(slog.Any("creds", slog.String("password", p)), an Attr in a []any) is
redacted as the attribute or value it is, and written as a group or map
of one or as what the value holds: passed on, the text handler would
print "password=…" with its String method. Other values of kind Any
(structs, pointers to them) are passed on as
they are: give types that hold secrets a LogValue method, as in the
example.

All secret keys and key parts are compiled, when the Handler is made, into
one automaton (Aho-Corasick, as a DFA over the bytes the patterns use): a
key is checked in one pass over its bytes, with no allocation, no lock and
no cache that a flood of distinct keys could thrash or grow.

# Decisions

[Decision] logs that the system decided something — replayed a stored
response, failed fast because a breaker is open, dropped a stale event,
gave up after N attempts — as one record whose message is the decision,
with decision and reason attributes. Packages take a *slog.Logger in their
Config (nil: no logging) and call Decision; there is no global logger.

A decision that a failing or overloaded dependency makes on every call
does not flood the logs while the failure lasts (packages retry, limit,
idempotency and its stores, consumer and its JetStream adapter,
ordering): per component and decision, at most the first 5 occurrences
in 10 seconds are written at their level, the others at Debug, and the
next line at the decision's level carries suppressed ([KeySuppressed]):
how many were written at Debug since the previous one. A decision that
occurs now and then is logged as before, every occurrence at its level;
every occurrence is still written at Debug and counted by the package's
metrics. When some were written at Debug and the decision has not
occurred for 10 seconds since, the next call that succeeds writes its end
at Info, once, with the count suppressed since the last line. Each line carries the coordinates of the
call it was written on. At 10,000 failing calls a second this is at most
half a line a second per decision, not 10,000. Changes of state (a
breaker opening and closing) are logged once each way and need no such
pacing.

# HTTP

[NewMiddleware] returns server middleware. For each request it picks the
correlation id:

 1. a valid id already on the request context — set by an outer logctx
    middleware or a test — is kept, so nested middleware never splits one
    request into two ids;
 2. otherwise the X-Correlation-ID header (MiddlewareConfig.Header), if it appears
    once and is valid: 1 to 128 bytes of ASCII letters, digits, '-', '_',
    '.', ':' ([ValidateCorrelationID]); anything else — newlines, control
    characters, quotes, spaces, non-ASCII, oversize, a repeated header —
    is rejected, and the replacement is logged as a decision at Warn
    with the reason, never the rejected value;
 3. otherwise the trace id of a valid W3C traceparent header, or of a span
    already on the request context (IgnoreTraceparent turns this off) —
    the server span only if the tracing middleware runs outside this one,
    as in otelhttp.NewHandler(mw(mux), "server"): the other way round the
    span does not exist yet and a request without traceparent gets a fresh
    id;
 4. otherwise a fresh id: 128 bits from crypto/rand as 32 hex characters.

It puts the id on the request context, echoes it in the response header,
and logs one access line per request (method, route, status, duration_ms,
bytes) at AccessLevel, raised to Warn for 5xx. The raw path and query are
not logged: they may carry ids and tokens; the route is the ServeMux
pattern. A handler that panics still gets its access line (status 500),
and the panic goes on unchanged. The response writer wrapper supports
[net/http.ResponseController] (Unwrap), and is a [net/http.Flusher]
([net/http.Hijacker]) exactly when the writer it wraps can flush (be
hijacked), directly or through Unwrap: a handler checking w.(http.Flusher)
and http.ResponseController agree. Overhead without
the access line: three allocations and well under 2 µs per request.

[NewTransport] returns a client [net/http.RoundTripper] that sends the
context's correlation id in the same header and injects the otel context
with TransportConfig.Propagator, by default the global
otel.GetTextMapPropagator() looked up per request. It clones the request
before adding headers, keeps a header the caller set, and never sends an
id that fails validation.

# Messages and events

[Inject] and [Extract] move the correlation id through any header set with
Get and Set — [net/http.Header], nats.Header, otel's
propagation.MapCarrier, or a map[string][]string through [MapHeader].
[InjectEvent] and [ExtractEvent] do the same for
[github.com/sadpath/sadpath/contract.Event.CorrelationID]. Extract
validates what it reads: an invalid id is an error of kind invalid, and
the caller decides (typically: log it and use [NewCorrelationID]).

# Testing

Package [github.com/sadpath/sadpath/logctx/logctxtest] records what code
logs through this Handler, so tests assert on decisions and coordinates
without parsing log lines.

# Configuration

Every constructor takes a config struct whose zero fields mean the
documented defaults, and returns a [*github.com/sadpath/sadpath/contract.Error]
of kind invalid (code "config.invalid") naming the bad field, matching
errors.Is(err, contract.ErrInvalid).

# Concurrency

Contexts are immutable; Handler, the middleware and Transport are safe for
concurrent use. The package starts no goroutines and holds no global
mutable state.
*/
package logctx
