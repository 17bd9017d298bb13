package redisstate

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
)

func TestMessageRoundTrip(t *testing.T) {
	for _, m := range []message{
		{open: true, epoch: 7, openFor: 1500 * time.Millisecond, origin: "pod-a"},
		{open: false, epoch: 8, origin: "b"},
	} {
		got, err := parseMessage(m.encode())
		if err != nil || got != m {
			t.Fatalf("parse(encode(%+v)) = %+v, %v", m, got, err)
		}
	}
}

func TestParseMessageRejects(t *testing.T) {
	for _, s := range []string{"", "|||", "open|1|1|", "open|1|1", "open|-1|1|a", "open|1|0|a", "opened|1|1|a",
		"open|1|1e3|a", "closed|1|0|a\nb", "open|99999999999999999999|1|a", strings.Repeat("x", 600)} {
		_, err := parseMessage(s)
		if !errors.Is(err, contract.ErrInvalid) {
			t.Errorf("parseMessage(%.40q) = %v, want KindInvalid", s, err)
		}
	}
}

func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{"open|1|1000|a", "closed|2|0|b", "", "open|x|1|a", "open|1|1|a|b", "\x00|\xff|1|"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseMessage(s)
		if err != nil {
			if contract.KindOf(err) != contract.KindInvalid {
				t.Fatalf("error of kind %v", contract.KindOf(err))
			}
			return
		}
		if m.epoch < 0 || m.openFor < 0 || m.origin == "" || (m.open && m.openFor < time.Millisecond) {
			t.Fatalf("accepted an invalid message %+v from %q", m, s)
		}
		again, err := parseMessage(m.encode())
		if err != nil || again != m {
			t.Fatalf("re-encoding %+v: %+v, %v", m, again, err)
		}
	})
}
