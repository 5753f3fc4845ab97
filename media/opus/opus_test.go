package opus

import (
	"testing"

	"ringside/media"
)

// A tone encoded and decoded comes out as the same tone, and another one is not there.
func TestRoundTripKeepsTone(t *testing.T) {
	enc, err := NewEncoder()
	if err != nil {
		t.Fatal(err)
	}
	dec, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	tone := media.NewTone(1000, 0.3)
	in := make([]int16, FrameSamples)
	pkt := make([]byte, MaxPacket)
	out := make([]int16, MaxFrameSamples)
	var got []int16
	bytes := 0
	for range 50 { // 1 s
		tone.Fill(in)
		n, err := enc.Encode(pkt, in)
		if err != nil {
			t.Fatal(err)
		}
		bytes += n
		k, err := dec.Decode(out, pkt[:n])
		if err != nil {
			t.Fatal(err)
		}
		if k != FrameSamples {
			t.Fatalf("a 20 ms packet decoded to %d samples, want %d", k, FrameSamples)
		}
		got = append(got, out[:k]...)
	}
	got = got[len(got)/5:] // past the codec's start-up
	at, other := media.ToneLevelDB(got, 1000), media.ToneLevelDB(got, 440)
	t.Logf("1000 Hz at %.1f dB, 440 Hz at %.1f dB, %d bytes/s", at, other, bytes)
	if at < -14 {
		t.Errorf("the tone came out at %.1f dB, want about -10.5 dB", at)
	}
	if other > at-40 {
		t.Errorf("440 Hz at %.1f dB: only %.1f dB under the tone", other, at-other)
	}
	if bytes > Bitrate/8*3/2 {
		t.Errorf("%d bytes for one second, the bitrate is %d bit/s", bytes, Bitrate)
	}
}

// Encoding and decoding a frame run on the audio path: no allocation.
func TestNoAllocationPerFrame(t *testing.T) {
	enc, _ := NewEncoder()
	dec, _ := NewDecoder()
	tone := media.NewTone(440, 0.3)
	in := make([]int16, FrameSamples)
	pkt := make([]byte, MaxPacket)
	out := make([]int16, MaxFrameSamples)
	allocs := testing.AllocsPerRun(100, func() {
		tone.Fill(in)
		n, err := enc.Encode(pkt, in)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dec.Decode(out, pkt[:n]); err != nil {
			t.Fatal(err)
		}
		if err := dec.Conceal(out[:FrameSamples]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per frame, want 0", allocs)
	}
}

func TestDecodeGarbageFails(t *testing.T) {
	dec, _ := NewDecoder()
	out := make([]int16, MaxFrameSamples)
	if _, err := dec.Decode(out, nil); err == nil {
		t.Error("an empty packet decoded")
	}
}

func BenchmarkEncodeDecode(b *testing.B) {
	enc, _ := NewEncoder()
	dec, _ := NewDecoder()
	tone := media.NewTone(440, 0.3)
	in := make([]int16, FrameSamples)
	pkt := make([]byte, MaxPacket)
	out := make([]int16, MaxFrameSamples)
	tone.Fill(in)
	b.ReportAllocs()
	for b.Loop() {
		n, _ := enc.Encode(pkt, in)
		_, _ = dec.Decode(out, pkt[:n])
	}
}
