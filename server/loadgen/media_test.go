package loadgen

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"ringside/media"
)

// mixer makes the frames a leg hears: some roles' tones summed, each role's silenced on
// the frames asked for, as the server's mixer would pass a marker on.
type mixer struct {
	tones map[role]*media.Tone
}

func newMixer(roles ...role) *mixer {
	m := &mixer{tones: make(map[role]*media.Tone)}
	for _, r := range roles {
		m.tones[r] = media.NewTone(roleHz[r], toneAmplitude)
	}
	return m
}

// frame is the next 20 ms, without the tones of silent.
func (m *mixer) frame(silent ...role) []byte {
	sum := make([]int16, media.FrameSamples)
	pcm := make([]int16, media.FrameSamples)
	for r, t := range m.tones {
		t.Fill(pcm) // every tone advances, heard or not
		quiet := false
		for _, s := range silent {
			quiet = quiet || s == r
		}
		if quiet {
			continue
		}
		for i, x := range pcm {
			sum[i] += x
		}
	}
	out := make([]byte, media.FrameSamples)
	codec.Encode(out, sum)
	return out
}

func testGroup(measuring bool) *group {
	sil := make([]byte, media.FrameSamples)
	for i := range sil {
		sil[i] = codec.Silence()
	}
	return &group{measuring: measuring, silence: sil, byPort: make(map[netip.AddrPort]*leg), st: residentStats(), spare: residentStats()}
}

type rtpSender struct {
	seq uint16
	ts  uint32
	buf [12 + media.FrameSamples]byte
}

func (s *rtpSender) packet(payload []byte) []byte {
	n := media.MarshalRTP(s.buf[:], media.RTPHeader{PayloadType: uint8(codec), Seq: s.seq, Timestamp: s.ts, SSRC: 7}, payload)
	s.seq++
	s.ts += media.FrameSamples
	return s.buf[:n]
}

