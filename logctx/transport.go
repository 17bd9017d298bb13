package logctx

import (
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
)

// TransportConfig configures the client RoundTripper returned by
// NewTransport. The zero value of every field means its documented default.
type TransportConfig struct {
	// Base performs the requests. Default http.DefaultTransport.
	Base http.RoundTripper

	// Header carries the correlation id. Default HeaderCorrelationID
	// ("X-Correlation-ID"). It must be a valid header field name.
	Header string

	// Propagator injects the otel context (traceparent, baggage…) of the
	// request's context. Default nil: the global propagator,
	// otel.GetTextMapPropagator(), looked up on every request so that one
	// installed after NewTransport is used.
	Propagator propagation.TextMapPropagator

	// NoOtel turns otel propagation off, leaving only the correlation id.
	// Default false.
	NoOtel bool
}

// Transport is an http.RoundTripper that propagates the correlation id of
// the request's context in a header, and the otel context through a
// propagator, to the server it calls. It never modifies the caller's
// request: it sends a clone when it has something to add. A header the
// caller set explicitly is kept. Safe for concurrent use.
type Transport struct {
	base   http.RoundTripper
	header string
	prop   propagation.TextMapPropagator
	noOtel bool
}

var _ http.RoundTripper = (*Transport)(nil)

// NewTransport returns a Transport. It returns a *contract.Error of
// KindInvalid naming the field when cfg is invalid.
func NewTransport(cfg TransportConfig) (*Transport, error) {
	t := &Transport{base: cfg.Base, header: http.CanonicalHeaderKey(HeaderCorrelationID), prop: cfg.Propagator, noOtel: cfg.NoOtel}
	if t.base == nil {
		t.base = http.DefaultTransport
	}
	if cfg.Header != "" {
		if !validHeaderName(cfg.Header) {
			return nil, configError("TransportConfig.Header", "not a valid header field name: "+strconv.Quote(cfg.Header))
		}
		t.header = http.CanonicalHeaderKey(cfg.Header)
	}
	return t, nil
}

// RoundTrip sends req through the base RoundTripper with the correlation
// id and otel headers added.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	id := CorrelationID(ctx)
	if id != "" && (checkID(id) != "" || len(req.Header[t.header]) > 0) {
		id = "" // never send an unsafe id; never override the caller's
	}
	prop := t.prop
	if !t.noOtel && prop == nil {
		prop = otel.GetTextMapPropagator()
	}
	if id == "" && (t.noOtel || len(prop.Fields()) == 0) {
		return t.base.RoundTrip(req)
	}
	r2 := req.Clone(ctx)
	if r2.Header == nil {
		r2.Header = make(http.Header)
	}
	if id != "" {
		r2.Header[t.header] = []string{id}
	}
	if !t.noOtel {
		c := make(propagation.MapCarrier)
		prop.Inject(ctx, c)
		for k, v := range c {
			if ck := http.CanonicalHeaderKey(k); len(req.Header[ck]) == 0 {
				r2.Header[ck] = []string{v}
			}
		}
	}
	return t.base.RoundTrip(r2)
}
