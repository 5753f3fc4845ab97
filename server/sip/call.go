package sip

import (
	"context"
	"errors"
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
	"ringside/media/dtlssrtp"
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
	sends    atomic.Bool // sendrecv in the peer's SDP: only then is its silence a dead leg (not hold, not listen-only)
	sdpID    uint64      // o= session id, fixed for the leg's life (RFC 3264 §8)
	sdpVer   atomic.Uint64
	// dtls is our side of a DTLS-SRTP leg for SDP (fingerprint, setup); nil on a plain
	// RTP leg. Guarded by call.mu.
	dtls *media.DTLSParams

	// supervisors
	monitor *calls.Monitor // guarded by call.mu
	user    store.User

	respMu  sync.Mutex // sipgo's server dialog takes one response at a time
	byeOnce sync.Once
	gone    chan struct{} // closed when the leg has left (BYE either way)
}

func newLeg(c *call, role room.Role, ep *transport.Endpoint) *leg {
	return &leg{id: uuid.NewString(), role: role, call: c, ep: ep, gone: make(chan struct{}), sdpID: uint64(time.Now().UnixNano())}
}

// call is one phone call: its room, legs and the snapshot users see.
type call struct {
	id    string
	srv   *Server
	room  *room.Room
	log   *slog.Logger
	shard int // the clock shard the room ticks on; its legs' shared sockets are there

	mu           sync.Mutex
	snap         calls.Call
	customer     *leg
	agent        *leg
	supervisors  []*leg
	transferring bool // a REFER is being carried out: the agent leaving doesn't end the call

	ctx     context.Context // ends when the call ends: stops ringing and dialling for it
	cancel  context.CancelFunc
	endOnce sync.Once
	ended   chan struct{}
	reason  string
}

func (c *call) legsLocked() []*leg {
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
	return c.snapshot().Record()
}

// publish sends an event with the call as it is now. Snapshot and send happen under the
// call's lock, so events of one call go out in the order its state changed.
func (s *Server) publish(t events.Type, c *call, m *calls.Monitor) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s.cfg.Events.Publish(events.Event{Type: t, Call: c.snapshotLocked(), Monitor: m})
}

// storeCtx bounds history writes; they must not hang a SIP handler.
func storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Second)
}

// Why a call could not be started.
var errBusy = errors.New("agent is already on a call")

// newCall registers a ringing call and writes its first history row. The busy and
// shutdown checks happen under the same lock as the registration, so two customers calling
// one agent at the same moment can't both ring it, and Shutdown sees every call.
func (s *Server) newCall(direction string, agent store.User, customer calls.Customer) (*call, error) {
	id := uuid.NewString()
	ctx, cancel := context.WithCancel(context.Background())
	c := &call{
		ctx:    ctx,
		cancel: cancel,
		id:     id,
		srv:    s,
		room:   room.New(id),
		shard:  s.cfg.Clock.NextShard(),
		log:    s.log.With("call", id),
		ended:  make(chan struct{}),
		snap: calls.Call{
			ID: id, Node: s.cfg.Node, Kind: calls.KindPhone, State: calls.StateRinging,
			Direction: direction,
			Agent:     calls.Party{Name: agent.Name, Ext: agent.Ext, Teams: agent.Teams},
			Customer:  customer, StartedAt: time.Now().UTC(), Monitorable: true,
		},
	}
	s.mu.Lock()
	switch {
	case s.closing.Load():
		s.mu.Unlock()
		cancel()
		return nil, ErrShuttingDown
	case len(s.agents[agent.Ext]) > 0 || s.onLiveCall(agent.Ext):
		s.mu.Unlock()
		cancel()
		return nil, errBusy
	}
	s.calls[id] = c
	s.agents[agent.Ext] = append(s.agents[agent.Ext], c)
	s.mu.Unlock()
	wctx, wcancel := storeCtx()
	defer wcancel()
	if err := s.cfg.Store.CallStarted(wctx, c.record()); err != nil {
		s.mu.Lock()
		delete(s.calls, id)
		s.agents[agent.Ext] = deleteCall(s.agents[agent.Ext], c)
		if len(s.agents[agent.Ext]) == 0 {
			delete(s.agents, agent.Ext)
		}
		s.mu.Unlock()
		cancel()
		return nil, err
	}
	s.callStarted(direction)
	s.publish(events.CallStarted, c, nil)
	c.log.Info("call started", "direction", direction, "agent", agent.Ext, "customer", customer.Number)
	return c, nil
}

