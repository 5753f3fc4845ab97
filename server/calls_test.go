package server_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"ringside/media"
	"ringside/server"
	"ringside/server/simphone"
)

func TestUnavailableAgents(t *testing.T) {
	r := newRig(t)
	alice := r.phone("1001", "alice-pw", agentHz, true)
	r.call(alice, "1001")
	cust := r.phone("15550199", "", customerHz, false)
	for _, tc := range []struct {
		ext  string
		code int
	}{
		{"1001", 486}, // alice is on a call
		{"1002", 480}, // bob never registered
		{"1999", 404}, // nobody has that extension
	} {
		_, err := cust.Dial(ctx(t, 5*time.Second), "sip:"+tc.ext+"@"+r.srv.SIPAddr)
		if code := statusOf(t, err); code != tc.code {
			t.Errorf("calling %s: %d, want %d", tc.ext, code, tc.code)
		}
	}
}

func TestCustomerHangsUpWhileRinging(t *testing.T) {
	r := newRig(t)
	alice := r.ringingPhone("1001", "alice-pw")
	cust := r.phone("15550100", "", customerHz, false)
	dialCtx := ctx(t, 10*time.Second)
	dialErr := make(chan error, 1)
	dialCtx, cancel := contextWithCancel(dialCtx)
	target := "sip:1001@" + r.srv.SIPAddr
	go func() { _, err := cust.Dial(dialCtx, target); dialErr <- err }()
	var ringing *simphone.Call
	select {
	case ringing = <-alice.Incoming():
	case <-time.After(5 * time.Second):
		t.Fatal("alice's phone never rang")
	}
	cancel() // the customer gives up: CANCEL
	if err := <-dialErr; err == nil {
		t.Fatal("the customer's call was answered after CANCEL")
	}
	select {
	case <-ringing.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("alice's phone kept ringing after the customer hung up")
	}
	waitFor(t, func() bool {
		h := history(t, r)
		return len(h) == 1 && h[0].State == "ended" && h[0].AnsweredAt == nil && strings.Contains(h[0].EndReason, "before answer")
	}, "history shows the call ended before answer")
}

func TestHoldAndResume(t *testing.T) {
	r := newRig(t)
	alice := r.phone("1001", "alice-pw", agentHz, true)
	customer, agent := r.call(alice, "1001")
	admin := r.login("ada", "ada-pw")
	if err := agent.Hold(ctx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return callState(r, admin) == "held" }, "call shows held")
	before := agent.Stats().Received
	lv := levels(t, customer)[0] // the customer still gets a stream (the agent's hold audio)
	if got := agent.Stats().Received - before; got > 5 {
		t.Fatalf("held agent still received %d packets", got)
	}
	_ = lv
	if err := agent.Resume(ctx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return callState(r, admin) == "talking" }, "call shows talking again")
	got := levels(t, customer, agent)
	expect(t, "customer after resume", got[0], agentHz)
	expect(t, "agent after resume", got[1], customerHz)
}

func callState(r *rig, token string) string {
	var cs []struct{ State string }
	r.do("GET", "/api/calls", token, nil, &cs)
	if len(cs) != 1 {
		return ""
	}
	return cs[0].State
}

func TestAgentDialsOutThroughTheTrunk(t *testing.T) {
	trunkConn, trunkAddr := trunkPhoneAddr(t)
	_ = trunkConn
	r := newRig(t, func(c *server.Config) { c.TrunkURI = "sip:" + trunkAddr })
	trunk := trunkConn
	alice := r.phone("1001", "alice-pw", agentHz, true)
	agent, err := alice.Dial(ctx(t, 10*time.Second), "sip:15557777@"+r.srv.SIPAddr)
	if err != nil {
		t.Fatalf("alice dials out: %v", err)
	}
	var far *simphone.Call
	select {
	case far = <-trunk.Incoming():
	case <-time.After(5 * time.Second):
		t.Fatal("the trunk never got the call")
	}
	if !strings.Contains(far.Request().Recipient.User, "15557777") {
		t.Fatalf("trunk got INVITE for %s", far.Request().Recipient.String())
	}
	lv := levels(t, agent, far)
	expect(t, "agent", lv[0], customerHz)
	expect(t, "called party", lv[1], agentHz)
	var cs []struct {
		Direction string
		Customer  struct{ Number string }
	}
	r.do("GET", "/api/calls", r.login("alice", "alice-pw"), nil, &cs)
	if len(cs) != 1 || cs[0].Direction != "outbound" || cs[0].Customer.Number != "15557777" {
		t.Fatalf("alice's calls: %+v", cs)
	}
	// Outbound calls are monitored like any other.
	sam := r.phone("2001", "sam-pw", supervisorHz, false)
	sup := r.monitor(sam, "*21001")
	lv = levels(t, agent, far, sup)
	expect(t, "agent with whisper", lv[0], customerHz, supervisorHz)
	expect(t, "called party with whisper", lv[1], agentHz)
	expect(t, "supervisor", lv[2], customerHz, agentHz)
}

