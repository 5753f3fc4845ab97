// Package digest is the server side of SIP digest authentication (RFC 3261
// §22, RFC 7616 for SHA-256, RFC 8760 for its use in SIP).
//
// It works on plain strings, independent of any SIP stack: the handler hands
// it the request method and the Authorization (or Proxy-Authorization) header
// value and gets back the authenticated username or one of the Err values,
// and it asks for the WWW-Authenticate values to send with a 401.
//
// Nonces are stateless: a timestamp and a random salt, signed with an HMAC
// of Config.Secret, so any process sharing the secret can verify them. A
// small bounded table of nonces that have been used successfully refuses
// replays. Failed attempts are counted per source address, and a source that
// fails too often is blocked for a back-off period that doubles while the
// failures continue.
//
// An Authenticator is safe for concurrent use and starts no goroutines.
package digest

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultNonceTTL    = 5 * time.Minute
	DefaultMaxFailures = 5
	DefaultWindow      = time.Minute
	DefaultBackoff     = time.Minute
	DefaultMaxBackoff  = 5 * time.Minute
	DefaultMaxSources  = 10000
	DefaultMaxNonces   = 65536
)

// Config configures an Authenticator. Zero fields take the defaults above.
type Config struct {
	Realm string
	// NonceTTL is how long a nonce stays valid; an older nonce with an
	// otherwise correct response is answered ErrStaleNonce (stale=true).
	NonceTTL time.Duration
	// Secret is the HMAC key for the stateless nonces. When empty a random
	// key is made, so nonces do not survive a restart (phones then get a
	// stale challenge and re-authenticate silently).
	Secret []byte
	// MaxFailures is the number of failed attempts from one source within
	// Window after which the source is blocked. Negative disables rate
	// limiting.
	MaxFailures int
	Window      time.Duration
	// Now is the clock; tests inject one.
	Now func() time.Time

	// Backoff is the first blocking period (default 1 min). Every further
	// failure from a source that was blocked less than MaxBackoff ago blocks
	// it again for twice as long, up to MaxBackoff (default 5 min).
	Backoff    time.Duration
	MaxBackoff time.Duration
	// MaxSources bounds the number of source addresses tracked for rate
	// limiting (default 10000); the least recently failing are evicted.
	MaxSources int
	// MaxNonces bounds the replay table (default 65536). Entries expire with
	// their nonce; when the table is still full the oldest entry is dropped
	// and nonces as old as it are then answered stale, so eviction never
	// re-opens a replay.
	MaxNonces int
	// MaxSourceFailures is how many failures from one source, over all user names, block
	// the whole source (a password spray); default 10×MaxFailures. MaxFailures itself
	// applies per source and user name.
	MaxSourceFailures int
	// Algorithms offered in challenges, in order of preference: "MD5", "SHA-256". Default
	// MD5 only: phones still in service (baresip 1.0, sipp, many desk phones) give up on
	// a 401 that offers any algorithm they don't know. Both are always verified.
	Algorithms []string
}

// Credentials are the stored secrets of a user: HA1 = H(username:realm:password)
// as lower-case hex for each algorithm (see HA1). An empty field means the
// user cannot authenticate with that algorithm.
type Credentials struct{ HA1MD5, HA1SHA256 string }

// Request is what Verify needs from a SIP request.
type Request struct {
	Method        string     // the request method, e.g. "REGISTER" (A2 = method:uri)
	Authorization string     // the Authorization / Proxy-Authorization header value
	Source        netip.Addr // the transport source address, for rate limiting
}

var (
	// ErrNoCredentials: no Authorization header, or not a Digest one. Answer
	// 401 with Challenges(false).
	ErrNoCredentials = errors.New("digest: no credentials")
	// ErrBadCredentials: unknown user, wrong password or malformed header;
	// the three are deliberately indistinguishable.
	ErrBadCredentials = errors.New("digest: bad credentials")
	// ErrStaleNonce: the response is correct but the nonce has expired (or
	// was issued with another secret). Answer 401 with Challenges(true).
	ErrStaleNonce = errors.New("digest: stale nonce")
	// ErrReplay: the nonce-count did not increase for this nonce, or a nonce
	// was reused without qop. Answer 401 with a fresh challenge.
	ErrReplay = errors.New("digest: replayed credentials")
	// ErrRateLimited: too many failed attempts from this source. Answer 403
	// "Too many failed attempts, try again later", or drop the request.
	ErrRateLimited = errors.New("digest: too many failed attempts")
)

