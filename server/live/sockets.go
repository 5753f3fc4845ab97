package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/coder/websocket"

	"ringside/server/store"
)

// open registers a socket for Shutdown before the handshake, so that whatever the handler
// sets up next (an agent's softphone taking calls) is in place by the time the far end
// learns the socket is open; messages sent meanwhile wait in the queue. The handler must
// call upgrade, and release when done.
func (s *Server) open(w http.ResponseWriter) (*socket, bool) {
	so := newSocket(nil)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		writeError(w, http.StatusServiceUnavailable, errShuttingDown.Error())
		return nil, false
	}
	s.sockets[so] = struct{}{}
	s.wg.Add(1) // the handler
	return so, true
}

// upgrade does the WebSocket handshake and starts the socket's writer.
func (s *Server) upgrade(so *socket, w http.ResponseWriter, r *http.Request) bool {
	ws, err := websocket.Accept(w, r, nil) // same origin only for browsers: the page is served from here
	if err != nil {
		return false // Accept has answered
	}
	ws.SetReadLimit(maxDrained)
	so.ws = ws
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		so.write()
	}()
	return true
}

func (s *Server) release(so *socket) {
	so.close(statusNormal, "")
	s.mu.Lock()
	delete(s.sockets, so)
	s.mu.Unlock()
	s.wg.Done()
}

// serveVisitor is GET /live/{ext}/ws: the visitor's page starts, signals and ends one call.
func (s *Server) serveVisitor(w http.ResponseWriter, r *http.Request) {
	ext := r.PathValue("ext")
	ip := visitorAddress(r)
	so, ok := s.open(w)
	if !ok {
		return
	}
	defer s.release(so)
	s.mu.Lock()
	over := s.visitors[ip] >= s.cfg.VisitorsPerIP
	if !over {
		s.visitors[ip]++
		defer func() {
			s.mu.Lock()
			if s.visitors[ip]--; s.visitors[ip] <= 0 {
				delete(s.visitors, ip)
			}
			s.mu.Unlock()
		}()
	}
	s.mu.Unlock()
	if !s.upgrade(so, w, r) {
		return
	}
	if over {
		so.send(errorOf("", "too many calls from your address; hang up another call and try again"))
		return
	}
	ctx, cancel := storeCtx()
	agent, err := s.cfg.Store.UserByExt(ctx, ext)
	cancel()
	switch {
	case errors.Is(err, store.ErrNotFound):
		so.send(errorOf("", fmt.Sprintf("there is no agent at extension %s; check the link", ext)))
		return
	case err != nil:
		s.log.Error("live call: reading agent", "ext", ext, "err", err)
		so.send(errorOf("", "the server could not look up the agent; try again in a moment"))
		return
	}

	// A socket that never offers would hold one of its address's places for good.
	var offered atomic.Bool
	idle := time.AfterFunc(s.cfg.OfferWait, func() {
		if !offered.Load() {
			so.send(errorOf("", "no call was started in time; press Call again"))
			so.close(statusNormal, "no offer")
		}
	})
	defer idle.Stop()

	var c *call
	for {
		b, err := so.read(context.Background())
		if errors.Is(err, errTooBig) || errors.Is(err, errNotText) {
			so.send(errorOf("", err.Error()))
			continue
		}
		if err != nil {
			break // the socket is gone
		}
		m, err := parse(b)
		if err != nil {
			so.send(errorOf("", err.Error()))
			continue
		}
		switch m.Type {
		case "offer":
			switch {
			case c != nil:
				so.send(errorOf("", "this call has started already; send one offer per call"))
				continue
			case strings.TrimSpace(m.SDP) == "":
				so.send(errorOf("", `the offer has no "sdp"`))
				continue
			case !strings.HasPrefix(m.SDP, "v=0") || !strings.Contains(m.SDP, "m=audio "):
				// Not parsed, only recognised: junk must not ring an agent (and make it
				// busy for phone customers) on an anonymous socket.
				so.send(errorOf("", "the offer is not an SDP offer with audio"))
				continue
			}
			offered.Store(true)
			c, err = s.ring(so, agent, m.SDP, visitorName(m.Name))
			if err != nil {
				so.send(errorOf("", err.Error()))
				return
			}
		case "candidate":
			switch {
			case c == nil:
				so.send(errorOf("", "send the offer before candidates"))
			case len(m.Candidate) == 0:
				so.send(errorOf("", `the message has no "candidate"`))
			case len(m.Candidate) > maxCandidateBytes:
				so.send(errorOf("", "a candidate is at most 2 KiB; this one was dropped"))
			default:
				if err := s.visitorCandidate(c, m.Candidate); err != nil {
					so.send(errorOf("", err.Error()))
				}
			}
		case "hangup":
			if c != nil {
				s.end(c, "visitor hung up", so)
			}
			return
		default:
			so.send(errorOf("", fmt.Sprintf("unknown message type %q; the page sends offer, candidate or hangup", m.Type)))
		}
	}
	if c != nil {
		s.end(c, "visitor left", so)
	}
}

