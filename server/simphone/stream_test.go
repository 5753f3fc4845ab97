package simphone

import (
	"log/slog"
	"net"
	"testing"
	"time"

	"ringside/media"
)

// TestSendDTMFPackets checks the RFC 4733 packets on the wire: the event keeps
// its start timestamp, the first packet has the marker, durations grow by
// one frame, the End packet is sent three times, sequence numbers run on
// through audio and events, and audio timestamps carry on afterwards.
func TestSendDTMFPackets(t *testing.T) {
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	st, err := newStream(slog.New(slog.DiscardHandler), media.PCMU, 440, 0, make(chan rune, 4))
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	st.configure(peer.LocalAddr().(*net.UDPAddr).AddrPort(), media.PCMU, 96, 96, true)
	st.startSending()

	type pkt struct {
		h  media.RTPHeader
		ev *media.DTMFEvent
	}
	buf := make([]byte, 1500)
	read := func() pkt {
		t.Helper()
		peer.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := peer.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		h, payload, err := media.ParseRTP(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		p := pkt{h: h}
		if h.PayloadType == 96 {
			e, err := media.ParseDTMFEvent(payload)
			if err != nil {
				t.Fatal(err)
			}
			p.ev = &e
		} else if h.PayloadType != uint8(media.PCMU) || len(payload) != media.FrameSamples {
			t.Fatalf("unexpected packet %+v len %d", h, len(payload))
		}
		return p
	}

	first := read()
	if first.ev != nil || !first.h.Marker {
		t.Fatalf("first packet %+v: want audio with marker", first.h)
	}
	code, _ := media.DTMFEventCode('7')
	st.dtmfQ <- code

	var pkts []pkt
	prev := first
	for len(pkts) < 40 {
		p := read()
		if p.h.Seq != prev.h.Seq+1 || p.h.SSRC != first.h.SSRC {
			t.Fatalf("seq/ssrc break: %+v after %+v", p.h, prev.h)
		}
		prev = p
		pkts = append(pkts, p)
		if p.ev == nil && len(pkts) > 1 && pkts[len(pkts)-2].ev != nil {
			break // first audio packet after the event
		}
	}
	start := -1
	for i, p := range pkts {
		if p.ev != nil {
			start = i
			break
		}
	}
	if start < 0 || start+dtmfToneFrames+dtmfEndPackets >= len(pkts) {
		t.Fatalf("event not found or cut short (%d packets)", len(pkts))
	}
	evTS := pkts[start].h.Timestamp
	if start > 0 && evTS != pkts[start-1].h.Timestamp+media.FrameSamples {
		t.Errorf("event timestamp %d does not follow audio %d", evTS, pkts[start-1].h.Timestamp)
	}
	for i := 0; i < dtmfToneFrames+dtmfEndPackets; i++ {
		p := pkts[start+i]
		if p.ev == nil || p.ev.Event != code || p.h.Timestamp != evTS || p.h.Marker != (i == 0) {
			t.Fatalf("event packet %d: %+v %+v", i, p.h, p.ev)
		}
		wantDur := uint16(min(i+1, dtmfToneFrames) * media.FrameSamples)
		if p.ev.Duration != wantDur || p.ev.End != (i >= dtmfToneFrames) {
			t.Errorf("event packet %d: duration %d end %v, want %d %v", i, p.ev.Duration, p.ev.End, wantDur, i >= dtmfToneFrames)
		}
	}
	after := pkts[start+dtmfToneFrames+dtmfEndPackets]
	if want := evTS + (dtmfToneFrames+dtmfEndPackets)*media.FrameSamples; after.ev != nil || after.h.Timestamp != want {
		t.Errorf("audio after event: %+v, want timestamp %d", after.h, want)
	}
}
