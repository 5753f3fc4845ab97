package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"ringside/server/store"
)

// sessions are the login tokens, kept in memory only: a restart logs everyone out. The map
// is keyed by the token's SHA-256, so the tokens themselves are not kept.
type sessions struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]session
}

type session struct {
	user    string
	expires time.Time
}

func newSessions() *sessions {
	return &sessions{m: make(map[[sha256.Size]byte]session)}
}

// create returns a new token for user: 32 random bytes, base64url.
func (s *sessions) create(user string, now time.Time, ttl time.Duration) (string, time.Time, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", time.Time{}, err
	}
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	expires := now.Add(ttl)
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.m { // logins are rare; this keeps the map to live sessions
		if !now.Before(v.expires) {
			delete(s.m, k)
		}
	}
	s.m[sha256.Sum256([]byte(token))] = session{user: user, expires: expires}
	return token, expires, nil
}

// lookup returns the user name of a live token.
func (s *sessions) lookup(token string, now time.Time) (string, bool) {
	k := sha256.Sum256([]byte(token))
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	if !ok {
		return "", false
	}
	if !now.Before(v.expires) {
		delete(s.m, k)
		return "", false
	}
	return v.user, true
}

func (s *sessions) end(token string) {
	s.mu.Lock()
	delete(s.m, sha256.Sum256([]byte(token)))
	s.mu.Unlock()
}

// loginThrottle slows down password guessing: each failed login from an address waits a
// little longer before its answer, up to maxLoginDelay, until a success or
// loginFailureMemory of quiet.
type loginThrottle struct {
	mu    sync.Mutex
	fails map[string]loginFailures
	base  time.Duration
}

type loginFailures struct {
	n    int
	last time.Time
}

const (
	baseLoginDelay     = 200 * time.Millisecond
	maxLoginDelay      = 5 * time.Second
	loginFailureMemory = 15 * time.Minute
	maxThrottled       = 10000 // addresses remembered; beyond, stale ones are dropped first
)

func newLoginThrottle() *loginThrottle {
	return &loginThrottle{fails: make(map[string]loginFailures), base: baseLoginDelay}
}

// failed records a failed login from ip and returns how long to wait before answering.
func (t *loginThrottle) failed(ip string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.fails[ip]
	if now.Sub(f.last) > loginFailureMemory {
		f.n = 0
	}
	f.n++
	f.last = now
	if len(t.fails) >= maxThrottled {
		for k, v := range t.fails {
			if now.Sub(v.last) > loginFailureMemory {
				delete(t.fails, k)
			}
		}
	}
	t.fails[ip] = f
	d := t.base
	for i := 1; i < f.n && d < maxLoginDelay; i++ {
		d *= 2
	}
	return min(d, maxLoginDelay)
}

func (t *loginThrottle) succeeded(ip string) {
	t.mu.Lock()
	delete(t.fails, ip)
	t.mu.Unlock()
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

type loginRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

type loginResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	User      loginUser `json:"user"`
	// SIP is where the softphone registers: user = ext, same password.
	SIP loginSIP `json:"sip"`
}

type loginSIP struct {
	Server string `json:"server"` // host:port, UDP
	Domain string `json:"domain"`
}

type loginUser struct {
	Name        string   `json:"name"`
	Ext         string   `json:"ext"`
	Role        string   `json:"role"`
	Permissions []string `json:"permissions"`
	Teams       []string `json:"teams"`
}

// login is POST /api/login.
func (a *API) login(w http.ResponseWriter, r *http.Request) error {
	var req loginRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	ip := clientIP(r)
	u, err := a.cfg.Store.CheckPassword(r.Context(), req.User, req.Password)
	if errors.Is(err, store.ErrBadCredentials) {
		a.log.Warn("login failed", "user", req.User, "remote", ip)
		a.wait(r.Context(), a.throttle.failed(ip, a.now()))
		return errBadLogin
	}
	if err != nil {
		return err
	}
	a.throttle.succeeded(ip)
	token, expires, err := a.sessions.create(u.Name, a.now(), a.cfg.TokenTTL)
	if err != nil {
		return err
	}
	a.log.Info("login", "user", u.Name, "remote", ip)
	writeJSON(w, http.StatusOK, loginResponse{
		Token:     token,
		ExpiresAt: expires.UTC(),
		User: loginUser{
			Name:        u.Name,
			Ext:         u.Ext,
			Role:        u.Role,
			Permissions: nonNil(u.Permissions),
			Teams:       nonNil(u.Teams),
		},
		SIP: loginSIP{Server: a.sipHost(r), Domain: a.sipHost(r)},
	})
	return nil
}

// logout is POST /api/logout: the token stops working at once.
func (a *API) logout(w http.ResponseWriter, r *http.Request, u store.User) error {
	token, _ := bearerToken(r)
	a.sessions.end(token)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// wait sleeps for d unless the request or the API ends first.
func (a *API) wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-a.done:
	}
}

func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

type userHandler func(w http.ResponseWriter, r *http.Request, u store.User) error

// authed resolves the Bearer token to its user, read fresh from the store so that changed
// roles and teams count at once.
func (a *API) authed(h userHandler) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		u, err := a.caller(r)
		if err != nil {
			return err
		}
		return h(w, r, u)
	}
}

// Authenticate checks r's Bearer token as every API endpoint does, for endpoints served
// beside the API (the live-call agent socket). On failure it has answered as the API
// answers (401 with WWW-Authenticate, or 500) and returns false.
func (a *API) Authenticate(w http.ResponseWriter, r *http.Request) (u store.User, ok bool) {
	a.handle(a.authed(func(_ http.ResponseWriter, _ *http.Request, caller store.User) error {
		u, ok = caller, true
		return nil
	}))(w, r)
	return u, ok
}

// Caller tells who r's Bearer token belongs to now, or why it is no longer good.
func (a *API) Caller(r *http.Request) (store.User, error) { return a.caller(r) }

func (a *API) caller(r *http.Request) (store.User, error) {
	token, ok := bearerToken(r)
	if !ok {
		return store.User{}, errLoginFirst
	}
	name, ok := a.sessions.lookup(token, a.now())
	if !ok {
		return store.User{}, errSessionExpired
	}
	u, err := a.cfg.Store.User(r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, errSessionExpired
	}
	return u, err
}

func (a *API) adminOnly(h userHandler) userHandler {
	return func(w http.ResponseWriter, r *http.Request, u store.User) error {
		if !u.Can(store.PermAdmin) {
			return errAdminOnly
		}
		return h(w, r, u)
	}
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
