package breaker

import (
	"sync"
	"unicode/utf8"
)

// DefaultMaxBreakers is the default bound on the breakers of a Registry.
const DefaultMaxBreakers = 1024

// OverflowName is the name of the breaker a full Registry shares between
// every key it has no room for.
const OverflowName = "(overflow)"

// RegistryConfig configures a Registry.
type RegistryConfig struct {
	// Breaker is the configuration of every breaker; its Name is replaced by
	// the key (keys longer than 256 bytes are cut for the name, on a
	// character boundary; "" becomes "(empty)"). Its zero fields take the
	// documented defaults.
	Breaker Config
	// MaxBreakers bounds the number of breakers, so that hostile or
	// unbounded keys (hosts from user input) cannot grow memory without
	// limit. Keys met once the registry is full share one breaker named
	// OverflowName. Default DefaultMaxBreakers.
	MaxBreakers int
}

// Registry holds one Breaker per key — a downstream host, a tenant, an
// endpoint — created on first use from one template configuration.
// A Registry is safe for concurrent use; the zero value is not usable.
type Registry struct {
	template Config
	max      int

	mu       sync.RWMutex
	m        map[string]*Breaker
	overflow *Breaker
}

// NewRegistry returns a Registry, or a *contract.Error of KindInvalid naming
// the first bad field.
func NewRegistry(cfg RegistryConfig) (*Registry, error) {
	if cfg.MaxBreakers < 0 {
		return nil, invalidField("breaker", "RegistryConfig.MaxBreakers", "must be >= 0", cfg.MaxBreakers)
	}
	if cfg.MaxBreakers == 0 {
		cfg.MaxBreakers = DefaultMaxBreakers
	}
	t := cfg.Breaker
	t.Name = "template"
	if _, err := t.withDefaults(); err != nil {
		return nil, err
	}
	return &Registry{template: cfg.Breaker, max: cfg.MaxBreakers, m: make(map[string]*Breaker)}, nil
}

// Get returns the breaker of key, creating it on first use.
func (r *Registry) Get(key string) *Breaker {
	r.mu.RLock()
	b := r.m[key]
	r.mu.RUnlock()
	if b != nil {
		return b
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if b := r.m[key]; b != nil {
		return b
	}
	if len(r.m) >= r.max {
		if r.overflow == nil {
			r.overflow = r.build(OverflowName)
		}
		return r.overflow
	}
	b = r.build(key)
	r.m[key] = b
	return b
}

func (r *Registry) build(key string) *Breaker {
	cfg := r.template
	switch {
	case key == "":
		cfg.Name = "(empty)"
	case len(key) > 256:
		n := 256
		for n > 0 && !utf8.RuneStart(key[n]) {
			n-- // cut on a character: the name goes into logs and metric attributes
		}
		cfg.Name = key[:n]
	default:
		cfg.Name = key
	}
	b, err := New(cfg)
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
