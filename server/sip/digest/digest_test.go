package digest_test

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	client "github.com/icholy/digest"

	"ringside/server/sip/digest"
)

const realm = "ringside"

// clock is an injectable, manually advanced clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var passwords = map[string]string{
	"1001": "correct horse",
	"1002": "battery staple",
}

// lookup is the store the server consults: both HA1s per known user, as
// `ringside-media user add` would save them. User 1003 only has MD5.
func lookup(user string) (digest.Credentials, bool) {
	if user == "1003" {
		return digest.Credentials{HA1MD5: digest.HA1("MD5", user, realm, "md5 only")}, true
	}
	pw, ok := passwords[user]
	if !ok {
		return digest.Credentials{}, false
	}
	return digest.Credentials{
		HA1MD5:    digest.HA1("MD5", user, realm, pw),
		HA1SHA256: digest.HA1("SHA-256", user, realm, pw),
	}, true
}

func newAuth(t testing.TB, c *clock, mod func(*digest.Config)) *digest.Authenticator {
	t.Helper()
	cfg := digest.Config{Realm: realm, Now: c.Now, Algorithms: []string{"SHA-256", "MD5"}}
	if mod != nil {
		mod(&cfg)
	}
	if cfg.MaxSourceFailures == 0 {
		// These tests fail one user name at a time: block the source as soon as the account.
		cfg.MaxSourceFailures = cmp.Or(cfg.MaxFailures, digest.DefaultMaxFailures)
	}
	return digest.New(cfg)
}

// phone answers a challenge the way a SIP phone does, with the independent
// client implementation github.com/icholy/digest.
type phone struct {
	user, password string
	method, uri    string
	nc             int
	mutate         func(*client.Challenge) // optional: edit the challenge first
}

func (p phone) answer(t testing.TB, challenge string) string {
	t.Helper()
	chal, err := client.ParseChallenge(challenge)
	if err != nil {
		t.Fatalf("client cannot parse challenge %q: %v", challenge, err)
	}
	if p.mutate != nil {
		p.mutate(chal)
	}
	method, uri := p.method, p.uri
	if method == "" {
		method = "REGISTER"
	}
	if uri == "" {
		uri = "sip:127.0.0.1:5060"
	}
	cred, err := client.Digest(chal, client.Options{
		Method: method, URI: uri, Username: p.user, Password: p.password, Count: p.nc,
	})
	if err != nil {
		t.Fatalf("client digest: %v", err)
	}
	return cred.String()
}

var src = netip.MustParseAddr("192.0.2.10")

// challenge returns the challenge for algorithm ("SHA-256" or "MD5").
func challenge(t testing.TB, a *digest.Authenticator, alg string, stale bool) string {
	t.Helper()
	for _, ch := range a.Challenges(stale) {
		if strings.Contains(ch, "algorithm="+alg+",") {
			return ch
		}
	}
	t.Fatalf("no %s challenge", alg)
	return ""
}

func TestChallenges(t *testing.T) {
	c := newClock()
	a := newAuth(t, c, nil)
	for _, stale := range []bool{false, true} {
		chs := a.Challenges(stale)
		if len(chs) != 2 {
			t.Fatalf("got %d challenges, want 2", len(chs))
		}
		var nonces []string
		for i, want := range []string{"SHA-256", "MD5"} {
			ch, err := client.ParseChallenge(chs[i])
			if err != nil {
				t.Fatalf("challenge %q: %v", chs[i], err)
			}
			if !strings.HasPrefix(chs[i], `Digest realm="ringside", nonce="`) {
				t.Errorf("challenge %q: unexpected form", chs[i])
			}
			if ch.Algorithm != want || ch.Realm != realm || !ch.SupportsQOP("auth") || len(ch.QOP) != 1 ||
				ch.Opaque == "" || ch.Nonce == "" || ch.Stale != stale {
				t.Errorf("challenge %d = %+v (%q), want algorithm %s stale %v", i, ch, chs[i], want, stale)
			}
			if strings.Contains(chs[i], "stale=") != stale {
				t.Errorf("challenge %q: stale param present = %v, want %v", chs[i], !stale, stale)
			}
			nonces = append(nonces, ch.Nonce)
		}
		if nonces[0] != nonces[1] {
			t.Errorf("the two challenges carry different nonces")
		}
	}
	n1, _ := client.ParseChallenge(a.Challenges(false)[0])
	n2, _ := client.ParseChallenge(a.Challenges(false)[0])
	if n1.Nonce == n2.Nonce {
		t.Errorf("two challenges at the same instant share nonce %q", n1.Nonce)
	}
	// A realm that needs escaping stays a valid quoted-string.
	odd := digest.New(digest.Config{Realm: `a"b\c`, Algorithms: []string{"SHA-256", "MD5"}})
	ch, err := client.ParseChallenge(odd.Challenges(false)[0])
	if err != nil || ch.Realm != `a"b\c` {
		t.Errorf("escaped realm: %+v, %v", ch, err)
	}
}

