package sip

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/google/uuid"

	"ringside/media"
	"ringside/server/calls"
	"ringside/server/events"
	"ringside/server/room"
	"ringside/server/store"
	"ringside/server/transport"
)

// leg is one SIP dialog of a call with its RTP endpoint and its place in the room.
type leg struct {
	id   string
	role room.Role
	call *call

	server *sipgo.DialogServerSession // the leg called us
	client *sipgo.DialogClientSession // we called the leg
	dialog string                     // SIP dialog id as our server indexes it

	ep       *transport.Endpoint
	media    *room.Leg
	codec    media.Codec
	answered atomic.Bool
	sdpVer   atomic.Uint64

	// supervisors
	monitor *calls.Monitor // guarded by call.mu
	user    store.User

	byeOnce sync.Once
	gone    chan struct{} // closed when the leg has left (BYE either way)
}

func newLeg(c *call, role room.Role, ep *transport.Endpoint) *leg {
	return &leg{id: uuid.NewString(), role: role, call: c, ep: ep, gone: make(chan struct{})}
}

// call is one phone call: its room, legs and the snapshot users see.
type call struct {
	id   string
	srv  *Server
	room *room.Room
	log  *slog.Logger

	mu           sync.Mutex
	snap         calls.Call
	customer     *leg
	agent        *leg
	supervisors  []*leg
	transferring bool // a REFER is being carried out: the agent leaving doesn't end the call

	endOnce sync.Once
	ended   chan struct{}
	reason  string
}

func (c *call) allLegs() []*leg {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ls []*leg
	if c.customer != nil {
		ls = append(ls, c.customer)
	}
	if c.agent != nil {
		ls = append(ls, c.agent)
	}
	return append(ls, c.supervisors...)
}

// snapshot returns a copy safe to hand out.
func (c *call) snapshot() calls.Call {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snapshotLocked()
}

func (c *call) snapshotLocked() calls.Call {
	s := c.snap
	s.Monitors = make([]calls.Monitor, 0, len(c.supervisors))
	for _, l := range c.supervisors {
		if l.monitor != nil {
			s.Monitors = append(s.Monitors, *l.monitor)
		}
	}
	s.Agent.Teams = slices.Clone(s.Agent.Teams)
	return s
}

func (c *call) record() store.CallRecord {
	s := c.snapshot()
	return store.CallRecord{
		ID: s.ID, Node: s.Node, Kind: string(s.Kind), Direction: s.Direction, State: string(s.State),
		AgentName: s.Agent.Name, AgentExt: s.Agent.Ext,
		CustomerNumber: s.Customer.Number, CustomerName: s.Customer.Name,
		StartedAt: s.StartedAt, AnsweredAt: s.AnsweredAt,
	}
}

func (s *Server) publish(t events.Type, c *call, m *calls.Monitor) {
	s.cfg.Events.Publish(events.Event{Type: t, Call: c.snapshot(), Monitor: m})
}

// storeCtx bounds history writes; they must not hang a SIP handler.
func storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Second)
}

// newCall registers a ringing call and writes its first history row.
func (s *Server) newCall(direction string, agent store.User, customer calls.Customer) (*call, error) {
	id := uuid.NewString()
	c := &call{
		id:    id,
		srv:   s,
		room:  room.New(id),
		log:   s.log.With("call", id),
		ended: make(chan struct{}),
		snap: calls.Call{
			ID: id, Node: s.cfg.Node, Kind: calls.KindPhone, State: calls.StateRinging,
			Direction: direction,
			Agent:     calls.Party{Name: agent.Name, Ext: agent.Ext, Teams: agent.Teams},
			Customer:  customer, StartedAt: time.Now().UTC(), Monitorable: true,
		},
	}
	ctx, cancel := storeCtx()
	defer cancel()
	if err := s.cfg.Store.CallStarted(ctx, c.record()); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.calls[id] = c
	s.agents[agent.Ext] = append(s.agents[agent.Ext], c)
	s.mu.Unlock()
	s.publish(events.CallStarted, c, nil)
	c.log.Info("call started", "direction", direction, "agent", agent.Ext, "customer", customer.Number)
	return c, nil
}

