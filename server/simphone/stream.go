package simphone

import (
	"errors"
	"log/slog"
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
	toneAmplitude   = 0.3
	defaultDTMFType = 101
	dtmfVolume      = 10 // -dBm0
	dtmfToneFrames  = 5  // 100 ms of event before the End packets
	dtmfEndPackets  = 3  // End packet sent three times (RFC 4733 §2.5.1.4)
	dtmfGapFrames   = 2  // audio frames between two events
)

// Stats counts the packets of one call's RTP stream.
type Stats struct {
	Sent         int              // RTP packets sent (audio and telephone-event)
	SentDTMF     int              // telephone-event packets sent
	Received     int              // audio packets received (recorded)
	ReceivedDTMF int              // telephone-event packets received
	RTCP         int              // RTCP packets received (ignored)
	Other        int              // packets that were neither (bad RTP, unknown payload type)
	SRTPDropped  int              // SRTP packets that failed authentication or replay checks, or came before the keys
	Sources      []netip.AddrPort // every address packets came from, in order of first appearance
}

type waiter struct {
	n  int
	ch chan struct{}
}

type dtmfState struct {
	code uint8
	ts   uint32
	n    int
}

// stream is the RTP side of a call: one UDP socket, a sender on a steady
// 20 ms clock and a receiver that records what arrives.
type stream struct {
	conn *net.UDPConn
	rx   *rtpReader // the receive loop's
	prx  *rtpReader // the sound card's (pollPackets), nil without one: see recvLoop
	// rxMu serializes handling what either reader got (SRTP decrypts one at a time).
	rxMu  sync.Mutex
	pbuf  []byte // pollPackets' scratch: packet, decrypted packet, decoded audio
	pdec  []byte
	ppcm  []int16
	tx    *rtpWriter // the send loop's
	local netip.AddrPort
	log   *slog.Logger
	limit int // samples kept in the recording; 0 keeps all

	// audio, when the phone has a device, replaces the tone with captured audio and
	// feeds what arrives to the speaker; nil otherwise.
	audio   *streamAudio
	onClose func() // detaches audio from the device

	// captured is the sender's state with a sound card, shared by the send loop (while
	// the device stalls) and the device's goroutine (sendCaptured).
	captured struct {
		mu    sync.Mutex
		x     *sender     // nil until the send loop starts, and once it ends
		stall *time.Timer // the send loop's: no frame for stallAfter
		last  time.Time   // when a captured frame last went out
	}

	mu      sync.Mutex
	remote  netip.AddrPort
	codec   media.Codec
	txDTMF  uint8    // payload type we send telephone-event with
	rxDTMF  [2]uint8 // payload types we accept as telephone-event
	sending bool     // SDP direction lets us send
	muted   bool
	halted  bool        // StopMedia: send nothing at all
	tone    *media.Tone // owned by the sender once handed over
	warned  bool

	rec      []int16
	recTotal int // samples recorded since the last reset, for waiters
	hdrs     []media.RTPHeader
	waiters  []waiter
	stats    Stats
	seenSrc  map[netip.AddrPort]bool
	lastEnd  uint32 // timestamp of the last telephone-event reported
	haveEnd  bool
	lastSSRC uint32

	levelsID uint8 // RFC 8285 id of the RFC 6465 levels extension; 0: none
	levels   [15]uint8
	nLevels  int

	dtmfQ  chan uint8
	digits chan rune

	// secure is the DTLS-SRTP session of a secured call; nil for plain RTP. The receive
	// loop hands it DTLS records and decrypts; the sender encrypts.
	secure atomic.Pointer[dtlssrtp.Session]

	startOnce sync.Once
	closeOnce sync.Once
	stop      chan struct{}
	wg        sync.WaitGroup
}

func newStream(log *slog.Logger, codec media.Codec, toneHz float64, limit time.Duration, digits chan rune) (*stream, error) {
	return newStreamAt(netip.AddrFrom4([4]byte{127, 0, 0, 1}), nil, log, codec, toneHz, limit, digits)
}

