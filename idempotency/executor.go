package idempotency

import (
	"bytes"
	"context"
	"encoding"
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unsafe"

	"go.opentelemetry.io/otel/metric"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/internal/owner"
)

// DuplicatePolicy says what a duplicate does when it meets the same key
// still in progress.
type DuplicatePolicy uint8

const (
	// FailFast (the default) returns ErrInProgress at once, with RetryAfter
	// set to the owner's remaining lease (HTTP: 409 with Retry-After).
	FailFast DuplicatePolicy = iota
	// Wait polls the store with exponential backoff until the first
	// operation completes (the duplicate then gets its result), fails and is
	// released (the duplicate then runs it), or the context ends.
	Wait
)

// Codec encodes the values Do stores. Marshal and Unmarshal have the
// signatures of encoding/json's.
type Codec interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// JSONCodec is the default Codec: encoding/json.
type JSONCodec struct{}

// Marshal calls json.Marshal.
func (JSONCodec) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal calls json.Unmarshal.
func (JSONCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// Defaults of Config.
const (
	DefaultLease           = 30 * time.Second
	DefaultRetention       = 24 * time.Hour
	DefaultPollInterval    = 10 * time.Millisecond
	DefaultMaxPollInterval = time.Second
)

// MinLease is the shortest Config.Lease accepted: the Redis and PostgreSQL
// stores count leases in milliseconds, and a shorter lease leaves the
// heartbeat (Lease/3) no room to renew it (under 3ns, none at all).
const MinLease = time.Millisecond

// Config configures an Executor, and through it the Middleware and Dedup.
// Every zero field means its documented default; only Store is required.
type Config struct {
	// Store keeps the records. Required.
	Store Store
	// Lease is how long a claim is held without a heartbeat; a crashed
	// owner's key becomes claimable again after it. It also bounds the
	// store calls that end an operation (Complete, Release), which run
	// without the caller's cancellation: a store that has not answered one
	// within Lease could no longer accept it, and the caller gets its answer
	// as if the store had failed (see Do). Default 30s; at least MinLease
	// (1ms).
	Lease time.Duration
	// Retention is how long a record and its stored result are kept, and so
	// how long a duplicate is recognised. Must be >= Lease. Default 24h.
	Retention time.Duration
	// Duplicate is the policy for a duplicate meeting the key in progress.
	// Default FailFast.
	Duplicate DuplicatePolicy
	// PollInterval is the first delay between polls under Wait, doubled up
	// to MaxPollInterval and never past the owner's remaining lease.
	// Defaults 10ms and 1s.
	PollInterval    time.Duration
	MaxPollInterval time.Duration
	// Heartbeat is how often the owner renews its lease while the operation
	// runs; the first renewal comes between Heartbeat/2 and Heartbeat after
	// the claim (operations shorter than that share one timer instead of
	// arming one each). A renewal that the store has not answered within
	// Heartbeat fails. A failed renewal is retried at the next beat, and
	// beats come no later than the lease's end as the executor counts it
	// (Lease from the moment the claim, or the last renewal that succeeded,
	// was sent: never later than the store's). When a renewal finds the
	// lease lost, or no renewal has succeeded by that end (the store is
	// unreachable, and once the lease expires another caller may claim the
	// key), the operation's context is canceled with cause ErrLeaseLost and
	// its result is not recorded. Default Lease/3; negative disables renewal
	// (the operation must then finish within Lease).
	Heartbeat time.Duration
	// FailOpen runs the operation without idempotency when the store fails
	// to claim (counted and logged as store_error). The default, false,
	// fails closed: the operation does not run and the caller gets
	// ErrStoreUnavailable (HTTP: 503 with Retry-After). Fail open only where
	// running twice is cheaper than not running at all. A duplicate waiting
	// under Wait that has seen the key in progress fails closed whatever
	// FailOpen says: the operation is running elsewhere, and running it
	// alongside is a second run, not a fallback. A claim the store
	// refuses as too large (contract.ErrTooLarge: a key over a MemoryStore
	// shard's budget) is not a failure: the operation does not run and the
	// caller gets that permanent error (HTTP: 413), whatever FailOpen says.
	FailOpen bool
	// StoreError reports whether an error returned by the operation is
	// permanent and must be stored and replayed to duplicates, like a
	// result. Errors it does not accept release the key so a retry runs the
	// operation again, and so does any error returned once the operation's
	// context ended (the caller canceled or timed out): it is not asked
	// then. Default nil: every error releases. Stored errors are
	// replayed as *contract.Error with the original Kind, Code and Detail,
	// never retryable (a retry would replay the same error).
	StoreError func(error) bool
	// Codec encodes Do's values. Default JSONCodec.
	Codec Codec
	// Clock tells the time and arms heartbeat and poll timers. Default: the system clock.
	Clock Clock
	// Logger receives one decision record per outcome (see the Outcome
	// constants), with the key as a short hash; store_error, lease_lost and
	// conflict records are paced (see Observability in the package
	// documentation). Default nil: no logging.
	Logger *slog.Logger
	// MeterProvider provides the Meter for the sadpath.idempotency.outcomes
	// counter. Default: the global otel MeterProvider.
	MeterProvider metric.MeterProvider
}

// Executor runs operations at most once per key: claim → run → complete,
// or release on failure. Use it through Do, Middleware or Dedup. An
// Executor is safe for concurrent use; the only per-call state it holds is
// the list of running operations awaiting their first heartbeat.
type Executor struct {
	store      Store
	storeID    any // owner.StoreID of store: what nested calls compare
	lease      time.Duration
	retention  time.Duration
	duplicate  DuplicatePolicy
	poll       time.Duration
	maxPoll    time.Duration
	heartbeat  time.Duration
	failOpen   bool
	storeError func(error) bool
	codec      Codec
	clock      Clock
	obs        *observer
	young      youngOps      // running operations not yet due a renewal timer of their own
	shared     sharedClaimer // the store's copy-free Claim, when it has one
	jsonCodec  bool          // codec is JSONCodec, whose decoding of plain types may be memoized
	notStored  func() Result // what to record when the store refuses a result as too large
}

// sharedClaimer is implemented by stores of this package that can answer a
// claim with their stored result without copying it; the executor only
// reads replayed results. A Completed answer comes with the record's
// memoSlot.
type sharedClaimer interface {
	claimShared(ctx context.Context, req ClaimRequest, fpBorrowed bool) (Claim, *memoSlot, error)
	completeOwned(ctx context.Context, key Key, token uint64, result Result, seed *memo) error
}

// memoSlot sits next to a completed record of the in-memory store and
// holds a form of its result derived once and reused by later replays
// (Do's decoded value, the Middleware's replay headers). A completed
// record's result never changes, so a memo derived from it stays valid as
// long as the record; a memo is immutable once stored, and replays only
// copy out of it, so no two callers ever share anything mutable.
//
// A memo is derived on the second miss, not the first: most records are
// replayed once if at all, and deriving and storing the memo costs
// allocations a single replay would not get back. The exception is a value
// Do can memoize at completion without decoding anything (see
// isExact): it is stored with the result.
type memoSlot struct {
	p      atomic.Pointer[memo]
	misses atomic.Uint32
}

type memo struct{ v any }

// boxed holds a memoized value of Do together with the memo pointing at it,
// so memoizing a value costs one allocation, not two (the memo and the
// value boxed into its interface).
type boxed[T any] struct {
	m   memo
	val T
}

// newBoxed returns v in a box whose memo points at it.
func newBoxed[T any](v T) *boxed[T] {
	b := &boxed[T]{val: v}
	b.m.v = b
	return b
}

// box returns the memo of v.
func box[T any](v T) *memo { return &newBoxed(v).m }

// unbox returns a copy of the value memoized in s by box, if s holds one
// of type T.
func unbox[T any](s *memoSlot) (T, bool) {
	if b, ok := s.load().(*boxed[T]); ok {
		return b.val, true
	}
	var zero T
	return zero, false
}

// set stores m as s's memo.
func (s *memoSlot) set(m *memo) {
	if s != nil {
		s.p.Store(m)
	}
}

func (s *memoSlot) load() any {
	if s == nil {
		return nil
	}
	if m := s.p.Load(); m != nil {
		return m.v
	}
	return nil
}

func (s *memoSlot) store(v any) {
	if s != nil {
		s.p.Store(&memo{v: v})
	}
}

// secondMiss counts a replay that found no memo, and reports whether it
// was not the first: the time to store one.
func (s *memoSlot) secondMiss() bool {
	return s != nil && s.misses.Add(1) > 1
}

// New returns an Executor configured by cfg, or a KindInvalid error naming
// the bad field.
func New(cfg Config) (*Executor, error) { return newExecutor(cfg, "Config", "do") }

func newExecutor(cfg Config, name, component string) (*Executor, error) {
	if cfg.Store == nil {
		return nil, configError(name+".Store", "required")
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"Lease", cfg.Lease}, {"Retention", cfg.Retention}, {"PollInterval", cfg.PollInterval}, {"MaxPollInterval", cfg.MaxPollInterval}} {
		if d.v < 0 {
			return nil, configError(name+"."+d.field, "must be >= 0, got %v", d.v)
		}
	}
	if cfg.Duplicate > Wait {
		return nil, configError(name+".Duplicate", "unknown policy %d", cfg.Duplicate)
	}
	if cfg.Lease == 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Lease < MinLease {
		return nil, configError(name+".Lease", "must be >= %v, got %v", MinLease, cfg.Lease)
	}
	if cfg.Retention == 0 {
		cfg.Retention = max(DefaultRetention, cfg.Lease)
	}
	if cfg.Retention < cfg.Lease {
		return nil, configError(name+".Retention", "must be >= Lease (%v), got %v", cfg.Lease, cfg.Retention)
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.MaxPollInterval == 0 {
		cfg.MaxPollInterval = max(DefaultMaxPollInterval, cfg.PollInterval)
	}
	if cfg.MaxPollInterval < cfg.PollInterval {
		return nil, configError(name+".MaxPollInterval", "must be >= PollInterval (%v), got %v", cfg.PollInterval, cfg.MaxPollInterval)
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = cfg.Lease / 3
	}
	if cfg.Heartbeat >= cfg.Lease {
		return nil, configError(name+".Heartbeat", "must be < Lease (%v) to renew in time, got %v", cfg.Lease, cfg.Heartbeat)
	}
	if cfg.Codec == nil {
		cfg.Codec = JSONCodec{}
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	obs, err := newObserver(component, cfg.Logger, cfg.Clock, cfg.MeterProvider)
	if err != nil {
		return nil, configError(name+".MeterProvider", "counter: %v", err)
	}
	shared, _ := cfg.Store.(sharedClaimer)
	_, jsonCodec := cfg.Codec.(JSONCodec)
	e := &Executor{
		shared: shared, jsonCodec: jsonCodec,
		store: cfg.Store, lease: cfg.Lease, retention: cfg.Retention, duplicate: cfg.Duplicate,
		poll: cfg.PollInterval, maxPoll: cfg.MaxPollInterval, heartbeat: cfg.Heartbeat,
		failOpen: cfg.FailOpen, storeError: cfg.StoreError, codec: cfg.Codec, clock: cfg.Clock, obs: obs,
	}
	e.storeID = owner.StoreID(e.store, e)
	e.young.sweep = e.sweep
	e.notStored = func() Result {
		res, _ := encodeError(errResultNotStored("the result of the first call with this key was too large to store; it was returned once"))
		return res
	}
	return e, nil
}

// errResultNotStored is what duplicates get when the first call ran but
// the store refused its result as too large: a permanent conflict, since
// running the operation again is what the key exists to prevent.
func errResultNotStored(detail string) *contract.Error {
	return contract.New(contract.KindConflict, "idempotency.complete", detail).WithCode("idempotency.result_not_stored")
}

// Do runs fn at most once for key across every caller sharing e's store,
// and returns its value; a duplicate gets the stored value back without
// running fn.
//
//   - The first caller claims key and runs fn. On success the value is
//     encoded with the Codec and stored for Retention; on error the key is
//     released (so a retry runs fn again) unless Config.StoreError marks the
//     error permanent, in which case it is stored and replayed; an error
//     returned after ctx ended always releases. A value the
//     Codec cannot encode (a NaN, a channel) is returned with an error of
//     code "idempotency.encode", and Do records that fn ran: duplicates get
//     a permanent KindConflict error with code
//     "idempotency.result_not_stored", never a second run. A Codec that
//     panics is recorded so too, then its panic continues.
//   - A duplicate with the same fingerprint gets the stored value (or
//     stored error). A duplicate with another fingerprint gets ErrMismatch.
//     A duplicate arriving while fn runs gets ErrInProgress (FailFast) or
//     waits for the outcome (Wait).
//   - While fn runs its lease is renewed every Heartbeat. If the lease is
//     lost — a renewal finds that the store expired it and another caller
//     claimed the key, or renewals keep failing (the store is unreachable)
//     until the lease has run out, so another caller may claim the key —
//     fn's context is canceled with cause ErrLeaseLost, and Do returns fn's
//     value with an error matching ErrLeaseLost: fn ran, but its result was
//     not recorded and another owner's may be authoritative.
//   - If fn panics the key is released and the panic continues.
//   - When the store fails, Do returns ErrStoreUnavailable without running
//     fn, unless Config.FailOpen (not once a waiting duplicate has seen the
//     key in progress: fn is running elsewhere). A claim the store refuses as too large
//     returns its error matching contract.ErrTooLarge, not retryable, and
//     fn does not run even under FailOpen. When only the final Complete fails after fn
//     succeeded, Do returns fn's value and nil error (fn ran; the failure is
//     logged and counted as store_error); the key stays in progress until
//     its lease expires, so duplicates are still held off for a while. A
//     Complete the store has not answered within Lease (Complete and
//     Release run without ctx's cancellation, bounded by Lease) counts as
//     failed, although the store may have recorded the value after all.
//     When the store refuses the value as too large (contract.ErrTooLarge,
//     e.g. over a MemoryStore shard's byte budget, or over the room its
//     running claims leave), Do records instead that the call ran:
//     duplicates get a permanent KindConflict error with code
//     "idempotency.result_not_stored", never a second run. Should the
//     store refuse even that record as too large, the key's lease is
//     extended to Retention instead: duplicates get ErrInProgress until
//     the key would have expired anyway, again never a second run.
//
// A Do given the context of a running operation holding the same key in
// the same store — called from inside that operation's function (a Do's,
// the Middleware's, Dedup's or pgstore.DoTx's), directly or through other
// operations, e.g. a helper wrapped with the key of the
// handler calling it — returns an error matching ErrNestedCall at once,
// without calling fn or the store: its claim could only find that
// operation in progress, and under Wait it would wait for itself until its
// context ended. Calls that are not nested pay one ctx.Value for this.
// Stores are the same when == says so; a store == cannot compare (a
// struct holding a slice, used by value) is the same only for the executor
// given it.
//
// A nil ctx is taken as context.Background(), as in packages retry and
// breaker.
//
// key.Key must not be empty: Do returns an error matching ErrKeyInvalid
// (KindInvalid, not retryable) without calling fn or the store. Any other
// bytes are a key, of any length the store accepts (a MemoryStore refuses
// one over its per-shard budget with contract.ErrTooLarge). key.Scope may
// be empty: a single-caller service needs none.
//
// fingerprint identifies the payload, e.g. Fingerprint of the request.
//
// Replays from a MemoryStore with the JSONCodec return what decoding the
// stored JSON gives, as every store does, but decode it at most once:
//   - when T is plain — no pointers, slices, maps, interfaces, channels or
//     functions anywhere in it, and nothing in it with its own
//     UnmarshalJSON or UnmarshalText — the decoded value is kept next to
//     the record and later replays get copies of it;
//   - when T's JSON is moreover exact — every struct field exported, not
//     embedded, not dropped or re-encoded by its tag, named unlike its
//     siblings even ignoring case, nothing with its own MarshalJSON or
//     MarshalText, no json.Number — and the encoding replaced no invalid
//     UTF-8, fn's value is that decoded value already, so it is kept at
//     completion and not even the first replay decodes. Its strings are
//     copied then (one allocation): a string cut from a larger one would
//     otherwise hold all of it, beyond what MemoryConfig.MaxBytes counts.
//
// Other types, codecs and stores decode every replay. Either way every
// caller gets a value of its own.
func Do[T any](ctx context.Context, e *Executor, key Key, fingerprint string, fn func(context.Context) (T, error)) (T, error) {
	if key.Key == "" {
		var zero T
		return zero, errEmptyKey()
	}
	if ctx == nil {
		ctx = context.Background() // as retry.Do and breaker.Do: not a panic
	}
	var (
		v        T
		ran      bool
		seed     *memo // the replay value, when it is known without decoding (see isExact)
		encPanic any   // the Codec's panic, continued once the run is recorded
	)
	seeding := e.shared != nil && e.jsonCodec
	res, slot, replayed, err := e.run(ctx, key, fingerprint, false, &seed, func(ctx context.Context) (Result, bool, error) {
		ran = true
		var ferr error
		v, ferr = fn(ctx)
		if ferr != nil {
			// An error once the context ended (the caller went away or
			// timed out) is that end, not the operation's answer: it
			// releases the key whatever StoreError says, as the
			// Middleware does for an error response to a gone request.
			if e.storeError != nil && ctx.Err() == nil && e.storeError(ferr) {
				res, se := encodeError(ferr)
				if seeding && exactJSONBytes(res.Body) {
					bx := newBoxed(se)
					detachStrings(unsafe.Pointer(&bx.val), factsOf(reflect.TypeFor[storedError]()).strs)
					seed = &bx.m
				}
				return res, true, ferr
			}
			return Result{}, false, ferr
		}
		// A value that may become the replay value is boxed first and
		// encoded through a pointer into its box (the same JSON), which
		// saves boxing it a second time for the codec.
		var (
			b    []byte
			merr error
			bx   *boxed[T]
			f    facts // T's, when seeding: one lookup for exact and strs
		)
		if seeding {
			f = factsOf(reflect.TypeFor[T]())
		}
		if f.exact {
			bx = newBoxed(v)
			b, encPanic, merr = encode(e.codec, &bx.val)
		} else {
			b, encPanic, merr = encode(e.codec, v)
		}
		if merr != nil {
			// fn ran: releasing the key would let a retry run it again.
			// Record that it ran instead, as for a result too large to
			// store: duplicates get a permanent conflict.
			res, _ := encodeError(errResultNotStored("the result of the first call with this key could not be encoded; it was returned once"))
			return res, true, contract.Wrap(contract.KindInternal, "idempotency.do", merr).WithCode("idempotency.encode")
		}
		if bx != nil && exactJSONBytes(b) {
			detachStrings(unsafe.Pointer(&bx.val), f.strs)
			seed = &bx.m
		}
		return Result{Body: b}, true, nil
	})
	if encPanic != nil {
		panic(encPanic)
	}
	if ran || !replayed {
		return v, err
	}
	return replayValue[T](e, res, slot)
}

// errEmptyKey is Do's answer to a Key whose Key is empty. Claimed, it
// would be one record shared by every call made without a key (an unset
// field, a missing header read as ""): the first caller's result would be
// replayed to all the others.
func errEmptyKey() error {
	e := errFrom(ErrKeyInvalid, "idempotency.do", nil)
	e.Detail = "the idempotency key is empty (Key.Key)"
	return e
}

// encode marshals v with c. A panic of the codec (or of a MarshalJSON) is
// returned rather than left to unwind through the executor, which would
// release the key of an operation that ran: Do records that it ran, then
// continues the panic.
func encode(c Codec, v any) (b []byte, panicked any, err error) {
	defer func() {
		if panicked = recover(); panicked != nil {
			b, err = nil, errors.New("the codec panicked")
		}
	}()
	b, err = c.Marshal(v)
	return b, nil, err
}

// replayValue decodes a replayed result. With the JSON codec and the
// in-memory store, the decoded value of a plain type (see plainType) or a
// stored error is memoized next to the record (from its second replay on,
// see memoSlot), and later replays return a
// copy of it instead of decoding the same bytes again: json.Unmarshal of
// the same bytes into a zero plain value always yields the same value, and
// a copy of a plain value shares nothing mutable.
func replayValue[T any](e *Executor, res Result, slot *memoSlot) (T, error) {
	var zero T
	memoize := slot != nil && e.jsonCodec
	if res.StatusCode == storedErrorStatus {
		if memoize {
			if se, ok := unbox[storedError](slot); ok {
				return zero, se.err()
			}
		}
		se, err := decodeError(res.Body)
		if err != nil {
			return zero, err
		}
		if memoize && slot.secondMiss() {
			slot.set(box(se))
		}
		return zero, se.err()
	}
	if memoize {
		if v, ok := unbox[T](slot); ok {
			return v, nil
		}
	}
	var out T // declared here: it escapes to the codec, and the memo hit above must not pay for it
	if uerr := e.codec.Unmarshal(res.Body, &out); uerr != nil {
		return out, contract.Wrap(contract.KindInternal, "idempotency.do", uerr).WithCode("idempotency.decode")
	}
	if memoize && plainType(reflect.TypeFor[T]()) && slot.secondMiss() {
		slot.set(box(out))
	}
	return out, nil
}

var (
	typeFacts           sync.Map // reflect.Type → facts
	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	jsonMarshalerType   = reflect.TypeFor[json.Marshaler]()
	textMarshalerType   = reflect.TypeFor[encoding.TextMarshaler]()
	jsonNumberType      = reflect.TypeFor[json.Number]()
)

// facts are what replays need to know of a type, worked out once per type:
// for a plain type, strs holds the offsets of its strings.
type facts struct {
	plain, exact bool
	strs         []uintptr
}

func factsOf(t reflect.Type) facts {
	if f, ok := typeFacts.Load(t); ok {
		return f.(facts)
	}
	f := facts{plain: isPlain(t)}
	f.exact = f.plain && isExact(t)
	if f.plain {
		f.strs = stringOffsets(t, 0, nil)
	}
	typeFacts.Store(t, f)
	return f
}

// stringOffsets appends to offs the offsets of the strings in a value of
// the plain type t that starts at offset base.
func stringOffsets(t reflect.Type, base uintptr, offs []uintptr) []uintptr {
	switch t.Kind() {
	case reflect.String:
		offs = append(offs, base)
	case reflect.Array:
		if n := len(stringOffsets(t.Elem(), 0, nil)); n > 0 {
			for i := range t.Len() {
				offs = stringOffsets(t.Elem(), base+uintptr(i)*t.Elem().Size(), offs)
			}
		}
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			offs = stringOffsets(f.Type, base+f.Offset, offs)
		}
	}
	return offs
}

// detachStrings copies the strings of the plain value at p, at the offsets
// offs (its type's facts.strs), into one allocation of their total size,
// when it has any. A value memoized at
// completion is fn's own, whose strings may be cut from a much larger one
// (a response read whole, an id sliced from a document): kept as they
// are, they would hold all of it for as long as the record, unseen by the
// MemoryStore's MaxBytes, which counts the strings' own bytes.
func detachStrings(p unsafe.Pointer, offs []uintptr) {
	total := 0
	for _, o := range offs {
		total += len(*(*string)(unsafe.Add(p, o)))
	}
	if total == 0 {
		return
	}
	buf := make([]byte, 0, total)
	for _, o := range offs {
		sp := (*string)(unsafe.Add(p, o))
		if len(*sp) == 0 {
			continue
		}
		start := len(buf)
		buf = append(buf, *sp...)
		*sp = unsafe.String(&buf[start], len(*sp))
	}
}

// plainType reports whether a decoded value of type t may be memoized and
// handed to several callers as copies: t holds no pointer, slice, map,
// channel, function or interface, so a copy shares nothing mutable with
// the original (strings are immutable), and nothing in t decodes itself
// (UnmarshalJSON, UnmarshalText), since such a method need not be a pure
// function of the bytes.
func plainType(t reflect.Type) bool { return factsOf(t).plain }

func isPlain(t reflect.Type) bool {
	if pt := reflect.PointerTo(t); pt.Implements(jsonUnmarshalerType) || pt.Implements(textUnmarshalerType) {
		return false
	}
	switch t.Kind() {
	case reflect.Bool, reflect.String,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return true
	case reflect.Array:
		return isPlain(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if !isPlain(t.Field(i).Type) {
				return false
			}
		}
		return true
	}
	return false
}

// isExact reports (facts.exact, for a plain t) whether encoding/json
// decodes every encoding of a value of type t back to an equal value, provided its strings are valid
// UTF-8 (see exactJSONBytes): t is plain (see plainType); it and its parts
// neither encode nor decode themselves, nor are a json.Number (encoded as
// 0 when empty); every struct field is exported,
// not embedded, not dropped (`json:"-"`, ",omitzero" on a type with its
// own IsZero method, which may call a non-zero value zero, or ",omitempty"
// on a float, which drops -0), not re-encoded (",string"), tagged with a
// name encoding/json accepts, and its JSON name differs from its siblings' even ignoring case (decoding
// matches names case-insensitively). For such a t the value returned by
// the first call can be memoized as the replay value at completion: a
// replay from the in-memory store then returns exactly what a decoding
// store (Redis, PostgreSQL) would.
func isExact(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	if t.Implements(jsonMarshalerType) || pt.Implements(jsonMarshalerType) ||
		t.Implements(textMarshalerType) || pt.Implements(textMarshalerType) ||
		t == jsonNumberType { // encoding/json writes an empty json.Number as 0
		return false
	}
	switch t.Kind() {
	case reflect.Array:
		return isExact(t.Elem())
	case reflect.Struct:
		names := make(map[string]bool, t.NumField())
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() || f.Anonymous {
				return false
			}
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" && opts == "" {
				return false
			}
			if name != "" && !validJSONName(name) { // encoding/json would use f.Name, untagged
				return false
			}
			for o := range strings.SplitSeq(opts, ",") {
				// ",string" re-encodes the value; ",omitzero" drops a
				// value its own IsZero calls zero, which decodes to the
				// zero value whatever it held.
				if o == "string" || (o == "omitzero" && hasIsZero(f.Type)) ||
					(o == "omitempty" && (f.Type.Kind() == reflect.Float32 || f.Type.Kind() == reflect.Float64)) {
					return false
				}
			}
			if name == "" {
				name = f.Name
			}
			lower := strings.ToLower(name)
			if names[lower] {
				return false
			}
			names[lower] = true
			if !isExact(f.Type) {
				return false
			}
		}
	}
	return true
}

