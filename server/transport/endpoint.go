// Package transport carries a leg's RTP, latched to the address the peer signalled in SDP,
// feeding the room's jitter buffer and sending the room's frames as one continuous stream.
// A leg's Endpoint has a UDP socket of its own, or a place on a socket shared with other
// legs (mux.go: Ports.EnableMux), told apart by the peer's address.
//
// No goroutine waits on a socket: the room's clock drains it (Receive) when the leg's
// frame is due, in batches (the kernel's arrival stamps say when each packet came), and
// writes the leg's frames to it. At hundreds of legs a
// goroutine per leg would cost a poller wake-up and a reschedule per packet, and compete
// with the clock for the CPU.
package transport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"ringside/media"
	"ringside/media/dtlssrtp"
)

const (
	rxBatchLen = 8    // datagrams per receive call
	rxBufSize  = 1500 // per datagram; an RTP packet of 20 ms G.711 is 172 bytes
	// rxMaxBatches bounds one drain (8 × 4 = 32 datagrams, against one or two a frame in
	// normal flow), so a flood on one socket can't stall the clock for every other room;
	// what's left waits for the next drain or overflows the socket buffer.
	rxMaxBatches = 4
)

var batches = sync.Pool{New: func() any { return newBatch(rxBatchLen) }}

// Sink takes what arrives on a leg. The room's Leg implements it.
type Sink interface {
	// PushAt takes one audio frame and when it reached the host (the kernel's stamp
	// where there is one): the room times the leg's frames by it.
	PushAt(seq uint16, ts uint32, payload []byte, at time.Time)
	Heard()
}

// Stats counts what an endpoint saw; read with atomic loads.
type Stats struct {
	Received  atomic.Uint64 // audio packets accepted
	Sent      atomic.Uint64
	Foreign   atomic.Uint64 // from an address other than the signalled one (RTP bleed), dropped
	Malformed atomic.Uint64 // not RTP, or an unexpected payload type, dropped
	// SRTPDropped counts SRTP packets that failed authentication or the replay check, or
	// came before the DTLS handshake gave keys; dropped.
	SRTPDropped atomic.Uint64
}

// Endpoint is one leg's RTP socket.
type Endpoint struct {
	// io holds the socket against Close while a drain or a write uses it (a raw file
	// descriptor closed mid-call could be reused by another leg's socket). It also makes
	// drains exclusive, so the inbound state below needs no other lock.
	io   sync.Mutex
	sock *sock // nil once closed, and on a shared socket
	v6   bool  // the socket is IPv6 (dual-stack): peers are addressed in IPv6 form
	// mux is the shared socket the leg is on; nil when it has its own. Set at open.
	mux    *muxSock
	closed atomic.Bool
	local  netip.AddrPort
	remote atomic.Pointer[peer]
	codec  atomic.Uint32 // media.Codec of the inbound and outbound audio
	dtmfPT atomic.Uint32 // 0: none
	levels atomic.Uint32 // RFC 8285 id of the RFC 6465 levels extension; 0: not negotiated

	sink   atomic.Pointer[Sink]
	onDTMF atomic.Pointer[func(rune)]

	// secure is the leg's DTLS-SRTP session; nil on a plain RTP leg. Its buffers are
	// allocated with it, so plain legs don't carry them.
	secure atomic.Pointer[dtlssrtp.Session]
	srtp   *srtpBuffers

	// Outgoing stream state; only WriteFrame touches it (the room's clock).
	ssrc    uint32
	seq     uint16
	ts      uint32
	started bool
	out     [12 + 4*15 + 4 + 16 + media.MaxFramePayload]byte
	event   outEvent // a relayed digit being sent in place of audio

	// Digits to send (RFC 4733), taken by WriteFrame.
	sendQ chan uint8

	// The inbound audio stream, so frames are numbered by timestamp (drains only, under io).
	inSSRC  uint32
	inTS0   uint32
	inKnown bool

	// Last telephone-event seen, so its retransmitted end packets count once.
	lastEventTS uint32
	lastEnded   bool

	Stats Stats

	// Digits waiting for the OnDTMF callback, delivered in order off the clock's goroutine.
	dtmfMu   sync.Mutex
	dtmfQ    []rune
	dtmfBusy bool

	closeOnce sync.Once
	done      chan struct{}
}

