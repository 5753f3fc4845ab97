// Package simphone is a simulated SIP phone: a SIP user agent on loopback UDP
// (sipgo) with real G.711 RTP that sends a tone and records what it hears.
// The server's integration tests use it as customer, agent and supervisor,
// the load benchmark and the demo use it as bot.
//
// Every socket it opens is bound to 127.0.0.1 and it advertises only
// 127.0.0.1, so all its traffic stays on 127.0.0.0/8 — unless Config.LocalIP
// names another address, as the softphone does to reach a server elsewhere.
//
// The softphone (package app) runs on it too: with Config.Audio set, calls send
// what the device captures instead of the tone and play what they receive.
package simphone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"

	"ringside/media"
)

// Config describes one simulated phone.
type Config struct {
	Server     string        // ringside-media SIP address "127.0.0.1:5060" (registrar, default route for bare targets)
	Ext        string        // user part for From/Contact and digest username
	Password   string        // for digest (401/407 challenges on REGISTER and INVITE)
	ToneHz     float64       // tone this phone sends (0 = silence)
	Codec      media.Codec   // preferred codec; default PCMU
	AutoAnswer bool          // answer incoming INVITEs with 200 + SDP right away; else they queue on Incoming()
	Logger     *slog.Logger  // default discard
	Name       string        // display name in From (default none)
	RecordMax  time.Duration // keep only the most recent RecordMax of received audio per call (0 = keep all)
	// AnswerDelay lets an AutoAnswer phone ring this long before answering.
	AnswerDelay time.Duration
	// Audio, when set, is the phone's sound device: calls send what it captures instead
	// of the tone (silence while it stalls) and it plays what the calls receive, through
	// a jitter buffer, mixed. The phone starts it in New and closes it in Close. The
	// recording (Recording, WaitRecording) works as without it.
	Audio AudioDevice
	// LocalIP is the address the phone binds and advertises (SIP and RTP); default
	// 127.0.0.1. On loopback RTP only ever goes to loopback addresses.
	LocalIP netip.Addr
	// OnRegister, if set, is told the outcome of every registration refresh that
	// KeepRegistered makes (nil: registered).
	OnRegister func(err error)
	// SRTP encrypts the phone's calls with DTLS-SRTP (RFC 5763/5764): it offers
	// UDP/TLS/RTP/SAVP with its certificate's fingerprint, accepts such offers, and registers
	// with the feature tag (dtlssrtp.ContactFeature) that makes the media server offer them.
	// Plain RTP offers are still answered with plain RTP; off, DTLS-SRTP offers get 488.
	SRTP bool
	// MangleSDP, if set, rewrites every SDP body the phone sends (tests: a forged
	// fingerprint).
	MangleSDP func(body []byte) []byte
}

// ErrClosed is returned by calls on a closed Phone.
var ErrClosed = errors.New("simphone: phone closed")

// StatusError is a final non-2xx SIP response.
type StatusError struct {
	Code     int
	Reason   string
	Request  string        // e.g. "INVITE sip:*11001@127.0.0.1:5060"
	Response *sip.Response // the response itself (Contact of a 302, Warning, ...)
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("SIP %d %s", e.Code, e.Reason)
	if e.Request != "" {
		s += ": " + e.Request
	}
	return s
}

func statusError(req *sip.Request, res *sip.Response) *StatusError {
	e := &StatusError{Code: res.StatusCode, Reason: res.Reason, Response: res}
	if req != nil {
		e.Request = req.Method.String() + " " + req.Recipient.String()
	}
	return e
}

// Phone is one simulated SIP phone.
type Phone struct {
	cfg     Config
	log     *slog.Logger
	conn    net.PacketConn
	ip      netip.Addr // bound and advertised
	audio   *phoneAudio
	addr    netip.AddrPort
	laddr   sip.Addr
	ua      *sipgo.UserAgent
	srv     *sipgo.Server
	cli     *sipgo.Client
	dua     *sipgo.DialogUA
	contact sip.ContactHeader

	srvHost string // from cfg.Server
	srvPort int

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc

	incoming chan *Call

	mu     sync.Mutex
	closed bool
	calls  map[string]*Call // callID + "\n" + local tag
	wg     sync.WaitGroup   // INVITE handlers, call watchers, Dials in progress

	serveDone chan struct{}
	closeOnce sync.Once
	closeErr  error

	regMu      sync.Mutex
	regCallID  string
	regFromTag string
	regCSeq    uint32
	refreshMu  sync.Mutex
	refreshing context.CancelFunc // KeepRegistered's refresher, if running
}