// isZeroer is the method encoding/json's omitzero consults.
type isZeroer interface{ IsZero() bool }

var isZeroerType = reflect.TypeFor[isZeroer]()

// hasIsZero reports whether t or *t has an IsZero() bool method.
func hasIsZero(t reflect.Type) bool {
	return t.Implements(isZeroerType) || reflect.PointerTo(t).Implements(isZeroerType)
}

// exactJSONBytes reports whether an encoding holds no replaced string:
// encoding/json writes invalid UTF-8 as \ufffd, which decodes to another
// string. (A string holding the six characters \ufffd is encoded with an
// escaped backslash and also matches: a false negative, never a false
// positive.)
func exactJSONBytes(b []byte) bool { return !bytes.Contains(b, replacementEscape) }

var replacementEscape = []byte(`\ufffd`)

// storedErrorStatus marks a Result holding a stored permanent error rather
// than a value (values have StatusCode 0).
const storedErrorStatus = 1

type storedError struct {
	Kind   string `json:"kind"`
	Code   string `json:"code,omitempty"`
	Detail string `json:"detail,omitempty"`
}

func encodeError(err error) (Result, storedError) {
	ce := contract.As(err)
	se := storedError{Kind: ce.Kind.String(), Code: ce.Code, Detail: ce.Detail}
	b, _ := json.Marshal(se)
	return Result{StatusCode: storedErrorStatus, Body: b}, se
}

