package live

import (
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"ringside/server/calls"
	"ringside/server/events"
	"ringside/server/store"
)

// call is one live call: the visitor's socket, the agent's softphone sockets it rings on,
// and the one that answered.
type call struct {
	id  string
	ext string

	// turn lets one change happen at a time, its history write and event included, so
	// events and history of a call follow its states in order. Lock order: turn, then
	// Server.mu, then mu.
	turn       sync.Mutex
	ended      bool
	visitor    *socket
	ringing    []*socket // agent sockets offered the call, until it is answered
	agent      *socket   // the socket that answered
	offer      []byte    // the offer as sent to agents, for a softphone that connects while it rings
	trickle    [][]byte  // the visitor's candidates sent to agents, for the same reason
	candidates int       // the visitor's candidates so far (maxCandidates)
	ringTimer  *time.Timer

	mu   sync.Mutex // guards snap, read by the API
	snap calls.Call
}

func (c *call) snapshot() calls.Call {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.snap
	s.Monitors = []calls.Monitor{}
	s.Agent.Teams = slices.Clone(s.Agent.Teams)
	return s
}

func (c *call) record() store.CallRecord {
	return c.snapshot().Record()
}

// publish sends the call as it is now; callers hold turn, so events go out in order.
func (s *Server) publish(t events.Type, c *call) {
	if s.cfg.Events != nil {
		s.cfg.Events.Publish(events.Event{Type: t, Call: c.snapshot()})
	}
}

// Why a visitor's call can't start; the sentences are what the page shows.
var (
	errUnavailable  = errors.New("agent is not available")
	errBusy         = errors.New("agent is busy")
	errShuttingDown = errors.New("the server is shutting down; try again in a minute")
	errNotRecorded  = errors.New("the call could not be placed because the server can't record it; try again in a moment")
)

// A visitor's candidates: how many per call and how big each may be. A browser sends a
// handful of a few hundred bytes.
const (
	maxCandidates     = 32
	maxCandidateBytes = 2 << 10
)

var errTooManyCandidates = errors.New("too many candidates for one call; the rest were dropped")

// CustomerNumber is what a live call shows as the customer's number.
const CustomerNumber = "web"

// DefaultVisitorName names a visitor who gave no name.
const DefaultVisitorName = "Web visitor"

// ring starts a visitor's call to agent: registered ringing, history written, the offer
// sent to each of the agent's softphones and "ringing" to the visitor.
func (s *Server) ring(v *socket, agent store.User, sdp, name string) (*call, error) {
	now := time.Now().UTC()
	id := uuid.NewString()
	c := &call{
		id: id, ext: agent.Ext, visitor: v,
		snap: calls.Call{
			ID: id, Node: s.cfg.Node, Kind: calls.KindLive, State: calls.StateRinging, Direction: "inbound",
			Agent:     calls.Party{Name: agent.Name, Ext: agent.Ext, Teams: agent.Teams},
			Customer:  calls.Customer{Number: CustomerNumber, Name: name},
			StartedAt: now, Monitorable: false, UnmonitorableReason: calls.LiveReason,
		},
	}
	// Claim the agent: from here the SIP side sees it busy. The phone check comes after
	// the claim (and SIP checks us under its own lock), so a phone call and a live call
	// arriving together can't both take the agent.
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return nil, errShuttingDown
	case len(s.agents[agent.Ext]) == 0:
		s.mu.Unlock()
		return nil, errUnavailable
	case s.byExt[agent.Ext] != nil:
		s.mu.Unlock()
		return nil, errBusy
	}
	s.byExt[agent.Ext] = c
	s.mu.Unlock()
	unclaim := func() {
		s.mu.Lock()
		if s.byExt[agent.Ext] == c {
			delete(s.byExt, agent.Ext)
		}
		s.mu.Unlock()
	}
	if s.cfg.AgentOnPhoneCall != nil && s.cfg.AgentOnPhoneCall(agent.Ext) {
		unclaim()
		return nil, errBusy
	}

	c.turn.Lock()
	defer c.turn.Unlock()
	ctx, cancel := storeCtx()
	err := s.cfg.Store.CallStarted(ctx, c.record())
	cancel()
	if err != nil {
		unclaim()
		s.log.Error("recording live call", "call", id, "err", err)
		return nil, errNotRecorded
	}
	s.mu.Lock()
	if s.closed { // Shutdown has collected its calls already: end this one here
		s.mu.Unlock()
		ctx, cancel := storeCtx()
		_ = s.cfg.Store.CallEnded(ctx, id, time.Now().UTC(), "server shutdown")
		cancel()
		unclaim()
		return nil, errShuttingDown
	}
	s.calls[id] = c
	s.started.Add(1)
	phones := slices.Clone(s.agents[agent.Ext])
	s.mu.Unlock()
	s.publish(events.CallStarted, c)
	s.log.Info("live call started", "call", id, "agent", agent.Ext)

	c.offer, _ = marshal(sdpMsg{Type: "offer", CallID: id, SDP: sdp, Visitor: &visitor{Name: name}})
	for _, p := range phones {
		c.offerTo(p)
	}
	if len(c.ringing) == 0 {
		s.endLocked(c, "agent's softphone went offline", nil)
		return c, nil
	}
	v.send(ringingMsg{Type: "ringing", CallID: id})
	c.ringTimer = time.AfterFunc(s.cfg.RingFor, func() {
		if !s.track() {
			return
		}
		defer s.wg.Done()
		s.noAnswer(c)
	})
	return c, nil
}

