package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"ringside/server/calls"
	"ringside/server/events"
	"ringside/server/room"
	"ringside/server/store"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if templateDir != "" {
		os.RemoveAll(templateDir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// fakeCalls is the SIP side as the API sees it: a registry the tests change, publishing
// on the bus as the real one does.
type fakeCalls struct {
	mu    sync.Mutex
	calls map[string]calls.Call
	bus   *events.Bus
}

func (f *fakeCalls) Active() []calls.Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []calls.Call
	for _, c := range f.calls {
		if c.State != calls.StateEnded {
			out = append(out, clone(c))
		}
	}
	return out
}

func (f *fakeCalls) Call(id string) (calls.Call, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.calls[id]
	return clone(c), ok
}

func (f *fakeCalls) Monitor(id string) (calls.Monitor, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.calls {
		for _, m := range c.Monitors {
			if m.ID == id {
				return m, true
			}
		}
	}
	return calls.Monitor{}, false
}

func (f *fakeCalls) SetMonitorMode(ctx context.Context, id string, mode room.Mode) error {
	return f.changeMonitor(id, func(c *calls.Call, i int) events.Type {
		c.Monitors[i].Mode = mode
		return events.MonitorUpdated
	})
}

func (f *fakeCalls) EndMonitor(ctx context.Context, id string) error {
	return f.changeMonitor(id, func(c *calls.Call, i int) events.Type {
		c.Monitors = slices.Delete(c.Monitors, i, i+1)
		return events.MonitorEnded
	})
}

func (f *fakeCalls) changeMonitor(id string, change func(c *calls.Call, i int) events.Type) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for cid, c := range f.calls {
		c = clone(c)
		for i, m := range c.Monitors {
			if m.ID == id {
				typ := change(&c, i)
				if typ == events.MonitorUpdated {
					m = c.Monitors[i]
				}
				f.calls[cid] = c
				f.bus.Publish(events.Event{Type: typ, Call: clone(c), Monitor: &m})
				return nil
			}
		}
	}
	return calls.ErrNoMonitor
}

// put adds or replaces a call and publishes it.
func (f *fakeCalls) put(c calls.Call, typ events.Type) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[c.ID] = clone(c)
	f.bus.Publish(events.Event{Type: typ, Call: clone(c)})
}

// addMonitor starts a monitor session as a feature-code INVITE would.
func (f *fakeCalls) addMonitor(callID, id, user, ext string, mode room.Mode) calls.Monitor {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := clone(f.calls[callID])
	m := calls.Monitor{ID: id, CallID: callID, User: user, Ext: ext, Mode: mode, Since: time.Now().UTC()}
	c.Monitors = append(c.Monitors, m)
	f.calls[callID] = c
	f.bus.Publish(events.Event{Type: events.MonitorStarted, Call: clone(c), Monitor: &m})
	return m
}

func clone(c calls.Call) calls.Call {
	c.Monitors = slices.Clone(c.Monitors)
	c.Agent.Teams = slices.Clone(c.Agent.Teams)
	return c
}

var t0 = time.Date(2025, 11, 25, 9, 0, 0, 0, time.UTC)

// The cast: two teams, each with an agent and a supervisor, and an admin without teams.
var testUsers = []store.NewUser{
	{Name: "alice", Ext: "1001", Password: "alice-pw", Role: store.RoleAgent, Teams: []string{"red"}},
	{Name: "bob", Ext: "1002", Password: "bob-pw", Role: store.RoleAgent, Teams: []string{"blue"}},
	{Name: "sue", Ext: "2001", Password: "sue-pw", Role: store.RoleSupervisor, Teams: []string{"red"}},
	{Name: "sam", Ext: "2002", Password: "sam-pw", Role: store.RoleSupervisor, Teams: []string{"blue"}},
	{Name: "ada", Ext: "9001", Password: "ada-pw", Role: store.RoleAdmin},
}

func testCalls() []calls.Call {
	ended := t0.Add(time.Minute)
	answered := t0.Add(5 * time.Second)
	return []calls.Call{
		{ID: "c-red", Node: "n1", Kind: calls.KindPhone, State: calls.StateTalking, Direction: "inbound",
			Agent:    calls.Party{Name: "alice", Ext: "1001", Teams: []string{"red"}},
			Customer: calls.Customer{Number: "+15550100", Name: "Carol"}, StartedAt: t0, AnsweredAt: &answered,
			Monitorable: true, TargetDialog: "call-red@host;local-tag=a1;remote-tag=b1"},
		{ID: "c-blue", Node: "n1", Kind: calls.KindPhone, State: calls.StateTalking, Direction: "inbound",
			Agent:    calls.Party{Name: "bob", Ext: "1002", Teams: []string{"blue"}},
			Customer: calls.Customer{Number: "+15550101"}, StartedAt: t0.Add(time.Second),
			Monitorable: true, TargetDialog: "call-blue@host;local-tag=a2;remote-tag=b2"},
		{ID: "c-live", Node: "n1", Kind: calls.KindLive, State: calls.StateTalking, Direction: "inbound",
			Agent:     calls.Party{Name: "alice", Ext: "1001", Teams: []string{"red"}},
			StartedAt: t0.Add(2 * time.Second), Monitorable: false, UnmonitorableReason: calls.LiveReason},
		{ID: "c-ended", Node: "n1", Kind: calls.KindPhone, State: calls.StateEnded, Direction: "outbound",
			Agent:     calls.Party{Name: "alice", Ext: "1001", Teams: []string{"red"}},
			StartedAt: t0.Add(-time.Hour), EndedAt: &ended, Monitorable: false},
	}
}

