package redisstate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sadpath/sadpath/breaker"
	"github.com/sadpath/sadpath/contract"
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
	// Client is the Redis client. Required. Shared never closes it.
	Client redis.UniversalClient
	// Breaker configures the local breaker (see breaker.Config). Its
	// OnStateChange and OnCall hooks are kept and called first. Its Name
	// names the shared state: instances with the same Prefix and Name share
	// it. Its Window, Buckets, MinCalls and FailureRatio also apply to the
	// shared window.
	Breaker breaker.Config
	// Prefix starts every Redis key and channel. Default DefaultPrefix.
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

	// The newest local change not published yet: a newer one replaces it,
	// so while Redis is slow the changes in between are skipped and the
	// newest state is the one shared, never dropped for an older one.
	pubMu   sync.Mutex
	pubNext change
	pubSet  bool
	pubSig  chan struct{} // 1-buffered: pubNext is set

	published int64 // epoch of the last change this instance published; the loop's own

	kick chan struct{}
	quit chan struct{}
	ctx  context.Context // canceled by Close: aborts a Redis call in flight
	stop context.CancelFunc
	wg   sync.WaitGroup
	ps   *redis.PubSub
	once sync.Once
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
	if cfg.Client == nil {
		return nil, bad("Config.Client", "must not be nil", nil)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
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
	if len(cfg.InstanceID) > 128 {
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
	bc.OnStateChange = func(ctx context.Context, t breaker.Transition) {
		if userChange != nil {
			userChange(ctx, t)
		}
		s.onLocalChange(t)
	}
	bc.OnCall = func(ctx context.Context, o breaker.Outcome) {
		if userCall != nil {
			userCall(ctx, o)
		}
		s.onCall(o)
	}
	b, err := breaker.New(bc)
	if err != nil {
		return nil, err
	}
	s.b = b
	s.base = cfg.Prefix + "{" + b.Name() + "}"
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

// Breaker returns the local breaker; call through it with breaker.Do.
func (s *Shared) Breaker() *breaker.Breaker { return s.b }

// InstanceID returns the id this instance publishes under.
func (s *Shared) InstanceID() string { return s.id }

// Close stops the background work. The local breaker keeps working, alone.
func (s *Shared) Close() error {
	var err error
	s.once.Do(func() {
		close(s.quit)
		s.stop()
		err = s.ps.Close()
		s.wg.Wait()
	})
	return err
}

const peerPrefix = "shared: "

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
	if n == s.minCalls {
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
	t    breaker.Transition
	seen int64
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
	s.sync()
	for {
		select {
		case <-s.quit:
			return
		case <-s.pubSig:
			if c, ok := s.nextPublish(); ok {
				s.publish(c)
			}
		case <-s.kick:
			s.sync()
		case <-tick.C:
			s.sync()
		}
	}
}

func (s *Shared) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, s.timeout)
}

func (s *Shared) bgCtx() context.Context {
	return logctx.WithOperation(context.Background(), "breaker.redisstate")
}

