package sip

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
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
)

// featureCode reads *1<ext>, *2<ext>, *3<ext>.
func featureCode(user string) (room.Mode, string, bool) {
	if len(user) < 3 || user[0] != '*' {
		return "", "", false
	}
	mode, ok := room.ModeForDigit(rune(user[1]))
	return mode, user[2:], ok
}

func (s *Server) onInvite(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if to := req.To(); to != nil && to.Params.Has("tag") {
		s.reinvite(req, tx)
		return
	}
	if s.closing.Load() {
		respond(tx, req, 503, "Service Unavailable: server shutting down")
		return
	}
	s.handlers.Add(1)
	defer s.handlers.Done()

	target := userPart(req.Recipient)
	if mode, ext, ok := featureCode(target); ok {
		s.monitorInvite(req, tx, mode, ext)
		return
	}
	offer, codec, ok := s.readOffer(req, tx)
	if !ok {
		return
	}
	ctx, cancel := storeCtx()
	agent, err := s.cfg.Store.UserByExt(ctx, target)
	cancel()
	isExt := err == nil
	if isExt && s.trunk(req) && req.GetHeader("Authorization") == nil {
		from := req.From()
		cust := calls.Customer{Number: from.Address.User, Name: from.DisplayName}
		s.bridgeInbound(req, tx, offer, codec, agent, cust)
		return
	}
	if !isExt && s.trunk(req) && s.cfg.TrunkURI == "" && req.GetHeader("Authorization") == nil {
		respond(tx, req, 404, "Not Found: no such extension")
		return
	}
	caller, ok := s.authenticate(req, tx)
	if !ok {
		return
	}
	if !caller.Can(store.PermCall) {
		respond(tx, req, 403, "Forbidden: you may not place calls")
		return
	}
	if isExt {
		// One extension calling another: the caller is the customer side of the agent's call.
		s.bridgeInbound(req, tx, offer, codec, agent, calls.Customer{Number: caller.Ext, Name: caller.Name})
		return
	}
	s.bridgeOutbound(req, tx, offer, codec, caller, target)
}

// readOffer parses and negotiates an INVITE's SDP; on failure it has answered 488.
func (s *Server) readOffer(req *sipmsg.Request, tx sipmsg.ServerTransaction) (media.SessionDesc, media.Codec, bool) {
	offer, err := media.ParseSDP(req.Body())
	if err == nil && offer.DTLS != nil {
		_, err = dtlssrtp.ParseFingerprint(offer.DTLS.Fingerprint)
	}
	if err == nil {
		var codec media.Codec
		if codec, err = media.Negotiate(offer, s.cfg.Codecs); err == nil {
			return offer, codec, true
		}
	}
	respond(tx, req, 488, "Not Acceptable Here", warning(s.host, err))
	return media.SessionDesc{}, 0, false
}

// warning carries the reason of a refusal in a Warning header (RFC 3261 §20.43).
func warning(host string, err error) sipmsg.Header {
	text := strings.ReplaceAll(err.Error(), `"`, "'")
	return sipmsg.NewHeader("Warning", fmt.Sprintf(`399 %s "%s"`, host, text))
}

// busy tells whether the agent at ext is on a call, phone or live (a transfer target too).
func (s *Server) busy(ext string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.agents[ext]) > 0 || s.onLiveCall(ext)
}

// bridgeInbound rings the agent for a customer (or colleague) who called in.
func (s *Server) bridgeInbound(req *sipmsg.Request, tx sipmsg.ServerTransaction, offer media.SessionDesc, codec media.Codec, agent store.User, cust calls.Customer) {
	contacts, secure := s.reg.contactsDTLS(agent.Ext)
	if len(contacts) == 0 {
		respond(tx, req, 480, "Temporarily Unavailable: agent not registered")
		return
	}
	from := &sipmsg.FromHeader{DisplayName: cust.Name, Address: sipmsg.Uri{Scheme: "sip", User: cust.Number, Host: s.contact.Address.Host}, Params: sipmsg.NewParams()}
	to := &sipmsg.ToHeader{DisplayName: agent.Name, Address: sipmsg.Uri{Scheme: "sip", User: agent.Ext, Host: s.contact.Address.Host}, Params: sipmsg.NewParams()}
	s.bridge(req, tx, offer, codec, "inbound", room.Customer, agent, cust, contacts, secure, from, to)
}

