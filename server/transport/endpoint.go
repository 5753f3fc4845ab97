// Package transport carries a leg's RTP: one UDP socket per leg, latched to the address
// the peer signalled in SDP, feeding the room's jitter buffer and sending the room's frames
// as one continuous stream.
package transport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"ringside/media"
)

// Sink takes what arrives on a leg. The room's Leg implements it.
type Sink interface {
	Push(seq uint16, ts uint32, payload []byte)
	Heard()
}

// Stats counts what an endpoint saw; read with atomic loads.
type Stats struct {
	Received  atomic.Uint64 // audio packets accepted
	Sent      atomic.Uint64
	Foreign   atomic.Uint64 // from an address other than the signalled one (RTP bleed), dropped
	Malformed atomic.Uint64 // not RTP, or an unexpected payload type, dropped
}

// Endpoint is one leg's RTP socket.
type Endpoint struct {
	conn   *net.UDPConn
	local  netip.AddrPort
	remote atomic.Pointer[netip.AddrPort]
	codec  atomic.Uint32 // media.Codec of the inbound and outbound audio
	dtmfPT atomic.Uint32 // 0: none
	levels atomic.Uint32 // RFC 8285 id of the RFC 6465 levels extension; 0: not negotiated

	sink   atomic.Pointer[Sink]
	onDTMF atomic.Pointer[func(rune)]

	// Outgoing stream state; only WriteFrame touches it (the room's clock).
	ssrc    uint32
	seq     uint16
	ts      uint32
	started bool
	out     [12 + 4*15 + 4 + 16 + media.MaxFramePayload]byte

	// The inbound audio stream, so frames are numbered by timestamp (reader goroutine only).
	inSSRC  uint32
	inTS0   uint32
	inKnown bool

	// Last telephone-event seen, so its retransmitted end packets count once.
	lastEventTS uint32
	lastEnded   bool

	Stats Stats

	closeOnce sync.Once
	done      chan struct{}
}

// ErrNoPorts means the configured RTP port range is used up.
var ErrNoPorts = errors.New("no free RTP port in the configured range: widen --rtp-ports")

// Ports hands out RTP ports from a range, round-robin, skipping ones in use.
type Ports struct {
	ip       netip.Addr
	min, max uint16
	mu       sync.Mutex
	next     uint16
}

// NewPorts serves ports min..max on ip. min 0 means any free port (tests).
func NewPorts(ip netip.Addr, min, max uint16) *Ports {
	return &Ports{ip: ip, min: min, max: max, next: min}
}

// Open binds an endpoint on the next free even port (RTP convention; RTCP is multiplexed
// or ignored).
func (p *Ports) Open() (*Endpoint, error) {
	if p.min == 0 {
		return listen(netip.AddrPortFrom(p.ip, 0))
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
		if e, err := listen(netip.AddrPortFrom(p.ip, port)); err == nil {
			return e, nil
		}
	}
	return nil, ErrNoPorts
}

func listen(addr netip.AddrPort) (*Endpoint, error) {
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return nil, fmt.Errorf("rtp listen %s: %w", addr, err)
	}
	e := &Endpoint{
		conn:  conn,
		local: conn.LocalAddr().(*net.UDPAddr).AddrPort(),
		ssrc:  rand.Uint32(),
		seq:   uint16(rand.Uint32()),
		ts:    rand.Uint32(),
		done:  make(chan struct{}),
	}
	return e, nil
}

// LocalAddr is where the peer should send RTP (goes into our SDP).
func (e *Endpoint) LocalAddr() netip.AddrPort { return e.local }

// SSRC of the stream we send.
func (e *Endpoint) SSRC() uint32 { return e.ssrc }

// Configure sets the peer's signalled address and payload types (offer/answer, re-INVITE).
func (e *Endpoint) Configure(remote netip.AddrPort, codec media.Codec, dtmfPT uint8) {
	e.remote.Store(&remote)
	e.codec.Store(uint32(codec))
	e.dtmfPT.Store(uint32(dtmfPT))
}

// SetLevelsID turns on RFC 6465 levels with the extension id both sides agreed on.
func (e *Endpoint) SetLevelsID(id uint8) { e.levels.Store(uint32(id)) }

// LevelsID is the negotiated levels extension id, 0 when off.
func (e *Endpoint) LevelsID() uint8 { return uint8(e.levels.Load()) }

// Remote is the latched peer address.
func (e *Endpoint) Remote() netip.AddrPort {
	if r := e.remote.Load(); r != nil {
		return *r
	}
	return netip.AddrPort{}
}

// Attach sets where inbound audio goes.
func (e *Endpoint) Attach(s Sink) { e.sink.Store(&s) }

// OnDTMF is called once per RFC 4733 digit (at its end), from the reader goroutine.
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
	if r == nil || !r.IsValid() || r.Port() == 0 {
		return nil
	}
	h := media.RTPHeader{
		Marker:      !e.started,
		PayloadType: uint8(e.codec.Load()),
		Seq:         e.seq,
		Timestamp:   e.ts,
		SSRC:        e.ssrc,
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
	_, err := e.conn.WriteToUDPAddrPort(e.out[:n], *r)
	if err == nil {
		e.Stats.Sent.Add(1)
	}
	return err
}

// Run reads packets until Close. Only packets from the signalled address are taken.
func (e *Endpoint) Run() {
	buf := make([]byte, 1500)
	for {
		n, from, err := e.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		e.handle(buf[:n], from)
	}
}

func (e *Endpoint) handle(pkt []byte, from netip.AddrPort) {
	r := e.remote.Load()
	if r == nil || from.Addr().Unmap() != r.Addr().Unmap() || from.Port() != r.Port() {
		e.Stats.Foreign.Add(1)
		return
	}
	sp := e.sink.Load()
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
			(*sp).Push(e.frameNumber(h), h.Timestamp, payload)
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
	if d, ok := media.DTMFDigit(ev.Event); ok {
		if f := e.onDTMF.Load(); f != nil {
			(*f)(d)
		}
	}
}

// Close releases the socket and stops Run.
func (e *Endpoint) Close() error {
	var err error
	e.closeOnce.Do(func() {
		err = e.conn.Close()
		close(e.done)
	})
	return err
}

// Done is closed by Close.
func (e *Endpoint) Done() <-chan struct{} { return e.done }
