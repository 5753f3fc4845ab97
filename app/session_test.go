package app

import (
	"errors"
	"testing"
	"time"

	"ringside/server/simphone"
)

// callIn has the customer call the agent and the agent's Session answer it; it returns
// the customer's call and the agent's OwnCall, both answered.
func callIn(t *testing.T, r *rig, agent *Session) (*simphone.Call, *OwnCall) {
	t.Helper()
	cust := r.customer()
	type dialed struct {
		c   *simphone.Call
		err error
	}
	ch := make(chan dialed, 1)
	go func() {
		c, err := cust.Dial(tctx(t, 15*time.Second), "sip:"+agent.User().Ext+"@"+r.srv.SIPAddr)
		ch <- dialed{c, err}
	}()
	var own *OwnCall
	waitFor(t, agent, 10*time.Second, "the agent's phone to ring", func() bool {
		for _, c := range agent.OwnCalls() {
			if c.Incoming() && c.State() == CallRinging {
				own = c
				return true
			}
		}
		return false
	})
	if got := own.Peer().Number; got != "15550100" {
		t.Errorf("ringing call's peer number = %q, want 15550100", got)
	}
	if err := own.Answer(tctx(t, 5*time.Second)); err != nil {
		t.Fatalf("answer: %v", err)
	}
	d := <-ch
	if d.err != nil {
		t.Fatalf("customer dials: %v", d.err)
	}
	if own.State() != CallTalking {
		t.Errorf("own call state %q after Answer, want talking", own.State())
	}
	waitFor(t, agent, 5*time.Second, "the own call to get its server id", func() bool { return own.ID() != "" })
	return d.c, own
}

func findCall(s *Session, id string) (Call, bool) {
	for _, c := range s.Calls() {
		if c.ID == id {
			return c, true
		}
	}
	return Call{}, false
}