// newStreamAt opens the stream's RTP socket on ip; with dev (the phone's device) the
// stream sends captured audio and plays what it receives.
func newStreamAt(ip netip.Addr, dev *phoneAudio, log *slog.Logger, codec media.Codec, toneHz float64, limit time.Duration, digits chan rune) (*stream, error) {
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		return nil, err
	}
	rx, err := newRTPReader(conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	tx, err := newRTPWriter(conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	s := &stream{
		conn:    conn,
		rx:      rx,
		tx:      tx,
		local:   netip.AddrPortFrom(ip, conn.LocalAddr().(*net.UDPAddr).AddrPort().Port()),
		log:     log,
		limit:   int(limit / (time.Second / media.SampleRate)),
		codec:   codec,
		txDTMF:  defaultDTMFType,
		rxDTMF:  [2]uint8{defaultDTMFType, defaultDTMFType},
		seenSrc: make(map[netip.AddrPort]bool),
		dtmfQ:   make(chan uint8, 32),
		digits:  digits,
		stop:    make(chan struct{}),
	}
	s.setToneLocked(toneHz)
	if dev != nil {
		sa := newStreamAudio()
		s.audio = sa
		sa.send = s.sendCaptured
		if devicePolls {
			if s.prx, err = newRTPReader(conn); err != nil {
				conn.Close()
				return nil, err
			}
			s.pbuf, s.pdec, s.ppcm = make([]byte, rtpBufSize), make([]byte, rtpBufSize), make([]int16, rtpBufSize)
			sa.poll = s.pollPackets
		}
		s.onClose = func() { dev.remove(sa) }
		dev.add(sa)
	}
	s.wg.Add(1)
	go s.recvLoop()
	return s, nil
}

// configure applies a negotiated session.
func (s *stream) configure(remote netip.AddrPort, codec media.Codec, txDTMF, rxDTMF uint8, sending bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	s.codec = codec
	if txDTMF == 0 {
		txDTMF = defaultDTMFType
	}
	s.txDTMF = txDTMF
	if rxDTMF != 0 {
		s.rxDTMF[1] = rxDTMF
	}
	s.sending = sending
	if remote.IsValid() && !remote.Addr().IsUnspecified() && !s.mayReach(remote) && !s.warned {
		s.warned = true
		s.log.Warn("peer's SDP names a non-loopback media address; not sending RTP there", "addr", remote)
	}
}

// mayReach tells whether RTP may go to remote: a phone on loopback keeps every packet on
// 127.0.0.0/8; one on a real interface sends where the peer's SDP says.
func (s *stream) mayReach(remote netip.AddrPort) bool {
	return remote.Addr().IsLoopback() || !s.local.Addr().IsLoopback()
}

// setLevelsID sets the id of the RFC 6465 levels extension both sides agreed on.
func (s *stream) setLevelsID(id uint8) {
	s.mu.Lock()
	s.levelsID = id
	if id == 0 {
		s.nLevels = 0
	}
	s.mu.Unlock()
}

// audioLevels copies the levels of the last audio packet received, in CSRC order.
func (s *stream) audioLevels() []uint8 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nLevels == 0 {
		return nil
	}
	return append([]uint8(nil), s.levels[:s.nLevels]...)
}

func (s *stream) startSending() {
	s.startOnce.Do(func() {
		s.wg.Add(1)
		go s.sendLoop()
	})
}

// startSecure starts the DTLS handshake with the configured peer; onFail hears of a failed
// one (not of one ended by close).
func (s *stream) startSecure(role dtlssrtp.Role, fp dtlssrtp.Fingerprint, onFail func(error)) error {
	sess, err := dtlssrtp.New(dtlssrtp.Config{Role: role, Remote: fp, Send: func(pkt []byte) error {
		s.mu.Lock()
		remote := s.remote
		s.mu.Unlock()
		if !remote.IsValid() || remote.Port() == 0 || !s.mayReach(remote) {
			return nil
		}
		_, err := s.conn.WriteToUDPAddrPort(pkt, remote)
		return err
	}})
	if err != nil {
		return err
	}
	s.secure.Store(sess)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-sess.Done():
		case <-s.stop:
			return
		}
		if err := sess.Err(); err != nil && !errors.Is(err, dtlssrtp.ErrClosed) && onFail != nil {
			onFail(err)
		}
	}()
	return nil
}

func (s *stream) close() {
	s.closeOnce.Do(func() {
		if sess := s.secure.Load(); sess != nil {
			sess.Close()
		}
		close(s.stop)
		s.conn.Close()
		if s.onClose != nil {
			s.onClose()
		}
	})
	s.wg.Wait()
}

func (s *stream) setToneLocked(hz float64) {
	if hz > 0 {
		s.tone = media.NewTone(hz, toneAmplitude)
	} else {
		s.tone = nil
	}
}

