package redisstore

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/idempotency/internal/resultcodec"
	"github.com/sadpath/sadpath/internal/ctxcall"
	"github.com/sadpath/sadpath/internal/lograte"
	"github.com/sadpath/sadpath/logctx"
)

// Defaults applied to zero Config fields.
const (
	DefaultPrefix         = "sadpath:idem:"
	DefaultMaxResultBytes = 16 << 20

	// MaxMaxResultBytes is the largest Config.MaxResultBytes: Redis refuses
	// a bulk string over its proto-max-bulk-len (512 MB by default) with a
	// protocol error and drops the connection, so a larger result could
	// only fail as a store error, not as KindTooLarge (the executor then
	// cannot record that the key ran, and a duplicate runs it again). A MiB
	// is left for the script's other arguments.
	MaxMaxResultBytes = 512<<20 - 1<<20
)

// Config configures a Store. Zero fields take the documented defaults.
type Config struct {
	// Client is the Redis client: a *redis.Client, *redis.ClusterClient or
	// a Sentinel-backed failover client. Required: nil, or a nil pointer
	// such as a nil *redis.Client, is refused.
	Client redis.UniversalClient

	// Prefix starts every key the Store writes, so several stores (or
	// other data) can share one Redis. It must not contain '{' or '}',
	// which would break the hash tag. Default DefaultPrefix.
	Prefix string

	// MaxResultBytes bounds the encoded size of a completed result;
	// Complete refuses a larger one with a KindTooLarge error. Default
	// DefaultMaxResultBytes (16 MiB); at most MaxMaxResultBytes (a server
	// whose proto-max-bulk-len was lowered needs a MaxResultBytes below it).
	MaxResultBytes int

	// Logger receives store failures and refused stale owners, paced (see
	// Logging in the package documentation). Nil logs nothing. Raw keys
	// are never logged: records are named by the hash that also names
	// their Redis key.
	Logger *slog.Logger
}

// Store is an idempotency.Store on Redis. It is safe for concurrent use by
// many goroutines, and any number of Stores (in any number of processes)
// with the same Prefix share records.
type Store struct {
	client   redis.UniversalClient
	prefix   string
	maxBytes int
	log      *slog.Logger
	logs     *lograte.Set  // pacing of the failure lines: non-nil with log
	clock    lograte.Clock // times the pacing
	identity string        // StoreIdentity
}

var (
	_ idempotency.Store           = (*Store)(nil)
	_ idempotency.StoreIdentifier = (*Store)(nil)
)

// New returns a Store configured by cfg, or a KindInvalid error (code
// "config.invalid") naming the first bad field.
func New(cfg Config) (*Store, error) {
	if isNil(cfg.Client) {
		return nil, invalidConfig("Client", "must not be nil")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(cfg.Prefix, "{}") {
		return nil, invalidConfig("Prefix", fmt.Sprintf("must not contain '{' or '}', got %q", cfg.Prefix))
	}
	if len(cfg.Prefix) > 256 {
		return nil, invalidConfig("Prefix", fmt.Sprintf("must be at most 256 bytes, got %d", len(cfg.Prefix)))
	}
	switch {
	case cfg.MaxResultBytes == 0:
		cfg.MaxResultBytes = DefaultMaxResultBytes
	case cfg.MaxResultBytes < 0:
		return nil, invalidConfig("MaxResultBytes", fmt.Sprintf("must be >= 0, got %d", cfg.MaxResultBytes))
	case cfg.MaxResultBytes > MaxMaxResultBytes:
		return nil, invalidConfig("MaxResultBytes", fmt.Sprintf("must be at most %d (Redis's default 512 MB bulk string limit), got %d", MaxMaxResultBytes, cfg.MaxResultBytes))
	}
	s := &Store{client: cfg.Client, prefix: cfg.Prefix, maxBytes: cfg.MaxResultBytes, log: cfg.Logger,
		clock: lograte.System{}, identity: identity(cfg.Client, cfg.Prefix)}
	if s.log != nil {
		s.logs = lograte.NewSet(numPaced)
	}
	return s, nil
}

// StoreIdentity names the records s uses (idempotency.StoreIdentifier):
// its prefix, and the server and database of its client — a *redis.Client's
// network, address and DB, a *redis.ClusterClient's seed addresses — or,
// for any other client (a failover client, a Ring, a cluster given its
// slots by a function), the client value itself. Stores with the same
// prefix through the same address and database — one per handler, on one
// client or on several — have the same identity, and are one store to the
// check of nested calls (idempotency.ErrNestedCall). Stores reaching the
// server by different addresses (a host name and its IP, other cluster
// seeds) are not recognized as one: a call nested across them is not
// refused and meets the enclosing claim as any duplicate does.
func (s *Store) StoreIdentity() string {
	if s == nil {
		return ""
	}
	return s.identity
}

// identity returns StoreIdentity for prefix on the server and database c
// reaches.
func identity(c redis.UniversalClient, prefix string) string {
	var server string
	switch c := c.(type) {
	case *redis.Client:
		if o := c.Options(); o.Addr != "FailoverClient" { // a failover client's placeholder
			server = fmt.Sprintf("%s %q db %d", o.Network, o.Addr, o.DB)
		}
	case *redis.ClusterClient:
		if o := c.Options(); o.ClusterSlots == nil && len(o.Addrs) > 0 {
			server = fmt.Sprintf("cluster %q", slices.Sorted(slices.Values(o.Addrs)))
		}
	}
	if server == "" {
		if reflect.ValueOf(c).Kind() != reflect.Pointer {
			return "" // no identity: the Store is only itself
		}
		// Known only as itself: the client lives as long as the Store.
		server = fmt.Sprintf("client %T %p", c, c)
	}
	return fmt.Sprintf("redis %s prefix %q", server, prefix)
}

// isNil reports whether c is nil, or a nil pointer in the interface (a
// nil *redis.Client), which would panic at the first call.
func isNil(c redis.UniversalClient) bool {
	if c == nil {
		return true
	}
	v := reflect.ValueOf(c)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

func invalidConfig(field, why string) error {
	return contract.New(contract.KindInvalid, "redisstore.New", "Config."+field+": "+why).WithCode("config.invalid")
}

// recordID names a key by the SHA-256 of its length-prefixed scope and key:
// fixed size whatever the caller sends, no byte of it can escape the hash
// tag, and the raw key never reaches Redis or a log.
func recordID(k idempotency.Key) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(k.Scope)))])
	h.Write([]byte(k.Scope))
	h.Write([]byte(k.Key))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// redisKey is prefix + "{" + id + "}": the braces are a Redis Cluster hash
