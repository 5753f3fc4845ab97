package simphone

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ringside/media"
)

// gatedCard is a sound card on a 10 ms clock that can stall (its clock runs, no period is
// served) and recover, keeping what it played.
type gatedCard struct {
	running atomic.Bool
	stop    chan struct{}
	done    chan struct{}

	mu     sync.Mutex
	played []int16
}

func (d *gatedCard) Start(capture, playback func([]int16)) error {
	d.stop, d.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(d.done)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		in, out := make([]int16, media.FrameSamples), make([]int16, 80)
		half := false
		for {
			select {
			case <-d.stop:
				return
			case <-t.C:
			}
			if !d.running.Load() {
				continue
			}
			if half {
				capture(in)
			}
			half = !half
			playback(out)
			d.mu.Lock()
			d.played = append(d.played, out...)
			d.mu.Unlock()
		}
	}()
	return nil
}

func (d *gatedCard) Close() error {
	close(d.stop)
	<-d.done
	return nil
}

// takePlayed returns what was played since the last call.
func (d *gatedCard) takePlayed() []int16 {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.played
	d.played = nil
	return p
}

// A phone with a sound card reads its calls' packets on the card's goroutine; when the
// card stalls, the stream's own receive loop takes over, so the recording and DTMF go on,
// and once the card serves periods again it plays what arrives.
func TestStreamReceivesWhileCardStalls(t *testing.T) {
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	card := &gatedCard{}
	pa := &phoneAudio{dev: card}
	digits := make(chan rune, 4)
	st, err := newStreamAt(netip.AddrFrom4([4]byte{127, 0, 0, 1}), pa, slog.New(slog.DiscardHandler), media.PCMU, 0, time.Second, digits)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	st.configure(peer.LocalAddr().(*net.UDPAddr).AddrPort(), media.PCMU, 101, 101, true)
	card.running.Store(true)
	if err := card.Start(pa.capture, pa.playback); err != nil {
		t.Fatal(err)
	}
	defer card.Close()
	st.startSending()

	// The peer: a 1 kHz tone every 20 ms, and a DTMF digit when asked.
	dtmf := make(chan rune, 1)
	stopPeer := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tone := media.NewTone(1000, 0.3)
		pcm := make([]int16, media.FrameSamples)
		body := make([]byte, media.FrameSamples)
		pkt := make([]byte, 12+media.FrameSamples)
		tick := time.NewTicker(media.FrameDuration)
		defer tick.Stop()
		var seq uint16
		var ts uint32
		for {
			select {
			case <-stopPeer:
				return
			case <-tick.C:
			}
			select {
			case d := <-dtmf:
				code, _ := media.DTMFEventCode(d)
				for i := range 3 {
					n := media.DTMFEvent{Event: code, End: true, Duration: 800}.Marshal(body)
					m := media.MarshalRTP(pkt, media.RTPHeader{PayloadType: 101, Seq: seq, Timestamp: ts, SSRC: 9, Marker: i == 0}, body[:n])
					_, _ = peer.WriteToUDPAddrPort(pkt[:m], st.local)
					seq++
				}
			default:
			}
			tone.Fill(pcm)
			media.PCMU.Encode(body, pcm)
			n := media.MarshalRTP(pkt, media.RTPHeader{PayloadType: uint8(media.PCMU), Seq: seq, Timestamp: ts, SSRC: 9}, body)
			_, _ = peer.WriteToUDPAddrPort(pkt[:n], st.local)
			seq++
			ts += media.FrameSamples
		}
	}()
	defer func() { close(stopPeer); wg.Wait() }()

	hears := func(what string) {
		t.Helper()
		card.takePlayed()
		time.Sleep(500 * time.Millisecond)
		if db := media.ToneLevelDB(card.takePlayed(), 1000); db < -20 {
			t.Fatalf("%s: the card played the peer's tone at %.1f dB", what, db)
		}
	}
	hears("card running")

	card.running.Store(false)
	time.Sleep(100 * time.Millisecond)
	before := st.getStats().Received
	time.Sleep(2 * recvHandover)
	if got := st.getStats().Received - before; got < 10 {
		t.Errorf("card stalled: %d packets received in %v, want the receive loop to go on", got, 2*recvHandover)
	}
	dtmf <- '5'
	select {
	case d := <-digits:
		if d != '5' {
			t.Errorf("digit %q, want 5", d)
		}
	case <-time.After(2 * recvHandover):
		t.Error("card stalled: the DTMF digit was not received")
	}

	card.running.Store(true)
	hears("card recovered")
}

// tryRead returns at once, with nothing when nothing waits; a packet read a while after it
// came is dated by the kernel's stamp, not by when it was read.
func TestRTPReaderTryRead(t *testing.T) {
	if !devicePolls {
		t.Skip("no polled reads on this platform")
	}
	a, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rx, err := newRTPReader(a)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n, _, ok := rx.tryRead(buf); ok {
		t.Fatalf("read %d bytes from an empty socket", n)
	}
	sent := time.Now()
	if _, err := b.WriteToUDPAddrPort([]byte("hello"), a.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	n, from, ok := rx.tryRead(buf)
	if !ok || string(buf[:n]) != "hello" || from != b.LocalAddr().(*net.UDPAddr).AddrPort() {
		t.Fatalf("tryRead: %q from %v, ok %v", buf[:n], from, ok)
	}
	now := time.Now()
	if at := rx.arrived(now); at.Before(sent.Add(-time.Millisecond)) || now.Sub(at) < 40*time.Millisecond {
		t.Errorf("arrived %v after sending, read %v after: want the kernel's arrival time", at.Sub(sent), now.Sub(at))
	}
	if _, _, ok := rx.tryRead(buf); ok {
		t.Error("the packet was read twice")
	}
}