type env struct {
	t      *testing.T
	api    *API
	srv    *httptest.Server
	store  store.Store
	calls  *fakeCalls
	bus    *events.Bus
	tokens map[string]string
}

// Adding a user hashes its password slowly on purpose (seconds under -race), so the users
// are added once, to a template database that every test copies.
var (
	templateOnce sync.Once
	templateDir  string
	templateErr  error
)

func makeTemplate() error {
	dir, err := os.MkdirTemp("", "ringside-api-test")
	if err != nil {
		return err
	}
	templateDir = dir
	ctx := context.Background()
	st, err := store.Open(ctx, dir)
	if err != nil {
		return err
	}
	for _, u := range testUsers {
		if _, err := st.AddUser(ctx, u); err != nil {
			st.Close()
			return err
		}
	}
	return st.Close()
}

// newEnv starts an API over a real store holding testUsers, a fake registry holding
// testCalls, and a real bus, with a session for every user.
func newEnv(t *testing.T) *env {
	t.Helper()
	templateOnce.Do(func() { templateErr = makeTemplate() })
	if templateErr != nil {
		t.Fatal(templateErr)
	}
	dir := t.TempDir()
	for _, name := range []string{store.FileName, store.FileName + "-wal", store.FileName + "-shm"} {
		b, err := os.ReadFile(filepath.Join(templateDir, name))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	st, err := store.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })

	bus := events.NewBus()
	fc := &fakeCalls{calls: make(map[string]calls.Call), bus: bus}
	for _, c := range testCalls() {
		fc.calls[c.ID] = c
	}
	a := New(Config{Store: st, Calls: fc, Events: bus, SIPHost: "127.0.0.1:5060", TokenTTL: time.Hour})
	a.throttle.base = time.Millisecond
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	t.Cleanup(a.Close) // runs first: ends the event streams so srv.Close need not wait
	e := &env{t: t, api: a, srv: srv, store: st, calls: fc, bus: bus, tokens: make(map[string]string)}
	for _, u := range testUsers {
		// Sessions are minted directly: a real login costs a deliberately slow hash.
		tok, _, err := a.sessions.create(u.Name, time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[u.Name] = tok
	}
	return e
}

// do sends a request as user ("" for none) and returns the status and the body.
func (e *env) do(user, method, path string, body any) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+e.tokens[user])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode >= 400 {
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			e.t.Errorf("%s %s: error with Content-Type %q, want JSON", method, path, ct)
		}
		var eb errorBody
		if err := json.Unmarshal(b, &eb); err != nil || eb.Error == "" {
			e.t.Errorf("%s %s: error body %s is not {\"error\": sentence}", method, path, b)
		}
	}
	return resp.StatusCode, b
}