func TestHA1(t *testing.T) {
	tests := []struct{ alg, user, realm, pw, want string }{
		// RFC 2617 §3.5.
		{"MD5", "Mufasa", "testrealm@host.com", "Circle Of Life", "939e7578ed9e3c518a452acee763bce9"},
		{"", "Mufasa", "testrealm@host.com", "Circle Of Life", "939e7578ed9e3c518a452acee763bce9"},
		{"md5", "Mufasa", "testrealm@host.com", "Circle Of Life", "939e7578ed9e3c518a452acee763bce9"},
		// sha256("Mufasa:http-auth@example.org:Circle of Life") (RFC 7616 §3.9.1 inputs).
		{"SHA-256", "Mufasa", "http-auth@example.org", "Circle of Life", "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232"},
		{"SHA-512", "a", "b", "c", ""},
		{"MD5-sess", "a", "b", "c", ""},
	}
	for _, tt := range tests {
		if got := digest.HA1(tt.alg, tt.user, tt.realm, tt.pw); got != tt.want {
			t.Errorf("HA1(%q, %q, %q, %q) = %q, want %q", tt.alg, tt.user, tt.realm, tt.pw, got, tt.want)
		}
	}
}

func TestVerifyInterop(t *testing.T) {
	tests := []struct {
		name   string
		alg    string
		phone  phone
		stale  bool
		header func(string) string // optional rewrite of the phone's header
	}{
		{name: "SHA-256 REGISTER", alg: "SHA-256", phone: phone{user: "1001", password: "correct horse"}},
		{name: "MD5 REGISTER", alg: "MD5", phone: phone{user: "1001", password: "correct horse"}},
		{name: "SHA-256 INVITE", alg: "SHA-256", phone: phone{user: "1002", password: "battery staple", method: "INVITE", uri: "sip:*11001@127.0.0.1"}},
		{name: "MD5 INVITE", alg: "MD5", phone: phone{user: "1002", password: "battery staple", method: "INVITE", uri: "sip:5551234@127.0.0.1;user=phone"}},
		{name: "answer to stale challenge", alg: "SHA-256", stale: true, phone: phone{user: "1001", password: "correct horse"}},
		{name: "MD5 only user", alg: "MD5", phone: phone{user: "1003", password: "md5 only"}},
		{name: "algorithm absent means MD5", alg: "MD5", phone: phone{user: "1001", password: "correct horse",
			mutate: func(c *client.Challenge) { c.Algorithm = "" }}},
		{name: "RFC 2069 without qop", alg: "MD5", phone: phone{user: "1001", password: "correct horse",
			mutate: func(c *client.Challenge) { c.QOP = nil }}},
		{name: "nc starting above 1", alg: "SHA-256", phone: phone{user: "1001", password: "correct horse", nc: 7}},
		{name: "lower-case scheme and algorithm, upper-case hex", alg: "SHA-256", phone: phone{user: "1001", password: "correct horse"},
			header: func(h string) string {
				h = strings.Replace(h, "Digest ", "digest ", 1)
				h = strings.Replace(h, "algorithm=SHA-256", "ALGORITHM=sha-256", 1)
				i := strings.Index(h, `response="`) + len(`response="`)
				return h[:i] + strings.ToUpper(h[i:])
			}},
		{name: "no opaque echoed", alg: "MD5", phone: phone{user: "1001", password: "correct horse",
			mutate: func(c *client.Challenge) { c.Opaque = "" }}},
		{name: "unquoted values and odd spacing", alg: "MD5", phone: phone{user: "1001", password: "correct horse"},
			header: func(h string) string {
				h = strings.ReplaceAll(h, ", ", " ,\t")
				return strings.Replace(h, `qop=auth`, `qop = "auth"`, 1)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			a := newAuth(t, c, nil)
			h := tt.phone.answer(t, challenge(t, a, tt.alg, tt.stale))
			if tt.header != nil {
				h = tt.header(h)
			}
			method := tt.phone.method
			if method == "" {
				method = "REGISTER"
			}
			c.Advance(time.Second)
			user, err := a.Verify(digest.Request{Method: method, Authorization: h, Source: src}, lookup)
			if err != nil || user != tt.phone.user {
				t.Fatalf("Verify(%q) = %q, %v; want %q, nil", h, user, err, tt.phone.user)
			}
			if got := digest.Username(h); got != tt.phone.user {
				t.Errorf("Username = %q, want %q", got, tt.phone.user)
			}
		})
	}
}

