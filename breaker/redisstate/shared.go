package redisstate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"reflect"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/sadpath/sadpath/breaker"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/internal/ctxcall"
	"github.com/sadpath/sadpath/logctx"
)

// Defaults used for the zero fields of Config.
const (
	DefaultPrefix       = "sadpath:breaker:"
	DefaultSyncInterval = time.Second
	DefaultTimeout      = 500 * time.Millisecond
)

// Config configures a Shared breaker.
type Config struct {
	// Client is the Redis client. Required: nil, or a nil pointer such as a
	// nil *redis.Client, is refused. Shared never closes it.
	Client redis.UniversalClient
	// Breaker configures the local breaker (see breaker.Config). Its
	// OnStateChange and OnCall hooks are kept and called first. Its Name
	// names the shared state: instances with the same Prefix and Name share
	// it. Its Window, Buckets, MinCalls and FailureRatio also apply to the
	// shared window.
	Breaker breaker.Config
	// Prefix starts every Redis key and channel. It must not contain '{' or
	// '}', which would break the {name} hash tag that keeps a breaker's keys
	// in one Redis Cluster slot. Default DefaultPrefix.
	Prefix string
	// SyncInterval is how often local counts are merged into the shared
	// window and the shared state is re-read; a merge also starts early
	// once MinCalls calls were counted locally since the last one.
	// Default DefaultSyncInterval.
	SyncInterval time.Duration
	// Timeout bounds every Redis operation. Default DefaultTimeout.
	Timeout time.Duration
	// InstanceID identifies this instance in messages and logs. Default: random.
	InstanceID string
}