// outEvent is the state of one RFC 4733 event on our outgoing stream.
type outEvent struct {
	active bool
	code   uint8
	ts     uint32 // the event's timestamp: where it began
	n      int    // packets sent so far
	gap    int    // frames of audio to send before the next digit
}

// Event timing: 8 frames (160 ms) of tone, the end packet three times (RFC 4733 §2.5.1.4),
// then 2 frames of audio between digits.
const (
	eventFrames    = 8
	eventEndCopies = 3
	eventGap       = 2
)

// SendDTMF queues a digit to go out as RFC 4733 events in place of audio, when the peer
// negotiated telephone-event. It reports false when the digit can't be sent.
func (e *Endpoint) SendDTMF(d rune) bool {
	code, ok := media.DTMFEventCode(d)
	if !ok || e.dtmfPT.Load() == 0 {
		return false
	}
	select {
	case e.sendQ <- code:
		return true
	default:
		return false
	}
}

// nextEvent builds the next telephone-event payload into dst when a digit is being sent,
// and reports whether it did (and with the marker for the event's first packet).
func (e *Endpoint) nextEvent(dst []byte) (n int, ts uint32, marker, ok bool) {
	ev := &e.event
	if !ev.active {
		if ev.gap > 0 {
			ev.gap--
			return 0, 0, false, false
		}
		select {
		case code := <-e.sendQ:
			*ev = outEvent{active: true, code: code, ts: e.ts}
		default:
			return 0, 0, false, false
		}
	}
	d := media.DTMFEvent{Event: ev.code, Volume: 10, Duration: uint16(min(ev.n+1, eventFrames) * media.FrameSamples)}
	d.End = ev.n >= eventFrames-1
	marker = ev.n == 0
	ev.n++
	ts = ev.ts
	if ev.n >= eventFrames-1+eventEndCopies {
		*ev = outEvent{gap: eventGap}
	}
	return d.Marshal(dst), ts, marker, true
}

// ErrNoPorts means the configured RTP port range is used up.
var ErrNoPorts = errors.New("no free RTP port in the configured range: widen --rtp-ports")

// Ports hands out RTP ports from a range, round-robin, skipping ones in use, and the
// shared sockets when they are on (EnableMux).
type Ports struct {
	ip       netip.Addr
	min, max uint16
	mu       sync.Mutex
	next     uint16
	mux      []*MuxShard // by clock shard; nil: a socket per leg
}

// NewPorts serves ports min..max on ip. min 0 means any free port (tests).
func NewPorts(ip netip.Addr, min, max uint16) *Ports {
	return &Ports{ip: ip, min: min, max: max, next: min}
}

// Open binds an endpoint on the next free even port (RTP convention; RTCP is multiplexed
// or ignored).
func (p *Ports) Open() (*Endpoint, error) {
	s, local, err := p.bind()
	if err != nil {
		return nil, err
	}
	return newSockEndpoint(s, local), nil
}