func decodeError(b []byte) (storedError, error) {
	var se storedError
	if err := json.Unmarshal(b, &se); err != nil {
		return se, contract.Wrap(contract.KindInternal, "idempotency.do", err).WithCode("idempotency.decode")
	}
	return se, nil
}

// err returns a new *contract.Error for every replay: callers may modify it.
// It is never retryable, whatever its Kind: every retry within the
// retention period would get the same stored error back.
func (se storedError) err() error {
	k, _ := contract.ParseKind(se.Kind)
	return (&contract.Error{Kind: k, Code: se.Code, Detail: se.Detail, Op: "idempotency.replay"}).WithRetryable(false)
}

// work is an operation run under a claim: it returns the result to record,
// whether to record it (false: release the key) and its error.
type work func(ctx context.Context) (res Result, store bool, err error)

// run is the claim protocol shared by Do, Middleware and Dedup. It returns
// the replayed result (replayed true) with the record's memo slot when the
// store has one, or runs fn and returns what fn returned (fresh work, or
// fail-open), or a protocol error.
//
// fpBorrowed says fp's bytes are only lent for the call (the middleware
// hashes into a pooled buffer): a store keeping it must copy it.
func (e *Executor) run(ctx context.Context, key Key, fp string, fpBorrowed bool, seed **memo, fn work) (Result, *memoSlot, bool, error) {
	if fpBorrowed && e.shared == nil {
		fp = strings.Clone(fp) // a store of another kind may keep it
	}
	if o, ok := ctx.Value(owner.Key{}).(owner.Op); ok {
		if err := e.nested(ctx, o, key); err != nil {
			return Result{}, nil, false, err
		}
	}
	req := ClaimRequest{Key: key, Fingerprint: fp, Lease: e.lease, Retention: e.retention}
	delay := e.poll
	waited := false // a poll found the key in progress: it is running elsewhere
	for {
		var (
			c    Claim
			slot *memoSlot
			err  error
			sent time.Time // when the claim was sent, for a heartbeat that times the lease (see heartbeat.leaseEnd)
		)
		if e.shared != nil {
			c, slot, err = e.shared.claimShared(ctx, req, fpBorrowed)
		} else {
			if e.heartbeat > 0 {
				sent = e.clock.Now()
			}
			c, err = e.store.Claim(ctx, req)
		}
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return Result{}, nil, false, contract.Wrap(contract.KindOf(cerr), "idempotency.claim", err)
			}
			if errors.Is(err, contract.ErrTooLarge) {
				// Refused, not failed (a key and fingerprint over a
				// MemoryStore shard's budget): no retry can pass, and
				// running unprotected is not what FailOpen is for.
				e.obs.notePaced(ctx, pClaimTooLarge, key, slog.String("error", err.Error()))
				return Result{}, nil, false, err
			}
			if e.failOpen && !waited {
				e.obs.notePaced(ctx, pFailOpen, key, slog.String("error", err.Error()))
				res, _, ferr := fn(&unownedCtx{ctx}) // no claim: no token, not even an enclosing operation's
				return res, nil, false, ferr
			}
			e.obs.notePaced(ctx, pFailClosed, key, slog.String("error", err.Error()))
			return Result{}, nil, false, errFrom(ErrStoreUnavailable, "idempotency.claim", err).WithRetryAfter(time.Second)
		}
		e.obs.ended(ctx) // the store answered: the end of its failures is logged once
		switch c.Status {
		case Claimed:
			res, err := e.own(ctx, key, c.Token, sent, seed, fn)
			return res, nil, false, err
		case Completed:
			e.obs.note(ctx, oReplayed, slog.LevelInfo, "completed before: replaying the stored result", key)
			if c.Result == nil {
				return Result{}, nil, true, nil
			}
			return *c.Result, slot, true, nil
		case Mismatch:
			e.obs.note(ctx, oMismatch, slog.LevelWarn, "key reused with a different payload", key)
			return Result{}, nil, false, errFrom(ErrMismatch, "idempotency.claim", nil)
		case InProgress:
			remaining := max(c.LeaseRemaining, time.Millisecond)
			if e.duplicate == FailFast {
				e.obs.notePaced(ctx, pConflictFast, key)
				return Result{}, nil, false, errFrom(ErrInProgress, "idempotency.claim", nil).WithRetryAfter(remaining).WithRetryable(true)
			}
			waited = true
			wait := min(delay, remaining)
			if delay > e.maxPoll/2 {
				delay = e.maxPoll
			} else {
				delay *= 2
			}
			tick := make(chan struct{})
			t := e.clock.AfterFunc(wait, func() { close(tick) })
			select {
			case <-ctx.Done():
				t.Stop()
				e.obs.notePaced(ctx, pConflictWait, key)
				return Result{}, nil, false, errFrom(ErrInProgress, "idempotency.claim", context.Cause(ctx)).WithRetryAfter(remaining).WithRetryable(true)
			case <-tick:
			}
		default:
			e.obs.notePaced(ctx, pUnknownStatus, key)
			return Result{}, nil, false, errFrom(ErrStoreUnavailable, "idempotency.claim", errors.New("unknown claim status "+c.Status.String()))
		}
	}
}

