package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// User is a ringside user as the server describes it.
type User struct {
	Name        string   `json:"name"`
	Ext         string   `json:"ext"`
	Role        string   `json:"role"`
	Permissions []string `json:"permissions"`
	Teams       []string `json:"teams"`
}

// Can tells whether u has permission perm: "call", "monitor" or "admin". The server
// checks again; this only decides what to show.
func (u User) Can(perm string) bool { return slices.Contains(u.Permissions, perm) }

// Party is the agent side of a call.
type Party struct{ Name, Ext string }

// Customer is the far end of a call.
type Customer struct{ Number, Name string }

// Monitor is one supervisor's session on a call.
type Monitor struct {
	ID, CallID, User, Ext, Mode string
	Since                       time.Time
}

// Call is a call as this user may see it.
type Call struct {
	ID, Kind, State, Direction string // kind "phone"|"live"; state ringing|talking|held|ended
	Agent                      Party
	Customer                   Customer
	StartedAt                  time.Time
	AnsweredAt, EndedAt        *time.Time
	Monitorable                bool
	UnmonitorableReason        string
	Monitors                   []Monitor               // only filled for admins (and one's own sessions)
	Monitored, Whisper         bool                    // what the agent may know
	EndReason                  string                  // history only
	ModeLog                    map[string][]ModeChange // history only: monitor id → modes
}

// ModeChange is one switch of a monitor session's mode.
type ModeChange struct {
	Mode string
	At   time.Time
}

// MonitorTarget is what to INVITE to start monitoring a call.
type MonitorTarget struct{ SIPURI, TargetDialog string }

// Settings are the server-wide settings an admin changes.
type Settings struct{ NotifyAgentOnMonitor bool }

// NewUser is a user an admin adds.
type NewUser struct {
	Name, Ext, Password, Role string
	Teams                     []string
}

// SIPServer is where the softphone registers, as the login answer names it.
type SIPServer struct {
	Server string // host:port, UDP
	Domain string // for URIs: sip:<ext>@<domain>
}

// APIError is a refusal from the server: its HTTP status and its sentence for the user.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return e.Message }

// ErrUnreachable wraps failures to reach the server at all (refused, timed out, DNS).
var ErrUnreachable = errors.New("can't reach the ringside server")

// Client speaks the ringside-media HTTP API. It is safe for concurrent use. After Login
// it remembers the credentials and logs in again by itself when the server has forgotten
// the token (a server restart logs everyone out).
type Client struct {
	base string
	hc   *http.Client // API requests, each with a timeout
	sc   *http.Client // the event stream: no timeout, bounded by its context
	tr   *http.Transport

	mu       sync.Mutex
	token    string
	user     string
	password string
	sip      SIPServer
	loginMu  sync.Mutex // one re-login at a time

	// Event stream back-off and liveness; tests shorten them.
	backoffMin, backoffMax time.Duration
	idleTimeout            time.Duration
}

const (
	requestTimeout = 15 * time.Second
	// streamIdle is how long the event stream may be silent before it counts as dead:
	// the server pings every 15 s.
	streamIdle = 45 * time.Second
)

// NewClient returns a client for the server at baseURL (http://host:port).
func NewClient(baseURL string) *Client {
	base := strings.TrimRight(strings.TrimSpace(baseURL), "/")
	if base != "" && !strings.Contains(base, "://") {
		base = "http://" + base
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	return &Client{
		base:        base,
		tr:          tr,
		hc:          &http.Client{Transport: tr, Timeout: requestTimeout},
		sc:          &http.Client{Transport: tr},
		backoffMin:  500 * time.Millisecond,
		backoffMax:  15 * time.Second,
		idleTimeout: streamIdle,
	}
}

// BaseURL is the server's address as given.
func (c *Client) BaseURL() string { return c.base }

// Token is the current login token ("" before Login).
func (c *Client) Token() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token
}

// SIP is where the login answer says to register.
func (c *Client) SIP() SIPServer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sip
}

// Close drops the client's idle connections.
func (c *Client) Close() { c.tr.CloseIdleConnections() }

type loginAnswer struct {
	Token string `json:"token"`
	User  User   `json:"user"`
	SIP   struct {
		Server string `json:"server"`
		Domain string `json:"domain"`
	} `json:"sip"`
}

// Login logs in and keeps the token for the other calls.
func (c *Client) Login(ctx context.Context, user, password string) (User, error) {
	var out loginAnswer
	err := c.do(ctx, http.MethodPost, "/api/login", map[string]string{"user": user, "password": password}, &out, false)
	if err != nil {
		return User{}, err
	}
	if out.SIP.Server == "" { // an older server: SIP on the API's host, standard port
		if u, err := url.Parse(c.base); err == nil {
			out.SIP.Server = net.JoinHostPort(u.Hostname(), "5060")
		}
	}
	if out.SIP.Domain == "" {
		out.SIP.Domain = out.SIP.Server
	}
	c.mu.Lock()
	c.token, c.user, c.password = out.Token, user, password
	c.sip = SIPServer{Server: out.SIP.Server, Domain: out.SIP.Domain}
	c.mu.Unlock()
	return out.User, nil
}

