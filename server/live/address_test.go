package live

import (
	"net/http"
	"testing"
)

// The per-address limit counts an IPv6 visitor by its /64, so one subscriber can't dodge
// it by hopping addresses; IPv4 (also IPv4-mapped) by its address; forwarded headers never.
func TestVisitorAddress(t *testing.T) {
	for remote, want := range map[string]string{
		"127.0.0.1:5000":              "127.0.0.1",
		"[::ffff:192.0.2.7]:5000":     "192.0.2.7",
		"[2001:db8:1:2:aaaa::1]:5000": "2001:db8:1:2::/64",
		"[2001:db8:1:2:bbbb::9]:6000": "2001:db8:1:2::/64",
		"[2001:db8:1:3::1]:5000":      "2001:db8:1:3::/64",
		"not an address":              "not an address",
	} {
		r := &http.Request{RemoteAddr: remote, Header: http.Header{"X-Forwarded-For": {"10.9.9.9"}}}
		if got := visitorAddress(r); got != want {
			t.Errorf("visitorAddress(%q) = %q, want %q", remote, got, want)
		}
	}
}