// visitorName is the name a visitor typed, cleaned for the agent's screen and history.
func visitorName(name string) string {
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return -1
		}
		return r
	}, name)
	name = strings.Join(strings.Fields(name), " ")
	if r := []rune(name); len(r) > 60 {
		name = string(r[:60])
	}
	if name == "" {
		return DefaultVisitorName
	}
	return name
}

// serveAgent is GET /api/live/agent: a logged-in softphone's socket, kept open to be
// offered live calls.
func (s *Server) serveAgent(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Authenticate == nil {
		writeError(w, http.StatusServiceUnavailable, "live calls are not set up on this server")
		return
	}
	u, ok := s.cfg.Authenticate(w, r)
	if !ok {
		return
	}
	if !u.Can(store.PermCall) {
		writeError(w, http.StatusForbidden, "you don't have permission to take calls; ask an admin")
		return
	}
	so, ok := s.open(w)
	if !ok {
		return
	}
	defer s.release(so)
	s.mu.Lock()
	s.agents[u.Ext] = append(s.agents[u.Ext], so)
	ringing := s.byExt[u.Ext]
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.agents[u.Ext] = slices.DeleteFunc(s.agents[u.Ext], func(o *socket) bool { return o == so })
		if len(s.agents[u.Ext]) == 0 {
			delete(s.agents, u.Ext)
		}
		c := s.byExt[u.Ext]
		s.mu.Unlock()
		if c != nil {
			s.agentGone(c, so)
		}
		s.log.Info("agent softphone disconnected", "agent", u.Ext)
	}()
	if !s.upgrade(so, w, r) {
		return
	}
	s.log.Info("agent softphone connected", "agent", u.Ext)
	if ringing != nil { // a call rang before this softphone connected: ring here too
		ringing.turn.Lock()
		ringing.offerTo(so)
		ringing.turn.Unlock()
	}
	if s.track() {
		go func() {
			defer s.wg.Done()
			so.ping(s.cfg.PingEvery, s.stillAgent(r.Clone(context.Background()), u))
		}()
	}

	for {
		b, err := so.read(context.Background())
		if errors.Is(err, errTooBig) || errors.Is(err, errNotText) {
			so.send(errorOf("", err.Error()))
			continue
		}
		if err != nil {
			return
		}
		m, err := parse(b)
		if err != nil {
			so.send(errorOf("", err.Error()))
			continue
		}
		if err := s.agentMessage(so, u, m); err != nil {
			so.send(errorOf(m.CallID, err.Error()))
		}
	}
}

// agentMessage acts on one message of an agent's softphone.
func (s *Server) agentMessage(so *socket, u store.User, m message) error {
	switch m.Type {
	case "answer", "candidate", "decline", "hangup":
	case "offer":
		return errors.New("a softphone can't start a live call; it answers the visitor's offer")
	default:
		return fmt.Errorf("unknown message type %q; a softphone sends answer, candidate, decline or hangup", m.Type)
	}
	if m.CallID == "" {
		return errors.New(`the message has no "call_id"`)
	}
	s.mu.Lock()
	c := s.calls[m.CallID]
	s.mu.Unlock()
	if c == nil || c.ext != u.Ext {
		return errors.New("no such call of yours; it may have ended")
	}
	switch m.Type {
	case "answer":
		if strings.TrimSpace(m.SDP) == "" {
			return errors.New(`the answer has no "sdp"`)
		}
		return s.answer(c, so, m.SDP)
	case "candidate":
		if len(m.Candidate) == 0 {
			return errors.New(`the message has no "candidate"`)
		}
		return s.agentCandidate(c, so, m.Candidate)
	case "decline":
		return s.agentHangup(c, so, true)
	default:
		return s.agentHangup(c, so, false)
	}
}

// writeError answers a plain HTTP request the way the API does.
func writeError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// stillAgent is the check an agent socket repeats at every ping: the login behind it
// still holds (not signed out or expired), and the user still has this extension and may
// take calls. An admin's change then reaches a softphone that stays connected.
func (s *Server) stillAgent(r *http.Request, u store.User) func() error {
	if s.cfg.Recheck == nil {
		return nil
	}
	return func() error {
		now, err := s.cfg.Recheck(r)
		switch {
		case err != nil:
			return fmt.Errorf("your login has ended (%v); sign in again to take live calls", err)
		case now.Ext != u.Ext || !now.Can(store.PermCall):
			return errors.New("your extension or permissions changed; sign in again to take live calls")
		}
		return nil
	}
}