// expect sends a request, checks its status and decodes the answer into out (if not nil).
func (e *env) expect(status int, user, method, path string, body, out any) []byte {
	e.t.Helper()
	got, b := e.do(user, method, path, body)
	if got != status {
		e.t.Fatalf("%s %s as %q: status %d, want %d; body %s", method, path, user, got, status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return b
}

func errorOf(t *testing.T, b []byte) string {
	t.Helper()
	var eb errorBody
	if err := json.Unmarshal(b, &eb); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	return eb.Error
}

func TestLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var ok loginResponse
	e.expect(200, "", "POST", "/api/login", map[string]string{"user": "sue", "password": "sue-pw"}, &ok)
	if ok.Token == "" || ok.User.Name != "sue" || ok.User.Ext != "2001" || ok.User.Role != "supervisor" ||
		!slices.Equal(ok.User.Permissions, []string{"call", "monitor"}) {
		t.Errorf("login answer %+v", ok)
	}
	if n := len(ok.Token); n != 43 { // 32 bytes, unpadded base64url
		t.Errorf("token %q has %d characters, want 43", ok.Token, n)
	}
	e.tokens["sue"] = ok.Token
	e.expect(200, "sue", "GET", "/api/calls", nil, nil)

	for _, body := range []map[string]string{
		{"user": "sue", "password": "wrong"},
		{"user": "nobody", "password": "sue-pw"},
	} {
		b := e.expect(401, "", "POST", "/api/login", body, nil)
		if got := errorOf(t, b); got != "wrong user name or password" {
			t.Errorf("login error %q", got)
		}
	}

	e.expect(400, "", "POST", "/api/login", `{"user": "sue", `, nil)
	b := e.expect(400, "", "POST", "/api/login", `{"user": "sue", "password": "sue-pw", "otp": 1}`, nil)
	if got := errorOf(t, b); !strings.Contains(got, `"otp"`) {
		t.Errorf("unknown field error %q does not name the field", got)
	}
	e.expect(413, "", "POST", "/api/login", `{"user": "`+strings.Repeat("x", maxBodyBytes)+`"}`, nil)

	// Missing, unknown and expired tokens.
	e.expect(401, "", "GET", "/api/calls", nil, nil)
	e.tokens["mallory"] = "not-a-token"
	e.expect(401, "mallory", "GET", "/api/calls", nil, nil)
	e.api.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	e.expect(401, "sue", "GET", "/api/calls", nil, nil)
	e.api.now = time.Now

	// Logout ends the token at once.
	e.expect(204, "alice", "POST", "/api/logout", nil, nil)
	e.expect(401, "alice", "GET", "/api/calls", nil, nil)

	// Unknown paths and methods answer in JSON too.
	e.expect(404, "ada", "GET", "/api/nothing", nil, nil)
	e.expect(405, "ada", "DELETE", "/api/calls", nil, nil)
}

func TestLoginThrottleGrows(t *testing.T) {
	t.Parallel()
	th := newLoginThrottle()
	now := time.Now()
	var prev time.Duration
	for i := range 8 {
		d := th.failed("192.0.2.1", now)
		if d < prev || d > maxLoginDelay {
			t.Fatalf("failure %d waits %v after %v", i+1, d, prev)
		}
		prev = d
	}
	if prev != maxLoginDelay {
		t.Errorf("8 failures wait %v, want the cap %v", prev, maxLoginDelay)
	}
	if d := th.failed("192.0.2.2", now); d != baseLoginDelay {
		t.Errorf("another address waits %v, want %v", d, baseLoginDelay)
	}
	if d := th.failed("192.0.2.1", now.Add(loginFailureMemory+time.Second)); d != baseLoginDelay {
		t.Errorf("after a quiet spell the wait is %v, want %v", d, baseLoginDelay)
	}
	th.succeeded("192.0.2.2")
	if d := th.failed("192.0.2.2", now); d != baseLoginDelay {
		t.Errorf("after a success the wait is %v, want %v", d, baseLoginDelay)
	}
}

func callIDs(cs []callView) []string {
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	return ids
}

func TestCallsVisibility(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for user, want := range map[string][]string{
		"alice": {"c-red", "c-live"},
		"bob":   {"c-blue"},
		"sue":   {"c-red", "c-live"},
		"sam":   {"c-blue"},
		"ada":   {"c-red", "c-blue", "c-live"},
	} {
		var got []callView
		e.expect(200, user, "GET", "/api/calls", nil, &got)
		if !slices.Equal(callIDs(got), want) {
			t.Errorf("%s sees %v, want %v", user, callIDs(got), want)
		}
	}
	// A call one may not see is answered like one that does not exist.
	e.expect(404, "alice", "GET", "/api/calls/c-blue", nil, nil)
	e.expect(404, "sue", "GET", "/api/calls/c-blue", nil, nil)
	e.expect(404, "sam", "GET", "/api/calls/c-red", nil, nil)
	e.expect(404, "ada", "GET", "/api/calls/no-such-call", nil, nil)

	var live map[string]any
	e.expect(200, "sue", "GET", "/api/calls/c-live", nil, &live)
	if live["kind"] != "live" || live["monitorable"] != false || live["unmonitorable_reason"] != calls.LiveReason {
		t.Errorf("live call %v", live)
	}
	if _, ok := live["target_dialog"]; ok {
		t.Errorf("call object carries target_dialog: %v", live)
	}
}

func TestCallMonitorsVisibility(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.calls.addMonitor("c-red", "m-sue", "sue", "2001", room.Whisper)
	e.calls.addMonitor("c-red", "m-ada", "ada", "9001", room.Listen)

	// The agent: no identities, but the banner state.
	b := e.expect(200, "alice", "GET", "/api/calls/c-red", nil, nil)
	if bytes.Contains(b, []byte("sue")) || bytes.Contains(b, []byte("2001")) || bytes.Contains(b, []byte("ada")) {
		t.Errorf("the agent's call details name a monitor: %s", b)
	}
	var agent map[string]any
	json.Unmarshal(b, &agent)
	if m, ok := agent["monitors"].([]any); !ok || len(m) != 0 {
		t.Errorf("agent sees monitors %v, want []", agent["monitors"])
	}
	if agent["monitored"] != true || agent["whisper"] != true {
		t.Errorf("agent sees monitored=%v whisper=%v, want true true", agent["monitored"], agent["whisper"])
	}

	// The admin: everyone.
	var admin callView
	e.expect(200, "ada", "GET", "/api/calls/c-red", nil, &admin)
	if len(admin.Monitors) != 2 || admin.Monitors[0].User != "sue" || admin.Monitors[0].Mode != room.Whisper {
		t.Errorf("admin sees monitors %+v", admin.Monitors)
	}

	// A supervisor: its own session only.
	var sup callView
	e.expect(200, "sue", "GET", "/api/calls/c-red", nil, &sup)
	if len(sup.Monitors) != 1 || sup.Monitors[0].ID != "m-sue" {
		t.Errorf("supervisor sees monitors %+v, want only its own", sup.Monitors)
	}

	// With notify-agent-on-monitor off, the agent learns nothing.
	e.expect(200, "ada", "PUT", "/api/settings", map[string]bool{"notify_agent_on_monitor": false}, nil)
	b = e.expect(200, "alice", "GET", "/api/calls/c-red", nil, nil)
	if bytes.Contains(b, []byte("monitored")) || bytes.Contains(b, []byte("whisper")) || bytes.Contains(b, []byte("sue")) {
		t.Errorf("with the setting off the agent's call details say %s", b)
	}
	b = e.expect(200, "alice", "GET", "/api/calls", nil, nil)
	if bytes.Contains(b, []byte("monitored")) || bytes.Contains(b, []byte("sue")) {
		t.Errorf("with the setting off the agent's call list says %s", b)
	}
}

func TestMonitorEndpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	whisper := map[string]string{"mode": "whisper"}

	e.expect(401, "", "POST", "/api/calls/c-red/monitor", whisper, nil)
	b := e.expect(403, "alice", "POST", "/api/calls/c-red/monitor", whisper, nil)
	if got := errorOf(t, b); got != calls.ErrNotAllowed.Error() {
		t.Errorf("agent gets %q", got)
	}
	b = e.expect(403, "sam", "POST", "/api/calls/c-red/monitor", whisper, nil)
	if got := errorOf(t, b); got != calls.ErrOutsideTeams.Error() {
		t.Errorf("other team's supervisor gets %q", got)
	}
	b = e.expect(409, "sue", "POST", "/api/calls/c-live/monitor", whisper, nil)
	if got := errorOf(t, b); !strings.Contains(got, "end-to-end encrypted") {
		t.Errorf("live call refused with %q", got)
	}
	e.expect(409, "sue", "POST", "/api/calls/c-ended/monitor", whisper, nil)
	e.expect(404, "sue", "POST", "/api/calls/no-such-call/monitor", whisper, nil)
	b = e.expect(400, "sue", "POST", "/api/calls/c-red/monitor", map[string]string{"mode": "shout"}, nil)
	if got := errorOf(t, b); got != calls.ErrBadMode.Error() {
		t.Errorf("bad mode refused with %q", got)
	}
	e.expect(400, "sue", "POST", "/api/calls/c-red/monitor", "", nil)

	var got monitorResponse
	e.expect(200, "sue", "POST", "/api/calls/c-red/monitor", whisper, &got)
	want := monitorResponse{CallID: "c-red", SIPURI: "sip:*21001@127.0.0.1:5060",
		TargetDialog: "call-red@host;local-tag=a1;remote-tag=b1", Mode: room.Whisper}
	if got != want {
		t.Errorf("monitor answer %+v, want %+v", got, want)
	}
	e.expect(200, "ada", "POST", "/api/calls/c-blue/monitor", map[string]string{"mode": "listen"}, &got)
	if got.SIPURI != "sip:*11002@127.0.0.1:5060" {
		t.Errorf("admin listen sip_uri %q", got.SIPURI)
	}
	e.expect(200, "sam", "POST", "/api/calls/c-blue/monitor", map[string]string{"mode": "barge"}, &got)
	if got.SIPURI != "sip:*31002@127.0.0.1:5060" {
		t.Errorf("barge sip_uri %q", got.SIPURI)
	}
}

