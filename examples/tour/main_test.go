package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRunRefusesBadArguments(t *testing.T) {
	for _, args := range [][]string{
		{"3"},               // a positional argument, meant as -only 3
		{"-only", "1", "x"}, // a stray one after the flags
		{"-only", "8"},
		{"-only", "-1"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 {
			t.Errorf("run(%q) = %d, want 2 (usage error); stderr %q", args, code, stderr.String())
		}
		if stdout.Len() != 0 {
			t.Errorf("run(%q) played scenarios: %q", args, strings.SplitN(stdout.String(), "\n", 2)[0])
		}
	}
}
