package digest

import (
	"crypto/md5"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestResponseVectors(t *testing.T) {
	tests := []struct {
		name                                      string
		h                                         func() hash.Hash
		user, realm, pw                           string
		method, uri, nonce, nc, cnonce, qop, want string
	}{
		{"RFC 2617 3.5", md5.New, "Mufasa", "testrealm@host.com", "Circle Of Life",
			"GET", "/dir/index.html", "dcd98b7102dd2f0e8b11d0f600bfb0c093", "00000001", "0a4f113b", "auth",
			"6629fae49393a05397450978507c4ef1"},
		{"RFC 7616 3.9.1 MD5", md5.New, "Mufasa", "http-auth@example.org", "Circle of Life",
			"GET", "/dir/index.html", "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "00000001",
			"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", "auth", "8ca523f5e9506fed4657c9700eebdbec"},
		{"RFC 7616 3.9.1 SHA-256", sha256.New, "Mufasa", "http-auth@example.org", "Circle of Life",
			"GET", "/dir/index.html", "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "00000001",
			"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", "auth",
			"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.h()
			ha1 := hashJoin(h, tt.user, tt.realm, tt.pw)
			if got := response(h, ha1, tt.nonce, tt.nc, tt.cnonce, tt.qop, tt.method, tt.uri); got != tt.want {
				t.Fatalf("response = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParseParams(t *testing.T) {
	tests := []struct {
		in   string
		want []param
		bad  bool
	}{
		{in: ``, want: nil},
		{in: `a=b`, want: []param{{"a", "b", false}}},
		{in: `A="b"`, want: []param{{"a", "b", true}}},
		{in: ` UserName = "1001" ,Realm="x y"`, want: []param{{"username", "1001", true}, {"realm", "x y", true}}},
		{in: `uri="sip:a@b;x=1, y", nc=00000001`, want: []param{{"uri", "sip:a@b;x=1, y", true}, {"nc", "00000001", false}}},
		{in: `u="a\"b\\c"`, want: []param{{"u", `a"b\c`, true}}},
		{in: "a=b,\r\n\tc=d", want: []param{{"a", "b", false}, {"c", "d", false}}},
		{in: `a=b,,c=d,`, want: []param{{"a", "b", false}, {"c", "d", false}}},
		{in: `a=""`, want: []param{{"a", "", true}}},
		{in: `a`, bad: true},
		{in: `a=`, bad: true},
		{in: `=b`, bad: true},
		{in: `a="b`, bad: true},
		{in: `a="b\`, bad: true},
		{in: `a=b c=d`, bad: true},
		{in: `a="b"c`, bad: true},
		{in: `a=b"c"`, bad: true},
		{in: `a=(b)`, bad: true},
		{in: strings.Repeat("a=b,", maxParams+1), bad: true},
		{in: `a="` + strings.Repeat("x", maxHeaderLen) + `"`, bad: true},
	}
	for _, tt := range tests {
		got, err := parseParams(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("parseParams(%q) = %v, want error", tt.in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseParams(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestUsername(t *testing.T) {
	for in, want := range map[string]string{
		`Digest username="1001", realm="r"`: "1001",
		`digest USERNAME=1002`:              "1002",
		`Digest username="a\"b"`:            `a"b`,
		`Basic abc`:                         "",
		`Digest username="1001`:             "",
		``:                                  "",
	} {
		if got := Username(in); got != want {
			t.Errorf("Username(%q) = %q, want %q", in, got, want)
		}
	}
}

// validHeader returns a correct Authorization value for user 1001 against a
// fresh nonce of a, with the given nonce-count.
func validHeader(a *Authenticator, nonce string, nc int) string {
	ha1 := HA1("MD5", "1001", a.realm, "pw")
	ncs := fmt.Sprintf("%08x", nc)
	resp := response(md5.New(), ha1, nonce, ncs, "c0ffee", "auth", "REGISTER", "sip:x")
	return fmt.Sprintf(`Digest username="1001", realm=%s, nonce="%s", uri="sip:x", algorithm=MD5, `+
		`cnonce="c0ffee", qop=auth, nc=%s, opaque="%s", response="%s"`, quote(a.realm), nonce, ncs, a.opaque, resp)
}

func testLookup(u string) (Credentials, bool) {
	if u != "1001" {
		return Credentials{}, false
	}
	return Credentials{HA1MD5: HA1("MD5", u, "ringside", "pw"), HA1SHA256: HA1("SHA-256", u, "ringside", "pw")}, true
}

func TestNonceTableBounded(t *testing.T) {
	now := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	a := New(Config{Realm: "ringside", Now: clock, MaxNonces: 3, NonceTTL: time.Minute, MaxFailures: -1})
	src := netip.MustParseAddr("192.0.2.1")
	verify := func(h string) error {
		_, err := a.Verify(Request{Method: "REGISTER", Authorization: h, Source: src}, testLookup)
		return err
	}

	var nonces []string
	for i := range 5 {
		now = now.Add(time.Second)
		n := a.newNonce(now)
		nonces = append(nonces, n)
		if err := verify(validHeader(a, n, 1)); err != nil {
			t.Fatalf("nonce %d: %v", i, err)
		}
		if l := a.nonces.len(); l > 3 {
			t.Fatalf("table holds %d entries, cap 3", l)
		}
	}
	// The two evicted (still fresh) nonces must not become replayable: they
	// are answered stale. The kept ones still refuse replays and accept
	// higher counts.
	for i, n := range nonces {
		want := ErrReplay
		if i < 2 {
			want = ErrStaleNonce
		}
		if err := verify(validHeader(a, n, 1)); !errors.Is(err, want) {
			t.Errorf("reuse of nonce %d: %v, want %v", i, err, want)
		}
	}
	if err := verify(validHeader(a, nonces[4], 2)); err != nil {
		t.Errorf("nc=2 on a kept nonce: %v", err)
	}

	// Once every entry has expired, new nonces displace them without raising
	// the floor further.
	now = now.Add(2 * time.Minute)
	floor := a.nonces.floor
	for i := range 3 {
		now = now.Add(time.Second)
		if err := verify(validHeader(a, a.newNonce(now), 1)); err != nil {
			t.Fatalf("fresh nonce %d after expiry: %v", i, err)
		}
	}
	if a.nonces.floor != floor {
		t.Errorf("floor moved from %d to %d evicting expired entries", floor, a.nonces.floor)
	}
	if l := a.nonces.len(); l != 3 {
		t.Errorf("table holds %d entries, want 3", l)
	}
}

func TestLimiterBounded(t *testing.T) {
	now := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	a := New(Config{Realm: "ringside", Now: func() time.Time { return now }, MaxFailures: 2, MaxSourceFailures: 2, MaxSources: 4})
	fail := func(ip string) {
		a.Verify(Request{Method: "REGISTER", Authorization: "Digest x", Source: netip.MustParseAddr(ip)}, testLookup)
	}
	for i := range 100 {
		fail(fmt.Sprintf("10.0.%d.%d", i/256, i%256))
		now = now.Add(time.Millisecond)
		if l := a.limiter.len(); l > 4 {
			t.Fatalf("limiter holds %d sources, cap 4", l)
		}
	}
	// Idle sources are evicted first: a blocked source survives a sweep
	// that finds idle ones.
	now = now.Add(time.Hour)
	fail("192.0.2.1")
	fail("192.0.2.1")
	if !a.Blocked(netip.MustParseAddr("192.0.2.1")) {
		t.Fatal("not blocked")
	}
	for i := range 3 {
		fail(fmt.Sprintf("10.1.0.%d", i))
	}
	if !a.Blocked(netip.MustParseAddr("192.0.2.1")) {
		t.Fatal("blocked source evicted while idle ones were there")
	}
	// A success forgets the source entirely.
	now = now.Add(time.Hour)
	a.limiter.success(sourceKey(netip.MustParseAddr("10.1.0.0")))
	if _, ok := a.limiter.m[sourceKey(netip.MustParseAddr("10.1.0.0"))]; ok {
		t.Fatal("success did not forget the source")
	}
}

// FuzzVerify feeds arbitrary Authorization values through the parser and
// Verify: nothing may panic, every outcome is one of the documented errors,
// a made-up header never authenticates, and whatever parses survives a
// format/parse round trip unchanged.
func FuzzVerify(f *testing.F) {
	now := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	a := New(Config{Realm: "ringside", Now: func() time.Time { return now }, MaxFailures: -1, Secret: []byte("fuzz")})
	n := a.newNonce(now)
	for _, s := range []string{
		validHeader(a, n, 1),
		validHeader(a, n, 0xffffffff),
		strings.Replace(validHeader(a, n, 1), "algorithm=MD5", "algorithm=SHA-256", 1),
		`Digest username="1001", realm="ringside", nonce="abc", uri="sip:ringside", response="6629fae49393a05397450978507c4ef1"`,
		`Digest username="a\"b", realm="ringside", uri="sip:x;a=\"1,2\"", qop=auth, nc=1, cnonce=x`,
		`digest USERNAME=1001,,REALM=ringside`,
		"Digest a=b,\r\n\tc=\"d\"",
		`Digest `, `Digest`, `Basic x`, ``, `Digest "`, `Digest a="\`, `Digest ,=,`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		lookup := func(u string) (Credentials, bool) { return testLookup(u) }
		user, err := a.Verify(Request{Method: "REGISTER", Authorization: h, Source: netip.MustParseAddr("192.0.2.1")}, lookup)
		switch {
		case err == nil:
			// Only a correct response over a nonce of ours (the seeds'
			// nonces, from any fuzz worker sharing the secret) gets in.
			rest, _ := cutScheme(h)
			c, perr := parseAuthorization(rest)
			if perr != nil || user != "1001" || c.username != user {
				t.Fatalf("authenticated %q with %q", user, h)
			}
			if _, ok := a.checkNonce(c.nonce, now); !ok {
				t.Fatalf("authenticated with a nonce that is not ours: %q", h)
			}
		case errors.Is(err, ErrNoCredentials), errors.Is(err, ErrBadCredentials), errors.Is(err, ErrStaleNonce),
			errors.Is(err, ErrReplay):
			if user != "" {
				t.Fatalf("user %q returned with %v", user, err)
			}
		default:
			t.Fatalf("unexpected error %v", err)
		}
		_ = Username(h)

		rest, ok := cutScheme(h)
		if !ok {
			return
		}
		pp, err := parseParams(rest)
		if err != nil {
			return
		}
		var b strings.Builder
		for i, p := range pp {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(p.name + "=")
			if p.quoted {
				b.WriteString(quote(p.value))
			} else {
				b.WriteString(p.value)
			}
		}
		again, err := parseParams(b.String())
		if err != nil || !reflect.DeepEqual(pp, again) {
			t.Fatalf("round trip of %q: %v -> %q -> %v, %v", rest, pp, b.String(), again, err)
		}
	})
}
