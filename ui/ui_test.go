package ui

import (
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2/test"

	"ringside/app"
	"ringside/server/servertest"
)

var (
	samUser   = app.User{Name: "sam", Ext: "2001", Role: "supervisor", Permissions: []string{"call", "monitor"}}
	aliceUser = app.User{Name: "alice", Ext: "1001", Role: "agent", Permissions: []string{"call"}}
	adaUser   = app.User{Name: "ada", Ext: "3001", Role: "admin", Permissions: []string{"call", "monitor", "admin"}}
)

func ago(d time.Duration) time.Time { return time.Now().Add(-d) }

func tp(t time.Time) *time.Time { return &t }

// liveCall is what the server will list for a browser call: not monitorable.
func liveCall() app.Call {
	return app.Call{ID: "live-1", Kind: "live", State: "talking", Direction: "inbound",
		Agent: app.Party{Name: "alice", Ext: "1001"}, Customer: app.Customer{Name: "Web visitor"},
		StartedAt: ago(3 * time.Minute), AnsweredAt: tp(ago(170 * time.Second)),
		UnmonitorableReason: "live calls are end-to-end encrypted"}
}

func phoneCall() app.Call {
	return app.Call{ID: "call-1", Kind: "phone", State: "talking", Direction: "inbound",
		Agent: app.Party{Name: "alice", Ext: "1001"}, Customer: app.Customer{Number: "+15550100", Name: "Jane Doe"},
		StartedAt: ago(2 * time.Minute), AnsweredAt: tp(ago(110 * time.Second)), Monitorable: true}
}

// A live call shows the lock and the reason, and Monitor Call is there but disabled.
func TestLiveCallShowsLockAndReason(t *testing.T) {
	test.NewTempApp(t)
	tapped := false
	d := NewDashboard(samUser, CallActions{Monitor: func(app.Call) { tapped = true }}, nil)
	d.SetCalls([]app.Call{phoneCall(), liveCall()})
	w := test.NewTempWindow(t, d.Content)
	w.Resize(w.Content().MinSize().AddWidthHeight(200, 0))

	live := d.Row("live-1")
	if live == nil || live.monitor == nil {
		t.Fatal("the live call has no row or no Monitor Call")
	}
	if !live.monitor.Disabled() {
		t.Error("Monitor Call is enabled on a live call")
	}
	if live.lock.Resource == nil {
		t.Error("no lock on the live call")
	}
	if !live.reason.Visible() || live.reason.Text != "Live calls are end-to-end encrypted" {
		t.Errorf("reason = %q (visible %v)", live.reason.Text, live.reason.Visible())
	}
	test.Tap(live.monitor)
	if tapped {
		t.Error("tapping the disabled Monitor Call asked to monitor")
	}
	phone := d.Row("call-1")
	if phone.monitor.Disabled() || phone.lock.Resource != nil || phone.reason.Visible() {
		t.Error("a phone call shows a lock, a reason or a disabled Monitor Call")
	}

	det := NewDetails(samUser, liveCall(), func(app.Call) { tapped = true }, nil)
	if !det.monitor.Disabled() || !det.lock.Visible() || det.reason.Text != "Live calls are end-to-end encrypted" {
		t.Errorf("Call Details of a live call: disabled %v, lock %v, reason %q", det.monitor.Disabled(), det.lock.Visible(), det.reason.Text)
	}
	h := NewHistory(samUser, CallActions{Monitor: func(app.Call) {}}, nil, nil)
	h.SetCalls([]app.Call{liveCall()}, nil)
	if r := h.Row("live-1"); r.monitor == nil || !r.monitor.Disabled() || r.reason == nil {
		t.Error("history: a live call's Monitor Call is missing, enabled or without its reason")
	}
}

