//go:build linux

package simphone

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"
	"unsafe"
)

// On Linux a stream's RTP goes through raw system calls inside the netpoller's
// callbacks (RawConn): Go's ordinary socket calls enter the runtime's syscall path, and
// each entry wakes a sleeping sysmon, which then polls every 20 µs for a while. At 50
// packets a second each way that was a good share of a monitoring softphone's CPU. The
// socket is non-blocking, so neither call can block: a read waits in the netpoller, a
// send that finds the buffer full fails.

// devicePolls tells that a sound card's goroutine can read a stream's socket without
// waiting (rtpReader.tryRead), each period, instead of a goroutine woken per packet.
const devicePolls = true

// rtpReader receives a stream's packets; one goroutine uses it.
type rtpReader struct {
	conn   syscall.RawConn
	fn     func(fd uintptr) bool // r.recv, bound once: no allocation per packet
	tryFn  func(fd uintptr)      // tryRead's, bound once
	tryGot bool

	buf   []byte
	n     int
	from  netip.AddrPort
	stamp time.Time // the kernel's arrival stamp of the last packet (wall clock); zero if none
	errno syscall.Errno
	sa    syscall.RawSockaddrAny
	iov   syscall.Iovec
	msg   syscall.Msghdr
	oob   [oobSize]byte
}

// oobSize holds one SCM_TIMESTAMPNS control message (a cmsghdr and a timespec).
const oobSize = 32

func newRTPReader(c *net.UDPConn) (*rtpReader, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	// The kernel stamps each datagram's arrival, so a packet read a period after it came
	// still tells the playout when it came.
	if err := rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	}); err != nil {
		return nil, err
	}
	r := &rtpReader{conn: rc}
	r.fn = r.recv
	r.tryFn = func(fd uintptr) { r.tryGot = r.recv(fd) }
	return r, nil
}

// tryRead is readFrom without waiting: false when no packet waits (or the socket
// failed or closed; the receive loop reports those).
func (r *rtpReader) tryRead(b []byte) (int, netip.AddrPort, bool) {
	r.buf, r.tryGot = b, false
	err := r.conn.Control(r.tryFn)
	r.buf = nil
	if err != nil || !r.tryGot || r.errno != 0 {
		return 0, netip.AddrPort{}, false
	}
	return r.n, r.from, true
}

// arrived is when the last packet read came, on now's clock (now if the kernel gave no
// stamp, or the wall clock was stepped since).
func (r *rtpReader) arrived(now time.Time) time.Time {
	if r.stamp.IsZero() {
		return now
	}
	age := now.Sub(r.stamp)
	if age < 0 || age > time.Second {
		return now
	}
	return now.Add(-age)
}

// readFrom is ReadFromUDPAddrPort: waits for a packet, copies it into b.
func (r *rtpReader) readFrom(b []byte) (int, netip.AddrPort, error) {
	r.buf = b
	err := r.conn.Read(r.fn)
	r.buf = nil
	if err != nil {
		return 0, netip.AddrPort{}, err
	}
	if r.errno != 0 {
		return 0, netip.AddrPort{}, os.NewSyscallError("recvfrom", r.errno)
	}
	return r.n, r.from, nil
}

func (r *rtpReader) recv(fd uintptr) bool {
	var p unsafe.Pointer
	if len(r.buf) > 0 {
		p = unsafe.Pointer(&r.buf[0])
	}
	r.iov.Base = (*byte)(p)
	r.iov.SetLen(len(r.buf))
	for {
		r.msg = syscall.Msghdr{Name: (*byte)(unsafe.Pointer(&r.sa)), Namelen: syscall.SizeofSockaddrAny,
			Iov: &r.iov, Iovlen: 1, Control: &r.oob[0]}
		r.msg.SetControllen(oobSize)
		n, _, e := syscall.RawSyscall(syscall.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&r.msg)), syscall.MSG_DONTWAIT)
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait for the socket
		}
		r.n, r.errno = int(n), e
		r.from = addrPortOf(&r.sa)
		r.stamp = stampOf(r.oob[:min(int(r.msg.Controllen), oobSize)])
		return true
	}
}