// bridgeOutbound sends an agent's call to the trunk.
func (s *Server) bridgeOutbound(req *sipmsg.Request, tx sipmsg.ServerTransaction, offer media.SessionDesc, codec media.Codec, agent store.User, number string) {
	if s.cfg.TrunkURI == "" {
		respond(tx, req, 503, "Service Unavailable: no trunk configured for outbound calls")
		return
	}
	var trunk sipmsg.Uri
	if err := sipmsg.ParseUri(s.cfg.TrunkURI, &trunk); err != nil {
		respond(tx, req, 500, "Server Internal Error: bad trunk URI")
		return
	}
	trunk.User = number
	from := &sipmsg.FromHeader{DisplayName: agent.Name, Address: sipmsg.Uri{Scheme: "sip", User: agent.Ext, Host: s.contact.Address.Host}, Params: sipmsg.NewParams()}
	to := &sipmsg.ToHeader{Address: sipmsg.Uri{Scheme: "sip", User: number, Host: trunk.Host, Port: trunk.Port}, Params: sipmsg.NewParams()}
	s.bridge(req, tx, offer, codec, "outbound", room.Agent, agent, calls.Customer{Number: number}, []sipmsg.Uri{trunk}, false, from, to)
}

// bridge is the B2BUA: the caller's dialog (we are UAS) and the callee's (we are UAC) meet
// in a new call's room. callerRole is the room role of whoever called us; secureCallee
// offers the callee DTLS-SRTP (every target registered for it).
func (s *Server) bridge(req *sipmsg.Request, tx sipmsg.ServerTransaction, offer media.SessionDesc, codec media.Codec,
	direction string, callerRole room.Role, agent store.User, cust calls.Customer, targets []sipmsg.Uri, secureCallee bool, from *sipmsg.FromHeader, to *sipmsg.ToHeader) {
	c, err := s.newCall(direction, agent, cust)
	switch {
	case errors.Is(err, errBusy):
		respond(tx, req, 486, "Busy Here")
		return
	case errors.Is(err, ErrShuttingDown):
		respond(tx, req, 503, "Service Unavailable: server shutting down")
		return
	case err != nil:
		s.log.Error("starting call", "err", err)
		respond(tx, req, 500, "Server Internal Error: can't write call history")
		return
	}
	fail := func(code int, reason string) {
		respond(tx, req, code, reason)
		s.endCall(c, reason)
	}
	// The call goes where its caller's address pairs with a shared socket.
	c.shard = s.ports.ShardFor(c.shard, offer.Addr)
	callerEP, err := s.openEndpoint(c, offer.Addr)
	if err != nil {
		fail(503, "Service Unavailable: "+err.Error())
		return
	}
	calleeEP, err := s.openEndpoint(c, netip.AddrPort{})
	if err != nil {
		callerEP.Close()
		fail(503, "Service Unavailable: "+err.Error())
		return
	}
	ds, err := s.dialog.ReadInvite(req, tx)
	if err != nil {
		callerEP.Close()
		calleeEP.Close()
		fail(400, "Bad Request: "+err.Error())
		return
	}
	_ = ds.Respond(100, "Trying", nil)
	calleeRole := room.Agent
	if callerRole == room.Agent {
		calleeRole = room.Customer
	}
	caller, callee := newLeg(c, callerRole, callerEP), newLeg(c, calleeRole, calleeEP)
	caller.server, caller.dialog = ds, ds.ID
	_ = s.acceptDTLS(caller, offer) // readOffer checked its fingerprint
	if secureCallee {
		s.offerDTLS(callee)
	}
	c.mu.Lock()
	if callerRole == room.Customer {
		c.customer, c.agent = caller, callee
	} else {
		c.customer, c.agent = callee, caller
	}
	c.mu.Unlock()
	s.index(caller)

	// Ring until the caller gives up or the call is ended (shutdown).
	ringCtx, stopRinging := context.WithCancel(ds.Context())
	defer stopRinging()
	defer context.AfterFunc(c.ctx, stopRinging)()
	// Offer the callee the caller's codec first so an unmonitored call relays untouched.
	codecs := append([]media.Codec{codec}, without(s.cfg.Codecs, codec)...)
	sdp := s.localSDP(callee, codecs, media.SendRecv)
	ringing := sync.OnceFunc(func() { caller.respond(180, "Ringing") })
	dc, answer, code, reason := s.dial(ringCtx, targets, sdp, from, to, ringing)
	switch {
	case c.ctx.Err() != nil: // ended meanwhile; endCall answered the caller
		if dc != nil {
			s.byeLate(dc)
		}
		<-c.ended
		return
	case dc == nil && ds.Context().Err() != nil:
		s.endCall(c, "caller hung up before answer")
		return
	case dc == nil:
		caller.respond(code, reason)
		s.endCall(c, reason)
		return
	}
	if err := errors.Join(s.startMedia(callee, answer, answer.Codecs[0], ""), s.startMedia(caller, offer, codec, "")); err != nil {
		c.log.Warn("media refused", "err", err)
		s.byeLate(dc)
		caller.respond(503, "Service Unavailable: "+err.Error())
		s.endCall(c, err.Error())
		return
	}
	s.relayDigits(caller)
	s.relayDigits(callee)
	c.mu.Lock()
	callee.client, callee.dialog = dc, dc.ID
	c.mu.Unlock()
	callee.answered.Store(true)
	s.index(callee)
	_ = c.room.Join(caller.media)
	_ = c.room.Join(callee.media)
	c.mu.Lock()
	c.snap.TargetDialog = targetDialog(c.agent)
	c.mu.Unlock()
	if !s.answered(c) {
		<-c.ended
		return
	}
	caller.answered.Store(true)
	caller.respMu.Lock() // a late 180 from another branch must not race the 200
	err = ds.RespondSDP(s.answerSDP(caller, []media.Codec{codec}, answerDirection(offer.Direction), offer))
	caller.respMu.Unlock()
	if err != nil {
		c.log.Warn("caller did not confirm the answer", "err", err)
		s.endCall(c, "caller did not acknowledge the answer")
		return
	}
	<-c.ended
}

