package app

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	pmedia "github.com/pion/webrtc/v4/pkg/media"

	"ringside/media"
	"ringside/media/opus"
)

// Live calls: a web visitor calls an agent from the browser, WebRTC end to end
// (docs/live-calls.md). The server only relays the signalling over the agent WebSocket
// the session keeps open; the media runs between the browser and this softphone, with
// DTLS-SRTP keys only at the two ends.

// LiveConfig tunes live calls. The zero value gathers on every interface and accepts
// any of the visitor's addresses.
type LiveConfig struct {
	// Networks limits ICE to these prefixes: only local addresses inside them are
	// gathered, and the visitor's candidates outside them are dropped, from the offer
	// and when trickled. Empty: any address. Tests and the demo use 127.0.0.0/8.
	Networks []netip.Prefix
	// Interfaces limits gathering to these network interfaces by name. Empty: all.
	Interfaces []string
	// ICEDisconnected is how long the visitor may stay silent before the path counts as
	// disconnected, ICEFailed how much longer before the call ends as failed (also how
	// long, after ICEDisconnected, a path may take to be found at all). Zero: pion's
	// 5 s and 25 s.
	ICEDisconnected, ICEFailed time.Duration
}

// allows tells whether addr is inside the configured networks.
func (c LiveConfig) allows(addr netip.Addr) bool {
	if len(c.Networks) == 0 {
		return addr.IsValid()
	}
	addr = addr.Unmap()
	for _, p := range c.Networks {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

func (c LiveConfig) allowsIP(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	return ok && c.allows(a)
}

// CallKindLive and CallKindPhone are what OwnCall.Kind says.
const (
	CallKindPhone = "phone"
	CallKindLive  = "live"
)

// ErrLiveUnsupported is what hold, keypad and transfer answer on a live call: the
// browser at the other end has none of them.
var ErrLiveUnsupported = errors.New("not available on a live call with a web visitor")

// End reasons of a live call whose connection failed.
const (
	ReasonICEFailed  = "no network path to the visitor (ICE failed)"
	ReasonDTLSFailed = "the visitor's encryption keys did not check out (DTLS failed)"
)

// ErrLiveOffline is returned when the agent socket to the server is down.
var ErrLiveOffline = errors.New("not connected to the server for live calls; try again in a moment")

// liveMsg is one signalling message on the agent socket.
type liveMsg struct {
	Type      string                   `json:"type"`
	CallID    string                   `json:"call_id,omitempty"`
	SDP       string                   `json:"sdp,omitempty"`
	Candidate *webrtc.ICECandidateInit `json:"candidate,omitempty"`
	Visitor   *struct {
		Name string `json:"name"`
	} `json:"visitor,omitempty"`
	Reason string `json:"reason,omitempty"`
}

const (
	// liveReadLimit is the contract's bound on one message.
	liveReadLimit = 64 << 10
	// livePing is how often the agent socket is checked; a ping unanswered for
	// livePingWait drops it and reconnecting starts.
	livePing     = 15 * time.Second
	livePingWait = 10 * time.Second
	// liveGatherWait bounds ICE gathering before the answer goes out.
	liveGatherWait = 10 * time.Second
	// liveLoginWait bounds how long Login waits for the agent socket's first attempt.
	liveLoginWait = 5 * time.Second
)

// liveLine is the session's agent socket and the live calls on it.
type liveLine struct {
	mu    sync.Mutex
	conn  *websocket.Conn // nil while disconnected
	calls map[string]*liveCall
	ready chan struct{} // closed after the first connection attempt
	once  sync.Once
}

// LiveConnected tells whether the agent socket is up: web visitors can reach this user.
func (s *Session) LiveConnected() bool {
	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	return s.live.conn != nil
}

// followLive keeps the agent socket open while the session lasts, reconnecting with
// back-off like the event stream.
func (s *Session) followLive() {
	defer s.wg.Done()
	c := s.client
	delay := c.backoffMin
	for {
		connected, err := s.liveOnce()
		s.live.once.Do(func() { close(s.live.ready) })
		if s.ctx.Err() != nil {
			return
		}
		if connected {
			delay = c.backoffMin
			s.log.Info("live call socket lost; reconnecting", "err", err)
		} else {
			s.log.Debug("live call socket: can't connect", "err", err)
		}
		d := time.Duration(float64(delay) * (0.8 + 0.4*rand.Float64()))
		t := time.NewTimer(d)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, c.backoffMax)
	}
}

// liveOnce runs one connection of the agent socket.
func (s *Session) liveOnce() (connected bool, err error) {
	conn, err := s.dialLive()
	if err != nil {
		return false, err
	}
	conn.SetReadLimit(liveReadLimit)
	s.live.mu.Lock()
	s.live.conn = conn
	s.live.mu.Unlock()
	s.live.once.Do(func() { close(s.live.ready) })
	s.changed()

	ctx, cancel := context.WithCancel(s.ctx)
	var pinger sync.WaitGroup
	pinger.Go(func() {
		t := time.NewTicker(livePing)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			pctx, pcancel := context.WithTimeout(ctx, livePingWait)
			err := conn.Ping(pctx)
			pcancel()
			if err != nil && ctx.Err() == nil {
				cancel() // a half-open socket: drop it and reconnect
				return
			}
		}
	})
	defer func() {
		cancel()
		pinger.Wait()
		s.live.mu.Lock()
		s.live.conn = nil
		s.live.mu.Unlock()
		_ = conn.Close(websocket.StatusGoingAway, "")
		s.liveLost()
		s.changed()
	}()
	for {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			return true, err
		}
		if typ != websocket.MessageText {
			continue
		}
		var m liveMsg
		if err := json.Unmarshal(data, &m); err != nil {
			s.log.Warn("bad live call message", "err", err)
			continue
		}
		s.takeLive(m)
	}
}