func TestMonitorControl(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.calls.addMonitor("c-red", "m1", "sue", "2001", room.Listen)
	e.calls.addMonitor("c-red", "m2", "sue", "2001", room.Listen)

	e.expect(404, "sue", "PUT", "/api/monitors/nope", map[string]string{"mode": "whisper"}, nil)
	e.expect(404, "sue", "DELETE", "/api/monitors/nope", nil, nil)
	b := e.expect(403, "sam", "PUT", "/api/monitors/m1", map[string]string{"mode": "whisper"}, nil)
	if got := errorOf(t, b); got != calls.ErrNotYourSession.Error() {
		t.Errorf("other supervisor gets %q", got)
	}
	e.expect(403, "alice", "DELETE", "/api/monitors/m1", nil, nil)
	e.expect(400, "sue", "PUT", "/api/monitors/m1", map[string]string{"mode": "loud"}, nil)

	var m calls.Monitor
	e.expect(200, "sue", "PUT", "/api/monitors/m1", map[string]string{"mode": "whisper"}, &m)
	if m.ID != "m1" || m.Mode != room.Whisper {
		t.Errorf("after PUT the monitor is %+v", m)
	}
	e.expect(200, "ada", "PUT", "/api/monitors/m1", map[string]string{"mode": "barge"}, &m)
	if now, _ := e.calls.Monitor("m1"); now.Mode != room.Barge {
		t.Errorf("admin's switch left mode %s", now.Mode)
	}
	e.expect(204, "sue", "DELETE", "/api/monitors/m1", nil, nil)
	e.expect(204, "ada", "DELETE", "/api/monitors/m2", nil, nil)
	if c, _ := e.calls.Call("c-red"); len(c.Monitors) != 0 {
		t.Errorf("monitors left: %+v", c.Monitors)
	}
	e.expect(404, "sue", "DELETE", "/api/monitors/m1", nil, nil)
}

