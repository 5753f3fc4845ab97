package ui

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"fyne.io/fyne/v2"

	"ringside/app/webvisitor"
	"ringside/server/store"
)

// TestScreenshots renders every view of a running call center to PNGs in
// $RINGSIDE_SCREENSHOTS (skipped without it): sam's dashboard and history, ada's Call
// Details, sam's monitoring window with whisper on, and alice's call window with both
// banners. Everything is real, the dashboard's live call too: a (pion) web visitor
// calling carol's softphone.
func TestScreenshots(t *testing.T) {
	dir := os.Getenv("RINGSIDE_SCREENSHOTS")
	if dir == "" {
		t.Skip("set RINGSIDE_SCREENSHOTS=dir to write screenshots")
	}
	r := newRig(t)
	r.srv.AddUsers(store.NewUser{Name: "carol", Ext: "1003", Password: "carol-pw", Role: store.RoleAgent, Teams: []string{"red"}})
	r.phone("1002", "bob-pw", agentHz, true)
	alice := r.login("alice", "alice-pw", agentHz)
	sam := r.login("sam", "sam-pw", supervisorHz)
	ada := r.login("ada", "ada-pw", 1700)
	h := newHarness(t)
	uAlice, uSam := h.open(alice), h.open(sam)

	// An earlier call, monitored with a whisper, for the history.
	early := r.customerCalls("14155550123", "1002")
	var earlyID string
	h.eventually("sam sees the first call", func() bool {
		for id := range uSam.Dashboard.rows {
			earlyID = id
			return true
		}
		return false
	})
	m, err := sam.MonitorCall(tctx(t, 10*time.Second), earlyID)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := m.SetWhisper(tctx(t, 10*time.Second), true); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := early.Hangup(tctx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	<-m.Done()

	// Now: a customer talking with alice (answered in her call window), one with bob.
	go func() {
		cust := r.phone("14155550178", "", customerHz, false)
		cust.Dial(tctx(t, 20*time.Second), "sip:1001@"+r.srv.SIPAddr)
	}()
	var cv *CallView
	h.eventually("alice's phone rings", func() bool {
		for _, w := range uAlice.calls {
			cv = w.view
			return cv.Answer.Visible()
		}
		return false
	})
	h.tap(cv.Answer)
	r.customerCalls("14155550199", "1002")
	// And a web visitor on a live call with carol.
	carol := r.loginLive("carol", "carol-pw", agentHz)
	vis, err := webvisitor.Call(tctx(t, 10*time.Second), r.srv.HTTPAddr, "1003", "Noor Haddad", customerHz)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vis.Close)
	h.eventually("carol's softphone rings", func() bool { return len(carol.OwnCalls()) == 1 })
	if err := carol.OwnCalls()[0].Answer(tctx(t, 15*time.Second)); err != nil {
		t.Fatal(err)
	}
	var aliceCall string
	h.eventually("sam sees the three calls", func() bool {
		n := 0
		for id, row := range uSam.Dashboard.rows {
			if row.call.State == "talking" {
				n++
			}
			if row.call.Agent.Ext == "1001" {
				aliceCall = id
			}
		}
		return n == 3 && aliceCall != ""
	})
	h.tap(uSam.Dashboard.Row(aliceCall).monitor)
	var mv *MonitorView
	h.eventually("sam's monitoring window opens", func() bool { mv = uSam.MonitorView(aliceCall); return mv != nil })
	h.tap(mv.Whisper)
	h.eventually("alice sees both banners", func() bool {
		return cv.MonitoredBanner.Container.Visible() && cv.WhisperBanner.Container.Visible()
	})

	uAda := h.open(ada)
	h.eventually("ada sees alice's call", func() bool { return uAda.Dashboard.Row(aliceCall) != nil })
	h.do(func() { uAda.showDetails(uAda.Dashboard.Row(aliceCall).call) })
	h.eventually("ada's details list sam", func() bool {
		d := uAda.DetailsView(aliceCall)
		return d != nil && len(d.MonitoringNames()) == 1
	})
	time.Sleep(2500 * time.Millisecond) // timers and meters move

	shoot := func(name string, w fyne.Window, size fyne.Size) {
		t.Helper()
		var f *os.File
		h.do(func() {
			w.Resize(size)
			img := w.Canvas().Capture()
			var err error
			if f, err = os.Create(filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
			if err := png.Encode(f, img); err != nil {
				t.Fatal(err)
			}
		})
		f.Close()
	}
	shoot("dashboard.png", uSam.MainWindow(), fyne.NewSize(980, 520))
	h.do(func() { uSam.tabs.SelectIndex(1) })
	h.eventually("the history has loaded", func() bool { return uSam.History.Row(earlyID) != nil })
	shoot("history.png", uSam.MainWindow(), fyne.NewSize(980, 420))
	shoot("details.png", uAda.details[aliceCall].win, fyne.NewSize(560, 520))
	shoot("monitor.png", uSam.monitors[aliceCall].win, fyne.NewSize(560, 460))
	var aw fyne.Window
	h.do(func() {
		for _, w := range uAlice.calls {
			aw = w.win
		}
	})
	shoot("agent-call.png", aw, fyne.NewSize(560, 420))
	h.do(func() { uAda.tabs.SelectIndex(2) })
	h.eventually("ada's settings have loaded", func() bool { return uAda.Settings.Notify != nil && !uAda.Settings.Notify.Disabled() })
	time.Sleep(300 * time.Millisecond)
	shoot("settings.png", uAda.MainWindow(), fyne.NewSize(980, 560))
}