// dialLive opens GET /api/live/agent with the login token, logging in again once if the
// server forgot it.
func (s *Session) dialLive() (*websocket.Conn, error) {
	c := s.client
	u := c.base + "/api/live/agent"
	for attempt := 0; ; attempt++ {
		token := c.Token()
		ctx, cancel := context.WithTimeout(s.ctx, requestTimeout)
		conn, res, err := websocket.Dial(ctx, u, &websocket.DialOptions{
			HTTPClient: c.sc, // bounded by ctx; the socket outlives any request timeout
			HTTPHeader: http.Header{"Authorization": {"Bearer " + token}},
		})
		cancel()
		if err == nil {
			return conn, nil
		}
		if res != nil && res.StatusCode == http.StatusUnauthorized && attempt == 0 {
			if err := c.relogin(s.ctx, token); err != nil {
				return nil, err
			}
			continue
		}
		if res != nil {
			return nil, fmt.Errorf("live call socket: %s", res.Status)
		}
		return nil, err
	}
}

// sendLive writes one message on the agent socket.
func (s *Session) sendLive(ctx context.Context, m liveMsg) error {
	s.live.mu.Lock()
	conn := s.live.conn
	s.live.mu.Unlock()
	if conn == nil {
		return ErrLiveOffline
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := conn.Write(ctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("live call socket: %w", err)
	}
	return nil
}

// takeLive handles one message from the server.
func (s *Session) takeLive(m liveMsg) {
	s.live.mu.Lock()
	lc := s.live.calls[m.CallID]
	s.live.mu.Unlock()
	switch m.Type {
	case "offer":
		// The same call again after a reconnect: the server rings a softphone that comes
		// back while it rings, and the old ring ended when the socket dropped.
		if (lc != nil && !lc.isStopped()) || m.CallID == "" {
			return
		}
		s.ringLive(m)
	case "candidate":
		if lc != nil && m.Candidate != nil {
			lc.addCandidate(*m.Candidate)
		}
	case "hangup":
		if lc != nil {
			reason := "the other side hung up"
			if lc.oc.State() == CallRinging {
				reason = "missed"
			}
			lc.stop(reason, false)
		}
	}
}

// liveLost ends live calls still ringing when the socket drops: they can't be answered
// any more. Answered ones go on; their media never went through the server.
func (s *Session) liveLost() {
	s.live.mu.Lock()
	var ringing []*liveCall
	for _, lc := range s.live.calls {
		if lc.oc.State() == CallRinging {
			ringing = append(ringing, lc)
		}
	}
	s.live.mu.Unlock()
	for _, lc := range ringing {
		lc.stop("missed", false)
	}
}

// ringLive turns an offer into a ringing incoming OwnCall of kind live.
func (s *Session) ringLive(m liveMsg) {
	name := "Web visitor"
	if m.Visitor != nil && strings.TrimSpace(m.Visitor.Name) != "" {
		name = strings.TrimSpace(m.Visitor.Name)
	}
	oc := &OwnCall{s: s, incoming: true, number: "web", name: name, id: m.CallID, state: CallRinging, done: make(chan struct{})}
	lc := &liveCall{
		s:           s,
		oc:          oc,
		id:          m.CallID,
		offer:       m.SDP,
		fingerprint: sdpFingerprint(m.SDP),
		audio:       newLiveAudio(),
		end:         make(chan struct{}),
	}
	oc.live = lc
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.own = append(s.own, oc)
	s.mu.Unlock()
	s.live.mu.Lock()
	if s.live.calls == nil {
		s.live.calls = make(map[string]*liveCall)
	}
	s.live.calls[lc.id] = lc
	s.live.mu.Unlock()
	if !s.goTracked(lc.run) {
		lc.stop("logged out", false)
		lc.teardown()
		return
	}
	s.log.Info("live call ringing", "call", lc.id, "visitor", name)
	s.changed()
}

// liveCall is the WebRTC side of one live OwnCall.
type liveCall struct {
	s           *Session
	oc          *OwnCall
	id          string
	offer       string
	fingerprint string // the visitor's DTLS fingerprint, as the offer states it
	audio       *liveAudio
	end         chan struct{} // closed by stop

	mu         sync.Mutex
	stopped    bool
	reason     string
	answering  sync.WaitGroup // an Answer in progress; teardown waits for it
	pc         *webrtc.PeerConnection
	sender     *webrtc.RTPSender
	codec      string
	pending    []webrtc.ICECandidateInit // trickled before the answer
	remoteSet  bool
	streams    sync.WaitGroup // sender, receiver and RTCP reader
	tapped     bool
	connection webrtc.PeerConnectionState
	dtlsFailed bool // the handshake failed (or the certificate did not match the offer)
	dtlsUp     bool // the handshake completed once
}

// run waits for the call to end and frees what it holds.
func (lc *liveCall) run() {
	<-lc.end
	lc.teardown()
}

// stop ends the call; bye sends the server a hangup (or a decline while ringing).
func (lc *liveCall) stop(reason string, bye bool) {
	lc.mu.Lock()
	if lc.stopped {
		lc.mu.Unlock()
		return
	}
	lc.stopped, lc.reason = true, reason
	lc.mu.Unlock()
	if bye {
		typ := "hangup"
		if lc.oc.State() == CallRinging {
			typ = "decline"
		}
		ctx, cancel := context.WithTimeout(context.Background(), closeWait)
		if err := lc.s.sendLive(ctx, liveMsg{Type: typ, CallID: lc.id}); err != nil {
			lc.s.log.Warn("live call: telling the server", "type", typ, "err", err)
		}
		cancel()
	}
	close(lc.end)
}

func (lc *liveCall) isStopped() bool {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return lc.stopped
}

func (lc *liveCall) teardown() {
	lc.answering.Wait()
	lc.mu.Lock()
	pc, tapped, reason := lc.pc, lc.tapped, lc.reason
	lc.mu.Unlock()
	if tapped {
		lc.s.hub.detach(lc.audio)
	}
	if pc != nil {
		if err := pc.GracefulClose(); err != nil {
			lc.s.log.Debug("live call: closing the peer connection", "err", err)
		}
	}
	lc.streams.Wait()
	s := lc.s
	s.live.mu.Lock()
	if s.live.calls[lc.id] == lc {
		delete(s.live.calls, lc.id)
	}
	s.live.mu.Unlock()
	s.log.Info("live call ended", "call", lc.id, "reason", reason)
	lc.oc.finish(reason)
}

// addCandidate takes one of the visitor's trickled candidates: dropped when its address
// is outside the configured networks, kept until the answer when it comes early.
func (lc *liveCall) addCandidate(c webrtc.ICECandidateInit) {
	if c.Candidate != "" && !lc.s.liveCfg.allowsCandidate(c.Candidate) {
		lc.s.log.Debug("live call: dropped a candidate outside the allowed networks", "candidate", c.Candidate)
		return
	}
	lc.mu.Lock()
	if !lc.remoteSet || lc.pc == nil {
		lc.pending = append(lc.pending, c)
		lc.mu.Unlock()
		return
	}
	pc := lc.pc
	lc.mu.Unlock()
	if err := pc.AddICECandidate(c); err != nil {
		lc.s.log.Debug("live call: adding a candidate", "err", err)
	}
}

// allowsCandidate tells whether an ICE candidate line ("candidate:1 1 udp 2122 127.0.0.1
// 5000 typ host …") names an address inside the networks; an mDNS name (x.local) is not
// an address and is dropped when networks are set.
func (c LiveConfig) allowsCandidate(line string) bool {
	f := strings.Fields(strings.TrimPrefix(strings.TrimPrefix(line, "a="), "candidate:"))
	if len(f) < 6 {
		return false
	}
	if len(c.Networks) == 0 {
		return true
	}
	a, err := netip.ParseAddr(f[4])
	return err == nil && c.allows(a)
}

// filterOffer drops the offer's candidates outside the networks.
func (c LiveConfig) filterOffer(sdp string) string {
	if len(c.Networks) == 0 {
		return sdp
	}
	lines := strings.SplitAfter(sdp, "\n")
	lines = slices.DeleteFunc(lines, func(l string) bool {
		l = strings.TrimRight(l, "\r\n")
		return strings.HasPrefix(l, "a=candidate:") && !c.allowsCandidate(l)
	})
	return strings.Join(lines, "")
}

// sdpFingerprint is the first a=fingerprint of an SDP: "sha-256 AB:CD:…".
func sdpFingerprint(sdp string) string {
	for l := range strings.Lines(sdp) {
		if v, ok := strings.CutPrefix(strings.TrimRight(l, "\r\n"), "a=fingerprint:"); ok {
			return v
		}
	}
	return ""
}

// offersOpus tells whether an SDP offers Opus.
func offersOpus(sdp string) bool {
	for l := range strings.Lines(sdp) {
		if strings.HasPrefix(l, "a=rtpmap:") && strings.Contains(strings.ToLower(l), " opus/48000") {
			return true
		}
	}
	return false
}

var (
	opusCodec = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: opus.RTPClockRate, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}
	pcmuCodec = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: media.SampleRate, Channels: 1}
)