func TestSettings(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.expect(403, "sue", "GET", "/api/settings", nil, nil)
	e.expect(403, "alice", "PUT", "/api/settings", map[string]bool{"notify_agent_on_monitor": false}, nil)

	var s map[string]bool
	e.expect(200, "ada", "GET", "/api/settings", nil, &s)
	if !s["notify_agent_on_monitor"] {
		t.Errorf("default settings %v", s)
	}
	e.expect(400, "ada", "PUT", "/api/settings", `{}`, nil)
	e.expect(400, "ada", "PUT", "/api/settings", `{"notify_agent_on_monitor": "no"}`, nil)
	e.expect(200, "ada", "PUT", "/api/settings", map[string]bool{"notify_agent_on_monitor": false}, &s)
	e.expect(200, "ada", "GET", "/api/settings", nil, &s)
	if v, ok := s["notify_agent_on_monitor"]; !ok || v {
		t.Errorf("after PUT false: %v", s)
	}
	if v, err := store.NotifyAgentOnMonitor(context.Background(), e.store); err != nil || v {
		t.Errorf("the store has %v, %v", v, err)
	}
	// A restarted server reads it back.
	a := New(Config{Store: e.store, Calls: e.calls, Events: e.bus})
	defer a.Close()
	if a.notify.Load() {
		t.Error("a new API starts with notify on although the store says off")
	}
}

func TestUsers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.expect(403, "sue", "GET", "/api/users", nil, nil)
	e.expect(403, "alice", "POST", "/api/users", map[string]any{"name": "x"}, nil)

	var users []map[string]any
	b := e.expect(200, "ada", "GET", "/api/users", nil, &users)
	if len(users) != len(testUsers) {
		t.Errorf("%d users, want %d", len(users), len(testUsers))
	}
	if bytes.Contains(bytes.ToLower(b), []byte("ha1")) || bytes.Contains(b, []byte("password")) {
		t.Errorf("user list shows secrets: %s", b)
	}

	var u store.User
	e.expect(201, "ada", "POST", "/api/users", map[string]any{
		"name": "dan", "ext": "1003", "password": "dan-pw", "role": "agent", "teams": []string{"red"},
	}, &u)
	if u.Name != "dan" || u.Ext != "1003" || u.Role != "agent" || !slices.Equal(u.Teams, []string{"red"}) ||
		!slices.Equal(u.Permissions, []string{"call"}) {
		t.Errorf("new user %+v", u)
	}
	e.expect(409, "ada", "POST", "/api/users", map[string]any{
		"name": "dan", "ext": "1009", "password": "dan-pw", "role": "agent",
	}, nil)
	e.expect(409, "ada", "POST", "/api/users", map[string]any{
		"name": "dora", "ext": "1001", "password": "dora-pw", "role": "agent",
	}, nil)
	b = e.expect(400, "ada", "POST", "/api/users", map[string]any{
		"name": "eve", "ext": "12a", "password": "eve-pw", "role": "agent",
	}, nil)
	if got := errorOf(t, b); !strings.Contains(got, "digits") {
		t.Errorf("bad extension refused with %q", got)
	}
	e.expect(400, "ada", "POST", "/api/users", map[string]any{
		"name": "eve", "ext": "1004", "password": "eve-pw", "role": "boss",
	}, nil)
	e.expect(400, "ada", "POST", "/api/users", map[string]any{"name": "eve", "admin": true}, nil)

	// The new user's supervisor sees its calls from now on.
	e.expect(200, "ada", "PUT", "/api/users/dan", map[string]any{"teams": []string{"blue"}}, &u)
	if !slices.Equal(u.Teams, []string{"blue"}) || u.Ext != "1003" {
		t.Errorf("updated user %+v", u)
	}
	e.expect(404, "ada", "PUT", "/api/users/nobody", map[string]any{"role": "admin"}, nil)
}

