package transport

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"ringside/media"
	"ringside/media/dtlssrtp"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// sharedPorts is a port source with shards shards of perShard shared sockets each.
func sharedPorts(tb testing.TB, shards, perShard int) *Ports {
	tb.Helper()
	p := NewPorts(loopback, 0, 0)
	if err := p.EnableMux(MuxConfig{Shards: shards, PerShard: perShard}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

func openShared(tb testing.TB, p *Ports, shard int, peer netip.AddrPort) *Endpoint {
	tb.Helper()
	e, err := p.OpenFor(shard, peer)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close() })
	return e
}

func addrOf(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

// readRTP reads one RTP packet from c within a second.
func readRTP(t *testing.T, c *net.UDPConn) (media.RTPHeader, []byte, netip.AddrPort) {
	t.Helper()
	buf := make([]byte, 1500)
	c.SetReadDeadline(time.Now().Add(time.Second))
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatal(err)
	}
	h, payload, err := media.ParseRTP(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	return h, payload, from
}

// Two legs on one shared socket each get exactly their own peer's packets; a stranger's are
// dropped; what the legs write in a tick leaves together at Flush, each on its own stream.
func TestSharedSocketDemuxesByPeer(t *testing.T) {
	p := sharedPorts(t, 1, 1)
	sh := p.Shard(0)
	a, b := openShared(t, p, 0, netip.AddrPort{}), openShared(t, p, 0, netip.AddrPort{})
	if a.LocalAddr() != b.LocalAddr() || !a.SharedSocket() {
		t.Fatalf("legs on %v and %v, want one shared socket", a.LocalAddr(), b.LocalAddr())
	}
	peerA, peerB, stranger := udp(t), udp(t), udp(t)
	if err := a.Configure(addrOf(peerA), media.PCMU, 101); err != nil {
		t.Fatal(err)
	}
	if err := b.Configure(addrOf(peerB), media.PCMU, 101); err != nil {
		t.Fatal(err)
	}
	sa, sb := &sink{}, &sink{}
	a.Attach(sa)
	b.Attach(sb)

	fa, fb := make([]byte, 160), make([]byte, 160)
	for i := range fa {
		fa[i], fb[i] = 0xAA, 0xBB
	}
	send(t, stranger, a.LocalAddr(), media.RTPHeader{Seq: 9}, fa)
	send(t, peerA, a.LocalAddr(), media.RTPHeader{Seq: 1, Timestamp: 160}, fa)
	send(t, peerB, b.LocalAddr(), media.RTPHeader{Seq: 1, Timestamp: 160}, fb)
	waitUntil(t, func() bool { sh.Receive(); sh.Flush(); return sa.count() == 1 && sb.count() == 1 })
	if sa.frames[0][0] != 0xAA || sb.frames[0][0] != 0xBB {
		t.Fatalf("leg a got %#x, leg b got %#x", sa.frames[0][0], sb.frames[0][0])
	}
	waitUntil(t, func() bool { sh.Receive(); sh.Flush(); return sh.Foreign() == 1 })

	// Three ticks: each leg's stream runs on by one frame a tick, from the shared port.
	for tick := range 3 {
		sh.Receive()
		if err := a.WriteFrame(fa); err != nil {
			t.Fatal(err)
		}
		if err := b.WriteFrame(fb); err != nil {
			t.Fatal(err)
		}
		sh.Flush()
		for _, c := range []struct {
			conn *net.UDPConn
			e    *Endpoint
			fill byte
		}{{peerA, a, 0xAA}, {peerB, b, 0xBB}} {
			h, payload, from := readRTP(t, c.conn)
			if from != c.e.LocalAddr() || h.SSRC != c.e.SSRC() || payload[0] != c.fill {
				t.Fatalf("tick %d: from %v ssrc %x payload %#x, want %v %x %#x", tick, from, h.SSRC, payload[0], c.e.LocalAddr(), c.e.SSRC(), c.fill)
			}
		}
	}
	if a.Stats.Sent.Load() != 3 || b.Stats.Sent.Load() != 3 {
		t.Fatalf("sent %d and %d, want 3 each", a.Stats.Sent.Load(), b.Stats.Sent.Load())
	}

	// Outside a tick (no clock: tools, tests) a frame goes at once.
	if err := a.WriteFrame(fa); err != nil {
		t.Fatal(err)
	}
	readRTP(t, peerA)

	// A closed leg hears nothing more: its peer becomes a stranger.
	a.Close()
	send(t, peerA, b.LocalAddr(), media.RTPHeader{Seq: 2, Timestamp: 320}, fa)
	waitUntil(t, func() bool { sh.Receive(); sh.Flush(); return sh.Foreign() == 2 })
	if err := a.WriteFrame(fa); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

// A peer that signals one address for two legs can't be told apart on a shared socket: the
// second leg is refused where the peer answered us, and put on a socket of its own where it
// offered first.
func TestSharedSocketRefusesOnePeerForTwoLegs(t *testing.T) {
	p := sharedPorts(t, 1, 1)
	peer := udp(t)
	a, b := openShared(t, p, 0, netip.AddrPort{}), openShared(t, p, 0, netip.AddrPort{})
	if err := a.Configure(addrOf(peer), media.PCMU, 101); err != nil {
		t.Fatal(err)
	}
	if err := b.Configure(addrOf(peer), media.PCMU, 101); !errors.Is(err, ErrPeerShared) {
		t.Fatalf("second leg with the same peer: %v, want ErrPeerShared", err)
	}
	if b.Remote().IsValid() {
		t.Fatalf("refused leg latched to %v", b.Remote())
	}
	// Re-INVITE to the same address is fine; a leg moving away frees the address.
	if err := a.Configure(addrOf(peer), media.PCMA, 101); err != nil {
		t.Fatal(err)
	}
	c := openShared(t, p, 0, addrOf(peer)) // offered from the taken address
	if c.SharedSocket() || c.LocalAddr() == a.LocalAddr() {
		t.Fatalf("leg offered from a taken peer address is on %v (shared %v), want a socket of its own", c.LocalAddr(), c.SharedSocket())
	}
	if got := p.ShardFor(0, addrOf(peer)); got != 0 {
		t.Fatalf("ShardFor = %d", got)
	}
	if err := a.Configure(addrOf(udp(t)), media.PCMU, 101); err != nil {
		t.Fatal(err)
	}
	if err := b.Configure(addrOf(peer), media.PCMU, 101); err != nil {
		t.Fatalf("address freed by a re-INVITE: %v", err)
	}
}

// ShardFor sends a caller's call to a shard where its address is still free.
func TestShardForAvoidsTakenPeer(t *testing.T) {
	p := sharedPorts(t, 2, 1)
	peer := udp(t)
	openShared(t, p, 0, addrOf(peer))
	if got := p.ShardFor(0, addrOf(peer)); got != 1 {
		t.Fatalf("ShardFor = %d, want 1", got)
	}
}

// DTLS-SRTP runs on shared sockets: the handshake's records reach the right leg by source
// address, and SRTP flows both ways.
func TestSRTPOnSharedSockets(t *testing.T) {
	p := sharedPorts(t, 2, 1)
	// A third leg on each socket, talking to nobody here, must not disturb the pair.
	openShared(t, p, 0, netip.AddrPort{}).Configure(addrOf(udp(t)), media.PCMU, 101)
	openShared(t, p, 1, netip.AddrPort{}).Configure(addrOf(udp(t)), media.PCMU, 101)
	a, b := securePairWith(t, p)
	s := &sink{}
	b.Attach(s)
	frame := make([]byte, media.FrameSamples)
	for range 3 {
		if err := a.WriteFrame(frame); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, func() bool { b.Receive(); return s.count() == 3 })
	if b.Stats.SRTPDropped.Load() != 0 {
		t.Fatalf("%d SRTP packets dropped", b.Stats.SRTPDropped.Load())
	}
}

// securePairWith is securePair with the two legs on shards 0 and 1 of p.
func securePairWith(tb testing.TB, p *Ports) (a, b *Endpoint) {
	tb.Helper()
	a, b = openShared(tb, p, 0, netip.AddrPort{}), openShared(tb, p, 1, netip.AddrPort{})
	if err := a.Configure(b.LocalAddr(), media.PCMU, 101); err != nil {
		tb.Fatal(err)
	}
	if err := b.Configure(a.LocalAddr(), media.PCMU, 101); err != nil {
		tb.Fatal(err)
	}
	handshake(tb, a, b)
	return a, b
}

func handshake(tb testing.TB, a, b *Endpoint) {
	tb.Helper()
	cert, err := dtlssrtp.LocalCertificate()
	if err != nil {
		tb.Fatal(err)
	}
	sb, err := b.Secure(dtlssrtp.Server, cert.Fingerprint)
	if err != nil {
		tb.Fatal(err)
	}
	sa, err := a.Secure(dtlssrtp.Client, cert.Fingerprint)
	if err != nil {
		tb.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !sa.Ready() || !sb.Ready() {
		if sa.Err() != nil || sb.Err() != nil {
			tb.Fatalf("handshake: client %v, server %v", sa.Err(), sb.Err())
		}
		if time.Now().After(deadline) {
			tb.Fatal("no handshake after 10 s")
		}
		a.Receive()
		b.Receive()
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkTick is one clock tick's transport work for legs legs, each receiving one packet
// and sending one frame: per-leg sockets (a recvmmsg and a sendto per leg) against shared
// sockets (a recvmmsg and a sendmmsg per socket). The peers' sending and draining is left
// out of the timing.
func BenchmarkTick(b *testing.B) {
	for _, legs := range []int{64, 384} {
		b.Run(fmt.Sprintf("per-leg/legs=%d", legs), func(b *testing.B) { benchTick(b, legs, false) })
		b.Run(fmt.Sprintf("shared/legs=%d", legs), func(b *testing.B) { benchTick(b, legs, true) })
	}
}

func benchTick(b *testing.B, legs int, shared bool) {
	var p *Ports
	if shared {
		p = sharedPorts(b, 1, 1)
	} else {
		p = NewPorts(loopback, 0, 0)
	}
	peerPorts := NewPorts(loopback, 0, 0)
	servers, peers := make([]*Endpoint, legs), make([]*Endpoint, legs)
	for i := range legs {
		servers[i], peers[i] = openShared(b, p, 0, netip.AddrPort{}), openShared(b, peerPorts, 0, netip.AddrPort{})
		servers[i].Configure(peers[i].LocalAddr(), media.PCMU, 101)
		peers[i].Configure(servers[i].LocalAddr(), media.PCMU, 101)
		servers[i].Attach(nopSink{})
		peers[i].Attach(nopSink{})
	}
	sh := p.Shard(0)
	frame := make([]byte, media.FrameSamples)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		for _, e := range peers {
			e.WriteFrame(frame)
		}
		b.StartTimer()
		if shared {
			sh.Receive()
			for _, e := range servers {
				e.WriteFrame(frame)
			}
			sh.Flush()
		} else {
			for _, e := range servers {
				e.Receive()
				e.WriteFrame(frame)
			}
		}
		b.StopTimer()
		for _, e := range peers {
			e.Receive()
		}
		b.StartTimer()
	}
	var got uint64
	for _, e := range servers {
		got += e.Stats.Received.Load()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(legs), "ns/leg")
	if got < uint64(b.N*legs)*9/10 {
		b.Fatalf("received %d of %d packets", got, b.N*legs)
	}
}

// A held stream (0.0.0.0, or port 0) takes no place: two such legs share a socket fine.
func TestSharedSocketUnspecifiedPeers(t *testing.T) {
	p := sharedPorts(t, 1, 1)
	for _, ap := range []string{"0.0.0.0:4000", "0.0.0.0:4000", "127.0.0.1:0", "127.0.0.1:0"} {
		if err := openShared(t, p, 0, netip.AddrPort{}).Configure(netip.MustParseAddrPort(ap), media.PCMU, 101); err != nil {
			t.Fatalf("%s: %v", ap, err)
		}
	}
}