// newLiveAPI is pion set up for one live call: Opus and PCMU only, UDP, no mDNS,
// loopback allowed, and gathering and remote addresses held to the configured networks.
func newLiveAPI(cfg LiveConfig) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: opusCodec, PayloadType: 111}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: pcmuCodec, PayloadType: 0}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	if len(cfg.Networks) > 0 {
		se.SetIPFilter(cfg.allowsIP)
		se.SetRemoteIPFilter(cfg.allowsIP)
	}
	if cfg.ICEDisconnected > 0 || cfg.ICEFailed > 0 {
		disc, failed := cfg.ICEDisconnected, cfg.ICEFailed
		if disc <= 0 {
			disc = 5 * time.Second
		}
		if failed <= 0 {
			failed = 25 * time.Second
		}
		se.SetICETimeouts(disc, failed, min(2*time.Second, disc/2))
	}
	if len(cfg.Interfaces) > 0 {
		se.SetInterfaceFilter(func(name string) bool { return slices.Contains(cfg.Interfaces, name) })
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se)), nil
}

// answer builds the peer connection, waits for ICE gathering to complete and sends the
// answer; the call's audio then flows through the session's device.
func (lc *liveCall) answer(ctx context.Context) error {
	lc.mu.Lock()
	if lc.stopped {
		lc.mu.Unlock()
		return errors.New("the visitor hung up")
	}
	if lc.pc != nil {
		lc.mu.Unlock()
		return errors.New("already answered")
	}
	lc.answering.Add(1)
	lc.mu.Unlock()
	defer lc.answering.Done()
	if err := lc.connect(ctx); err != nil {
		lc.stop("failed", true)
		return fmt.Errorf("answering the live call: %w", err)
	}
	return nil
}