// stampOf reads an SCM_TIMESTAMPNS control message; zero if oob holds none.
func stampOf(oob []byte) time.Time {
	var ts syscall.Timespec
	if len(oob) < syscall.CmsgLen(int(unsafe.Sizeof(ts))) {
		return time.Time{}
	}
	c := (*syscall.Cmsghdr)(unsafe.Pointer(&oob[0]))
	if c.Level != syscall.SOL_SOCKET || c.Type != syscall.SCM_TIMESTAMPNS {
		return time.Time{}
	}
	ts = *(*syscall.Timespec)(unsafe.Pointer(&oob[syscall.CmsgLen(0)]))
	return time.Unix(ts.Unix())
}

// rtpWriter sends a stream's packets; one goroutine uses it.
type rtpWriter struct {
	conn syscall.RawConn
	fn   func(fd uintptr) bool // w.send, bound once
	v6   bool                  // the socket is AF_INET6

	pkt   []byte
	errno syscall.Errno
	sa    syscall.RawSockaddrInet6 // or a RawSockaddrInet4 in its first bytes
	salen uint32
}

func newRTPWriter(c *net.UDPConn) (*rtpWriter, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	w := &rtpWriter{conn: rc}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		var domain int
		domain, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_DOMAIN)
		w.v6 = domain == syscall.AF_INET6
	}); err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, serr
	}
	w.fn = w.send
	return w, nil
}

// writeTo is WriteToUDPAddrPort.
func (w *rtpWriter) writeTo(pkt []byte, to netip.AddrPort) error {
	if !w.setAddr(to) {
		return &net.AddrError{Err: "no IPv6 on this socket", Addr: to.String()}
	}
	w.pkt = pkt
	err := w.conn.Write(w.fn)
	w.pkt = nil
	if err != nil {
		return err
	}
	if w.errno != 0 {
		return os.NewSyscallError("sendto", w.errno)
	}
	return nil
}

func (w *rtpWriter) setAddr(to netip.AddrPort) bool {
	ip := to.Addr()
	port := to.Port()
	if !w.v6 {
		ip = ip.Unmap()
		if !ip.Is4() {
			return false
		}
		sa := (*syscall.RawSockaddrInet4)(unsafe.Pointer(&w.sa))
		*sa = syscall.RawSockaddrInet4{Family: syscall.AF_INET, Addr: ip.As4()}
		putPort(&sa.Port, port)
		w.salen = syscall.SizeofSockaddrInet4
		return true
	}
	w.sa = syscall.RawSockaddrInet6{Family: syscall.AF_INET6, Addr: ip.As16()}
	putPort(&w.sa.Port, port)
	w.salen = syscall.SizeofSockaddrInet6
	return true
}

func (w *rtpWriter) send(fd uintptr) bool {
	var p unsafe.Pointer
	if len(w.pkt) > 0 {
		p = unsafe.Pointer(&w.pkt[0])
	}
	for {
		_, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(p), uintptr(len(w.pkt)),
			syscall.MSG_DONTWAIT, uintptr(unsafe.Pointer(&w.sa)), uintptr(w.salen))
		if e == syscall.EINTR {
			continue
		}
		// A full send buffer (EAGAIN) drops the packet rather than wait: the sound
		// card's goroutine sends, and a frame late is a frame lost anyway.
		w.errno = e
		return true
	}
}

// addrPortOf reads the sender's address the kernel wrote (IPv4 as such, not mapped).
func addrPortOf(sa *syscall.RawSockaddrAny) netip.AddrPort {
	switch sa.Addr.Family {
	case syscall.AF_INET:
		in := (*syscall.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(in.Addr), getPort(&in.Port))
	case syscall.AF_INET6:
		in := (*syscall.RawSockaddrInet6)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom16(in.Addr).Unmap(), getPort(&in.Port))
	}
	return netip.AddrPort{}
}

// A sockaddr's port is in network byte order.
func putPort(p *uint16, port uint16) {
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(p))[:], port)
}
func getPort(p *uint16) uint16 { return binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(p))[:]) }
