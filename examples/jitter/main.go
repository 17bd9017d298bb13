// Command jitter reproduces the AWS Architecture Blog experiment
// "Exponential Backoff And Jitter" (Marc Brooker, 2015) with the strategies
// of package retry: N clients each update one shared row once under
// optimistic concurrency, and every stale write is retried after
// backoff(attempt) plus a network delay |Normal(10ms, 2ms)|, base 5ms, cap
// 2s. Time is simulated, so the whole table takes seconds.
//
// It prints the average server calls (writes, as in the original) and completion time
// per strategy and client count, and a row with a shared retry budget
// (retry.RatioBudget), where clients refused a retry give up.
//
//	go run ./jitter            # from the examples module
//	go run ./jitter -runs 50 -clients 100
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses args, prints the table to stdout and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("jitter", flag.ContinueOnError)
	fs.SetOutput(stderr)
	runs := fs.Int("runs", 100, "runs averaged per cell (the original used 100)")
	seed := fs.Uint64("seed", 1, "seed of the simulated randomness")
	list := fs.String("clients", "10,50,100,150,190", "comma-separated client counts")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "jitter: unexpected arguments %q\n", fs.Args())
		return 2
	}
	var counts []int
	for _, f := range strings.Split(*list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 10000 {
			fmt.Fprintf(stderr, "jitter: bad client count %q\n", f)
			return 2
		}
		counts = append(counts, n)
	}
	if *runs < 1 || *runs > 10000 {
		fmt.Fprintln(stderr, "jitter: -runs must be in [1, 10000]")
		return 2
	}
	printTable(stdout, counts, *runs, *seed)
	return 0
}

func printTable(w io.Writer, counts []int, runs int, seed uint64) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "strategy\t")
	for _, n := range counts {
		fmt.Fprintf(tw, "%d clients\t", n)
	}
	fmt.Fprintln(tw)
	for _, s := range scenarios {
		fmt.Fprintf(tw, "%s\t", s.name)
		for _, n := range counts {
			r := average(s, n, runs, seed)
			cell := fmt.Sprintf("%.0f calls / %.2fs", r.calls, r.time.Seconds())
			if r.completed < float64(n) {
				cell += fmt.Sprintf(" (%.0f%% done)", 100*r.completed/float64(n))
			}
			fmt.Fprintf(tw, "%s\t", cell)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}