// answered moves a call to talking once both legs have media: the room starts ticking.
func (s *Server) answered(c *call) {
	now := time.Now().UTC()
	c.mu.Lock()
	c.snap.State = calls.StateTalking
	c.snap.AnsweredAt = &now
	c.mu.Unlock()
	s.cfg.Clock.Add(c.room)
	ctx, cancel := storeCtx()
	defer cancel()
	if err := s.cfg.Store.CallUpdated(ctx, c.record()); err != nil {
		c.log.Error("writing call history", "err", err)
	}
	s.publish(events.CallUpdated, c, nil)
}

// setHeld reflects hold/resume in the call state.
func (s *Server) setHeld(c *call, held bool) {
	c.mu.Lock()
	want := calls.StateTalking
	if held {
		want = calls.StateHeld
	}
	changed := c.snap.State != want && c.snap.State != calls.StateEnded && c.snap.State != calls.StateRinging
	if changed {
		c.snap.State = want
	}
	c.mu.Unlock()
	if !changed {
		return
	}
	ctx, cancel := storeCtx()
	defer cancel()
	_ = s.cfg.Store.CallUpdated(ctx, c.record())
	s.publish(events.CallUpdated, c, nil)
}

// endCall ends a call once: BYE to every leg still up, history written, event sent.
func (s *Server) endCall(c *call, reason string) {
	c.endOnce.Do(func() {
		c.mu.Lock()
		c.reason = reason
		now := time.Now().UTC()
		c.snap.State = calls.StateEnded
		c.snap.EndedAt = &now
		legs := []*leg{c.customer, c.agent}
		legs = append(legs, c.supervisors...)
		c.mu.Unlock()
		s.cfg.Clock.Remove(c.room)
		// History first: it must hold even if a leg never answers our BYE.
		ctx, cancel := storeCtx()
		defer cancel()
		if err := s.cfg.Store.CallEnded(ctx, c.id, now, reason); err != nil {
			c.log.Error("writing call history", "err", err)
		}

		var wg sync.WaitGroup
		for _, l := range legs {
			if l == nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.hangup(l)
			}()
		}
		wg.Wait()

		s.mu.Lock()
		delete(s.calls, c.id)
		ext := c.snap.Agent.Ext
		s.agents[ext] = slices.DeleteFunc(s.agents[ext], func(o *call) bool { return o == c })
		if len(s.agents[ext]) == 0 {
			delete(s.agents, ext)
		}
		for _, l := range legs {
			if l != nil && l.dialog != "" {
				delete(s.legs, l.dialog)
			}
			if l != nil && l.monitor != nil {
				delete(s.monitors, l.monitor.ID)
			}
		}
		s.mu.Unlock()
		close(c.ended)
		s.publish(events.CallEnded, c, nil)
		c.log.Info("call ended", "reason", reason)
	})
	<-c.ended
}

// hangup sends BYE on a leg (unless it already left) and frees its media.
func (s *Server) hangup(l *leg) {
	l.byeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		defer cancel()
		if l.answered.Load() {
			var err error
			switch {
			case l.server != nil:
				err = l.server.Bye(ctx)
			case l.client != nil:
				err = l.client.Bye(ctx)
			}
			if err != nil {
				s.log.Debug("bye", "leg", l.role, "err", err)
			}
		}
		l.release()
	})
}

// left is called when the peer sent BYE: no BYE back, just free media.
func (l *leg) left() {
	l.byeOnce.Do(l.release)
}

func (l *leg) release() {
	if l.media != nil {
		l.call.room.Leave(l.media)
	}
	if l.ep != nil {
		l.ep.Close()
	}
	if l.server != nil {
		l.server.Close()
	}
	if l.client != nil {
		l.client.Close()
	}
	close(l.gone)
}

// startMedia configures the endpoint from the peer's SDP, makes the room leg and starts
// reading RTP. The leg is not yet in the room.
func (s *Server) startMedia(l *leg, peer media.SessionDesc, codec media.Codec, mode room.Mode) {
	l.codec = codec
	l.ep.Configure(peer.Addr, codec, peer.DTMFType)
	l.media = room.NewLeg(l.id, l.role, codec, l.ep, mode)
	l.media.SetReceiving(peer.Direction == media.SendRecv || peer.Direction == media.RecvOnly || peer.Direction == "")
	l.ep.Attach(l.media)
	s.sessions.Add(1)
	go func() {
		defer s.sessions.Done()
		l.ep.Run()
	}()
}