func TestSupervisorMonitorsWhispersAndLeaves(t *testing.T) {
	r := newRig(t)
	agent, agentDev := r.login("alice", "alice-pw", agentHz)
	sup, supDev := r.login("sam", "sam-pw", supervisorHz)
	admin, _ := r.login("ada", "ada-pw", 0)

	cust, own := callIn(t, r, agent)
	id := own.ID()
	waitFor(t, sup, 5*time.Second, "the supervisor to see the call talking", func() bool {
		c, ok := findCall(sup, id)
		return ok && c.State == "talking" && c.Monitorable
	})

	m, err := sup.MonitorCall(tctx(t, 10*time.Second), id)
	if err != nil {
		t.Fatalf("MonitorCall: %v", err)
	}
	if got := sup.Monitors(); len(got) != 1 || got[0] != m {
		t.Errorf("Monitors() = %v, want the one session", got)
	}
	if m.Mode() != "listen" || m.Call().ID != id {
		t.Errorf("new session: mode %q call %q", m.Mode(), m.Call().ID)
	}

	// Listen: the supervisor hears both sides; nobody hears the supervisor.
	expect(t, "supervisor (listen)", heard(t, supDev), customerHz, agentHz)
	expect(t, "customer (listen)", recorded(t, cust), agentHz)
	cl, al := m.Levels()
	if cl <= 0.5 || al <= 0.5 {
		t.Errorf("Levels() = %.2f, %.2f; want both loud (the tones are at -10 dBov)", cl, al)
	}

	waitFor(t, agent, 5*time.Second, "the agent to see the call monitored", own.Monitored)
	if own.Whisper() {
		t.Error("Whisper() true before whisper was switched on")
	}

	// Whisper: the agent hears the supervisor, the customer never does.
	if err := m.SetWhisper(tctx(t, 5*time.Second), true); err != nil {
		t.Fatalf("SetWhisper(true): %v", err)
	}
	if m.ID() == "" || m.Mode() != "whisper" {
		t.Errorf("after SetWhisper: id %q mode %q", m.ID(), m.Mode())
	}
	waitFor(t, agent, 5*time.Second, "the agent's whisper banner", own.Whisper)
	expect(t, "agent (whisper)", heard(t, agentDev), customerHz, supervisorHz)
	expect(t, "customer (whisper)", recorded(t, cust), agentHz)
	expect(t, "supervisor (whisper)", heard(t, supDev), customerHz, agentHz)

	if err := m.SetWhisper(tctx(t, 5*time.Second), false); err != nil {
		t.Fatalf("SetWhisper(false): %v", err)
	}
	waitFor(t, agent, 5*time.Second, "the whisper banner to go", func() bool { return !own.Whisper() })
	expect(t, "agent (listen again)", heard(t, agentDev), customerHz)

	// The admin sees who monitors.
	waitFor(t, admin, 5*time.Second, "the admin to see sam monitoring", func() bool {
		c, ok := findCall(admin, id)
		return ok && len(c.Monitors) == 1 && c.Monitors[0].User == "sam"
	})

	// Leave ends the session, on the server too.
	if err := m.Leave(tctx(t, 5*time.Second)); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	select {
	case <-m.Done():
	default:
		t.Fatal("Done not closed after Leave")
	}
	if m.EndReason() != "you left the call" {
		t.Errorf("EndReason = %q", m.EndReason())
	}
	if len(sup.Monitors()) != 0 {
		t.Errorf("Monitors() after Leave = %v", sup.Monitors())
	}
	waitFor(t, admin, 5*time.Second, "the admin to see no monitors", func() bool {
		c, ok := findCall(admin, id)
		return ok && len(c.Monitors) == 0
	})
	calls, err := admin.Client().Calls(tctx(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range calls {
		if len(c.Monitors) != 0 {
			t.Errorf("GET /api/calls after Leave: call %s still has monitors %v", c.ID, c.Monitors)
		}
	}
	waitFor(t, agent, 5*time.Second, "the monitored banner to go", func() bool { return !own.Monitored() })

	// The customer hangs up: the agent's call ends.
	if err := cust.Hangup(tctx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-own.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("own call did not end when the customer hung up")
	}
	if own.State() != CallEnded || own.EndReason() != "the other side hung up" {
		t.Errorf("ended own call: state %q reason %q", own.State(), own.EndReason())
	}
	waitFor(t, sup, 5*time.Second, "the call to leave the supervisor's list", func() bool {
		_, ok := findCall(sup, id)
		return !ok
	})
}

func TestAgentNotToldWhenSettingOff(t *testing.T) {
	r := newRig(t)
	admin, _ := r.login("ada", "ada-pw", 0)
	if err := admin.Client().SetSettings(tctx(t, 5*time.Second), Settings{NotifyAgentOnMonitor: false}); err != nil {
		t.Fatalf("PUT /api/settings: %v", err)
	}
	if st, err := admin.Client().Settings(tctx(t, 5*time.Second)); err != nil || st.NotifyAgentOnMonitor {
		t.Fatalf("GET /api/settings = %+v, %v", st, err)
	}
	agent, agentDev := r.login("alice", "alice-pw", agentHz)
	sup, _ := r.login("sam", "sam-pw", supervisorHz)
	_, own := callIn(t, r, agent)

	m, err := sup.MonitorCall(tctx(t, 10*time.Second), own.ID())
	if err != nil {
		t.Fatalf("MonitorCall: %v", err)
	}
	if err := m.SetWhisper(tctx(t, 5*time.Second), true); err != nil {
		t.Fatalf("SetWhisper: %v", err)
	}
	waitFor(t, sup, 5*time.Second, "the supervisor to see whisper on", func() bool {
		c, ok := findCall(sup, own.ID())
		return ok && c.Monitored && c.Whisper
	})
	// The whisper still reaches the agent's ear; only the banners stay off.
	expect(t, "agent (whisper, not told)", heard(t, agentDev), customerHz, supervisorHz)

	// Anything the server would have told the agent comes before this later event.
	if err := own.SetHold(tctx(t, 5*time.Second), true); err != nil {
		t.Fatalf("hold: %v", err)
	}
	if own.State() != CallHeld {
		t.Errorf("state after hold = %q", own.State())
	}
	waitFor(t, agent, 5*time.Second, "the agent's list to show the call held", func() bool {
		c, ok := findCall(agent, own.ID())
		return ok && c.State == "held"
	})
	if own.Monitored() || own.Whisper() {
		t.Errorf("agent sees monitored=%v whisper=%v with notify-agent-on-monitor off", own.Monitored(), own.Whisper())
	}
	c, err := agent.Client().Call(tctx(t, 5*time.Second), own.ID())
	if err != nil {
		t.Fatal(err)
	}
	if c.Monitored || c.Whisper || len(c.Monitors) != 0 {
		t.Errorf("GET /api/calls/{id} as the agent shows %+v", c)
	}
	if err := own.SetHold(tctx(t, 5*time.Second), false); err != nil {
		t.Fatalf("resume: %v", err)
	}
	if err := own.Hangup(tctx(t, 5*time.Second)); err != nil {
		t.Fatalf("hangup: %v", err)
	}
	select {
	case <-m.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("monitor session did not end with the call")
	}
	if m.EndReason() != "the call ended" {
		t.Errorf("EndReason = %q, want the call ended", m.EndReason())
	}
}

func TestOwnCallControls(t *testing.T) {
	r := newRig(t)
	agent, _ := r.login("alice", "alice-pw", agentHz)
	cust, own := callIn(t, r, agent)

	own.SetMute(true)
	if !own.Muted() {
		t.Error("Muted() false after SetMute(true)")
	}
	lv := recorded(t, cust)
	if lv[agentHz] > -60 {
		t.Errorf("customer hears the muted agent at %.1f dB", lv[agentHz])
	}
	own.SetMute(false)
	expect(t, "customer (unmuted)", recorded(t, cust), agentHz)

	// The server does not relay DTMF between the parties; it only has to go out.
	if err := own.SendDTMF('5'); err != nil {
		t.Fatalf("SendDTMF: %v", err)
	}
	if err := own.SendDTMF('x'); err == nil {
		t.Error("SendDTMF('x') succeeded")
	}

	// Blind transfer to bob: alice's leg ends, the customer talks to bob.
	bob, _ := r.login("bob", "bob-pw", agent2Hz)
	transferred := make(chan error, 1)
	go func() { transferred <- own.Transfer(tctx(t, 15*time.Second), "1002") }()
	var bobCall *OwnCall
	waitFor(t, bob, 10*time.Second, "bob's phone to ring", func() bool {
		for _, c := range bob.OwnCalls() {
			if c.State() == CallRinging {
				bobCall = c
				return true
			}
		}
		return false
	})
	if err := bobCall.Answer(tctx(t, 5*time.Second)); err != nil {
		t.Fatalf("bob answers: %v", err)
	}
	if err := <-transferred; err != nil {
		if errors.Is(err, ErrTransferUnsupported) {
			t.Skipf("the server does not do REFER yet: %v", err)
		}
		t.Fatalf("Transfer: %v", err)
	}
	select {
	case <-own.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("alice's call did not end after the transfer")
	}
	if len(agent.OwnCalls()) != 0 {
		t.Errorf("OwnCalls() after the transfer = %v", agent.OwnCalls())
	}
	expect(t, "customer (transferred to bob)", recorded(t, cust), agent2Hz)
}

func TestDialCancelAndFailure(t *testing.T) {
	r := newRig(t)
	agent, _ := r.login("alice", "alice-pw", agentHz)
	// Nobody has logged in as 2001: the server answers 480.
	if _, err := agent.Dial(tctx(t, 10*time.Second), "2001"); err == nil {
		t.Fatal("dialling an unregistered extension succeeded")
	}
	if len(agent.OwnCalls()) != 0 {
		t.Errorf("OwnCalls() after a failed dial = %v", agent.OwnCalls())
	}

	// Hanging up while it rings cancels the call on both ends.
	bob, _ := r.login("bob", "bob-pw", agent2Hz)
	dialed := make(chan error, 1)
	go func() {
		_, err := agent.Dial(tctx(t, 10*time.Second), "1002")
		dialed <- err
	}()
	var out, in *OwnCall
	waitFor(t, agent, 5*time.Second, "the outgoing call in OwnCalls", func() bool {
		for _, c := range agent.OwnCalls() {
			if !c.Incoming() && c.State() == CallRinging {
				out = c
			}
		}
		return out != nil
	})
	waitFor(t, bob, 5*time.Second, "bob's phone to ring", func() bool {
		for _, c := range bob.OwnCalls() {
			in = c
		}
		return in != nil
	})
	if err := out.Hangup(tctx(t, 5*time.Second)); err != nil {
		t.Fatalf("Hangup while ringing: %v", err)
	}
	if err := <-dialed; err == nil {
		t.Error("Dial succeeded after Hangup")
	}
	if out.EndReason() != "cancelled" {
		t.Errorf("caller's end reason %q", out.EndReason())
	}
	select {
	case <-in.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("bob's ringing call did not end")
	}
	if in.EndReason() != "missed" {
		t.Errorf("bob's end reason %q, want missed", in.EndReason())
	}
}

func TestStreamReconnectsAfterServerRestart(t *testing.T) {
	r := newRig(t)
	// The SIP side moves to a new port with the restart, so unregistering at Close fails.
	sup, _ := r.loginCheck("sam", "sam-pw", 0, false)
	if sup.ConnectionState() != StateConnected {
		t.Fatalf("state after login = %q", sup.ConnectionState())
	}
	states := make(chan string, 16)
	cancel := sup.OnChange(func() {
		select {
		case states <- sup.ConnectionState():
		default:
		}
	})
	defer cancel()

	r.restart()
	want := StateReconnecting
	deadline := time.After(20 * time.Second)
	for want != "" {
		select {
		case s := <-states:
			if s == want {
				if want == StateReconnecting {
					want = StateConnected
				} else {
					want = ""
				}
			}
		case <-deadline:
			t.Fatalf("connection state never became %q", want)
		}
	}
	// Logged in again (the restart forgot the token) and registered again: a call to the
	// agent and the supervisor's list work as before.
	agent, _ := r.login("alice", "alice-pw", agentHz)
	_, own := callIn(t, r, agent)
	waitFor(t, sup, 5*time.Second, "the supervisor to see the new call", func() bool {
		_, ok := findCall(sup, own.ID())
		return ok
	})
	// The API's sip_uri names the new SIP address, so monitoring works as before.
	m, err := sup.MonitorCall(tctx(t, 10*time.Second), own.ID())
	if err != nil {
		t.Fatalf("MonitorCall after the restart: %v", err)
	}
	if err := m.Leave(tctx(t, 5*time.Second)); err != nil {
		t.Errorf("Leave: %v", err)
	}
}
