package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"ringside/server/store"
)

func isMonitorEvent(ev sse) bool { return strings.HasPrefix(ev.Type, "monitor.") }

// TestAgentSeesMonitoredAndWhisperButNotWho: the agent's stream tells monitored and whisper
// without the supervisor's identity; the admin's call details list the monitor.
func TestAgentSeesMonitoredAndWhisperButNotWho(t *testing.T) {
	r := newRig(t)
	alice := r.phone("1001", "alice-pw", agentHz, true)
	_, _ = r.call(alice, "1001")
	agentEvents := r.events(r.login("alice", "alice-pw"))
	admin := r.login("ada", "ada-pw")
	adminEvents := r.events(admin)

	sam := r.phone("2001", "sam-pw", supervisorHz, false)
	sup := r.monitor(sam, "*11001")
	ev := agentEvents.next(t, 5*time.Second, isMonitorEvent)
	m := jsonField(t, ev.Data)
	if m["monitored"] != true || m["whisper"] != false {
		t.Fatalf("agent's event on listen: %s", ev.Data)
	}
	for _, leak := range []string{"sam", "2001"} {
		if strings.Contains(ev.Data, leak) {
			t.Fatalf("agent's event names the supervisor (%q): %s", leak, ev.Data)
		}
	}
	adminEv := adminEvents.next(t, 5*time.Second, isMonitorEvent)
	if !strings.Contains(adminEv.Data, "sam") {
		t.Fatalf("admin's event does not say who monitors: %s", adminEv.Data)
	}

	if err := sup.SendDTMF('2'); err != nil {
		t.Fatal(err)
	}
	ev = agentEvents.next(t, 5*time.Second, isMonitorEvent)
	m = jsonField(t, ev.Data)
	if m["monitored"] != true || m["whisper"] != true || strings.Contains(ev.Data, "sam") {
		t.Fatalf("agent's event on whisper: %s", ev.Data)
	}

	// The admin's call details list who is monitoring.
	var cs []struct{ ID string }
	r.do("GET", "/api/calls", admin, nil, &cs)
	var details struct {
		Monitors []struct{ User, Mode string }
	}
	if code := r.do("GET", "/api/calls/"+cs[0].ID, admin, nil, &details); code != 200 {
		t.Fatalf("call details: %d", code)
	}
	if len(details.Monitors) != 1 || details.Monitors[0].User != "sam" || details.Monitors[0].Mode != "whisper" {
		t.Fatalf("admin's call details: %+v", details)
	}
	// The agent's own call details never say who.
	var raw map[string]any
	r.do("GET", "/api/calls/"+cs[0].ID, r.login("alice", "alice-pw"), nil, &raw)
	if mons, _ := raw["monitors"].([]any); len(mons) != 0 {
		t.Fatalf("agent's call details list monitors: %v", raw)
	}

	if err := sup.Hangup(ctx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	ev = agentEvents.next(t, 5*time.Second, isMonitorEvent)
	m = jsonField(t, ev.Data)
	if m["monitored"] != false || m["whisper"] != false {
		t.Fatalf("agent's event after the supervisor left: %s", ev.Data)
	}
}

func TestAgentSeesNothingWhenNotificationIsOff(t *testing.T) {
	r := newRig(t)
	admin := r.login("ada", "ada-pw")
	if code := r.do("PUT", "/api/settings", admin, map[string]bool{"notify_agent_on_monitor": false}, nil); code != 200 {
		t.Fatalf("PUT settings: %d", code)
	}
	alice := r.phone("1001", "alice-pw", agentHz, true)
	_, _ = r.call(alice, "1001")
	agentEvents := r.events(r.login("alice", "alice-pw"))
	adminEvents := r.events(admin)
	sam := r.phone("2001", "sam-pw", supervisorHz, false)
	sup := r.monitor(sam, "*21001")
	adminEvents.next(t, 5*time.Second, isMonitorEvent) // the monitor did start
	if err := sup.SendDTMF('3'); err != nil {
		t.Fatal(err)
	}
	adminEvents.next(t, 5*time.Second, isMonitorEvent)
	for _, ev := range agentEvents.collect(500 * time.Millisecond) {
		if isMonitorEvent(ev) || strings.Contains(ev.Data, "monitored\":true") || strings.Contains(ev.Data, "sam") {
			t.Fatalf("agent was told about monitoring with the setting off: %s %s", ev.Type, ev.Data)
		}
	}
}

// The setting changed from the command line on a running server reaches the agent's
// stream without a restart.
func TestNotificationSettingFromTheCommandLineTakesEffect(t *testing.T) {
	r := newRig(t)
	alice := r.phone("1001", "alice-pw", agentHz, true)
	r.call(alice, "1001")
	agentEvents := r.events(r.login("alice", "alice-pw"))
	sam := r.phone("2001", "sam-pw", supervisorHz, false)
	r.monitor(sam, "*21001")
	agentEvents.next(t, 5*time.Second, func(ev sse) bool { return strings.Contains(ev.Data, `"whisper":true`) })
	// What `ringside-media setting set notify-agent-on-monitor false` does: write the store.
	if err := r.srv.Store().SetSetting(context.Background(), store.SettingNotifyAgentOnMonitor, "false"); err != nil {
		t.Fatal(err)
	}
	agentEvents.next(t, 10*time.Second, func(ev sse) bool {
		return ev.Type == "call.updated" && !strings.Contains(ev.Data, `"monitored":true`)
	})
}
