//go:build !linux

package simphone

import (
	"net"
	"net/netip"
)

// Elsewhere a stream's RTP uses the socket's ordinary calls.

type rtpReader struct{ c *net.UDPConn }

func newRTPReader(c *net.UDPConn) (*rtpReader, error) { return &rtpReader{c}, nil }

func (r *rtpReader) readFrom(b []byte) (int, netip.AddrPort, error) {
	return r.c.ReadFromUDPAddrPort(b)
}

type rtpWriter struct{ c *net.UDPConn }

func newRTPWriter(c *net.UDPConn) (*rtpWriter, error) { return &rtpWriter{c}, nil }

func (w *rtpWriter) writeTo(pkt []byte, to netip.AddrPort) error {
	_, err := w.c.WriteToUDPAddrPort(pkt, to)
	return err
}
