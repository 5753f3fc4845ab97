package ui

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"fyne.io/fyne/v2"

	"ringside/app"
)

// TestScreenshots renders every view of a running call center to PNGs in
// $RINGSIDE_SCREENSHOTS (skipped without it): sam's dashboard and history, ada's Call
// Details, sam's monitoring window with whisper on, and alice's call window with both
// banners. The server is real; only the live call on the dashboard is a sample value,
// since the server lists none yet.
func TestScreenshots(t *testing.T) {
	dir := os.Getenv("RINGSIDE_SCREENSHOTS")
	if dir == "" {
		t.Skip("set RINGSIDE_SCREENSHOTS=dir to write screenshots")
	}
	r := newRig(t)
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
	var aliceCall string
	h.eventually("sam sees both calls", func() bool {
		n := 0
		for id, row := range uSam.Dashboard.rows {
			if row.call.State == "talking" {
				n++
			}
			if row.call.Agent.Ext == "1001" {
				aliceCall = id
			}
		}
		return n == 2 && aliceCall != ""
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
	h.do(func() { uSam.Dashboard.SetCalls(append(sam.Calls(), sampleLive())) })
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

func sampleLive() app.Call {
	c := liveCall()
	c.Customer = app.Customer{Name: "Web visitor (ringside.example/help)"}
	c.Agent = app.Party{Name: "bob", Ext: "1002"}
	return c
}