// readyConn reports when sipgo starts reading the socket: by then the socket
// is in sipgo's connection pool and requests can be sent from it.
type readyConn struct {
	net.PacketConn
	once  sync.Once
	ready chan struct{}
}

func (c *readyConn) ReadFrom(b []byte) (int, net.Addr, error) {
	c.once.Do(func() { close(c.ready) })
	return c.PacketConn.ReadFrom(b)
}

// New starts a phone: a SIP UA on UDP 127.0.0.1:<free port> that sends and
// receives on that one socket. ctx bounds only the start-up.
func New(ctx context.Context, cfg Config) (*Phone, error) {
	if cfg.Codec != media.PCMU && cfg.Codec != media.PCMA {
		return nil, fmt.Errorf("simphone: unsupported codec %v", cfg.Codec)
	}
	if cfg.Ext == "" {
		cfg.Ext = "simphone"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("phone", cfg.Ext)

	p := &Phone{
		cfg:       cfg,
		log:       log,
		incoming:  make(chan *Call, 256),
		calls:     make(map[string]*Call),
		serveDone: make(chan struct{}),
	}
	if cfg.Server != "" {
		host, port, err := sip.ParseAddr(cfg.Server)
		if err != nil {
			return nil, fmt.Errorf("simphone: server address %q: %w", cfg.Server, err)
		}
		if port == 0 {
			port = 5060
		}
		p.srvHost, p.srvPort = host, port
	}

	p.ip = cfg.LocalIP.Unmap()
	if !p.ip.IsValid() || p.ip.IsUnspecified() {
		p.ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	pc, err := net.ListenPacket("udp", netip.AddrPortFrom(p.ip, 0).String())
	if err != nil {
		return nil, err
	}
	p.addr = netip.AddrPortFrom(p.ip, pc.LocalAddr().(*net.UDPAddr).AddrPort().Port())
	addrStr := p.addr.String()
	p.laddr = sip.Addr{IP: net.IP(p.addr.Addr().AsSlice()), Port: int(p.addr.Port())}

	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent("ringside-simphone"),
		sipgo.WithUserAgentHostname(p.ip.String()),
		sipgo.WithUserAgentTransactionLayerOptions(
			sip.WithTransactionLayerLogger(log),
			sip.WithTransactionLayerUnhandledResponseHandler(func(r *sip.Response) {
				log.Debug("unmatched SIP response (retransmission?)", "res", r.Short())
			}),
		),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(log)),
	)
	if err != nil {
		pc.Close()
		return nil, err
	}
	p.ua = ua
	fail := func(err error) (*Phone, error) {
		ua.Close()
		pc.Close()
		return nil, err
	}
	if p.srv, err = sipgo.NewServer(ua, sipgo.WithServerLogger(log)); err != nil {
		return fail(err)
	}
	if p.cli, err = sipgo.NewClient(ua,
		sipgo.WithClientLogger(log),
		sipgo.WithClientAddr(addrStr),
		sipgo.WithClientConnectionAddr(addrStr),
	); err != nil {
		return fail(err)
	}
	p.contact = sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: cfg.Ext, Host: p.ip.String(), Port: int(p.addr.Port())}}
	p.dua = &sipgo.DialogUA{Client: p.cli, ContactHDR: p.contact}

	p.srv.OnInvite(p.onInvite)
	p.srv.OnAck(p.onAck)
	p.srv.OnBye(p.onBye)
	p.srv.OnCancel(p.onCancel)
	p.srv.OnInfo(p.onInfo)
	p.srv.OnOptions(p.onOptions)
	p.srv.OnNotify(p.onNotify)

	p.ctx, p.cancel = context.WithCancel(context.Background())
	rc := &readyConn{PacketConn: pc, ready: make(chan struct{})}
	p.conn = pc
	go func() {
		defer close(p.serveDone)
		if err := p.srv.ServeUDP(rc); err != nil {
			log.Debug("SIP UDP server stopped", "err", err)
		}
	}()
	select {
	case <-rc.ready:
	case <-ctx.Done():
		p.cancel()
		pc.Close()
		<-p.serveDone
		ua.Close()
		return nil, ctx.Err()
	}
	if cfg.Audio != nil {
		p.audio = &phoneAudio{dev: cfg.Audio}
		if l, ok := cfg.Audio.(Lookahead); ok {
			l.SetLookahead(p.audio.peek, p.audio.advance)
		}
		if err := cfg.Audio.Start(p.audio.capture, p.audio.playback); err != nil {
			p.cancel()
			pc.Close()
			<-p.serveDone
			ua.Close()
			return nil, fmt.Errorf("simphone: starting the audio device: %w", err)
		}
		p.audio.idle() // no call yet
	}
	log.Debug("phone started", "sip", addrStr)
	return p, nil
}

