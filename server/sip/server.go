// Package sip turns SIP into calls and legs: the registrar, the B2BUA that anchors every
// phone call in a room, and the monitor sessions reached by feature codes (*1, *2, *3).
package sip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"ringside/media"
	"ringside/server/events"
	"ringside/server/room"
	"ringside/server/sip/digest"
	"ringside/server/store"
	"ringside/server/transport"
)

// Config of the SIP side; zero values take DefaultConfig's.
type Config struct {
	MediaIP  netip.Addr // RTP sockets bind here
	PublicIP netip.Addr // advertised in SDP and Contact when set (else MediaIP / the SIP address)
	RTPMin   uint16     // 0: any free port
	RTPMax   uint16     //
	// RTPMux puts legs on a few shared sockets (RTPMuxSockets per clock shard) instead of
	// a socket each: each shard's tick drains them with a recvmmsg apiece and sends what
	// it wrote with a sendmmsg apiece, instead of a receive and a send per leg. Legs are
	// told apart by the peer address their SDP gave.
	RTPMux bool
	// RTPMuxSockets is the shared sockets per clock shard (default 8). A peer socket can
	// carry one leg per shared socket, so more sockets suit peers that pack legs onto few.
	RTPMuxSockets int
	TrunkAllow    []netip.Prefix // sources whose INVITEs are customer calls without auth
	TrunkURI      string         // sip:HOST:PORT where agents' outbound calls go
	DeadAfter     time.Duration  // a leg silent this long is dead (default 30 s)
	RingFor       time.Duration  // how long an agent's phone rings before the customer hears 480 (default 60 s)
	Node          string         // this server's name in call records
	Codecs        []media.Codec  // offered and accepted, in preference order
	// DigestAlgorithms offered in challenges ("MD5", "SHA-256"); default MD5 only, which
	// every phone in service understands. Both are always accepted.
	DigestAlgorithms []string

	Store  store.Store
	Events events.Publisher
	Clock  *room.Clock
	Logger *slog.Logger
	// OnAuthFailure, when set, is told of each request refused for bad credentials or
	// too many failed attempts (metrics); method is the SIP method.
	OnAuthFailure func(method string)
	// Live, when set, tells of agents on live calls: busy for customers, not monitorable.
	Live LiveCalls
}

// DefaultConfig is the configuration of a single box on loopback.
func DefaultConfig() Config {
	return Config{
		MediaIP:    netip.MustParseAddr("127.0.0.1"),
		TrunkAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		DeadAfter:  30 * time.Second,
		RingFor:    60 * time.Second,
		Node:       "local",
		Codecs:     []media.Codec{media.PCMU, media.PCMA},
	}
}

// DTMFPayloadType is the telephone-event payload type we offer.
const DTMFPayloadType = 101

// ErrShuttingDown refuses new calls during shutdown.
var ErrShuttingDown = errors.New("server is shutting down")

// Server is the SIP side of ringside-media.
type Server struct {
	cfg    Config
	log    *slog.Logger
	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	client *sipgo.Client
	dialog *sipgo.DialogUA
	auth   *digest.Authenticator
	ports  *transport.Ports
	reg    *registrar

	conn    net.PacketConn
	host    string // our SIP host:port as others reach it
	contact sipmsg.ContactHeader

	mu       sync.Mutex
	calls    map[string]*call   // by call id
	legs     map[string]*leg    // by SIP dialog id, for in-dialog requests
	monitors map[string]*leg    // supervisor legs by monitor id
	agents   map[string][]*call // agent ext → its active calls
	stats    stats              // for MediaStats

	closing  atomic.Bool
	handlers sync.WaitGroup // INVITE handlers in flight; Shutdown waits for them
	sessions sync.WaitGroup // call and leg goroutines
	stop     chan struct{}
	stopOnce sync.Once
	chores   chan func() // history writes and events taken off the RTP readers, in order
	// halt ends outgoing INVITEs at shutdown without waiting for their transactions to
	// time out (a phone that never answered would hold shutdown for Timer B, 32 s).
	halt    context.Context
	haltNow context.CancelCauseFunc
}