// trunkPhoneAddr starts an auto-answering phone standing in for the carrier trunk.
func trunkPhoneAddr(t *testing.T) (*simphone.Phone, string) {
	p, err := simphone.New(ctx(t, 5*time.Second), simphone.Config{Ext: "trunk", ToneHz: customerHz, AutoAnswer: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, p.Addr().String()
}

// TestRTPFromElsewhereIsIgnored: media is latched to the address in the SDP; a stranger
// sending to the customer's port is not heard by anyone.
func TestRTPFromElsewhereIsIgnored(t *testing.T) {
	r := newRig(t)
	alice := r.phone("1001", "alice-pw", agentHz, true)
	customer, agent := r.call(alice, "1001")
	rogue, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rogue.Close()
	target := net.UDPAddrFromAddrPort(customer.RemoteMedia())
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tone := media.NewTone(supervisor2Hz, 0.5)
		pcm := make([]int16, media.FrameSamples)
		enc := make([]byte, media.FrameSamples)
		pkt := make([]byte, 12+media.FrameSamples)
		tick := time.NewTicker(media.FrameDuration)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			tone.Fill(pcm)
			media.PCMU.Encode(enc, pcm)
			n := media.MarshalRTP(pkt, media.RTPHeader{Seq: uint16(i), Timestamp: uint32(i * 160), SSRC: 0xbad}, enc)
			rogue.WriteToUDP(pkt[:n], target)
		}
	}()
	lv := levels(t, agent)
	close(stop)
	<-done
	expect(t, "agent", lv[0], customerHz)
}

func TestFailedLoginsAreSlowedPerSource(t *testing.T) {
	r := newRig(t)
	for i := range 6 {
		p := r.phone("1001", "wrong", 0, false)
		if err := p.Register(ctx(t, 5*time.Second), time.Hour); err == nil {
			t.Fatalf("attempt %d with a wrong password registered", i)
		}
	}
	p := r.phone("1001", "alice-pw", 0, false)
	err := p.Register(ctx(t, 5*time.Second), time.Hour)
	if code := statusOf(t, err); code != 503 {
		t.Fatalf("right password right after a brute-force run: %d, want 503 with Retry-After (slowed down)", code)
	}
	// The neighbours behind the same address are not locked out by one bad phone.
	if err := r.phone("1002", "bob-pw", 0, false).Register(ctx(t, 5*time.Second), time.Hour); err != nil {
		t.Fatalf("another user on the same address: %v", err)
	}
}

func TestSHA256DigestWhenOffered(t *testing.T) {
	r := newRig(t, func(c *server.Config) { c.DigestAlgorithms = []string{"SHA-256", "MD5"} })
	alice := r.phone("1001", "alice-pw", agentHz, true) // registers through the SHA-256 challenge
	customer, agent := r.call(alice, "1001")
	lv := levels(t, customer, agent)
	expect(t, "agent", lv[1], customerHz)
}

// TestSupervisorLegDiesMidWhisper: the call goes on and the agent hears no stuck whisper.
func TestSupervisorLegDiesMidWhisper(t *testing.T) {
	r := newRig(t, func(c *server.Config) { c.DeadAfter = 2 * time.Second })
	alice := r.phone("1001", "alice-pw", agentHz, true)
	customer, agent := r.call(alice, "1001")
	sam := r.phone("2001", "sam-pw", supervisorHz, false)
	sup := r.monitor(sam, "*21001")
	expect(t, "agent while whispered", levels(t, agent)[0], customerHz, supervisorHz)
	sup.StopMedia()
	expect(t, "agent after the whisper went silent", levels(t, agent)[0], customerHz)
	select {
	case <-sup.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the dead supervisor leg was not hung up")
	}
	lv := levels(t, customer, agent)
	expect(t, "customer", lv[0], agentHz)
	expect(t, "agent", lv[1], customerHz)
	h := history(t, r)
	if len(h) != 1 || h[0].State != "talking" || len(h[0].Monitors) != 1 || !strings.Contains(h[0].Monitors[0].EndReason, "no audio from the supervisor") {
		t.Fatalf("history: %+v", h)
	}
}