// Addr is the phone's SIP address (127.0.0.1:port), also its Contact.
func (p *Phone) Addr() netip.AddrPort { return p.addr }

// URI is the phone's contact URI, "sip:<ext>@127.0.0.1:<port>".
func (p *Phone) URI() string { return p.contact.Address.String() }

// Ext is the configured extension.
func (p *Phone) Ext() string { return p.cfg.Ext }

// Incoming delivers calls that arrived. With AutoAnswer they arrive already
// answered; otherwise ringing, to be Answer()ed or Reject()ed. Calls that do
// not fit in its buffer (256) are still handled but not delivered.
func (p *Phone) Incoming() <-chan *Call { return p.incoming }

// Calls returns the calls currently in progress.
func (p *Phone) Calls() []*Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*Call, 0, len(p.calls))
	for _, c := range p.calls {
		out = append(out, c)
	}
	return out
}

// enter registers one goroutine of work unless the phone is closing.
func (p *Phone) enter() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.wg.Add(1)
	return true
}

func callKey(callID, localTag string) string { return callID + "\n" + localTag }

func (p *Phone) addCall(c *Call) {
	p.mu.Lock()
	p.calls[callKey(c.callID, c.localTag)] = c
	p.mu.Unlock()
}

func (p *Phone) removeCall(c *Call) {
	p.mu.Lock()
	k := callKey(c.callID, c.localTag)
	if p.calls[k] == c {
		delete(p.calls, k)
	}
	p.mu.Unlock()
}

// lookup finds the call an in-dialog request belongs to: our tag is in To.
func (p *Phone) lookup(req *sip.Request) *Call {
	cid, to := req.CallID(), req.To()
	if cid == nil || to == nil {
		return nil
	}
	tag, _ := to.Params.Get("tag")
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[callKey(cid.Value(), tag)]
}

func (p *Phone) codecs() []media.Codec {
	if p.cfg.Codec == media.PCMA {
		return []media.Codec{media.PCMA, media.PCMU}
	}
	return []media.Codec{media.PCMU, media.PCMA}
}

// fromURI is our address of record: sip:<ext>@<server>, or our own address
// when no server is configured.
func (p *Phone) fromURI() sip.Uri {
	if p.srvHost != "" {
		return sip.Uri{Scheme: "sip", User: p.cfg.Ext, Host: p.srvHost, Port: p.srvPort}
	}
	return sip.Uri{Scheme: "sip", User: p.cfg.Ext, Host: p.ip.String(), Port: int(p.addr.Port())}
}

func (p *Phone) setLaddr(req *sip.Request) {
	p.laddr.Copy(&req.Laddr)
}

// Register sends REGISTER sip:<server> for sip:<ext>@<server> with our
// contact, answering a digest challenge. expires 0 unregisters. A final
// non-2xx response comes back as *StatusError.
func (p *Phone) Register(ctx context.Context, expires time.Duration) error {
	if expires <= 0 {
		p.stopRefresh()
	}
	_, err := p.register(ctx, expires)
	return err
}