func TestWrongPasswordAndUnknownUserAreAlike(t *testing.T) {
	tests := []struct {
		name, alg, user, password string
	}{
		{"wrong password SHA-256", "SHA-256", "1001", "wrong"},
		{"wrong password MD5", "MD5", "1001", "wrong"},
		{"unknown user SHA-256", "SHA-256", "9999", "correct horse"},
		{"unknown user MD5", "MD5", "9999", "correct horse"},
		{"other user's password", "MD5", "1002", "correct horse"},
		{"user without a SHA-256 secret", "SHA-256", "1003", "md5 only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			a := newAuth(t, c, nil)
			h := phone{user: tt.user, password: tt.password}.answer(t, challenge(t, a, tt.alg, false))
			user, err := a.Verify(digest.Request{Method: "REGISTER", Authorization: h, Source: src}, lookup)
			if !errors.Is(err, digest.ErrBadCredentials) || user != "" {
				t.Fatalf("Verify = %q, %v; want ErrBadCredentials", user, err)
			}
		})
	}
}

func TestWrongMethodOrURIRejected(t *testing.T) {
	c := newClock()
	a := newAuth(t, c, nil)
	h := phone{user: "1001", password: "correct horse", method: "INVITE"}.answer(t, challenge(t, a, "MD5", false))
	if _, err := a.Verify(digest.Request{Method: "REGISTER", Authorization: h, Source: src}, lookup); !errors.Is(err, digest.ErrBadCredentials) {
		t.Errorf("response for INVITE used on REGISTER: %v, want ErrBadCredentials", err)
	}
	h = strings.Replace(h, `uri="sip:127.0.0.1:5060"`, `uri="sip:127.0.0.2:5060"`, 1)
	if _, err := a.Verify(digest.Request{Method: "INVITE", Authorization: h, Source: src}, lookup); !errors.Is(err, digest.ErrBadCredentials) {
		t.Errorf("edited uri: %v, want ErrBadCredentials", err)
	}
}

func TestStaleNonce(t *testing.T) {
	const ttl = 5 * time.Minute
	tests := []struct {
		name     string
		age      time.Duration
		password string
		want     error
	}{
		{"fresh", time.Second, "correct horse", nil},
		{"exactly at TTL", ttl, "correct horse", nil},
		{"just past TTL", ttl + time.Nanosecond, "correct horse", digest.ErrStaleNonce},
		{"long past TTL", 3 * time.Hour, "correct horse", digest.ErrStaleNonce},
		{"past TTL with wrong password", ttl + time.Second, "wrong", digest.ErrBadCredentials},
	}
	for _, tt := range tests {
		for _, alg := range []string{"SHA-256", "MD5"} {
			t.Run(tt.name+" "+alg, func(t *testing.T) {
				c := newClock()
				a := newAuth(t, c, nil)
				h := phone{user: "1001", password: tt.password}.answer(t, challenge(t, a, alg, false))
				c.Advance(tt.age)
				user, err := a.Verify(digest.Request{Method: "REGISTER", Authorization: h, Source: src}, lookup)
				if !errors.Is(err, tt.want) || (err == nil) != (user == "1001") {
					t.Fatalf("Verify = %q, %v; want %v", user, err, tt.want)
				}
				if err == digest.ErrStaleNonce {
					// The phone retries against the stale challenge and gets in.
					h := phone{user: "1001", password: tt.password}.answer(t, challenge(t, a, alg, true))
					if user, err := a.Verify(digest.Request{Method: "REGISTER", Authorization: h, Source: src}, lookup); err != nil || user != "1001" {
						t.Fatalf("retry after stale = %q, %v", user, err)
					}
				}
			})
		}
	}
}