func (s *stream) setTone(hz float64) {
	s.mu.Lock()
	s.setToneLocked(hz)
	s.mu.Unlock()
}

func (s *stream) setHalted(h bool) {
	s.mu.Lock()
	s.halted = h
	s.mu.Unlock()
}

func (s *stream) setMuted(m bool) {
	s.mu.Lock()
	s.muted = m
	s.mu.Unlock()
}

// stallAfter is how long a sound card may deliver no frame before the sender sends
// silence on its own clock, so the stream goes on while the device is stuck.
const stallAfter = 3 * media.FrameDuration

// sendLoop sends a frame every 20 ms: the tone on its own clock, or, with a sound card,
// silence on its own clock while the device stalls (each captured frame goes out from
// the device's goroutine as soon as it is complete: sendCaptured).
func (s *stream) sendLoop() {
	defer s.wg.Done()
	x := &sender{
		pcm:     make([]int16, media.FrameSamples),
		payload: make([]byte, media.FrameSamples),
		pkt:     make([]byte, 12+media.FrameSamples),
		sec:     make([]byte, 12+media.FrameSamples+dtlssrtp.Overhead),
		ssrc:    rand.Uint32(),
		seq:     uint16(rand.Uint32()),
		ts:      rand.Uint32(),
		marker:  true,
	}
	if s.audio == nil {
		ticker := time.NewTicker(media.FrameDuration)
		defer ticker.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-ticker.C:
			}
			if !s.sendFrame(x, false) {
				return
			}
		}
	}
	c := &s.captured
	c.mu.Lock()
	c.x = x
	c.stall = time.NewTimer(stallAfter)
	c.last = time.Now()
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.x = nil
		c.stall.Stop()
		c.mu.Unlock()
	}()
	s.sendCaptured() // what the device took before sending started
	for {
		select {
		case <-s.stop:
			return
		case <-c.stall.C:
		}
		c.mu.Lock()
		if c.x == nil {
			c.mu.Unlock()
			return // the socket closed under sendCaptured
		}
		if since := time.Since(c.last); since < stallAfter {
			c.stall.Reset(stallAfter - since) // a frame went out meanwhile
			c.mu.Unlock()
			continue
		}
		ok := s.sendFrame(x, false)
		c.stall.Reset(media.FrameDuration)
		c.mu.Unlock()
		if !ok {
			return
		}
	}
}

// sendCaptured sends the frames the sound card completed, on the device's goroutine:
// handing them to the send loop cost a goroutine wake-up (and a thread's) per frame.
func (s *stream) sendCaptured() {
	c := &s.captured
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.x == nil {
		return // not sending (yet, or any more): the device's ring keeps the latest frames
	}
	sent := false
	for s.audio.takeFrame(c.x.pcm) {
		if !s.sendFrame(c.x, true) {
			c.x = nil
			return
		}
		sent = true
	}
	if sent {
		c.last = time.Now()
		c.stall.Reset(stallAfter)
	}
}

// sender is the send loop's state.
type sender struct {
	pcm     []int16
	payload []byte
	pkt     []byte
	sec     []byte // the SRTP packet, on a secured call
	ssrc    uint32
	seq     uint16
	ts      uint32
	marker  bool
	ev      *dtmfState
	gap     int
}

