package simphone

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"ringside/media"
)

// testDevice is a sound card on a 20 ms clock: a tone as microphone, a recording speaker.
type testDevice struct {
	tone   *media.Tone
	mu     sync.Mutex
	played []int16
	more   chan struct{} // closed and replaced after each frame played
	stop   chan struct{}
	done   chan struct{}
}

func newTestDevice(hz float64) *testDevice {
	return &testDevice{tone: media.NewTone(hz, 0.3), more: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
}

func (d *testDevice) Start(capture, playback func([]int16)) error {
	go func() {
		defer close(d.done)
		t := time.NewTicker(media.FrameDuration)
		defer t.Stop()
		in, out := make([]int16, media.FrameSamples), make([]int16, media.FrameSamples)
		for {
			select {
			case <-d.stop:
				return
			case <-t.C:
			}
			d.tone.Fill(in)
			capture(in)
			playback(out)
			d.mu.Lock()
			d.played = append(d.played, out...)
			close(d.more)
			d.more = make(chan struct{})
			d.mu.Unlock()
		}
	}()
	return nil
}

func (d *testDevice) Close() error {
	close(d.stop)
	<-d.done
	return nil
}

func (d *testDevice) reset() {
	d.mu.Lock()
	d.played = nil
	d.mu.Unlock()
}

func (d *testDevice) waitPlayed(t *testing.T, n int) []int16 {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		d.mu.Lock()
		p, more := append([]int16(nil), d.played...), d.more
		d.mu.Unlock()
		if len(p) >= n {
			return p
		}
		select {
		case <-more:
		case <-deadline:
			t.Fatalf("device played %d samples, want %d", len(p), n)
		}
	}
}