// bind opens a socket on the next free even port.
func (p *Ports) bind() (*sock, netip.AddrPort, error) {
	if p.min == 0 {
		return bindSock(netip.AddrPortFrom(p.ip, 0))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	span := int(p.max-p.min) + 1
	for range span {
		port := p.next
		p.next++
		if p.next > p.max || p.next < p.min {
			p.next = p.min
		}
		if port%2 == 1 {
			continue
		}
		if s, local, err := bindSock(netip.AddrPortFrom(p.ip, port)); err == nil {
			return s, local, nil
		}
	}
	return nil, netip.AddrPort{}, ErrNoPorts
}

func bindSock(addr netip.AddrPort) (*sock, netip.AddrPort, error) {
	s, local, err := openSock(addr)
	if err != nil {
		return nil, netip.AddrPort{}, fmt.Errorf("rtp listen %s: %w", addr, err)
	}
	return s, local, nil
}

func newSockEndpoint(s *sock, local netip.AddrPort) *Endpoint {
	e := newEndpoint(local, s.v6)
	e.sock = s
	return e
}

func newEndpoint(local netip.AddrPort, v6 bool) *Endpoint {
	return &Endpoint{
		v6:    v6,
		local: local,
		ssrc:  rand.Uint32(),
		seq:   uint16(rand.Uint32()),
		ts:    rand.Uint32(),
		done:  make(chan struct{}),
		sendQ: make(chan uint8, 16),
	}
}

// LocalAddr is where the peer should send RTP (goes into our SDP).
func (e *Endpoint) LocalAddr() netip.AddrPort { return e.local }

// SSRC of the stream we send.
func (e *Endpoint) SSRC() uint32 { return e.ssrc }

// Configure sets the peer's signalled address and payload types (offer/answer, re-INVITE).
// On a shared socket it fails with ErrPeerShared, changing nothing, when another leg on
// that socket already has the same peer address.
func (e *Endpoint) Configure(remote netip.AddrPort, codec media.Codec, dtmfPT uint8) error {
	if e.mux != nil {
		if e.closed.Load() {
			return net.ErrClosed
		}
		if err := e.mux.rebind(e, e.Remote(), remote); err != nil {
			return err
		}
	}
	e.remote.Store(newPeer(remote, e.v6))
	e.codec.Store(uint32(codec))
	e.dtmfPT.Store(uint32(dtmfPT))
	return nil
}

// SetLevelsID turns on RFC 6465 levels with the extension id both sides agreed on.
func (e *Endpoint) SetLevelsID(id uint8) { e.levels.Store(uint32(id)) }

// LevelsID is the negotiated levels extension id, 0 when off.
func (e *Endpoint) LevelsID() uint8 { return uint8(e.levels.Load()) }

// Remote is the latched peer address.
func (e *Endpoint) Remote() netip.AddrPort {
	if r := e.remote.Load(); r != nil {
		return r.ap
	}
	return netip.AddrPort{}
}

// Attach sets where inbound audio goes.
func (e *Endpoint) Attach(s Sink) { e.sink.Store(&s) }

// OnDTMF is called once per RFC 4733 digit (at its end), in order, from a goroutine of its
// own (never the clock's, so it may take locks).
func (e *Endpoint) OnDTMF(f func(rune)) { e.onDTMF.Store(&f) }

// WriteFrame sends one 20 ms frame as the next packet of our stream. Sequence numbers and
// timestamps advance by exactly one frame per call, whoever builds the frames.
func (e *Endpoint) WriteFrame(payload []byte) error {
	return e.WriteFrameLevels(payload, nil, nil)
}

// WriteFrameLevels is WriteFrame with the levels of the mixed sources, sent when the peer
// negotiated them (RFC 6465).
func (e *Endpoint) WriteFrameLevels(payload []byte, csrc []uint32, levels []uint8) error {
	r := e.remote.Load()
	if r == nil || !r.ap.IsValid() || r.ap.Port() == 0 {
		return nil
	}
	h := media.RTPHeader{
		Marker:      !e.started,
		PayloadType: uint8(e.codec.Load()),
		Seq:         e.seq,
		Timestamp:   e.ts,
		SSRC:        e.ssrc,
	}
	var ev [4]byte
	if n, ts, marker, ok := e.nextEvent(ev[:]); ok {
		// A relayed digit replaces this frame's audio, on the same sequence and clock.
		h.PayloadType, h.Timestamp, h.Marker, payload, csrc = uint8(e.dtmfPT.Load()), ts, marker, ev[:n], nil
	}
	e.started = true
	e.seq++
	e.ts += media.FrameSamples
	var n int
	if id := uint8(e.levels.Load()); id != 0 && len(csrc) > 0 && len(csrc) == len(levels) {
		n = media.MarshalRTPLevels(e.out[:], h, id, csrc, levels, payload)
	} else {
		n = media.MarshalRTP(e.out[:], h, payload)
	}
	pkt := e.out[:n]
	if sec := e.secure.Load(); sec != nil {
		// Each leg's stream is protected with that leg's own keys: what the room relays
		// between two SRTP legs is decrypted on one and encrypted anew on the other.
		var err error
		if pkt, err = sec.EncryptRTP(e.srtp.tx[:0], pkt); err != nil {
			return nil // no keys yet (handshake under way): the frame is not sent
		}
	}
	if e.mux != nil {
		if e.closed.Load() {
			return net.ErrClosed
		}
		return e.mux.write(e, pkt, r)
	}
	e.io.Lock()
	if e.sock == nil {
		e.io.Unlock()
		return net.ErrClosed
	}
	err := e.sock.sendTo(pkt, r)
	e.io.Unlock()
	if err == nil {
		e.Stats.Sent.Add(1)
	}
	return err
}

// Receive takes everything queued on the socket, without waiting, into the sink: the
// room's clock calls it for each leg before taking the leg's frame. Only packets from the
// signalled address are taken. On a shared socket it drains the whole socket, every leg's
// packets to its own sink; the clock does that every poll for all of them instead.
func (e *Endpoint) Receive() {
	if e.mux != nil {
		if !e.closed.Load() {
			e.mux.drain()
		}
		return
	}
	b := batches.Get().(*rxBatch)
	e.io.Lock()
	for range rxMaxBatches {
		if e.sock == nil {
			break
		}
		n := e.sock.recv(b)
		now := time.Now()
		for i := range n {
			pkt, from := b.packet(i)
			e.handle(pkt, from, b.arrival(i, now))
		}
		if n < b.size() {
			break
		}
	}
	e.io.Unlock()
	batches.Put(b)
}

// Run drains the endpoint every few milliseconds until Close, for an endpoint no room
// drives (tests, tools). A leg in a room must not also be Run: the room drains it.
func (e *Endpoint) Run() {
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-e.done:
			return
		case <-t.C:
			e.Receive()
		}
	}
}