// tag, so every key of one record (today one hash) maps to one slot.
func (s *Store) redisKey(id string) string {
	return s.prefix + "{" + id + "}"
}

// maxDuration caps Lease and Retention: a longer one is taken as 100
// years. Without a cap a duration near math.MaxInt64 would overflow when
// rounded up to milliseconds (the record expired at once), and the lease
// deadline, twice the lease and the remaining lease read back as a
// time.Duration could overflow too; with it every value stays far inside
// the ranges of PEXPIRE, Lua numbers and time.Duration.
const maxDuration = 100 * 365 * 24 * time.Hour

// ms rounds d, capped at maxDuration, up to whole milliseconds, the
// resolution of Redis leases.
func ms(d time.Duration) int64 {
	d = min(d, maxDuration)
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// keyTTL keeps a record alive at least two leases past its lease start, so a
// key never expires while a lease on it is still running (a new claimer
// would win it while the owner still works).
func keyTTL(lease, retention int64) int64 {
	return max(retention, 2*lease)
}

// Claim claims req.Key in one round trip; see idempotency.Store.
func (s *Store) Claim(ctx context.Context, req idempotency.ClaimRequest) (idempotency.Claim, error) {
	const op = "redisstore.claim"
	if req.Lease <= 0 {
		return idempotency.Claim{}, contract.New(contract.KindInvalid, op, fmt.Sprintf("ClaimRequest.Lease: must be > 0, got %v", req.Lease))
	}
	if req.Retention < req.Lease {
		return idempotency.Claim{}, contract.New(contract.KindInvalid, op, fmt.Sprintf("ClaimRequest.Retention: must be >= Lease (%v), got %v", req.Lease, req.Retention))
	}
	id := recordID(req.Key)
	lease, retention := ms(req.Lease), ms(req.Retention)
	v, err := s.run(ctx, claimScript, id,
		req.Fingerprint, lease, retention, keyTTL(lease, retention), newNonce()).Slice()
	if err != nil {
		return idempotency.Claim{}, s.fail(ctx, op, id, err)
	}
	s.answered(ctx)
	if len(v) < 3 {
		return idempotency.Claim{}, s.fail(ctx, op, id, errReply)
	}
	status, err1 := toInt(v[0])
	token, err2 := toToken(v[1])
	left, err3 := toInt(v[2])
	if err := errors.Join(err1, err2, err3); err != nil || status < 1 || status > 4 {
		return idempotency.Claim{}, s.fail(ctx, op, id, errReply)
	}
	c := idempotency.Claim{Status: idempotency.ClaimStatus(status), Token: token}
	switch c.Status {
	case idempotency.InProgress:
		c.LeaseRemaining = time.Duration(left) * time.Millisecond
	case idempotency.Completed:
		if len(v) < 4 {
			return idempotency.Claim{}, s.fail(ctx, op, id, errReply)
		}
		r, err := toResult(v[3])
		if err != nil {
			return idempotency.Claim{}, s.fail(ctx, op, id, err)
		}
		c.Result = &r
	}
	return c, nil
}

// Complete stores result for the owner of token, in one round trip.
func (s *Store) Complete(ctx context.Context, key idempotency.Key, token uint64, result idempotency.Result) error {
	const op = "redisstore.complete"
	if why := resultcodec.Check(result); why != "" {
		return contract.New(contract.KindInvalid, op, why)
	}
	enc := encodeResult(result)
	if len(enc) > s.maxBytes {
		return contract.New(contract.KindTooLarge, op, fmt.Sprintf("result is %d bytes encoded, over the limit of %d", len(enc), s.maxBytes))
	}
	id := recordID(key)
	n, err := s.run(ctx, completeScript, id, strconv.FormatUint(token, 10), enc, newNonce()).Int64()
	return s.owned(ctx, op, id, n, err)
}

// Release makes the key claimable again, in one round trip.
func (s *Store) Release(ctx context.Context, key idempotency.Key, token uint64) error {
	const op = "redisstore.release"
	id := recordID(key)
	n, err := s.run(ctx, releaseScript, id, strconv.FormatUint(token, 10), newNonce()).Int64()
	return s.owned(ctx, op, id, n, err)
}

// Renew extends the owner's lease to lease from now (server time), in one
// round trip.
func (s *Store) Renew(ctx context.Context, key idempotency.Key, token uint64, lease time.Duration) error {
	const op = "redisstore.renew"
	if lease <= 0 {
		return contract.New(contract.KindInvalid, op, fmt.Sprintf("lease: must be > 0, got %v", lease))
	}
	id := recordID(key)
	l := ms(lease)
	n, err := s.run(ctx, renewScript, id, strconv.FormatUint(token, 10), l, 2*l).Int64()
	return s.owned(ctx, op, id, n, err)
}

// Get returns the record of key in one round trip, or an error matching
// idempotency.ErrNotFound.
func (s *Store) Get(ctx context.Context, key idempotency.Key) (idempotency.Record, error) {
	const op = "redisstore.get"
	id := recordID(key)
	v, err := s.run(ctx, getScript, id).Slice()
	if errors.Is(err, redis.Nil) {
		return idempotency.Record{}, idempotency.ErrNotFound
	}
	if err != nil {
		return idempotency.Record{}, s.fail(ctx, op, id, err)
	}
	s.answered(ctx)
	if len(v) < 4 {
		return idempotency.Record{}, s.fail(ctx, op, id, errReply)
	}
	state, err1 := toInt(v[0])
	token, err2 := toToken(v[1])
	left, err3 := toInt(v[2])
	fp, ok := v[3].(string)
	if err := errors.Join(err1, err2, err3); err != nil || !ok || state < 1 || state > 3 {
		return idempotency.Record{}, s.fail(ctx, op, id, errReply)
	}
	rec := idempotency.Record{Key: key, Fingerprint: fp, State: idempotency.RecordState(state), Token: token}
	switch rec.State {
	case idempotency.StateInProgress:
		rec.LeaseRemaining = time.Duration(left) * time.Millisecond
	case idempotency.StateCompleted:
		if len(v) < 5 {
			return idempotency.Record{}, s.fail(ctx, op, id, errReply)
		}
		r, err := toResult(v[4])
		if err != nil {
			return idempotency.Record{}, s.fail(ctx, op, id, err)
		}
		rec.Result = &r
	}
	return rec, nil
}

// run runs script on the record id, with args.
//
// go-redis applies a context's deadline to socket reads only with
// ContextTimeoutEnabled, and no cancel at all while it waits for a reply: a
// call would wait out ReadTimeout (or forever) after its caller gave up.
// So when ctx can end, the script runs in a goroutine and run returns
// ctx.Err() as soon as ctx is done, abandoning the command: it may still
// run on the server (the outcome is ambiguous, as after a timeout), and the
// goroutine ends on its own when Redis answers, the read times out or the
// connection fails, leaving its result in a buffered channel nobody reads.
// A context that never ends costs no goroutine.
func (s *Store) run(ctx context.Context, script *redis.Script, id string, args ...any) *redis.Cmd {
	keys := []string{s.redisKey(id)}
	// A panic in the client (a hook, a tracer) belongs to the caller, as it
	// would in a synchronous call, where the caller's recover (net/http's,
	// the executor's) sees it: ctxcall hands it back.
	return ctxcall.Run(ctx, func() *redis.Cmd {
		return script.Run(ctx, s.client, keys, args...)
	}, func(err error) *redis.Cmd {
		cmd := redis.NewCmd(ctx)
		cmd.SetErr(err)
		return cmd
	})
}

// newNonce returns 128 random bits, hex-encoded: a value no other call
// sends, which the scripts store with the change a call makes so that a run
// re-sent by go-redis after a lost reply recognises its own (see the field
// list in scripts.go). It needs to be unique, not secret: math/rand/v2's
// top-level generator (ChaCha8, seeded from the operating system) is enough.
func newNonce() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	return hex.EncodeToString(b[:])
}

