package server_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"ringside/server"
	"ringside/server/simphone"
	"ringside/server/store"
)

func statusOf(t *testing.T, err error) int {
	t.Helper()
	var se *simphone.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("want a SIP status error, got %v", err)
	}
	return se.Code
}

func TestRefusals(t *testing.T) {
	r := newRig(t)
	alice := r.phone("1001", "alice-pw", agentHz, true)
	_, agentCall := r.call(alice, "1001")

	t.Run("agent dialling *1 gets 403", func(t *testing.T) {
		bob := r.phone("1002", "bob-pw", 0, false)
		_, err := bob.Dial(ctx(t, 5*time.Second), "sip:*11001@"+r.srv.SIPAddr)
		if code := statusOf(t, err); code != 403 {
			t.Fatalf("status %d, want 403", code)
		}
	})
	t.Run("supervisor outside the agent's team gets 403", func(t *testing.T) {
		tom := r.phone("2003", "tom-pw", 0, false)
		_, err := tom.Dial(ctx(t, 5*time.Second), "sip:*11001@"+r.srv.SIPAddr)
		var se *simphone.StatusError
		if !errors.As(err, &se) || se.Code != 403 || !strings.Contains(se.Reason, "team") {
			t.Fatalf("got %v, want 403 with a reason naming the team", err)
		}
		tomAPI := r.login("tom", "tom-pw")
		var cs []map[string]any
		r.do("GET", "/api/calls", tomAPI, nil, &cs)
		if len(cs) != 0 {
			t.Fatalf("tom sees calls of another team: %v", cs)
		}
	})
	t.Run("wrong password and unknown user get the same answer", func(t *testing.T) {
		wrong := r.phone("1002", "not-bobs", 0, false)
		errWrong := wrong.Register(ctx(t, 5*time.Second), time.Hour)
		unknown := r.phone("1999", "whatever", 0, false)
		errUnknown := unknown.Register(ctx(t, 5*time.Second), time.Hour)
		cw, cu := statusOf(t, errWrong), statusOf(t, errUnknown)
		if cw != 401 || cu != 401 {
			t.Fatalf("wrong password %d, unknown user %d; want 401 for both", cw, cu)
		}
		var out map[string]any
		if code := r.do("POST", "/api/login", "", map[string]string{"user": "bob", "password": "nope"}, &out); code != 401 {
			t.Fatalf("API login with a wrong password: %d", code)
		}
	})
	t.Run("monitoring an ended call gets 409", func(t *testing.T) {
		sam := r.login("sam", "sam-pw")
		var cs []struct{ ID string }
		r.do("GET", "/api/calls", sam, nil, &cs)
		if len(cs) != 1 {
			t.Fatalf("sam sees %d calls, want 1", len(cs))
		}
		if err := agentCall.Hangup(ctx(t, 5*time.Second)); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			var out map[string]any
			code := r.do("POST", "/api/calls/"+cs[0].ID+"/monitor", sam, map[string]string{"mode": "listen"}, &out)
			if code == 409 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("monitor an ended call: %d %v, want 409", code, out)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func TestAPIMonitorReturnsWhereToDial(t *testing.T) {
	r := newRig(t)
	alice := r.phone("1001", "alice-pw", agentHz, true)
	customer, agent := r.call(alice, "1001")
	sam := r.login("sam", "sam-pw")
	var cs []struct{ ID string }
	r.do("GET", "/api/calls", sam, nil, &cs)
	if len(cs) != 1 {
		t.Fatalf("sam sees %d calls", len(cs))
	}
	var out struct{ SIPURI, TargetDialog string }
	var raw map[string]string
	if code := r.do("POST", "/api/calls/"+cs[0].ID+"/monitor", sam, map[string]string{"mode": "whisper"}, &raw); code != 200 {
		t.Fatalf("monitor: %d %v", code, raw)
	}
	out.SIPURI, out.TargetDialog = raw["sip_uri"], raw["target_dialog"]
	if out.SIPURI != "sip:*21001@"+r.srv.SIPAddr {
		t.Fatalf("sip_uri %q", out.SIPURI)
	}
	if !strings.HasPrefix(out.TargetDialog, agent.CallID()+";") {
		t.Fatalf("target_dialog %q does not name the agent's dialog %s", out.TargetDialog, agent.CallID())
	}
	// Dial exactly what the API said, pinned with Target-Dialog.
	phone := r.phone("2001", "sam-pw", supervisorHz, false)
	sup, err := phone.Dial(ctx(t, 5*time.Second), out.SIPURI, targetDialogHeader(out.TargetDialog))
	if err != nil {
		t.Fatal(err)
	}
	lv := levels(t, customer, agent, sup)
	expect(t, "customer", lv[0], agentHz)
	expect(t, "agent", lv[1], customerHz, supervisorHz)
}

func TestDeadLegEndsTheCall(t *testing.T) {
	r := newRig(t, func(c *server.Config) { c.DeadAfter = 2 * time.Second })
	alice := r.phone("1001", "alice-pw", agentHz, true)
	customer, agent := r.call(alice, "1001")
	customer.StopMedia() // the customer's phone goes silent on the wire
	select {
	case <-agent.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the call did not end after the customer's RTP stopped")
	}
	if !agent.EndedByRemote() {
		t.Fatal("the agent's phone should have received a BYE")
	}
	select {
	case <-customer.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the customer's leg got no BYE")
	}
	hist := history(t, r)
	if len(hist) != 1 || hist[0].State != "ended" || !strings.Contains(hist[0].EndReason, "no audio from the customer") {
		t.Fatalf("history: %+v", hist)
	}
}

func history(t *testing.T, r *rig) []store.CallRecord {
	t.Helper()
	hs, err := r.srv.Store().History(context.Background(), store.HistoryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return hs
}

func TestHistorySurvivesRestart(t *testing.T) {
	r := newRig(t)
	alice := r.phone("1001", "alice-pw", agentHz, true)
	_, agent := r.call(alice, "1001")
	sam := r.phone("2001", "sam-pw", supervisorHz, false)
	sup := r.monitor(sam, "*11001")
	if err := sup.SendInfoDTMF(ctx(t, 5*time.Second), '2'); err != nil {
		t.Fatal(err)
	}
	waitMode(t, r, "sam", "whisper")
	if err := agent.Hangup(ctx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sup.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the supervisor got no BYE when the call ended")
	}
	r.srv.Stop()
	r.srv.Start()
	hist := history(t, r)
	if len(hist) != 1 {
		t.Fatalf("history after restart has %d calls", len(hist))
	}
	c := hist[0]
	if c.State != "ended" || c.AgentExt != "1001" || c.CustomerNumber != "15550100" || c.AnsweredAt == nil || c.EndedAt == nil {
		t.Fatalf("call after restart: %+v", c)
	}
	if len(c.Monitors) != 1 || c.Monitors[0].UserName != "sam" || len(c.Monitors[0].Modes) != 2 ||
		c.Monitors[0].Modes[0].Mode != "listen" || c.Monitors[0].Modes[1].Mode != "whisper" || c.Monitors[0].EndedAt == nil {
		t.Fatalf("monitor after restart: %+v", c.Monitors)
	}
}

// TestMain lets the test binary play ringside-media in a child process, so a test can
// SIGKILL a real server mid-call.
func TestMain(m *testing.M) {
	if dir := os.Getenv("RINGSIDE_CHILD_DATA"); dir != "" {
		childServe(dir)
		return
	}
	os.Exit(m.Run())
}

func childServe(dir string) {
	cfg := server.DefaultConfig()
	cfg.DataDir, cfg.SIPAddr, cfg.HTTPAddr, cfg.RTPMin, cfg.RTPMax, cfg.Node = dir, "127.0.0.1:0", "127.0.0.1:0", 0, 0, "test"
	srv, err := server.Start(context.Background(), cfg)
	if err != nil {
		os.Stderr.WriteString(err.Error())
		os.Exit(1)
	}
	os.Stdout.WriteString("ready sip=" + srv.SIPAddr + " http=" + srv.HTTPAddr + "\n")
	select {}
}

func TestKilledServersCallIsInterruptedAfterRestart(t *testing.T) {
	dir := t.TempDir()
	seed := newRig(t, func(c *server.Config) { c.DataDir = dir })
	seed.srv.Stop()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "RINGSIDE_CHILD_DATA="+dir)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line := make([]byte, 200)
	n, err := out.Read(line)
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(line[:n]))
	if len(fields) < 2 || fields[0] != "ready" {
		t.Fatalf("child said %q", line[:n])
	}
	sipAddr := strings.TrimPrefix(fields[1], "sip=")

	alice, err := simphone.New(ctx(t, 5*time.Second), simphone.Config{Server: sipAddr, Ext: "1001", Password: "alice-pw", ToneHz: agentHz, AutoAnswer: true})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	if err := alice.Register(ctx(t, 5*time.Second), time.Hour); err != nil {
		t.Fatal(err)
	}
	cust, err := simphone.New(ctx(t, 5*time.Second), simphone.Config{Server: sipAddr, Ext: "15550100", ToneHz: customerHz})
	if err != nil {
		t.Fatal(err)
	}
	defer cust.Close()
	if _, err := cust.Dial(ctx(t, 5*time.Second), "sip:1001@"+sipAddr); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	r := newRig(t, func(c *server.Config) { c.DataDir = dir })
	hist := history(t, r)
	if len(hist) != 1 || hist[0].State != "interrupted" || hist[0].EndedAt == nil || hist[0].AnsweredAt == nil {
		t.Fatalf("history after the crash: %+v", hist)
	}
}
