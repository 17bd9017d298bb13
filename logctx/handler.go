package logctx

import (
	"context"
	"log/slog"
	"strconv"

	"go.opentelemetry.io/otel/trace"
)

// HandlerConfig configures a Handler. The zero value of every field but
// Next means its documented default.
type HandlerConfig struct {
	// Next receives the records, with coordinates added and secrets
	// redacted. Required, and not itself a *Handler (coordinates would be
	// written twice).
	Next slog.Handler

	// RedactKeys lists extra attribute keys whose values are secret, matched
	// like the default keys: ASCII case-insensitively, with '-', '_' and
	// ' ' treated as equal. Entries must not be empty.
	RedactKeys []string

	// NoDefaultKeys turns off the default secret keys (authorization,
	// cookies, tokens, passwords, api keys, card fields…; see the package
	// doc), leaving only RedactKeys. Default false: the defaults apply.
	NoDefaultKeys bool

	// NoCardScan turns off masking of payment card numbers found inside
	// string values, []byte and json.RawMessage values, error texts,
	// attribute, group and map keys, the message and the entity id. Default false: card numbers are masked.
	NoCardScan bool

	// Replacement replaces the value of a secret attribute. Default
	// DefaultRedacted ("[REDACTED]").
	Replacement string

	// MaxCoordinateBytes bounds each coordinate value the Handler adds —
	// correlation id, operation, entity kind and id, and the string
	// values of the attributes added with With — so that a hostile or
	// buggy producer's megabyte event subject or entity id is not printed
	// in full on every line. A longer value is written as its first
	// MaxCoordinateBytes bytes (fewer, to end on a UTF-8 boundary and
	// outside a run of digits, so a card number is never cut past its
	// mask) followed by "...[truncated, N bytes]", N its full length.
	// Default DefaultMaxCoordinateBytes (256); negative: no limit. The
	// record's own attributes and the message are not coordinates and are
	// not cut.
	MaxCoordinateBytes int
}

// Handler is a slog.Handler that adds the coordinates of the record's
// context — correlation id, operation, entity, the attributes added with
// With, and the otel trace and span ids — to every record, redacts secrets,
// and passes the record to the wrapped handler. See the package doc for the
// attribute names, the group semantics and the redaction rules.
//
// Make one with NewHandler; the zero Handler has nothing to wrap and must
// not be used. A Handler is safe for concurrent use; WithAttrs and
// WithGroup return new Handlers that share its configuration.
type Handler struct {
	next   slog.Handler // wrapped handler, with the attrs added before any group
	red    *redactor
	groups []groupFrame // groups opened with WithGroup, kept here so coordinates stay top-level
}

// groupFrame is one group opened with WithGroup and the attrs added inside
// it before the next group.
type groupFrame struct {
	name   string
	secret bool // name is a secret key: the group is written as the replacement, as slog.Group(name, …) is
	attrs  []slog.Attr
}

var _ slog.Handler = (*Handler)(nil)

// NewHandler returns a Handler wrapping cfg.Next. It returns a
// *contract.Error of KindInvalid naming the field when cfg is invalid.
func NewHandler(cfg HandlerConfig) (*Handler, error) {
	if cfg.Next == nil {
		return nil, configError("HandlerConfig.Next", "must not be nil")
	}
	if _, ok := cfg.Next.(*Handler); ok {
		// Every coordinate would be written twice.
		return nil, configError("HandlerConfig.Next", "is already a *logctx.Handler: wrap its handler once")
	}
	for i, k := range cfg.RedactKeys {
		if k == "" {
			return nil, configError("HandlerConfig.RedactKeys["+strconv.Itoa(i)+"]", "must not be empty")
		}
	}
	return &Handler{next: cfg.Next, red: newRedactor(cfg)}, nil
}