// TestAudioDevice: with Config.Audio the call sends the captured audio instead of the
// tone and the device plays what arrives; the recording still works.
func TestAudioDevice(t *testing.T) {
	dev := newTestDevice(440)
	a := newPhone(t, Config{Ext: "a", ToneHz: 2300, Audio: dev})
	b := newPhone(t, Config{Ext: "b", ToneHz: 1000, AutoAnswer: true})
	ca, err := a.Dial(ctxT(t, 5*time.Second), uriOf(b, "b"))
	if err != nil {
		t.Fatal(err)
	}
	cb := recvCall(t, b)

	if err := cb.WaitRecording(ctxT(t, 5*time.Second), 600*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	got := cb.Recording()[1600:]
	if l := media.ToneLevelDB(got, 440); l < -25 {
		t.Errorf("peer hears the device's microphone at %.1f dB", l)
	}
	if l := media.ToneLevelDB(got, 2300); l > -60 {
		t.Errorf("peer hears the configured tone at %.1f dB; the device should replace it", l)
	}

	dev.reset()
	played := dev.waitPlayed(t, 5600)[1600:]
	if l := media.ToneLevelDB(played, 1000); l < -25 {
		t.Errorf("device plays the peer at %.1f dB", l)
	}
	if err := ca.WaitRecording(ctxT(t, 5*time.Second), 200*time.Millisecond); err != nil {
		t.Errorf("recording with a device: %v", err)
	}

	ca.SetMute(true)
	cb.ResetRecording()
	if err := cb.WaitRecording(ctxT(t, 5*time.Second), 600*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if l := media.ToneLevelDB(cb.Recording()[1600:], 440); l > -60 {
		t.Errorf("peer hears the muted microphone at %.1f dB", l)
	}
}

// TestReferRefused: a peer without transfers answers REFER with an error status.
func TestReferRefused(t *testing.T) {
	a := newPhone(t, Config{Ext: "a", ToneHz: 440})
	b := newPhone(t, Config{Ext: "b", ToneHz: 1000, AutoAnswer: true})
	ca, err := a.Dial(ctxT(t, 5*time.Second), uriOf(b, "b"))
	if err != nil {
		t.Fatal(err)
	}
	recvCall(t, b)
	err = ca.Refer(ctxT(t, 5*time.Second), "sip:1002@127.0.0.1:5060")
	var se *StatusError
	if !errors.As(err, &se) || se.Code < 400 {
		t.Fatalf("Refer to a phone without transfers: %v, want a SIP error status", err)
	}
}

func TestSipfragStatus(t *testing.T) {
	for body, want := range map[string]int{"SIP/2.0 200 OK\r\n": 200, "SIP/2.0 486 Busy Here": 486, "junk": 0, "": 0} {
		got, _ := sipfragStatus([]byte(body))
		if got != want {
			t.Errorf("sipfragStatus(%q) = %d, want %d", body, got, want)
		}
	}
}

// TestKeepRegistered: the registration is refreshed before the granted expiry runs out.
func TestKeepRegistered(t *testing.T) {
	ua, err := sipgo.NewUA()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	regs := make(chan string, 16)
	srv.OnRegister(func(req *sip.Request, tx sip.ServerTransaction) {
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		exp := "0"
		if h := req.GetHeader("Expires"); h != nil {
			exp = h.Value()
		}
		if exp != "0" {
			c := req.Contact().Clone()
			c.Params = sip.NewParams()
			c.Params.Add("expires", "1") // the registrar grants one second
			res.AppendHeader(c)
		}
		tx.Respond(res)
		regs <- exp
	})
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.ServeUDP(pc)
	}()
	defer func() {
		pc.Close()
		<-done
		ua.Close()
	}()

	refreshed := make(chan error, 4)
	p := newPhone(t, Config{Server: pc.LocalAddr().String(), Ext: "1001", OnRegister: func(err error) {
		select {
		case refreshed <- err:
		default:
		}
	}})
	if err := p.KeepRegistered(ctxT(t, 5*time.Second), time.Hour); err != nil {
		t.Fatal(err)
	}
	next := func() string {
		select {
		case e := <-regs:
			return e
		case <-time.After(5 * time.Second):
			t.Fatal("no REGISTER")
			return ""
		}
	}
	if e := next(); e != "3600" {
		t.Errorf("first REGISTER expires %s", e)
	}
	if e := next(); e != "3600" {
		t.Errorf("refresh expires %s", e)
	}
	select {
	case err := <-refreshed:
		if err != nil {
			t.Errorf("OnRegister: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("OnRegister not called")
	}
	if err := p.Register(ctxT(t, 5*time.Second), 0); err != nil {
		t.Fatal(err)
	}
	if e := next(); e != "0" {
		t.Errorf("unregister expires %s", e)
	}
	// Unregistering stops the refresher: no REGISTER follows.
	select {
	case e := <-regs:
		t.Errorf("REGISTER (expires %s) after unregistering", e)
	case <-time.After(1500 * time.Millisecond):
	}
}

// TestAudioLevels: the RFC 6465 levels of received packets are exposed in CSRC order.
func TestAudioLevels(t *testing.T) {
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	st, err := newStream(testLogger(t), media.PCMU, 0, 0, make(chan rune, 4))
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	st.setLevelsID(3)
	pkt := make([]byte, 1500)
	send := func(seq uint16, levels []uint8) {
		var n int
		payload := make([]byte, media.FrameSamples)
		h := media.RTPHeader{PayloadType: 0, Seq: seq, Timestamp: uint32(seq) * 160, SSRC: 9}
		if levels == nil {
			n = media.MarshalRTP(pkt, h, payload)
		} else {
			n = media.MarshalRTPLevels(pkt, h, 3, []uint32{1, 2}, levels, payload)
		}
		if _, err := peer.WriteToUDPAddrPort(pkt[:n], st.local); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		select {
		case <-st.waitSamples(int(seq) * media.FrameSamples):
		case <-ctx.Done():
			t.Fatal("packet not received")
		}
	}
	send(1, []uint8{10, 127})
	if got := st.audioLevels(); len(got) != 2 || got[0] != 10 || got[1] != 127 {
		t.Errorf("levels %v, want [10 127]", got)
	}
	send(2, nil)
	if got := st.audioLevels(); got != nil {
		t.Errorf("levels %v after a packet without them, want none", got)
	}
}

// pausingDevice is a testDevice that records Pause and Resume.
type pausingDevice struct {
	*testDevice
	mu     sync.Mutex
	events []string
}

func (d *pausingDevice) Pause() error  { d.note("pause"); return nil }
func (d *pausingDevice) Resume() error { d.note("resume"); return nil }
func (d *pausingDevice) note(e string) {
	d.mu.Lock()
	d.events = append(d.events, e)
	d.mu.Unlock()
}
func (d *pausingDevice) log() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.events...)
}

// TestAudioDevicePausedWithoutCalls: a Pauser device is paused while the phone has no
// call, resumed for a call and paused again once it ends.
func TestAudioDevicePausedWithoutCalls(t *testing.T) {
	dev := &pausingDevice{testDevice: newTestDevice(440)}
	a := newPhone(t, Config{Ext: "a", Audio: dev})
	if got := dev.log(); !slices.Equal(got, []string{"pause"}) {
		t.Fatalf("after New: %v, want [pause]", got)
	}
	b := newPhone(t, Config{Ext: "b", ToneHz: 1000, AutoAnswer: true})
	ca, err := a.Dial(ctxT(t, 5*time.Second), uriOf(b, "b"))
	if err != nil {
		t.Fatal(err)
	}
	recvCall(t, b)
	if got := dev.log(); !slices.Equal(got, []string{"pause", "resume"}) {
		t.Fatalf("in a call: %v, want [pause resume]", got)
	}
	if err := ca.Hangup(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(dev.log()) < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := dev.log(); !slices.Equal(got, []string{"pause", "resume", "pause"}) {
		t.Fatalf("after the call: %v, want [pause resume pause]", got)
	}
}