func without(cs []media.Codec, c media.Codec) []media.Codec {
	var out []media.Codec
	for _, o := range cs {
		if o != c {
			out = append(out, o)
		}
	}
	return out
}

// targetDialog names the agent's dialog for Target-Dialog (RFC 4538), tags as the agent
// sees them.
func targetDialog(agent *leg) string {
	var callID, local, remote string
	switch {
	case agent.client != nil && agent.client.InviteResponse != nil:
		res := agent.client.InviteResponse
		callID = res.CallID().Value()
		local, _ = res.To().Params.Get("tag")
		remote, _ = res.From().Params.Get("tag")
	case agent.server != nil && agent.server.InviteResponse != nil:
		res := agent.server.InviteResponse
		callID = res.CallID().Value()
		local, _ = res.From().Params.Get("tag")
		remote, _ = res.To().Params.Get("tag")
	default:
		return ""
	}
	return fmt.Sprintf("%s;local-tag=%s;remote-tag=%s", callID, local, remote)
}

// dial calls every target at once and returns as soon as one answers; the rest are
// cancelled in the background (and hung up, should one answer anyway). It returns the
// answered dialog and its SDP, or nil with the status to give the caller.
func (s *Server) dial(ctx context.Context, targets []sipmsg.Uri, sdp []byte, from *sipmsg.FromHeader, to *sipmsg.ToHeader, ringing func()) (*sipgo.DialogClientSession, media.SessionDesc, int, string) {
	ctx, halt := context.WithCancelCause(ctx)
	unhook := context.AfterFunc(s.halt, func() { halt(context.Cause(s.halt)) })
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RingFor)
	type result struct {
		dc     *sipgo.DialogClientSession
		answer media.SessionDesc
		code   int
		reason string
	}
	results := make(chan result, len(targets))
	callID := sipmsg.CallIDHeader(uuid.NewString())
	from = sipmsg.HeaderClone(from).(*sipmsg.FromHeader)
	from.Params.Add("tag", sipmsg.GenerateTagN(16))
	// Each branch can be stopped on its own: one that never answered even provisionally
	// (a phone gone away) can't be CANCELled (RFC 3261 §9.1), so it is dropped at once
	// rather than left to time out.
	type branch struct {
		stop     context.CancelCauseFunc
		provoked atomic.Bool // a provisional response came back
	}
	branches := make([]*branch, len(targets))
	for i, target := range targets {
		b := &branch{}
		bctx, stop := context.WithCancelCause(ctx)
		b.stop, branches[i] = stop, b
		s.sessions.Add(1)
		go func() {
			defer s.sessions.Done()
			results <- s.ring(bctx, target, sdp, from, to, &callID, func(code int) {
				b.provoked.Store(true)
				if code != 100 {
					ringing()
				}
			})
		}()
	}
	stopBranches := func() {
		for _, b := range branches {
			if b.provoked.Load() {
				b.stop(context.Canceled)
			} else {
				b.stop(sipgo.WaitAnswerForceCancelErr)
			}
		}
	}
	var won *result
	var last result
	n := 0
	for ; n < len(targets) && won == nil; n++ {
		r := <-results
		switch {
		case r.dc != nil:
			won = &r
		case r.code >= 600: // decline everywhere (RFC 3261 §16.7)
			last = r
			stopBranches()
		default:
			last = r
		}
	}
	stopBranches() // stop ringing the others
	cancel()
	rest := len(targets) - n
	if rest == 0 {
		unhook()
	} else {
		s.sessions.Add(1)
		go func() {
			defer s.sessions.Done()
			defer unhook()
			for range rest {
				if r := <-results; r.dc != nil {
					s.byeLate(r.dc) // another phone already took the call
				}
			}
		}()
	}
	if won != nil {
		return won.dc, won.answer, 0, ""
	}
	if last.code == 0 {
		last.code, last.reason = 480, "Temporarily Unavailable"
	}
	return nil, media.SessionDesc{}, last.code, last.reason
}

