package sip

import "ringside/server/calls"

// LiveCalls is what the SIP side needs to know of live calls (browser to softphone, end
// to end encrypted), which it never carries: an agent on one is busy for phone calls and
// can't be monitored by feature code.
type LiveCalls interface {
	AgentOnLiveCall(ext string) (calls.Call, bool)
}

// liveCall returns the live call the agent at ext is on, if any.
func (s *Server) liveCall(ext string) (calls.Call, bool) {
	if s.cfg.Live == nil {
		return calls.Call{}, false
	}
	return s.cfg.Live.AgentOnLiveCall(ext)
}

// AgentOnCall tells whether the agent at ext is on a phone call (ringing, talking or
// held), so live calls can treat it as busy.
func (s *Server) AgentOnCall(ext string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.agents[ext]) > 0
}

// onLiveCall is liveCall for the busy check under s.mu; the live side never calls into SIP
// while holding its own locks, so asking it here can't deadlock.
func (s *Server) onLiveCall(ext string) bool {
	_, ok := s.liveCall(ext)
	return ok
}
