//go:build linux

package transport

import (
	"fmt"
	"net"
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// On Linux a leg's socket stays out of Go's netpoller: nothing waits on it, so an arriving
// packet wakes no thread. The room's clock drains it once a frame with recvmmsg
// (MSG_DONTWAIT) and sends with one sendto per frame, both as raw system calls: neither
// can block, and at a few microseconds each they are not worth handing the P off for.

// mmsghdr is struct mmsghdr of <sys/socket.h>.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// rxSlot is one receive buffer of a batch.
type rxSlot struct {
	buf [rxBufSize]byte
	sa  unix.RawSockaddrInet6 // large enough for either family
	iov unix.Iovec
	oob [oobSize]byte // the kernel's arrival stamp (SO_TIMESTAMPNS)
}

// oobSize holds one SCM_TIMESTAMPNS control message (a cmsghdr and a timespec).
const oobSize = 32

// rxBatch is the scratch of one drain: pooled for per-leg sockets, so legs don't each carry
// one; a shared socket owns a larger one.
type rxBatch struct {
	slot []rxSlot
	hdr  []mmsghdr
}

// size is how many datagrams the batch holds.
func (b *rxBatch) size() int { return len(b.hdr) }

func newBatch(n int) *rxBatch {
	b := &rxBatch{slot: make([]rxSlot, n), hdr: make([]mmsghdr, n)}
	for i := range b.slot {
		s := &b.slot[i]
		s.iov.Base = &s.buf[0]
		s.iov.SetLen(rxBufSize)
		h := &b.hdr[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&s.sa))
		h.Iov = &s.iov
		h.SetIovlen(1)
		h.Control = &s.oob[0]
	}
	return b
}

// packet i of the last recv and who sent it.
func (b *rxBatch) packet(i int) ([]byte, netip.AddrPort) {
	s := &b.slot[i]
	n := min(int(b.hdr[i].len), rxBufSize)
	port := uint16(s.sa.Port>>8) | uint16(s.sa.Port<<8) // network byte order
	var ip netip.Addr
	switch s.sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&s.sa))
		ip = netip.AddrFrom4(sa4.Addr)
	case unix.AF_INET6:
		ip = netip.AddrFrom16(s.sa.Addr)
	}
	return s.buf[:n], netip.AddrPortFrom(ip, port)
}

// arrival is when packet i reached the host, by the kernel's stamp, on now's clock: the
// drain may come well after (a leg's socket is drained when its frame is due). Without a
// stamp it is now.
func (b *rxBatch) arrival(i int, now time.Time) time.Time {
	oob := b.slot[i].oob[:min(int(b.hdr[i].hdr.Controllen), oobSize)]
	if len(oob) < unix.CmsgLen(int(unsafe.Sizeof(unix.Timespec{}))) {
		return now
	}
	c := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	if c.Level != unix.SOL_SOCKET || c.Type != unix.SCM_TIMESTAMPNS {
		return now
	}
	ts := (*unix.Timespec)(unsafe.Pointer(&oob[unix.CmsgLen(0)]))
	// The stamp is wall-clock time; the age keeps now's monotonic reading.
	age := now.Sub(time.Unix(ts.Unix()))
	if age < 0 || age > time.Second {
		return now // the wall clock was stepped
	}
	return now.Add(-age)
}

// sock is one bound, non-blocking UDP socket.
type sock struct {
	fd int
	v6 bool
}

// openSock binds addr. A specific IPv4 address gets an IPv4 socket; the unspecified
// address (either family) or an IPv6 one a dual-stack IPv6 socket, as net.ListenUDP does.
func openSock(addr netip.AddrPort) (*sock, netip.AddrPort, error) {
	ip := addr.Addr().Unmap()
	v6 := !ip.Is4() || ip.IsUnspecified()
	family := unix.AF_INET
	if v6 {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, netip.AddrPort{}, fmt.Errorf("rtp socket: %w", err)
	}
	fail := func(err error) (*sock, netip.AddrPort, error) {
		unix.Close(fd)
		return nil, netip.AddrPort{}, fmt.Errorf("rtp listen %s: %w", addr, err)
	}
	// The kernel stamps each datagram's arrival: a room times its legs' frames by when
	// they came, not by when it drained them. Without stamps they count as come at the drain.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	var sa unix.Sockaddr
	if v6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
			return fail(err)
		}
		sa6 := &unix.SockaddrInet6{Port: int(addr.Port())}
		if !ip.IsUnspecified() {
			sa6.Addr = ip.As16()
			sa6.ZoneId = zoneID(ip.Zone())
		}
		sa = sa6
	} else {
		sa = &unix.SockaddrInet4{Port: int(addr.Port()), Addr: ip.As4()}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail(err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		return fail(err)
	}
	var local netip.AddrPort
	switch a := got.(type) {
	case *unix.SockaddrInet4:
		local = netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		l := netip.AddrFrom16(a.Addr)
		if ip.Is4() && !ip.IsUnspecified() {
			l = l.Unmap()
		}
		local = netip.AddrPortFrom(l, uint16(a.Port))
	}
	return &sock{fd: fd, v6: v6}, local, nil
}

