//go:build !linux

package transport

import (
	"errors"
	"net"
	"net/netip"
	"time"
)

// Elsewhere than Linux (development machines) a reader goroutine per socket queues what
// arrives and the clock's drain takes it from the queue: the same behaviour, without the
// batching that makes the Linux build cheap.

type datagram struct {
	buf  []byte
	from netip.AddrPort
	at   time.Time // when the reader took it
}

type rxBatch struct {
	pkt []datagram
}

func newBatch(n int) *rxBatch { return &rxBatch{pkt: make([]datagram, n)} }

// size is how many datagrams the batch holds.
func (b *rxBatch) size() int { return len(b.pkt) }

func (b *rxBatch) packet(i int) ([]byte, netip.AddrPort) { return b.pkt[i].buf, b.pkt[i].from }

// arrival is when packet i came: here, when the socket's reader took it.
func (b *rxBatch) arrival(i int, now time.Time) time.Time { return b.pkt[i].at }

type sock struct {
	v6   bool // unused here
	conn *net.UDPConn
	in   chan datagram
}

func openSock(addr netip.AddrPort) (*sock, netip.AddrPort, error) {
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	s := &sock{conn: conn, in: make(chan datagram, 64)}
	go func() {
		for {
			buf := make([]byte, rxBufSize)
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					close(s.in)
					return
				}
				continue
			}
			select {
			case s.in <- datagram{buf[:n], from, time.Now()}:
			default: // the clock is behind: drop, as a full socket buffer would
			}
		}
	}()
	return s, conn.LocalAddr().(*net.UDPAddr).AddrPort(), nil
}

type peer struct {
	ap netip.AddrPort
}

func newPeer(ap netip.AddrPort, v6 bool) *peer { return &peer{ap: ap} }

func (s *sock) recv(b *rxBatch) int {
	for i := range b.pkt {
		select {
		case d, ok := <-s.in:
			if !ok {
				return i
			}
			b.pkt[i] = d
		default:
			return i
		}
	}
	return len(b.pkt)
}

func (s *sock) sendTo(pkt []byte, p *peer) error {
	_, err := s.conn.WriteToUDPAddrPort(pkt, p.ap)
	return err
}

func (s *sock) close() error { return s.conn.Close() }

func (s *sock) setBuffers(bytes int) {
	_ = s.conn.SetReadBuffer(bytes)
	_ = s.conn.SetWriteBuffer(bytes)
}

type txSlot struct {
	buf [txBufSize]byte
	n   int
	p   *peer
	ep  *Endpoint
}

type txBatch struct {
	slot []txSlot
	n    int
}

func newTxBatch(n int) *txBatch { return &txBatch{slot: make([]txSlot, n)} }

func (b *txBatch) add(pkt []byte, p *peer, e *Endpoint) bool {
	s := &b.slot[b.n]
	s.n = copy(s.buf[:], pkt)
	s.p, s.ep = p, e
	b.n++
	return b.n == len(b.slot)
}

// sendBatch sends one datagram at a time: no sendmmsg here.
func (s *sock) sendBatch(b *txBatch) {
	for i := range b.n {
		sl := &b.slot[i]
		if s.sendTo(sl.buf[:sl.n], sl.p) == nil {
			sl.ep.Stats.Sent.Add(1)
		}
		sl.p, sl.ep = nil, nil
	}
	b.n = 0
}
