package media

import (
	"math"
	"testing"
)

// Reference points from ITU-T G.711 tables.
func TestG711KnownValues(t *testing.T) {
	cases := []struct {
		codec Codec
		code  byte
		pcm   int16
	}{
		{PCMU, 0xFF, 0}, {PCMU, 0x80, 32124}, {PCMU, 0x00, -32124}, {PCMU, 0xFE, 8}, {PCMU, 0x7E, -8},
		{PCMA, 0xD5, 8}, {PCMA, 0x55, -8}, {PCMA, 0xAA, 32256}, {PCMA, 0x2A, -32256},
	}
	for _, c := range cases {
		var out [1]int16
		c.codec.Decode(out[:], []byte{c.code})
		if out[0] != c.pcm {
			t.Errorf("%v decode %#02x = %d, want %d", c.codec, c.code, out[0], c.pcm)
		}
	}
	for _, c := range []Codec{PCMU, PCMA} {
		var b [1]byte
		c.Encode(b[:], []int16{0})
		if b[0] != c.Silence() {
			t.Errorf("%v encodes 0 as %#02x, want silence %#02x", c, b[0], c.Silence())
		}
		c.Encode(b[:], []int16{math.MaxInt16})
		if want := map[Codec]byte{PCMU: 0x80, PCMA: 0xAA}[c]; b[0] != want {
			t.Errorf("%v encodes full scale as %#02x, want %#02x", c, b[0], want)
		}
	}
}

// Every code decodes to the centre of its interval, so it must encode back to
// itself (μ-law has two zeros; 0x7F is "negative zero").
func TestG711CodesRoundTrip(t *testing.T) {
	for _, c := range []Codec{PCMU, PCMA} {
		for code := range 256 {
			var pcm [1]int16
			var back [1]byte
			c.Decode(pcm[:], []byte{byte(code)})
			c.Encode(back[:], pcm[:])
			if back[0] != byte(code) && !(c == PCMU && code == 0x7F && back[0] == 0xFF) {
				t.Errorf("%v: code %#02x → %d → %#02x", c, code, pcm[0], back[0])
			}
		}
	}
}

// Every 16-bit sample survives within the quantisation step of its segment,
// which is 1/16 of the value for the logarithmic segments.
func TestG711SampleRoundTrip(t *testing.T) {
	for _, c := range []Codec{PCMU, PCMA} {
		pcm := make([]int16, 1<<16)
		for i := range pcm {
			pcm[i] = int16(i - 1<<15)
		}
		enc := make([]byte, len(pcm))
		dec := make([]int16, len(pcm))
		c.Encode(enc, pcm)
		c.Decode(dec, enc)
		for i, x := range pcm {
			err := math.Abs(float64(dec[i]) - float64(x))
			clipped := math.Abs(float64(x)) > 32124 // beyond the largest code
			if err > math.Abs(float64(x))/32+8 && !clipped {
				t.Fatalf("%v: %d → %d, error %.0f too large", c, x, dec[i], err)
			}
		}
	}
}

func TestG711ToneSNR(t *testing.T) {
	for _, c := range []Codec{PCMU, PCMA} {
		pcm := make([]int16, SampleRate)
		// 1013 Hz, not 1000: 1000 Hz repeats the same 8 samples, so the
		// error would not average over the quantisation intervals.
		NewTone(1013, 0.5).Fill(pcm)
		enc := make([]byte, len(pcm))
		dec := make([]int16, len(pcm))
		c.Encode(enc, pcm)
		c.Decode(dec, enc)
		var sig, noise float64
		for i := range pcm {
			sig += float64(pcm[i]) * float64(pcm[i])
			e := float64(dec[i] - pcm[i])
			noise += e * e
		}
		// G.711 gives about 38 dB SNR over most of its range.
		if snr := 10 * math.Log10(sig/noise); snr < 35 {
			t.Errorf("%v SNR %.1f dB, want ≥ 35", c, snr)
		}
	}
}

func TestCodecNames(t *testing.T) {
	for _, name := range []string{"PCMU", "pcmu", "PcMu"} {
		if c, ok := CodecByName(name); !ok || c != PCMU {
			t.Errorf("CodecByName(%q) = %v, %v", name, c, ok)
		}
	}
	if c, ok := CodecByName("pcma"); !ok || c != PCMA || c.String() != "PCMA" {
		t.Errorf("CodecByName(pcma) = %v, %v", c, ok)
	}
	if _, ok := CodecByName("opus"); ok {
		t.Error("CodecByName(opus) succeeded")
	}
	if PCMU.String() != "PCMU" || Codec(9).String() != "Codec(9)" {
		t.Errorf("String: %q %q", PCMU, Codec(9))
	}
}

func TestG711NoAllocs(t *testing.T) {
	pcm := make([]int16, FrameSamples)
	NewTone(440, 0.3).Fill(pcm)
	buf := make([]byte, FrameSamples)
	for _, c := range []Codec{PCMU, PCMA} {
		if n := testing.AllocsPerRun(100, func() { c.Encode(buf, pcm); c.Decode(pcm, buf) }); n != 0 {
			t.Errorf("%v Encode+Decode: %v allocs per frame", c, n)
		}
	}
}

func BenchmarkEncodeFrame(b *testing.B) {
	for _, c := range []Codec{PCMU, PCMA} {
		b.Run(c.String(), func(b *testing.B) {
			pcm := make([]int16, FrameSamples)
			NewTone(440, 0.3).Fill(pcm)
			dst := make([]byte, FrameSamples)
			b.ReportAllocs()
			for b.Loop() {
				c.Encode(dst, pcm)
			}
		})
	}
}

func BenchmarkDecodeFrame(b *testing.B) {
	for _, c := range []Codec{PCMU, PCMA} {
		b.Run(c.String(), func(b *testing.B) {
			pcm := make([]int16, FrameSamples)
			NewTone(440, 0.3).Fill(pcm)
			payload := make([]byte, FrameSamples)
			c.Encode(payload, pcm)
			b.ReportAllocs()
			for b.Loop() {
				c.Decode(pcm, payload)
			}
		})
	}
}
