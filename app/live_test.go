package app

import (
	"errors"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gen2brain/malgo"

	"ringside/app/webvisitor"
	"ringside/server/servertest"
)

// loopbackOnly keeps every live-call packet of the tests on 127.0.0.0/8.
var loopbackOnly = LiveConfig{Networks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}

// loginLive logs in with a tone device and live calls held to loopback.
func (r *rig) loginLive(user, password string, hz float64) (*Session, *ToneAudioDevice) {
	r.t.Helper()
	return r.loginLiveWith(user, password, hz, loopbackOnly, true)
}

func (r *rig) loginLiveWith(user, password string, hz float64, live LiveConfig, checkClose bool) (*Session, *ToneAudioDevice) {
	r.t.Helper()
	dev := ToneAudio(hz).(*ToneAudioDevice)
	s, err := Login(tctx(r.t, 10*time.Second), Account{ServerURL: r.srv.URL(), User: user, Password: password},
		Options{Audio: dev, Logger: servertest.Logger(), Live: live})
	if err != nil {
		r.t.Fatalf("login %s: %v", user, err)
	}
	r.t.Cleanup(func() {
		if err := s.Close(); err != nil && checkClose {
			r.t.Errorf("close session %s: %v", user, err)
		}
	})
	if !s.LiveConnected() {
		r.t.Fatalf("%s: the live call socket is not up after login", user)
	}
	return s, dev
}

// visitor calls ext from a (pion) web visitor; it hangs up at cleanup.
func (r *rig) visitor(ext, name string, hz float64, codecs ...string) *webvisitor.Visitor {
	r.t.Helper()
	v, err := webvisitor.Call(tctx(r.t, 10*time.Second), r.srv.HTTPAddr, ext, name, hz, codecs...)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() {
		v.Close()
		if err := v.Err(); err != nil {
			r.t.Errorf("visitor: %v", err)
		}
	})
	return v
}