// register sends one REGISTER and returns the expiry the registrar granted.
func (p *Phone) register(ctx context.Context, expires time.Duration) (time.Duration, error) {
	if p.srvHost == "" {
		return 0, errors.New("simphone: Register needs Config.Server")
	}
	if !p.enter() {
		return 0, ErrClosed
	}
	defer p.wg.Done()

	p.regMu.Lock()
	defer p.regMu.Unlock()
	if p.regCallID == "" {
		p.regCallID = uuid.NewString()
		p.regFromTag = sip.GenerateTagN(16)
	}
	p.regCSeq++

	aor := p.fromURI()
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: p.srvHost, Port: p.srvPort})
	from := &sip.FromHeader{DisplayName: p.cfg.Name, Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", p.regFromTag)
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: aor})
	cid := sip.CallIDHeader(p.regCallID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: p.regCSeq, MethodName: sip.REGISTER})
	req.AppendHeader(p.registerContact())
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
	req.AppendHeader(sip.NewHeader("User-Agent", "ringside-simphone"))
	p.setLaddr(req)

	res, err := p.cli.Do(ctx, req)
	if err != nil {
		return 0, fmt.Errorf("simphone: REGISTER: %w", err)
	}
	if (res.StatusCode == sip.StatusUnauthorized || res.StatusCode == sip.StatusProxyAuthRequired) && p.cfg.Password != "" {
		res, err = p.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: p.cfg.Ext, Password: p.cfg.Password})
		if cs := req.CSeq(); cs != nil {
			p.regCSeq = cs.SeqNo
		}
		if err != nil {
			return 0, fmt.Errorf("simphone: REGISTER: %w", err)
		}
	}
	if !res.IsSuccess() {
		return 0, statusError(req, res)
	}
	granted := grantedExpiry(res, p.contact.Address, expires)
	p.log.Debug("registered", "expires", expires, "granted", granted)
	return granted, nil
}

// targetURI turns "1001", "*11001", "1001@host:port" or "sip:..." into a URI.
func (p *Phone) targetURI(target string) (sip.Uri, error) {
	s := strings.TrimSpace(target)
	lower := strings.ToLower(s)
	if !strings.HasPrefix(lower, "sip:") && !strings.HasPrefix(lower, "sips:") {
		if !strings.Contains(s, "@") {
			if p.srvHost == "" {
				return sip.Uri{}, fmt.Errorf("simphone: target %q needs Config.Server", target)
			}
			s += "@" + net.JoinHostPort(p.srvHost, strconv.Itoa(p.srvPort))
		}
		s = "sip:" + s
	}
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		return sip.Uri{}, fmt.Errorf("simphone: target %q: %w", target, err)
	}
	return u, nil
}

