package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"

	"github.com/sadpath/sadpath/consumer"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/internal/lograte"
	"github.com/sadpath/sadpath/logctx"
)

// Config configures an Adapter. Pull and Consumer are required; every
// other zero field means its documented default.
type Config struct {
	// Pull is the JetStream pull consumer to read from. It must use
	// explicit acknowledgements (AckExplicitPolicy, the default; New
	// refuses another policy seen on Pull.CachedInfo), and its MaxDeliver
	// must be -1 (unlimited, the default) or larger than the Consumer's
	// MaxAttempts: a message NAKed at MaxDeliver is dropped silently. When the
	// Consumer's Guard holds gaps, the pull consumer's MaxAckPending must
	// be -1 (unlimited) or larger than the Guard's MaxHeld plus Batch:
	// held messages stay unacknowledged and count against it (see the
	// package documentation). New checks it on Pull.CachedInfo.
	Pull js.Consumer

	// Consumer decides what to do with each message. Required: created
	// with consumer.New (a zero Consumer is refused).
	Consumer *consumer.Consumer

	// Batch is how many messages one pull asks for. Zero means 100. It
	// must not exceed the pull consumer's MaxRequestBatch, when set: the
	// server would refuse every pull (New checks it on Pull.CachedInfo).
	Batch int

	// MaxWait is how long one pull waits for messages; it is also the
	// period at which held gaps are swept (consumer.Consumer.Sweep). Zero
	// means 1s. It must be at least 10ms: a pull of a few microseconds
	// expires on the server before it is served, and Run would spin
	// without handling a message. It must not exceed the pull consumer's
	// MaxRequestExpires, when set (checked as Batch is).
	MaxWait time.Duration

	// Logger receives pull and acknowledgement failures, paced (see the
	// package documentation). Nil means no logging.
	Logger *slog.Logger
}

// minMaxWait is the smallest Config.MaxWait New accepts.
const minMaxWait = 10 * time.Millisecond

// Adapter feeds a JetStream pull consumer to a consumer.Consumer and acts
// on its decisions: Ack, NAK with delay (Retry), Term (DeadLetter), and
// nothing for Hold until the held event is settled. Messages are handled
// one at a time in delivery order by Run. Create one with New; the zero
// value is not usable.
type Adapter struct {
	pull    js.Consumer
	c       *consumer.Consumer
	batch   int
	maxWait time.Duration
	log     *slog.Logger
	logs    *lograte.Set  // pacing of the failures logged: non-nil with log
	clock   lograte.Clock // times the pacing
}

