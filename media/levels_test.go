package media

import (
	"net/netip"
	"testing"
)

func TestAudioLevel(t *testing.T) {
	pcm := make([]int16, FrameSamples)
	if l := AudioLevel(pcm); l != SilentLevel {
		t.Fatalf("silence: %d", l)
	}
	NewTone(1000, 0.3).Fill(pcm)
	// A sine of amplitude 0.3 has RMS 0.212: -13.5 dBov.
	if l := AudioLevel(pcm); l < 13 || l > 14 {
		t.Fatalf("0.3 sine: level %d, want 13..14", l)
	}
}

func TestLevelsRoundTrip(t *testing.T) {
	buf := make([]byte, 1500)
	payload := []byte{1, 2, 3, 4}
	for _, levels := range [][]uint8{{10}, {10, 127}, {1, 2, 3}, {5, 6, 7, 8}} {
		csrc := make([]uint32, len(levels))
		for i := range csrc {
			csrc[i] = uint32(100 + i)
		}
		n := MarshalRTPLevels(buf, RTPHeader{PayloadType: 0, Seq: 7, Timestamp: 160, SSRC: 42}, 3, csrc, levels, payload)
		h, got, err := ParseRTP(buf[:n])
		if err != nil || h.Seq != 7 || h.SSRC != 42 || string(got) != string(payload) {
			t.Fatalf("%v: parse %+v %v %v", levels, h, got, err)
		}
		out := make([]uint8, 16)
		k := ParseRTPLevels(buf[:n], 3, out)
		if k != len(levels) || string(out[:k]) != string(levels) {
			t.Fatalf("levels %v read back as %v", levels, out[:k])
		}
		if ParseRTPLevels(buf[:n], 4, out) != 0 {
			t.Fatal("another extension id must not match")
		}
	}
}

func TestMarshalRTPLevelsDoesNotAllocate(t *testing.T) {
	buf := make([]byte, 1500)
	csrc, levels, payload := []uint32{1, 2}, []uint8{3, 4}, make([]byte, 160)
	if a := testing.AllocsPerRun(100, func() {
		MarshalRTPLevels(buf, RTPHeader{}, 1, csrc, levels, payload)
	}); a != 0 {
		t.Fatalf("%v allocations", a)
	}
}

func TestSDPCarriesTheLevelsExtension(t *testing.T) {
	d := SessionDesc{Codecs: []Codec{PCMU}, LevelsID: 5}
	d.Addr = netip.MustParseAddrPort("127.0.0.1:4000")
	got, err := ParseSDP(d.Marshal(1, 1))
	if err != nil || got.LevelsID != 5 {
		t.Fatalf("levels id read back as %d (%v)", got.LevelsID, err)
	}
	d.LevelsID = 0
	if got, _ := ParseSDP(d.Marshal(1, 1)); got.LevelsID != 0 {
		t.Fatal("absent extension parsed as present")
	}
}