// Logout ends the token on the server and forgets the credentials.
func (c *Client) Logout(ctx context.Context) error {
	err := c.do(ctx, http.MethodPost, "/api/logout", nil, nil, false)
	c.mu.Lock()
	c.token, c.user, c.password = "", "", ""
	c.mu.Unlock()
	return err
}

// relogin logs in again with the remembered credentials after a 401 on token stale.
func (c *Client) relogin(ctx context.Context, stale string) error {
	c.loginMu.Lock()
	defer c.loginMu.Unlock()
	c.mu.Lock()
	token, user, password := c.token, c.user, c.password
	c.mu.Unlock()
	if token != stale {
		return nil // someone else already did
	}
	if user == "" {
		return errors.New("not logged in")
	}
	_, err := c.Login(ctx, user, password)
	return err
}

// wireCall is a call object as the API sends it (GET /api/calls, events, history).
type wireCall struct {
	ID                  string        `json:"id"`
	Kind                string        `json:"kind"`
	State               string        `json:"state"`
	Direction           string        `json:"direction"`
	Agent               Party         `json:"agent"`
	Customer            Customer      `json:"customer"`
	StartedAt           time.Time     `json:"started_at"`
	AnsweredAt          *time.Time    `json:"answered_at"`
	EndedAt             *time.Time    `json:"ended_at"`
	Monitorable         bool          `json:"monitorable"`
	UnmonitorableReason string        `json:"unmonitorable_reason"`
	Monitors            []wireMonitor `json:"monitors"`
	Monitored           *bool         `json:"monitored"`
	Whisper             *bool         `json:"whisper"`
	// history only
	EndReason string `json:"end_reason"`
	Active    *bool  `json:"active"`
}

type wireMonitor struct {
	ID        string    `json:"id"`
	CallID    string    `json:"call_id"`
	User      string    `json:"user"`
	Ext       string    `json:"ext"`
	Mode      string    `json:"mode"`
	Since     time.Time `json:"since"`
	StartedAt time.Time `json:"started_at"` // history
	Modes     []struct {
		Mode string    `json:"mode"`
		At   time.Time `json:"at"`
	} `json:"modes"` // history
}

func (w wireMonitor) monitor(callID string) Monitor {
	m := Monitor{ID: w.ID, CallID: w.CallID, User: w.User, Ext: w.Ext, Mode: w.Mode, Since: w.Since}
	if m.CallID == "" {
		m.CallID = callID
	}
	if m.Since.IsZero() {
		m.Since = w.StartedAt
	}
	if m.Mode == "" && len(w.Modes) > 0 {
		m.Mode = w.Modes[len(w.Modes)-1].Mode
	}
	return m
}

func (w wireCall) call() Call {
	c := Call{
		ID: w.ID, Kind: w.Kind, State: w.State, Direction: w.Direction,
		Agent: w.Agent, Customer: w.Customer,
		StartedAt: w.StartedAt, AnsweredAt: w.AnsweredAt, EndedAt: w.EndedAt,
		Monitorable: w.Monitorable, UnmonitorableReason: w.UnmonitorableReason,
		Monitored: w.Monitored != nil && *w.Monitored,
		Whisper:   w.Whisper != nil && *w.Whisper,
		EndReason: w.EndReason,
	}
	for _, m := range w.Monitors {
		c.Monitors = append(c.Monitors, m.monitor(w.ID))
		if len(m.Modes) > 0 {
			if c.ModeLog == nil {
				c.ModeLog = make(map[string][]ModeChange)
			}
			for _, mc := range m.Modes {
				c.ModeLog[m.ID] = append(c.ModeLog[m.ID], ModeChange{Mode: mc.Mode, At: mc.At})
			}
		}
	}
	if w.Active != nil && !*w.Active && c.State != "ended" {
		// History: a call no longer active here (interrupted by a crash, say) is over.
		if c.EndReason == "" {
			c.EndReason = c.State
		}
		c.State = "ended"
	}
	return c
}

// Calls is GET /api/calls: the active calls this user may see, oldest first.
func (c *Client) Calls(ctx context.Context) ([]Call, error) {
	var out []wireCall
	if err := c.do(ctx, http.MethodGet, "/api/calls", nil, &out, true); err != nil {
		return nil, err
	}
	return convertCalls(out), nil
}

func convertCalls(ws []wireCall) []Call {
	cs := make([]Call, 0, len(ws))
	for _, w := range ws {
		cs = append(cs, w.call())
	}
	return cs
}

// Call is GET /api/calls/{id}: details of an active or ended call.
func (c *Client) Call(ctx context.Context, id string) (Call, error) {
	var out wireCall
	if err := c.do(ctx, http.MethodGet, "/api/calls/"+url.PathEscape(id), nil, &out, true); err != nil {
		return Call{}, err
	}
	return out.call(), nil
}

