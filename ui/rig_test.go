package ui

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"ringside/app"
	"ringside/server/servertest"
	"ringside/server/simphone"
)

// Distinct tones per party, as in the server's tests.
const (
	customerHz   = 440
	agentHz      = 1000
	supervisorHz = 2300
)

func tctx(t *testing.T, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return c
}

// rig is a ringside-media in-process on loopback with the demo's users.
type rig struct {
	t    *testing.T
	srv  *servertest.Server
	base string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	srv := servertest.Start(t)
	srv.AddUsers(servertest.Users...)
	return &rig{t: t, srv: srv, base: srv.URL()}
}

// phone is a simulated SIP phone; agents register and answer by themselves.
func (r *rig) phone(ext, password string, tone float64, agent bool) *simphone.Phone {
	r.t.Helper()
	p, err := simphone.New(tctx(r.t, 10*time.Second), simphone.Config{
		Server: r.srv.SIPAddr, Ext: ext, Password: password, ToneHz: tone, AutoAnswer: agent, Logger: servertest.Logger(),
	})
	if err != nil {
		r.t.Fatalf("phone %s: %v", ext, err)
	}
	r.t.Cleanup(func() { p.Close() })
	if agent {
		if err := p.Register(tctx(r.t, 10*time.Second), time.Hour); err != nil {
			r.t.Fatalf("register %s: %v", ext, err)
		}
	}
	return p
}

// customerCalls has a customer phone call ext and returns the customer's end.
func (r *rig) customerCalls(number, ext string) *simphone.Call {
	r.t.Helper()
	cust := r.phone(number, "", customerHz, false)
	c, err := cust.Dial(tctx(r.t, 10*time.Second), "sip:"+ext+"@"+r.srv.SIPAddr)
	if err != nil {
		r.t.Fatalf("customer dials %s: %v", ext, err)
	}
	return c
}

// login signs a softphone session in.
func (r *rig) login(user, password string, tone float64) *app.Session {
	r.t.Helper()
	s, err := app.Login(tctx(r.t, 20*time.Second), app.Account{ServerURL: r.base, User: user, Password: password},
		app.Options{Audio: app.ToneAudio(tone), Logger: servertest.Logger()})
	if err != nil {
		r.t.Fatalf("login %s: %v", user, err)
	}
	r.t.Cleanup(func() { s.Close() })
	return s
}

// admin is an API client signed in as ada: it sees every call's monitors.
func (r *rig) admin() *app.Client {
	r.t.Helper()
	c := app.NewClient(r.base)
	if _, err := c.Login(tctx(r.t, 10*time.Second), "ada", "ada-pw"); err != nil {
		r.t.Fatalf("admin login: %v", err)
	}
	return c
}

// monitorsOn reads a call's monitors from the server.
func (r *rig) monitorsOn(c *app.Client, callID string) []app.Monitor {
	r.t.Helper()
	call, err := c.Call(tctx(r.t, 10*time.Second), callID)
	if err != nil {
		r.t.Fatalf("GET call %s: %v", callID, err)
	}
	return call.Monitors
}

// harness runs a UI on the test driver. Fyne's test driver runs fyne.Do at once on the
// calling goroutine, so the harness serialises UI work with a lock: the UI's updates
// (Options.Do) and the test's reads and taps.
type harness struct {
	t  *testing.T
	mu sync.Mutex
	wg sync.WaitGroup
	a  *recordingApp
}

// recordingApp keeps the notifications the UI sends.
type recordingApp struct {
	fyne.App
	mu    sync.Mutex
	notes []*fyne.Notification
}

func (a *recordingApp) SendNotification(n *fyne.Notification) {
	a.mu.Lock()
	a.notes = append(a.notes, n)
	a.mu.Unlock()
}

func (a *recordingApp) notifications() []*fyne.Notification {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*fyne.Notification(nil), a.notes...)
}

func newHarness(t *testing.T) *harness {
	a := test.NewTempApp(t)
	a.Settings().SetTheme(theme.DefaultTheme())
	h := &harness{t: t, a: &recordingApp{App: a}}
	t.Cleanup(h.wg.Wait)
	return h
}

// do runs f on the "UI goroutine" and waits (the test's reads and taps).
func (h *harness) do(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f()
}

// post queues f for the UI goroutine without waiting, as fyne.Do does in the program:
// app may call back synchronously from inside a tap's handler.
func (h *harness) post(f func()) {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.do(f)
	}()
}

// open shows the main window for s.
func (h *harness) open(s *app.Session) *UI {
	u := New(h.a, Options{Do: h.post, Tick: 50 * time.Millisecond, Logger: servertest.Logger()})
	h.t.Cleanup(u.Close)
	h.do(func() { u.Open(s) })
	return u
}

// tap taps a widget as the user would, on the UI goroutine.
func (h *harness) tap(o fyne.Tappable) { h.do(func() { test.Tap(o) }) }

// eventually polls cond (run under the UI lock) until it holds.
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	h.eventuallyOff(what, func() bool {
		var ok bool
		h.do(func() { ok = cond() })
		return ok
	})
}

// eventuallyOff polls cond without the UI lock (for server reads).
func (h *harness) eventuallyOff(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// windowTitled finds an open window whose title starts with prefix.
func (h *harness) windowTitled(prefix string) fyne.Window {
	for _, w := range h.a.Driver().AllWindows() {
		if strings.HasPrefix(w.Title(), prefix) {
			return w
		}
	}
	return nil
}

// texts collects every label, button and canvas text under o.
func texts(o fyne.CanvasObject) []string {
	var out []string
	var walk func(o fyne.CanvasObject)
	walk = func(o fyne.CanvasObject) {
		if o == nil || !o.Visible() {
			return
		}
		switch w := o.(type) {
		case *widget.Label:
			out = append(out, w.Text)
		case *widget.Button:
			out = append(out, w.Text)
		}
		switch w := o.(type) {
		case *fyne.Container:
			for _, c := range w.Objects {
				walk(c)
			}
		case fyne.Widget:
			for _, c := range test.WidgetRenderer(w).Objects() {
				walk(c)
			}
		}
	}
	walk(o)
	return out
}

func containsText(o fyne.CanvasObject, s string) bool {
	for _, t := range texts(o) {
		if strings.Contains(t, s) {
			return true
		}
	}
	return false
}

// onlyCall waits for the dashboard to list exactly one call and returns its id.
func (h *harness) onlyCall(u *UI) string {
	h.t.Helper()
	var id string
	h.eventually("the dashboard lists the call", func() bool {
		for cid, r := range u.Dashboard.rows {
			if r.call.State == "talking" {
				id = cid
				return true
			}
		}
		return false
	})
	return id
}