func (e *Endpoint) handle(pkt []byte, from netip.AddrPort, at time.Time) {
	r := e.remote.Load()
	if r == nil || from.Addr().Unmap() != r.ap.Addr().Unmap() || from.Port() != r.ap.Port() {
		e.Stats.Foreign.Add(1)
		return
	}
	sp := e.sink.Load()
	if sec := e.secure.Load(); sec != nil {
		switch {
		case dtlssrtp.IsDTLS(pkt):
			sec.HandleDTLS(pkt)
			return
		case media.IsRTCP(pkt):
			// SRTCP: alive if it authenticates; its reports are not used.
			if _, err := sec.DecryptRTCP(e.srtp.rx[:0], pkt); err != nil {
				e.Stats.SRTPDropped.Add(1)
			} else if sp != nil {
				(*sp).Heard()
			}
			return
		}
		plain, err := sec.DecryptRTP(e.srtp.rx[:0], pkt)
		if err != nil {
			e.Stats.SRTPDropped.Add(1)
			return
		}
		pkt = plain
	}
	if media.IsRTCP(pkt) {
		if sp != nil {
			(*sp).Heard()
		}
		return
	}
	h, payload, err := media.ParseRTP(pkt)
	if err != nil {
		e.Stats.Malformed.Add(1)
		return
	}
	switch {
	case h.PayloadType == uint8(e.codec.Load()):
		e.Stats.Received.Add(1)
		if sp != nil {
			(*sp).PushAt(e.frameNumber(h), h.Timestamp, payload, at)
		}
	case h.PayloadType != 0 && uint32(h.PayloadType) == e.dtmfPT.Load():
		if sp != nil {
			(*sp).Heard()
		}
		e.handleDTMF(h, payload)
	case h.PayloadType == 13: // comfort noise: alive, nothing to play
		if sp != nil {
			(*sp).Heard()
		}
	default:
		e.Stats.Malformed.Add(1)
	}
}

// frameNumber numbers audio frames by timestamp rather than sequence number: phones send
// telephone-event packets in the same sequence space (RFC 4733), and numbering by sequence
// would turn every DTMF packet into a lost audio frame for the jitter buffer.
func (e *Endpoint) frameNumber(h media.RTPHeader) uint16 {
	if !e.inKnown || h.SSRC != e.inSSRC {
		e.inSSRC, e.inTS0, e.inKnown = h.SSRC, h.Timestamp, true
	}
	return uint16((h.Timestamp - e.inTS0) / media.FrameSamples)
}