// New returns an Adapter configured by cfg, or an error of KindInvalid
// (code "config.invalid") naming the first bad field in its Detail and
// Fields (contract.ConfigError).
func New(cfg Config) (*Adapter, error) {
	bad := func(field, format string, args ...any) error { // named in Detail and in Fields
		return contract.ConfigError("consumer/jetstream", field, fmt.Sprintf(format, args...))
	}
	switch {
	case cfg.Pull == nil:
		return nil, bad("Config.Pull", "required")
	case cfg.Consumer == nil:
		return nil, bad("Config.Consumer", "required")
	case cfg.Consumer.MaxAttempts() == 0:
		// A zero Consumer (New sets MaxAttempts >= 1) would terminate every
		// message as larger than its MaxEventBytes of 0.
		return nil, bad("Config.Consumer", "not created with consumer.New")
	case cfg.Batch < 0:
		return nil, bad("Config.Batch", "must be >= 0, got %d", cfg.Batch)
	case cfg.MaxWait < 0:
		return nil, bad("Config.MaxWait", "must be >= 0, got %s", cfg.MaxWait)
	case cfg.MaxWait > 0 && cfg.MaxWait < minMaxWait:
		// The server drops a pull that expired before it was served:
		// every pull would come back empty, messages waiting or not.
		return nil, bad("Config.MaxWait", "must be at least %s, got %s: a shorter pull expires before the server serves it", minMaxWait, cfg.MaxWait)
	}
	a := &Adapter{pull: cfg.Pull, c: cfg.Consumer, batch: cfg.Batch, maxWait: cfg.MaxWait, log: cfg.Logger, clock: lograte.System{}}
	if a.log != nil {
		a.logs = lograte.NewSet(numPaced)
	}
	if a.batch == 0 {
		a.batch = 100
	}
	if a.maxWait == 0 {
		a.maxWait = time.Second
	}
	info := a.pull.CachedInfo()
	if info != nil {
		if p := info.Config.AckPolicy; p != js.AckExplicitPolicy {
			// AckNone acknowledges on delivery and AckAll with any later
			// message: a NAKed or held message would be lost.
			return nil, bad("Config.Pull", "the consumer's AckPolicy is %s, want explicit acknowledgements: retries and held messages would be acknowledged with others", p)
		}
		// The server refuses every pull above these limits (409): Run
		// would log and retry forever without handling a message.
		// JetStream drops a message NAKed at MaxDeliver silently (no
		// Term, no dead letter): the Consumer must give up first, with
		// room for retries that are not the event's fault.
		if m := info.Config.MaxDeliver; m > 0 && m <= a.c.MaxAttempts() {
			return nil, bad("Config.Pull", "the consumer's MaxDeliver (%d) must be larger than the Consumer's MaxAttempts (%d), or -1 (unlimited): JetStream drops a message retried at MaxDeliver, without a dead letter", m, a.c.MaxAttempts())
		}
		if m := info.Config.MaxRequestBatch; m > 0 && a.batch > m {
			return nil, bad("Config.Batch", "%d is above the consumer's MaxRequestBatch (%d): every pull would be refused", a.batch, m)
		}
		if m := info.Config.MaxRequestExpires; m > 0 && a.maxWait > m {
			return nil, bad("Config.MaxWait", "%s is above the consumer's MaxRequestExpires (%s): every pull would be refused", a.maxWait, m)
		}
	}
	if held := a.c.MaxHeld(); held > 0 {
		// Held messages stay unacknowledged, and so do gap messages NAKed
		// while they wait for their redelivery: once MaxAckPending of them
		// are pending, JetStream delivers nothing new, the missing event
		// included, and the hold times out without it. Room for every held
		// message and one more batch lets the missing event through.
		if info != nil {
			// m-held, not held+batch: that sum overflows with a huge
			// MaxHeld or Batch and would accept any MaxAckPending.
			if m := info.Config.MaxAckPending; m > 0 && (m <= held || m-held <= a.batch) {
				return nil, bad("Config.Pull", "the consumer's MaxAckPending (%d) must be larger than the Guard's MaxHeld (%d) plus Config.Batch (%d), or -1 (unlimited): held messages count against it", m, held, a.batch)
			}
		}
	}
	return a, nil
}

// Run pulls and handles messages until ctx is done, then returns nil. It
// notices ctx within MaxWait: a pull in flight is not abandoned. Once ctx
// is done, the message being handled finishes and the rest of the batch is
// handed back (NAK without delay) when the pull ends, each message once:
// JetStream redelivers it at once; the hold is not swept on the way out.
// Failed pulls (server unavailable, a connection reconnecting) are logged
// and retried after MaxWait. Run returns an error when it can consume no
// more: KindNotFound (code "jetstream.consumer_gone") when the consumer no
// longer exists, and KindUnavailable (code "jetstream.connection_closed",
// matching nats.ErrConnectionClosed or nats.ErrConnectionDraining) once the
// NATS connection is closed for good (nc.Close, its reconnect limit
// reached) or draining.
func (a *Adapter) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		// The server ends the pull after MaxWait: no message is sent to a
		// pull the client has already given up on (a client-side timeout
		// would strand those until their ack wait expires).
		batch, err := a.pull.Fetch(a.batch, js.FetchMaxWait(a.maxWait))
		if err == nil {
			var back []js.Msg
			for msg := range batch.Messages() {
				if ctx.Err() != nil {
					// Shutting down: the rest of the batch is not handled
					// with a canceled context but handed back, for another
					// Adapter or this one restarted, once the pull has
					// ended. NAKed now, a message would be redelivered into
					// this pull, still open for the rest of its batch, and
					// handed back again, up to Batch times, each one a
					// delivery counted against MaxAttempts and MaxDeliver.
					back = append(back, msg)
					continue
				}
				a.handle(ctx, msg)
			}
			err = batch.Error()
			for _, msg := range back {
				a.finish(ctx, msg, consumer.Result{Action: consumer.Retry})
			}
		}
		if ctx.Err() == nil {
			// Not on the way out: a timed-out gap would be skipped and its
			// held events applied with the canceled context.
			a.c.Sweep(ctx)
		}
		switch {
		case err == nil, errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
			a.answered(ctx)
		case ctx.Err() != nil:
		case errors.Is(err, js.ErrConsumerDeleted), errors.Is(err, js.ErrConsumerNotFound):
			return &contract.Error{Kind: contract.KindNotFound, Code: "jetstream.consumer_gone", Op: "consumer/jetstream", Cause: err}
		case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionDraining):
			// No pull will ever succeed again: the connection does not
			// reconnect once closed.
			return &contract.Error{Kind: contract.KindUnavailable, Code: "jetstream.connection_closed", Op: "consumer/jetstream", Cause: err}
		default:
			a.logs.Log(ctx, a.log, a.clock, pPull, slog.LevelWarn, "pull failed", "jetstream: "+err.Error(),
				slog.String(logctx.KeyDependency, dependency))
			select {
			case <-ctx.Done():
			case <-time.After(a.maxWait):
			}
		}
	}
	return nil
}

