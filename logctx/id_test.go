package logctx

import (
	"errors"
	"strings"
	"testing"

	"github.com/sadpath/sadpath/contract"
)

func TestValidateCorrelationID(t *testing.T) {
	valid := []string{
		"a", "4bf92f3577b34da6a3ce929d0e0e4736", "0190f7a4-7b5e-7c1d-9a4e-2f1b3c4d5e6f",
		"01J9ZQ3K8X5W2V7T6R4P3N2M1L", "req_123.abc:9", strings.Repeat("x", MaxCorrelationIDLen),
	}
	for _, id := range valid {
		if err := ValidateCorrelationID(id); err != nil {
			t.Errorf("ValidateCorrelationID(%q) = %v", id, err)
		}
	}
	invalid := []string{
		"", strings.Repeat("x", MaxCorrelationIDLen+1), "a b", "a\nb", "a\r\nSet-Cookie: x", "a\"b", "a'b",
		"a\x00b", "a\tb", "é", "a/b", "a\\b", "<script>", "a;b", "a=b", "\x7f",
	}
	for _, id := range invalid {
		err := ValidateCorrelationID(id)
		if !errors.Is(err, contract.ErrInvalid) {
			t.Errorf("ValidateCorrelationID(%q) = %v, want contract.ErrInvalid", id, err)
			continue
		}
		if ce := contract.As(err); ce.Code != CodeCorrelationIDInvalid {
			t.Errorf("code = %q", ce.Code)
		}
		if len(id) > 1 && strings.Contains(err.Error(), id) {
			t.Errorf("error quotes the hostile id: %v", err)
		}
	}
}

func TestNewCorrelationID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewCorrelationID()
		if len(id) != 32 || !lowerHex(id) {
			t.Fatalf("id %q is not 32 lowercase hex", id)
		}
		if err := ValidateCorrelationID(id); err != nil {
			t.Fatal(err)
		}
		if seen[id] {
			t.Fatalf("duplicate id %s", id)
		}
		seen[id] = true
	}
}

func TestTraceIDFromTraceparent(t *testing.T) {
	const tid = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, tc := range []struct{ in, want string }{
		{"00-" + tid + "-00f067aa0ba902b7-01", tid},
		{"00-" + tid + "-00f067aa0ba902b7-00", tid},
		{"01-" + tid + "-00f067aa0ba902b7-01-future", tid}, // later versions may append
		{"00-" + tid + "-00f067aa0ba902b7-01-extra", ""},   // version 00 is exactly 55 bytes
		{"01-" + tid + "-00f067aa0ba902b7-01x", ""},
		{"ff-" + tid + "-00f067aa0ba902b7-01", ""},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", ""},
		{"00-" + tid + "-0000000000000000-01", ""},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", ""}, // uppercase is invalid
		{"00-" + tid + "-00f067aa0ba902b7", ""},
		{"", ""},
		{"garbage", ""},
		{strings.Repeat("-", 55), ""},
	} {
		if got := traceIDFromTraceparent(tc.in); got != tc.want {
			t.Errorf("traceIDFromTraceparent(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzValidateCorrelationID(f *testing.F) {
	for _, s := range []string{"abc", "4bf92f3577b34da6a3ce929d0e0e4736", "", "a\nb", strings.Repeat("z", 200), "é", "a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		err := ValidateCorrelationID(id)
		ok := len(id) >= 1 && len(id) <= MaxCorrelationIDLen
		for i := 0; i < len(id); i++ {
			c := id[i]
			if !(('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || strings.IndexByte("-_.:", c) >= 0) {
				ok = false
			}
		}
		if ok != (err == nil) {
			t.Fatalf("ValidateCorrelationID(%q) = %v, reference says valid=%v", id, err, ok)
		}
		if err != nil && !errors.Is(err, contract.ErrInvalid) {
			t.Fatalf("error %v is not contract.ErrInvalid", err)
		}
	})
}

func FuzzTraceparent(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Add("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		tid := traceIDFromTraceparent(v)
		if tid == "" {
			return
		}
		// A derived id is always a valid correlation id.
		if len(tid) != 32 || !lowerHex(tid) || allZero(tid) || ValidateCorrelationID(tid) != nil {
			t.Fatalf("traceIDFromTraceparent(%q) = %q", v, tid)
		}
	})
}