// ring sends one INVITE and waits for its outcome.
func (s *Server) ring(ctx context.Context, target sipmsg.Uri, sdp []byte, from *sipmsg.FromHeader, to *sipmsg.ToHeader, callID *sipmsg.CallIDHeader, provisional func(code int)) (r struct {
	dc     *sipgo.DialogClientSession
	answer media.SessionDesc
	code   int
	reason string
}) {
	dc, err := s.dialog.Invite(ctx, target, sdp, sipmsg.HeaderClone(from), sipmsg.HeaderClone(to), callID, sipmsg.NewHeader("Content-Type", "application/sdp"))
	if err != nil {
		r.code, r.reason = 480, "Temporarily Unavailable: "+err.Error()
		return r
	}
	err = dc.WaitAnswer(ctx, sipgo.AnswerOptions{OnResponse: func(res *sipmsg.Response) error {
		if res.IsProvisional() {
			provisional(res.StatusCode)
		}
		return nil
	}})
	if err != nil {
		var de *sipgo.ErrDialogResponse
		switch {
		case errors.As(err, &de):
			r.code, r.reason = de.Res.StatusCode, de.Res.Reason
		case dc.InviteResponse != nil && dc.InviteResponse.IsSuccess():
			// Our CANCEL crossed the phone's 200: take the dialog down properly.
			id, _ := sipmsg.DialogIDFromResponse(dc.InviteResponse)
			dc.ID = id
			_ = dc.Ack(context.Background())
			s.byeLate(dc)
			r.code, r.reason = 487, "Request Terminated"
			return r
		case ctx.Err() == context.DeadlineExceeded:
			r.code, r.reason = 480, "Temporarily Unavailable: no answer"
		default:
			r.code, r.reason = 487, "Request Terminated"
		}
		dc.Close()
		return r
	}
	if err := dc.Ack(context.Background()); err != nil {
		dc.Close()
		r.code, r.reason = 500, "Server Internal Error: ACK failed"
		return r
	}
	answer, err := media.ParseSDP(dc.InviteResponse.Body())
	if err == nil && (len(answer.Codecs) == 0 || !containsCodec(s.cfg.Codecs, answer.Codecs[0])) {
		err = media.ErrNoCommonCodec
	}
	if err == nil && answer.DTLS != nil {
		_, err = dtlssrtp.ParseFingerprint(answer.DTLS.Fingerprint)
	}
	if err != nil {
		s.byeLate(dc)
		r.code, r.reason = 488, "Not Acceptable Here: the called phone answered with unusable SDP"
		return r
	}
	r.dc, r.answer = dc, answer
	return r
}