func (lc *liveCall) connect(ctx context.Context) error {
	s := lc.s
	api, err := newLiveAPI(s.liveCfg)
	if err != nil {
		return err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return err
	}
	lc.mu.Lock()
	lc.pc = pc // teardown closes it from here on
	lc.mu.Unlock()

	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		lc.mu.Lock()
		lc.connection = st
		lc.mu.Unlock()
		switch st {
		case webrtc.PeerConnectionStateConnected:
			s.log.Info("live call connected", "call", lc.id, "path", lc.path())
			s.changed()
		case webrtc.PeerConnectionStateFailed:
			lc.stop(lc.failure(), true)
		case webrtc.PeerConnectionStateClosed:
			// Closed by the other end: the visitor's browser closed a working connection
			// (it hangs up: DTLS close_notify), or pion gave up on a handshake that never
			// completed (a certificate that does not match the offer's fingerprint). pion
			// calls these handlers on goroutines of their own, so "failed" may come after.
			// A close of ours comes after stop and changes nothing.
			lc.mu.Lock()
			up := lc.dtlsUp && !lc.dtlsFailed
			lc.mu.Unlock()
			reason := ReasonDTLSFailed
			if up {
				reason = "the other side hung up"
			}
			lc.stop(reason, true)
		}
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		dec, err := newLiveDecoder(tr.Codec().MimeType)
		if err != nil {
			s.log.Warn("live call: can't play the visitor's audio", "err", err)
			return
		}
		lc.audio.setDecoder(dec)
		lc.mu.Lock()
		if lc.stopped {
			lc.mu.Unlock()
			return
		}
		lc.streams.Add(1)
		lc.mu.Unlock()
		go func() {
			defer lc.streams.Done()
			lc.receive(tr)
		}()
	})

	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: s.liveCfg.filterOffer(lc.offer)}); err != nil {
		return fmt.Errorf("the visitor's offer: %w", err)
	}
	cap, codec := pcmuCodec, "PCMU"
	if offersOpus(lc.offer) {
		cap, codec = opusCodec, "opus"
	}
	track, err := webrtc.NewTrackLocalStaticSample(cap, "audio", "ringside")
	if err != nil {
		return err
	}
	sender, err := pc.AddTrack(track)
	if err != nil {
		return err
	}
	// Remember a DTLS failure as it happens: pion closes the connection right after, and
	// by the time the connection state arrives the transport may say "closed".
	sender.Transport().OnStateChange(func(st webrtc.DTLSTransportState) {
		lc.mu.Lock()
		switch st {
		case webrtc.DTLSTransportStateFailed:
			lc.dtlsFailed = true
		case webrtc.DTLSTransportStateConnected:
			lc.dtlsUp = true
		}
		lc.mu.Unlock()
	})
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(ans); err != nil {
		return err
	}
	gctx, cancel := context.WithTimeout(ctx, liveGatherWait)
	defer cancel()
	select {
	case <-gathered:
	case <-lc.end:
		return errors.New("the visitor hung up")
	case <-gctx.Done():
		return fmt.Errorf("gathering network candidates: %w", gctx.Err())
	}

	lc.mu.Lock()
	if lc.stopped {
		lc.mu.Unlock()
		return errors.New("the visitor hung up")
	}
	lc.sender, lc.codec, lc.remoteSet = sender, codec, true
	pending := lc.pending
	lc.pending = nil
	lc.streams.Add(2)
	lc.tapped = true
	lc.mu.Unlock()
	for _, c := range pending {
		if err := pc.AddICECandidate(c); err != nil {
			s.log.Debug("live call: adding a candidate", "err", err)
		}
	}
	go func() {
		defer lc.streams.Done()
		lc.readRTCP(sender)
	}()
	go func() {
		defer lc.streams.Done()
		lc.send(track, codec)
	}()
	s.hub.attach(lc.audio)

	if err := s.sendLive(ctx, liveMsg{Type: "answer", CallID: lc.id, SDP: pc.LocalDescription().SDP}); err != nil {
		return err
	}
	return nil
}

