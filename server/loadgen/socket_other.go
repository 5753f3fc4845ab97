//go:build !linux

package loadgen

import (
	"errors"
	"net/netip"
)

// The generator's batched, kernel-timestamped sockets are Linux only.

const rxBatch = 64

type socket struct{ local netip.AddrPort }

type outPacket struct{ sa netip.AddrPort }

func openSocket() (*socket, error) {
	return nil, errors.New("loadgen: the load generator runs on Linux only")
}

func (s *socket) close()                                     {}
func (s *socket) recv() (int, error)                         { return 0, nil }
func (s *socket) packet(int) ([]byte, netip.AddrPort, int64) { return nil, netip.AddrPort{}, 0 }
func (s *socket) send(p []*outPacket) (int, error)           { return 0, nil }
func (o *outPacket) set(*[12]byte, []byte)                   {}
func sockaddr(ap netip.AddrPort) netip.AddrPort              { return ap }
func nowNano() int64                                         { return 0 }