func (a *Adapter) handle(ctx context.Context, msg js.Msg) {
	attempt := 1
	if md, err := msg.Metadata(); err == nil {
		// Saturated: narrowed, a count above the largest int would turn
		// negative and read as a first delivery, never MaxAttempts.
		attempt = int(min(md.NumDelivered, math.MaxInt))
	}
	d := consumer.Delivery{Data: msg.Data(), Attempt: attempt, Settle: func(r consumer.Result) { a.finish(ctx, msg, r) }}
	if r := a.c.Handle(ctx, d); r.Action != consumer.Hold {
		a.finish(ctx, msg, r)
	}
}

func (a *Adapter) finish(ctx context.Context, msg js.Msg, r consumer.Result) {
	var err error
	switch r.Action {
	case consumer.Ack:
		err = msg.Ack()
	case consumer.Retry:
		err = msg.NakWithDelay(r.Delay)
	case consumer.DeadLetter:
		err = msg.Term()
	}
	if err != nil {
		// The message will be redelivered after its ack wait: the
		// consumer's dedup and ordering make that harmless.
		a.ackFailed(ctx, msg, r, err)
		return
	}
	a.answered(ctx)
}

// dependency names NATS JetStream in the lines the Adapter logs.
const dependency = "nats"

// The failures a NATS server that is down or unreachable repeats on every
// pull and every message: their lines are paced (see package lograte), a
// few every 10s instead of one per message.
const (
	pPull = iota
	pAck
	numPaced
)

// answered logs, once each, the end of the paced failures that have not
// occurred for 10s, on a pull or acknowledgement that succeeded. It costs
// an atomic load while none is going on.
func (a *Adapter) answered(ctx context.Context) {
	if a.logs != nil && a.logs.Active() {
		a.logs.LogEnds(ctx, a.log, a.clock, pacedEnd, slog.String(logctx.KeyDependency, dependency))
	}
}

func pacedEnd(p int) (string, string) {
	if p == pPull {
		return "pulls succeed again", lograte.EndReason
	}
	return "acknowledgements succeed again", lograte.EndReason
}