func TestForgedNonce(t *testing.T) {
	c := newClock()
	secret := []byte("cluster secret")
	a := newAuth(t, c, func(cfg *digest.Config) { cfg.Secret = secret })
	other := newAuth(t, c, nil) // a different secret, e.g. before a restart
	twin := newAuth(t, c, func(cfg *digest.Config) { cfg.Secret = secret })

	good := challenge(t, a, "MD5", false)
	goodChal, _ := client.ParseChallenge(good)
	nonce := goodChal.Nonce

	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	withNonce := func(n string) func(*client.Challenge) {
		return func(c *client.Challenge) { c.Nonce = n }
	}
	tests := []struct {
		name     string
		chal     string
		mutate   func(*client.Challenge)
		password string
		want     error
	}{
		{"nonce from another secret, right password", challenge(t, other, "MD5", false), nil, "correct horse", digest.ErrStaleNonce},
		{"nonce from another secret, wrong password", challenge(t, other, "MD5", false), nil, "wrong", digest.ErrBadCredentials},
		{"timestamp bytes altered", good, withNonce(flip(nonce, 3)), "correct horse", digest.ErrStaleNonce},
		{"salt altered", good, withNonce(flip(nonce, 12)), "correct horse", digest.ErrStaleNonce},
		{"mac altered", good, withNonce(flip(nonce, len(nonce)-2)), "correct horse", digest.ErrStaleNonce},
		{"made-up nonce", good, withNonce("dcd98b7102dd2f0e8b11d0f600bfb0c093"), "correct horse", digest.ErrStaleNonce},
		{"made-up nonce, wrong password", good, withNonce("dcd98b7102dd2f0e8b11d0f600bfb0c093"), "wrong", digest.ErrBadCredentials},
		{"not base64", good, withNonce(strings.Repeat("*", len(nonce))), "correct horse", digest.ErrStaleNonce},
		{"truncated", good, withNonce(nonce[:len(nonce)-1]), "correct horse", digest.ErrStaleNonce},
		{"opaque altered", good, func(c *client.Challenge) { c.Opaque = "x" + c.Opaque }, "correct horse", digest.ErrStaleNonce},
		{"genuine nonce", good, nil, "correct horse", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := phone{user: "1001", password: tt.password, mutate: tt.mutate}.answer(t, tt.chal)
			user, err := a.Verify(digest.Request{Method: "REGISTER", Authorization: h, Source: src}, lookup)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %q, %v; want %v", user, err, tt.want)
			}
			if err != nil && user != "" {
				t.Fatalf("user %q returned with error", user)
			}
		})
	}
	// A process sharing the secret accepts the nonce (stateless nonces).
	h := phone{user: "1002", password: "battery staple"}.answer(t, challenge(t, a, "SHA-256", false))
	if user, err := twin.Verify(digest.Request{Method: "REGISTER", Authorization: h, Source: src}, lookup); err != nil || user != "1002" {
		t.Fatalf("twin Verify = %q, %v", user, err)
	}
}

func TestReplay(t *testing.T) {
	type step struct {
		nc   int
		want error
	}
	tests := []struct {
		name  string
		alg   string
		steps []step
	}{
		{"increasing", "SHA-256", []step{{1, nil}, {2, nil}, {3, nil}}},
		{"same nc twice", "SHA-256", []step{{1, nil}, {1, digest.ErrReplay}}},
		{"gaps allowed", "MD5", []step{{1, nil}, {5, nil}, {0x100, nil}}},
		{"going back", "MD5", []step{{1, nil}, {4, nil}, {3, digest.ErrReplay}, {4, digest.ErrReplay}, {5, nil}}},
		{"max nc", "MD5", []step{{0xffffffff, nil}, {0xffffffff, digest.ErrReplay}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			a := newAuth(t, c, nil)
			ch := challenge(t, a, tt.alg, false)
			for i, s := range tt.steps {
				c.Advance(time.Second)
				h := phone{user: "1001", password: "correct horse", nc: s.nc}.answer(t, ch)
				if _, err := a.Verify(digest.Request{Method: "REGISTER", Authorization: h, Source: src}, lookup); !errors.Is(err, s.want) {
					t.Fatalf("step %d nc=%d: %v, want %v", i, s.nc, err, s.want)
				}
			}
		})
	}

	t.Run("identical header resent", func(t *testing.T) {
		c := newClock()
		a := newAuth(t, c, nil)
		h := phone{user: "1001", password: "correct horse"}.answer(t, challenge(t, a, "SHA-256", false))
		req := digest.Request{Method: "REGISTER", Authorization: h, Source: src}
		if _, err := a.Verify(req, lookup); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Verify(req, lookup); !errors.Is(err, digest.ErrReplay) {
			t.Fatalf("replay: %v, want ErrReplay", err)
		}
		// Replays are not failures: they do not lead to a block.
		for range 10 {
			a.Verify(req, lookup)
		}
		if a.Blocked(src) {
			t.Fatal("replays blocked the source")
		}
	})

	t.Run("without qop only once", func(t *testing.T) {
		c := newClock()
		a := newAuth(t, c, nil)
		ch := challenge(t, a, "MD5", false)
		noQOP := func(c *client.Challenge) { c.QOP = nil }
		h := phone{user: "1001", password: "correct horse", mutate: noQOP}.answer(t, ch)
		req := digest.Request{Method: "REGISTER", Authorization: h, Source: src}
		if _, err := a.Verify(req, lookup); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Verify(req, lookup); !errors.Is(err, digest.ErrReplay) {
			t.Fatalf("second qop-less use: %v, want ErrReplay", err)
		}
		// Nor may the nonce then be used with qop.
		h = phone{user: "1001", password: "correct horse", nc: 9}.answer(t, ch)
		if _, err := a.Verify(digest.Request{Method: "REGISTER", Authorization: h, Source: src}, lookup); !errors.Is(err, digest.ErrReplay) {
			t.Fatalf("qop use after qop-less use: %v, want ErrReplay", err)
		}
	})

	t.Run("qop then without qop", func(t *testing.T) {
		c := newClock()
		a := newAuth(t, c, nil)
		ch := challenge(t, a, "MD5", false)
		h := phone{user: "1001", password: "correct horse"}.answer(t, ch)
		if _, err := a.Verify(digest.Request{Method: "REGISTER", Authorization: h, Source: src}, lookup); err != nil {
			t.Fatal(err)
		}
		h = phone{user: "1001", password: "correct horse", mutate: func(c *client.Challenge) { c.QOP = nil }}.answer(t, ch)
		if _, err := a.Verify(digest.Request{Method: "REGISTER", Authorization: h, Source: src}, lookup); !errors.Is(err, digest.ErrReplay) {
			t.Fatalf("qop-less reuse: %v, want ErrReplay", err)
		}
	})
}