// New builds the server; Serve starts it on a socket.
func New(cfg Config) (*Server, error) {
	def := DefaultConfig()
	if !cfg.MediaIP.IsValid() {
		cfg.MediaIP = def.MediaIP
	}
	if cfg.DeadAfter <= 0 {
		cfg.DeadAfter = def.DeadAfter
	}
	if cfg.RingFor <= 0 {
		cfg.RingFor = def.RingFor
	}
	if cfg.Node == "" {
		cfg.Node = def.Node
	}
	if len(cfg.Codecs) == 0 {
		cfg.Codecs = def.Codecs
	}
	if cfg.Store == nil || cfg.Events == nil || cfg.Clock == nil {
		return nil, errors.New("sip: Store, Events and Clock are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		auth:     digest.New(digest.Config{Realm: store.Realm, Algorithms: cfg.DigestAlgorithms}),
		ports:    transport.NewPorts(cfg.MediaIP, cfg.RTPMin, cfg.RTPMax),
		reg:      newRegistrar(),
		calls:    make(map[string]*call),
		legs:     make(map[string]*leg),
		monitors: make(map[string]*leg),
		agents:   make(map[string][]*call),
		stop:     make(chan struct{}),
		chores:   make(chan func(), 1024),
	}
	s.halt, s.haltNow = context.WithCancelCause(context.Background())
	if cfg.RTPMux {
		if err := s.ports.EnableMux(transport.MuxConfig{Shards: cfg.Clock.Shards(), PerShard: cfg.RTPMuxSockets}); err != nil {
			return nil, fmt.Errorf("sip: shared RTP sockets: %w", err)
		}
		for i := range cfg.Clock.Shards() {
			cfg.Clock.AttachIO(i, s.ports.Shard(i))
		}
	}
	return s, nil
}

// Serve answers SIP on conn until ctx ends or Shutdown. It returns once the socket is
// being served; call Shutdown to end calls and stop.
func (s *Server) Serve(ctx context.Context, conn net.PacketConn) error {
	local, ok := conn.LocalAddr().(*net.UDPAddr)
	if !ok {
		return fmt.Errorf("sip: need a UDP socket, got %T", conn.LocalAddr())
	}
	ip := local.IP.String()
	if s.cfg.PublicIP.IsValid() {
		ip = s.cfg.PublicIP.String()
	}
	s.conn = conn
	s.host = net.JoinHostPort(ip, strconv.Itoa(local.Port))
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("ringside-media"), sipgo.WithUserAgentHostname(ip))
	if err != nil {
		return err
	}
	s.ua = ua
	if s.srv, err = sipgo.NewServer(ua, sipgo.WithServerLogger(s.log)); err != nil {
		return err
	}
	s.client, err = sipgo.NewClient(ua, sipgo.WithClientHostname(ip), sipgo.WithClientConnectionAddr(local.String()), sipgo.WithClientLogger(s.log))
	if err != nil {
		return err
	}
	s.contact = sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", Host: ip, Port: local.Port}}
	s.dialog = &sipgo.DialogUA{Client: s.client, ContactHDR: s.contact}

	s.srv.OnRegister(s.guard(s.onRegister))
	s.srv.OnInvite(s.guard(s.onInvite))
	s.srv.OnAck(s.onAck)
	s.srv.OnBye(s.guard(s.onBye))
	s.srv.OnInfo(s.guard(s.onInfo))
	s.srv.OnOptions(s.guard(s.onOptions))
	s.srv.OnRefer(s.guard(s.onRefer))
	s.srv.OnCancel(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		// CANCELs that match an INVITE are taken by the transaction layer.
		respond(tx, req, 481, "Call/Transaction Does Not Exist")
	})
	s.srv.OnNoRoute(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		if refuseMalformed(req, tx) {
			return
		}
		respond(tx, req, 405, "Method Not Allowed")
	})

	go func() {
		if err := s.srv.ServeUDP(conn); err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Error("sip socket stopped", "err", err)
		}
	}()
	s.sessions.Add(2)
	go func() {
		defer s.sessions.Done()
		s.watch(ctx)
	}()
	go func() {
		defer s.sessions.Done()
		s.doChores()
	}()
	return nil
}

// later runs f on the chores goroutine, in order; inline when the queue is full.
func (s *Server) later(f func()) {
	select {
	case s.chores <- f:
	default:
		f()
	}
}

func (s *Server) doChores() {
	for {
		select {
		case f := <-s.chores:
			f()
		case <-s.stop:
			for {
				select {
				case f := <-s.chores:
					f()
				default:
					return
				}
			}
		}
	}
}

// Host is the SIP address (host:port) others use to reach us.
func (s *Server) Host() string { return s.host }

// guard recovers a handler's panic into a 500, so one bad message never takes the
// server down, and counts INVITE handlers for shutdown.
func (s *Server) guard(h func(*sipmsg.Request, sipmsg.ServerTransaction)) sipgo.RequestHandler {
	return func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("sip handler panic", "method", req.Method, "panic", r)
				respond(tx, req, 500, "Server Internal Error")
			}
		}()
		if refuseMalformed(req, tx) {
			return
		}
		h(req, tx)
	}
}

func respond(tx sipmsg.ServerTransaction, req *sipmsg.Request, code int, reason string, headers ...sipmsg.Header) {
	res := sipmsg.NewResponseFromRequest(req, code, reason, nil)
	for _, h := range headers {
		res.AppendHeader(h)
	}
	_ = tx.Respond(res)
}

func (s *Server) onOptions(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	respond(tx, req, 200, "OK", sipmsg.NewHeader("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, REGISTER, REFER"))
}

func (s *Server) onAck(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if l := s.legByRequest(req); l != nil && l.server != nil {
		_ = l.server.ReadAck(req, tx)
	}
}

