package transport

import (
	"net/netip"
	"testing"
	"time"

	"ringside/media"
)

// securePair opens two endpoints signalled to each other and shakes hands DTLS-SRTP
// between them (a is the DTLS client), draining both the way the room's clock would.
func securePair(tb testing.TB) (a, b *Endpoint) {
	tb.Helper()
	open := func() *Endpoint {
		e, err := NewPorts(netip.MustParseAddr("127.0.0.1"), 0, 0).Open()
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { e.Close() })
		return e
	}
	a, b = open(), open()
	a.Configure(b.LocalAddr(), media.PCMU, 101)
	b.Configure(a.LocalAddr(), media.PCMU, 101)
	handshake(tb, a, b)
	return a, b
}

// An SRTP leg decrypts what its peer encrypted; forged SRTP, stray DTLS and undecryptable
// SRTCP are counted and dropped.
func TestSRTPEndpoints(t *testing.T) {
	a, b := securePair(t)
	s := &sink{}
	b.Attach(s)
	frame := make([]byte, media.FrameSamples)
	for i := range frame {
		frame[i] = byte(i)
	}
	for range 5 {
		if err := a.WriteFrame(frame); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, func() bool { b.Receive(); return s.count() == 5 })
	if string(s.frames[4]) != string(frame) {
		t.Fatal("the frame changed on the way")
	}

	// A forged packet and a forged SRTCP from the signalled address: dropped and counted.
	c := udp(t)
	b.Configure(netip.MustParseAddrPort(c.LocalAddr().String()), media.PCMU, 101)
	send(t, c, b.LocalAddr(), media.RTPHeader{PayloadType: 0, Seq: 1, SSRC: 7}, append(frame, make([]byte, 10)...))
	if _, err := c.WriteToUDPAddrPort([]byte{0x80, 200, 0, 6, 0, 0, 0, 7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, b.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { b.Receive(); return b.Stats.SRTPDropped.Load() == 2 })
	if s.count() != 5 {
		t.Fatalf("forged packets reached the room: %d frames", s.count())
	}
}

type nopSink struct{}

func (nopSink) PushAt(uint16, uint32, []byte, time.Time) {}
func (nopSink) Heard()                                   {}

// BenchmarkTransportPacket is one 20 ms frame through the transport path: marshal (and
// encrypt) on one leg, sendto, recvmmsg (and decrypt) on the other, into the room's sink.
// The difference between the sub-benchmarks is what SRTP costs a packet.
func BenchmarkTransportPacket(b *testing.B) {
	frame := make([]byte, media.FrameSamples)
	run := func(b *testing.B, tx, rx *Endpoint) {
		rx.Attach(nopSink{})
		var want uint64
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if err := tx.WriteFrame(frame); err != nil {
				b.Fatal(err)
			}
			rx.Receive()
		}
		b.StopTimer()
		want = uint64(b.N)
		if got := rx.Stats.Received.Load(); got < want*9/10 {
			b.Fatalf("received %d of %d", got, want)
		}
		if d := rx.Stats.SRTPDropped.Load(); d > 0 {
			b.Fatalf("%d SRTP packets dropped", d)
		}
	}
	b.Run("plain", func(b *testing.B) {
		open := func() *Endpoint {
			e, err := NewPorts(netip.MustParseAddr("127.0.0.1"), 0, 0).Open()
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { e.Close() })
			return e
		}
		tx, rx := open(), open()
		tx.Configure(rx.LocalAddr(), media.PCMU, 101)
		rx.Configure(tx.LocalAddr(), media.PCMU, 101)
		run(b, tx, rx)
	})
	b.Run("srtp", func(b *testing.B) {
		tx, rx := securePair(b)
		run(b, tx, rx)
	})
}

// BenchmarkSRTPCrypto is SRTP alone on a 172-byte G.711 packet: protect on one session,
// unprotect on its peer, with the transport's caller buffers.
func BenchmarkSRTPCrypto(b *testing.B) {
	tx, rx := securePair(b)
	stx, srx := tx.Session(), rx.Session()
	var pkt, enc, dec [300]byte
	payload := make([]byte, media.FrameSamples)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		n := media.MarshalRTP(pkt[:], media.RTPHeader{PayloadType: 0, Seq: uint16(i), Timestamp: uint32(i) * 160, SSRC: 9}, payload)
		ct, err := stx.EncryptRTP(enc[:0], pkt[:n])
		if err != nil {
			b.Fatal(err)
		}
		if _, err := srx.DecryptRTP(dec[:0], ct); err != nil {
			b.Fatal(err)
		}
	}
}