func TestRateLimit(t *testing.T) {
	const (
		window     = time.Minute
		backoff    = time.Minute
		maxBackoff = 4 * time.Minute
	)
	c := newClock()
	a := newAuth(t, c, func(cfg *digest.Config) {
		cfg.MaxFailures = 3
		cfg.Window = window
		cfg.Backoff = backoff
		cfg.MaxBackoff = maxBackoff
	})
	ok := func(from netip.Addr) error {
		h := phone{user: "1001", password: "correct horse"}.answer(t, challenge(t, a, "SHA-256", false))
		_, err := a.Verify(digest.Request{Method: "REGISTER", Authorization: h, Source: from}, lookup)
		return err
	}
	bad := func(from netip.Addr) error {
		h := phone{user: "1001", password: "guess"}.answer(t, challenge(t, a, "SHA-256", false))
		_, err := a.Verify(digest.Request{Method: "REGISTER", Authorization: h, Source: from}, lookup)
		return err
	}
	expect := func(step string, got, want error) {
		t.Helper()
		if !errors.Is(got, want) {
			t.Fatalf("%s: %v, want %v", step, got, want)
		}
	}
	blocked := func(step string, from netip.Addr, want bool) {
		t.Helper()
		if got := a.Blocked(from); got != want {
			t.Fatalf("%s: Blocked(%v) = %v, want %v", step, from, got, want)
		}
	}
	other := netip.MustParseAddr("198.51.100.7")

	// Failures spread wider than the window never block.
	for i := range 6 {
		expect(fmt.Sprint("spread failure ", i), bad(src), digest.ErrBadCredentials)
		c.Advance(window / 2)
	}
	blocked("spread failures", src, false)
	c.Advance(time.Hour)

	// MaxFailures within the window block.
	expect("failure 1", bad(src), digest.ErrBadCredentials)
	expect("failure 2", bad(src), digest.ErrBadCredentials)
	blocked("after 2 failures", src, false)
	expect("failure 3", bad(src), digest.ErrBadCredentials)
	blocked("after 3 failures", src, true)
	blocked("other source", other, false)
	expect("other source still served", ok(other), nil)

	calls := 0
	h := phone{user: "1001", password: "correct horse"}.answer(t, challenge(t, a, "SHA-256", false))
	_, err := a.Verify(digest.Request{Method: "REGISTER", Authorization: h, Source: src},
		func(u string) (digest.Credentials, bool) { calls++; return lookup(u) })
	expect("right password while blocked", err, digest.ErrRateLimited)
	if calls != 0 {
		t.Fatal("lookup called for a blocked source")
	}
	_, err = a.Verify(digest.Request{Method: "REGISTER", Source: src}, lookup)
	expect("no credentials while blocked", err, digest.ErrRateLimited)

	// The block lifts after the back-off.
	c.Advance(backoff - time.Nanosecond)
	blocked("just before the back-off ends", src, true)
	c.Advance(time.Nanosecond)
	blocked("back-off over", src, false)

	// Continued failures block again at once, for twice as long, up to the cap.
	for i, d := range []time.Duration{2 * backoff, 4 * backoff, maxBackoff, maxBackoff} {
		expect(fmt.Sprint("continued failure ", i), bad(src), digest.ErrBadCredentials)
		blocked(fmt.Sprint("continued failure ", i), src, true)
		c.Advance(d - time.Nanosecond)
		blocked(fmt.Sprint("end of back-off ", d), src, true)
		c.Advance(time.Nanosecond)
		blocked(fmt.Sprint("after back-off ", d), src, false)
	}

	// A success resets the source: it takes MaxFailures again to block.
	expect("success", ok(src), nil)
	expect("failure after success 1", bad(src), digest.ErrBadCredentials)
	expect("failure after success 2", bad(src), digest.ErrBadCredentials)
	blocked("two failures after success", src, false)
	expect("failure after success 3", bad(src), digest.ErrBadCredentials)
	blocked("three failures after success", src, true)
	c.Advance(backoff)

	// Staying quiet for MaxBackoff after a block forgives the back-off.
	c.Advance(maxBackoff)
	expect("failure after quiet", bad(src), digest.ErrBadCredentials)
	blocked("one failure after a quiet period", src, false)

	// Malformed headers and unknown users count as failures too.
	c.Advance(time.Hour)
	_, err = a.Verify(digest.Request{Method: "REGISTER", Authorization: "Digest garbage", Source: src}, lookup)
	expect("malformed", err, digest.ErrBadCredentials)
	h = phone{user: "4242", password: "x"}.answer(t, challenge(t, a, "MD5", false))
	_, err = a.Verify(digest.Request{Method: "REGISTER", Authorization: h, Source: src}, lookup)
	expect("unknown user", err, digest.ErrBadCredentials)
	expect("wrong password", bad(src), digest.ErrBadCredentials)
	blocked("mixed failures", src, true)

	// Missing credentials (the first REGISTER of every phone) are not failures.
	c.Advance(time.Hour)
	for range 10 {
		_, err := a.Verify(digest.Request{Method: "REGISTER", Source: other}, lookup)
		expect("no credentials", err, digest.ErrNoCredentials)
	}
	blocked("after requests without credentials", other, false)
}