// answered moves a call to talking once both legs have media: the room starts ticking.
func (s *Server) answered(c *call) bool {
	now := time.Now().UTC()
	c.mu.Lock()
	if c.snap.State == calls.StateEnded {
		c.mu.Unlock()
		return false
	}
	c.snap.State = calls.StateTalking
	c.snap.AnsweredAt = &now
	// Under the lock, so endCall's Clock.Remove can't come before this Add.
	s.cfg.Clock.AddTo(c.shard, c.room)
	c.mu.Unlock()
	ctx, cancel := storeCtx()
	defer cancel()
	if err := s.cfg.Store.CallUpdated(ctx, c.record()); err != nil {
		c.log.Error("writing call history", "err", err)
	}
	s.publish(events.CallUpdated, c, nil)
	return true
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
		c.cancel()
		c.mu.Lock()
		c.reason = reason
		now := time.Now().UTC()
		c.snap.State = calls.StateEnded
		c.snap.EndedAt = &now
		legs := []*leg{c.customer, c.agent}
		legs = append(legs, c.supervisors...)
		ext := c.snap.Agent.Ext
		var monitorIDs []string
		for _, l := range c.supervisors {
			if l.monitor != nil {
				monitorIDs = append(monitorIDs, l.monitor.ID)
			}
		}
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
		s.agents[ext] = slices.DeleteFunc(s.agents[ext], func(o *call) bool { return o == c })
		if len(s.agents[ext]) == 0 {
			delete(s.agents, ext)
		}
		for _, l := range legs {
			if l != nil && s.legs[l.dialog] == l {
				delete(s.legs, l.dialog)
			}
		}
		for _, id := range monitorIDs {
			delete(s.monitors, id)
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
		if !l.answered.Load() && l.server != nil {
			// Still ringing on our side (shutdown while the agent's phone rings).
			l.respond(503, "Service Unavailable")
		}
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

// respond answers the INVITE of a leg that called us, one response at a time.
func (l *leg) respond(code int, reason string) {
	l.respMu.Lock()
	defer l.respMu.Unlock()
	if code < 200 && l.answered.Load() {
		return // already answered: a late provisional has nothing to say
	}
	_ = l.server.Respond(code, reason, nil)
}

// left is called when the peer sent BYE: no BYE back, just free media.
func (l *leg) left() {
	l.byeOnce.Do(l.release)
}

func (l *leg) release() {
	l.call.mu.Lock()
	m := l.media
	l.call.mu.Unlock()
	if m != nil {
		l.call.room.Leave(m)
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
	l.call.srv.retire(l, m)
}

// startMedia configures the endpoint from the peer's SDP and makes the room leg. The leg is
// not yet in the room; once it joins, the room's clock drains its RTP at every tick (no
// goroutine per leg), until release takes it out and closes the endpoint. It fails only on
// a shared socket, for a peer whose address another leg there uses (ErrPeerShared).
func (s *Server) startMedia(l *leg, peer media.SessionDesc, codec media.Codec, mode room.Mode) error {
	if err := l.ep.Configure(peer.Addr, codec, peer.DTMFType); err != nil {
		return err
	}
	s.secureMedia(l, peer)
	m := room.NewLeg(l.id, l.role, codec, l.ep, mode)
	m.SetReceiving(peer.Direction == media.SendRecv || peer.Direction == media.RecvOnly || peer.Direction == "")
	l.sends.Store(peer.Direction == media.SendRecv || peer.Direction == "")
	l.call.mu.Lock()
	l.codec, l.media = codec, m
	l.call.mu.Unlock()
	l.ep.Attach(m)
	return nil
}

// openEndpoint opens the RTP endpoint of a leg of c; offered is the address the peer's
// offer gave, or the zero value when we offer.
func (s *Server) openEndpoint(c *call, offered netip.AddrPort) (*transport.Endpoint, error) {
	if !offered.IsValid() || offered.Port() == 0 || offered.Addr().IsUnspecified() {
		offered = netip.AddrPort{}
	}
	return s.ports.OpenFor(c.shard, offered)
}

// offerDTLS makes l's next SDP offer DTLS-SRTP (setup:actpass): we are about to call a
// phone that registered for it.
func (s *Server) offerDTLS(l *leg) {
	cert, err := dtlssrtp.LocalCertificate()
	if err != nil {
		s.log.Error("DTLS-SRTP offered as plain RTP", "err", err)
		return
	}
	l.call.mu.Lock()
	l.dtls = &media.DTLSParams{Fingerprint: cert.Fingerprint.String(), Setup: dtlssrtp.SetupActPass}
	l.call.mu.Unlock()
}

// acceptDTLS answers a DTLS-SRTP offer on l. The server is always the DTLS server
// (setup:passive) unless the offerer insists on being it (RFC 5763 §5).
func (s *Server) acceptDTLS(l *leg, offer media.SessionDesc) error {
	if offer.DTLS == nil {
		return nil
	}
	if _, err := dtlssrtp.ParseFingerprint(offer.DTLS.Fingerprint); err != nil {
		return err
	}
	cert, err := dtlssrtp.LocalCertificate()
	if err != nil {
		return err
	}
	_, setup := dtlssrtp.AnswerRole(offer.DTLS.Setup, dtlssrtp.Server)
	l.call.mu.Lock()
	l.dtls = &media.DTLSParams{Fingerprint: cert.Fingerprint.String(), Setup: setup}
	l.call.mu.Unlock()
	return nil
}

// secureMedia starts DTLS-SRTP on a leg whose offer/answer agreed on it, and hangs the leg
// up with the reason should the handshake fail (a certificate that isn't the one in the
// SDP, a peer that never shakes hands). A plain answer to our DTLS offer leaves the leg
// plain RTP.
func (s *Server) secureMedia(l *leg, peer media.SessionDesc) {
	l.call.mu.Lock()
	local := l.dtls
	if peer.DTLS == nil {
		l.dtls = nil
	}
	l.call.mu.Unlock()
	if peer.DTLS == nil || local == nil {
		return
	}
	role := dtlssrtp.Server
	switch local.Setup {
	case dtlssrtp.SetupActPass: // we offered: the answer decides
		role = dtlssrtp.OfferRole(peer.DTLS.Setup)
		setup := dtlssrtp.SetupPassive
		if role == dtlssrtp.Client {
			setup = dtlssrtp.SetupActive
		}
		l.call.mu.Lock()
		l.dtls = &media.DTLSParams{Fingerprint: local.Fingerprint, Setup: setup} // what later answers say
		l.call.mu.Unlock()
	case dtlssrtp.SetupActive:
		role = dtlssrtp.Client
	}
	fp, err := dtlssrtp.ParseFingerprint(peer.DTLS.Fingerprint)
	var sess *dtlssrtp.Session
	if err == nil {
		sess, err = l.ep.Secure(role, fp)
	}
	if err != nil {
		s.later(func() { s.mediaFailed(l, err) })
		return
	}
	s.sessions.Add(1)
	go func() {
		defer s.sessions.Done()
		<-sess.Done()
		if err := sess.Err(); err != nil && !errors.Is(err, dtlssrtp.ErrClosed) {
			s.mediaFailed(l, err)
		} else if err == nil {
			l.call.log.Debug("leg media secured", "leg", l.role, "dtls_role", role, "profile", sess.Profile())
		}
	}()
}

// mediaFailed ends a leg whose media can't be secured: a supervisor leaves, a customer or
// agent leg ends the call.
func (s *Server) mediaFailed(l *leg, err error) {
	reason := err.Error()
	l.call.log.Warn("leg media failed", "leg", l.role, "err", err)
	if l.role == room.Supervisor {
		s.endMonitor(l, reason)
		return
	}
	s.endCall(l.call, reason)
}

// localSDP describes our endpoint of a leg.
func (s *Server) localSDP(l *leg, codecs []media.Codec, dir media.Direction) []byte {
	return s.answerSDP(l, codecs, dir, media.SessionDesc{DTMFType: DTMFPayloadType})
}

// answerSDP describes our endpoint in answer to offer: telephone-event under the offer's
// payload type (RFC 3264 §6.1), or none when the offer had none, and RFC 6465 levels when
// offered.
func (s *Server) answerSDP(l *leg, codecs []media.Codec, dir media.Direction, offer media.SessionDesc) []byte {
	addr := l.ep.LocalAddr()
	if s.cfg.PublicIP.IsValid() {
		addr = netip.AddrPortFrom(s.cfg.PublicIP, addr.Port())
	}
	d := media.SessionDesc{Addr: addr, Codecs: codecs, DTMFType: offer.DTMFType, Direction: dir, Ptime: 20, LevelsID: offer.LevelsID}
	l.call.mu.Lock()
	d.DTLS = l.dtls
	l.call.mu.Unlock()
	// rtcp-mux in our DTLS offers (one association on one port), in answers when offered.
	d.RTCPMux = offer.RTCPMux || d.DTLS != nil && d.DTLS.Setup == dtlssrtp.SetupActPass
	return d.Marshal(l.sdpID, l.sdpVer.Add(1))
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
	calls.NewestFirst(out)
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
