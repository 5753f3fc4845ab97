package server_test

import (
	"testing"
	"time"

	"ringside/server"
	"ringside/server/simphone"
)

// monitored sets up a customer–agent call with the agent alice (1001) and one supervisor
// sam (2001) joined by feature code.
func monitored(t *testing.T, code string) (r *rig, customer, agent, sup *simphone.Call) {
	r = newRig(t)
	alice := r.phone("1001", "alice-pw", agentHz, true)
	customer, agent = r.call(alice, "1001")
	sam := r.phone("2001", "sam-pw", supervisorHz, false)
	sup = r.monitor(sam, code)
	return r, customer, agent, sup
}

func TestListenHearsBothAndIsHeardByNobody(t *testing.T) {
	_, customer, agent, sup := monitored(t, "*11001")
	lv := levels(t, customer, agent, sup)
	expect(t, "customer", lv[0], agentHz)
	expect(t, "agent", lv[1], customerHz)
	expect(t, "supervisor", lv[2], customerHz, agentHz)
}

func TestWhisperReachesAgentOnly(t *testing.T) {
	_, customer, agent, sup := monitored(t, "*21001")
	lv := levels(t, customer, agent, sup)
	expect(t, "customer", lv[0], agentHz)
	expect(t, "agent", lv[1], customerHz, supervisorHz)
	expect(t, "supervisor", lv[2], customerHz, agentHz)
	if gap := lv[0][agentHz] - lv[0][supervisorHz]; gap < 40 {
		t.Errorf("customer hears the whisper only %.1f dB under the agent", gap)
	}
}

// With the legs on shared sockets (--rtp-mux) the hearing matrix is the same.
func TestWhisperOnSharedSockets(t *testing.T) {
	r := newRig(t, func(c *server.Config) { c.RTPMux = true })
	alice := r.phone("1001", "alice-pw", agentHz, true)
	customer, agent := r.call(alice, "1001")
	sup := r.monitor(r.phone("2001", "sam-pw", supervisorHz, false), "*21001")
	lv := levels(t, customer, agent, sup)
	expect(t, "customer", lv[0], agentHz)
	expect(t, "agent", lv[1], customerHz, supervisorHz)
	expect(t, "supervisor", lv[2], customerHz, agentHz)
	if gap := lv[0][agentHz] - lv[0][supervisorHz]; gap < 40 {
		t.Errorf("customer hears the whisper only %.1f dB under the agent", gap)
	}
}

func TestBargeIsHeardByEveryone(t *testing.T) {
	_, customer, agent, sup := monitored(t, "*31001")
	lv := levels(t, customer, agent, sup)
	expect(t, "customer", lv[0], agentHz, supervisorHz)
	expect(t, "agent", lv[1], customerHz, supervisorHz)
	expect(t, "supervisor", lv[2], customerHz, agentHz)
}

func TestTwoSupervisorsInDifferentModes(t *testing.T) {
	r, customer, agent, sam := monitored(t, "*21001") // sam whispers
	sue := r.phone("2002", "sue-pw", supervisor2Hz, false)
	sueCall := r.monitor(sue, "*11001") // sue listens
	lv := levels(t, customer, agent, sam, sueCall)
	expect(t, "customer", lv[0], agentHz)
	expect(t, "agent", lv[1], customerHz, supervisorHz)
	expect(t, "whispering supervisor", lv[2], customerHz, agentHz)
	expect(t, "listening supervisor", lv[3], customerHz, agentHz, supervisorHz)

	// Sue barges: now everyone hears her, and the customer still not sam's whisper.
	if err := sueCall.SendDTMF('3'); err != nil {
		t.Fatal(err)
	}
	waitMode(t, r, "sue", "barge")
	lv = levels(t, customer, agent, sam, sueCall)
	expect(t, "customer", lv[0], agentHz, supervisor2Hz)
	expect(t, "agent", lv[1], customerHz, supervisorHz, supervisor2Hz)
	expect(t, "whispering supervisor", lv[2], customerHz, agentHz, supervisor2Hz)
	expect(t, "barging supervisor", lv[3], customerHz, agentHz, supervisorHz)
}

