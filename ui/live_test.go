package ui

import (
	"image/png"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"

	"ringside/app"
	"ringside/app/webvisitor"
	"ringside/media"
	"ringside/server/servertest"
)

// loginLive signs a softphone session in with live calls held to loopback.
func (r *rig) loginLive(user, password string, tone float64) *app.Session {
	r.t.Helper()
	s, err := app.Login(tctx(r.t, 20*time.Second), app.Account{ServerURL: r.base, User: user, Password: password},
		app.Options{Audio: app.ToneAudio(tone), Logger: servertest.Logger(),
			Live: app.LiveConfig{Networks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}})
	if err != nil {
		r.t.Fatalf("login %s: %v", user, err)
	}
	r.t.Cleanup(func() { s.Close() })
	return s
}

// A web visitor calls the agent: the notification says it is a web visitor, the call
// window shows the lock and "Live call (end-to-end encrypted)" and no hold, keypad or
// transfer; Answer connects the visitor, who then hears the agent, and Hang up ends it.
func TestLiveCallWindowShowsLock(t *testing.T) {
	r := newRig(t)
	alice := r.loginLive("alice", "alice-pw", agentHz)
	h := newHarness(t)
	u := h.open(alice)
	vis, err := webvisitor.Call(tctx(t, 10*time.Second), r.srv.HTTPAddr, "1001", "Vera", customerHz)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vis.Close)

	var v *CallView
	h.eventually("the live call's window opens", func() bool {
		for _, w := range u.calls {
			v = w.view
			return v.Answer.Visible()
		}
		return false
	})
	if n := h.a.notifications(); len(n) != 1 || n[0].Title != "Incoming live call" || !strings.Contains(n[0].Content, "Vera, a web visitor") {
		t.Errorf("notifications = %+v, want one saying Vera, a web visitor, is calling", n)
	}
	h.do(func() {
		if !v.LiveBanner.Container.Visible() || v.LiveBanner.Label() != "Live call (end-to-end encrypted)" {
			t.Errorf("the live call window shows no lock banner (visible %v, %q)", v.LiveBanner.Container.Visible(), v.LiveBanner.Label())
		}
		if v.Hold.Visible() || v.Keypad.Visible() || v.Transfer.Visible() {
			t.Error("a live call window offers hold, keypad or transfer")
		}
		if !v.Mute.Visible() || !v.Hangup.Visible() || v.Hangup.Text != "Decline" {
			t.Errorf("mute visible %v, hang up %q", v.Mute.Visible(), v.Hangup.Text)
		}
		if !strings.Contains(v.peer.Text, "Vera") {
			t.Errorf("the window shows %q calling", v.peer.Text)
		}
	})

	h.tap(v.Answer)
	if _, err := vis.Expect(tctx(t, 15*time.Second), "answer"); err != nil {
		t.Fatal(err)
	}
	h.eventually("the call is talking", func() bool { return v.state.text.Text == "TALKING" && !v.Answer.Visible() })
	h.do(func() {
		if !v.LiveBanner.Container.Visible() || !v.Mute.Visible() || v.Mute.Disabled() {
			t.Error("the talking live call lost its lock or mute")
		}
	})
	if dir := os.Getenv("RINGSIDE_SCREENSHOTS"); dir != "" {
		time.Sleep(1500 * time.Millisecond) // the timer moves
		h.do(func() {
			w := h.windowTitled("Call with")
			w.Resize(fyne.NewSize(440, 360))
			f, err := os.Create(filepath.Join(dir, "live-call-window.png"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := png.Encode(f, w.Canvas().Capture()); err != nil {
				t.Fatal(err)
			}
		})
	}
	if pcm, err := vis.Listen(tctx(t, 10*time.Second), 200*time.Millisecond, 500*time.Millisecond); err != nil {
		t.Fatal(err)
	} else if db := media.ToneLevelDB(pcm, agentHz); db < -25 {
		t.Errorf("the visitor hears the agent's tone at %.1f dB", db)
	}

	h.tap(v.Hangup)
	if _, err := vis.Expect(tctx(t, 10*time.Second), "hangup"); err != nil {
		t.Fatal(err)
	}
	h.eventually("the call window closes", func() bool { return len(u.calls) == 0 && h.windowTitled("Call with") == nil })
}