// health logs the switch between shared and local operation, once each way.
func (s *Shared) health(err error) {
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

// publish writes a local change to the shared state and publishes it. An
// open always applies (keeping a later deadline stored). A close applies
// only when the shared state has not changed since the instance saw it (or
// since its own last change, published after): a close that reaches Redis
// after a peer's newer trip must not undo it. Then nothing is published, and
// the instance follows the peer's trip from its message or the next merge.
func (s *Shared) publish(c change) {
	ctx, cancel := s.opCtx()
	defer cancel()
	var (
		epoch int64
		err   error
	)
	if c.t.To == breaker.StateOpen {
		ms := max(1, c.t.OpenFor.Milliseconds())
		epoch, err = openScript.Run(ctx, s.client, []string{s.base}, ms, s.id, s.bucketMs, s.buckets).Int64()
	} else {
		epoch, err = closeScript.Run(ctx, s.client, []string{s.base}, s.id, max(c.seen, s.published)).Int64()
	}
	s.health(err)
	if err == nil && epoch > 0 {
		s.published = epoch
		s.raiseEpoch(epoch)
	}
}

// raiseEpoch records epoch as applied and reports whether it was newer.
func (s *Shared) raiseEpoch(epoch int64) bool {
	for {
		cur := s.lastEpoch.Load()
		if epoch <= cur {
			return false
		}
		if s.lastEpoch.CompareAndSwap(cur, epoch) {
			return true
		}
	}
}

func (s *Shared) sync() {
	ds, df := s.succ.Swap(0), s.fail.Swap(0)
	ctx, cancel := s.opCtx()
	defer cancel()
	res, err := syncScript.Run(ctx, s.client, []string{s.base},
		s.bucketMs, s.buckets, ds, df, s.minCalls, strconv.FormatFloat(s.ratio, 'f', -1, 64), s.openMs, s.id).Slice()
	if err == nil && len(res) != 6 {
		err = fmt.Errorf("redisstate: sync returned %d values", len(res))
	}
	s.health(err)
	if err != nil {
		return // counts dropped: the shared window is advisory
	}
	state, _ := res[0].(string)
	remaining, _ := res[1].(int64)
	epoch, _ := res[2].(int64)
	succ, _ := res[3].(int64)
	fail, _ := res[4].(int64)
	now, _ := res[5].(int64)
	if s.forced() {
		return
	}
	if !s.raiseEpoch(epoch) && !s.resetEpoch(epoch, now) {
		return
	}
	ctx2 := s.bgCtx()
	switch {
	case state == "open" && remaining > 0:
		s.b.Trip(ctx2, time.Duration(remaining)*time.Millisecond,
			fmt.Sprintf("%sshared failure rate %d/%d calls", peerPrefix, fail, succ+fail))
	case state == "closed":
		s.b.Probe(ctx2)
	}
}

// epochSlack is how far an epoch may be ahead of the epoch stored in Redis
// and of Redis's clock: epochs are at least Redis's time in ms, ahead of it
// only by bursts of changes within a millisecond, or across a failover to a
// server whose clock is a little behind.
const epochSlack = time.Minute

// resetEpoch makes the shared state authoritative: when the newest epoch
// this instance recorded is ahead of both the stored state's epoch and
// Redis's clock (now, ms) by more than epochSlack, no change of the shared
// state produced it — a bad message that passed checkEpoch, a Redis clock
// that jumped back — and, kept, it would make the instance ignore every
// real change until Redis's clock caught up with it. resetEpoch then takes
// the stored epoch and reports true: the caller applies the stored state.
func (s *Shared) resetEpoch(epoch, now int64) bool {
	last := s.lastEpoch.Load()
	if last <= max(epoch, now)+epochSlack.Milliseconds() || !s.lastEpoch.CompareAndSwap(last, epoch) {
		return false
	}
	logctx.Decision(s.bgCtx(), s.log, slog.LevelWarn, "breaker shared epoch reset",
		fmt.Sprintf("recorded epoch %d is ahead of the shared state's %d and of Redis's clock", last, epoch),
		slog.String(logctx.KeyDependency, s.b.Name()))
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
	// here or a lost connection later.
	if err := s.ps.Subscribe(s.ctx, s.channel); err != nil {
		s.health(err)
	}
	ch := s.ps.Channel()
	for {
		select {
		case <-s.quit:
			return
		case msg, ok := <-ch:
			if !ok {
				return
			}
			s.apply(msg.Payload)
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
	if m.origin == s.id || s.forced() || !s.raiseEpoch(m.epoch) {
		return
	}
	ctx := s.bgCtx()
	if m.open {
		s.b.Trip(ctx, m.openFor, peerPrefix+"tripped by instance "+m.origin)
	} else {
		s.b.Probe(ctx)
	}
}
