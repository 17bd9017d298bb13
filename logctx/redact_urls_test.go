package logctx

import (
	"net/url"
	"strings"
	"testing"
)

// urlClean clears a URL without writing it out only when urlRedacted
// would leave it as it is: it may send a clean URL to urlRedacted, never a
// URL with something to redact past it.
func FuzzURLClean(f *testing.F) {
	for _, raw := range []string{
		"https://api.example.com/v1/orders/1234",
		"https://api.example.com:8443/v1/orders?page=2&sort=created_at&limit=50",
		"https://api.example.com/search?q=red+shoes&redirect=https%3A%2F%2Fshop.example%2Fcb",
		"https://docs.example.com/guide#section-2",
		"https://example.com/a%2Fb/c?flag",
		"https://[::1]:8080/health",
		"https://[fe80::1%25en0]:8080/",
		"/relative/path?x=1",
		"mailto:ops@example.com",
		"jdbc:postgresql://u:pw@h/db",
		"https://bob:pw@example.com/",
		"https://ghp_token@github.com/org/repo.git",
		"https://example.com/cb?access_token=t&state=ok",
		"https://example.com/cb?access%5Ftoken=t",
		"https://example.com/cb?a%63cess_token=t",
		"https://example.com/cb?pin=1234",
		"https://example.com/cb#access_token=t&token_type=bearer",
		"https://example.com/cb#a%63cess_token=t",
		"https://example.com/cb#/route/a b",
		"https://example.com/x?%zz=bad",
		"https://example.com/x?a=%zz",
		"https://example.com/x?a=1;b=2",
		"https://example.com/x#a;b",
		"https://example.com/cards/4111111111111111",
		"https://example.com/cards/4111 1111 1111 1111",
		"https://example.com/x?ref=4111111111111111",
		"https://example.com/x?ref=4111+1111+1111+1111",
		"https://example.com/x?ref=4111%201111%201111%201111",
		"https://example.com/x?ref=%34111111111111111",
		"https://example.com/x?4111111111111111=a",
		"https://example.com/x#ref=4111-1111-1111-1111",
		"https://4111111111111111.example.com/",
		"https://example.com/%20411111111111111",
		"https://example.com/x#%20411111111111111",
		"https://münchen.example/",
	} {
		f.Add(raw)
	}
	r := newRedactor(HandlerConfig{})
	noScan := newRedactor(HandlerConfig{NoCardScan: true})
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		for _, r := range []*redactor{r, noScan} {
			if !r.urlClean(u) {
				continue
			}
			if v, changed := r.urlRedacted(u); changed {
				t.Errorf("urlClean cleared %q (scanPAN %v), which urlRedacted writes %q", raw, r.scanPAN, v)
			}
		}
	})
}

// urlClean takes the host, path and fragment as written when every byte
// of them is one the byte sets name: String must write those bytes as
// they are.
func TestURLCleanByteSets(t *testing.T) {
	for c := range 256 {
		b := string(rune(c))
		if c >= 0x80 {
			b = string([]byte{byte(c)})
		}
		if urlHostByte(byte(c)) {
			if got := (&url.URL{Scheme: "http", Host: "h" + b}).String(); got != "http://h"+b {
				t.Errorf("host byte %q written %q", b, got)
			}
		}
		if urlPathByte(byte(c)) {
			if got := (&url.URL{Path: "/p" + b}).EscapedPath(); got != "/p"+b {
				t.Errorf("path byte %q written %q", b, got)
			}
		}
		if urlFragmentByte(byte(c)) {
			if got := (&url.URL{Fragment: "f" + b}).EscapedFragment(); got != "f"+b {
				t.Errorf("fragment byte %q written %q", b, got)
			}
		}
	}
	// And the URLs of the allocation test are cleared, not merely clean.
	r := newRedactor(HandlerConfig{})
	for _, raw := range []string{
		"https://api.example.com:8443/v1/orders?page=2&sort=created_at&limit=50",
		"https://api.example.com/search?q=red+shoes&redirect=https%3A%2F%2Fshop.example%2Fcb",
		"https://docs.example.com/guide#section-2",
		"https://example.com/a%2Fb/c?flag",
	} {
		u, _ := url.Parse(raw)
		if !r.urlClean(u) {
			t.Errorf("%q not cleared", raw)
		}
	}
	// Escaped card numbers are not.
	for _, raw := range []string{
		"https://example.com/x?ref=4111+1111+1111+1111",
		"https://example.com/x?ref=4111%201111%201111%201111",
		"https://example.com/x?ref=%34111111111111111",
	} {
		u, _ := url.Parse(raw)
		if r.urlClean(u) {
			t.Errorf("%q cleared", raw)
		}
		v, _ := r.url(u)
		if strings.Contains(v.String(), "1111%201111") || strings.Contains(v.String(), "1111+1111") || !strings.Contains(v.String(), "1111") {
			t.Errorf("%q written %q", raw, v)
		}
	}
}
