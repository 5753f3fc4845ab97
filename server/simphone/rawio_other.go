//go:build !linux

package simphone

import (
	"net"
	"net/netip"
	"time"
)

// Elsewhere a stream's RTP uses the socket's ordinary calls.

type rtpReader struct{ c *net.UDPConn }

func newRTPReader(c *net.UDPConn) (*rtpReader, error) { return &rtpReader{c}, nil }

func (r *rtpReader) readFrom(b []byte) (int, netip.AddrPort, error) {
	return r.c.ReadFromUDPAddrPort(b)
}

// devicePolls is false: a sound card's goroutine does not read the socket here.
const devicePolls = false

func (r *rtpReader) tryRead([]byte) (int, netip.AddrPort, bool) { return 0, netip.AddrPort{}, false }

// arrived is when the last packet read came: when it was read.
func (r *rtpReader) arrived(now time.Time) time.Time { return now }

type rtpWriter struct{ c *net.UDPConn }

func newRTPWriter(c *net.UDPConn) (*rtpWriter, error) { return &rtpWriter{c}, nil }

func (w *rtpWriter) writeTo(pkt []byte, to netip.AddrPort) error {
	_, err := w.c.WriteToUDPAddrPort(pkt, to)
	return err
}
