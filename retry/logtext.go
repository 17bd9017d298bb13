package retry

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/sadpath/sadpath/internal/urlerr"
)

// logText is err's message as Do logs it: the URL of every *url.Error in
// err's tree (what an http.Client call fails with, as in
// `Get "https://user@host/v1/charges?api_key=…": dial tcp: …`) is shown as
// scheme://host/path, without the user info, query and fragment that may
// carry credentials; the rest of the message is kept. It is only called to
// write a record, never on the success path.
func logText(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	var buf [4]*url.Error
	ues := urlerr.Collect(err, buf[:0])
	// Longest first, so that a URL that extends another is replaced whole.
	for i := 1; i < len(ues); i++ {
		for j := i; j > 0 && len(ues[j].URL) > len(ues[j-1].URL); j-- {
			ues[j], ues[j-1] = ues[j-1], ues[j]
		}
	}
	for _, ue := range ues {
		raw := ue.URL
		clean := cleanURL(raw)
		if raw == clean {
			continue
		}
		s = strings.ReplaceAll(s, raw, clean)
		// url.Error quotes its URL (%q): one holding bytes that quoting
		// escapes appears in its escaped form.
		if q := strconv.Quote(raw); q[1:len(q)-1] != raw {
			cq := strconv.Quote(clean)
			s = strings.ReplaceAll(s, q[1:len(q)-1], cq[1:len(cq)-1])
		}
	}
	return s
}

// cleanURL is raw cut to scheme://host/path: without its query, fragment
// and user info. It works on the text, so a URL that does not parse is
// cleaned too.
func cleanURL(raw string) string {
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw = raw[:i]
	}
	scheme, rest := "", raw
	if i := strings.Index(raw, "//"); i >= 0 && !strings.Contains(raw[:i], "/") {
		scheme, rest = raw[:i+2], raw[i+2:]
	}
	host, path := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		host, path = rest[:i], rest[i:]
	}
	if i := strings.LastIndexByte(host, '@'); i >= 0 {
		host = host[i+1:]
	}
	if len(scheme)+len(host)+len(path) == len(raw) {
		return raw
	}
	return scheme + host + path
}