// Dial sends INVITE to target ("sip:*11001@127.0.0.1:5060", "1001" for
// sip:1001@<server>), answers a digest challenge, waits for the final
// response and ACKs a 2xx. A final non-2xx response comes back as
// *StatusError. Cancelling ctx before the answer sends CANCEL. Extra headers
// (Target-Dialog, ...) go on the INVITE.
func (p *Phone) Dial(ctx context.Context, target string, headers ...sip.Header) (*Call, error) {
	uri, err := p.targetURI(target)
	if err != nil {
		return nil, err
	}
	if !p.enter() {
		return nil, ErrClosed
	}
	defer p.wg.Done()

	c, err := p.newCall(false)
	if err != nil {
		return nil, err
	}
	c.callID = uuid.NewString()
	c.localTag = sip.GenerateTagN(16)

	req := sip.NewRequest(sip.INVITE, uri)
	from := &sip.FromHeader{DisplayName: p.cfg.Name, Address: p.fromURI(), Params: sip.NewParams()}
	from.Params.Add("tag", c.localTag)
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: uri.Scheme, User: uri.User, Host: uri.Host, Port: uri.Port}})
	cid := sip.CallIDHeader(c.callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INVITE})
	req.AppendHeader(p.contact.Clone())
	req.AppendHeader(sip.NewHeader("Allow", allowMethods))
	req.AppendHeader(sip.NewHeader("User-Agent", "ringside-simphone"))
	for _, h := range headers {
		req.AppendHeader(h)
	}
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	c.mu.Lock()
	req.SetBody(c.offerLocked())
	c.mu.Unlock()
	if _, err := netip.ParseAddr(uri.Host); err != nil && p.srvHost != "" {
		// A domain we cannot resolve: the server is our outbound proxy.
		req.SetDestination(net.JoinHostPort(p.srvHost, strconv.Itoa(p.srvPort)))
	}
	p.setLaddr(req)
	c.req = req

	// Aborting the INVITE: once a provisional response came, sipgo sends
	// CANCEL and waits for the 487. CANCEL may not precede a provisional
	// response, so wait up to a second for one; if none comes, give up on
	// the INVITE without waiting for Timer B (32 s).
	dctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	gotProvisional := make(chan struct{})
	var provOnce sync.Once
	abort := func() {
		t := time.NewTimer(time.Second)
		defer t.Stop()
		select {
		case <-gotProvisional:
			cancel(context.Canceled)
		case <-t.C:
			cancel(sipgo.WaitAnswerForceCancelErr)
		case <-dctx.Done():
		}
	}
	stopCtx := context.AfterFunc(ctx, abort)
	defer stopCtx()
	stopClose := context.AfterFunc(p.ctx, abort)
	defer stopClose()
	c.mu.Lock()
	c.dialCancel = abort
	c.mu.Unlock()
	p.addCall(c)

	failed := func(err error) (*Call, error) {
		c.localHangup.Store(true)
		c.finish()
		return nil, err
	}

	cs, err := p.dua.WriteInvite(dctx, req)
	if err != nil {
		return failed(fmt.Errorf("simphone: INVITE %s: %w", uri.String(), err))
	}
	c.mu.Lock()
	c.cs = cs
	c.mu.Unlock()
	err = cs.WaitAnswer(dctx, sipgo.AnswerOptions{
		Username: p.cfg.Ext,
		Password: p.cfg.Password,
		OnResponse: func(r *sip.Response) error {
			if r.IsProvisional() {
				provOnce.Do(func() { close(gotProvisional) })
			}
			return nil
		},
	})
	if err != nil {
		cs.Close()
		var rp *sipgo.ErrDialogResponse
		var rv sipgo.ErrDialogResponse
		switch {
		case errors.As(err, &rp):
			return failed(statusError(req, rp.Res))
		case errors.As(err, &rv):
			return failed(statusError(req, rv.Res))
		case ctx.Err() != nil:
			return failed(fmt.Errorf("simphone: INVITE %s: %w", uri.String(), ctx.Err()))
		case p.ctx.Err() != nil:
			return failed(ErrClosed)
		}
		return failed(fmt.Errorf("simphone: INVITE %s: %w", uri.String(), err))
	}

	res := cs.InviteResponse
	c.mu.Lock()
	c.res = res
	if to := res.To(); to != nil {
		c.remoteTag, _ = to.Params.Get("tag")
	}
	c.dialogID = cs.ID
	c.remoteTarget = uri
	if ct := res.Contact(); ct != nil {
		c.remoteTarget = *ct.Address.Clone()
	}
	var sdpErr error
	if len(res.Body()) > 0 {
		sdpErr = c.applyAnswerLocked(res.Body())
	} else {
		sdpErr = errors.New("2xx without SDP answer")
	}
	c.mu.Unlock()

	if err := cs.Ack(context.Background()); err != nil {
		p.log.Warn("ACK failed", "err", err)
	}
	if !p.enter() {
		// Close began while we waited for the answer.
		byeCtx, cancelBye := context.WithTimeout(context.Background(), 2*time.Second)
		c.localHangup.Store(true)
		_ = c.sendBye(byeCtx)
		cancelBye()
		return failed(ErrClosed)
	}
	c.mu.Lock()
	c.state = stateEstablished
	c.dialCancel = nil
	c.mu.Unlock()
	c.closeAnswered()
	go func() {
		defer p.wg.Done()
		select {
		case <-cs.Context().Done():
		case <-c.kill:
		}
		c.finish()
	}()
	if sdpErr != nil {
		p.log.Warn("bad SDP answer, hanging up", "err", sdpErr)
		hctx, cancelH := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancelH()
		_ = c.Hangup(hctx)
		return nil, fmt.Errorf("simphone: INVITE %s: %w", uri.String(), sdpErr)
	}
	c.st.startSending()
	p.log.Debug("call established", "to", uri.String(), "call-id", c.callID)
	return c, nil
}