// byeLate hangs up a dialog nobody needs (answered too late, or for a call that ended).
func (s *Server) byeLate(dc *sipgo.DialogClientSession) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = dc.Bye(ctx)
	dc.Close()
}

func containsCodec(cs []media.Codec, c media.Codec) bool {
	for _, o := range cs {
		if o == c {
			return true
		}
	}
	return false
}

// reinvite handles hold, resume and address changes within a dialog.
func (s *Server) reinvite(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	l := s.legByRequest(req)
	var m *room.Leg
	var codec media.Codec
	if l != nil {
		l.call.mu.Lock()
		m, codec = l.media, l.codec
		l.call.mu.Unlock()
	}
	if m == nil {
		respond(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	dir := media.SendRecv
	answer := media.SessionDesc{DTMFType: DTMFPayloadType, LevelsID: l.ep.LevelsID()}
	if len(req.Body()) > 0 {
		offer, err := media.ParseSDP(req.Body())
		if err == nil && !containsCodec(offer.Codecs, codec) && offer.Direction != media.Inactive {
			err = fmt.Errorf("%w: the call runs on %s", media.ErrNoCommonCodec, codec)
		}
		if err != nil {
			respond(tx, req, 488, "Not Acceptable Here", warning(s.host, err))
			return
		}
		if offer.Addr.Port() != 0 && offer.Addr.Addr().IsValid() && !offer.Addr.Addr().IsUnspecified() {
			if err := l.ep.Configure(offer.Addr, codec, offer.DTMFType); err != nil {
				respond(tx, req, 488, "Not Acceptable Here", warning(s.host, err))
				return
			}
		}
		dir = answerDirection(offer.Direction)
		answer.DTMFType, answer.RTCPMux = offer.DTMFType, offer.RTCPMux
		l.sends.Store(offer.Direction == media.SendRecv)
	}
	m.Heard() // a phone that just re-INVITEd is alive, whatever its RTP did meanwhile
	receiving := dir == media.SendRecv || dir == media.SendOnly
	m.SetReceiving(receiving)
	res := sipmsg.NewResponseFromRequest(req, 200, "OK", s.answerSDP(l, []media.Codec{codec}, dir, answer))
	res.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
	res.AppendHeader(s.contact.Clone())
	_ = tx.Respond(res)
	if l.role != room.Supervisor {
		s.setHeld(l.call, !receiving)
	}
}

func (s *Server) onBye(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	l := s.legByRequest(req)
	if l == nil {
		respond(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	var err error
	if l.server != nil {
		err = l.server.ReadBye(req, tx)
	} else {
		err = l.client.ReadBye(req, tx)
	}
	if err != nil {
		respond(tx, req, 200, "OK")
	}
	l.left()
	if l.role == room.Supervisor {
		s.endMonitor(l, "supervisor left")
		return
	}
	c := l.call
	c.mu.Lock()
	keep := c.transferring && l == c.agent || l != c.agent && l != c.customer
	c.mu.Unlock()
	if keep {
		// The transferor hung up (or a replaced leg said goodbye): the customer stays.
		s.forget(l)
		return
	}
	s.endCall(c, l.role.String()+" hung up")
}

func (s *Server) onInfo(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	l := s.legByRequest(req)
	if l == nil {
		respond(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	ct := ""
	if h := req.ContentType(); h != nil {
		ct = h.Value()
	}
	if !strings.HasPrefix(strings.ToLower(ct), "application/dtmf") {
		respond(tx, req, 415, "Unsupported Media Type", sipmsg.NewHeader("Accept", "application/dtmf-relay, application/dtmf"))
		return
	}
	d, err := media.ParseDTMFRelay(ct, req.Body())
	if err != nil {
		respond(tx, req, 400, "Bad Request: "+err.Error())
		return
	}
	respond(tx, req, 200, "OK")
	if l.role != room.Supervisor {
		s.relayDTMF(l, d)
		return
	}
	if m, ok := room.ModeForDigit(d); ok {
		s.setMode(l, m)
	}
}

// monitorInvite puts a supervisor into an agent's call.
func (s *Server) monitorInvite(req *sipmsg.Request, tx sipmsg.ServerTransaction, mode room.Mode, ext string) {
	user, ok := s.authenticate(req, tx)
	if !ok {
		return
	}
	if lc, ok := s.liveCall(ext); ok {
		// The reason phrase is the sentence itself: phones show it as the call's outcome.
		if err := calls.CanMonitor(user, lc); errors.Is(err, calls.ErrLiveCall) {
			respond(tx, req, 403, err.Error())
		} else {
			respond(tx, req, 403, "Forbidden: "+err.Error())
		}
		return
	}
	td := req.GetHeader("Target-Dialog")
	c := s.findCall(ext, td)
	switch {
	case c == nil && td != nil:
		respond(tx, req, 481, "Call/Transaction Does Not Exist: Target-Dialog names no call of agent "+ext)
		return
	case c == nil:
		respond(tx, req, 404, fmt.Sprintf("Not Found: agent %s is not on a call", ext))
		return
	}
	snap := c.snapshot()
	if err := calls.CanMonitor(user, snap); err != nil {
		respond(tx, req, 403, "Forbidden: "+err.Error())
		return
	}
	if snap.State == calls.StateRinging {
		respond(tx, req, 480, "Temporarily Unavailable: the call is not answered yet")
		return
	}
	offer, codec, ok := s.readOffer(req, tx)
	if !ok {
		return
	}
	ep, err := s.openEndpoint(c, offer.Addr)
	if err != nil {
		respond(tx, req, 503, "Service Unavailable: "+err.Error())
		return
	}
	ds, err := s.dialog.ReadInvite(req, tx)
	if err != nil {
		ep.Close()
		respond(tx, req, 400, "Bad Request: "+err.Error())
		return
	}
	l := newLeg(c, room.Supervisor, ep)
	l.server, l.dialog, l.user = ds, ds.ID, user
	_ = s.acceptDTLS(l, offer) // readOffer checked its fingerprint
	if err := s.startMedia(l, offer, codec, mode); err != nil {
		ep.Close()
		_ = ds.Respond(503, "Service Unavailable: "+err.Error(), nil)
		return
	}
	l.ep.SetLevelsID(offer.LevelsID)
	l.ep.OnDTMF(func(d rune) {
		// The room switches at once; history and events follow off the RTP reader.
		if mode, ok := room.ModeForDigit(d); ok {
			if m, changed := s.applyMode(l, mode); changed {
				s.later(func() { s.recordMode(c, m) })
			}
		}
	})
	m := &calls.Monitor{ID: uuid.NewString(), CallID: c.id, User: user.Name, Ext: user.Ext, Mode: mode, Since: time.Now().UTC()}
	ctx, cancel := storeCtx()
	err = s.cfg.Store.MonitorStarted(ctx, store.MonitorRecord{ID: m.ID, CallID: c.id, UserName: user.Name, UserExt: user.Ext, StartedAt: m.Since,
		Modes: []store.ModeChange{{Mode: string(mode), At: m.Since}}})
	cancel()
	if err != nil {
		l.release()
		_ = ds.Respond(500, "Server Internal Error: can't write history", nil)
		return
	}
	// Join, or learn the call ended, in one step with endCall's view of the supervisors.
	c.mu.Lock()
	if c.snap.State == calls.StateEnded {
		c.mu.Unlock()
		l.release()
		ctx, cancel := storeCtx()
		_ = s.cfg.Store.MonitorEnded(ctx, m.ID, time.Now().UTC(), "the call ended")
		cancel()
		_ = ds.Respond(481, "Call/Transaction Does Not Exist: the call has ended", nil)
		return
	}
	l.monitor = m
	c.supervisors = append(c.supervisors, l)
	l.answered.Store(true)
	s.mu.Lock()
	s.monitors[m.ID] = l
	s.legs[l.dialog] = l
	s.mu.Unlock()
	_ = c.room.Join(l.media)
	c.mu.Unlock()
	started := *m // events get a copy: the monitor changes under the call's lock
	s.publish(events.MonitorStarted, c, &started)
	c.log.Info("monitor started", "supervisor", user.Name, "mode", mode)

	if err := ds.RespondSDP(s.answerSDP(l, []media.Codec{codec}, answerDirection(offer.Direction), offer)); err != nil {
		s.endMonitor(l, "supervisor did not acknowledge the answer")
	} else if c.ctx.Err() != nil {
		// The call ended while we answered: our BYE may have gone before the dialog was up.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = ds.Bye(ctx)
		cancel()
	}
	select {
	case <-l.gone:
	case <-c.ended:
	}
}

// findCall picks the agent's call a monitor targets: the one named by Target-Dialog, else
// the newest.
func (s *Server) findCall(ext string, td sipmsg.Header) *call {
	s.mu.Lock()
	cs := append([]*call(nil), s.agents[ext]...)
	s.mu.Unlock()
	if len(cs) == 0 {
		return nil
	}
	if td == nil {
		return cs[len(cs)-1]
	}
	want, _, _ := strings.Cut(td.Value(), ";")
	want = strings.TrimSpace(want)
	for _, c := range cs {
		c.mu.Lock()
		got, _, _ := strings.Cut(c.snap.TargetDialog, ";")
		c.mu.Unlock()
		if got == want {
			return c
		}
	}
	return nil
}

// setMode switches a supervisor, records it and tells who may know.
func (s *Server) setMode(l *leg, mode room.Mode) {
	if m, ok := s.applyMode(l, mode); ok {
		s.recordMode(l.call, m)
	}
}

// applyMode switches the room; it reports the monitor as it now is, when it changed.
func (s *Server) applyMode(l *leg, mode room.Mode) (calls.Monitor, bool) {
	c := l.call
	c.mu.Lock()
	defer c.mu.Unlock()
	if l.monitor == nil || l.monitor.Mode == mode || c.snap.State == calls.StateEnded {
		return calls.Monitor{}, false
	}
	l.monitor.Mode = mode
	l.media.SetMode(mode)
	return *l.monitor, true
}

// recordMode writes a mode change to history and publishes it.
func (s *Server) recordMode(c *call, m calls.Monitor) {
	ctx, cancel := storeCtx()
	defer cancel()
	if err := s.cfg.Store.MonitorModeChanged(ctx, m.ID, string(m.Mode), time.Now().UTC()); err != nil {
		c.log.Error("writing monitor history", "err", err)
	}
	s.publish(events.MonitorUpdated, c, &m)
	c.log.Info("monitor mode", "supervisor", m.User, "mode", m.Mode)
}

// endMonitor takes a supervisor out of its call (BYE unless it left itself).
func (s *Server) endMonitor(l *leg, reason string) {
	c := l.call
	c.mu.Lock()
	m := l.monitor
	l.monitor = nil
	for i, o := range c.supervisors {
		if o == l {
			c.supervisors = append(c.supervisors[:i:i], c.supervisors[i+1:]...)
			break
		}
	}
	c.mu.Unlock()
	s.hangup(l)
	if m == nil {
		return
	}
	s.mu.Lock()
	delete(s.monitors, m.ID)
	delete(s.legs, l.dialog)
	s.mu.Unlock()
	ctx, cancel := storeCtx()
	defer cancel()
	if err := s.cfg.Store.MonitorEnded(ctx, m.ID, time.Now().UTC(), reason); err != nil {
		c.log.Error("writing monitor history", "err", err)
	}
	s.publish(events.MonitorEnded, c, m)
	c.log.Info("monitor ended", "supervisor", m.User, "reason", reason)
}

// relayDigits passes the digits a customer or agent presses (an IVR, an account number) on
// to the other side, as RFC 4733 events on our stream to it.
func (s *Server) relayDigits(l *leg) {
	l.ep.OnDTMF(func(d rune) { s.relayDTMF(l, d) })
}

func (s *Server) relayDTMF(from *leg, d rune) {
	c := from.call
	c.mu.Lock()
	to := c.agent
	if from == c.agent {
		to = c.customer
	} else if from != c.customer {
		to = nil
	}
	c.mu.Unlock()
	if to != nil && to.ep != nil && !to.ep.SendDTMF(d) {
		c.log.Debug("digit not relayed: the other side did not negotiate telephone-event", "digit", string(d))
	}
}
