//go:build linux

package server_test

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ringside/media"
)

// wirePacket is one UDP datagram seen on lo.
type wirePacket struct {
	src, dst uint16
	payload  []byte
}

// loCapture records every UDP/IPv4 datagram on the loopback interface through an AF_PACKET
// socket, as tcpdump would: what an eavesdropper on the host sees.
type loCapture struct {
	fd   int
	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	pkts []wirePacket
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func startCapture(t *testing.T) *loCapture {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("capturing on lo needs root (AF_PACKET raw socket); run the tests as root to prove no plaintext tone is on the wire")
	}
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skipf("no loopback interface: %v", err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, int(htons(unix.ETH_P_IP)))
	if err != nil {
		t.Skipf("AF_PACKET socket: %v", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: lo.Index}); err != nil {
		unix.Close(fd)
		t.Fatalf("bind AF_PACKET to lo: %v", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
	tv := unix.NsecToTimeval((50 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	c := &loCapture{fd: fd, stop: make(chan struct{})}
	c.wg.Add(1)
	go c.run()
	t.Cleanup(c.close)
	return c
}

func (c *loCapture) run() {
	defer c.wg.Done()
	buf := make([]byte, 65536)
	for {
		select {
		case <-c.stop:
			return
		default:
		}
		n, from, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			continue // timeout: look at stop again
		}
		// Loopback shows each datagram twice, leaving and arriving: keep the arrival.
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		pkt := buf[:n]
		if len(pkt) < 20 || pkt[0]>>4 != 4 || pkt[9] != unix.IPPROTO_UDP {
			continue
		}
		ihl := int(pkt[0]&0x0f) * 4
		if len(pkt) < ihl+8 {
			continue
		}
		udp := pkt[ihl:]
		p := wirePacket{
			src:     binary.BigEndian.Uint16(udp[0:2]),
			dst:     binary.BigEndian.Uint16(udp[2:4]),
			payload: append([]byte(nil), udp[8:]...),
		}
		c.mu.Lock()
		c.pkts = append(c.pkts, p)
		c.mu.Unlock()
	}
}

func (c *loCapture) close() {
	select {
	case <-c.stop:
		return
	default:
	}
	close(c.stop)
	c.wg.Wait()
	unix.Close(c.fd)
}

// between returns the payloads sent from port src to port dst, in order of arrival.
func (c *loCapture) between(src, dst netip.AddrPort) [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out [][]byte
	for _, p := range c.pkts {
		if p.src == src.Port() && p.dst == dst.Port() {
			out = append(out, p.payload)
		}
	}
	return out
}

// asPCMU decodes every RTP-shaped payload (first byte 128..191, a 12-byte header and at
// least one frame) as if it carried PCMU, as an eavesdropper would try.
func asPCMU(payloads [][]byte) (pcm []int16, rtp, dtls int) {
	frame := make([]int16, media.FrameSamples)
	for _, p := range payloads {
		switch {
		case len(p) > 0 && p[0] >= 20 && p[0] <= 63:
			dtls++
		case len(p) >= 12+media.FrameSamples && p[0] >= 128 && p[0] <= 191 && p[1]&0x7f < 64:
			rtp++
			media.PCMU.Decode(frame, p[12:12+media.FrameSamples])
			pcm = append(pcm, frame...)
		}
	}
	return pcm, rtp, dtls
}

// prominence is how far the tone at hz stands above the median level of 40 other
// frequencies across the band: a tone stands 30 dB and more above, noise a few dB at most.
func prominence(pcm []int16, hz float64) float64 {
	var others []float64
	for f := 310.0; len(others) < 40; f += 77 {
		if f > 3500 {
			break
		}
		near := false
		for _, tone := range []float64{customerHz, agentHz, supervisorHz, supervisor2Hz} {
			near = near || (f > tone-60 && f < tone+60)
		}
		if !near {
			others = append(others, media.ToneLevelDB(pcm, f))
		}
	}
	slices.Sort(others)
	return media.ToneLevelDB(pcm, hz) - others[len(others)/2]
}

// TestSRTPLegCarriesNoPlaintextTone captures lo from before the call: the agent's DTLS-SRTP
// leg shows DTLS and RTP-shaped packets whose payloads, decoded as PCMU, hold neither
// the customer's nor the agent's tone, while the same capture of the customer's plain
// RTP leg finds both.
func TestSRTPLegCarriesNoPlaintextTone(t *testing.T) {
	capture := startCapture(t)
	r := newRig(t)
	alice := r.securePhone("1001", "alice-pw", agentHz, true, true, nil)
	customer, agent := r.call(alice, "1001")
	waitSecure(t, "agent", agent)
	lv := levels(t, customer, agent) // media flowed, both ways, and was heard
	expect(t, "customer", lv[0], agentHz)
	expect(t, "agent", lv[1], customerHz)
	time.Sleep(200 * time.Millisecond)
	capture.close()

	type direction struct {
		name     string
		src, dst netip.AddrPort
		tone     float64 // the tone this direction carries in the clear
		secure   bool
	}
	for _, d := range []direction{
		{"customer → server (plain RTP)", customer.LocalMedia(), customer.RemoteMedia(), customerHz, false},
		{"server → customer (plain RTP)", customer.RemoteMedia(), customer.LocalMedia(), agentHz, false},
		{"agent → server (SRTP)", agent.LocalMedia(), agent.RemoteMedia(), agentHz, true},
		{"server → agent (SRTP)", agent.RemoteMedia(), agent.LocalMedia(), customerHz, true},
	} {
		pcm, nRTP, nDTLS := asPCMU(capture.between(d.src, d.dst))
		if nRTP < 25 {
			t.Fatalf("%s: only %d RTP-shaped packets captured", d.name, nRTP)
		}
		if d.secure && nDTLS == 0 {
			t.Errorf("%s: no DTLS handshake on the wire", d.name)
		}
		for _, hz := range []float64{customerHz, agentHz} {
			p := prominence(pcm, hz)
			switch {
			case !d.secure && hz == d.tone && p < 30:
				t.Errorf("%s: the plain leg's %v Hz stands only %.1f dB above the band: the capture doesn't work", d.name, hz, p)
			case d.secure && p > 15:
				t.Errorf("%s: %v Hz stands %.1f dB above the band in the SRTP payloads: plaintext on the wire", d.name, hz, p)
			}
			t.Logf("%s: %d packets (%d DTLS), %v Hz %.1f dB above the band", d.name, nRTP, nDTLS, hz, p)
		}
	}
}