// An agent has no Monitor Call anywhere: dashboard, history, details.
func TestAgentSeesNoMonitorCall(t *testing.T) {
	test.NewTempApp(t)
	actions := CallActions{Monitor: func(app.Call) {}, Details: func(app.Call) {}}
	d := NewDashboard(aliceUser, actions, nil)
	d.SetCalls([]app.Call{phoneCall(), liveCall()})
	if d.Row("call-1").monitor != nil || containsText(d.Content, "Monitor Call") {
		t.Error("an agent's dashboard offers Monitor Call")
	}
	h := NewHistory(aliceUser, actions, nil, nil)
	h.SetCalls([]app.Call{phoneCall()}, nil)
	if h.Row("call-1").monitor != nil || containsText(h.Content, "Monitor Call") {
		t.Error("an agent's history offers Monitor Call")
	}
	det := NewDetails(aliceUser, phoneCall(), func(app.Call) {}, nil)
	if det.monitor != nil || containsText(det.Content, "Monitor Call") || det.monitors != nil {
		t.Error("an agent's Call Details offers Monitor Call or lists monitors")
	}
}

// Ended calls in the history say who monitored them and how.
func TestHistoryShowsWhoMonitored(t *testing.T) {
	test.NewTempApp(t)
	c := phoneCall()
	c.State, c.EndedAt = "ended", tp(ago(10*time.Second))
	c.Monitors = []app.Monitor{{ID: "m1", User: "sam", Mode: "listen"}}
	c.ModeLog = map[string][]app.ModeChange{"m1": {{Mode: "listen"}, {Mode: "whisper"}, {Mode: "listen"}}}
	h := NewHistory(samUser, CallActions{Monitor: func(app.Call) {}}, nil, nil)
	h.SetCalls([]app.Call{c}, nil)
	r := h.Row(c.ID)
	if got, want := r.monitored.Text, "Monitored by sam (listen → whisper → listen)"; got != want {
		t.Errorf("monitored line = %q, want %q", got, want)
	}
	if r.monitor != nil {
		t.Error("an ended call offers Monitor Call")
	}
}

// Monitor Call on the dashboard opens the monitoring window; Whisper switches the
// server's mode both ways; Leave Call closes the window and the server has no monitor.
func TestDashboardMonitorCallWhisperLeave(t *testing.T) {
	r := newRig(t)
	agent := r.phone("1001", "alice-pw", agentHz, true)
	_ = agent
	r.customerCalls("15550100", "1001")
	s := r.login("sam", "sam-pw", supervisorHz)
	h := newHarness(t)
	u := h.open(s)
	id := h.onlyCall(u)

	var row *callRow
	h.do(func() { row = u.Dashboard.Row(id) })
	if row.monitor == nil || row.monitor.Disabled() {
		t.Fatal("no enabled Monitor Call for a supervisor on a phone call")
	}
	h.tap(row.monitor)
	var v *MonitorView
	h.eventually("the monitoring window opens", func() bool { v = u.MonitorView(id); return v != nil })
	h.do(func() {
		if h.windowTitled("Monitoring alice") == nil {
			t.Error("no window titled Monitoring alice …")
		}
		if v.Whisper.On() || !strings.Contains(v.Whisper.Text(), "Whisper OFF") {
			t.Errorf("whisper starts as %q", v.Whisper.Text())
		}
	})

	adm := r.admin()
	mode := func() string {
		ms := r.monitorsOn(adm, id)
		if len(ms) != 1 {
			return ""
		}
		return ms[0].Mode
	}
	h.eventuallyOff("the server lists sam listening", func() bool { return mode() == "listen" })

	h.tap(v.Whisper)
	h.eventuallyOff("the server has sam whispering", func() bool { return mode() == "whisper" })
	h.eventually("the toggle shows Whisper ON", func() bool {
		return v.Whisper.On() && v.Whisper.Text() == "Whisper ON — agent hears you"
	})
	h.tap(v.Whisper)
	h.eventuallyOff("the server has sam listening again", func() bool { return mode() == "listen" })
	h.eventually("the toggle shows Whisper OFF", func() bool { return !v.Whisper.On() && !v.Whisper.pending })

	h.eventually("the level meters move", func() bool { return v.custBar.level > 0 && v.agentBar.level > 0 })

	h.tap(v.Leave)
	h.eventually("the monitoring window closes", func() bool {
		return u.MonitorView(id) == nil && h.windowTitled("Monitoring") == nil
	})
	h.eventuallyOff("the server shows no monitor", func() bool { return len(r.monitorsOn(adm, id)) == 0 })
}

