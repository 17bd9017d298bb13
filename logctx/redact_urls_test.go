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
		// User information, opaque URLs.
		"https://:pw@example.com/",
		"https://u%40x:p%3Aw@example.com/",
		"urn:card:4111111111111111",
		"x:4111-1111-1111-1111?q=1#f",
		"mailto:a@b?subject=x",
		// IPv6 zones, ports.
		"http://[fe80::1%25eth0]:8080/x?a=1",
		"http://[fe80::1%252525]/",
		"https://example.com:4111111111111111/",
		"https://4111-1111-1111-1111/",
		// Escaped separators and escapes that unescape to digits.
		"https://example.com/a%2F4111111111111111",
		"https://example.com/a%3F4111111111111111",
		"https://example.com/x?a=%26b&c=d",
		"https://example.com/x?a%3Db=1",
		"https://example.com/x?a=%34%31%31%31%31%31%31%31%31%31%31%31",
		"https://example.com/x?a=%34%31%31%31%31%31%31%31%31%31%31%31%31",
		// '+' and %2B: a space in a query, a plus.
		"https://example.com/x?access+token=t",
		"https://example.com/x?access-token=t",
		"https://example.com/x?a=4111%2B1111%2B1111%2B1111",
		"https://example.com/x?a=4111+1111+1111+111",
		"https://example.com/a+4111+1111+1111+1111",
		// Semicolons.
		"https://example.com/a;4111111111111111",
		"https://example.com/x?a=1%3Bb=4111111111111111",
		"https://example.com/x#a=1;token=t",
		// Fragments.
		"https://example.com/#4111111111111111",
		"https://example.com/#a=4111%201111%201111%201111",
		"https://example.com/#token=t",
		"https://example.com/#%zz",
		"https://example.com/#a%2Fb=c",
		"https://example.com/x?#",
		// 13 to 19 digits split by separators a card number cannot span.
		"https://example.com/4111111111111/111",
		"https://example.com/x?a=41111111&b=11111111",
		"https://example.com/411111111/11111111?1111#1111",
		"https://example.com/4111-1111-1111-1111",
		"https://example.com/4111 1111 1111 1111/x",
		"https://example.com/x?a=4111-1111-1111-1111",
		"https://example.com/x?a=4111 1111 1111 1111",
		// Unicode digits, which are not card digits.
		"https://example.com/٤١١١١١١١١١١١١١١١",
		"https://example.com/x?a=４１１１１１１１１１１１１１１１",
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

// FuzzURLCleanFields: the same difference for a URL built field by field,
// as code builds one (url.Parse never returns a RawPath or RawFragment that
// disagrees with Path or Fragment, an Opaque beside a Host, or a Host with
// bytes String escapes).
func FuzzURLCleanFields(f *testing.F) {
	f.Add("https", "", "example.com", "/a/4111 1111", "", "x=1", "frag", "", false, false)
	f.Add("", "", "", "4111-1111-1111-1111", "/4111%2D1111", "a=1;b", "#x", "%23x", true, true)
	f.Add("x", "4111", "h", "/p", "", "", "1111-1111-1111", "", false, false)
	f.Add("", "", "h:4111", "1111-1111-1111", "", "", "", "", false, false)
	f.Add("https", "", "example.com", "/a", "/%34111111111111111", "", "a=1", "a=%31", false, false)
	r := newRedactor(HandlerConfig{})
	noScan := newRedactor(HandlerConfig{NoCardScan: true})
	f.Fuzz(func(t *testing.T, scheme, opaque, host, path, rawPath, rawQuery, frag, rawFrag string, forceQuery, omitHost bool) {
		u := &url.URL{Scheme: scheme, Opaque: opaque, Host: host, Path: path, RawPath: rawPath, RawQuery: rawQuery,
			Fragment: frag, RawFragment: rawFrag, ForceQuery: forceQuery, OmitHost: omitHost}
		for _, r := range []*redactor{r, noScan} {
			if !r.urlClean(u) {
				continue
			}
			if v, changed := r.urlRedacted(u); changed {
				t.Errorf("urlClean cleared %#v (scanPAN %v), which urlRedacted writes %q", u, r.scanPAN, v)
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