// own runs fn while holding the lease, then completes or releases. sent
// is when the claim was sent, zero when the lease is not timed (see
// heartbeat.leaseEnd).
func (e *Executor) own(ctx context.Context, key Key, token uint64, sent time.Time, seed **memo, fn work) (Result, error) {
	finished := false
	defer func() {
		if !finished { // fn panicked
			bg, cancel := e.endCtx(ctx)
			defer cancel()
			// Counted and logged as a failed run is: it ran.
			switch rerr := e.store.Release(bg, key, token); {
			case rerr == nil:
				e.obs.note(ctx, oExecuted, slog.LevelWarn, "ran and panicked: key released for a retry", key)
			case errors.Is(rerr, ErrLeaseLost):
				e.obs.notePaced(ctx, pPanicLeaseLost, key)
			default:
				e.obs.notePaced(ctx, pPanicReleaseFailed, key, slog.String("error", rerr.Error()))
			}
		}
	}()

	var (
		runCtx context.Context
		hb     *heartbeat
	)
	if e.heartbeat > 0 {
		cctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		hb = e.startHeartbeat(cctx, key, token, sent, cancel)
		defer hb.stop()               // also on panic
		defer hb.oc.ended.Store(true) // tells nested the operation is over (also on panic)
		runCtx = &hb.oc
	} else {
		oc := &ownerCtx{Context: ctx, token: token, e: e, key: key}
		defer oc.ended.Store(true) // tells nested the operation is over (also on panic)
		runCtx = oc
	}
	res, store, ferr := fn(runCtx)
	finished = true
	if hb != nil {
		if hb.stop() {
			e.obs.notePaced(ctx, pLeaseLostRunning, key)
			return res, errFrom(ErrLeaseLost, "idempotency.renew", ferr)
		}
	}
	bg, cancel := e.endCtx(ctx)
	defer cancel()
	if store {
		var cerr error
		if e.shared != nil {
			var sv *memo
			if seed != nil {
				sv = *seed
			}
			cerr = e.shared.completeOwned(bg, key, token, res, sv)
		} else {
			cerr = e.store.Complete(bg, key, token, res)
		}
		if cerr != nil && errors.Is(cerr, contract.ErrTooLarge) && e.notStored != nil {
			// Record that it ran, so that duplicates get a conflict
			// rather than run it a second time.
			merr := e.store.Complete(bg, key, token, e.notStored())
			if merr == nil {
				e.obs.notePaced(ctx, pResultTooLarge, key, slog.String("error", cerr.Error()))
				return res, ferr
			}
			switch {
			case errors.Is(merr, ErrLeaseLost):
				cerr = merr // a store that checks the size before the owner: the lease was lost all the same
			case errors.Is(merr, contract.ErrTooLarge):
				// Not even that fits (a MemoryStore shard whose room
				// running claims hold, or one too small for the record).
				// Hold the key instead, for as long as the record would
				// have been kept: a lease of Retention, which takes no
				// more room, keeps duplicates off (in progress) until the
				// key would have expired anyway. Letting the lease run
				// out would let the next duplicate run it again.
				rerr := e.store.Renew(bg, key, token, e.retention)
				if rerr == nil {
					e.obs.notePaced(ctx, pResultHeld, key, slog.String("error", merr.Error()))
					return res, ferr
				}
				if errors.Is(rerr, ErrLeaseLost) {
					cerr = rerr
				}
			}
		}
		switch {
		case cerr == nil:
			e.obs.note(ctx, oExecuted, slog.LevelDebug, "ran and recorded the result", key)
		case errors.Is(cerr, ErrLeaseLost):
			e.obs.notePaced(ctx, pLeaseLostCompleting, key)
			return res, errFrom(ErrLeaseLost, "idempotency.complete", ferr)
		default:
			e.obs.notePaced(ctx, pCompleteFailed, key, slog.String("error", cerr.Error()))
		}
		return res, ferr
	}
	if rerr := e.store.Release(bg, key, token); rerr != nil {
		if errors.Is(rerr, ErrLeaseLost) {
			e.obs.notePaced(ctx, pLeaseLostReleasing, key)
		} else {
			e.obs.notePaced(ctx, pReleaseFailed, key, slog.String("error", rerr.Error()))
		}
	} else {
		e.obs.note(ctx, oExecuted, slog.LevelDebug, "ran and failed: key released for a retry", key)
	}
	return res, ferr
}