// waitMode polls the admin API until the named supervisor's monitor is in mode.
func waitMode(t *testing.T, r *rig, user, mode string) string {
	t.Helper()
	admin := r.login("ada", "ada-pw")
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		var cs []struct {
			ID       string
			Monitors []struct{ ID, User, Mode string }
		}
		r.do("GET", "/api/calls", admin, nil, &cs)
		for _, c := range cs {
			for _, m := range c.Monitors {
				if m.User == user && m.Mode == mode {
					return m.ID
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never reached mode %s", user, mode)
	return ""
}

// TestModeSwitchingNeverLeaksWhisper walks the supervisor through every mode by each of the
// three switches (RFC 4733 DTMF, SIP INFO, API) and checks what everyone hears each time.
func TestModeSwitchingNeverLeaksWhisper(t *testing.T) {
	r, customer, agent, sup := monitored(t, "*11001")
	sam := r.login("sam", "sam-pw")
	switches := map[string]func(mode string){
		"rfc4733": func(mode string) {
			if err := sup.SendDTMF(digit(mode)); err != nil {
				t.Fatal(err)
			}
		},
		"info": func(mode string) {
			if err := sup.SendInfoDTMF(ctx(t, 5*time.Second), digit(mode)); err != nil {
				t.Fatal(err)
			}
		},
		"api": func(mode string) {
			id := waitMonitorID(t, r, "sam")
			if code := r.do("PUT", "/api/monitors/"+id, sam, map[string]string{"mode": mode}, nil); code != 200 {
				t.Fatalf("PUT mode %s: status %d", mode, code)
			}
		},
	}
	steps := []struct{ via, mode string }{
		{"rfc4733", "whisper"}, {"info", "listen"}, {"api", "whisper"}, {"rfc4733", "barge"},
		{"info", "whisper"}, {"api", "barge"}, {"api", "listen"}, {"info", "barge"}, {"rfc4733", "listen"},
	}
	for _, s := range steps {
		switches[s.via](s.mode)
		waitMode(t, r, "sam", s.mode)
		lv := levels(t, customer, agent)
		switch s.mode {
		case "listen":
			expect(t, s.via+" listen: customer", lv[0], agentHz)
			expect(t, s.via+" listen: agent", lv[1], customerHz)
		case "whisper":
			expect(t, s.via+" whisper: customer", lv[0], agentHz)
			expect(t, s.via+" whisper: agent", lv[1], customerHz, supervisorHz)
		case "barge":
			expect(t, s.via+" barge: customer", lv[0], agentHz, supervisorHz)
			expect(t, s.via+" barge: agent", lv[1], customerHz, supervisorHz)
		}
	}
}

func digit(mode string) rune {
	return map[string]rune{"listen": '1', "whisper": '2', "barge": '3'}[mode]
}

func waitMonitorID(t *testing.T, r *rig, user string) string {
	t.Helper()
	for _, m := range []string{"listen", "whisper", "barge"} {
		admin := r.login("ada", "ada-pw")
		var cs []struct {
			Monitors []struct{ ID, User, Mode string }
		}
		r.do("GET", "/api/calls", admin, nil, &cs)
		for _, c := range cs {
			for _, mon := range c.Monitors {
				if mon.User == user {
					return mon.ID
				}
			}
		}
		_ = m
	}
	t.Fatalf("%s has no monitor session", user)
	return ""
}

// TestAgentStreamIsContinuousAcrossJoinAndLeave: the agent's received stream keeps its
// SSRC, and sequence numbers and timestamps run on without a jump while a supervisor
// joins (relay → mix) and leaves (mix → relay).
func TestAgentStreamIsContinuousAcrossJoinAndLeave(t *testing.T) {
	r := newRig(t)
	alice := r.phone("1001", "alice-pw", agentHz, true)
	customer, agent := r.call(alice, "1001")
	_ = levels(t, agent) // relayed audio flowing
	agent.ResetHeaders()
	sam := r.phone("2001", "sam-pw", supervisorHz, false)
	sup := r.monitor(sam, "*21001")
	_ = levels(t, agent)
	if err := sup.Hangup(ctx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	_ = levels(t, agent, customer)
	hs := agent.ReceivedHeaders()
	if len(hs) < 50 {
		t.Fatalf("only %d packets received", len(hs))
	}
	for i := 1; i < len(hs); i++ {
		a, b := hs[i-1], hs[i]
		if b.SSRC != a.SSRC {
			t.Fatalf("SSRC changed at packet %d: %08x → %08x", i, a.SSRC, b.SSRC)
		}
		if b.Seq != a.Seq+1 {
			t.Fatalf("sequence jumped at packet %d: %d → %d", i, a.Seq, b.Seq)
		}
		if b.Timestamp != a.Timestamp+160 {
			t.Fatalf("timestamp jumped at packet %d: %d → %d", i, a.Timestamp, b.Timestamp)
		}
	}
}