// failure says why the connection failed: DTLS (the visitor's certificate did not match
// its offer, or the handshake broke) or ICE (no network path).
func (lc *liveCall) failure() string {
	lc.mu.Lock()
	failed := lc.dtlsFailed
	lc.mu.Unlock()
	if failed {
		return ReasonDTLSFailed
	}
	return ReasonICEFailed
}

// send encodes each captured frame as soon as it is complete and writes it to the track.
func (lc *liveCall) send(track *webrtc.TrackLocalStaticSample, codec string) {
	var enc *opus.Encoder
	if codec == "opus" {
		var err error
		if enc, err = opus.NewEncoder(); err != nil {
			lc.s.log.Warn("live call: no Opus encoder", "err", err)
			return
		}
	}
	frame := make([]int16, media.FrameSamples)
	buf := make([]byte, opus.MaxPacket)
	for {
		select {
		case <-lc.end:
			return
		case <-lc.audio.ready:
		}
		for lc.audio.takeFrame(frame) {
			n := len(frame)
			if enc != nil {
				var err error
				if n, err = enc.Encode(buf, frame); err != nil {
					continue
				}
			} else {
				media.PCMU.Encode(buf[:n], frame)
			}
			if err := track.WriteSample(pmedia.Sample{Data: buf[:n], Duration: media.FrameDuration}); err != nil {
				return
			}
		}
	}
}