// handleDTMF reports a digit once, at the first end packet of its event (RFC 4733 §2.5.1.4:
// the end packet is sent three times; all share the event's timestamp).
func (e *Endpoint) handleDTMF(h media.RTPHeader, payload []byte) {
	ev, err := media.ParseDTMFEvent(payload)
	if err != nil {
		e.Stats.Malformed.Add(1)
		return
	}
	if h.Timestamp != e.lastEventTS {
		e.lastEventTS, e.lastEnded = h.Timestamp, false
	}
	if !ev.End || e.lastEnded {
		return
	}
	e.lastEnded = true
	if d, ok := media.DTMFDigit(ev.Event); ok && e.onDTMF.Load() != nil {
		e.queueDTMF(d)
	}
}

// queueDTMF hands a digit to the callback off the draining goroutine (the clock's, which
// must not wait on the locks the callback takes). Digits are rare: a goroutine runs only
// while some are pending, and delivers them in order.
func (e *Endpoint) queueDTMF(d rune) {
	e.dtmfMu.Lock()
	e.dtmfQ = append(e.dtmfQ, d)
	start := !e.dtmfBusy
	e.dtmfBusy = true
	e.dtmfMu.Unlock()
	if start {
		go e.deliverDTMF()
	}
}

func (e *Endpoint) deliverDTMF() {
	for {
		e.dtmfMu.Lock()
		if len(e.dtmfQ) == 0 {
			e.dtmfBusy = false
			e.dtmfMu.Unlock()
			return
		}
		d := e.dtmfQ[0]
		e.dtmfQ = e.dtmfQ[1:]
		e.dtmfMu.Unlock()
		if f := e.onDTMF.Load(); f != nil {
			(*f)(d)
		}
	}
}

// srtpBuffers are a secured leg's scratch: packets are decrypted into rx on the drain
// (under io) and encrypted into tx by WriteFrame (the clock).
type srtpBuffers struct {
	rx [rxBufSize]byte
	tx [12 + 4*15 + 4 + 16 + media.MaxFramePayload + dtlssrtp.Overhead]byte
}

// Secure turns the leg into a DTLS-SRTP leg (RFC 5763/5764): the handshake runs on this
// socket with the latched peer, in role, and must present the certificate whose fingerprint
// the peer's SDP gave. Until it finishes, audio is neither sent nor accepted. The session's
// Done and Err tell how the handshake went; Close ends it.
func (e *Endpoint) Secure(role dtlssrtp.Role, remote dtlssrtp.Fingerprint) (*dtlssrtp.Session, error) {
	e.io.Lock()
	if e.srtp == nil {
		e.srtp = &srtpBuffers{}
	}
	e.io.Unlock()
	s, err := dtlssrtp.New(dtlssrtp.Config{Role: role, Remote: remote, Send: e.sendRaw})
	if err != nil {
		return nil, err
	}
	if !e.secure.CompareAndSwap(nil, s) {
		s.Close()
		return nil, errors.New("transport: leg is already secured")
	}
	return s, nil
}

// Session is the leg's DTLS-SRTP session, nil on a plain RTP leg.
func (e *Endpoint) Session() *dtlssrtp.Session { return e.secure.Load() }

// sendRaw sends one datagram (a DTLS record) to the latched peer.
func (e *Endpoint) sendRaw(pkt []byte) error {
	r := e.remote.Load()
	if r == nil || !r.ap.IsValid() || r.ap.Port() == 0 {
		return nil // nowhere yet: DTLS retransmits
	}
	if e.mux != nil {
		if e.closed.Load() {
			return net.ErrClosed
		}
		return e.mux.sendNow(pkt, r)
	}
	e.io.Lock()
	defer e.io.Unlock()
	if e.sock == nil {
		return net.ErrClosed
	}
	return e.sock.sendTo(pkt, r)
}

// Close releases the socket and stops Run. It waits for a drain or a write in progress,
// after which no other call touches the socket.
func (e *Endpoint) Close() error {
	var err error
	e.closeOnce.Do(func() {
		if s := e.secure.Load(); s != nil {
			s.Close() // before the socket: its last writes need it or fail cleanly
		}
		if e.mux != nil {
			// The shared socket stays; once release returns no drain reaches this leg.
			e.closed.Store(true)
			e.mux.release(e)
			close(e.done)
			return
		}
		e.io.Lock()
		err = e.sock.close()
		e.sock = nil
		e.io.Unlock()
		close(e.done)
	})
	return err
}

// Done is closed by Close.
func (e *Endpoint) Done() <-chan struct{} { return e.done }
