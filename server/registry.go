package server

import (
	"ringside/server/calls"
	"ringside/server/live"
	"ringside/server/sip"
)

// callRegistry shows the API phone calls (SIP) and live calls together. Monitors exist
// only on phone calls, so Monitor, SetMonitorMode and EndMonitor stay with SIP.
type callRegistry struct {
	*sip.Server
	live *live.Server
}

// Active lists phone and live calls in progress, newest first.
func (r callRegistry) Active() []calls.Call {
	out := append(r.Server.Active(), r.live.Active()...)
	calls.NewestFirst(out)
	return out
}

// Call returns a phone or live call in progress.
func (r callRegistry) Call(id string) (calls.Call, bool) {
	if c, ok := r.Server.Call(id); ok {
		return c, true
	}
	return r.live.Call(id)
}

var _ calls.Registry = callRegistry{}