// endCtx returns the context of the store calls that end an operation,
// Complete and Release, and its cancel function.
//
// They must happen even when the caller's context ended — fn's work is
// done, and the record has to say so — so they run without its
// cancellation (a context that can never end is used as it is). But a
// store call is bounded only by its context (the Store contract; pgstore
// has no timeout of its own), and one that no store answers — a partition
// without a connection reset — must not hold the caller forever. So they
// are bounded by the lease: the lease the store granted at the claim or at
// the last renewal, which reached it before this call was sent, ends less
// than a lease after this call was sent, so a call still unanswered by
// then could only find the lease expired. The remaining lease as the
// heartbeat counts it would be a
// tighter bound, but not a safe one: it is counted from before the claim
// or renewal was sent, so it ends earlier than the store's lease and could
// abandon a call the store would still accept; and it is read from
// Config.Clock, which may be a test's fake clock, while a context's
// deadline runs on real time.
//
// The in-process store (e.shared) answers without waiting on anything but
// its lock: its calls are not bounded, which spares the fresh path a
// timer.
func (e *Executor) endCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx.Done() != nil {
		ctx = context.WithoutCancel(ctx)
	}
	if e.shared != nil {
		return ctx, noCancel
	}
	return context.WithTimeout(ctx, e.lease)
}