// Monitor Call in the history opens the monitoring window; once the call has ended the
// history says who monitored it.
func TestHistoryMonitorCall(t *testing.T) {
	r := newRig(t)
	r.phone("1001", "alice-pw", agentHz, true)
	cust := r.customerCalls("15550100", "1001")
	s := r.login("sam", "sam-pw", supervisorHz)
	h := newHarness(t)
	u := h.open(s)
	id := h.onlyCall(u)

	h.do(func() { u.tabs.SelectIndex(1) })
	var hr *historyRow
	h.eventually("the history lists the active call", func() bool {
		hr = u.History.Row(id)
		return hr != nil && hr.monitor != nil
	})
	h.tap(hr.monitor)
	var v *MonitorView
	h.eventually("the monitoring window opens", func() bool { v = u.MonitorView(id); return v != nil })

	if err := cust.Hangup(tctx(t, 10*time.Second)); err != nil {
		t.Fatalf("customer hangs up: %v", err)
	}
	h.eventually("the monitoring window says the call ended", func() bool { return v.Ended() })
	h.eventually("the history shows the ended call with its monitor", func() bool {
		hr = u.History.Row(id)
		return hr != nil && hr.call.State == "ended" && strings.HasPrefix(hr.monitored.Text, "Monitored by sam")
	})
	h.do(func() {
		if hr.monitor != nil {
			t.Error("the ended call still offers Monitor Call")
		}
	})
	h.tap(v.Leave) // "Close" now
	h.eventually("the window closes", func() bool { return u.MonitorView(id) == nil })
}

// An admin's Call Details list who is monitoring, live; Monitor Call there opens the window.
func TestCallDetailsAdminSeesMonitors(t *testing.T) {
	r := newRig(t)
	r.phone("1001", "alice-pw", agentHz, true)
	r.customerCalls("15550100", "1001")
	sam := r.login("sam", "sam-pw", supervisorHz)
	ada := r.login("ada", "ada-pw", 1700)
	h := newHarness(t)
	u := h.open(ada)
	id := h.onlyCall(u)

	var row *callRow
	h.do(func() { row = u.Dashboard.Row(id) })
	h.tap(row.details)
	var d *Details
	h.eventually("Call Details open", func() bool { d = u.DetailsView(id); return d != nil })
	h.eventually("nobody is listed yet", func() bool {
		return len(d.MonitoringNames()) == 0 && d.monitorsNote.Text == "Nobody is monitoring this call."
	})

	m, err := sam.MonitorCall(tctx(t, 10*time.Second), id)
	if err != nil {
		t.Fatalf("sam monitors: %v", err)
	}
	h.eventually("Call Details list sam", func() bool {
		n := d.MonitoringNames()
		return len(n) == 1 && strings.HasPrefix(n[0], "sam")
	})

	h.tap(d.monitor)
	h.eventually("ada's monitoring window opens", func() bool { return u.MonitorView(id) != nil })
	h.eventually("Call Details list sam and ada", func() bool { return len(d.MonitoringNames()) == 2 })

	if err := m.Leave(tctx(t, 10*time.Second)); err != nil {
		t.Fatalf("sam leaves: %v", err)
	}
	h.eventually("Call Details drop sam", func() bool {
		n := d.MonitoringNames()
		return len(n) == 1 && strings.HasPrefix(n[0], "ada")
	})
}