func TestHistory(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	rec := func(id, agent, ext string, start int) store.CallRecord {
		return store.CallRecord{ID: id, Node: "n1", Kind: store.KindPhone, Direction: "inbound", State: store.StateTalking,
			AgentName: agent, AgentExt: ext, CustomerNumber: "+1555", StartedAt: at(start)}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// h-red: alice's call, monitored by sue (listen, then whisper) and by ada; ended.
	must(e.store.CallStarted(ctx, rec("h-red", "alice", "1001", 0)))
	must(e.store.MonitorStarted(ctx, store.MonitorRecord{ID: "hm-sue", CallID: "h-red", UserName: "sue", UserExt: "2001",
		StartedAt: at(1), Modes: []store.ModeChange{{Mode: "listen", At: at(1)}}}))
	must(e.store.MonitorModeChanged(ctx, "hm-sue", "whisper", at(2)))
	must(e.store.MonitorStarted(ctx, store.MonitorRecord{ID: "hm-ada", CallID: "h-red", UserName: "ada", UserExt: "9001",
		StartedAt: at(2), Modes: []store.ModeChange{{Mode: "listen", At: at(2)}}}))
	must(e.store.CallEnded(ctx, "h-red", at(3), "customer hung up"))
	// h-blue: bob's call, ended.
	must(e.store.CallStarted(ctx, rec("h-blue", "bob", "1002", 10)))
	must(e.store.CallEnded(ctx, "h-blue", at(11), "agent hung up"))
	// c-red: alice's call, still active in the registry.
	must(e.store.CallStarted(ctx, rec("c-red", "alice", "1001", 20)))

	type hist struct {
		ID       string           `json:"id"`
		Active   bool             `json:"active"`
		Monitors []historyMonitor `json:"monitors"`
	}
	get := func(user, query string) []hist {
		var hs []hist
		e.expect(200, user, "GET", "/api/history"+query, nil, &hs)
		return hs
	}
	ids := func(hs []hist) []string {
		var out []string
		for _, h := range hs {
			out = append(out, h.ID)
		}
		return out
	}
	for user, want := range map[string][]string{
		"alice": {"c-red", "h-red"},
		"bob":   {"h-blue"},
		"sue":   {"c-red", "h-red"},
		"sam":   {"h-blue"},
		"ada":   {"c-red", "h-blue", "h-red"},
	} {
		if got := ids(get(user, "")); !slices.Equal(got, want) {
			t.Errorf("%s's history %v, want %v", user, got, want)
		}
	}
	if got := ids(get("ada", "?limit=1")); !slices.Equal(got, []string{"c-red"}) {
		t.Errorf("limit=1 gives %v", got)
	}
	e.expect(400, "ada", "GET", "/api/history?limit=many", nil, nil)
	e.expect(400, "ada", "GET", "/api/history?limit=0", nil, nil)
	e.expect(401, "", "GET", "/api/history", nil, nil)

	hs := get("ada", "")
	if !hs[0].Active || hs[1].Active {
		t.Errorf("active flags %v %v, want the registry's c-red active only", hs[0].Active, hs[1].Active)
	}
	red := hs[2]
	if len(red.Monitors) != 2 || red.Monitors[0].User != "sue" || len(red.Monitors[0].Modes) != 2 ||
		red.Monitors[0].Modes[1].Mode != "whisper" || red.Monitors[0].EndedAt == nil {
		t.Errorf("admin's history of h-red: %+v", red.Monitors)
	}
	// The agent does not learn who monitored, in history either; a supervisor its own only.
	b := e.expect(200, "alice", "GET", "/api/history", nil, nil)
	if bytes.Contains(b, []byte("sue")) || bytes.Contains(b, []byte("ada")) || bytes.Contains(b, []byte("hm-")) {
		t.Errorf("the agent's history names monitors: %s", b)
	}
	hs = get("sue", "")
	if m := hs[1].Monitors; len(m) != 1 || m[0].ID != "hm-sue" {
		t.Errorf("supervisor's history monitors %+v, want its own only", m)
	}

	// Call Details of a call only the store knows, and no monitoring of it.
	var c callView
	e.expect(200, "alice", "GET", "/api/calls/h-red", nil, &c)
	if c.State != calls.StateEnded || c.EndedAt == nil || c.Monitorable || len(c.Monitors) != 0 {
		t.Errorf("ended call details %+v", c)
	}
	e.expect(404, "sam", "GET", "/api/calls/h-red", nil, nil)
	e.expect(200, "sue", "GET", "/api/calls/h-red", nil, nil)
	e.expect(409, "sue", "POST", "/api/calls/h-red/monitor", map[string]string{"mode": "listen"}, nil)
	e.expect(403, "sam", "POST", "/api/calls/h-red/monitor", map[string]string{"mode": "listen"}, nil)
}

// sseClient reads an event stream over a plain connection, so that every read has a
// deadline and a test never hangs.
type sseClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	raw  bytes.Buffer // everything read, to look for leaks
}

type sseEvent struct {
	Type string
	Data string
}