// offerTo rings one more of the agent's softphones. The caller holds turn.
func (c *call) offerTo(p *socket) {
	if c.ended || c.agent != nil || c.offer == nil || slices.Contains(c.ringing, p) {
		return // ring sends the offer itself once it has one
	}
	c.ringing = append(c.ringing, p)
	p.sendRaw(c.offer)
	for _, cand := range c.trickle {
		p.sendRaw(cand)
	}
}

func (s *Server) noAnswer(c *call) {
	c.turn.Lock()
	defer c.turn.Unlock()
	if c.agent == nil {
		s.endLocked(c, "no answer", nil)
	}
}

// answer connects the call to the softphone p that answered: the visitor gets the SDP,
// the agent's other softphones stop ringing.
func (s *Server) answer(c *call, p *socket, sdp string) error {
	c.turn.Lock()
	defer c.turn.Unlock()
	switch {
	case c.ended:
		return errors.New("the call has ended")
	case c.agent == p:
		return errors.New("you have answered this call already")
	case c.agent != nil:
		return errors.New("this call was answered elsewhere")
	case !slices.Contains(c.ringing, p):
		return errors.New("this call was not offered to this softphone")
	}
	c.ringTimer.Stop()
	now := time.Now().UTC()
	c.agent = p
	others := slices.DeleteFunc(c.ringing, func(o *socket) bool { return o == p })
	c.ringing, c.trickle = nil, nil
	c.mu.Lock()
	c.snap.State = calls.StateTalking
	c.snap.AnsweredAt = &now
	c.mu.Unlock()
	c.visitor.send(sdpMsg{Type: "answer", SDP: sdp})
	for _, o := range others {
		o.send(hangupMsg{Type: "hangup", CallID: c.id, Reason: "answered elsewhere"})
	}
	ctx, cancel := storeCtx()
	defer cancel()
	if err := s.cfg.Store.CallUpdated(ctx, c.record()); err != nil {
		s.log.Error("recording live call", "call", c.id, "err", err)
	}
	s.publish(events.CallUpdated, c)
	s.log.Info("live call answered", "call", c.id, "agent", c.ext)
	return nil
}