func noCancel() {}

// Heartbeats: an operation renews its lease every Heartbeat while it runs,
// the first time between Heartbeat/2 and Heartbeat after it started. Most
// operations end long before that, so they do not arm a timer each: they
// join the executor's list of young operations, which one shared timer,
// armed while the list is not empty, sweeps every Heartbeat/2. An
// operation still running at a sweep gets a timer of its own for its first
// renewal, Heartbeat/2 later, and from then on renews every Heartbeat. An
// operation that ends before a sweep costs a list insertion and removal.
//
// A renewal fails when the store does not answer it within Heartbeat (no
// later than the lease's end, see leaseEnd), and is retried at the next
// beat. The heartbeat times the lease itself: renewals that keep failing
// (a store this process cannot reach) must not leave the operation running
// past its lease, when another caller may claim the key and run it too.

// youngOps is an executor's list of running operations that have no
// renewal timer of their own yet.
type youngOps struct {
	mu    sync.Mutex
	head  *heartbeat
	armed bool   // the sweep timer is armed
	sweep func() // e.sweep, made once
}

// heartbeat renews a lease until stopped, and cancels the work's context
// when the lease is lost. It arms one timer at a time, and none while the
// operation is young: no goroutine waits between beats.
type heartbeat struct {
	oc     ownerCtx // the work's context, token, executor and key; renewals run without its cancellation. Allocated with the heartbeat
	cancel context.CancelCauseFunc

	// In e.young while listed; guarded by e.young.mu.
	prev, next *heartbeat
	listed     bool

	mu    sync.Mutex // held for a whole beat, so stop waits for one in flight
	timer Timer      // the renewal timer, once the operation is no longer young
	// leaseEnd is when the lease ends at the latest, as this process can
	// tell: the clock's reading taken before the claim, or the last renewal
	// that succeeded, was sent, plus the lease. The store granted the lease
	// after the request was sent, so its lease ends no earlier. Once the
	// clock reaches leaseEnd with no renewal answered, the lease may have
	// expired and the key been claimed by another caller: the lease counts
	// as lost. Timed only when tracked: the in-process store (e.shared) is
	// never out of reach, so its renewals fail only by finding the lease
	// lost, and timing its claims would cost every replay a clock reading.
	leaseEnd time.Time
	tracked  bool
	stopped  bool
	lost     bool
}