const allowMethods = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, NOTIFY"

// respond answers a request outside a dialog session; a failed send is left
// to the peer's retransmission.
func respond(tx sip.ServerTransaction, req *sip.Request, code int, reason string) {
	_ = tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil))
}

func (p *Phone) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if to := req.To(); to != nil && to.Params.Has("tag") {
		p.onReInvite(req, tx)
		return
	}
	if !p.enter() {
		respond(tx, req, sip.StatusServiceUnavailable, "Service Unavailable")
		return
	}
	defer p.wg.Done()

	var offer *media.SessionDesc
	if body := req.Body(); len(body) > 0 {
		o, err := media.ParseSDP(body)
		if err == nil {
			_, err = media.Negotiate(o, p.codecs())
		}
		if err == nil {
			err = p.acceptable(o)
		}
		if err != nil {
			p.log.Info("rejecting INVITE with unusable SDP", "err", err)
			respond(tx, req, 488, "Not Acceptable Here")
			return
		}
		offer = &o
	}
	ss, err := p.dua.ReadInvite(req, tx)
	if err != nil {
		p.log.Warn("bad INVITE", "err", err)
		respond(tx, req, sip.StatusBadRequest, "Bad Request")
		return
	}
	defer ss.Close()
	c, err := p.newCall(true)
	if err != nil {
		_ = ss.Respond(sip.StatusInternalServerError, "No RTP port", nil)
		return
	}
	c.ss = ss
	c.req = req
	c.callID = req.CallID().Value()
	c.localTag, _ = ss.InviteRequest.To().Params.Get("tag")
	c.remoteTag, _ = req.From().Params.Get("tag")
	c.dialogID = ss.ID
	c.remoteTarget = *req.Contact().Address.Clone()
	c.offer = offer
	p.addCall(c)

	if err := ss.Respond(sip.StatusRinging, "Ringing", nil); err != nil {
		p.log.Debug("180 failed", "err", err)
	}
	ringing := true
	if p.cfg.AutoAnswer && p.cfg.AnswerDelay > 0 {
		t := time.NewTimer(p.cfg.AnswerDelay)
		select {
		case <-t.C:
		case <-ss.Context().Done():
			ringing = false
		case <-c.kill:
			ringing = false
		}
		t.Stop()
	}
	if p.cfg.AutoAnswer {
		if !ringing {
			// cancelled or closed while ringing
		} else if err := c.Answer(p.ctx); err != nil {
			p.log.Info("auto-answer failed", "err", err)
		} else {
			p.deliver(c)
		}
	} else {
		p.deliver(c)
	}

	// The INVITE handler lives as long as the dialog.
	select {
	case <-ss.Context().Done():
	case <-c.kill:
	}
	c.finish()
}

func (p *Phone) deliver(c *Call) {
	select {
	case p.incoming <- c:
	default:
		p.log.Warn("Incoming() buffer full; call not delivered", "call-id", c.callID)
	}
}