func expectMsg(t *testing.T, v *webvisitor.Visitor, typ string) webvisitor.Message {
	t.Helper()
	m, err := v.Expect(tctx(t, 10*time.Second), typ)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func visitorHears(t *testing.T, v *webvisitor.Visitor) map[int]float64 {
	t.Helper()
	pcm, err := v.Listen(tctx(t, 10*time.Second), 200*time.Millisecond, 700*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	return toneLevels(pcm)
}

// waitRingingLive waits for the agent's softphone to ring with a live call.
func waitRingingLive(t *testing.T, s *Session) *OwnCall {
	t.Helper()
	var oc *OwnCall
	waitFor(t, s, 10*time.Second, "a ringing live call", func() bool {
		for _, c := range s.OwnCalls() {
			if c.Kind() == CallKindLive && c.State() == CallRinging {
				oc = c
				return true
			}
		}
		return false
	})
	return oc
}

// A web visitor calls an agent: the softphone rings with a live call from the visitor,
// the agent answers, and each hears the other's tone over WebRTC straight between the
// two (loopback only, never through the server), with the visitor's own DTLS
// certificate; the visitor hangs up and the call ends on the agent's side.
func TestLiveCallOpus(t *testing.T) { testLiveCall(t, webvisitor.Opus, webvisitor.PCMU) }

// A visitor whose browser offers only PCMU gets PCMU back.
func TestLiveCallPCMU(t *testing.T) { testLiveCall(t, webvisitor.PCMU) }

func testLiveCall(t *testing.T, codecs ...string) {
	r := newRig(t)
	alice, aliceDev := r.loginLive("alice", "alice-pw", agentHz)
	before := r.mediaCounters()
	v := r.visitor("1001", "Vera", customerHz, codecs...)
	expectMsg(t, v, "ringing")
	oc := waitRingingLive(t, alice)
	if p := oc.Peer(); p.Name != "Vera" || p.Number != "web" {
		t.Errorf("the ringing call shows %+v, want Vera on web", p)
	}
	if !oc.Incoming() || oc.ID() == "" {
		t.Errorf("live call: incoming %v, id %q", oc.Incoming(), oc.ID())
	}
	if err := oc.Answer(tctx(t, 15*time.Second)); err != nil {
		t.Fatalf("answer: %v", err)
	}
	expectMsg(t, v, "answer")
	waitFor(t, alice, 10*time.Second, "the live call connected", func() bool {
		info, _ := oc.LiveInfo()
		return info.Connection == "connected" && info.Remote.IsValid()
	})

	lv := heard(t, aliceDev)
	t.Logf("agent hears: %.1f dB at %d Hz, %.1f dB at %d Hz", lv[customerHz], customerHz, lv[agentHz], agentHz)
	expect(t, "agent", lv, customerHz)
	vl := visitorHears(t, v)
	t.Logf("visitor hears: %.1f dB at %d Hz, %.1f dB at %d Hz", vl[agentHz], agentHz, vl[customerHz], customerHz)
	expect(t, "visitor", vl, agentHz)

	info, _ := oc.LiveInfo()
	t.Logf("live call: %+v", info)
	if !strings.EqualFold(info.Codec, codecs[0]) {
		t.Errorf("the agent sends %s, want %s (the visitor's first choice)", info.Codec, codecs[0])
	}
	if fp := v.Fingerprint(); fp == "" || !strings.EqualFold(info.RemoteFingerprint, fp) || !strings.EqualFold(info.RemoteCertFingerprint, fp) {
		t.Errorf("the agent saw fingerprint %q (offer) / %q (handshake), the visitor's is %q", info.RemoteFingerprint, info.RemoteCertFingerprint, fp)
	}
	if !info.Local.Addr().IsLoopback() || !info.Remote.Addr().IsLoopback() {
		t.Errorf("the media path %v -> %v leaves loopback", info.Local, info.Remote)
	}
	if vp := v.LocalAddr(); vp != info.Remote {
		t.Errorf("the agent sends to %v, but the visitor's end of the path is %v", info.Remote, vp)
	}
	for _, a := range []string{r.srv.SIPAddr, r.srv.HTTPAddr} {
		if info.Remote.String() == a {
			t.Errorf("the agent's media goes to the server at %s", a)
		}
	}
	if after := r.mediaCounters(); after != before {
		t.Errorf("the server's media counters moved during the live call:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if err := oc.SetHold(tctx(t, time.Second), true); !errors.Is(err, ErrLiveUnsupported) {
		t.Errorf("hold on a live call: %v, want ErrLiveUnsupported", err)
	}

	if err := v.Hangup(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-oc.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the live call did not end after the visitor hung up")
	}
	if got := oc.EndReason(); got != "the other side hung up" {
		t.Errorf("end reason %q", got)
	}
	if n := len(alice.OwnCalls()); n != 0 {
		t.Errorf("%d own calls left after the end", n)
	}
}

// The agent declines a ringing live call, and mutes and hangs up an answered one; the
// visitor is told each time.
func TestLiveCallAgentEnds(t *testing.T) {
	r := newRig(t)
	alice, _ := r.loginLive("alice", "alice-pw", agentHz)

	v := r.visitor("1001", "", customerHz)
	oc := waitRingingLive(t, alice)
	if p := oc.Peer(); p.Name != "Web visitor" {
		t.Errorf("a visitor without a name shows as %q", p.Name)
	}
	if err := oc.Hangup(tctx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	expectMsg(t, v, "hangup")
	v.Close()

	v = r.visitor("1001", "Max", customerHz)
	oc = waitRingingLive(t, alice)
	if err := oc.Answer(tctx(t, 15*time.Second)); err != nil {
		t.Fatal(err)
	}
	expectMsg(t, v, "answer")
	expect(t, "visitor", visitorHears(t, v), agentHz)
	oc.SetMute(true)
	if lv := visitorHears(t, v); lv[agentHz] > heardDB-20 {
		t.Errorf("the visitor hears the muted agent at %.1f dB", lv[agentHz])
	}
	oc.SetMute(false)
	if err := oc.Hangup(tctx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	expectMsg(t, v, "hangup")
	if got := oc.EndReason(); got != "hung up" {
		t.Errorf("end reason %q", got)
	}
}

// mediaCounters is what the server's /metrics says about media: legs with media, jitter
// buffers, RTP and SRTP packets. A live call's media never reaches the server, so none moves.
func (r *rig) mediaCounters() string {
	r.t.Helper()
	res, err := http.Get(r.srv.URL() + "/metrics")
	if err != nil {
		r.t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		r.t.Fatal(err)
	}
	var keep []string
	for l := range strings.Lines(string(body)) {
		if strings.HasPrefix(l, "ringside_legs_active") || strings.HasPrefix(l, "ringside_jitter_") || strings.HasPrefix(l, "ringside_rtp_") || strings.HasPrefix(l, "ringside_srtp_") {
			keep = append(keep, l)
		}
	}
	if len(keep) == 0 {
		r.t.Fatalf("/metrics has no media counters:\n%s", body)
	}
	return strings.Join(keep, "")
}

// The server restarts (forgetting every token): the softphone's agent socket comes back
// by itself, with a fresh login, and a web visitor can call again.
func TestLiveSocketReconnects(t *testing.T) {
	r := newRig(t)
	// The restarted server listens for SIP on a new port: unregistering from the old one
	// at the end fails, as in the session's own restart test.
	alice, _ := r.loginLiveWith("alice", "alice-pw", agentHz, loopbackOnly, false)
	r.restart()
	waitFor(t, alice, 10*time.Second, "the live socket drops", func() bool { return !alice.LiveConnected() })
	waitFor(t, alice, 20*time.Second, "the live socket is back", alice.LiveConnected)
	v := r.visitor("1001", "Vera", customerHz)
	expectMsg(t, v, "ringing")
	oc := waitRingingLive(t, alice)
	if err := oc.Answer(tctx(t, 15*time.Second)); err != nil {
		t.Fatal(err)
	}
	expectMsg(t, v, "answer")
	expect(t, "visitor", visitorHears(t, v), agentHz)
}

// The visitor's side vanishes without hanging up (a crashed tab): the agent's answer
// finds no path, and the call ends with the reason; the server is told, and tells the
// visitor's socket.
func TestLiveCallICEFailureEnds(t *testing.T) {
	r := newRig(t)
	cfg := loopbackOnly
	cfg.ICEDisconnected, cfg.ICEFailed = 500*time.Millisecond, time.Second
	alice, _ := r.loginLiveWith("alice", "alice-pw", agentHz, cfg, true)
	v := r.visitor("1001", "Vera", customerHz)
	expectMsg(t, v, "ringing")
	oc := waitRingingLive(t, alice)
	v.DropMedia()
	if err := oc.Answer(tctx(t, 15*time.Second)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-oc.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("the call without a media path did not end")
	}
	if got := oc.EndReason(); got != ReasonICEFailed {
		t.Errorf("end reason %q, want %q", got, ReasonICEFailed)
	}
	expectMsg(t, v, "hangup")
}

// Candidates outside the allowed networks never reach ICE: the offer's are cut out and
// trickled ones dropped; an mDNS name is no address.
func TestLiveOfferFilter(t *testing.T) {
	offer := "v=0\r\n" +
		"a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0\r\n" +
		"a=candidate:2 1 udp 2122194687 192.0.2.7 50001 typ host generation 0\r\n" +
		"a=candidate:3 1 udp 2122129151 0b4a5c1e-1b2c.local 50002 typ host generation 0\r\n" +
		"a=candidate:4 1 udp 1686052607 203.0.113.9 50003 typ srflx raddr 127.0.0.1 rport 50000\r\n" +
		"a=end-of-candidates\r\n"
	got := loopbackOnly.filterOffer(offer)
	want := "v=0\r\n" +
		"a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0\r\n" +
		"a=end-of-candidates\r\n"
	if got != want {
		t.Errorf("filtered offer:\n%s\nwant:\n%s", got, want)
	}
	if (LiveConfig{}).filterOffer(offer) != offer {
		t.Error("without networks the offer must pass untouched")
	}
	for line, ok := range map[string]bool{
		"candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host":    true,
		"candidate:1 1 udp 2122260223 ::1 50000 typ host":          false,
		"candidate:1 1 udp 2122260223 10.0.0.2 50000 typ host":     false,
		"candidate:1 1 udp 2122260223 abcd.local 50000 typ host":   false,
		"a=candidate:1 1 udp 2122260223 127.0.0.53 50000 typ host": true,
		"candidate:garbage": false,
	} {
		if loopbackOnly.allowsCandidate(line) != ok {
			t.Errorf("allowsCandidate(%q) = %v, want %v", line, !ok, ok)
		}
	}
}

// The sound card is shared: the SIP phone pauses a miniaudio device while it has no call,
// and a live call resumes it (its microphone feeds the visitor) and lets it pause again
// once it ends.
func TestLiveCallRunsPausedSoundCard(t *testing.T) {
	dev, err := newMalgoAudio([]malgo.Backend{nullBackend}, malgo.Duplex, nil, nil, servertest.Logger())
	if err != nil {
		t.Skipf("miniaudio's null backend is not available: %v", err)
	}
	r := newRig(t)
	alice, err := Login(tctx(t, 10*time.Second), Account{ServerURL: r.srv.URL(), User: "alice", Password: "alice-pw"},
		Options{Audio: dev, Logger: servertest.Logger(), Live: loopbackOnly})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alice.Close() })
	paused := func() bool {
		dev.mu.Lock()
		defer dev.mu.Unlock()
		return dev.paused
	}
	if !paused() {
		t.Fatal("the idle softphone's sound card runs")
	}
	v := r.visitor("1001", "Vera", customerHz)
	oc := waitRingingLive(t, alice)
	if err := oc.Answer(tctx(t, 15*time.Second)); err != nil {
		t.Fatal(err)
	}
	expectMsg(t, v, "answer")
	if paused() {
		t.Error("the sound card stays paused during a live call")
	}
	// The null backend's microphone is silent: what matters is that it is sent, every 20 ms.
	if _, err := v.Listen(tctx(t, 10*time.Second), 0, 500*time.Millisecond); err != nil {
		t.Fatalf("no audio from the agent's sound card: %v", err)
	}
	if err := oc.Hangup(tctx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if !paused() {
		t.Error("the sound card runs on after the live call ended")
	}
}

// The DTLS keys are checked end to end: an offer whose fingerprint was rewritten on the
// way (a server in the middle swapping in its own certificate) makes the agent's
// handshake fail, and the call ends rather than carry audio to whoever holds the key.
func TestLiveCallRefusesForeignFingerprint(t *testing.T) {
	r := newRig(t)
	alice, aliceDev := r.loginLive("alice", "alice-pw", agentHz)
	v, err := webvisitor.CallTampered(tctx(t, 10*time.Second), r.srv.HTTPAddr, "1001", "Mallory", customerHz, func(sdp string) string {
		var out strings.Builder
		for l := range strings.Lines(sdp) {
			if strings.HasPrefix(l, "a=fingerprint:sha-256 ") {
				l = "a=fingerprint:sha-256 " + strings.Repeat("AB:", 31) + "AB\r\n"
			}
			out.WriteString(l)
		}
		return out.String()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	oc := waitRingingLive(t, alice)
	if err := oc.Answer(tctx(t, 15*time.Second)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-oc.Done():
	case <-time.After(15 * time.Second):
		info, _ := oc.LiveInfo()
		t.Fatalf("the call with a foreign DTLS fingerprint did not end: %+v", info)
	}
	if got := oc.EndReason(); got != ReasonDTLSFailed {
		t.Errorf("end reason %q, want %q", got, ReasonDTLSFailed)
	}
	if lv := toneLevels(aliceDev.Played()); lv[customerHz] > heardDB-20 {
		t.Errorf("the agent heard the visitor at %.1f dB through a handshake that failed", lv[customerHz])
	}
	if _, err := v.Expect(tctx(t, 10*time.Second), "hangup"); err != nil {
		t.Error(err)
	}
}
