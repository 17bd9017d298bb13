package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRunComputesRatioToBestPeer(t *testing.T) {
	in := `goos: linux
BenchmarkBreakerClosed/sadpath-2   	 1000000	       100 ns/op	       0 B/op	       0 allocs/op
BenchmarkBreakerClosed/sadpath-2   	 1000000	       120 ns/op	       0 B/op	       0 allocs/op
BenchmarkBreakerClosed/sadpath-2   	 1000000	       110 ns/op	       0 B/op	       0 allocs/op
BenchmarkBreakerClosed/gobreaker-2 	 1000000	       200 ns/op	      16 B/op	       1 allocs/op
BenchmarkBreakerClosed/failsafe-2  	 1000000	       400 ns/op	      64 B/op	       2 allocs/op
BenchmarkBreakerClosed/direct-2    	 1000000	         2 ns/op	       0 B/op	       0 allocs/op
`
	var out bytes.Buffer
	if err := run(strings.NewReader(in), &out, []string{"direct"}); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	// median sadpath 110 over best peer gobreaker 200 = 0.55; allocs 0 over 1 = 0.00
	for _, want := range []string{"| BreakerClosed | 110 | 0 | 0 | gobreaker | 200 | 16 | 1 | 0.55 | 0.00 | direct 2 ns, 0 allocs |"} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
}

func TestRunRejectsInputWithoutBenchmarks(t *testing.T) {
	if err := run(strings.NewReader("PASS\n"), &bytes.Buffer{}, nil); err == nil {
		t.Fatal("want an error for input with no benchmark lines")
	}
}