func (e *env) openStream(user string) *sseClient {
	e.t.Helper()
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/events", nil)
	req.Header.Set("Authorization", "Bearer "+e.tokens[user])
	if err := req.Write(conn); err != nil {
		e.t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		e.t.Fatalf("event stream: %s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	return &sseClient{t: e.t, conn: conn, r: bufio.NewReader(resp.Body)}
}

// next returns the next event, skipping comments, or fails the test after 5 s.
func (c *sseClient) next() sseEvent {
	c.t.Helper()
	ev, err := c.read()
	if err != nil {
		c.t.Fatalf("reading the event stream: %v (so far: %q)", err, c.raw.String())
	}
	return ev
}

func (c *sseClient) read() (sseEvent, error) {
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var ev sseEvent
	for {
		line, err := c.r.ReadString('\n')
		c.raw.WriteString(line)
		if err != nil {
			return ev, err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if ev.Type != "" {
				return ev, nil
			}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "event: "):
			ev.Type = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.Data = strings.TrimPrefix(line, "data: ")
		default:
			return ev, fmt.Errorf("unexpected line %q", line)
		}
	}
}

// expect reads the next event and checks its type and call.
func (c *sseClient) expect(typ events.Type, callID string) sseEvent {
	c.t.Helper()
	ev := c.next()
	var d struct {
		ID     string `json:"id"`
		CallID string `json:"call_id"`
	}
	json.Unmarshal([]byte(ev.Data), &d)
	if ev.Type != string(typ) || (d.ID != callID && d.CallID != callID) {
		c.t.Fatalf("got event %s %s, want %s on %s", ev.Type, ev.Data, typ, callID)
	}
	return ev
}

func TestEventsSnapshot(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ada := e.openStream("ada")
	for _, id := range []string{"c-red", "c-blue", "c-live"} {
		ada.expect(events.CallStarted, id)
	}
	sam := e.openStream("sam")
	sam.expect(events.CallStarted, "c-blue")

	// A call sam may not see passes him by; the next one he may see arrives.
	red, _ := e.calls.Call("c-red")
	red.State = calls.StateHeld
	e.calls.put(red, events.CallUpdated)
	blue, _ := e.calls.Call("c-blue")
	blue.State = calls.StateEnded
	e.calls.put(blue, events.CallEnded)
	ev := sam.expect(events.CallEnded, "c-blue")
	if !strings.Contains(ev.Data, `"state":"ended"`) {
		t.Errorf("call.ended data %s", ev.Data)
	}
	ada.expect(events.CallUpdated, "c-red")
	ada.expect(events.CallEnded, "c-blue")
}

func TestEventsAgentPrivacy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, ada, sue, sam := e.openStream("alice"), e.openStream("ada"), e.openStream("sue"), e.openStream("sam")
	alice.expect(events.CallStarted, "c-red")
	alice.expect(events.CallStarted, "c-live")
	for _, id := range []string{"c-red", "c-blue", "c-live"} {
		ada.expect(events.CallStarted, id)
	}
	sue.expect(events.CallStarted, "c-red")
	sue.expect(events.CallStarted, "c-live")
	sam.expect(events.CallStarted, "c-blue")

	// sue joins alice's call in whisper.
	e.calls.addMonitor("c-red", "m-sue", "sue", "2001", room.Whisper)
	ev := alice.expect(events.MonitorStarted, "c-red")
	if want := `{"call_id":"c-red","monitored":true,"whisper":true}`; ev.Data != want {
		t.Errorf("agent's monitor.started data %s, want %s", ev.Data, want)
	}
	ev = ada.expect(events.MonitorStarted, "c-red")
	var detail struct {
		Monitor calls.Monitor `json:"monitor"`
		Call    callView      `json:"call"`
	}
	json.Unmarshal([]byte(ev.Data), &detail)
	if detail.Monitor.User != "sue" || detail.Monitor.ID != "m-sue" || len(detail.Call.Monitors) != 1 {
		t.Errorf("admin's monitor.started data %s", ev.Data)
	}
	ev = sue.expect(events.MonitorStarted, "c-red")
	json.Unmarshal([]byte(ev.Data), &detail)
	if detail.Monitor.ID != "m-sue" {
		t.Errorf("the supervisor's own monitor.started lacks its monitor: %s", ev.Data)
	}

	// She switches to listen through the API.
	e.expect(200, "sue", "PUT", "/api/monitors/m-sue", map[string]string{"mode": "listen"}, nil)
	ev = alice.expect(events.MonitorUpdated, "c-red")
	if want := `{"call_id":"c-red","monitored":true,"whisper":false}`; ev.Data != want {
		t.Errorf("agent's monitor.updated data %s, want %s", ev.Data, want)
	}
	ada.expect(events.MonitorUpdated, "c-red")
	sue.expect(events.MonitorUpdated, "c-red")

	// The admin turns the notice off: the agent hears nothing of monitors from now on.
	e.expect(200, "ada", "PUT", "/api/settings", map[string]bool{"notify_agent_on_monitor": false}, nil)
	e.calls.addMonitor("c-red", "m-ada", "ada", "9001", room.Whisper)
	e.expect(204, "sue", "DELETE", "/api/monitors/m-sue", nil, nil)
	red, _ := e.calls.Call("c-red")
	e.calls.put(red, events.CallUpdated) // monitors changed, nothing the agent may see
	red.State = calls.StateHeld
	e.calls.put(red, events.CallUpdated) // the marker: the agent's next event must be this
	for {
		// The setting's change itself shows as call.updated without the banner fields on
		// both her calls; no monitor.* may come at all.
		ev = alice.next()
		if ev.Type != string(events.CallUpdated) {
			t.Fatalf("with the setting off the agent gets %s %s", ev.Type, ev.Data)
		}
		if strings.Contains(ev.Data, "monitored") || strings.Contains(ev.Data, "whisper") {
			t.Errorf("agent's call.updated with the setting off: %s", ev.Data)
		}
		if strings.Contains(ev.Data, `"state":"held"`) {
			break
		}
	}
	// Turned on again, the agent's softphone learns at once that ada whispers, not who.
	e.expect(200, "ada", "PUT", "/api/settings", map[string]bool{"notify_agent_on_monitor": true}, nil)
	ev = alice.expect(events.CallUpdated, "c-red")
	if !strings.Contains(ev.Data, `"monitored":true`) || !strings.Contains(ev.Data, `"whisper":true`) {
		t.Errorf("agent's call.updated after the setting is back on: %s", ev.Data)
	}
	ev = alice.expect(events.CallUpdated, "c-live")
	if !strings.Contains(ev.Data, `"monitored":false`) {
		t.Errorf("agent's call.updated of the live call after the setting is back on: %s", ev.Data)
	}

	ada.expect(events.MonitorStarted, "c-red")
	ada.expect(events.MonitorEnded, "c-red")
	ada.expect(events.CallUpdated, "c-red") // the call now lists ada's session
	ada.expect(events.CallUpdated, "c-red")
	// Another team's supervisor hears nothing of the red call.
	blue, _ := e.calls.Call("c-blue")
	blue.State = calls.StateHeld
	e.calls.put(blue, events.CallUpdated)
	sam.expect(events.CallUpdated, "c-blue")

	for _, name := range []string{"sue", "2001", "ada", "9001", "m-sue", "m-ada"} {
		if strings.Contains(alice.raw.String(), name) {
			t.Errorf("the agent's stream contains %q:\n%s", name, alice.raw.String())
		}
		if strings.Contains(sam.raw.String(), name) {
			t.Errorf("the other team's supervisor's stream contains %q:\n%s", name, sam.raw.String())
		}
	}
	if !strings.Contains(ada.raw.String(), `"user":"sue"`) {
		t.Errorf("the admin's stream does not name sue:\n%s", ada.raw.String())
	}
}