func TestRateLimitAddressBuckets(t *testing.T) {
	tests := []struct {
		name      string
		fail, see string
		shared    bool
	}{
		{"same IPv4", "192.0.2.1", "192.0.2.1", true},
		{"other IPv4", "192.0.2.1", "192.0.2.2", false},
		{"IPv4-mapped IPv6", "::ffff:192.0.2.1", "192.0.2.1", true},
		{"same IPv6 /64", "2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true},
		{"other IPv6 /64", "2001:db8:1:2::1", "2001:db8:1:3::1", false},
		{"IPv6 zone ignored", "fe80::1%eth0", "fe80::2", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			a := newAuth(t, c, func(cfg *digest.Config) { cfg.MaxFailures = 2 })
			for range 2 {
				a.Verify(digest.Request{Method: "REGISTER", Authorization: "Digest x", Source: netip.MustParseAddr(tt.fail)}, lookup)
			}
			if got := a.Blocked(netip.MustParseAddr(tt.see)); got != tt.shared {
				t.Fatalf("Blocked(%s) after failures from %s = %v, want %v", tt.see, tt.fail, got, tt.shared)
			}
		})
	}
}

func TestRateLimitDisabled(t *testing.T) {
	c := newClock()
	a := newAuth(t, c, func(cfg *digest.Config) { cfg.MaxFailures = -1 })
	for range 100 {
		_, err := a.Verify(digest.Request{Method: "REGISTER", Authorization: "Digest x", Source: src}, lookup)
		if !errors.Is(err, digest.ErrBadCredentials) {
			t.Fatal(err)
		}
	}
	if a.Blocked(src) {
		t.Fatal("blocked with rate limiting disabled")
	}
}

// edit describes how a malformed case changes a valid header g.
type edit func(t *testing.T, g string) string

func lit(h string) edit { return func(*testing.T, string) string { return h } }

func appendTo(suffix string) edit { return func(_ *testing.T, g string) string { return g + suffix } }

func replace(old, new string) edit {
	return func(t *testing.T, g string) string {
		if !strings.Contains(g, old) {
			t.Fatalf("%q not in %q", old, g)
		}
		return strings.Replace(g, old, new, 1)
	}
}

