// Command benchtable reads `go test -bench -benchmem` output on stdin and
// writes a markdown table comparing sadpath with the best peer of each row.
//
// Benchmarks are named Benchmark<Row>/<impl>[-procs]. The impl "sadpath" is
// ours; impls listed with -baselines (lower bounds such as a bare function
// call or a mutex map) are shown but are not peers; every other impl is a
// peer. For each row the best peer is the one with the lowest median ns/op,
// and the ratio is sadpath's median over that peer's (≤ 1.0: at or ahead).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

type sample struct{ ns, bytes, allocs []float64 }

var line = regexp.MustCompile(`^Benchmark(\S+?)/(\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(?:\s+([\d.]+) B/op)?(?:\s+([\d.]+) allocs/op)?`)

func main() {
	baselines := flag.String("baselines", "direct,mutexmap,plainslog,chansem", "comma-separated impls that are lower bounds, not peers")
	flag.Parse()
	if err := run(os.Stdin, os.Stdout, strings.Split(*baselines, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer, baselines []string) error {
	rows := map[string]map[string]*sample{}
	var order []string
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		row, impl := m[1], m[2]
		if rows[row] == nil {
			rows[row] = map[string]*sample{}
			order = append(order, row)
		}
		s := rows[row][impl]
		if s == nil {
			s = &sample{}
			rows[row][impl] = s
		}
		s.ns = append(s.ns, num(m[3]))
		s.bytes = append(s.bytes, num(m[4]))
		s.allocs = append(s.allocs, num(m[5]))
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if len(order) == 0 {
		return fmt.Errorf("no benchmark lines of the form Benchmark<Row>/<impl> on input")
	}
	fmt.Fprintln(out, "| row | sadpath ns/op | B/op | allocs/op | best peer | peer ns/op | B/op | allocs/op | ratio ns/op | ratio allocs/op | baseline |")
	fmt.Fprintln(out, "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---|")
	for _, row := range order {
		impls := rows[row]
		ours := impls["sadpath"]
		best, bestName := (*sample)(nil), ""
		var base []string
		names := make([]string, 0, len(impls))
		for name := range impls {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			s := impls[name]
			switch {
			case name == "sadpath":
			case slices.Contains(baselines, name):
				base = append(base, fmt.Sprintf("%s %s ns, %s allocs", name, f(median(s.ns)), f(median(s.allocs))))
			case best == nil || median(s.ns) < median(best.ns):
				best, bestName = s, name
			}
		}
		cell := func(s *sample) string {
			if s == nil {
				return "– | – | –"
			}
			return fmt.Sprintf("%s | %s | %s", f(median(s.ns)), f(median(s.bytes)), f(median(s.allocs)))
		}
		ratioNs, ratioAllocs := "–", "–"
		if ours != nil && best != nil {
			ratioNs = ratio(median(ours.ns), median(best.ns))
			ratioAllocs = ratio(median(ours.allocs), median(best.allocs))
		}
		if bestName == "" {
			bestName = "–"
		}
		fmt.Fprintf(out, "| %s | %s | %s | %s | %s | %s | %s |\n", row, cell(ours), bestName, cell(best), ratioNs, ratioAllocs, strings.Join(base, "; "))
	}
	return nil
}

func num(s string) float64 {
	v, _ := strconv.ParseFloat(s, 64)
	return v
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	c := slices.Clone(v)
	slices.Sort(c)
	if len(c)%2 == 1 {
		return c[len(c)/2]
	}
	return (c[len(c)/2-1] + c[len(c)/2]) / 2
}

func ratio(a, b float64) string {
	switch {
	case a == 0 && b == 0:
		return "1.00"
	case b == 0:
		return "∞"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func f(v float64) string {
	if v >= 100 || v == float64(int64(v)) {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}
