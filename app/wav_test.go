package app

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"ringside/assets"
	"ringside/media"
)

// wavFile builds a PCM WAV of a sine at hz: seconds long, at rate, on every channel.
func wavFile(hz float64, seconds float64, rate, channels, bits int, format uint16) []byte {
	n := int(seconds * float64(rate))
	width := bits / 8
	data := make([]byte, 0, n*channels*width)
	for i := range n {
		v := 0.5 * math.Sin(2*math.Pi*hz*float64(i)/float64(rate))
		for range channels {
			switch bits {
			case 8:
				data = append(data, byte(int(v*127)+128))
			case 16:
				data = binary.LittleEndian.AppendUint16(data, uint16(int16(v*math.MaxInt16)))
			}
		}
	}
	b := []byte("RIFF")
	b = binary.LittleEndian.AppendUint32(b, uint32(4+8+16+8+4+8+len(data)))
	b = append(b, "WAVE"...)
	b = append(b, "fmt "...)
	b = binary.LittleEndian.AppendUint32(b, 16)
	b = binary.LittleEndian.AppendUint16(b, format)
	b = binary.LittleEndian.AppendUint16(b, uint16(channels))
	b = binary.LittleEndian.AppendUint32(b, uint32(rate))
	b = binary.LittleEndian.AppendUint32(b, uint32(rate*channels*width))
	b = binary.LittleEndian.AppendUint16(b, uint16(channels*width))
	b = binary.LittleEndian.AppendUint16(b, uint16(bits))
	b = append(b, "LIST"...) // a chunk readers must skip
	b = binary.LittleEndian.AppendUint32(b, 4)
	b = append(b, "INFO"...)
	b = append(b, "data"...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
	return append(b, data...)
}

func writeWAV(t *testing.T, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "speech.wav")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestWAVAudioPlaysTheFileAsTheMicrophone(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	// 0.5 s of 440 Hz, looped: 2 s of device time is four passes.
	path := writeWAV(t, wavFile(440, 0.5, 8000, 1, 16, 1))
	dev := WAVAudio(path, true)
	frames := make(chan []int16, 200)
	var played int
	start := time.Now()
	if err := dev.Start(func(pcm []int16) {
		select {
		case frames <- append([]int16(nil), pcm...):
		default:
		}
	}, func(pcm []int16) { played++ }); err != nil {
		t.Fatal(err)
	}
	var got []int16
	deadline := time.After(5 * time.Second)
	for len(got) < 2*media.SampleRate/2 { // 1 s
		select {
		case f := <-frames:
			if len(f) != media.FrameSamples {
				t.Fatalf("frame of %d samples, want %d", len(f), media.FrameSamples)
			}
			got = append(got, f...)
		case <-deadline:
			t.Fatalf("only %d samples in 5 s", len(got))
		}
	}
	elapsed := time.Since(start)
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	if played < 40 {
		t.Errorf("playback pulled %d frames, want one per capture frame", played)
	}
	// Real time: 1 s of audio cannot come faster than about 1 s.
	if elapsed < 900*time.Millisecond {
		t.Errorf("1 s of audio came in %v: not paced", elapsed)
	}
	// Every 20 ms frame, across the loop's seams, carries the tone and nothing else.
	for i := 0; i+media.FrameSamples <= len(got); i += media.FrameSamples {
		f := got[i : i+media.FrameSamples]
		if db := media.ToneLevelDB(f, 440); db < -10 {
			t.Fatalf("frame %d: 440 Hz at %.1f dB, want about -6", i/media.FrameSamples, db)
		}
		if db := media.ToneLevelDB(f, 1000); db > -40 {
			t.Fatalf("frame %d: 1000 Hz at %.1f dB, want nothing", i/media.FrameSamples, db)
		}
	}
	if err := dev.Start(nil, nil); !errors.Is(err, ErrDeviceClosed) {
		t.Errorf("Start after Close: %v, want ErrDeviceClosed", err)
	}
}

func TestWAVAudioWithoutLoopFallsSilent(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	path := writeWAV(t, wavFile(1000, 0.1, 8000, 1, 16, 1)) // five frames
	dev := WAVAudio(path, false)
	levels := make(chan float64, 100)
	if err := dev.Start(func(pcm []int16) { levels <- media.ToneLevelDB(pcm, 1000) }, nil); err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	for i := range 10 {
		select {
		case db := <-levels:
			if i < 5 && db < -10 {
				t.Errorf("frame %d: 1000 Hz at %.1f dB, want the tone", i, db)
			}
			if i >= 5 && db > -140 {
				t.Errorf("frame %d after the end: 1000 Hz at %.1f dB, want silence", i, db)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("frame %d never came", i)
		}
	}
}

func TestWAVAudioMissingFile(t *testing.T) {
	dev := WAVAudio(filepath.Join(t.TempDir(), "none.wav"), true)
	if err := dev.Start(nil, nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Start: %v, want a not-exist error", err)
	}
	if err := dev.Close(); err != nil {
		t.Error(err)
	}
}

func TestDecodeWAVConverts(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		rate, channels, bits int
	}{
		{"8k mono 16-bit", 8000, 1, 16},
		{"16k stereo 16-bit", 16000, 2, 16},
		{"44.1k mono 16-bit", 44100, 1, 16},
		{"8k mono 8-bit", 8000, 1, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pcm, err := DecodeWAV(wavFile(440, 1, tc.rate, tc.channels, tc.bits, 1))
			if err != nil {
				t.Fatal(err)
			}
			if len(pcm) < 7990 || len(pcm) > 8000 {
				t.Errorf("%d samples, want 1 s at 8 kHz", len(pcm))
			}
			mid := pcm[4000 : 4000+media.FrameSamples]
			if db := media.ToneLevelDB(mid, 440); db < -8 || db > -5 {
				t.Errorf("440 Hz at %.1f dB, want about -6", db)
			}
		})
	}
}

func TestDecodeWAVRejectsWhatItCannotRead(t *testing.T) {
	for name, b := range map[string][]byte{
		"float":   wavFile(440, 0.1, 8000, 1, 16, 3),
		"empty":   nil,
		"not wav": []byte("RIFF\x00\x00\x00\x00AVI LIST"),
	} {
		if _, err := DecodeWAV(b); !errors.Is(err, ErrUnsupportedWAV) {
			t.Errorf("%s: %v, want ErrUnsupportedWAV", name, err)
		}
	}
}

func TestDemoSpeechIsTelephoneWAV(t *testing.T) {
	for name, b := range map[string][]byte{"customer": assets.CustomerSpeech, "agent": assets.AgentSpeech} {
		pcm, err := DecodeWAV(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(b) > 150_000 {
			t.Errorf("%s: %d bytes, keep it under 150 KB", name, len(b))
		}
		// 8 kHz mono 16-bit: nothing to convert, so 2 bytes a sample plus a small header.
		if d := time.Duration(len(pcm)) * time.Second / media.SampleRate; d < 4*time.Second || d > 7*time.Second || len(b)-2*len(pcm) > 1024 {
			t.Errorf("%s: %v of audio in %d bytes, want 4-7 s of 8 kHz mono 16-bit", name, d, len(b))
		}
	}
}