func TestEventsAgentResyncShowsBanner(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.calls.addMonitor("c-red", "m-sue", "sue", "2001", room.Whisper)
	alice := e.openStream("alice")
	ev := alice.expect(events.CallStarted, "c-red")
	if !strings.Contains(ev.Data, `"monitored":true`) || !strings.Contains(ev.Data, `"whisper":true`) ||
		strings.Contains(ev.Data, "sue") {
		t.Errorf("agent's snapshot of a whispered call: %s", ev.Data)
	}
}

func TestEventsAgentHearsNothingWithSettingOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.expect(200, "ada", "PUT", "/api/settings", map[string]bool{"notify_agent_on_monitor": false}, nil)
	e.calls.addMonitor("c-red", "m-sue", "sue", "2001", room.Listen)
	alice := e.openStream("alice")
	alice.expect(events.CallStarted, "c-red")
	alice.expect(events.CallStarted, "c-live")
	e.calls.addMonitor("c-red", "m-ada", "ada", "9001", room.Whisper)
	e.expect(200, "sue", "PUT", "/api/monitors/m-sue", map[string]string{"mode": "barge"}, nil)
	e.expect(204, "sue", "DELETE", "/api/monitors/m-sue", nil, nil)
	live, _ := e.calls.Call("c-live")
	live.State = calls.StateHeld
	e.calls.put(live, events.CallUpdated)
	alice.expect(events.CallUpdated, "c-live") // the first thing after the monitors' comings and goings
	for _, leak := range []string{"monitored", "whisper", "sue", "2001", "ada", "9001", "m-sue", "m-ada"} {
		if strings.Contains(alice.raw.String(), leak) {
			t.Errorf("with the setting off the agent's stream contains %q:\n%s", leak, alice.raw.String())
		}
	}
}

func TestEventsCloseEndsStreams(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.openStream("bob")
	s.expect(events.CallStarted, "c-blue")
	e.api.Close()
	if _, err := s.read(); err != io.EOF {
		t.Errorf("after Close the stream reads %v, want EOF", err)
	}
	e.expect(503, "bob", "GET", "/api/events", nil, nil)
}

func TestEventsPingAndLogout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.api.pingEvery = 10 * time.Millisecond
	s := e.openStream("bob")
	s.expect(events.CallStarted, "c-blue")
	// Pings flow; once the token is gone, the stream ends at the next one.
	for !strings.Contains(s.raw.String(), ": ping\n\n") {
		line, err := s.r.ReadString('\n')
		if err != nil {
			t.Fatalf("no ping: %v", err)
		}
		s.raw.WriteString(line)
	}
	e.expect(204, "bob", "POST", "/api/logout", nil, nil)
	for {
		s.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := s.r.ReadString('\n'); err != nil {
			if err != io.EOF {
				t.Errorf("after logout the stream ends with %v, want EOF", err)
			}
			break
		}
	}
}

// TestStreamResync checks what a stream sends after lost events: the active calls again,
// and the end of a call that ended unseen.
func TestStreamResync(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ada, err := e.store.User(context.Background(), "ada")
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	s := &stream{a: e.api, w: rec, rc: http.NewResponseController(rec), user: ada, sent: make(map[string]sentCall)}
	if err := s.snapshot(); err != nil {
		t.Fatal(err)
	}
	blue, _ := e.calls.Call("c-blue")
	blue.State = calls.StateEnded
	e.calls.put(blue, events.CallEnded)
	e.calls.mu.Lock()
	delete(e.calls.calls, "c-live") // gone from the registry altogether
	e.calls.mu.Unlock()
	rec.Body.Reset()
	if err := s.snapshot(); err != nil {
		t.Fatal(err)
	}
	got := rec.Body.String()
	for _, want := range []string{"event: call.started\ndata: {\"id\":\"c-red\"", "event: call.ended\ndata: {\"id\":\"c-blue\"",
		"event: call.ended\ndata: {\"id\":\"c-live\""} {
		if !strings.Contains(got, want) {
			t.Errorf("resync lacks %q:\n%s", want, got)
		}
	}
	if len(s.sent) != 1 {
		t.Errorf("after resync the stream knows %d calls, want 1", len(s.sent))
	}
}