// Authenticator verifies digest credentials and issues challenges.
type Authenticator struct {
	realm    string
	ttl      time.Duration
	secret   []byte
	now      func() time.Time
	opaque   string
	dummyMD5 string
	dummySHA string
	nonces   *nonceTable
	limiter  *limiter[netip.Addr] // per source; nil when rate limiting is disabled
	accounts *limiter[accountKey] // per source and user name
	algs     []string
}

// accountKey counts failures of one user name from one source, so a phone with a stale
// password is stopped without locking out its neighbours behind the same NAT or proxy.
type accountKey struct {
	src  netip.Addr
	user string
}

// New returns an Authenticator for cfg.
func New(cfg Config) *Authenticator {
	if cfg.NonceTTL <= 0 {
		cfg.NonceTTL = DefaultNonceTTL
	}
	if len(cfg.Secret) == 0 {
		cfg.Secret = randomBytes(32)
	}
	if cfg.MaxFailures == 0 {
		cfg.MaxFailures = DefaultMaxFailures
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.MaxBackoff < cfg.Backoff {
		cfg.MaxBackoff = cfg.Backoff
	}
	if cfg.MaxSources <= 0 {
		cfg.MaxSources = DefaultMaxSources
	}
	if cfg.MaxNonces <= 0 {
		cfg.MaxNonces = DefaultMaxNonces
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Authenticator{
		realm:  cfg.Realm,
		ttl:    cfg.NonceTTL,
		secret: append([]byte(nil), cfg.Secret...),
		now:    cfg.Now,
		nonces: newNonceTable(cfg.MaxNonces, cfg.NonceTTL),
	}
	if cfg.MaxSourceFailures <= 0 {
		cfg.MaxSourceFailures = 10 * cfg.MaxFailures
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = []string{"MD5"}
	}
	a.algs = cfg.Algorithms
	if cfg.MaxFailures > 0 {
		a.limiter = newLimiter[netip.Addr](cfg.MaxSourceFailures, cfg.Window, cfg.Backoff, cfg.MaxBackoff, cfg.MaxSources)
		a.accounts = newLimiter[accountKey](cfg.MaxFailures, cfg.Window, cfg.Backoff, cfg.MaxBackoff, cfg.MaxSources)
	}
	mac := a.mac([]byte("opaque\x00" + a.realm))
	a.opaque = base64.RawURLEncoding.EncodeToString(mac[:12])
	// Unknown users are checked against a random HA1, so that they cost the
	// same as a wrong password and can never match.
	a.dummyMD5 = hex.EncodeToString(randomBytes(md5.Size))
	a.dummySHA = hex.EncodeToString(randomBytes(sha256.Size))
	return a
}

// HA1 returns H(username:realm:password) in lower-case hex for algorithm
// "MD5" (also "") or "SHA-256" (case-insensitive), as stored in Credentials.
// It returns "" for any other algorithm.
func HA1(algorithm, username, realm, password string) string {
	h := newHash(algorithm)
	if h == nil {
		return ""
	}
	return hashJoin(h, username, realm, password)
}

// Challenges returns the WWW-Authenticate (or Proxy-Authenticate) values for
// a 401/407: SHA-256 first, then MD5, as RFC 8760 §2.4 asks (a client uses
// the first it supports). Both carry the same fresh nonce. With stale set
// they say stale=true, telling the phone its password was right and it only
// needs to retry with the new nonce.
func (a *Authenticator) Challenges(stale bool) []string {
	nonce := a.newNonce(a.now())
	out := make([]string, 0, 2)
	for _, alg := range a.algs {
		var b strings.Builder
		b.WriteString("Digest realm=")
		b.WriteString(quote(a.realm))
		b.WriteString(`, nonce="`)
		b.WriteString(nonce)
		b.WriteString(`", opaque="`)
		b.WriteString(a.opaque)
		b.WriteString(`"`)
		if stale {
			b.WriteString(", stale=true")
		}
		b.WriteString(", algorithm=")
		b.WriteString(alg)
		b.WriteString(`, qop="auth"`)
		out = append(out, b.String())
	}
	return out
}

// Blocked reports whether src is currently rate-limited. Check it before
// doing any work for a request.
func (a *Authenticator) Blocked(src netip.Addr) bool {
	if a.limiter == nil {
		return false
	}
	return a.limiter.blocked(sourceKey(src), a.now())
}

// Verify checks the Authorization value of r. lookup returns the stored
// credentials of a username, or false when the user is unknown; it is called
// at most once per Verify, outside any lock. On success Verify returns the
// authenticated username and resets the failure count of r.Source; on
// failure it returns "" and one of the Err values.
//
// Outcomes: ErrRateLimited while r.Source is blocked (nothing else is
// looked at); ErrNoCredentials without a Digest header; ErrBadCredentials
// for a malformed header, wrong realm, unsupported algorithm or qop, unknown
// user or wrong response, each counted as a failure of r.Source; then, for a
// correct response, ErrStaleNonce when the nonce is expired or not ours, and
// ErrReplay when its nonce-count does not increase.
func (a *Authenticator) Verify(r Request, lookup func(username string) (Credentials, bool)) (string, error) {
	key := sourceKey(r.Source)
	acct := accountKey{key, Username(r.Authorization)}
	now := a.now()
	if a.limiter != nil && (a.limiter.blocked(key, now) || a.accounts.blocked(acct, now)) {
		return "", ErrRateLimited
	}
	rest, ok := cutScheme(r.Authorization)
	if !ok {
		return "", ErrNoCredentials
	}
	user, err := a.verify(r.Method, rest, lookup, now)
	switch err {
	case nil:
		if a.limiter != nil {
			a.limiter.success(key)
			a.accounts.success(acct)
		}
		return user, nil
	case ErrBadCredentials:
		if a.limiter != nil {
			a.limiter.failure(key, now)
			a.accounts.failure(acct, now)
		}
	}
	return "", err
}

func (a *Authenticator) verify(method, params string, lookup func(string) (Credentials, bool), now time.Time) (string, error) {
	c, err := parseAuthorization(params)
	if err != nil {
		return "", ErrBadCredentials
	}
	if method == "" || c.username == "" || c.nonce == "" || c.uri == "" || c.response == "" {
		return "", ErrBadCredentials
	}
	if c.realm != a.realm {
		return "", ErrBadCredentials
	}
	if c.userhash != "" && !strings.EqualFold(c.userhash, "false") {
		return "", ErrBadCredentials // we never offer userhash
	}
	alg := strings.ToUpper(c.algorithm)
	if alg == "" {
		alg = "MD5"
	}
	h := newHash(alg) // nil for -sess variants and anything else
	if h == nil {
		return "", ErrBadCredentials
	}
	var nc uint64
	switch {
	case c.qop == "":
		if c.nc != "" || c.cnonce != "" {
			return "", ErrBadCredentials
		}
	case strings.EqualFold(c.qop, "auth"):
		if c.cnonce == "" || len(c.nc) == 0 || len(c.nc) > 8 {
			return "", ErrBadCredentials
		}
		v, err := strconv.ParseUint(c.nc, 16, 32)
		if err != nil || v == 0 {
			return "", ErrBadCredentials
		}
		nc = v
	default: // auth-int or a list: we offered qop="auth" only
		return "", ErrBadCredentials
	}

	ts, nonceOK := a.checkNonce(c.nonce, now)
	if c.hasOpaque && subtle.ConstantTimeCompare([]byte(c.opaque), []byte(a.opaque)) != 1 {
		nonceOK = false
	}

	// Always compute a response, against a dummy HA1 when the user is
	// unknown or has no secret for this algorithm, so that both cost the
	// same as a wrong password and end the same way.
	dummy, size := a.dummyMD5, md5.Size
	if alg == "SHA-256" {
		dummy, size = a.dummySHA, sha256.Size
	}
	ha1, known := dummy, false
	if lookup == nil {
		lookup = func(string) (Credentials, bool) { return Credentials{}, false }
	}
	if creds, ok := lookup(c.username); ok {
		stored := creds.HA1MD5
		if alg == "SHA-256" {
			stored = creds.HA1SHA256
		}
		if validHex(stored, size) {
			ha1, known = strings.ToLower(stored), true
		}
	}
	want := response(h, ha1, c.nonce, c.nc, c.cnonce, c.qop, method, c.uri)
	match := subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(c.response))) == 1
	if !match || !known {
		return "", ErrBadCredentials
	}
	if !nonceOK {
		return "", ErrStaleNonce
	}
	if c.qop == "" {
		nc = onceOnly
	}
	if err := a.nonces.use(c.nonce, ts, nc, now); err != nil {
		return "", err
	}
	return c.username, nil
}