func (e *Executor) startHeartbeat(ctx context.Context, key Key, token uint64, sent time.Time, cancel context.CancelCauseFunc) *heartbeat {
	hb := &heartbeat{oc: ownerCtx{Context: ctx, token: token, e: e, key: key}, cancel: cancel}
	if e.shared == nil {
		hb.leaseEnd, hb.tracked = sent.Add(e.lease), true
	}
	y := &e.young
	y.mu.Lock()
	hb.listed, hb.next = true, y.head
	if y.head != nil {
		y.head.prev = hb
	}
	y.head = hb
	if !y.armed {
		y.armed = true
		e.clock.AfterFunc(e.heartbeat/2, y.sweep)
	}
	y.mu.Unlock()
	return hb
}

// sweep gives every young operation a renewal timer of its own: each has
// run for at most Heartbeat/2, so its first renewal, Heartbeat/2 from now,
// comes at most Heartbeat after it started (and, should its claim have
// taken most of the lease, no later than the lease's end).
func (e *Executor) sweep() {
	y := &e.young
	y.mu.Lock()
	list := y.head
	y.head, y.armed = nil, false
	for hb := list; hb != nil; hb = hb.next {
		hb.listed = false // from here on its links are only read, by this sweep
	}
	y.mu.Unlock()
	if list == nil {
		return
	}
	first := e.heartbeat - e.heartbeat/2
	var now time.Time
	if e.shared == nil {
		now = e.clock.Now()
	}
	for hb := list; hb != nil; hb = hb.next {
		hb.mu.Lock()
		if !hb.stopped {
			d := first
			if hb.tracked {
				d = max(min(d, hb.leaseEnd.Sub(now)), 0)
			}
			hb.timer = e.clock.AfterFunc(d, hb.beat)
		}
		hb.mu.Unlock()
	}
}