func waitFor(t *testing.T, ok func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestShutdownWhileRinging: the customer gets a final answer and the agent's phone stops
// ringing; nothing hangs.
func TestShutdownWhileRinging(t *testing.T) {
	r := newRig(t)
	alice := r.ringingPhone("1001", "alice-pw")
	cust := r.phone("15550100", "", customerHz, false)
	dialErr := make(chan error, 1)
	target, dialCtx := "sip:1001@"+r.srv.SIPAddr, ctx(t, 20*time.Second)
	go func() { _, err := cust.Dial(dialCtx, target); dialErr <- err }()
	ringing := <-alice.Incoming()
	start := time.Now()
	r.srv.Stop()
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("shutdown took %v with a ringing call", d)
	}
	if code := statusOf(t, <-dialErr); code != 503 {
		t.Fatalf("the customer got %d, want 503", code)
	}
	select {
	case <-ringing.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the agent's phone kept ringing after shutdown")
	}
}

// TestStaleRegistrationDoesNotDelayTheCall: a phone that went away without unregistering
// must not hold up the call the live phone answered.
func TestStaleRegistrationDoesNotDelayTheCall(t *testing.T) {
	r := newRig(t)
	gone, err := simphone.New(ctx(t, 5*time.Second), simphone.Config{Server: r.srv.SIPAddr, Ext: "1001", Password: "alice-pw"})
	if err != nil {
		t.Fatal(err)
	}
	if err := gone.Register(ctx(t, 5*time.Second), time.Hour); err != nil {
		t.Fatal(err)
	}
	gone.Close() // the laptop lid closes; the binding stays
	alice := r.phone("1001", "alice-pw", agentHz, true)
	start := time.Now()
	customer, agent := r.call(alice, "1001")
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the call took %v to connect", d)
	}
	lv := levels(t, customer, agent)
	expect(t, "customer", lv[0], agentHz)
}

// TestLongHoldIsNotADeadLeg: a phone on hold may go silent (no music on hold).
func TestLongHoldIsNotADeadLeg(t *testing.T) {
	r := newRig(t, func(c *server.Config) { c.DeadAfter = time.Second })
	alice := r.phone("1001", "alice-pw", agentHz, true)
	customer, agent := r.call(alice, "1001")
	if err := agent.Hold(ctx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	agent.StopMedia()
	select {
	case <-agent.Done():
		t.Fatal("the held call was ended as dead")
	case <-time.After(3 * time.Second): // three dead-leg periods
	}
	agent.StartMedia()
	if err := agent.Resume(ctx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	lv := levels(t, customer, agent)
	expect(t, "customer after resume", lv[0], agentHz)
}

// TestDigitsAreRelayedBetweenCustomerAndAgent: what one side keys in (RFC 4733 or SIP
// INFO) reaches the other as RFC 4733, as an IVR or an account-number prompt needs.
func TestDigitsAreRelayedBetweenCustomerAndAgent(t *testing.T) {
	r := newRig(t)
	alice := r.phone("1001", "alice-pw", agentHz, true)
	customer, agent := r.call(alice, "1001")
	got := func(c *simphone.Call, who string, want rune) {
		t.Helper()
		select {
		case d := <-c.DTMF():
			if d != want {
				t.Fatalf("%s got digit %q, want %q", who, d, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s never got digit %q", who, want)
		}
	}
	for _, d := range "15#" {
		if err := customer.SendDTMF(d); err != nil {
			t.Fatal(err)
		}
		got(agent, "agent", d)
	}
	if err := agent.SendInfoDTMF(ctx(t, 5*time.Second), '7'); err != nil {
		t.Fatal(err)
	}
	got(customer, "customer", '7')
	lv := levels(t, customer, agent) // audio carries on after the digits
	expect(t, "customer", lv[0], agentHz)
	expect(t, "agent", lv[1], customerHz)
}