// Enabled reports whether the wrapped handler handles records at level. It
// is exactly as cheap as the wrapped handler's Enabled.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle adds the coordinates of ctx to r, redacts secrets, and passes the
// result to the wrapped handler, returning its error unchanged. A nil ctx
// has no coordinates.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	// Coordinates are gathered on the stack and appended to the record,
	// which keeps five attrs inline: a record with up to five attrs in all
	// costs no allocation.
	var buf [8]slog.Attr
	coords := buf[:0]
	if c := from(ctx); c != nil {
		// Each value costs a length check against MaxCoordinateBytes;
		// only an oversize one is cut (see capCoordinate).
		if c.correlationID != "" {
			coords = append(coords, slog.String(KeyCorrelationID, h.red.coord(c.correlationID)))
		}
		if c.operation != "" {
			coords = append(coords, slog.String(KeyOperation, h.red.coord(c.operation)))
		}
		if c.entityKind != "" {
			coords = append(coords, slog.String(KeyEntityKind, h.red.coord(c.entityKind)))
		}
		if c.entityID != "" {
			// An entity id comes from data, so it could be a card number
			// by mistake; the other coordinates are names from code or
			// validated ids. It is cut before it is scanned, so a huge
			// one costs a scan of its kept bytes only.
			id := h.red.coord(c.entityID)
			if h.red.scanPAN {
				id, _ = maskPANs(id)
			}
			coords = append(coords, slog.String(KeyEntityID, id))
		}
		for _, a := range c.attrs {
			if a.Value.Kind() == slog.KindLogValuer {
				a.Value = a.Value.Resolve() // as attr would: it may be a long string
			}
			if a.Value.Kind() == slog.KindString {
				a.Value = slog.StringValue(h.red.coord(a.Value.String()))
			}
			a, _ = h.red.attr(a, nil)
			coords = append(coords, a)
		}
	}
	if ctx != nil {
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			coords = append(coords,
				slog.String(KeyTraceID, sc.TraceID().String()),
				slog.String(KeySpanID, sc.SpanID().String()))
		}
	}

	msg := r.Message
	msgChanged := false
	if h.red.scanPAN {
		msg, msgChanged = maskPANs(msg)
	}

	if len(h.groups) > 0 {
		return h.handleGrouped(ctx, r, msg, coords)
	}

	// Pass the record on with the coordinates appended, unless an attr
	// must change (a secret, a card number, a LogValuer to resolve). The
	// first one that does is kept as redacted, not redacted again in the
	// rebuild below, so a LogValue method (in a group or a map too) runs
	// exactly once.
	changed := false
	same := 0 // attrs before the first that changes
	var first slog.Attr
	r.Attrs(func(a slog.Attr) bool {
		if first, changed = h.red.attr(a, nil); !changed {
			same++
		}
		return !changed
	})
	if !changed {
		if len(coords) == 0 && !msgChanged {
			return h.next.Handle(ctx, r)
		}
		r = r.Clone() // never append into a backing array the caller shares
		r.Message = msg
		r.AddAttrs(coords...)
		return h.next.Handle(ctx, r)
	}

	nr := slog.NewRecord(r.Time, r.Level, msg, r.PC)
	i := 0
	r.Attrs(func(a slog.Attr) bool {
		switch {
		case i == same:
			a = first
		case i > same:
			a, _ = h.red.attr(a, nil)
		}
		i++
		nr.AddAttrs(a)
		return true
	})
	nr.AddAttrs(coords...)
	return h.next.Handle(ctx, nr)
}

// handleGrouped builds the record for a Handler with open groups: the
// record's attrs nested in the groups together with the attrs added within
// each group, then the coordinates, top-level. A non-empty group whose name
// is a secret key is written as the replacement, as the same group passed
// as an attribute (slog.Group) is.
func (h *Handler) handleGrouped(ctx context.Context, r slog.Record, msg string, coords []slog.Attr) error {
	inner := make([]slog.Attr, 0, r.NumAttrs())
	r.Attrs(func(a slog.Attr) bool {
		a, _ = h.red.attr(a, nil)
		inner = append(inner, a)
		return true
	})
	for i := len(h.groups) - 1; i >= 0; i-- {
		g := h.groups[i]
		level := make([]slog.Attr, 0, len(g.attrs)+len(inner))
		level = append(level, g.attrs...)
		level = append(level, inner...)
		inner = nil
		switch {
		case emptyGroup(level, 0):
			// An empty group prints nothing, secret or not: slog ignores
			// zero attrs and empty groups, and a group of only those.
		case g.secret:
			inner = []slog.Attr{{Key: g.name, Value: h.red.redacted}}
		default:
			inner = []slog.Attr{{Key: g.name, Value: slog.GroupValue(level...)}}
		}
	}
	nr := slog.NewRecord(r.Time, r.Level, msg, r.PC)
	nr.AddAttrs(inner...)
	nr.AddAttrs(coords...)
	return h.next.Handle(ctx, nr)
}

// WithAttrs returns a Handler whose records also carry attrs, resolved and
// redacted now. Inside a group they are qualified by it; coordinates are
// not.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	red := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		red[i], _ = h.red.attr(a, nil)
	}
	if len(h.groups) == 0 {
		return &Handler{next: h.next.WithAttrs(red), red: h.red}
	}
	groups := make([]groupFrame, len(h.groups))
	copy(groups, h.groups)
	last := &groups[len(groups)-1]
	last.attrs = append(append(make([]slog.Attr, 0, len(last.attrs)+len(red)), last.attrs...), red...)
	return &Handler{next: h.next, red: h.red, groups: groups}
}

// WithGroup returns a Handler that qualifies the record's attrs and later
// WithAttrs attrs by name. Coordinates stay top-level. An empty name
// returns h. When name is a secret key, the group's content is redacted as
// a whole, as for slog.Group(name, …): a record with anything in the group
// shows name with the replacement as its value.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	groups := make([]groupFrame, len(h.groups), len(h.groups)+1)
	copy(groups, h.groups)
	secret := h.red.secretKey(name)
	if h.red.scanPAN {
		name, _ = maskPANs(name) // printed as a key is
	}
	groups = append(groups, groupFrame{name: name, secret: secret})
	return &Handler{next: h.next, red: h.red, groups: groups}
}