// localSDP describes our endpoint of a leg.
func (s *Server) localSDP(l *leg, codecs []media.Codec, dir media.Direction) []byte {
	return s.localSDPLevels(l, codecs, dir, 0)
}

// localSDPLevels is localSDP agreeing to RFC 6465 levels with extension id levelsID.
func (s *Server) localSDPLevels(l *leg, codecs []media.Codec, dir media.Direction, levelsID uint8) []byte {
	addr := l.ep.LocalAddr()
	if s.cfg.PublicIP.IsValid() {
		addr = netip.AddrPortFrom(s.cfg.PublicIP, addr.Port())
	}
	d := media.SessionDesc{Addr: addr, Codecs: codecs, DTMFType: DTMFPayloadType, Direction: dir, Ptime: 20, LevelsID: levelsID}
	return d.Marshal(uint64(time.Now().Unix()), l.sdpVer.Add(1))
}

// answerDirection is our side of an offered direction (RFC 3264 §6.1).
func answerDirection(offer media.Direction) media.Direction {
	switch offer {
	case media.SendOnly:
		return media.RecvOnly
	case media.RecvOnly:
		return media.SendOnly
	case media.Inactive:
		return media.Inactive
	}
	return media.SendRecv
}

func (s *Server) index(l *leg) {
	s.mu.Lock()
	s.legs[l.dialog] = l
	s.mu.Unlock()
}

// forget drops a leg that left its call from the dialog index.
func (s *Server) forget(l *leg) {
	s.mu.Lock()
	if s.legs[l.dialog] == l {
		delete(s.legs, l.dialog)
	}
	s.mu.Unlock()
}

// legByRequest finds the leg an in-dialog request belongs to.
func (s *Server) legByRequest(req *sipmsg.Request) *leg {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, err := sipmsg.DialogIDFromRequestUAS(req); err == nil {
		if l, ok := s.legs[id]; ok {
			return l
		}
	}
	if id, err := sipmsg.DialogIDFromRequestUAC(req); err == nil {
		if l, ok := s.legs[id]; ok {
			return l
		}
	}
	return nil
}

// Registry for the API.

// Active lists the calls in progress.
func (s *Server) Active() []calls.Call {
	s.mu.Lock()
	cs := make([]*call, 0, len(s.calls))
	for _, c := range s.calls {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	out := make([]calls.Call, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.snapshot())
	}
	slices.SortFunc(out, func(a, b calls.Call) int { return b.StartedAt.Compare(a.StartedAt) })
	return out
}

// Call returns one active call.
func (s *Server) Call(id string) (calls.Call, bool) {
	s.mu.Lock()
	c, ok := s.calls[id]
	s.mu.Unlock()
	if !ok {
		return calls.Call{}, false
	}
	return c.snapshot(), true
}

// Monitor returns one active monitor session.
func (s *Server) Monitor(id string) (calls.Monitor, bool) {
	s.mu.Lock()
	l, ok := s.monitors[id]
	s.mu.Unlock()
	if !ok {
		return calls.Monitor{}, false
	}
	l.call.mu.Lock()
	defer l.call.mu.Unlock()
	if l.monitor == nil {
		return calls.Monitor{}, false
	}
	return *l.monitor, true
}

// SetMonitorMode switches a monitor session's mode.
func (s *Server) SetMonitorMode(ctx context.Context, id string, mode room.Mode) error {
	s.mu.Lock()
	l, ok := s.monitors[id]
	s.mu.Unlock()
	if !ok {
		return calls.ErrNoMonitor
	}
	s.setMode(l, mode)
	return nil
}

// EndMonitor hangs up a supervisor.
func (s *Server) EndMonitor(ctx context.Context, id string) error {
	s.mu.Lock()
	l, ok := s.monitors[id]
	s.mu.Unlock()
	if !ok {
		return calls.ErrNoMonitor
	}
	s.endMonitor(l, "ended from the API")
	return nil
}

var _ calls.Registry = (*Server)(nil)
