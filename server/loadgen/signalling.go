package loadgen

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"

	"ringside/media"
)

// userAgent is the generator's SIP side: one sipgo UA on one UDP socket that registers
// every agent (each with its own Contact user part), answers the server's INVITEs for
// them, and dials as customers and supervisors. It only signals; media is the groups'.
type userAgent struct {
	log     *slog.Logger
	conn    net.PacketConn
	laddr   sip.Addr
	port    int
	ua      *sipgo.UserAgent
	srv     *sipgo.Server
	cli     *sipgo.Client
	dua     *sipgo.DialogUA
	srvHost string
	srvPort int

	ctx    context.Context // canceled by close
	cancel context.CancelFunc

	onAgentInvite func(req *sip.Request, tx sip.ServerTransaction)

	mu      sync.Mutex
	uac     map[string]uacDialog // by Call-ID: customers and supervisors
	uas     map[string]uasDialog // by Call-ID: agents
	changed chan struct{}        // closed and renewed whenever a dialog is forgotten

	handlers  sync.WaitGroup
	serveDone chan struct{}
}

type uacDialog struct {
	cs  *sipgo.DialogClientSession
	leg *leg
}

type uasDialog struct {
	ds  *sipgo.DialogServerSession
	leg *leg
}

// readyConn tells when sipgo reads the socket: from then on requests can go out of it.
type readyConn struct {
	net.PacketConn
	once  sync.Once
	ready chan struct{}
}

func (c *readyConn) ReadFrom(b []byte) (int, net.Addr, error) {
	c.once.Do(func() { close(c.ready) })
	return c.PacketConn.ReadFrom(b)
}

func newUserAgent(ctx context.Context, server string, log *slog.Logger) (*userAgent, error) {
	host, port, err := sip.ParseAddr(server)
	if err != nil {
		return nil, fmt.Errorf("loadgen: server address %q: %w", server, err)
	}
	if port == 0 {
		port = 5060
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := pc.LocalAddr().(*net.UDPAddr)
	u := &userAgent{
		log: log, conn: pc, port: addr.Port, srvHost: host, srvPort: port,
		laddr:     sip.Addr{IP: addr.IP, Port: addr.Port},
		uac:       make(map[string]uacDialog),
		uas:       make(map[string]uasDialog),
		changed:   make(chan struct{}),
		serveDone: make(chan struct{}),
	}
	u.ua, err = sipgo.NewUA(sipgo.WithUserAgent("ringside-bench"), sipgo.WithUserAgentHostname("127.0.0.1"),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(log)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(log)))
	if err != nil {
		pc.Close()
		return nil, err
	}
	fail := func(err error) (*userAgent, error) {
		u.ua.Close()
		pc.Close()
		return nil, err
	}
	if u.srv, err = sipgo.NewServer(u.ua, sipgo.WithServerLogger(log)); err != nil {
		return fail(err)
	}
	if u.cli, err = sipgo.NewClient(u.ua, sipgo.WithClientLogger(log),
		sipgo.WithClientAddr(addr.String()), sipgo.WithClientConnectionAddr(addr.String())); err != nil {
		return fail(err)
	}
	u.dua = &sipgo.DialogUA{Client: u.cli, ContactHDR: sip.ContactHeader{Address: sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: addr.Port}}}
	u.srv.OnInvite(u.onInvite)
	u.srv.OnAck(u.onAck)
	u.srv.OnBye(u.onBye)
	u.srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) { respond(tx, req, 200, "OK") })
	u.srv.OnInfo(func(req *sip.Request, tx sip.ServerTransaction) { respond(tx, req, 200, "OK") })

	u.ctx, u.cancel = context.WithCancel(context.Background())
	rc := &readyConn{PacketConn: pc, ready: make(chan struct{})}
	go func() {
		defer close(u.serveDone)
		if err := u.srv.ServeUDP(rc); err != nil {
			log.Debug("SIP socket stopped", "err", err)
		}
	}()
	select {
	case <-rc.ready:
	case <-ctx.Done():
		u.close()
		return nil, ctx.Err()
	}
	return u, nil
}

func respond(tx sip.ServerTransaction, req *sip.Request, code int, reason string) {
	_ = tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil))
}

func (u *userAgent) serverURI(user string) sip.Uri {
	return sip.Uri{Scheme: "sip", User: user, Host: u.srvHost, Port: u.srvPort}
}

func (u *userAgent) contact(user string) *sip.ContactHeader {
	return &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1", Port: u.port}}
}

// Registration requests.
const (
	bind      = iota // bind sip:<ext>@server to our socket
	unbind           // remove that binding
	unbindAll        // remove every binding of ext (Contact: *), stale ones of an earlier run too
)

// register sends one REGISTER for ext, answering the digest challenge.
func (u *userAgent) register(ctx context.Context, ext, password string, what int) error {
	aor := u.serverURI(ext)
	req := sip.NewRequest(sip.REGISTER, u.serverURI(""))
	from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: aor})
	cid := sip.CallIDHeader(uuid.NewString())
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.REGISTER})
	switch what {
	case bind:
		req.AppendHeader(u.contact(ext))
		req.AppendHeader(sip.NewHeader("Expires", "3600"))
	case unbind:
		req.AppendHeader(u.contact(ext))
		req.AppendHeader(sip.NewHeader("Expires", "0"))
	default:
		req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Wildcard: true}})
		req.AppendHeader(sip.NewHeader("Expires", "0"))
	}
	u.laddr.Copy(&req.Laddr)
	res, err := u.cli.Do(ctx, req)
	if err == nil && (res.StatusCode == 401 || res.StatusCode == 407) {
		res, err = u.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: ext, Password: password})
	}
	if err != nil {
		return fmt.Errorf("REGISTER %s: %w", ext, err)
	}
	if !res.IsSuccess() {
		return fmt.Errorf("REGISTER %s: %d %s", ext, res.StatusCode, res.Reason)
	}
	return nil
}