// Nonce layout: 8 bytes unix-nano timestamp, 6 random bytes, 16 bytes of
// HMAC-SHA256(secret, realm, timestamp, salt); base64url without padding.
const (
	nonceTSLen   = 8
	nonceSaltLen = 6
	nonceMACLen  = 16
	nonceRawLen  = nonceTSLen + nonceSaltLen + nonceMACLen
	nonceLen     = (nonceRawLen*8 + 5) / 6
)

func (a *Authenticator) newNonce(now time.Time) string {
	var raw [nonceRawLen]byte
	binary.BigEndian.PutUint64(raw[:nonceTSLen], uint64(now.UnixNano()))
	copy(raw[nonceTSLen:], randomBytes(nonceSaltLen))
	mac := a.nonceMAC(raw[:nonceTSLen+nonceSaltLen])
	copy(raw[nonceTSLen+nonceSaltLen:], mac[:nonceMACLen])
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

// checkNonce reports the timestamp of nonce and whether it is ours and
// fresh. A nonce that is not ours or expired is "not ok"; the caller answers
// stale only when the response was right.
func (a *Authenticator) checkNonce(nonce string, now time.Time) (int64, bool) {
	if len(nonce) != nonceLen {
		return 0, false
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(nonce)
	if err != nil || len(raw) != nonceRawLen {
		return 0, false
	}
	mac := a.nonceMAC(raw[:nonceTSLen+nonceSaltLen])
	if !hmac.Equal(mac[:nonceMACLen], raw[nonceTSLen+nonceSaltLen:]) {
		return 0, false
	}
	ts := int64(binary.BigEndian.Uint64(raw[:nonceTSLen]))
	age := now.UnixNano() - ts
	if age > int64(a.ttl) || age < -int64(a.ttl) {
		return ts, false
	}
	return ts, true
}

func (a *Authenticator) nonceMAC(data []byte) []byte {
	return a.mac([]byte("nonce\x00"+a.realm+"\x00"), data)
}

func (a *Authenticator) mac(parts ...[]byte) []byte {
	m := hmac.New(sha256.New, a.secret)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// response computes the request-digest of RFC 7616 §3.4.1 (qop=auth) or,
// without qop, of RFC 2069. The values are hashed exactly as the client sent
// them.
func response(h hash.Hash, ha1, nonce, nc, cnonce, qop, method, uri string) string {
	ha2 := hashJoin(h, method, uri)
	if qop == "" {
		return hashJoin(h, ha1, nonce, ha2)
	}
	return hashJoin(h, ha1, nonce, nc, cnonce, qop, ha2)
}

func newHash(algorithm string) hash.Hash {
	switch strings.ToUpper(algorithm) {
	case "", "MD5":
		return md5.New()
	case "SHA-256":
		return sha256.New()
	}
	return nil
}

func hashJoin(h hash.Hash, parts ...string) string {
	h.Reset()
	for i, p := range parts {
		if i > 0 {
			h.Write([]byte{':'})
		}
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}

func validHex(s string, size int) bool {
	if len(s) != 2*size {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// quote returns s as an RFC 3261 quoted-string.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("digest: crypto/rand: " + err.Error()) // never happens on supported platforms
	}
	return b
}

// sourceKey maps an address to its rate-limiting bucket: IPv4 (also
// IPv4-mapped IPv6) per address, IPv6 per /64, since one host commonly owns
// a whole /64.
func sourceKey(src netip.Addr) netip.Addr {
	src = src.Unmap()
	if src.Is6() {
		if p, err := src.WithZone("").Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return src.WithZone("")
}