// paramText returns the `name=value` text of a param in g.
func paramText(g, name string) string {
	i := strings.Index(g, " "+name+"=") + 1
	j := strings.Index(g[i:], ", ")
	if j < 0 {
		return g[i:]
	}
	return g[i : i+j]
}

func setParam(name, text string) edit {
	return func(t *testing.T, g string) string { return strings.Replace(g, paramText(g, name), text, 1) }
}

func drop(name string) edit {
	return func(t *testing.T, g string) string {
		p := paramText(g, name)
		if strings.HasSuffix(g, p) {
			return strings.TrimSuffix(g, ", "+p)
		}
		return strings.Replace(g, p+", ", "", 1)
	}
}

func TestMalformed(t *testing.T) {
	tests := []struct {
		name string
		edit edit
		want error
	}{
		{"empty", lit(""), digest.ErrNoCredentials},
		{"blank", lit("   "), digest.ErrNoCredentials},
		{"basic", lit("Basic dXNlcjpwYXNz"), digest.ErrNoCredentials},
		{"scheme glued", lit(`Digestusername="1001"`), digest.ErrNoCredentials},
		{"scheme only", lit("Digest"), digest.ErrBadCredentials},
		{"scheme and space", lit("Digest   "), digest.ErrBadCredentials},
		{"no params", lit("Digest ,,, "), digest.ErrBadCredentials},
		{"bare word", lit("Digest garbage"), digest.ErrBadCredentials},
		{"missing value", lit(`Digest username=`), digest.ErrBadCredentials},
		{"missing name", lit(`Digest ="x"`), digest.ErrBadCredentials},
		{"unterminated quote", lit(`Digest username="1001`), digest.ErrBadCredentials},
		{"dangling escape", lit(`Digest username="1001\`), digest.ErrBadCredentials},
		{"NUL bytes", lit("Digest username=\"\x00\", \x00"), digest.ErrBadCredentials},
		{"invalid UTF-8", lit("Digest username=\"\xff\xfe\""), digest.ErrBadCredentials},
		{"huge", lit("Digest " + strings.Repeat(`a="b", `, 2000)), digest.ErrBadCredentials},
		{"many params", func(_ *testing.T, g string) string {
			return "Digest " + strings.Repeat("x=y, ", 40) + strings.TrimPrefix(g, "Digest ")
		}, digest.ErrBadCredentials},
		{"missing comma", replace(`", realm=`, `" realm=`), digest.ErrBadCredentials},
		{"trailing junk", appendTo(` "x"`), digest.ErrBadCredentials},
		{"duplicate username", appendTo(`, username="1002"`), digest.ErrBadCredentials},
		{"duplicate username other case", appendTo(`, UserName="1001"`), digest.ErrBadCredentials},
		{"duplicate response", appendTo(`, response="00000000000000000000000000000000"`), digest.ErrBadCredentials},
		{"wrong realm", replace(`realm="ringside"`, `realm="other"`), digest.ErrBadCredentials},
		{"realm case differs", replace(`realm="ringside"`, `realm="Ringside"`), digest.ErrBadCredentials},
		{"no realm", drop("realm"), digest.ErrBadCredentials},
		{"no uri", drop("uri"), digest.ErrBadCredentials},
		{"empty uri", setParam("uri", `uri=""`), digest.ErrBadCredentials},
		{"no username", drop("username"), digest.ErrBadCredentials},
		{"empty username", setParam("username", `username=""`), digest.ErrBadCredentials},
		{"no nonce", drop("nonce"), digest.ErrBadCredentials},
		{"no response", drop("response"), digest.ErrBadCredentials},
		{"short response", setParam("response", `response="abc"`), digest.ErrBadCredentials},
		{"non-hex response", setParam("response", `response="zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"`), digest.ErrBadCredentials},
		{"MD5-sess", replace("algorithm=MD5", "algorithm=MD5-sess"), digest.ErrBadCredentials},
		{"SHA-256-sess", replace("algorithm=MD5", "algorithm=SHA-256-sess"), digest.ErrBadCredentials},
		{"SHA-512-256", replace("algorithm=MD5", "algorithm=SHA-512-256"), digest.ErrBadCredentials},
		{"algorithm mismatch", replace("algorithm=MD5", "algorithm=SHA-256"), digest.ErrBadCredentials},
		{"auth-int", replace("qop=auth", "qop=auth-int"), digest.ErrBadCredentials},
		{"qop list", replace("qop=auth", `qop="auth,auth-int"`), digest.ErrBadCredentials},
		{"qop without nc", drop("nc"), digest.ErrBadCredentials},
		{"qop without cnonce", drop("cnonce"), digest.ErrBadCredentials},
		{"nc zero", replace("nc=00000001", "nc=00000000"), digest.ErrBadCredentials},
		{"nc too long", replace("nc=00000001", "nc=000000001"), digest.ErrBadCredentials},
		{"nc not hex", replace("nc=00000001", "nc=0000000g"), digest.ErrBadCredentials},
		{"nc negative", replace("nc=00000001", "nc=-1"), digest.ErrBadCredentials},
		{"nc without qop", drop("qop"), digest.ErrBadCredentials},
		{"userhash", appendTo(", userhash=true"), digest.ErrBadCredentials},
		// Sanity: the unbroken header and harmless variations pass.
		{"unbroken", func(_ *testing.T, g string) string { return g }, nil},
		{"userhash=false", appendTo(", userhash=false"), nil},
		{"unknown params ignored", appendTo(`, foo="bar, \"baz\"", x=1`), nil},
	}
	c := newClock()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAuth(t, c, func(cfg *digest.Config) { cfg.MaxFailures = -1 })
			good := phone{user: "1001", password: "correct horse"}.answer(t, challenge(t, a, "MD5", false))
			h := tt.edit(t, good)
			user, err := a.Verify(digest.Request{Method: "REGISTER", Authorization: h, Source: src}, lookup)
			if !errors.Is(err, tt.want) || (err != nil && user != "") || (err == nil && user != "1001") {
				t.Fatalf("Verify(%q) = %q, %v; want %v", h, user, err, tt.want)
			}
		})
	}
	t.Run("empty method", func(t *testing.T) {
		a := newAuth(t, c, nil)
		h := phone{user: "1001", password: "correct horse"}.answer(t, challenge(t, a, "MD5", false))
		if _, err := a.Verify(digest.Request{Authorization: h, Source: src}, lookup); !errors.Is(err, digest.ErrBadCredentials) {
			t.Fatalf("empty method: %v", err)
		}
	})
}

func TestConcurrent(t *testing.T) {
	c := newClock()
	a := newAuth(t, c, func(cfg *digest.Config) { cfg.MaxNonces = 16; cfg.MaxSources = 8 })
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			from := netip.AddrFrom4([4]byte{10, 0, 0, byte(g)})
			for i := range 50 {
				pw := "correct horse"
				if i%3 == 0 {
					pw = "wrong"
				}
				h := phone{user: "1001", password: pw}.answer(t, challenge(t, a, "SHA-256", false))
				_, err := a.Verify(digest.Request{Method: "REGISTER", Authorization: h, Source: from}, lookup)
				switch {
				case err == nil, errors.Is(err, digest.ErrBadCredentials), errors.Is(err, digest.ErrRateLimited),
					errors.Is(err, digest.ErrStaleNonce):
				default:
					t.Errorf("unexpected %v", err)
				}
				a.Blocked(from)
				c.Advance(time.Millisecond)
			}
		}()
	}
	wg.Wait()
}

// One phone with a stale password must not lock out the other users behind the same
// address; a spray over many user names from one address still blocks the address.
func TestRateLimitPerAccountThenPerSource(t *testing.T) {
	c := newClock()
	a := digest.New(digest.Config{Realm: realm, Now: c.Now, MaxFailures: 3, MaxSourceFailures: 9})
	src := netip.MustParseAddr("192.0.2.7")
	bad := func(user string) error {
		_, err := a.Verify(digest.Request{Method: "REGISTER", Source: src,
			Authorization: `Digest username="` + user + `", realm="ringside", nonce="x", uri="sip:r", response="00"`}, lookup)
		return err
	}
	for range 3 {
		bad("1001")
	}
	if err := bad("1001"); err != digest.ErrRateLimited {
		t.Fatalf("the failing account: %v, want ErrRateLimited", err)
	}
	if a.Blocked(src) {
		t.Fatal("one account's failures blocked the whole address")
	}
	if err := bad("1002"); err != digest.ErrBadCredentials {
		t.Fatalf("a neighbour: %v, want an ordinary failure", err)
	}
	for _, u := range []string{"1003", "1004", "1005", "1006", "1007"} {
		bad(u)
	}
	if !a.Blocked(src) {
		t.Fatal("a spray over many user names did not block the address")
	}
}

func TestChallengesOfferMD5ByDefault(t *testing.T) {
	chs := digest.New(digest.Config{Realm: realm}).Challenges(false)
	if len(chs) != 1 || !strings.Contains(chs[0], "algorithm=MD5") {
		t.Fatalf("default challenges %q, want MD5 only", chs)
	}
}