// receive queues the visitor's packets for the speaker until the track ends.
func (lc *liveCall) receive(tr *webrtc.TrackRemote) {
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		if pkt.Unmarshal(buf[:n]) != nil {
			continue
		}
		lc.audio.pushReceived(pkt.SequenceNumber, pkt.Timestamp, pkt.Payload)
	}
}

// readRTCP drains the visitor's reports on the sender, as pion needs.
func (lc *liveCall) readRTCP(sender *webrtc.RTPSender) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := sender.Read(buf); err != nil {
			return
		}
	}
}

func newLiveDecoder(mime string) (liveDecoder, error) {
	switch strings.ToLower(mime) {
	case strings.ToLower(webrtc.MimeTypeOpus):
		d, err := opus.NewDecoder()
		if err != nil {
			return nil, err
		}
		return opusDecoder{d}, nil
	case strings.ToLower(webrtc.MimeTypePCMU):
		return g711Decoder{media.PCMU}, nil
	case strings.ToLower(webrtc.MimeTypePCMA):
		return g711Decoder{media.PCMA}, nil
	}
	return nil, fmt.Errorf("unsupported codec %s", mime)
}

type opusDecoder struct{ d *opus.Decoder }

func (o opusDecoder) decode(dst []int16, payload []byte) int {
	n, err := o.d.Decode(dst, payload)
	if err != nil {
		return 0
	}
	return n
}

func (o opusDecoder) conceal(dst []int16) int {
	if o.d.Conceal(dst) != nil {
		return 0
	}
	return len(dst)
}

type g711Decoder struct{ c media.Codec }

func (g g711Decoder) decode(dst []int16, payload []byte) int {
	n := min(len(dst), len(payload))
	g.c.Decode(dst[:n], payload[:n])
	return n
}

func (g711Decoder) conceal([]int16) int { return 0 }

// path is the selected ICE candidate pair, "local -> remote".
func (lc *liveCall) path() string {
	info := lc.info()
	if !info.Remote.IsValid() {
		return ""
	}
	return info.Local.String() + " -> " + info.Remote.String()
}

// LiveInfo is what a live call's connection is made of, for the curious and for tests.
type LiveInfo struct {
	Codec string // "opus" or "PCMU": what this end sends
	// RemoteFingerprint is the visitor's DTLS certificate fingerprint as its offer stated
	// it ("sha-256 AB:CD:…"); RemoteCertFingerprint is the SHA-256 of the certificate the
	// DTLS handshake actually presented, in the same form ("" until connected). pion
	// refuses a handshake whose certificate does not match the offer.
	RemoteFingerprint     string
	RemoteCertFingerprint string
	// Local and Remote are the selected ICE candidate pair: where this end sends from
	// and to (zero until connected).
	Local, Remote netip.AddrPort
	Connection    string // pion's peer connection state: new, connecting, connected, failed, closed
}

// LiveInfo describes a live call's connection; ok is false for a phone call.
func (c *OwnCall) LiveInfo() (info LiveInfo, ok bool) {
	if c.live == nil {
		return LiveInfo{}, false
	}
	return c.live.info(), true
}

func (lc *liveCall) info() LiveInfo {
	lc.mu.Lock()
	info := LiveInfo{Codec: lc.codec, RemoteFingerprint: lc.fingerprint, Connection: lc.connection.String()}
	sender := lc.sender
	lc.mu.Unlock()
	if sender == nil {
		return info
	}
	dtls := sender.Transport()
	if dtls == nil {
		return info
	}
	if der := dtls.GetRemoteCertificate(); len(der) > 0 {
		info.RemoteCertFingerprint = "sha-256 " + colonHex(sha256.Sum256(der))
	}
	if pair, err := dtls.ICETransport().GetSelectedCandidatePair(); err == nil && pair != nil {
		info.Local = candidateAddr(pair.Local)
		info.Remote = candidateAddr(pair.Remote)
	}
	return info
}

func candidateAddr(c *webrtc.ICECandidate) netip.AddrPort {
	if c == nil {
		return netip.AddrPort{}
	}
	a, err := netip.ParseAddr(c.Address)
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a.Unmap(), c.Port)
}

func colonHex(sum [sha256.Size]byte) string {
	const digits = "0123456789ABCDEF"
	var b strings.Builder
	for i, x := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteByte(digits[x>>4])
		b.WriteByte(digits[x&15])
	}
	return b.String()
}
