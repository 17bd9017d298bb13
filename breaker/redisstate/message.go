package redisstate

import (
	"strconv"
	"strings"
	"time"

	"github.com/sadpath/sadpath/contract"
)

// A message published on a breaker's channel when an instance's breaker
// opens or closes: "open|<epoch>|<open for, ms>|<origin>" or
// "closed|<epoch>|0|<origin>".
type message struct {
	open    bool
	epoch   int64
	openFor time.Duration
	origin  string
}

const maxMessage = 512

// maxEpochAhead is how far ahead of this instance's clock an epoch may be.
// Epochs are Redis's time in milliseconds (see scripts.go), so an epoch a
// day ahead is not clock skew but garbage: applied, it would make every
// later, real epoch look old, and the instance would ignore them.
const maxEpochAhead = 24 * time.Hour

// checkEpoch rejects m when its epoch is more than maxEpochAhead ahead of
// now, this instance's clock, with the error parseMessage gives a bad
// message.
func (m message) checkEpoch(now time.Time) error {
	if m.epoch > now.Add(maxEpochAhead).UnixMilli() {
		return badMessage("epoch ahead of this instance's clock by more than " + maxEpochAhead.String())
	}
	return nil
}

func badMessage(why string) error {
	return contract.New(contract.KindInvalid, "redisstate", "bad message: "+why).WithCode("redisstate.bad_message")
}

func (m message) encode() string {
	st := "closed"
	if m.open {
		st = "open"
	}
	return st + "|" + strconv.FormatInt(m.epoch, 10) + "|" +
		strconv.FormatInt(m.openFor.Milliseconds(), 10) + "|" + m.origin
}

// parseMessage decodes a channel message. Anything else on the channel —
// empty, huge, malformed, out of range — is a *contract.Error of KindInvalid.
func parseMessage(s string) (message, error) {
	bad := func(why string) (message, error) {
		return message{}, badMessage(why)
	}
	if len(s) > maxMessage {
		return bad("too long")
	}
	parts := strings.SplitN(s, "|", 4)
	if len(parts) != 4 {
		return bad("want 4 fields")
	}
	var m message
	switch parts[0] {
	case "open":
		m.open = true
	case "closed":
	default:
		return bad("unknown state")
	}
	epoch, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || epoch < 0 {
		return bad("epoch")
	}
	ms, err := strconv.ParseInt(parts[2], 10, 64)
	const maxMs = int64(365 * 24 * time.Hour / time.Millisecond)
	if err != nil || ms < 0 || ms > maxMs {
		return bad("open duration")
	}
	if m.open && ms == 0 {
		return bad("open for 0ms")
	}
	if parts[3] == "" || strings.ContainsAny(parts[3], "|\n") {
		return bad("origin")
	}
	m.epoch, m.openFor, m.origin = epoch, time.Duration(ms)*time.Millisecond, parts[3]
	return m, nil
}
