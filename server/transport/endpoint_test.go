package transport

import (
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"ringside/media"
)

type sink struct {
	mu     sync.Mutex
	frames [][]byte
	seqs   []uint16
	at     []time.Time
	heard  int
}

func (s *sink) PushAt(seq uint16, ts uint32, p []byte, at time.Time) {
	s.mu.Lock()
	s.frames = append(s.frames, append([]byte(nil), p...))
	s.seqs = append(s.seqs, seq)
	s.at = append(s.at, at)
	s.mu.Unlock()
}
func (s *sink) Heard() { s.mu.Lock(); s.heard++; s.mu.Unlock() }
func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.frames)
}

func open(t *testing.T) *Endpoint {
	e, err := NewPorts(netip.MustParseAddr("127.0.0.1"), 0, 0).Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func udp(t *testing.T) *net.UDPConn {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func send(t *testing.T, from *net.UDPConn, to netip.AddrPort, h media.RTPHeader, payload []byte) {
	buf := make([]byte, 1500)
	n := media.MarshalRTP(buf, h, payload)
	if _, err := from.WriteToUDPAddrPort(buf[:n], to); err != nil {
		t.Fatal(err)
	}
}

func waitUntil(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A frame is timed by when it reached the host, not by when its socket was drained: the
// room takes each leg's frames a margin after they come, and learns when from this.
func TestFramesCarryTheirArrivalTime(t *testing.T) {
	e := open(t)
	peer := udp(t)
	e.Configure(peer.LocalAddr().(*net.UDPAddr).AddrPort(), media.PCMU, 101)
	s := &sink{}
	e.Attach(s)
	// The kernel turns arrival stamps on for the host a moment after the first socket
	// asks: a packet that comes before is stamped when it is read. Let one through first.
	send(t, peer, e.LocalAddr(), media.RTPHeader{Seq: 0}, make([]byte, 160))
	time.Sleep(20 * time.Millisecond)
	e.Receive()
	s.mu.Lock()
	s.frames, s.at = nil, nil
	s.mu.Unlock()
	sentAt := time.Now()
	send(t, peer, e.LocalAddr(), media.RTPHeader{Seq: 1}, make([]byte, 160))
	time.Sleep(40 * time.Millisecond)
	e.Receive()
	drained := time.Now()
	if s.count() != 1 {
		t.Fatalf("%d frames received, want 1", s.count())
	}
	if at := s.at[0]; at.Before(sentAt) || drained.Sub(at) < 30*time.Millisecond {
		t.Errorf("frame stamped %v after it was sent and %v before the drain; want it stamped on arrival, about 40 ms before the drain", at.Sub(sentAt), drained.Sub(at))
	}
}

// Only the address the peer signalled is heard; strangers and garbage are counted and
// dropped.
func TestLatchesToTheSignalledAddress(t *testing.T) {
	e := open(t)
	peer, stranger := udp(t), udp(t)
	e.Configure(peer.LocalAddr().(*net.UDPAddr).AddrPort(), media.PCMU, 101)
	s := &sink{}
	e.Attach(s)
	go e.Run()
	frame := make([]byte, 160)
	send(t, stranger, e.LocalAddr(), media.RTPHeader{Seq: 1}, frame)
	stranger.WriteToUDPAddrPort([]byte{0x80, 0, 1}, e.LocalAddr())
	peer.WriteToUDPAddrPort([]byte{0x40, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, e.LocalAddr()) // version 1
	send(t, peer, e.LocalAddr(), media.RTPHeader{Seq: 2, PayloadType: 8}, frame)               // not negotiated
	send(t, peer, e.LocalAddr(), media.RTPHeader{Seq: 3}, frame)
	waitUntil(t, func() bool { return s.count() == 1 })
	waitUntil(t, func() bool { return e.Stats.Foreign.Load() == 2 && e.Stats.Malformed.Load() == 2 })
}

// A digit is reported once, though its end packet comes three times.
func TestDTMFDigitReportedOnce(t *testing.T) {
	e := open(t)
	peer := udp(t)
	e.Configure(peer.LocalAddr().(*net.UDPAddr).AddrPort(), media.PCMU, 101)
	e.Attach(&sink{})
	digits := make(chan rune, 10)
	e.OnDTMF(func(d rune) { digits <- d })
	go e.Run()
	ev := make([]byte, 4)
	for i, end := range []bool{false, false, true, true, true} {
		media.DTMFEvent{Event: 2, End: end, Duration: uint16(160 * (i + 1))}.Marshal(ev)
		send(t, peer, e.LocalAddr(), media.RTPHeader{PayloadType: 101, Seq: uint16(i), Timestamp: 8000}, ev)
	}
	select {
	case d := <-digits:
		if d != '2' {
			t.Fatalf("digit %q", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no digit")
	}
	select {
	case d := <-digits:
		t.Fatalf("digit %q reported twice", d)
	case <-time.After(100 * time.Millisecond):
	}
}

// The stream we send runs on: +1 sequence, +160 timestamp per frame, one SSRC, and carries
// levels only once negotiated.
func TestOutgoingStreamAndLevels(t *testing.T) {
	e := open(t)
	peer := udp(t)
	e.Configure(peer.LocalAddr().(*net.UDPAddr).AddrPort(), media.PCMA, 101)
	frame := make([]byte, 160)
	e.WriteFrame(frame)
	e.WriteFrameLevels(frame, []uint32{7, 8}, []uint8{20, 127}) // not negotiated: plain
	e.SetLevelsID(4)
	e.WriteFrameLevels(frame, []uint32{7, 8}, []uint8{20, 127})
	buf := make([]byte, 1500)
	var prev media.RTPHeader
	for i := range 3 {
		peer.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, err := peer.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		h, payload, err := media.ParseRTP(buf[:n])
		if err != nil || len(payload) != 160 || h.PayloadType != 8 {
			t.Fatalf("packet %d: %+v %d %v", i, h, len(payload), err)
		}
		if i > 0 && (h.SSRC != prev.SSRC || h.Seq != prev.Seq+1 || h.Timestamp != prev.Timestamp+160) {
			t.Fatalf("packet %d does not continue the stream: %+v after %+v", i, h, prev)
		}
		prev = h
		levels := make([]uint8, 4)
		got := media.ParseRTPLevels(buf[:n], 4, levels)
		if want := map[int]int{0: 0, 1: 0, 2: 2}[i]; got != want {
			t.Fatalf("packet %d carries %d levels, want %d", i, got, want)
		}
		if got == 2 && (levels[0] != 20 || levels[1] != 127) {
			t.Fatalf("levels %v", levels[:2])
		}
	}
}

// A phone interleaving telephone-event packets with audio in one sequence space (baresip
// does) must not make holes in the audio: frames are numbered by timestamp.
func TestDTMFInterleavedWithAudioLeavesNoHoles(t *testing.T) {
	e := open(t)
	peer := udp(t)
	e.Configure(peer.LocalAddr().(*net.UDPAddr).AddrPort(), media.PCMU, 101)
	s := &sink{}
	e.Attach(s)
	go e.Run()
	frame, ev := make([]byte, 160), make([]byte, 4)
	seq := uint16(65530) // across the wrap too
	for i := range 6 {
		send(t, peer, e.LocalAddr(), media.RTPHeader{Seq: seq, Timestamp: uint32(1000 + 160*i), SSRC: 9}, frame)
		seq++
		media.DTMFEvent{Event: 1, Duration: uint16(160 * (i + 1))}.Marshal(ev)
		send(t, peer, e.LocalAddr(), media.RTPHeader{PayloadType: 101, Seq: seq, Timestamp: 1000, SSRC: 9}, ev)
		seq++
	}
	waitUntil(t, func() bool { return s.count() == 6 })
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, n := range s.seqs {
		if n != s.seqs[0]+uint16(i) {
			t.Fatalf("audio frames numbered %v: holes where DTMF packets were", s.seqs)
		}
	}
}

// Without Run, Receive takes what is queued without waiting, at most a bounded amount
// per call (a flood can't hold the clock), and after Close it and WriteFrame do nothing.
func TestReceiveDrainsWithoutWaiting(t *testing.T) {
	e := open(t)
	peer := udp(t)
	e.Configure(peer.LocalAddr().(*net.UDPAddr).AddrPort(), media.PCMU, 101)
	s := &sink{}
	e.Attach(s)
	e.Receive() // nothing queued: returns at once
	frame := make([]byte, 160)
	const sent = rxBatchLen*rxMaxBatches + 3
	for i := range sent {
		send(t, peer, e.LocalAddr(), media.RTPHeader{Seq: uint16(i), Timestamp: uint32(160 * i), SSRC: 5}, frame)
	}
	// Loopback queues a datagram before sendto returns.
	e.Receive()
	if got := s.count(); got != rxBatchLen*rxMaxBatches {
		t.Fatalf("first drain took %d packets, want %d", got, rxBatchLen*rxMaxBatches)
	}
	e.Receive()
	if got := s.count(); got != sent {
		t.Fatalf("after the second drain %d packets, want %d", got, sent)
	}
	e.Close()
	e.Receive()
	if err := e.WriteFrame(frame); err == nil {
		t.Fatal("WriteFrame after Close succeeded")
	}
}

// Packets phones really send (padding, header extensions, CSRCs) are taken with their
// payload exact; truncated and oversized ones are dropped and counted, and the leg goes on.
func TestOddPacketsAreHandled(t *testing.T) {
	e := open(t)
	peer := udp(t)
	e.Configure(peer.LocalAddr().(*net.UDPAddr).AddrPort(), media.PCMU, 101)
	s := &sink{}
	e.Attach(s)
	payload := make([]byte, 160)
	for i := range payload {
		payload[i] = byte(i)
	}
	// Version 2, padding, extension, one CSRC; a one-word extension; 3 bytes of padding.
	hdr := []byte{0xB1, 0x00, 0x00, 0x01, 0, 0, 0, 160, 0, 0, 0, 9, 0, 0, 0, 7, 0xBE, 0xDE, 0x00, 0x01, 0x10, 0xAA, 0, 0}
	pkt := append(append(append([]byte{}, hdr...), payload...), 0, 0, 3)
	raw := func(b []byte) {
		if _, err := peer.WriteToUDPAddrPort(b, e.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	raw(pkt)
	raw(pkt[:14])                                       // truncated inside the CSRC list
	raw(append(pkt[:len(pkt)-3:len(pkt)-3], 0, 0, 200)) // padding longer than the packet
	big := make([]byte, 1400)
	n := media.MarshalRTP(big, media.RTPHeader{Seq: 2, Timestamp: 320, SSRC: 9}, make([]byte, 1200))
	raw(big[:n]) // oversized: a whole frame the jitter buffer can't hold; taken, then dropped there
	send(t, peer, e.LocalAddr(), media.RTPHeader{Seq: 3, Timestamp: 480, SSRC: 9}, payload)
	waitUntil(t, func() bool { e.Receive(); return s.count() >= 3 && e.Stats.Malformed.Load() == 2 })
	s.mu.Lock()
	defer s.mu.Unlock()
	if string(s.frames[0]) != string(payload) {
		t.Fatalf("padded, extended packet: payload %d bytes, want the 160 sent", len(s.frames[0]))
	}
	if len(s.frames[2]) != 160 {
		t.Fatalf("the leg did not go on after bad packets: %d", len(s.frames[2]))
	}
}