// The agent's call window: the incoming call notifies and rings, Answer takes it, the
// banners come and go with the supervisor, and the agent sees no Monitor Call.
func TestAgentCallWindowBanners(t *testing.T) {
	r := newRig(t)
	alice := r.login("alice", "alice-pw", agentHz)
	h := newHarness(t)
	u := h.open(alice)
	// The customer's INVITE waits for the answer, so dial in the background.
	dialed := make(chan error, 1)
	go func() {
		cust := r.phone("15550100", "", customerHz, false)
		_, err := cust.Dial(tctx(t, 20*time.Second), "sip:1001@"+r.srv.SIPAddr)
		dialed <- err
	}()

	var v *CallView
	h.eventually("the incoming call's window opens", func() bool {
		for _, w := range u.calls {
			v = w.view
			return v.Answer.Visible()
		}
		return false
	})
	if n := h.a.notifications(); len(n) != 1 || n[0].Title != "Incoming call" {
		t.Errorf("notifications = %+v, want one incoming call", n)
	}
	h.tap(v.Answer)
	if err := <-dialed; err != nil {
		t.Fatalf("customer's call: %v", err)
	}
	h.eventually("the call is talking", func() bool { return v.state.text.Text == "TALKING" && !v.Answer.Visible() })
	h.do(func() {
		if v.MonitoredBanner.Container.Visible() || v.WhisperBanner.Container.Visible() {
			t.Error("banners show before anyone monitors")
		}
	})

	id := h.onlyCall(u)
	h.do(func() {
		if u.Dashboard.Row(id).monitor != nil || containsText(u.main.Content(), "Monitor Call") {
			t.Error("the agent's dashboard offers Monitor Call")
		}
	})

	sup := r.phone("2001", "sam-pw", supervisorHz, false)
	mc, err := sup.Dial(tctx(t, 10*time.Second), "sip:*11001@"+r.srv.SIPAddr)
	if err != nil {
		t.Fatalf("sam dials *11001: %v", err)
	}
	h.eventually("'This call is being monitored' appears", func() bool {
		return v.MonitoredBanner.Container.Visible() && !v.WhisperBanner.Container.Visible()
	})
	if err := mc.SendDTMF('2'); err != nil {
		t.Fatal(err)
	}
	h.eventually("'Whisper on' appears", func() bool { return v.WhisperBanner.Container.Visible() && v.MonitoredBanner.Container.Visible() })
	if err := mc.SendDTMF('1'); err != nil {
		t.Fatal(err)
	}
	h.eventually("'Whisper on' goes", func() bool { return !v.WhisperBanner.Container.Visible() && v.MonitoredBanner.Container.Visible() })
	if err := mc.Hangup(tctx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	h.eventually("'This call is being monitored' goes", func() bool { return !v.MonitoredBanner.Container.Visible() })

	h.tap(v.Mute)
	h.eventually("mute shows", func() bool { return v.Mute.Text == "Unmute" })
	h.tap(v.Hangup)
	h.eventually("the call window closes", func() bool { return len(u.calls) == 0 && h.windowTitled("Call with") == nil })
}

// The login window signs in and opens the main window; the account is remembered.
func TestLoginOpensMainWindow(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	r := newRig(t)
	h := newHarness(t)
	u := New(h.a, Options{Do: h.post, Tick: 50 * time.Millisecond, Logger: servertest.Logger(),
		Audio: func() app.AudioDevice { return app.NullAudio() }})
	t.Cleanup(u.Close)
	h.do(func() {
		u.ShowLogin(app.Account{})
		l := u.Login()
		l.URL.SetText(r.base)
		l.User.SetText("sam")
		l.Password.SetText("wrong")
	})
	h.tap(u.Login().SignIn)
	h.eventually("a wrong password is reported", func() bool {
		return strings.HasPrefix(u.Login().Status.Text, "Could not sign in") && !u.Login().SignIn.Disabled()
	})
	h.do(func() { u.Login().Password.SetText("sam-pw") })
	h.tap(u.Login().SignIn)
	h.eventually("the sign-in window turns into the main window", func() bool {
		return u.MainWindow() != nil && h.windowTitled("Ringside — sam") != nil && h.windowTitled("Ringside — Sign in") == nil
	})
	// Without a keyring (as here) the password is not kept, and LoadAccount says so.
	acct, err := app.LoadAccount()
	if acct.User != "sam" || acct.ServerURL != r.base {
		t.Errorf("remembered account = %+v, %v", acct, err)
	}
}