// Shared is a breaker.Breaker whose trips and recoveries are shared through
// Redis with every instance using the same name.
//
// Calls never touch Redis: they run through the local breaker, which counts
// them. In the background, Shared merges the local counts into a rolling
// window in Redis (one round trip per SyncInterval, or per MinCalls calls
// when busier) and trips every instance when the shared failure rate is
// reached; when the local breaker opens or closes, Shared publishes it at once
// and the other instances follow (open for the same remaining delay; on a
// close they probe). When Redis is unreachable the local breaker keeps
// working alone (fail open); calls never wait for Redis.
//
// Build one with New and stop it with Close. Safe for concurrent use.
type Shared struct {
	b       *breaker.Breaker
	client  redis.UniversalClient
	base    string
	channel string
	id      string
	timeout time.Duration
	every   time.Duration
	log     *slog.Logger

	bucketMs, buckets, minCalls int64
	ratio                       float64
	openMs                      int64

	succ, fail atomic.Int64 // counted since the last merge
	lastEpoch  atomic.Int64 // newest shared epoch applied or published
	healthy    atomic.Bool
	merged     atomic.Bool // a merge succeeded: lastEpoch is what the instance saw of the shared state

	// recentMu guards recent, the last epochs recorded in lastEpoch (a
	// ring, recentN written so far): a merge that finds the stored state
	// older than lastEpoch tells by it a state the instance saw and has
	// since superseded from a change it never saw (see resetEpoch).
	recentMu sync.Mutex
	recent   [recentEpochs]int64
	recentN  int

	// applyMu serialises applying a shared change to the local breaker, from
	// a message (apply) or a merge (sync): of two concurrent changes the
	// newer is applied last.
	applyMu sync.Mutex
	// peerOpen is the epoch of the last peer trip applied from a message,
	// until a merge finds it (or a newer change) stored; 0: none. Written
	// under applyMu.
	peerOpen atomic.Int64

	// The newest local change not published yet: a newer one replaces it,
	// so while Redis is slow the changes in between are skipped and the
	// newest state is the one shared, never dropped for an older one.
	pubMu   sync.Mutex
	pubNext change
	pubSet  bool
	pubSig  chan struct{} // 1-buffered: pubNext is set

	published int64 // epoch of the last change this instance published; the loop's own
	// stored is the newest epoch this instance read from Redis (a merge) or
	// wrote there (a publish), lowered by a reset: when it is the newest
	// the instance saw, Redis had that change. Written by the loop.
	stored atomic.Int64

	kick chan struct{}
	quit chan struct{}
	ctx  context.Context // canceled by Close: aborts a Redis call in flight
	stop context.CancelFunc
	wg   sync.WaitGroup
	ps   *redis.PubSub
	once sync.Once
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

// New returns a Shared breaker and starts its background work (a merge
// loop and a subscription). It does not wait for Redis: when Redis is down
// the breaker starts local. New returns a *contract.Error of KindInvalid
// naming the first bad field.
func New(cfg Config) (*Shared, error) {
	const op = "redisstate"
	bad := func(field, rule string, got any) error {
		e := contract.New(contract.KindInvalid, op, fmt.Sprintf("%s: %s, got %v", field, rule, got)).
			WithCode(breaker.CodeConfigInvalid)
		e.Fields = []contract.FieldError{{Name: field, Reason: rule}}
		return e
	}
	if isNil(cfg.Client) {
		return nil, bad("Config.Client", "must not be nil", nil)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(cfg.Prefix, "{}") {
		return nil, bad("Config.Prefix", "must not contain '{' or '}'", strconv.Quote(cfg.Prefix))
	}
	if cfg.SyncInterval < 0 {
		return nil, bad("Config.SyncInterval", "must be >= 0", cfg.SyncInterval)
	}
	if cfg.SyncInterval == 0 {
		cfg.SyncInterval = DefaultSyncInterval
	}
	if cfg.Timeout < 0 {
		return nil, bad("Config.Timeout", "must be >= 0", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.InstanceID == "" {
		var r [6]byte
		_, _ = rand.Read(r[:])
		cfg.InstanceID = hex.EncodeToString(r[:])
	}
	if len(cfg.InstanceID) > maxInstanceID {
		return nil, bad("Config.InstanceID", "must be at most 128 bytes", len(cfg.InstanceID))
	}
	for _, c := range cfg.InstanceID {
		if c == '|' || c == '\n' {
			return nil, bad("Config.InstanceID", "must not contain '|' or newlines", cfg.InstanceID)
		}
	}
	s := &Shared{
		client:  cfg.Client,
		id:      cfg.InstanceID,
		timeout: cfg.Timeout,
		every:   cfg.SyncInterval,
		log:     cfg.Breaker.Logger,
		kick:    make(chan struct{}, 1),
		pubSig:  make(chan struct{}, 1),
		quit:    make(chan struct{}),
	}
	bc := cfg.Breaker
	userChange, userCall := bc.OnStateChange, bc.OnCall
	// The user's hooks run first; Shared's part is deferred so that it runs
	// even when they panic (or call runtime.Goexit): a trip is still
	// shared, counts are still dropped or counted.
	bc.OnStateChange = func(ctx context.Context, t breaker.Transition) {
		defer s.onLocalChange(t)
		if userChange != nil {
			userChange(ctx, t)
		}
	}
	bc.OnCall = func(ctx context.Context, o breaker.Outcome) {
		defer s.onCall(o)
		if userCall != nil {
			userCall(ctx, o)
		}
	}
	b, err := breaker.New(bc)
	if err != nil {
		return nil, err
	}
	s.b = b
	s.base = cfg.Prefix + "{" + hashTag(b.Name()) + "}"
	s.channel = s.base + ":events"
	// The local breaker validated these; read them back with its defaults.
	window, nb := bc.Window, bc.Buckets
	if window == 0 {
		window = breaker.DefaultWindow
	}
	if nb == 0 {
		nb = breaker.DefaultBuckets
	}
	s.buckets = int64(nb)
	s.bucketMs = max(1, (window / time.Duration(nb)).Milliseconds())
	s.minCalls = int64(bc.MinCalls)
	if s.minCalls == 0 {
		s.minCalls = breaker.DefaultMinCalls
	}
	s.ratio = bc.FailureRatio
	if s.ratio == 0 {
		s.ratio = breaker.DefaultFailureRatio
	}
	ot := bc.OpenTimeout
	if ot == 0 {
		ot = breaker.DefaultOpenTimeout
	}
	s.openMs = max(1, ot.Milliseconds())
	s.healthy.Store(true)
	s.ctx, s.stop = context.WithCancel(context.Background())

	s.ps = s.client.Subscribe(context.Background()) // no channel yet: no network in New
	s.wg.Add(2)
	go s.listen()
	go s.loop()
	return s, nil
}

// hashTag returns what goes between the braces of a breaker's keys for the
// breaker named name. Redis Cluster hashes the text between the first '{'
// and the first '}' after it, and a key whole when that text is empty: a
// name starting with '}' would close the tag at once, and spread the
// breaker's keys over slots (its scripts then fail on every node). Such a
// name gets a 0xff byte in front, which no name (valid UTF-8) starts with,
// so the keys of two names never meet. Other names are used as they are: a
// '{' or a later '}' in them leaves a tag that is not empty and is the same
// for all of a breaker's keys.
func hashTag(name string) string {
	if strings.HasPrefix(name, "}") {
		return "\xff" + name
	}
	return name
}

// Breaker returns the local breaker; call through it with breaker.Do.
func (s *Shared) Breaker() *breaker.Breaker { return s.b }

// InstanceID returns the id this instance publishes under.
func (s *Shared) InstanceID() string { return s.id }

// Close stops the background work. It does not wait for a merge, publish
// or subscription in flight on a stalled Redis: that command is abandoned,
// and closing the subscription waits at most Config.Timeout. The local
// breaker keeps working, alone.
func (s *Shared) Close() error {
	var err error
	s.once.Do(func() {
		close(s.quit)
		s.stop()
		// go-redis holds the subscription's lock while it dials and waits
		// for the handshake's reply, ignoring the context: on a stalled
		// Redis ps.Close waits for that read. It is bounded by Timeout,
		// like every Redis operation, then left to end on its own.
		closed := make(chan error, 1)
		go func() { closed <- s.ps.Close() }()
		s.wg.Wait()
		t := time.NewTimer(s.timeout)
		defer t.Stop()
		select {
		case err = <-closed:
		case <-t.C:
		}
	})
	return err
}

const peerPrefix = "shared: "

// maxInstanceID bounds Config.InstanceID, and an origin read from Redis or a
// message before it is logged.
const maxInstanceID = 128

// originText returns an instance id read from Redis or from a message, fit
// to log: at most maxInstanceID bytes, anything but printable characters
// replaced by '?'; "" when there is none.
func originText(origin string) string {
	if len(origin) > maxInstanceID {
		origin = origin[:maxInstanceID] + "…"
	}
	clean := true
	for _, r := range origin {
		if r == utf8.RuneError || r == '|' || !unicode.IsPrint(r) {
			clean = false
			break
		}
	}
	if clean {
		return origin
	}
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || r == '|' || !unicode.IsPrint(r) {
			return '?'
		}
		return r
	}, origin)
}

// peerTripReason is the reason of a peer's trip applied locally.
func peerTripReason(origin string) string {
	if o := originText(origin); o != "" {
		return peerPrefix + "tripped by instance " + o
	}
	return peerPrefix + "tripped by another instance"
}

func (s *Shared) onCall(o breaker.Outcome) {
	var n int64
	switch o {
	case breaker.Success:
		n = s.succ.Add(1) + s.fail.Load()
	case breaker.Failure, breaker.Slow:
		n = s.fail.Add(1) + s.succ.Load()
	default:
		return
	}
	// >=, not ==: two calls ending at once can both count past MinCalls
	// (each adds its own outcome, then reads the other's count after the
	// other's add). The kick holds one: the send is a cheap no-op while a
	// merge is already asked for.
	if n >= s.minCalls {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// onLocalChange queues a local open or close for publishing, replacing one
// not published yet; transitions applied from the shared state are not
// echoed back, nor are an operator's Reset (the breaker goes back to its own
// state, which is nothing new to share). When the local breaker opens, the
// counts not merged yet are dropped: they are from before the trip, which
// clears the shared window (openScript, syncScript), and merged after it
// they would count against the recovery.
func (s *Shared) onLocalChange(t breaker.Transition) {
	if t.To == breaker.StateOpen {
		s.succ.Store(0)
		s.fail.Store(0)
	}
	if len(t.Reason) >= len(peerPrefix) && t.Reason[:len(peerPrefix)] == peerPrefix {
		return
	}
	if t.From == breaker.StateForcedOpen || t.From == breaker.StateForcedClosed {
		return
	}
	if t.To != breaker.StateOpen && !(t.To == breaker.StateClosed && t.From == breaker.StateHalfOpen) {
		return
	}
	s.pubMu.Lock()
	s.pubNext, s.pubSet = change{t: t, seen: s.lastEpoch.Load()}, true
	s.pubMu.Unlock()
	select {
	case s.pubSig <- struct{}{}:
	default: // a signal is pending: the loop publishes pubNext, now t
	}
}

// change is a local change to publish, with the newest shared epoch the
// instance had seen when it happened.
type change struct {
	t     breaker.Transition
	seen  int64
	retry bool // its publish failed: retried at the next tick (see retryLater)
}

// retryLater queues c again after its publish failed (Redis down or slow),
// unless a newer change replaced it: it is retried at the next tick, so a
// trip made during a Redis outage still reaches the other instances once
// Redis is back. No signal: the loop does not spin while Redis is down.
func (s *Shared) retryLater(c change) {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	if !s.pubSet {
		c.retry = true
		s.pubNext, s.pubSet = c, true
	}
}

// nextPublish takes the local change to publish, if any.
func (s *Shared) nextPublish() (change, bool) {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	c, ok := s.pubNext, s.pubSet
	s.pubNext, s.pubSet = change{}, false
	return c, ok
}

func (s *Shared) loop() {
	defer s.wg.Done()
	tick := time.NewTicker(s.every)
	defer tick.Stop()
	s.guard(s.sync)
	for {
		select {
		case <-s.quit:
			return
		case <-s.pubSig:
			s.guard(s.publishNext)
		case <-s.kick:
			s.guard(s.sync)
		case <-tick.C:
			s.guard(s.publishNext) // a change whose publish failed
			s.guard(s.sync)
		}
	}
}

// guard runs f on one of Shared's goroutines (merge loop, subscription).
// Applying a shared change runs the user's OnStateChange hook and Logger
// there; a panic in them must not crash the process — every instance gets
// the same message, so the whole fleet would crash at once. The panic is
// logged, and the goroutine goes on. (On a caller's goroutine the panic
// reaches the caller, as package breaker documents.)
func (s *Shared) guard(f func()) {
	returned := false
	defer func() {
		if returned {
			return
		}
		if r := recover(); r != nil {
			s.logHookFailure(fmt.Sprintf("panic: %v", r), debug.Stack())
			return
		}
		// runtime.Goexit: it cannot be stopped, and ends the goroutine.
		s.logHookFailure("runtime.Goexit: the shared state is no longer followed", nil)
	}()
	f()
	returned = true
}

// logHookFailure logs a hook's panic or Goexit on a Shared goroutine, with
// the breaker's name; the Logger may be what panicked, so a panic here is
// dropped.
func (s *Shared) logHookFailure(what string, stack []byte) {
	defer func() { _ = recover() }()
	const maxReason = 512
	if len(what) > maxReason {
		what = strings.ToValidUTF8(what[:maxReason], "") + "…"
	}
	attrs := []slog.Attr{slog.String(logctx.KeyDependency, s.b.Name()), slog.String("instance", s.id)}
	if stack != nil {
		attrs = append(attrs, slog.String("stack", string(stack)))
	}
	logctx.Decision(s.bgCtx(), s.log, slog.LevelError, "breaker hook failed in the background",
		"OnStateChange or Logger, applying the shared state: "+what, attrs...)
}

// run runs script on the breaker's keys and returns as soon as ctx is done.
// go-redis honours no cancel while it waits for a reply, and no deadline
// either without ContextTimeoutEnabled: on a stalled Redis a merge or a
// publish would outlast Config.Timeout by ReadTimeout per attempt (about
// 10 s with the defaults, forever with ReadTimeout -1), and Close, which
// waits for them, with it. The abandoned command ends on its own when Redis
// answers or the read fails, leaving its result in a buffered channel. A
// panic in the client (a hook) is handed back to the loop, whose guard
// logs it; after the loop left, it is dropped with the call.
func (s *Shared) run(ctx context.Context, script *redis.Script, args ...any) *redis.Cmd {
	return ctxcall.Run(ctx, func() *redis.Cmd {
		return script.Run(ctx, s.client, []string{s.base}, args...)
	}, canceledCmd(ctx))
}

// canceledCmd is the answer of a call abandoned when ctx ended.
func canceledCmd(ctx context.Context) func(error) *redis.Cmd {
	return func(err error) *redis.Cmd {
		cmd := redis.NewCmd(ctx)
		cmd.SetErr(err)
		return cmd
	}
}

func (s *Shared) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, s.timeout)
}

func (s *Shared) bgCtx() context.Context {
	return logctx.WithOperation(context.Background(), "breaker.redisstate")
}

// health logs the switch between shared and local operation, once each way.
// An error after Close began is the call Close canceled, not Redis failing:
// it is not logged.
func (s *Shared) health(err error) {
	if err != nil && s.ctx.Err() != nil {
		return
	}
	if err == nil {
		if !s.healthy.Swap(true) {
			logctx.Decision(s.bgCtx(), s.log, slog.LevelInfo, "breaker shared state restored",
				"redis reachable again", slog.String(logctx.KeyDependency, s.b.Name()))
		}
		return
	}
	if s.healthy.Swap(false) {
		logctx.Decision(s.bgCtx(), s.log, slog.LevelWarn, "breaker running locally: shared state unavailable",
			err.Error(), slog.String(logctx.KeyDependency, s.b.Name()))
	}
}

// publishNext publishes the pending local change, if any, and queues it
// again when that fails.
func (s *Shared) publishNext() {
	c, ok := s.nextPublish()
	if !ok {
		return
	}
	if err := s.publish(c); err != nil && s.ctx.Err() == nil {
		s.retryLater(c)
	}
}

// publish writes a local change to the shared state and publishes it. An
// open always applies (keeping a later deadline stored). A close applies
// only when the shared state has not changed since the instance saw it (or
// since its own last change, published after): a close that reaches Redis
// after a peer's newer trip must not undo it. Then nothing is published, and
// the instance follows the peer's trip from its message or the next merge.
//
// A retried open (see retryLater) shares what is left of the local open
// delay, and is dropped when the breaker is no longer open or the instance
// has seen a newer shared change since: that change is the news now.
func (s *Shared) publish(c change) error {
	ctx, cancel := s.opCtx()
	defer cancel()
	var (
		epoch int64
		err   error
	)
	if c.t.To == breaker.StateOpen {
		openFor := c.t.OpenFor
		if c.retry {
			if s.b.State() != breaker.StateOpen || s.lastEpoch.Load() > c.seen {
				return nil
			}
			openFor = s.b.RetryAfter()
		}
		ms := max(1, openFor.Milliseconds())
		epoch, err = s.run(ctx, openScript, ms, s.id, s.bucketMs, s.buckets).Int64()
	} else {
		// The instance's own last change counts as seen, unless a merge has
		// found Redis without it since (see resetEpoch): lastEpoch does not
		// fall below it otherwise.
		seen := c.seen
		if s.published <= s.lastEpoch.Load() {
			seen = max(seen, s.published)
		}
		epoch, err = s.run(ctx, closeScript, s.id, seen).Int64()
	}
	s.health(err)
	if err == nil && epoch > 0 {
		s.published = epoch
		s.stored.Store(max(s.stored.Load(), epoch))
		s.raiseEpoch(epoch)
	}
	return err
}

// raiseEpoch records epoch as applied and reports whether it was newer.
func (s *Shared) raiseEpoch(epoch int64) bool {
	for {
		cur := s.lastEpoch.Load()
		if epoch <= cur {
			return false
		}
		if s.lastEpoch.CompareAndSwap(cur, epoch) {
			s.remember(epoch)
			return true
		}
	}
}

// recentEpochs is how many of the epochs last recorded resetEpoch knows.
const recentEpochs = 16

// remember adds epoch to the epochs recently recorded.
func (s *Shared) remember(epoch int64) {
	s.recentMu.Lock()
	s.recent[s.recentN%recentEpochs] = epoch
	s.recentN++
	s.recentMu.Unlock()
}

// sawRecently reports whether epoch is one of the epochs recently recorded.
func (s *Shared) sawRecently(epoch int64) bool {
	s.recentMu.Lock()
	defer s.recentMu.Unlock()
	return slices.Contains(s.recent[:min(s.recentN, recentEpochs)], epoch)
}

func (s *Shared) sync() {
	// Read before the counts are taken: the counts were made while the
	// instance had seen no newer change than seen (apply records a change
	// only once it is applied and the trip has dropped the counts before
	// it). syncScript drops them when the stored state is newer.
	seen := s.lastEpoch.Load()
	if seen == 0 && !s.merged.Load() {
		seen = -1 // nothing seen yet: the first merge keeps the counts
	}
	pe := s.peerOpen.Load() // set before this script runs: see below
	ds, df := s.succ.Swap(0), s.fail.Swap(0)
	ctx, cancel := s.opCtx()
	defer cancel()
	res, err := s.run(ctx, syncScript,
		s.bucketMs, s.buckets, ds, df, s.minCalls, strconv.FormatFloat(s.ratio, 'f', -1, 64), s.openMs, s.id, seen).Slice()
	if err == nil && len(res) != 7 {
		err = fmt.Errorf("redisstate: sync returned %d values", len(res))
	}
	s.health(err)
	if err != nil {
		return // counts dropped: the shared window is advisory
	}
	s.merged.Store(true)
	state, _ := res[0].(string)
	remaining, _ := res[1].(int64)
	epoch, _ := res[2].(int64)
	succ, _ := res[3].(int64)
	fail, _ := res[4].(int64)
	origin, _ := res[5].(string)
	tripped, _ := res[6].(int64)
	if s.forced() {
		return
	}
	ctx2 := s.bgCtx()
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if pe != 0 && s.peerOpen.CompareAndSwap(pe, 0) && epoch < pe {
		// A peer's trip applied from its message is not stored: every
		// script stores a change before publishing it, and this script ran
		// after the message arrived, so a real trip would be stored, or a
		// newer change. The message never reached the shared state
		// (forged, garbled, another deployment on another database of the
		// same Redis) or Redis lost it: the local breaker must not stay
		// open on it for up to a year, with no probe. End its delay: the
		// next calls probe.
		s.b.Probe(ctx2)
		logctx.Decision(ctx2, s.log, slog.LevelWarn, "breaker ended a peer's trip missing from the shared state",
			fmt.Sprintf("the trip of epoch %d is not stored (stored epoch %d)", pe, epoch),
			slog.String(logctx.KeyDependency, s.b.Name()))
	}
	// Redis had the newest change the instance saw when it read or wrote
	// it there, not when it only got its message (see resetEpoch).
	had := seen > 0 && seen <= s.stored.Load()
	s.stored.Store(max(s.stored.Load(), epoch))
	if !s.raiseEpoch(epoch) && !s.resetEpoch(seen, epoch, had, state == "open" && remaining > 0) {
		return
	}
	switch {
	case state == "open" && remaining > 0:
		reason := peerTripReason(origin)
		if tripped == 1 {
			reason = fmt.Sprintf("%sshared failure rate %d/%d calls", peerPrefix, fail, succ+fail)
		}
		s.b.Trip(ctx2, time.Duration(remaining)*time.Millisecond, reason)
	case state == "closed" && seen >= 0 && epoch > 0:
		// Not on the first merge (seen -1): the instance had seen nothing
		// of the shared state, so a local open breaker tripped on its own
		// (its trip not published yet, retried while Redis was down),
		// after the stored recovery: that is no news to end it on. Nor when
		// nothing is stored (epoch 0: Redis lost the state), which is no
		// recovery.
		s.b.Probe(ctx2)
	}
}

// resetEpoch makes the shared state authoritative. When the stored epoch
// is older than seen, the newest epoch the instance had recorded before the
// merge, Redis no longer has a change the instance saw: it lost it (a
// restart without persistence, or from an older snapshot, a failover to a
// lagging replica) or never had it (a bad message that passed checkEpoch,
// another deployment's on the same server). Its new changes may then get
// epochs older than seen (a server whose clock is behind the old one's, or
// a Redis clock that jumped back): kept, seen would make the instance
// ignore them until Redis's clock passed it. resetEpoch then takes the
// stored epoch and reports true: the caller applies the stored state.
//
// Except when Redis had seen's change (had: the instance read or wrote it
// there) and the stored state is one the instance recorded before it:
// Redis lost the changes since, and went back to a state the instance saw
// and superseded — the trip before a recovery, the recovery before a trip.
// Applied again, it would undo the newer change: a recovered instance would
// turn every call away for the rest of the old trip's delay. The local
// state stands; resetEpoch takes the stored epoch, so that the server's
// next changes are followed, and reports false.
//
// The stored state stays in Redis, though, and an instance that starts
// afterwards sees nothing else: it cannot tell a stored trip (storedOpen:
// its delay still running) that every running instance has recovered
// from from one made a moment ago, and would turn away every call for the
// rest of its delay. So when the local breaker is closed, the instance
// writes its recovery back over the stored trip (see writeBackRecovery).
//
// It does not take the stored epoch when the instance recorded a newer
// change since seen (a message applied during the merge): the next merge
// decides.
func (s *Shared) resetEpoch(seen, epoch int64, had, storedOpen bool) bool {
	if seen <= epoch {
		return false
	}
	superseded := had && s.sawRecently(epoch)
	if !s.lastEpoch.CompareAndSwap(seen, epoch) {
		return false
	}
	s.stored.Store(epoch)
	s.remember(epoch)
	reason := fmt.Sprintf("recorded epoch %d is ahead of the shared state's %d", seen, epoch)
	if superseded {
		reason += ", which this instance saw before: Redis lost the changes since; the local state stands"
		if storedOpen && s.writeBackRecovery(epoch) {
			reason += ", and its recovery is written back over the stored trip"
		}
	}
	logctx.Decision(s.bgCtx(), s.log, slog.LevelWarn, "breaker shared epoch reset", reason,
		slog.String(logctx.KeyDependency, s.b.Name()))
	return !superseded
}

// writeBackRecovery queues a close over the stored state of epoch, a trip
// Redis went back to after the instance had recovered from it (see
// resetEpoch), when the local breaker is closed and no newer local change
// waits to be published (a close waiting takes the stored epoch: it was
// made after the recovery Redis lost, over a state the stored trip
// precedes). It is a recovery like any other: written only if the stored
// state is still that trip (another instance may have written its own back
// first), and the instances that followed the stale trip — started since
// the restore — probe, they do not close blindly. An instance whose
// breaker is open or half-open writes nothing: its own trip or recovery
// will be shared when it happens.
func (s *Shared) writeBackRecovery(epoch int64) bool {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	// State takes no lock a hook runs under, and the hook sharing a later
	// local change (onLocalChange) queues it after this one.
	if s.b.State() != breaker.StateClosed || s.pubSet && s.pubNext.t.To != breaker.StateClosed {
		return false
	}
	t := breaker.Transition{Name: s.b.Name(), From: breaker.StateHalfOpen, To: breaker.StateClosed,
		Reason: "recovery written back over a restored trip"}
	s.pubNext, s.pubSet = change{t: t, seen: epoch}, true
	select {
	case s.pubSig <- struct{}{}:
	default:
	}
	return true
}

// forced reports whether the local breaker is forced by an operator. Trip
// and Probe do nothing then, so the shared state is not applied, and its
// epoch is not recorded: once Reset, the breaker follows the shared state
// again from the next merge.
func (s *Shared) forced() bool {
	st := s.b.State()
	return st == breaker.StateForcedOpen || st == breaker.StateForcedClosed
}

func (s *Shared) listen() {
	defer s.wg.Done()
	// Subscribing dials; go-redis re-subscribes by itself after a failure
	// here or a lost connection later. It ignores a cancel while it waits
	// for the handshake's reply, so it runs apart: Close does not wait for
	// it (it ends when Redis answers or the read fails).
	subscribed := make(chan error, 1)
	go func() { subscribed <- s.ps.Subscribe(s.ctx, s.channel) }()
	ch := s.ps.Channel()
	for {
		select {
		case <-s.quit:
			return
		case err := <-subscribed:
			if err != nil {
				s.guard(func() { s.health(err) })
			}
		case msg, ok := <-ch:
			if !ok {
				return
			}
			s.guard(func() { s.apply(msg.Payload) })
		}
	}
}

func (s *Shared) apply(payload string) {
	m, err := parseMessage(payload)
	if err == nil {
		err = m.checkEpoch(time.Now())
	}
	if err != nil {
		logctx.Decision(s.bgCtx(), s.log, slog.LevelWarn, "breaker ignored shared message", err.Error(),
			slog.String(logctx.KeyDependency, s.b.Name()))
		return
	}
	if m.origin == s.id || s.forced() {
		return
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if m.epoch <= s.lastEpoch.Load() {
		return
	}
	// The epoch is recorded once the change is applied — a trip has then
	// dropped the counts from before it — so that a merge that reads it
	// (sync) takes no count made before the instance knew of the change.
	// Deferred: recorded even when a hook panics.
	defer s.raiseEpoch(m.epoch)
	ctx := s.bgCtx()
	if m.open {
		s.peerOpen.Store(m.epoch) // until a merge finds it stored: see sync
		s.b.Trip(ctx, m.openFor, peerTripReason(m.origin))
	} else {
		s.b.Probe(ctx)
	}
}