// dial sends INVITE sip:<target>@server from user, answering a challenge when password is
// set, ACKs the answer and returns the dialog and the server's SDP.
func (u *userAgent) dial(ctx context.Context, target, user, password string, sdp []byte) (*sipgo.DialogClientSession, media.SessionDesc, error) {
	uri := u.serverURI(target)
	req := sip.NewRequest(sip.INVITE, uri)
	from := &sip.FromHeader{Address: u.serverURI(user), Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: uri})
	cid := sip.CallIDHeader(uuid.NewString())
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INVITE})
	req.AppendHeader(u.contact(user))
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(sdp)
	u.laddr.Copy(&req.Laddr)
	cs, err := u.dua.WriteInvite(ctx, req)
	if err != nil {
		return nil, media.SessionDesc{}, fmt.Errorf("INVITE %s: %w", target, err)
	}
	opts := sipgo.AnswerOptions{}
	if password != "" {
		opts.Username, opts.Password = user, password
	}
	if err := cs.WaitAnswer(ctx, opts); err != nil {
		cs.Close()
		var de *sipgo.ErrDialogResponse
		if errors.As(err, &de) {
			return nil, media.SessionDesc{}, fmt.Errorf("INVITE %s: %d %s", target, de.Res.StatusCode, de.Res.Reason)
		}
		return nil, media.SessionDesc{}, fmt.Errorf("INVITE %s: %w", target, err)
	}
	if err := cs.Ack(ctx); err != nil {
		cs.Close()
		return nil, media.SessionDesc{}, fmt.Errorf("ACK %s: %w", target, err)
	}
	answer, err := media.ParseSDP(cs.InviteResponse.Body())
	if err == nil && (len(answer.Codecs) == 0 || answer.Codecs[0] != codec) {
		err = fmt.Errorf("answer has %v, want PCMU", answer.Codecs)
	}
	if err != nil {
		u.bye(cs)
		return nil, media.SessionDesc{}, fmt.Errorf("INVITE %s: %w", target, err)
	}
	return cs, answer, nil
}

func (u *userAgent) bye(cs *sipgo.DialogClientSession) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = cs.Bye(ctx)
	cs.Close()
}

func (u *userAgent) trackUAC(cs *sipgo.DialogClientSession, l *leg) {
	u.mu.Lock()
	u.uac[cs.InviteRequest.CallID().Value()] = uacDialog{cs: cs, leg: l}
	u.mu.Unlock()
}

func (u *userAgent) trackUAS(ds *sipgo.DialogServerSession, l *leg) {
	u.mu.Lock()
	u.uas[ds.InviteRequest.CallID().Value()] = uasDialog{ds: ds, leg: l}
	u.mu.Unlock()
}

func (u *userAgent) forget(callID string) {
	u.mu.Lock()
	delete(u.uac, callID)
	delete(u.uas, callID)
	close(u.changed)
	u.changed = make(chan struct{})
	u.mu.Unlock()
}

// open counts dialogs still up and gives a channel closed at the next change.
func (u *userAgent) open() (int, <-chan struct{}) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.uac) + len(u.uas), u.changed
}

func (u *userAgent) customerDialogs() []uacDialog {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []uacDialog
	for _, d := range u.uac {
		if d.leg.role == customer {
			out = append(out, d)
		}
	}
	return out
}

func (u *userAgent) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if to := req.To(); to != nil && to.Params.Has("tag") {
		respond(tx, req, 488, "Not Acceptable Here: the bench does not renegotiate")
		return
	}
	u.handlers.Add(1)
	defer u.handlers.Done()
	if u.ctx.Err() != nil || u.onAgentInvite == nil {
		respond(tx, req, 503, "Service Unavailable")
		return
	}
	u.onAgentInvite(req, tx)
}

func (u *userAgent) onAck(req *sip.Request, tx sip.ServerTransaction) {
	u.mu.Lock()
	d, ok := u.uas[req.CallID().Value()]
	u.mu.Unlock()
	if ok {
		_ = d.ds.ReadAck(req, tx)
	}
}

func (u *userAgent) onBye(req *sip.Request, tx sip.ServerTransaction) {
	id := req.CallID().Value()
	u.mu.Lock()
	s, isUAS := u.uas[id]
	c, isUAC := u.uac[id]
	u.mu.Unlock()
	var err error
	switch {
	case isUAS:
		s.leg.ended.Store(true)
		err = s.ds.ReadBye(req, tx)
	case isUAC:
		c.leg.ended.Store(true)
		err = c.cs.ReadBye(req, tx)
		c.cs.Close()
	default:
		respond(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	if err != nil {
		respond(tx, req, 200, "OK")
	}
	u.forget(id)
}

// answerSDP describes a leg's side of the session: PCMU on the group's socket.
func answerSDP(local netip.AddrPort) []byte {
	d := media.SessionDesc{Addr: local, Codecs: []media.Codec{codec}, DTMFType: dtmfPT, Direction: media.SendRecv, Ptime: 20}
	return d.Marshal(rand.Uint64N(1<<62), 1)
}

func (u *userAgent) close() {
	u.cancel()
	u.handlers.Wait()
	u.conn.Close()
	<-u.serveDone
	u.ua.Close()
}
