package logctx

import (
	"context"
	"net/http"

	"github.com/sadpath/sadpath/contract"
	"go.opentelemetry.io/otel/propagation"
)

// Carrier is a message's header set as the correlation helpers need it:
// http.Header, nats.Header and otel's propagation.HeaderCarrier and
// propagation.MapCarrier satisfy it as they are; wrap a plain
// map[string][]string in MapHeader.
type Carrier interface {
	Get(key string) string
	Set(key, value string)
}

// MapHeader adapts a map[string][]string (the shape of Kafka, AMQP or NATS
// headers once converted) to Carrier. Keys are used exactly as given.
type MapHeader map[string][]string

// Get returns the first value under key, or "".
func (h MapHeader) Get(key string) string {
	if vs := h[key]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// Set replaces the values under key with value.
func (h MapHeader) Set(key, value string) { h[key] = []string{value} }

// Inject writes the correlation id of ctx into c under HeaderCorrelationID.
// It writes nothing when ctx has no id or its id is not valid (see
// ValidateCorrelationID): an unsafe id never leaves the process. A nil
// carrier, or a nil map of a known carrier type, is left alone.
func Inject(ctx context.Context, c Carrier) {
	if id := CorrelationID(ctx); id != "" && checkID(id) == "" && !nilCarrier(c) {
		c.Set(HeaderCorrelationID, id)
	}
}

// nilCarrier reports whether c is nil or a nil map of a known type, which
// would panic on Set.
func nilCarrier(c Carrier) bool {
	switch h := c.(type) {
	case nil:
		return true
	case MapHeader:
		return h == nil
	case http.Header:
		return h == nil
	case propagation.MapCarrier:
		return h == nil
	case propagation.HeaderCarrier:
		return h == nil
	}
	return false
}

// Extract returns ctx carrying the correlation id found in c under
// HeaderCorrelationID (also spelled "X-Correlation-Id" or
// "x-correlation-id", as case-sensitive carriers may hold it). When c has no id it returns ctx unchanged and nil;
// when the id is invalid it returns ctx unchanged and the
// ValidateCorrelationID error, so the caller decides (typically: log it
// and continue with NewCorrelationID). A nil ctx is treated as
// context.Background.
func Extract(ctx context.Context, c Carrier) (context.Context, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if nilCarrier(c) {
		return ctx, nil
	}
	id := getID(c)
	if id == "" {
		return ctx, nil
	}
	if err := ValidateCorrelationID(id); err != nil {
		return ctx, err
	}
	return WithCorrelationID(ctx, id), nil
}

// idSpellings are the forms the header name takes on the way: as written,
// canonicalized by net/http, lower-cased by HTTP/2 and many brokers.
// Case-sensitive carriers (nats.Header, MapHeader) need each tried.
var idSpellings = [...]string{HeaderCorrelationID, "X-Correlation-Id", "x-correlation-id"}

func getID(c Carrier) string {
	for _, k := range idSpellings {
		if id := c.Get(k); id != "" {
			return id
		}
	}
	return ""
}

// InjectEvent sets e.CorrelationID to the correlation id of ctx when e has
// none and the id is valid; an id already on the event (one being
// forwarded) is kept.
func InjectEvent(ctx context.Context, e *contract.Event) {
	if e == nil || e.CorrelationID != "" {
		return
	}
	if id := CorrelationID(ctx); id != "" && checkID(id) == "" {
		e.CorrelationID = id
	}
}

// ExtractEvent returns ctx carrying e.CorrelationID, with the same rules as
// Extract: unchanged ctx and nil when the event has none, unchanged ctx
// and the validation error when it is invalid.
func ExtractEvent(ctx context.Context, e *contract.Event) (context.Context, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if e == nil || e.CorrelationID == "" {
		return ctx, nil
	}
	if err := ValidateCorrelationID(e.CorrelationID); err != nil {
		return ctx, err
	}
	return WithCorrelationID(ctx, e.CorrelationID), nil
}
