package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/logctx"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run parses args, runs the example and writes the summary to stdout and
// the logs to stderr. It returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("consumer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o Options
	var logLevel slog.Level
	fs.IntVar(&o.Events, "events", 1000, "valid payment events to produce")
	fs.IntVar(&o.Subjects, "subjects", 20, "payments (subjects) the events are spread over")
	fs.Float64Var(&o.DupRate, "dup-rate", 0.2, "probability an event is delivered twice (same id)")
	fs.Float64Var(&o.RepublishRate, "republish-rate", 0.02, "probability an event is republished under a new id")
	fs.Float64Var(&o.FailRate, "fail-rate", 0.05, "probability one handler attempt fails transiently (injected, at most 0.5)")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of the shuffle, the duplicates and the injected failures")
	fs.StringVar(&o.NATSURL, "nats", "", "NATS URL, e.g. nats://127.0.0.1:4222; empty runs the in-memory broker")
	fs.StringVar(&o.Stream, "stream", DefaultStream, "JetStream stream to create, use and delete (-nats only)")
	fs.DurationVar(&o.Timeout, "timeout", time.Minute, "bound on a -nats run")
	fs.IntVar(&o.MaxHeld, "max-held", 0, "ordering Guard hold buffer size; 0 means max(1024, -events) (gaps beyond it are redelivered)")
	fs.TextVar(&logLevel, "log-level", slog.LevelInfo, "minimum level of the JSON logs on stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "consumer: unexpected arguments %q\n", fs.Args())
		return 2
	}
	h, err := logctx.NewHandler(logctx.HandlerConfig{Next: slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: logLevel})})
	if err != nil {
		fmt.Fprintln(stderr, "consumer:", err)
		return 2
	}
	o.Logger = slog.New(h)

	var r *Report
	if o.NATSURL == "" {
		r, err = RunMemory(ctx, o)
	} else {
		r, err = RunNATS(ctx, o)
	}
	if err != nil {
		fmt.Fprintln(stderr, "consumer:", err)
		if errors.Is(err, contract.ErrInvalid) {
			fs.Usage()
		}
		return 2
	}
	r.Write(stdout)
	if !r.OK() {
		return 1
	}
	return 0
}

// Write prints the report for a human.
func (r *Report) Write(w io.Writer) {
	o, c, p := r.Options, r.Counts, r.Produced
	fmt.Fprintf(w, "sadpath consumer example — %s broker", r.Mode)
	if r.Mode == "nats" {
		fmt.Fprintf(w, " (%s, stream %s)", redactURLs(o.NATSURL), o.Stream)
	}
	fmt.Fprintf(w, ", seed %d\n\n", o.Seed)

	fmt.Fprintf(w, "produced   %6d events over %d payments\n", p.Events, o.Subjects)
	fmt.Fprintf(w, "           %6d duplicate deliveries (same id, dup-rate %g)\n", p.Duplicates, o.DupRate)
	fmt.Fprintf(w, "           %6d republished copies (new id, same sequence)\n", p.Republished)
	fmt.Fprintf(w, "           %6d malformed (truncated JSON, missing id, no sequence)\n", p.Malformed)
	fmt.Fprintf(w, "           %6d messages, shuffled\n", p.Deliveries)
	if r.Mode == "nats" {
		fmt.Fprintf(w, "           %6d dropped by JetStream (Nats-Msg-Id), %d stored\n", c.ServerDeduped, r.Stored)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "deliveries %6d  (%d redeliveries)\n", c.Deliveries, c.Redeliveries)
	fmt.Fprintf(w, "applied    %6d\n", c.Applied)
	fmt.Fprintf(w, "dropped    %6d duplicates by (source, id)   idempotency store\n", c.DupByID)
	fmt.Fprintf(w, "           %6d duplicates by sequence       ordering guard\n", c.DupBySeq)
	fmt.Fprintf(w, "           %6d stale                        ordering guard\n", c.Stale)
	if r.JoinedDerived {
		fmt.Fprintf(w, "           %6d other acks (held copies)     ordering guard (derived: not observable through the Adapter)\n", c.JoinedHeld)
	} else {
		fmt.Fprintf(w, "           %6d copies of a held event       ordering guard (acked with it)\n", c.JoinedHeld)
	}
	fmt.Fprintf(w, "gaps       %6d held until the missing events arrived\n", c.GapsHeld)
	fmt.Fprintf(w, "           %6d rejected and redelivered (hold buffer of %d full, or hold timed out)\n", c.GapsRejected, o.MaxHeld)
	fmt.Fprintf(w, "retried    %6d transient handler failures (injected, fail-rate %g)\n", c.TransientFailures, o.FailRate)
	fmt.Fprintf(w, "dead       %6d dead-lettered\n", c.DeadLettered)
	for _, d := range r.DeadLetters {
		fmt.Fprintf(w, "             - %s\n", d)
	}
	fmt.Fprintf(w, "broker     %6d acked, %d NAKed with delay, %d terminated\n", c.Acked, c.Retried, c.DeadLettered)
	if r.Mode == "memory" {
		fmt.Fprintf(w, "time       %s wall, %s of simulated broker time\n", r.Elapsed.Round(time.Millisecond), r.SimulatedTime)
	} else {
		fmt.Fprintf(w, "time       %s\n", r.Elapsed.Round(time.Millisecond))
	}

	fmt.Fprintln(w)
	subjects := slices.Sorted(maps.Keys(r.Payments))
	fmt.Fprintf(w, "projection (%d payments", len(subjects))
	if len(subjects) > 3 {
		fmt.Fprint(w, ", first 3")
		subjects = subjects[:3]
	}
	fmt.Fprintln(w, ")")
	for _, s := range subjects {
		fmt.Fprintf(w, "  %s  %s\n", s, r.Payments[s])
	}
	fmt.Fprintln(w)
	if r.OK() {
		fmt.Fprintln(w, "OK: the projection equals the in-order application; every event applied exactly once, every malformed one dead-lettered.")
		return
	}
	fmt.Fprintln(w, "FAIL: the projection differs from the in-order application:")
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  - %s\n", p)
	}
}

// redactURLs returns the comma-separated server URLs of -nats without
// their credentials (user and password, or a token in the user's place):
// "nats://alice:pw@host:4222" is printed as "nats://[REDACTED]@host:4222".
// A part without a scheme is read as nats.Connect does (nats://); one that
// does not parse as a URL is replaced whole.
func redactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		if p = strings.TrimSpace(p); !strings.Contains(p, "://") {
			p = "nats://" + p // as nats.Connect reads it
		}
		u, err := url.Parse(p)
		switch {
		case err != nil:
			parts[i] = "[REDACTED]"
		case u.User != nil:
			u.User = nil
			parts[i] = strings.Replace(u.String(), "://", "://[REDACTED]@", 1)
		}
	}
	return strings.Join(parts, ",")
}