func (hb *heartbeat) beat() {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	if hb.stopped {
		return
	}
	e := hb.oc.e
	timeout := e.heartbeat
	var sent time.Time
	if hb.tracked {
		sent = e.clock.Now()
		left := hb.leaseEnd.Sub(sent)
		if left <= 0 {
			// Nothing renewed the lease in time (see leaseEnd).
			hb.lose(nil)
			return
		}
		timeout = min(timeout, left)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(hb.oc.Context), timeout)
	err := e.store.Renew(ctx, hb.oc.key, hb.oc.token, e.lease)
	cancel()
	switch {
	case err == nil:
		if hb.tracked {
			hb.leaseEnd = sent.Add(e.lease)
		}
	case errors.Is(err, ErrLeaseLost):
		hb.lose(nil)
		return
	}
	next := e.heartbeat
	if hb.tracked {
		left := hb.leaseEnd.Sub(e.clock.Now())
		if err != nil && left <= 0 {
			e.obs.notePaced(hb.oc.Context, pRenewLeaseOut, hb.oc.key, slog.String("error", err.Error()))
			hb.lose(err)
			return
		}
		// Beat again no later than the lease's end (after a renewal that
		// succeeded, the end is more than Lease-Heartbeat away): if the
		// store cannot be reached until then, the operation stops there.
		next = min(next, left)
	}
	if err != nil {
		// Retried at the next beat; the lease may still hold.
		e.obs.notePaced(hb.oc.Context, pRenewFailed, hb.oc.key, slog.String("error", err.Error()))
	}
	hb.timer = e.clock.AfterFunc(next, hb.beat)
}

// lose marks the lease lost and cancels the work's context with cause
// ErrLeaseLost (wrapping cause, the failure that left it unrenewed, if
// any). Must hold hb.mu.
func (hb *heartbeat) lose(cause error) {
	hb.lost = true
	hb.cancel(errFrom(ErrLeaseLost, "idempotency.renew", cause))
}

// stop ends the heartbeat, waiting for a beat in flight, and reports
// whether the lease was lost.
func (hb *heartbeat) stop() bool {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	if !hb.stopped {
		hb.stopped = true
		if hb.timer != nil {
			hb.timer.Stop()
		}
		y := &hb.oc.e.young
		y.mu.Lock()
		if hb.listed {
			if hb.prev != nil {
				hb.prev.next = hb.next
			} else {
				y.head = hb.next
			}
			if hb.next != nil {
				hb.next.prev = hb.prev
			}
			hb.listed, hb.prev, hb.next = false, nil, nil
		}
		y.mu.Unlock()
	}
	return hb.lost
}

// ownerCtx is the context of an operation run under a claim (an owner.Op):
// it carries the claim's fencing token for Token, and the executor and key
// for nested.
type ownerCtx struct {
	context.Context
	token uint64
	e     *Executor
	key   Key
	// ended is set once the operation returned. Not the end of Context:
	// that may come earlier (the caller left, the lease was lost) while
	// the operation still runs, or, without a heartbeat, never.
	ended atomic.Bool
}

func (c *ownerCtx) Value(key any) any {
	if _, ok := key.(owner.Key); ok {
		return c
	}
	return c.Context.Value(key)
}

// Token returns the claim's fencing token (owner.Op).
func (c *ownerCtx) Token() (uint64, bool) { return c.token, true }

// Parent returns the context the operation was given (owner.Op).
func (c *ownerCtx) Parent() context.Context { return c.Context }

// Holds reports whether the operation is still running and holds the key
// (scope, key) in store, an owner.StoreID (owner.Op): pgstore.DoTx asks,
// and so does nested.
func (c *ownerCtx) Holds(store any, scope, key string) bool {
	return c.key.Scope == scope && c.key.Key == key && c.e.storeID == store && c.running()
}

// running reports whether the operation has not returned yet.
func (c *ownerCtx) running() bool {
	return !c.ended.Load()
}

// nested returns ErrNestedCall when ctx is the context of a running
// operation (o, the innermost, or one enclosing it) holding key in e's
// store: a claim could only find that operation in progress, and under
// Wait it would wait for itself. Only calls made inside an operation get
// here (ctx carries an owner), so other calls pay one ctx.Value.
//
// The operations may be another executor's on the same store, or
// pgstore.DoTx's (owner.Op); one that has returned is over: the context
// outlived it, and a claim finds its outcome. A store == cannot compare
// is known as itself only by e (see owner.StoreID).
func (e *Executor) nested(ctx context.Context, o owner.Op, key Key) error {
	if !owner.Nested(o, e.storeID, key.Scope, key.Key) {
		return nil
	}
	e.obs.notePaced(ctx, pNested, key)
	return errFrom(ErrNestedCall, "idempotency.claim", nil)
}

// unownedCtx is the context of an operation run without a claim (failing
// open), an owner.Op that holds no key and has no token: it hides the
// token of an enclosing operation, which belongs to another key, but not
// the keys enclosing operations hold.
type unownedCtx struct{ context.Context }

func (c *unownedCtx) Value(key any) any {
	if _, ok := key.(owner.Key); ok {
		return c
	}
	return c.Context.Value(key)
}

func (c *unownedCtx) Parent() context.Context        { return c.Context }
func (c *unownedCtx) Holds(any, string, string) bool { return false }
func (c *unownedCtx) Token() (uint64, bool)          { return 0, false }

// Token returns the fencing token of the claim under which the operation
// receiving ctx runs (in Do's function, a Middleware-wrapped handler, a
// Dedup handler or pgstore.DoTx's function), and false outside one, e.g.
// when failing open, even inside another operation. Operations nested in
// one another (a DoTx inside a Do with another key) each see their own
// token, never an enclosing one's. Tokens increase strictly per key: pass
// the token to a downstream write ("update … where fence < $token") so the
// write of an owner whose lease expired and was re-claimed is rejected.
func Token(ctx context.Context) (uint64, bool) {
	if o, ok := ctx.Value(owner.Key{}).(owner.Op); ok {
		return o.Token()
	}
	return 0, false
}

// validJSONName reports whether encoding/json accepts s as a field name
// in a tag: letters, digits, and punctuation other than quotes, backslash
// and comma. For any other name it ignores the tag's name and uses the Go
// field's.
func validJSONName(s string) bool {
	for _, c := range s {
		if !unicode.IsLetter(c) && !unicode.IsDigit(c) && !strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c) {
			return false
		}
	}
	return true
}
