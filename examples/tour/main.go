// Command tour plays every sad path sadpath handles against the real library
// code, in-process, with in-memory stores and injected faults, and prints a
// report: what was done to the system, what it decided, the key figures, and
// the JSON log lines (with coordinates) that explain each decision.
//
//	go run ./examples/tour            # all scenarios
//	go run ./examples/tour -only 3    # one scenario
//	go run ./examples/tour -json      # machine-readable report
//
// The exit status is non-zero when any scenario's invariant fails, so CI runs
// the tour as a test.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// scenario is one sad path: run plays it and fills the report.
type scenario struct {
	title string
	run   func(ctx context.Context, env *env, r *report) error
}

var scenarios = []scenario{
	{"The same request twice, and 50 concurrent duplicates", sameRequestTwice},
	{"A downstream that times out but processes anyway", timeoutButProcessed},
	{"A dependency slow for thirty seconds (compressed)", slowDependency},
	{"Events duplicated and out of order", eventsOutOfOrder},
	{"Valid JSON with absurd meaning", absurdPayload},
	{"A retry storm, without and with a retry budget", retryStorm},
	{"A crash between claim and completion", crashBetweenClaimAndCompletion},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tour", flag.ContinueOnError)
	fs.SetOutput(stderr)
	only := fs.Int("only", 0, "run only scenario `N` (1-7)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	seed := fs.Int64("seed", 1, "seed of the injected faults and shuffles")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		// "tour 3" is not "tour -only 3": it would run every scenario.
		fmt.Fprintf(stderr, "tour: unexpected arguments %q (to run one scenario: -only N)\n", fs.Args())
		return 2
	}
	if *only < 0 || *only > len(scenarios) {
		fmt.Fprintf(stderr, "tour: -only must be between 1 and %d, got %d\n", len(scenarios), *only)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()

	var reports []*report
	failed := 0
	start := time.Now()
	for i, s := range scenarios {
		if *only != 0 && *only != i+1 {
			continue
		}
		r := &report{Number: i + 1, Title: s.title}
		e := newEnv(*seed + int64(i))
		t0 := time.Now()
		if err := s.run(ctx, e, r); err != nil {
			r.fail("scenario error: %v", err)
		}
		r.Elapsed = time.Since(t0).Round(time.Millisecond).String()
		r.Logs = e.pickLogs(5)
		if !r.OK() {
			failed++
		}
		reports = append(reports, r)
		if !*asJSON {
			r.print(stdout)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(struct {
			Seed      int64     `json:"seed"`
			Scenarios []*report `json:"scenarios"`
			Failed    int       `json:"failed"`
		}{*seed, reports, failed})
	} else {
		fmt.Fprintf(stdout, "%s\n%d scenarios in %s: %d passed, %d failed\n",
			strings.Repeat("=", 78), len(reports), time.Since(start).Round(time.Millisecond), len(reports)-failed, failed)
	}
	if failed > 0 {
		return 1
	}
	return 0
}
