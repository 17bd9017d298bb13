package breaker

import (
	"context"
	"hash/maphash"
	"log/slog"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/sadpath/sadpath/logctx"
)

// DefaultMaxBreakers is the default bound on the breakers of a Registry.
const DefaultMaxBreakers = 1024

// OverflowName is the name of the breaker a full Registry shares between
// every key it has no room for; no key's breaker has this name (see
// RegistryConfig.Breaker).
const OverflowName = "(overflow)"

// EmptyName is the name of the breaker of the empty key ""; no other key's
// breaker has this name (see RegistryConfig.Breaker).
const EmptyName = "(empty)"

// RegistryConfig configures a Registry.
type RegistryConfig struct {
	// Breaker is the configuration of every breaker; its Name is replaced by
	// the key (as valid UTF-8, invalid bytes replaced by U+FFFD; keys longer
	// than 256 bytes are cut for the name, on a character boundary; ""
	// becomes EmptyName). A key that reads like a special name, OverflowName
	// or EmptyName after any number of extra leading '(', gets one more '('
	// in front (then is cut to 256 bytes), so that no key shares the name —
	// and the metric label — of the overflow or empty-key breaker: the key
	// "(overflow)" names its breaker "((overflow)". Its zero fields take the
	// documented defaults.
	Breaker Config
	// MaxBreakers bounds the number of breakers, so that hostile or
	// unbounded keys (hosts from user input) cannot grow memory without
	// limit. Keys met once the registry is full share one breaker named
	// OverflowName. Default DefaultMaxBreakers. A key is stored as a copy
	// (never keeping alive a larger string it was sliced from), or when
	// longer than 256 bytes as a 128-bit keyed hash of itself.
	MaxBreakers int
}

// Registry holds one Breaker per key — a downstream host, a tenant, an
// endpoint — created on first use from one template configuration.
// A Registry is safe for concurrent use; the zero value is not usable.
type Registry struct {
	template     Config
	max          int
	seed1, seed2 maphash.Seed // hash the keys longer than maxNameBytes

	mu       sync.RWMutex
	m        map[string]*Breaker
	overflow *Breaker
}

// NewRegistry returns a Registry, or a *contract.Error of KindInvalid naming
// the first bad field ("RegistryConfig.Breaker.Window" for the template's)
// (or, as New, of KindInternal when the MeterProvider
// cannot create the instruments). Should the MeterProvider fail later, Get
// still returns a working breaker, without metrics.
func NewRegistry(cfg RegistryConfig) (*Registry, error) {
	if cfg.MaxBreakers < 0 {
		return nil, invalidField("breaker", "RegistryConfig.MaxBreakers", "must be >= 0", cfg.MaxBreakers)
	}
	if cfg.MaxBreakers == 0 {
		cfg.MaxBreakers = DefaultMaxBreakers
	}
	t := cfg.Breaker
	t.Name = "template"
	// Validated first so that an error names the field the caller set,
	// RegistryConfig.Breaker.Window, not a Config of its own.
	if _, err := t.withDefaults("RegistryConfig.Breaker"); err != nil {
		return nil, err
	}
	// A breaker, not only the config: a MeterProvider that cannot create
	// the instruments is refused here, as New refuses it.
	b, err := New(t)
	if err != nil {
		return nil, err
	}
	_ = b.Close() // unregisters its gauge: it reports nothing
	return &Registry{template: cfg.Breaker, max: cfg.MaxBreakers, m: make(map[string]*Breaker),
		seed1: maphash.MakeSeed(), seed2: maphash.MakeSeed()}, nil
}

// maxNameBytes bounds a breaker's name, and the keys the registry stores as
// they are.
const maxNameBytes = 256

// Get returns the breaker of key, creating it on first use.
func (r *Registry) Get(key string) *Breaker {
	mk := key
	if len(key) > maxNameBytes {
		mk = r.hashed(key)
	}
	r.mu.RLock()
	b := r.m[mk]
	r.mu.RUnlock()
	if b != nil {
		return b
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if b := r.m[mk]; b != nil {
		return b
	}
	if len(r.m) >= r.max {
		if r.overflow == nil {
			r.overflow = r.build(OverflowName)
		}
		return r.overflow
	}
	name := EmptyName
	if key != "" {
		name = nameOf(key)
	}
	b = r.build(name)
	if len(key) <= maxNameBytes {
		// A copy: a key sliced from a larger string (URL.Host is sliced
		// from the whole URL) would keep all of it alive for good.
		mk = strings.Clone(key)
	}
	r.m[mk] = b
	return b
}

// hashed returns the key under which a key longer than maxNameBytes is
// stored: a 128-bit keyed hash of it, so that hostile keys of any length
// cost 16 bytes each.
func (r *Registry) hashed(key string) string {
	var k [16]byte
	h1, h2 := maphash.String(r.seed1, key), maphash.String(r.seed2, key)
	for i := range 8 {
		k[i] = byte(h1 >> (8 * i))
		k[8+i] = byte(h2 >> (8 * i))
	}
	return string(k[:])
}

// nameOf returns the name of the breaker of a non-empty key: the key as
// valid UTF-8 (invalid bytes replaced by U+FFFD: a host such as
// "%ff.example" decodes to a raw byte), cut on a character boundary to
// maxNameBytes, never sharing the key's memory. The name goes into logs
// and metric attributes, where invalid UTF-8 is rejected (an OTLP export
// fails on it).
func nameOf(key string) string {
	name := strings.ToValidUTF8(key, "\uFFFD")
	if special(name) {
		name = "(" + name // may pass maxNameBytes by one: cut below
	}
	if len(name) > maxNameBytes {
		n := maxNameBytes
		for !utf8.RuneStart(name[n]) {
			n-- // valid UTF-8: a character starts within 3 bytes
		}
		name = name[:n]
	}
	return strings.Clone(name)
}

// special reports whether name is OverflowName or EmptyName after any
// number of extra leading '(': those names get one more '(' (see nameOf),
// which keeps them apart from each other and from the special names.
func special(name string) bool {
	rest := strings.TrimLeft(name, "(")
	return len(rest) < len(name) && (rest == OverflowName[1:] || rest == EmptyName[1:])
}

// build returns a new breaker named name. When the MeterProvider fails to
// create its instruments (it did not in NewRegistry), the breaker goes
// without metrics rather than Get panicking — in a Transport, on the
// request's goroutine — or the dependency going unprotected; the template's
// Logger is told.
func (r *Registry) build(name string) *Breaker {
	cfg := r.template
	cfg.Name = name
	b, err := New(cfg)
	if err != nil && !cfg.DisableMetrics {
		logctx.Decision(context.Background(), cfg.Logger, slog.LevelError, "breaker created without metrics",
			err.Error(), slog.String(logctx.KeyDependency, name))
		cfg.DisableMetrics = true
		b, err = New(cfg)
	}
	if err != nil { // validated in NewRegistry: only a bug gets here
		panic("breaker: registry template no longer valid: " + err.Error())
	}
	return b
}

// Breakers returns the breakers created so far (the overflow breaker last,
// if any), for operators: list states, force one open.
func (r *Registry) Breakers() []*Breaker {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*Breaker, 0, len(r.m)+1)
	for _, b := range r.m {
		out = append(out, b)
	}
	if r.overflow != nil {
		out = append(out, r.overflow)
	}
	return out
}
