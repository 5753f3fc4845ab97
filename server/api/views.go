package api

import (
	"ringside/server/calls"
	"ringside/server/events"
	"ringside/server/store"
)

// The views in this file decide what of a call one user may read. They are the only place
// where calls and monitors are turned into JSON for users, so the privacy rules live here:
//   - who monitors a call: admins (calls.SeesMonitors) see everyone, a supervisor only its
//     own sessions, nobody else anyone;
//   - whether a call is monitored and whispered, without who: admins and supervisors, and
//     the call's agent only while notify-agent-on-monitor is on.

// callView is a call as one user may see it.
type callView struct {
	calls.Call
	Monitored *bool `json:"monitored,omitempty"`
	Whisper   *bool `json:"whisper,omitempty"`
}

// viewCall returns c as u may see it; notify is the setting notify-agent-on-monitor. The
// caller has checked calls.CanSee.
func viewCall(u store.User, c calls.Call, notify bool) callView {
	v := callView{Call: c}
	v.Monitors = visibleMonitors(u, c.Monitors)
	if seesMonitorStatus(u, c, notify) {
		monitored, whisper := len(c.Monitors) > 0, c.Whisper()
		v.Monitored, v.Whisper = &monitored, &whisper
	}
	return v
}

// visibleMonitors returns a new slice (never nil) of the sessions u may see.
func visibleMonitors(u store.User, ms []calls.Monitor) []calls.Monitor {
	out := make([]calls.Monitor, 0, len(ms))
	all := calls.SeesMonitors(u)
	for _, m := range ms {
		if all || m.User == u.Name {
			out = append(out, m)
		}
	}
	return out
}

func isAgentOf(u store.User, c calls.Call) bool {
	return c.Agent.Ext != "" && c.Agent.Ext == u.Ext
}

// seesMonitorStatus tells whether u may know that c is monitored and whether whisper is on.
func seesMonitorStatus(u store.User, c calls.Call, notify bool) bool {
	switch {
	case calls.SeesMonitors(u):
		return true
	case isAgentOf(u, c):
		return notify
	case u.Can(store.PermMonitor):
		return true
	}
	return false
}

// monitorStatus is all the agent of a call learns of a monitor.* event: no identity.
type monitorStatus struct {
	CallID    string `json:"call_id"`
	Monitored bool   `json:"monitored"`
	Whisper   bool   `json:"whisper"`
}

// monitorDetail is a monitor.* event for an admin, or for the supervisor whose session it
// is (its softphone needs the monitor id to switch modes).
type monitorDetail struct {
	monitorStatus
	Monitor *calls.Monitor `json:"monitor"`
	Call    callView       `json:"call"`
}

// viewMonitorEvent returns the data of monitor event e for u, or false when u gets nothing.
func viewMonitorEvent(u store.User, e events.Event, notify bool) (any, bool) {
	c := e.Call
	if !calls.CanSee(u, c) {
		return nil, false
	}
	status := monitorStatus{CallID: c.ID, Monitored: len(c.Monitors) > 0, Whisper: c.Whisper()}
	own := e.Monitor != nil && e.Monitor.User == u.Name
	switch {
	case calls.SeesMonitors(u) || own:
		var m *calls.Monitor
		if e.Monitor != nil {
			mc := *e.Monitor
			m = &mc
		}
		return monitorDetail{monitorStatus: status, Monitor: m, Call: viewCall(u, c, notify)}, true
	case isAgentOf(u, c):
		if !notify {
			return nil, false
		}
		return status, true
	case u.Can(store.PermMonitor):
		return status, true
	}
	return nil, false
}