func zoneID(zone string) uint32 {
	if zone == "" {
		return 0
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return uint32(ifi.Index)
	}
	return 0
}

// peer is a destination, its socket address prepared once per Configure.
type peer struct {
	ap  netip.AddrPort
	sa  unix.RawSockaddrInet6 // or a RawSockaddrInet4 in its first bytes
	len uint32
}

func newPeer(ap netip.AddrPort, v6 bool) *peer {
	p := &peer{ap: ap}
	port := ap.Port()
	nport := port>>8 | port<<8
	if !v6 {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&p.sa))
		sa4.Family = unix.AF_INET
		sa4.Port = nport
		sa4.Addr = ap.Addr().Unmap().As4()
		p.len = unix.SizeofSockaddrInet4
		return p
	}
	p.sa.Family = unix.AF_INET6
	p.sa.Port = nport
	p.sa.Addr = ap.Addr().As16() // an IPv4 peer as ::ffff:a.b.c.d
	p.sa.Scope_id = zoneID(ap.Addr().Zone())
	p.len = unix.SizeofSockaddrInet6
	return p
}

// recv reads up to one batch without waiting; 0 when nothing is queued.
func (s *sock) recv(b *rxBatch) int {
	for i := range b.hdr {
		h := &b.hdr[i]
		h.hdr.Namelen = unix.SizeofSockaddrInet6
		h.hdr.Flags = 0
		h.hdr.SetControllen(oobSize)
		h.len = 0
	}
	for {
		n, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&b.hdr[0])), uintptr(len(b.hdr)), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			return int(n)
		case unix.EINTR:
			continue
		}
		// EAGAIN: nothing queued. Anything else (a pending ICMP error) is dropped with
		// the call; the next drain reads on.
		return 0
	}
}

// sendTo sends one datagram without waiting: a full send buffer drops the frame rather
// than stall the clock.
func (s *sock) sendTo(pkt []byte, p *peer) error {
	for {
		_, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(s.fd), uintptr(unsafe.Pointer(&pkt[0])), uintptr(len(pkt)),
			unix.MSG_DONTWAIT, uintptr(unsafe.Pointer(&p.sa)), uintptr(p.len))
		switch errno {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return errno
	}
}

func (s *sock) close() error { return unix.Close(s.fd) }

// setBuffers makes room for a few frames of many legs' packets on a shared socket;
// SO_RCVBUFFORCE passes rmem_max when we may (root), else the kernel caps SO_RCVBUF.
func (s *sock) setBuffers(bytes int) {
	if unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, bytes) != nil {
		_ = unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, bytes)
	}
	if unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, bytes) != nil {
		_ = unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, bytes)
	}
}

// txSlot is one datagram of a send batch: its bytes and destination are copied in, so the
// batch holds no reference into a leg's buffers.
type txSlot struct {
	buf [txBufSize]byte
	sa  unix.RawSockaddrInet6
	iov unix.Iovec
	ep  *Endpoint // counted as sent once the kernel took the datagram
}

// txBatch collects a poll's datagrams for one sendmmsg.
type txBatch struct {
	slot []txSlot
	hdr  []mmsghdr
	n    int
}

func newTxBatch(n int) *txBatch {
	b := &txBatch{slot: make([]txSlot, n), hdr: make([]mmsghdr, n)}
	for i := range b.slot {
		s := &b.slot[i]
		s.iov.Base = &s.buf[0]
		h := &b.hdr[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&s.sa))
		h.Iov = &s.iov
		h.SetIovlen(1)
	}
	return b
}

// add copies one datagram in; it reports whether the batch is now full.
func (b *txBatch) add(pkt []byte, p *peer, e *Endpoint) bool {
	s := &b.slot[b.n]
	n := copy(s.buf[:], pkt)
	s.iov.SetLen(n)
	s.sa = p.sa
	b.hdr[b.n].hdr.Namelen = p.len
	s.ep = e
	b.n++
	return b.n == len(b.slot)
}

// sendBatch sends the batch with as few sendmmsg calls as the kernel allows and empties
// it, counting what went out on each datagram's endpoint. A full send buffer drops the rest
// rather than stall the clock; a datagram the kernel refuses (an ICMP error pending) is
// skipped and the rest go on.
func (s *sock) sendBatch(b *txBatch) {
	i := 0
	for i < b.n {
		// Syscall, not RawSyscall: a batch of dozens of loopback datagrams runs long
		// enough that the runtime should be free to hand the P to another thread.
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&b.hdr[i])), uintptr(b.n-i), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			for j := i; j < i+int(n); j++ {
				b.slot[j].ep.Stats.Sent.Add(1)
			}
			i += int(n)
		case unix.EINTR:
		case unix.EAGAIN:
			i = b.n
		default:
			i++
		}
	}
	for j := range b.n {
		b.slot[j].ep = nil
	}
	b.n = 0
}
