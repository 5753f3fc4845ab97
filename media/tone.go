package media

import "math"

// Tone is a sine generator for tests, the load generator and the demo.
type Tone struct {
	Freq      float64 // Hz
	Amplitude float64 // 0..1 of full scale
	phase     float64 // radians, kept in [0, 2π)
}

func NewTone(freq, amplitude float64) *Tone {
	return &Tone{Freq: freq, Amplitude: amplitude}
}

// Fill writes the next len(pcm) samples at 8 kHz. The phase carries over
// between calls, so frames join without clicks.
func (t *Tone) Fill(pcm []int16) {
	step := 2 * math.Pi * t.Freq / SampleRate
	amp := t.Amplitude * math.MaxInt16
	for i := range pcm {
		v := amp * math.Sin(t.phase)
		pcm[i] = int16(max(math.MinInt16, min(math.MaxInt16, math.Round(v))))
		t.phase += step
	}
	t.phase = math.Mod(t.phase, 2*math.Pi)
	if t.phase < 0 {
		t.phase += 2 * math.Pi
	}
}

// Goertzel returns the power of freq in pcm (sampled at sampleRate Hz),
// normalised so that a full-scale sine gives 1, that is ~0 dB via PowerDB.
//
// The samples are Hann-windowed: with a plain rectangular window a 440 Hz
// tone leaks to about -30 dB at 1000 Hz in a 20 ms frame, too much to prove
// the 40 dB separation the routing tests need.
func Goertzel(pcm []int16, freq float64, sampleRate int) float64 {
	n := len(pcm)
	if n < 2 || sampleRate <= 0 {
		return 0
	}
	w := 2 * math.Pi * freq / float64(sampleRate)
	coeff := 2 * math.Cos(w)
	// The window's cosine is advanced by rotation instead of calling math.Cos
	// per sample.
	dw := 2 * math.Pi / float64(n-1)
	cosD, sinD := math.Cos(dw), math.Sin(dw)
	c, s := 1.0, 0.0
	var s1, s2, wsum float64
	for _, x := range pcm {
		win := 0.5 - 0.5*c
		wsum += win
		s0 := win*float64(x) + coeff*s1 - s2
		s2, s1 = s1, s0
		c, s = c*cosD-s*sinD, s*cosD+c*sinD
	}
	power := s1*s1 + s2*s2 - coeff*s1*s2
	// A sine of amplitude A gives |X| = A·Σw/2 at its own frequency.
	ref := math.MaxInt16 * wsum / 2
	return max(power, 0) / (ref * ref)
}

// PowerDB converts a Goertzel power to dB relative to full scale, floored at
// -150 so silence compares and prints sanely.
func PowerDB(p float64) float64 {
	if p <= 1e-15 {
		return -150
	}
	return 10 * math.Log10(p)
}

// ToneLevelDB is the level of freq in pcm at 8 kHz in dB relative to full
// scale: a sine of amplitude 1.0 ≈ 0 dB, silence -150.
func ToneLevelDB(pcm []int16, freq float64) float64 {
	return PowerDB(Goertzel(pcm, freq, SampleRate))
}
