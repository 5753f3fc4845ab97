package sip

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"ringside/media"
	"ringside/server/calls"
	"ringside/server/events"
	"ringside/server/room"
	"ringside/server/store"
)

// onRefer is a blind transfer (RFC 3515) asked by the agent: the customer stays on its leg
// and stream, a new agent leg rings, and once it answers it takes the old agent's place in
// the room (supervisors keep monitoring). The old agent hears how it went by NOTIFY.
func (s *Server) onRefer(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	l := s.legByRequest(req)
	if l == nil {
		respond(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	if l.role != room.Agent {
		respond(tx, req, 403, "Forbidden: only the agent can transfer a call")
		return
	}
	h := req.GetHeader("Refer-To")
	if h == nil {
		respond(tx, req, 400, "Bad Request: Refer-To missing")
		return
	}
	var to sipmsg.Uri
	if err := sipmsg.ParseUri(strings.Trim(strings.TrimSpace(h.Value()), "<>"), &to); err != nil || to.User == "" {
		respond(tx, req, 400, "Bad Request: Refer-To must name a number or extension")
		return
	}
	c := l.call
	c.mu.Lock()
	busy := c.transferring || c.snap.State == calls.StateEnded || c.snap.State == calls.StateRinging
	if !busy {
		c.transferring = true
	}
	c.mu.Unlock()
	if busy {
		respond(tx, req, 491, "Request Pending: the call can't be transferred now")
		return
	}
	respond(tx, req, 202, "Accepted")
	s.handlers.Add(1)
	go func() {
		defer s.handlers.Done()
		code, reason := s.transfer(c, l, userPart(to))
		s.notifyRefer(l, code, reason)
		c.mu.Lock()
		c.transferring = false
		old := c.agent
		c.mu.Unlock()
		switch {
		case code == 200:
			c.log.Info("transferred", "to", userPart(to))
			s.hangup(l) // the transferor is done
			s.forget(l)
		case old == l && !isGone(l):
			c.log.Info("transfer failed; the customer stays with the agent", "code", code)
		default:
			s.endCall(c, "transfer failed: "+reason)
		}
	}()
}

func isGone(l *leg) bool {
	select {
	case <-l.gone:
		return true
	default:
		return false
	}
}

// transfer rings target and, once it answers, swaps it in as the call's agent.
func (s *Server) transfer(c *call, old *leg, target string) (int, string) {
	ctx, cancel := storeCtx()
	agent, err := s.cfg.Store.UserByExt(ctx, target)
	cancel()
	var targets []sipmsg.Uri
	host := s.contact.Address.Host
	switch {
	case err == nil:
		targets = s.reg.contacts(agent.Ext)
		if len(targets) == 0 {
			return 480, "Temporarily Unavailable: agent not registered"
		}
		if s.busy(agent.Ext) {
			return 486, "Busy Here"
		}
	case s.cfg.TrunkURI != "":
		var trunk sipmsg.Uri
		if err := sipmsg.ParseUri(s.cfg.TrunkURI, &trunk); err != nil {
			return 500, "Server Internal Error: bad trunk URI"
		}
		trunk.User = target
		targets = []sipmsg.Uri{trunk}
		agent = store.User{Name: target}
	default:
		return 404, "Not Found: no such extension"
	}
	ep, err := s.openEndpoint(c, netip.AddrPort{})
	if err != nil {
		return 503, "Service Unavailable: " + err.Error()
	}
	nl := newLeg(c, room.Agent, ep)
	if _, secure := s.reg.contactsDTLS(agent.Ext); secure { // a trunk target has no bindings: plain
		s.offerDTLS(nl)
	}
	snap := c.snapshot()
	from := &sipmsg.FromHeader{DisplayName: snap.Customer.Name, Address: sipmsg.Uri{Scheme: "sip", User: snap.Customer.Number, Host: host}, Params: sipmsg.NewParams()}
	to := &sipmsg.ToHeader{DisplayName: agent.Name, Address: sipmsg.Uri{Scheme: "sip", User: target, Host: host}, Params: sipmsg.NewParams()}
	c.mu.Lock()
	cust := c.customer
	c.mu.Unlock()
	codecs := append([]media.Codec{cust.codec}, without(s.cfg.Codecs, cust.codec)...)
	callCtx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		select {
		case <-c.ended:
			stop()
		case <-callCtx.Done():
		}
	}()
	dc, answer, code, reason := s.dial(callCtx, targets, s.localSDP(nl, codecs, media.SendRecv), from, to, func() {})
	if dc == nil {
		ep.Close()
		return code, reason
	}
	nl.client, nl.dialog = dc, dc.ID
	nl.answered.Store(true)
	if err := s.startMedia(nl, answer, answer.Codecs[0], ""); err != nil {
		s.byeLate(dc)
		ep.Close()
		return 503, "Service Unavailable: " + err.Error()
	}
	s.relayDigits(nl)

	c.mu.Lock()
	if c.snap.State == calls.StateEnded {
		c.mu.Unlock()
		s.hangup(nl)
		return 487, "Request Terminated: the call ended"
	}
	prev := c.agent
	c.agent = nl
	oldExt := c.snap.Agent.Ext
	c.snap.Agent = calls.Party{Name: agent.Name, Ext: agent.Ext, Teams: agent.Teams}
	c.snap.TargetDialog = targetDialog(nl)
	c.mu.Unlock()
	if prev != nil {
		c.room.Leave(prev.media)
	}
	_ = c.room.Join(nl.media)
	s.index(nl)
	s.mu.Lock()
	s.agents[oldExt] = deleteCall(s.agents[oldExt], c)
	if len(s.agents[oldExt]) == 0 {
		delete(s.agents, oldExt)
	}
	if agent.Ext != "" {
		s.agents[agent.Ext] = append(s.agents[agent.Ext], c)
	}
	s.mu.Unlock()
	wctx, wcancel := storeCtx()
	defer wcancel()
	if err := s.cfg.Store.CallUpdated(wctx, c.record()); err != nil {
		c.log.Error("writing call history", "err", err)
	}
	s.publish(events.CallUpdated, c, nil)
	return 200, "OK"
}

func deleteCall(cs []*call, c *call) []*call {
	out := cs[:0]
	for _, o := range cs {
		if o != c {
			out = append(out, o)
		}
	}
	return out
}

// notifyRefer tells the transferor how the transfer went (RFC 3515 §2.4.5).
func (s *Server) notifyRefer(l *leg, code int, reason string) {
	if isGone(l) {
		return
	}
	req := sipmsg.NewRequest(sipmsg.NOTIFY, l.remoteTarget())
	req.AppendHeader(sipmsg.NewHeader("Event", "refer"))
	req.AppendHeader(sipmsg.NewHeader("Subscription-State", "terminated;reason=noresource"))
	req.AppendHeader(sipmsg.NewHeader("Content-Type", "message/sipfrag;version=2.0"))
	req.AppendHeader(s.contact.Clone())
	if i := strings.Index(reason, ":"); i > 0 {
		reason = reason[:i]
	}
	req.SetBody([]byte(fmt.Sprintf("SIP/2.0 %d %s\r\n", code, reason)))
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	var err error
	switch {
	case l.client != nil:
		_, err = l.client.Do(ctx, req)
	case l.server != nil:
		_, err = l.server.Do(ctx, req)
	}
	if err != nil {
		s.log.Debug("refer notify", "err", err)
	}
}

// remoteTarget is where in-dialog requests to the leg go: its Contact.
func (l *leg) remoteTarget() sipmsg.Uri {
	switch {
	case l.client != nil && l.client.InviteResponse != nil && l.client.InviteResponse.Contact() != nil:
		return *l.client.InviteResponse.Contact().Address.Clone()
	case l.server != nil && l.server.InviteRequest.Contact() != nil:
		return *l.server.InviteRequest.Contact().Address.Clone()
	}
	return sipmsg.Uri{}
}