// visitorCandidate relays a visitor's candidate to the softphone that answered, or while
// the call rings to every softphone it rings on.
func (s *Server) visitorCandidate(c *call, cand json.RawMessage) error {
	c.turn.Lock()
	defer c.turn.Unlock()
	if c.ended {
		return nil
	}
	// Bounded: while the call rings each one is kept for softphones that connect later,
	// and a browser gathers a handful.
	if c.candidates++; c.candidates > maxCandidates {
		return errTooManyCandidates
	}
	b, err := marshal(candidateMsg{Type: "candidate", CallID: c.id, Candidate: cand})
	if err != nil {
		return err
	}
	if c.agent != nil {
		c.agent.sendRaw(b)
		return nil
	}
	c.trickle = append(c.trickle, b)
	for _, p := range c.ringing {
		p.sendRaw(b)
	}
	return nil
}

// agentCandidate relays the answering softphone's candidate to the visitor.
func (s *Server) agentCandidate(c *call, p *socket, cand json.RawMessage) error {
	c.turn.Lock()
	defer c.turn.Unlock()
	switch {
	case c.ended:
		return errors.New("the call has ended")
	case c.agent == nil:
		return errors.New("answer the call before sending candidates")
	case c.agent != p:
		return errors.New("this call was answered elsewhere")
	}
	c.visitor.send(candidateMsg{Type: "candidate", Candidate: cand})
	return nil
}

// agentHangup ends the call from softphone p: declined while it rings, hung up once
// answered.
func (s *Server) agentHangup(c *call, p *socket, decline bool) error {
	c.turn.Lock()
	defer c.turn.Unlock()
	switch {
	case c.ended:
		return nil // crossed our hangup; nothing to tell
	case c.agent == nil && slices.Contains(c.ringing, p):
		s.endLocked(c, "agent declined", p)
	case c.agent == p && decline:
		return errors.New("the call is already answered; send hangup to end it")
	case c.agent == p:
		s.endLocked(c, "agent hung up", p)
	default:
		return errors.New("this call was answered elsewhere")
	}
	return nil
}

// agentGone is told that softphone p closed its socket: the call ends when it was the
// one that answered, or the last one ringing.
func (s *Server) agentGone(c *call, p *socket) {
	c.turn.Lock()
	defer c.turn.Unlock()
	if c.ended {
		return
	}
	if c.agent == p {
		s.endLocked(c, "agent's softphone went offline", p)
		return
	}
	if c.agent != nil || !slices.Contains(c.ringing, p) {
		return
	}
	c.ringing = slices.DeleteFunc(c.ringing, func(o *socket) bool { return o == p })
	if len(c.ringing) == 0 {
		s.endLocked(c, "agent's softphone went offline", p)
	}
}

// end ends the call once; from is the side that ended it, which is not told.
func (s *Server) end(c *call, reason string, from *socket) {
	c.turn.Lock()
	defer c.turn.Unlock()
	s.endLocked(c, reason, from)
}

// endLocked ends the call with turn held: history first, then the event, then both sides.
func (s *Server) endLocked(c *call, reason string, from *socket) {
	if c.ended {
		return
	}
	c.ended = true
	if c.ringTimer != nil {
		c.ringTimer.Stop()
	}
	now := time.Now().UTC()
	c.mu.Lock()
	c.snap.State = calls.StateEnded
	c.snap.EndedAt = &now
	c.mu.Unlock()
	ctx, cancel := storeCtx()
	if err := s.cfg.Store.CallEnded(ctx, c.id, now, reason); err != nil {
		s.log.Error("recording live call", "call", c.id, "err", err)
	}
	cancel()
	s.mu.Lock()
	delete(s.calls, c.id)
	if s.byExt[c.ext] == c {
		delete(s.byExt, c.ext)
	}
	s.mu.Unlock()
	s.publish(events.CallEnded, c)
	s.log.Info("live call ended", "call", c.id, "reason", reason)

	if c.visitor != from {
		c.visitor.send(hangupMsg{Type: "hangup", Reason: reason})
	}
	c.visitor.close(statusNormal, "call ended")
	for _, p := range append(c.ringing, c.agent) {
		if p != nil && p != from {
			p.send(hangupMsg{Type: "hangup", CallID: c.id, Reason: reason})
		}
	}
	c.ringing, c.trickle, c.offer = nil, nil, nil
}