// History is GET /api/history?limit=N: ended and active calls, newest first.
func (c *Client) History(ctx context.Context, limit int) ([]Call, error) {
	path := "/api/history"
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	var out []wireCall
	if err := c.do(ctx, http.MethodGet, path, nil, &out, true); err != nil {
		return nil, err
	}
	return convertCalls(out), nil
}

// Monitor is POST /api/calls/{id}/monitor: permission to monitor in mode, and what to
// INVITE. The session starts with that INVITE (Session.MonitorCall does both).
func (c *Client) Monitor(ctx context.Context, callID, mode string) (MonitorTarget, error) {
	var out struct {
		SIPURI       string `json:"sip_uri"`
		TargetDialog string `json:"target_dialog"`
	}
	if err := c.do(ctx, http.MethodPost, "/api/calls/"+url.PathEscape(callID)+"/monitor", map[string]string{"mode": mode}, &out, true); err != nil {
		return MonitorTarget{}, err
	}
	return MonitorTarget{SIPURI: out.SIPURI, TargetDialog: out.TargetDialog}, nil
}

// SetMonitorMode is PUT /api/monitors/{id}: listen, whisper or barge.
func (c *Client) SetMonitorMode(ctx context.Context, monitorID, mode string) error {
	return c.do(ctx, http.MethodPut, "/api/monitors/"+url.PathEscape(monitorID), map[string]string{"mode": mode}, nil, true)
}

// LeaveMonitor is DELETE /api/monitors/{id}: the server hangs up that supervisor's leg.
func (c *Client) LeaveMonitor(ctx context.Context, monitorID string) error {
	return c.do(ctx, http.MethodDelete, "/api/monitors/"+url.PathEscape(monitorID), nil, nil, true)
}

type wireSettings struct {
	NotifyAgentOnMonitor bool `json:"notify_agent_on_monitor"`
}

// Settings is GET /api/settings (admin).
func (c *Client) Settings(ctx context.Context) (Settings, error) {
	var out wireSettings
	if err := c.do(ctx, http.MethodGet, "/api/settings", nil, &out, true); err != nil {
		return Settings{}, err
	}
	return Settings(out), nil
}

// SetSettings is PUT /api/settings (admin).
func (c *Client) SetSettings(ctx context.Context, s Settings) error {
	return c.do(ctx, http.MethodPut, "/api/settings", wireSettings(s), nil, true)
}

// Users is GET /api/users (admin).
func (c *Client) Users(ctx context.Context) ([]User, error) {
	var out []User
	if err := c.do(ctx, http.MethodGet, "/api/users", nil, &out, true); err != nil {
		return nil, err
	}
	return out, nil
}

// AddUser is POST /api/users (admin).
func (c *Client) AddUser(ctx context.Context, u NewUser) (User, error) {
	body := map[string]any{"name": u.Name, "ext": u.Ext, "password": u.Password, "role": u.Role, "teams": nonNil(u.Teams)}
	var out User
	if err := c.do(ctx, http.MethodPost, "/api/users", body, &out, true); err != nil {
		return User{}, err
	}
	return out, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// do sends one API request with the token and decodes a 2xx answer into out. With
// retry, a 401 makes it log in again once with the remembered credentials.
func (c *Client) do(ctx context.Context, method, path string, body, out any, retry bool) error {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return err
		}
	}
	token := c.Token()
	res, err := c.send(ctx, c.hc, method, path, b, token)
	if err != nil {
		return err
	}
	if res.StatusCode == http.StatusUnauthorized && retry {
		res.Body.Close()
		if lerr := c.relogin(ctx, token); lerr != nil {
			return lerr
		}
		if res, err = c.send(ctx, c.hc, method, path, b, c.Token()); err != nil {
			return err
		}
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%w: reading the answer to %s %s: %v", ErrUnreachable, method, path, err)
	}
	if res.StatusCode/100 != 2 {
		return apiError(res.StatusCode, data)
	}
	if out != nil && len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("the server's answer to %s %s could not be read: %w", method, path, err)
		}
	}
	return nil
}

func (c *Client) send(ctx context.Context, hc *http.Client, method, path string, body []byte, token string) (*http.Response, error) {
	if c.base == "" {
		return nil, errors.New("no server address; enter the server URL, e.g. http://127.0.0.1:8080")
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("bad server address %q: %w", c.base, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w at %s: %v", ErrUnreachable, c.base, err)
	}
	return res, nil
}

func apiError(status int, body []byte) *APIError {
	var e struct {
		Error string `json:"error"`
	}
	msg := ""
	if json.Unmarshal(body, &e) == nil {
		msg = e.Error
	}
	if msg == "" {
		msg = fmt.Sprintf("the server answered %d %s", status, http.StatusText(status))
	}
	return &APIError{Status: status, Message: msg}
}
