package simphone

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

// A stream's socket calls carry packets both ways on IPv4 and IPv6 sockets, report the
// sender as it is (an IPv4 peer of an IPv6 socket unmapped), wait for a packet that is
// not there yet, and end with net.ErrClosed when the socket closes.
func TestRTPReaderWriter(t *testing.T) {
	for _, tc := range []struct{ name, a, b string }{
		{"v4", "127.0.0.1:0", "127.0.0.1:0"},
		{"v6", "[::1]:0", "[::1]:0"},
		{"v4 peer of a dual-stack socket", "[::]:0", "127.0.0.1:0"},
		{"dual-stack socket to a v4 peer", "127.0.0.1:0", "[::]:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(tc.a)))
			if err != nil {
				t.Skipf("no such socket here: %v", err)
			}
			defer a.Close()
			b, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(tc.b)))
			if err != nil {
				t.Skipf("no such socket here: %v", err)
			}
			defer b.Close()
			// Each as the other reaches it: on IPv4 loopback unless both are IPv6.
			aLocal := a.LocalAddr().(*net.UDPAddr).AddrPort()
			bLocal := b.LocalAddr().(*net.UDPAddr).AddrPort()
			loop := netip.IPv6Loopback()
			if aLocal.Addr().Is4() || bLocal.Addr().Is4() {
				loop = netip.AddrFrom4([4]byte{127, 0, 0, 1})
			}
			aAddr := netip.AddrPortFrom(loop, aLocal.Port())
			bAddr := netip.AddrPortFrom(loop, bLocal.Port())

			rx, err := newRTPReader(a)
			if err != nil {
				t.Fatal(err)
			}
			tx, err := newRTPWriter(b)
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan []byte, 1)
			from := make(chan netip.AddrPort, 1)
			go func() {
				buf := make([]byte, 64)
				n, f, err := rx.readFrom(buf) // nothing has been sent yet: it waits
				if err != nil {
					t.Error(err)
					close(got)
					return
				}
				got <- buf[:n]
				from <- f
			}()
			time.Sleep(20 * time.Millisecond)
			pkt := []byte("\x80\x00\x00\x01rtp payload")
			if err := tx.writeTo(pkt, aAddr); err != nil {
				t.Fatal(err)
			}
			select {
			case p := <-got:
				if !bytes.Equal(p, pkt) {
					t.Fatalf("received %q, sent %q", p, pkt)
				}
				if f := <-from; f != bAddr {
					t.Errorf("from %v, want %v", f, bAddr)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("nothing received")
			}

			// Closing the socket ends a read in progress.
			errc := make(chan error, 1)
			go func() {
				_, _, err := rx.readFrom(make([]byte, 64))
				errc <- err
			}()
			time.Sleep(20 * time.Millisecond)
			a.Close()
			select {
			case err := <-errc:
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("read after close: %v, want net.ErrClosed", err)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("a read outlived its socket")
			}
		})
	}
}