// source is the IP a request came from.
func source(req *sipmsg.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// authenticate checks the request's digest. On failure it has answered and returns "".
func (s *Server) authenticate(req *sipmsg.Request, tx sipmsg.ServerTransaction) (store.User, bool) {
	src := source(req)
	if s.auth.Blocked(src) {
		s.refuseRateLimited(tx, req)
		return store.User{}, false
	}
	var hdr string
	if h := req.GetHeader("Authorization"); h != nil {
		hdr = h.Value()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var user store.User
	ext, err := s.auth.Verify(digest.Request{Method: string(req.Method), Authorization: hdr, Source: src},
		func(ext string) (digest.Credentials, bool) {
			u, err := s.cfg.Store.UserByExt(ctx, ext)
			if err != nil {
				return digest.Credentials{}, false
			}
			user = u
			return digest.Credentials{HA1MD5: u.HA1MD5, HA1SHA256: u.HA1SHA256}, true
		})
	switch {
	case err == nil && user.Ext == ext:
		return user, true
	case errors.Is(err, digest.ErrRateLimited):
		s.refuseRateLimited(tx, req)
	case errors.Is(err, digest.ErrStaleNonce):
		s.challenge(req, tx, true)
	default:
		if !errors.Is(err, digest.ErrNoCredentials) {
			s.authFailed(req)
		}
		s.challenge(req, tx, false)
	}
	return store.User{}, false
}

// refuseRateLimited answers 503 with Retry-After rather than 403: phones back off and try
// again after a 503, while many stop registering for good after a 403.
func (s *Server) refuseRateLimited(tx sipmsg.ServerTransaction, req *sipmsg.Request) {
	s.authFailed(req)
	s.log.Warn("authentication refused: too many failed attempts", "source", req.Source(), "user", digest.Username(headerValue(req, "Authorization")))
	respond(tx, req, 503, "Service Unavailable: too many failed attempts, try again later", sipmsg.NewHeader("Retry-After", "60"))
}

func headerValue(req *sipmsg.Request, name string) string {
	if h := req.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

func (s *Server) challenge(req *sipmsg.Request, tx sipmsg.ServerTransaction, stale bool) {
	var hs []sipmsg.Header
	for _, ch := range s.auth.Challenges(stale) {
		hs = append(hs, sipmsg.NewHeader("WWW-Authenticate", ch))
	}
	respond(tx, req, 401, "Unauthorized", hs...)
}

// trunk tells whether a request comes from an allowed trunk source.
func (s *Server) trunk(req *sipmsg.Request) bool {
	src := source(req)
	for _, p := range s.cfg.TrunkAllow {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

// Shutdown stops taking calls, ends every call with a BYE to each leg and its history
// written, and stops the SIP stack.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	active := make([]*call, 0, len(s.calls))
	for _, c := range s.calls {
		active = append(active, c)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range active {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.endCall(c, "server shutdown")
		}()
	}
	wg.Wait()
	done := make(chan struct{})
	go func() { s.handlers.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	s.haltNow(sipgo.WaitAnswerForceCancelErr)
	s.stopOnce.Do(func() { close(s.stop) })
	waited := make(chan struct{})
	go func() { s.sessions.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
		s.log.Warn("shutdown: some call goroutines did not finish in time")
	}
	if s.ua != nil {
		s.srv.Close()
		s.ua.Close()
		s.conn.Close()
	}
	// Every leg is gone: the shared sockets go too (a drain still due finds them closed).
	_ = s.ports.Close()
	return ctx.Err()
}

// watch ends dead legs and expires registrations.
func (s *Server) watch(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.stop:
			return
		case now := <-t.C:
			s.reg.expire(now)
			s.reapDeadLegs(now)
		}
	}
}

func (s *Server) reapDeadLegs(now time.Time) {
	s.mu.Lock()
	active := make([]*call, 0, len(s.calls))
	for _, c := range s.calls {
		active = append(active, c)
	}
	s.mu.Unlock()
	var dead []*leg
	for _, c := range active {
		c.mu.Lock()
		for _, l := range c.legsLocked() {
			// A leg whose SDP says it doesn't send (hold without music, a listen-only
			// phone) is allowed its silence.
			if l.answered.Load() && l.media != nil && l.sends.Load() && now.Sub(l.media.LastHeard()) > s.cfg.DeadAfter {
				dead = append(dead, l)
			}
		}
		c.mu.Unlock()
	}
	for _, l := range dead {
		reason := fmt.Sprintf("no audio from the %s for %s", l.role, s.cfg.DeadAfter.Round(time.Second))
		s.log.Warn("dead leg", "call", l.call.id, "leg", l.role, "reason", reason)
		if l.role == room.Supervisor {
			s.endMonitor(l, reason)
		} else {
			s.endCall(l.call, reason)
		}
	}
}

// userPart of a request URI, with visual separators some phones add removed.
func userPart(u sipmsg.Uri) string {
	return strings.NewReplacer("-", "", " ", "", "(", "", ")", "").Replace(u.User)
}