func (p *Phone) onReInvite(req *sip.Request, tx sip.ServerTransaction) {
	c := p.lookup(req)
	if c == nil {
		respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	if !c.waitAnswered(2 * time.Second) {
		respond(tx, req, 491, "Request Pending")
		return
	}
	if !c.reinviting.CompareAndSwap(false, true) {
		respond(tx, req, 491, "Request Pending") // glare with our own re-INVITE
		return
	}
	defer c.reinviting.Store(false)

	c.mu.Lock()
	if c.state != stateEstablished {
		c.mu.Unlock()
		respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	if ct := req.Contact(); ct != nil {
		c.remoteTarget = *ct.Address.Clone()
	}
	var body []byte
	if b := req.Body(); len(b) > 0 {
		offer, err := media.ParseSDP(b)
		if err == nil {
			body, err = c.answerLocked(offer)
		}
		if err != nil {
			c.mu.Unlock()
			p.log.Info("rejecting re-INVITE", "err", err)
			respond(tx, req, 488, "Not Acceptable Here")
			return
		}
	} else {
		// Offer-less re-INVITE: we offer in the 200, the answer comes in the ACK.
		body = c.offerLocked()
		c.awaitAckSDP = true
	}
	c.mu.Unlock()

	res := sip.NewSDPResponseFromRequest(req, body)
	res.AppendHeader(p.contact.Clone())
	if err := tx.Respond(res); err != nil {
		p.log.Debug("re-INVITE 200 failed", "err", err)
	}
}

func (p *Phone) onAck(req *sip.Request, tx sip.ServerTransaction) {
	c := p.lookup(req)
	if c == nil {
		return
	}
	if c.ss != nil {
		_ = c.ss.ReadAck(req, tx) // a re-INVITE's ACK fails the CSeq check: harmless
	}
	if body := req.Body(); len(body) > 0 {
		c.mu.Lock()
		if c.awaitAckSDP {
			c.awaitAckSDP = false
			if err := c.applyAnswerLocked(body); err != nil {
				p.log.Warn("bad SDP in ACK", "err", err)
			}
		}
		c.mu.Unlock()
	}
}

func (p *Phone) onBye(req *sip.Request, tx sip.ServerTransaction) {
	c := p.lookup(req)
	if c == nil {
		respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	c.mu.Lock()
	cs := c.cs
	c.mu.Unlock()
	var err error
	switch {
	case c.incoming:
		err = c.ss.ReadBye(req, tx)
	case cs != nil:
		err = cs.ReadBye(req, tx)
	default: // INVITE not even sent
		respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	if err != nil {
		p.log.Debug("BYE handling", "err", err)
		respond(tx, req, sip.StatusOK, "OK")
		c.terminate()
	}
}

func (p *Phone) onCancel(req *sip.Request, tx sip.ServerTransaction) {
	// CANCELs matching a pending INVITE are answered by sipgo's transaction layer.
	respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
}

func (p *Phone) onInfo(req *sip.Request, tx sip.ServerTransaction) {
	c := p.lookup(req)
	if c == nil {
		respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	body := req.Body()
	if len(body) == 0 {
		respond(tx, req, sip.StatusOK, "OK")
		return
	}
	ct := ""
	if h := req.ContentType(); h != nil {
		ct = h.Value()
	}
	d, err := media.ParseDTMFRelay(ct, body)
	if err != nil {
		p.log.Info("INFO with unsupported body", "content-type", ct, "err", err)
		respond(tx, req, sip.StatusUnsupportedMediaType, "Unsupported Media Type")
		return
	}
	respond(tx, req, sip.StatusOK, "OK")
	c.st.pushDigit(d)
}

func (p *Phone) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
	res.AppendHeader(sip.NewHeader("Allow", allowMethods))
	res.AppendHeader(sip.NewHeader("Accept", "application/sdp, application/dtmf-relay"))
	_ = tx.Respond(res)
}

// Close hangs up every call (BYE, CANCEL or a reject, each given up to 2 s),
// stops the SIP UA and all RTP, and waits for every goroutine it started.
// It does not unregister: call Register(ctx, 0) first for that.
func (p *Phone) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		calls := make([]*Call, 0, len(p.calls))
		for _, c := range p.calls {
			calls = append(calls, c)
		}
		p.mu.Unlock()
		p.cancel() // aborts Dials in progress (CANCEL)

		var wg sync.WaitGroup
		for _, c := range calls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				if err := c.Hangup(ctx); err != nil {
					p.log.Debug("hangup on close", "call-id", c.callID, "err", err)
				}
				c.terminate()
			}()
		}
		wg.Wait()
		p.wg.Wait()

		err := p.conn.Close()
		<-p.serveDone
		p.closeErr = errors.Join(err, p.ua.Close())
		if p.audio != nil {
			if derr := p.audio.dev.Close(); derr != nil {
				p.closeErr = errors.Join(p.closeErr, fmt.Errorf("simphone: closing the audio device: %w", derr))
			}
		}
		if errors.Is(p.closeErr, net.ErrClosed) {
			p.closeErr = nil
		}
	})
	return p.closeErr
}

var _ io.Closer = (*Phone)(nil)