// sendFrame sends the next frame: a DTMF event's packet if one is under way, else audio
// (captured: x.pcm holds the sound card's frame; else the tone, or silence with a sound
// card). It reports false once the socket is closed.
func (s *stream) sendFrame(x *sender, captured bool) bool {
	s.mu.Lock()
	remote, codec, dtmfPT, muted, tone := s.remote, s.codec, s.txDTMF, s.muted, s.tone
	canSend := s.sending && !s.halted && remote.IsValid() && remote.Port() != 0 && s.mayReach(remote)
	s.mu.Unlock()

	if !canSend {
		x.ts += media.FrameSamples
		x.marker = true
		return true
	}
	if x.ev == nil && x.gap == 0 {
		select {
		case code := <-s.dtmfQ:
			x.ev = &dtmfState{code: code, ts: x.ts}
		default:
		}
	}

	var h media.RTPHeader
	var body []byte
	isEvent := x.ev != nil
	if isEvent {
		e := media.DTMFEvent{Event: x.ev.code, Volume: dtmfVolume}
		if x.ev.n < dtmfToneFrames {
			e.Duration = uint16((x.ev.n + 1) * media.FrameSamples)
		} else {
			e.Duration = dtmfToneFrames * media.FrameSamples
			e.End = true
		}
		n := e.Marshal(x.payload)
		body = x.payload[:n]
		h = media.RTPHeader{Marker: x.ev.n == 0, PayloadType: dtmfPT, Seq: x.seq, Timestamp: x.ev.ts, SSRC: x.ssrc}
		x.ev.n++
		if x.ev.n >= dtmfToneFrames+dtmfEndPackets {
			x.ev = nil
			x.gap = dtmfGapFrames
		}
	} else {
		if x.gap > 0 {
			x.gap--
		}
		switch {
		case muted:
			clear(x.pcm)
		case s.audio != nil:
			if !captured {
				clear(x.pcm) // the device stalled: silence
			}
		case tone != nil:
			tone.Fill(x.pcm)
		default:
			clear(x.pcm)
		}
		codec.Encode(x.payload, x.pcm)
		body = x.payload
		h = media.RTPHeader{Marker: x.marker, PayloadType: uint8(codec), Seq: x.seq, Timestamp: x.ts, SSRC: x.ssrc}
		x.marker = false
	}
	n := media.MarshalRTP(x.pkt, h, body)
	pkt := x.pkt[:n]
	if sec := s.secure.Load(); sec != nil {
		ct, err := sec.EncryptRTP(x.sec[:0], pkt)
		if err != nil { // handshake under way: nothing goes out in the clear
			x.seq++
			x.ts += media.FrameSamples
			return true
		}
		pkt = ct
	}
	if err := s.tx.writeTo(pkt, remote); err != nil {
		if errors.Is(err, net.ErrClosed) {
			return false
		}
		s.log.Debug("rtp write failed", "to", remote, "err", err)
	} else {
		s.mu.Lock()
		s.stats.Sent++
		if isEvent {
			s.stats.SentDTMF++
		}
		s.mu.Unlock()
	}
	x.seq++
	x.ts += media.FrameSamples
	return true
}

// rtpBufSize is the largest packet a stream takes.
const rtpBufSize = 2048

// recvHandover is how often the receive loop of a stream with a sound card checks that
// the card still reads the socket; a period the card has not polled for deviceStale is
// a stalled card, and the loop reads again.
const (
	recvHandover = 250 * time.Millisecond
	deviceStale  = 3 * media.FrameDuration
)

// recvLoop receives the stream's packets. With a sound card the card's goroutine reads
// them instead, every period before it plays (pollPackets): it is awake then anyway,
// while a goroutine woken per packet cost the softphone about a fifth of its CPU in a
// call (threads woken, the scheduler's spinning). The playout loses nothing: the kernel
// stamps each packet's arrival. The loop then only stands by, and reads while the card
// is not polling: before it first does, and while it is stalled or gone, so DTLS, DTMF
// and the recording go on without it.
func (s *stream) recvLoop() {
	defer s.wg.Done()
	buf := make([]byte, rtpBufSize)
	dec := make([]byte, rtpBufSize)
	pcm := make([]int16, rtpBufSize)
	var check <-chan time.Time
	if s.prx != nil {
		t := time.NewTicker(recvHandover)
		defer t.Stop()
		check = t.C
	}
	for {
		if s.prx != nil && s.audio.polling(time.Now()) {
			select {
			case <-s.stop:
				return
			case <-check:
				continue
			}
		}
		n, from, err := s.rx.readFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-s.stop:
				return
			default:
			}
			continue
		}
		s.receive(buf[:n], from, s.rx.arrived(time.Now()), dec, pcm)
	}
}

// pollBatch bounds the packets one period reads (a frame comes every two periods): a
// flood waits in the socket, whose buffer drops the excess, rather than make the speaker
// late.
const pollBatch = 16

// pollPackets handles the packets waiting on the socket, without waiting for any: the
// sound card's goroutine calls it each period.
func (s *stream) pollPackets() {
	for range pollBatch {
		n, from, ok := s.prx.tryRead(s.pbuf)
		if !ok {
			return
		}
		s.receive(s.pbuf[:n], from, s.prx.arrived(time.Now()), s.pdec, s.ppcm)
	}
}