// owned turns a compare-and-set script's answer into nil or ErrLeaseLost.
func (s *Store) owned(ctx context.Context, op, id string, n int64, err error) error {
	if err != nil {
		return s.fail(ctx, op, id, err)
	}
	s.answered(ctx)
	if n != 1 {
		if s.log != nil {
			if level, k := s.logs.Occur(pStaleOwner, s.clock.Now(), slog.LevelInfo); s.log.Enabled(ctx, level) {
				logctx.Decision(ctx, s.log, level, "refused stale owner", "lease lost: token not current or lease expired", lograte.Suppressed([]slog.Attr{
					slog.String(logctx.KeyDependency, "redis"), slog.String("store_op", op), slog.String("key_hash", id),
					slog.String(idempotency.KeyHash, shortHash(id))}, k)...)
			}
		}
		return idempotency.ErrLeaseLost
	}
	return nil
}

// fail maps err to a contract error and logs it, paced.
func (s *Store) fail(ctx context.Context, op, id string, err error) error {
	e := mapError(op, err)
	if s.log != nil && e.Kind != contract.KindCanceled {
		if level, k := s.logs.Occur(pFailed, s.clock.Now(), slog.LevelWarn); s.log.Enabled(ctx, level) {
			logctx.Decision(ctx, s.log, level, "idempotency store call failed", e.Kind.String(), lograte.Suppressed([]slog.Attr{
				slog.String(logctx.KeyDependency, "redis"), slog.String("store_op", op),
				slog.String("key_hash", id), slog.String(idempotency.KeyHash, shortHash(id)),
				slog.String("kind", e.Kind.String()), slog.Any("error", err)}, k)...)
		}
	}
	return e
}