// TestMarkersEveryPath: each role's marker goes out at its own place in the cycle and is
// found, on every path it starts, by its own tone vanishing from what the hearer gets,
// whatever else the hearer hears meanwhile.
func TestMarkersEveryPath(t *testing.T) {
	c := &call{idx: 3, monitored: true}
	c.whisper.Store(true)
	addr := netip.MustParseAddrPort("127.0.0.1:4000")
	legs := [3]*leg{}
	for r := range legs {
		legs[r] = newLeg(c, role(r), addr, nil)
	}
	heard := [3]*mixer{customer: newMixer(agent), agent: newMixer(customer, supervisor), supervisor: newMixer(customer, agent)}
	var rtp [3]rtpSender
	g := testGroup(true)
	const delay = 3 // frames from a marker leaving to its silence arriving

	t0 := time.Now().UnixNano()
	sentAt := make(map[role][]int) // frames each role sent a marker on
	silentAt := map[int][]role{}
	for k := range 2 * markerEvery {
		g.frameNo = k
		now := t0 + int64(k)*int64(media.FrameDuration)
		for r := range legs {
			if g.marker(legs[r], now) {
				sentAt[role(r)] = append(sentAt[role(r)], k)
				silentAt[k+delay] = append(silentAt[k+delay], role(r))
			}
		}
		for r, l := range legs {
			f := heard[r].frame(silentAt[k]...)
			g.handle(l, rtp[r].packet(f), now+int64(time.Millisecond))
		}
	}
	// Each role's markers sit at its places in the cycle, shifted by the call's spread.
	for r, want := range markerAt {
		var got []int
		for _, k := range sentAt[role(r)] {
			if k < markerEvery {
				got = append(got, (k+c.idx*7)%markerEvery)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%v sent markers at cycle places %v, want %v", role(r), got, want)
		}
	}
	wantMs := float64(delay*media.FrameDuration+time.Millisecond) / float64(time.Millisecond)
	for p := range nPaths {
		n := uint64(0)
		for _, x := range g.st.latency[p] {
			n += uint64(x)
		}
		if want := uint64(len(sentAt[pathFrom[p]])); n != want || want == 0 {
			t.Errorf("%v: %d markers measured, want %d (one per marker sent)", p, n, want)
		}
		if got := percentile(g.st.latency[p][:], latencyStep, 0.5); got < wantMs || got > wantMs+0.2 {
			t.Errorf("%v: p50 %.1f ms, want %.1f", p, got, wantMs)
		}
		if g.st.markersMissed[p] != 0 {
			t.Errorf("%v: %d markers missed", p, g.st.markersMissed[p])
		}
	}
}

// TestMarkerNotHeardIsMissed: a marker whose silence never shows is counted missed once
// its timeout passes, and the next marker of its sender goes out.
func TestMarkerNotHeardIsMissed(t *testing.T) {
	c := &call{}
	addr := netip.MustParseAddrPort("127.0.0.1:4000")
	cust, ag := newLeg(c, customer, addr, nil), newLeg(c, agent, addr, nil)
	hearsCustomer := newMixer(customer)
	var rtp rtpSender
	g := testGroup(true)
	t0 := time.Now().UnixNano()
	sent := 0
	for k := range 3 * markerEvery {
		g.frameNo = k
		now := t0 + int64(k)*int64(media.FrameDuration)
		if g.marker(cust, now) {
			sent++
		}
		g.handle(ag, rtp.packet(hearsCustomer.frame()), now+int64(time.Millisecond)) // never silent
	}
	if sent != 3 || g.st.markersMissed[customerToAgent] != 3 {
		t.Errorf("%d markers sent, %d missed; want 3 and 3", sent, g.st.markersMissed[customerToAgent])
	}
	if g.st.markersMissed[customerToSupervisor] != 0 {
		t.Errorf("an unmonitored call missed %d customer-to-supervisor markers", g.st.markersMissed[customerToSupervisor])
	}
}

// TestToneChecksSurviveMarkers: the 0.5 s tone checks still hear every tone they should,
// and find no leak, with one marker frame of each tone in the ring at its worst place
// (the middle, where the check's window weighs most).
func TestToneChecksSurviveMarkers(t *testing.T) {
	addr := netip.MustParseAddrPort("127.0.0.1:4000")
	heard := [3]*mixer{customer: newMixer(agent), agent: newMixer(customer, supervisor), supervisor: newMixer(customer, agent)}
	for r := range heard {
		for _, mid := range []int{0, ringFrames / 2, ringFrames - 1} {
			c := &call{monitored: true}
			c.whisper.Store(true)
			l := newLeg(c, role(r), addr, nil)
			g := testGroup(false)
			var rtp rtpSender
			for k := range ringFrames {
				var silent []role
				if k == mid {
					silent = []role{customer, agent, supervisor}
				}
				g.handle(l, rtp.packet(heard[r].frame(silent...)), 1)
			}
			g.check(l, true)
			if c.missing.Load() || c.leaked.Load() {
				t.Errorf("%v with a marker at ring frame %d: missing %v, leaked %v", role(r), mid, c.missing.Load(), c.leaked.Load())
			}
		}
	}
}

// TestReceiveNoAllocs: a received frame, with markers pending on its paths, allocates
// nothing.
func TestReceiveNoAllocs(t *testing.T) {
	c := &call{monitored: true}
	c.whisper.Store(true)
	l := newLeg(c, supervisor, netip.MustParseAddrPort("127.0.0.1:4000"), nil)
	g := testGroup(true)
	var rtp rtpSender
	pkt := rtp.packet(newMixer(customer, agent).frame())
	at := time.Now().UnixNano()
	allocs := testing.AllocsPerRun(100, func() {
		c.marker[customerToSupervisor].Store(at - int64(time.Millisecond))
		c.marker[agentToSupervisor].Store(at - int64(time.Millisecond))
		g.handle(l, pkt, at)
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per received frame, want 0", allocs)
	}
}