// receive handles one datagram that arrived at at: DTLS, SRTP or plain RTP/RTCP.
func (s *stream) receive(pkt []byte, from netip.AddrPort, at time.Time, dec []byte, pcm []int16) {
	s.rxMu.Lock()
	defer s.rxMu.Unlock()
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	if sec := s.secure.Load(); sec != nil {
		if dtlssrtp.IsDTLS(pkt) {
			if from == s.remoteAddr() {
				sec.HandleDTLS(pkt)
			}
			return
		}
		var err error
		if media.IsRTCP(pkt) {
			pkt, err = sec.DecryptRTCP(dec[:0], pkt)
		} else {
			pkt, err = sec.DecryptRTP(dec[:0], pkt)
		}
		if err != nil {
			s.mu.Lock()
			s.stats.SRTPDropped++
			s.mu.Unlock()
			return
		}
	}
	s.handlePacket(pkt, from, at, pcm)
}

func (s *stream) handlePacket(pkt []byte, from netip.AddrPort, at time.Time, pcm []int16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.seenSrc[from] {
		s.seenSrc[from] = true
		s.stats.Sources = append(s.stats.Sources, from)
	}
	if media.IsRTCP(pkt) {
		s.stats.RTCP++
		return
	}
	h, payload, err := media.ParseRTP(pkt)
	if err != nil {
		s.stats.Other++
		return
	}
	switch pt := h.PayloadType; {
	case pt == uint8(media.PCMU) || pt == uint8(media.PCMA):
		media.Codec(pt).Decode(pcm, payload)
		s.record(h, pcm[:len(payload)])
		s.nLevels = 0
		if s.levelsID != 0 {
			s.nLevels = media.ParseRTPLevels(pkt, s.levelsID, s.levels[:])
		}
		if s.audio != nil {
			s.audio.pushReceived(h, payload, at)
		}
	case pt == s.rxDTMF[0] || pt == s.rxDTMF[1]:
		s.stats.ReceivedDTMF++
		e, err := media.ParseDTMFEvent(payload)
		if err != nil || !e.End {
			return
		}
		if s.haveEnd && s.lastEnd == h.Timestamp && s.lastSSRC == h.SSRC {
			return // redundant End packet
		}
		s.haveEnd, s.lastEnd, s.lastSSRC = true, h.Timestamp, h.SSRC
		if d, ok := media.DTMFDigit(e.Event); ok {
			s.pushDigit(d)
		}
	default:
		s.stats.Other++
	}
}

func (s *stream) pushDigit(d rune) {
	select {
	case s.digits <- d:
	default:
		s.log.Warn("DTMF channel full, digit dropped", "digit", string(d))
	}
}

// record appends one received frame; s.mu held.
func (s *stream) record(h media.RTPHeader, frame []int16) {
	s.stats.Received++
	s.rec = append(s.rec, frame...)
	s.recTotal += len(frame)
	s.hdrs = append(s.hdrs, h)
	if s.limit > 0 {
		if len(s.rec) > 2*s.limit {
			s.rec = append(s.rec[:0], s.rec[len(s.rec)-s.limit:]...)
		}
		if maxH := s.limit/media.FrameSamples + 1; len(s.hdrs) > 2*maxH {
			s.hdrs = append(s.hdrs[:0], s.hdrs[len(s.hdrs)-maxH:]...)
		}
	}
	if len(s.waiters) > 0 {
		kept := s.waiters[:0]
		for _, w := range s.waiters {
			if s.recTotal >= w.n {
				close(w.ch)
			} else {
				kept = append(kept, w)
			}
		}
		s.waiters = kept
	}
}

func (s *stream) recording() []int16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.rec
	if s.limit > 0 && len(rec) > s.limit {
		rec = rec[len(rec)-s.limit:]
	}
	return append([]int16(nil), rec...)
}

func (s *stream) resetRecording() {
	s.mu.Lock()
	s.rec = s.rec[:0]
	s.recTotal = 0
	s.mu.Unlock()
}

func (s *stream) headers() []media.RTPHeader {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]media.RTPHeader(nil), s.hdrs...)
}

func (s *stream) resetHeaders() {
	s.mu.Lock()
	s.hdrs = s.hdrs[:0]
	s.mu.Unlock()
}

// waitSamples returns a channel closed once n samples were recorded since the
// last reset.
func (s *stream) waitSamples(n int) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{})
	if s.recTotal >= n {
		close(ch)
		return ch
	}
	s.waiters = append(s.waiters, waiter{n: n, ch: ch})
	return ch
}

func (s *stream) getStats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Sources = append([]netip.AddrPort(nil), s.stats.Sources...)
	return st
}

func (s *stream) remoteAddr() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.remote
}

func (s *stream) currentCodec() media.Codec {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.codec
}
