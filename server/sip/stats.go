package sip

import (
	"sync"

	sipmsg "github.com/emiago/sipgo/sip"

	"ringside/server/calls"
	"ringside/server/room"
	"ringside/server/transport"
)

// MediaStats is a point-in-time view of the SIP side for metrics. Gauges describe the
// calls in progress; the counters (Calls*, Jitter*, RTP*) only ever grow over the
// server's life, ended legs included.
type MediaStats struct {
	CallsActive    int
	CallsStarted   map[string]uint64 // by direction ("inbound", "outbound")
	LegsActive     map[room.Role]int // legs with media, by role
	MonitorsByMode map[room.Mode]int // active monitor sessions
	JitterDropped  uint64            // inbound frames refused or discarded unplayed
	JitterMissing  uint64            // ticks a leg had no frame to play
	RTPForeign     uint64            // RTP from an address other than the signalled one
	RTPMalformed   uint64            // not RTP, or an unexpected payload type
	SRTPDropped    uint64            // SRTP that failed authentication or replay checks, or came before the keys
}

// legCounters are the counters one leg contributes.
type legCounters struct {
	jitterDropped, jitterMissing uint64
	foreign, malformed           uint64
	srtpDropped                  uint64
}

func (a *legCounters) add(b legCounters) {
	a.jitterDropped += b.jitterDropped
	a.jitterMissing += b.jitterMissing
	a.foreign += b.foreign
	a.malformed += b.malformed
	a.srtpDropped += b.srtpDropped
}

func countersOf(m *room.Leg, ep *transport.Endpoint) legCounters {
	var c legCounters
	if m != nil {
		js := m.JitterStats()
		c.jitterDropped, c.jitterMissing = js.Dropped, js.Missing
	}
	if ep != nil {
		c.foreign, c.malformed = ep.Stats.Foreign.Load(), ep.Stats.Malformed.Load()
		c.srtpDropped = ep.Stats.SRTPDropped.Load()
	}
	return c
}

// stats keeps what metrics need beyond the live calls: totals of ended legs, calls
// started, and the last counters reported (so a leg caught between leaving its call and
// being retired never makes a counter go backwards). Nothing here is on the RTP path.
type stats struct {
	mu       sync.Mutex
	started  map[string]uint64
	retired  legCounters
	reported legCounters
}

// callStarted counts a new call.
func (s *Server) callStarted(direction string) {
	s.stats.mu.Lock()
	if s.stats.started == nil {
		s.stats.started = make(map[string]uint64)
	}
	s.stats.started[direction]++
	s.stats.mu.Unlock()
}

// retire adds an ended leg's counters to the totals; m is its room leg (nil when it
// never had media). Called once per leg, from release, after l.gone is closed: from then
// on MediaStats skips the leg, so it is never counted twice (a scrape in between sees a
// dip, which the reported high-water mark hides).
func (s *Server) retire(l *leg, m *room.Leg) {
	c := countersOf(m, l.ep)
	s.stats.mu.Lock()
	s.stats.retired.add(c)
	s.stats.mu.Unlock()
}

// authFailed reports a request refused for bad credentials or too many failures.
func (s *Server) authFailed(req *sipmsg.Request) {
	if s.cfg.OnAuthFailure != nil {
		s.cfg.OnAuthFailure(string(req.Method))
	}
}

// MediaStats gathers the stats of the calls in progress, reading calls and legs under
// their locks as the rest of the server does. It is meant for scrapes (seconds apart),
// not for the media path.
func (s *Server) MediaStats() MediaStats {
	out := MediaStats{
		CallsStarted:   make(map[string]uint64),
		LegsActive:     make(map[room.Role]int),
		MonitorsByMode: make(map[room.Mode]int),
	}
	s.mu.Lock()
	active := make([]*call, 0, len(s.calls))
	for _, c := range s.calls {
		active = append(active, c)
	}
	s.mu.Unlock()
	type legMedia struct {
		l     *leg
		m     *room.Leg
		ended bool // its call is ending: counters still count, gauges no more
	}
	var legs []legMedia
	for _, c := range active {
		c.mu.Lock()
		ended := c.snap.State == calls.StateEnded
		if !ended {
			out.CallsActive++
		}
		for _, l := range c.legsLocked() {
			legs = append(legs, legMedia{l, l.media, ended})
			if !ended && l.role == room.Supervisor && l.monitor != nil {
				out.MonitorsByMode[l.monitor.Mode]++
			}
		}
		c.mu.Unlock()
	}
	var live legCounters
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	for _, lm := range legs {
		if isGone(lm.l) {
			continue // released: its counters are in (or about to join) the retired totals
		}
		if lm.m != nil && !lm.ended {
			out.LegsActive[lm.l.role]++
		}
		live.add(countersOf(lm.m, lm.l.ep))
	}
	live.add(s.stats.retired)
	// On shared sockets a stranger's packet matches no leg: the socket counts it.
	for i := range s.cfg.Clock.Shards() {
		if sh := s.ports.Shard(i); sh != nil {
			live.foreign += sh.Foreign()
		}
	}
	r := &s.stats.reported
	r.jitterDropped = max(r.jitterDropped, live.jitterDropped)
	r.jitterMissing = max(r.jitterMissing, live.jitterMissing)
	r.foreign = max(r.foreign, live.foreign)
	r.malformed = max(r.malformed, live.malformed)
	r.srtpDropped = max(r.srtpDropped, live.srtpDropped)
	out.JitterDropped, out.JitterMissing = r.jitterDropped, r.jitterMissing
	out.RTPForeign, out.RTPMalformed = r.foreign, r.malformed
	out.SRTPDropped = r.srtpDropped
	for d, n := range s.stats.started {
		out.CallsStarted[d] = n
	}
	return out
}
