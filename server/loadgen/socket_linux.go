//go:build linux

package loadgen

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The generator's sockets bypass Go's netpoller on purpose: a group's one goroutine drains
// its socket once per tick with recvmmsg(MSG_DONTWAIT) and sends with one sendmmsg, so
// nothing in this process wakes per packet. x/net's ipv4.ReadBatch would do the batching
// but allocates a net.UDPAddr per message and keeps the fd in epoll, which wakes the
// runtime on every arrival. The kernel stamps every packet on arrival (SO_TIMESTAMPNS), so
// draining only every 20 ms does not blur the timing we measure.

// mmsghdr is struct mmsghdr of <sys/socket.h>.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

const (
	rxBatch   = 64
	rxBufSize = 256 // an RTP packet of 20 ms G.711 is 172 bytes
	oobSize   = 64
)

// rxSlot is one receive buffer of the batch.
type rxSlot struct {
	buf [rxBufSize]byte
	sa  unix.RawSockaddrInet4
	oob [oobSize]byte
	iov unix.Iovec
}

// socket is one UDP socket on 127.0.0.1, owned by one group goroutine.
type socket struct {
	fd    int
	local netip.AddrPort
	rx    [rxBatch]rxSlot
	rxh   [rxBatch]mmsghdr
	tx    []mmsghdr
}

func openSocket() (*socket, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("loadgen: socket: %w", err)
	}
	fail := func(err error) (*socket, error) {
		unix.Close(fd)
		return nil, err
	}
	// Room for a few ticks of arrivals; SO_RCVBUFFORCE passes rmem_max when we are root.
	const bufBytes = 4 << 20
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, bufBytes) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, bufBytes)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, bufBytes) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, bufBytes)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fail(fmt.Errorf("loadgen: SO_TIMESTAMPNS: %w", err))
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return fail(fmt.Errorf("loadgen: bind: %w", err))
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fail(fmt.Errorf("loadgen: getsockname: %w", err))
	}
	in4, ok := sa.(*unix.SockaddrInet4)
	if !ok {
		return fail(errors.New("loadgen: socket is not IPv4"))
	}
	s := &socket{fd: fd, local: netip.AddrPortFrom(netip.AddrFrom4(in4.Addr), uint16(in4.Port))}
	for i := range s.rx {
		r := &s.rx[i]
		r.iov.Base = &r.buf[0]
		r.iov.SetLen(rxBufSize)
		h := &s.rxh[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&r.sa))
		h.Iov = &r.iov
		h.SetIovlen(1)
		h.Control = &r.oob[0]
	}
	return s, nil
}

func (s *socket) close() { unix.Close(s.fd) }

// recv reads up to one batch without waiting; n is 0 when nothing is queued.
func (s *socket) recv() (int, error) {
	for i := range s.rxh {
		h := &s.rxh[i]
		h.hdr.Namelen = unix.SizeofSockaddrInet4
		h.hdr.SetControllen(oobSize)
		h.hdr.Flags = 0
		h.len = 0
	}
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&s.rxh[0])), rxBatch, unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, nil
		}
		return 0, errno
	}
}

// packet i of the last recv: payload, the sender's port, and the kernel's arrival time in
// unix nanoseconds (0 if the kernel gave none).
func (s *socket) packet(i int) ([]byte, netip.AddrPort, int64) {
	r := &s.rx[i]
	h := &s.rxh[i]
	n := min(int(h.len), rxBufSize)
	port := uint16(r.sa.Port>>8) | uint16(r.sa.Port<<8) // network byte order
	from := netip.AddrPortFrom(netip.AddrFrom4(r.sa.Addr), port)
	return r.buf[:n], from, arrival(r.oob[:min(int(h.hdr.Controllen), oobSize)])
}

// arrival finds SCM_TIMESTAMPNS among the control messages.
func arrival(oob []byte) int64 {
	for len(oob) >= unix.SizeofCmsghdr {
		c := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(c.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			return 0
		}
		if c.Level == unix.SOL_SOCKET && c.Type == unix.SCM_TIMESTAMPNS && l >= unix.CmsgLen(int(unsafe.Sizeof(unix.Timespec{}))) {
			ts := (*unix.Timespec)(unsafe.Pointer(&oob[unix.CmsgLen(0)]))
			return ts.Nano()
		}
		oob = oob[unix.CmsgSpace(l-unix.CmsgLen(0)):]
	}
	return 0
}

// outPacket is one packet to send: a 12-byte RTP header and a shared payload.
type outPacket struct {
	sa  unix.RawSockaddrInet4
	iov [2]unix.Iovec
}

func sockaddr(ap netip.AddrPort) unix.RawSockaddrInet4 {
	p := ap.Port()
	return unix.RawSockaddrInet4{Family: unix.AF_INET, Port: p>>8 | p<<8, Addr: ap.Addr().As4()}
}

func (o *outPacket) set(hdr *[12]byte, payload []byte) {
	o.iov[0].Base = &hdr[0]
	o.iov[0].SetLen(len(hdr))
	o.iov[1].Base = &payload[0]
	o.iov[1].SetLen(len(payload))
}

// send writes the packets with as few sendmmsg calls as the kernel allows; it returns how
// many went out. A full send buffer drops the rest of the batch rather than wait.
func (s *socket) send(pkts []*outPacket) (int, error) {
	if cap(s.tx) < len(pkts) {
		s.tx = make([]mmsghdr, len(pkts))
	}
	tx := s.tx[:len(pkts)]
	for i, p := range pkts {
		h := &tx[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&p.sa))
		h.Namelen = unix.SizeofSockaddrInet4
		h.Iov = &p.iov[0]
		h.SetIovlen(2)
		h.Control = nil
		h.SetControllen(0)
		tx[i].len = 0
	}
	ok, i := 0, 0
	var lastErr error
	for i < len(tx) {
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&tx[i])), uintptr(len(tx)-i), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			ok += int(n)
			i += int(n)
		case unix.EINTR:
		case unix.EAGAIN:
			return ok, nil
		default:
			// The first remaining packet failed (bad destination): skip it, send the rest.
			lastErr = errno
			i++
		}
	}
	return ok, lastErr
}

func nowNano() int64 { return time.Now().UnixNano() }