// The decisions a Redis that is down or slow repeats on every call: their
// lines are paced (see package lograte), at most a few every 10s.
const (
	pFailed = iota
	pStaleOwner
	numPaced
)

// answered logs, once each, the end of the paced decisions that have not
// occurred for 10s, on a call Redis answered. It costs an atomic load
// while none is going on.
func (s *Store) answered(ctx context.Context) {
	if s.logs != nil && s.logs.Active() {
		s.logs.LogEnds(ctx, s.log, s.clock, pacedEnd, slog.String(logctx.KeyDependency, "redis"))
	}
}

func pacedEnd(p int) (string, string) {
	if p == pFailed {
		return "idempotency store calls succeed again", lograte.EndReason
	}
	return "stale owners no longer refused", lograte.EndReason
}

// shortHash returns, for a record id, the hash the idempotency executor
// logs for its key (idempotency.KeyHash: 12 hex digits of the same
// SHA-256), so that a store line and the executor's line about one key
// carry the same value.
func shortHash(id string) string {
	var sum [sha256.Size]byte
	if n, err := base64.RawURLEncoding.Decode(sum[:], []byte(id)); err != nil || n != len(sum) {
		return ""
	}
	return hex.EncodeToString(sum[:6])
}

var errReply = errors.New("redisstore: unexpected script reply")

func toInt(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case string:
		return strconv.ParseInt(x, 10, 64)
	}
	return 0, errReply
}

// toToken reads a fencing token: an integer reply (a fresh claim) or the
// decimal string stored in the hash, never negative.
func toToken(v any) (uint64, error) {
	switch x := v.(type) {
	case int64:
		if x < 0 {
			return 0, errReply
		}
		return uint64(x), nil
	case string:
		return strconv.ParseUint(x, 10, 64)
	}
	return 0, errReply
}

func toResult(v any) (idempotency.Result, error) {
	s, ok := v.(string)
	if !ok {
		return idempotency.Result{}, errCorrupt
	}
	return decodeResult([]byte(s))
}
