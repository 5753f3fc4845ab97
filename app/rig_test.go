package app

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"ringside/media"
	"ringside/server/servertest"
	"ringside/server/simphone"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// ringside-media's Stop leaves its SIP socket open and read (and, rarely, one
		// connection sipgo's transport made for it). The softphone's own goroutines are
		// all checked; simphone's tests check the phone's.
		goleak.IgnoreAnyFunction("ringside/server/sip.(*Server).Serve.func3"),
		goleak.IgnoreAnyFunction("github.com/emiago/sipgo/sip.(*TransportUDP).readUDPConnection"),
	)
}

// Distinct tones, none a multiple of another (G.711 puts spurs on harmonics).
const (
	customerHz   = 440
	agentHz      = 1000
	supervisorHz = 2300
	agent2Hz     = 1700
	// heardDB: the tones are sent at 0.3 of full scale (about -10 dB); a heard tone sits
	// near -11 dB, an unheard one at the noise floor far below.
	heardDB = -25
)

// rig is a real ringside-media running in-process on loopback, with users.
type rig struct {
	t   *testing.T
	srv *servertest.Server
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{t: t, srv: servertest.Start(t)}
	r.srv.AddUsers(servertest.Users...)
	return r
}

// restart stops the server and starts it again on the same HTTP address and data. SIP
// gets a new port: the server does not release its SIP socket on Stop.
func (r *rig) restart() {
	r.t.Helper()
	r.srv.Config.HTTPAddr = r.srv.HTTPAddr
	r.srv.Stop()
	r.srv.Start()
}

func tctx(t *testing.T, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return c
}

// login starts a Session with a tone device; it is closed at cleanup.
func (r *rig) login(user, password string, hz float64) (*Session, *ToneAudioDevice) {
	r.t.Helper()
	return r.loginCheck(user, password, hz, true)
}

func (r *rig) loginCheck(user, password string, hz float64, checkClose bool) (*Session, *ToneAudioDevice) {
	r.t.Helper()
	dev := ToneAudio(hz).(*ToneAudioDevice)
	s, err := Login(tctx(r.t, 10*time.Second), Account{ServerURL: r.srv.URL(), User: user, Password: password}, Options{Audio: dev, Logger: servertest.Logger()})
	if err != nil {
		r.t.Fatalf("login %s: %v", user, err)
	}
	r.t.Cleanup(func() {
		if err := s.Close(); err != nil && checkClose {
			r.t.Errorf("close session %s: %v", user, err)
		}
	})
	return s, dev
}

// customer is a simulated phone that calls in from the trunk.
func (r *rig) customer() *simphone.Phone {
	r.t.Helper()
	p, err := simphone.New(tctx(r.t, 5*time.Second), simphone.Config{Server: r.srv.SIPAddr, Ext: "15550100", ToneHz: customerHz, Logger: servertest.Logger()})
	if err != nil {
		r.t.Fatalf("customer phone: %v", err)
	}
	r.t.Cleanup(func() { p.Close() })
	return p
}

// waitFor waits until cond holds, re-checking after every change of s.
func waitFor(t *testing.T, s *Session, d time.Duration, what string, cond func() bool) {
	t.Helper()
	ch := make(chan struct{}, 1)
	cancel := s.OnChange(func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	})
	defer cancel()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
	}
}

// heard measures what a device played: a fresh 700 ms, skipping the first 200 ms so
// audio from before a change has drained.
func heard(t *testing.T, dev *ToneAudioDevice) map[int]float64 {
	t.Helper()
	dev.ResetPlayed()
	if err := dev.WaitPlayed(tctx(t, 10*time.Second), 700*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	return toneLevels(dev.Played()[1600:])
}

func recorded(t *testing.T, c *simphone.Call) map[int]float64 {
	t.Helper()
	c.ResetRecording()
	if err := c.WaitRecording(tctx(t, 10*time.Second), 700*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	return toneLevels(c.Recording()[1600:])
}

func toneLevels(pcm []int16) map[int]float64 {
	out := map[int]float64{}
	for _, hz := range []int{customerHz, agentHz, supervisorHz, agent2Hz} {
		out[hz] = media.ToneLevelDB(pcm, float64(hz))
	}
	return out
}

// expect checks what one listener hears: the tones in hears above heardDB, every other
// at least 40 dB under the weakest heard one.
func expect(t *testing.T, who string, lv map[int]float64, hears ...int) {
	t.Helper()
	weakest := 0.0
	for _, hz := range hears {
		if lv[hz] < heardDB {
			t.Errorf("%s should hear %d Hz: level %.1f dB", who, hz, lv[hz])
		}
		weakest = min(weakest, lv[hz])
	}
	for hz, db := range lv {
		is := false
		for _, h := range hears {
			is = is || h == hz
		}
		if !is && db > weakest-40 {
			t.Errorf("%s must not hear %d Hz: level %.1f dB, only %.1f dB under what it hears", who, hz, db, weakest-db)
		}
	}
}
