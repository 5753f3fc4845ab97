package media

import (
	"math"
	"testing"
)

func TestToneFullScaleIsZeroDB(t *testing.T) {
	for _, f := range []float64{440, 1000, 2300} {
		pcm := make([]int16, FrameSamples)
		NewTone(f, 1).Fill(pcm)
		// Hann scalloping costs at most 1.5 dB between bins.
		if db := ToneLevelDB(pcm, f); math.Abs(db) > 1.5 {
			t.Errorf("%v Hz full-scale: %.2f dB, want ≈ 0", f, db)
		}
		NewTone(f, 0.1).Fill(pcm)
		if db := ToneLevelDB(pcm, f); math.Abs(db+20) > 1.5 {
			t.Errorf("%v Hz at 0.1: %.2f dB, want ≈ -20", f, db)
		}
	}
	if db := ToneLevelDB(make([]int16, FrameSamples), 440); db != -150 {
		t.Errorf("silence: %v dB, want -150", db)
	}
	if db := ToneLevelDB(nil, 440); db != -150 {
		t.Errorf("empty: %v dB, want -150", db)
	}
}

// The routing tests give customer, agent and supervisor 440, 1000 and
// 2300 Hz and need each tone measurable >40 dB above the others' leakage,
// also after G.711 and in a single 20 ms frame.
func TestGoertzelDiscriminatesTones(t *testing.T) {
	freqs := []float64{440, 1000, 2300}
	for _, n := range []int{FrameSamples, SampleRate} {
		for _, codec := range []Codec{PCMU, PCMA} {
			for present := range freqs {
				pcm := make([]int16, n)
				NewTone(freqs[present], 0.3).Fill(pcm)
				enc := make([]byte, n)
				codec.Encode(enc, pcm)
				codec.Decode(pcm, enc)
				on := ToneLevelDB(pcm, freqs[present])
				for other := range freqs {
					if other == present {
						continue
					}
					if off := ToneLevelDB(pcm, freqs[other]); on-off < 40 {
						t.Errorf("n=%d %v: %v Hz at %.1f dB, %v Hz leaks at %.1f dB (need 40 dB apart)",
							n, codec, freqs[present], on, freqs[other], off)
					}
				}
			}
		}
	}
}

func TestToneFillIsPhaseContinuous(t *testing.T) {
	whole := make([]int16, 1000)
	NewTone(1000, 0.8).Fill(whole)
	pieces := make([]int16, 1000)
	tone := NewTone(1000, 0.8)
	for i := 0; i < len(pieces); i += 7 {
		tone.Fill(pieces[i:min(i+7, len(pieces))])
	}
	for i := range whole {
		if d := int(whole[i]) - int(pieces[i]); d < -1 || d > 1 {
			t.Fatalf("sample %d: %d in one call, %d in pieces", i, whole[i], pieces[i])
		}
	}
}

func TestToneMixHasBothLevels(t *testing.T) {
	a := make([]int16, SampleRate)
	b := make([]int16, SampleRate)
	NewTone(440, 0.25).Fill(a)
	NewTone(1000, 0.05).Fill(b)
	for i := range a {
		a[i] += b[i]
	}
	if db := ToneLevelDB(a, 440); math.Abs(db-20*math.Log10(0.25)) > 0.5 {
		t.Errorf("440 Hz at %.2f dB", db)
	}
	if db := ToneLevelDB(a, 1000); math.Abs(db-20*math.Log10(0.05)) > 0.5 {
		t.Errorf("1000 Hz at %.2f dB", db)
	}
	if db := ToneLevelDB(a, 2300); db > -80 {
		t.Errorf("absent 2300 Hz at %.2f dB", db)
	}
}

func TestToneNoAllocs(t *testing.T) {
	pcm := make([]int16, FrameSamples)
	tone := NewTone(440, 0.5)
	if n := testing.AllocsPerRun(100, func() { tone.Fill(pcm); _ = ToneLevelDB(pcm, 440) }); n != 0 {
		t.Errorf("Fill+ToneLevelDB: %v allocs", n)
	}
}