// ackFailed logs a failed acknowledgement with what identifies the message
// (its stream sequence and delivery count) and, when it was decoded, the
// event's coordinates as package consumer logs them (correlation id and
// subject on the context; type, source and sequence), never its id or data.
func (a *Adapter) ackFailed(ctx context.Context, msg js.Msg, r consumer.Result, err error) {
	if a.log == nil {
		return
	}
	level, n := a.logs.Occur(pAck, a.clock.Now(), slog.LevelWarn)
	if !a.log.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 7)
	attrs = append(attrs, slog.String(logctx.KeyDependency, dependency))
	if md, merr := msg.Metadata(); merr == nil {
		attrs = append(attrs, slog.Uint64("stream_sequence", md.Sequence.Stream), slog.Uint64("delivery", md.NumDelivered))
	}
	if e := r.Event; e != nil {
		if cctx, cerr := logctx.ExtractEvent(ctx, e); cerr == nil {
			ctx = cctx // an invalid id is left out, as the consumer does
		}
		if e.Subject != "" {
			ctx = logctx.WithEntity(ctx, "subject", e.Subject)
		}
		// A hostile megabyte type or source is cut, as the Guard cuts a subject.
		attrs = append(attrs, slog.String("event_type", logctx.Short(e.Type)), slog.String("event_source", logctx.Short(e.Source)))
		if e.Sequence != 0 {
			attrs = append(attrs, slog.Uint64("sequence", e.Sequence))
		}
	}
	logctx.Decision(ctx, a.log, level, "acknowledgement failed", r.Action.String()+": "+err.Error(), lograte.Suppressed(attrs, n)...)
}

// Publish publishes ev on subject with the Nats-Msg-Id header set to the
// event's (source, id), so that JetStream drops a republication of the same
// event within the stream's duplicate window. It returns the PubAck, whose
// Duplicate field tells a dropped republication.
//
// Errors are *contract.Error values: KindInvalid (permanent) for a nil or
// invalid event and for a subject that is not a message subject (empty,
// with whitespace, an empty token or a wildcard token: matching
// nats.ErrBadSubject), KindTooLarge (permanent: do not retry) for
// an event above the server's max_payload or the stream's MaxMsgSize,
// KindTimeout or KindCanceled from ctx, and KindUnavailable (retryable) for
// any other failure to publish.
func Publish(ctx context.Context, j js.JetStream, subject string, ev *contract.Event) (*js.PubAck, error) {
	if ev == nil {
		return nil, contract.New(contract.KindInvalid, "consumer/jetstream.publish", "nil event")
	}
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	if err := publishSubject(subject); err != nil {
		return nil, err
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return nil, contract.Wrap(contract.KindInvalid, "consumer/jetstream.publish", err)
	}
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	msg.Header.Set(js.MsgIDHeader, ev.DedupKey())
	ack, err := j.PublishMsg(ctx, msg)
	if err != nil {
		return nil, publishError(err)
	}
	return ack, nil
}

// publishSubject refuses a subject with an empty token ("a..b", ".a") or a
// wildcard token ("a.*", "a.>"), which the client sends but NATS gives no
// meaning as a message's subject: a server may store it, and consumers
// filtering on concrete subjects never see the event. The error is a
// permanent KindInvalid matching nats.ErrBadSubject, as for the subjects
// the client itself refuses (empty, or with white space), which are left
// to it.
func publishSubject(subject string) error {
	if subject == "" {
		return nil
	}
	for tok := range strings.SplitSeq(subject, ".") {
		if tok == "" || tok == "*" || tok == ">" {
			return contract.Wrap(contract.KindInvalid, "consumer/jetstream.publish",
				fmt.Errorf("%w: %q has an empty or wildcard token", nats.ErrBadSubject, subject))
		}
	}
	return nil
}

// publishError classifies a PublishMsg error. A message larger than the
// server's max_payload (refused by the client before sending) or the
// stream's MaxMsgSize (refused in the PubAck) can never be published: it is
// KindTooLarge, not retryable; nor can one on an invalid subject
// (nats.ErrBadSubject): KindInvalid. Other errors keep the kind contract finds
// (a timeout, a canceled context), and the rest — no responders, a lost
// connection, an API error — are KindUnavailable: retryable.
func publishError(err error) error {
	kind := contract.KindOf(err)
	switch {
	case errors.Is(err, nats.ErrMaxPayload), errors.Is(err, js.ErrStreamMessageExceedsMaximum):
		kind = contract.KindTooLarge
	case errors.Is(err, nats.ErrBadSubject):
		// Refused by the client before sending: no retry can publish it.
		kind = contract.KindInvalid
	case kind == contract.KindInternal:
		kind = contract.KindUnavailable
	}
	return contract.Wrap(kind, "consumer/jetstream.publish", err)
}
