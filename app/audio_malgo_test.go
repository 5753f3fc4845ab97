package app

import (
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gen2brain/malgo"
	"go.uber.org/goleak"

	"ringside/media"
)

// On a machine without sound hardware (CI, this project's build boxes) OpenAudio still
// gives a device that runs: the null backend, on its own clock.
func TestOpenAudioRunsWithOrWithoutSoundCard(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	capture, playback, err := AudioDevices()
	t.Logf("capture devices %v, playback devices %v, err %v", capture, playback, err)

	dev, err := OpenAudio("", "")
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := dev.(*malgoAudio); ok {
		t.Logf("miniaudio device (%s), buffering %v per direction", kindName(m.kind), m.Latency())
	} else {
		t.Logf("fell back to %T", dev)
	}
	var captured, played, badSize atomic.Int64
	enough := make(chan struct{})
	if err := dev.Start(func(pcm []int16) {
		if len(pcm) != media.FrameSamples {
			badSize.Add(1)
		}
		if captured.Add(1) == 25 {
			close(enough)
		}
	}, func(pcm []int16) {
		if len(pcm) == 0 || len(pcm) > media.FrameSamples {
			badSize.Add(1)
		}
		played.Add(int64(len(pcm)))
	}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	select {
	case <-enough:
	case <-time.After(5 * time.Second):
		t.Fatalf("%d capture frames in 5 s", captured.Load())
	}
	elapsed := time.Since(start)
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	if err := dev.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if badSize.Load() > 0 {
		t.Errorf("%d callbacks with a capture frame other than %d samples or an empty or longer playback buffer", badSize.Load(), media.FrameSamples)
	}
	if played.Load() < 20*media.FrameSamples {
		t.Errorf("playback pulled %d samples while capture gave 25 frames", played.Load())
	}
	// 25 frames are 500 ms of audio: a real-time clock, not a busy loop.
	if elapsed < 350*time.Millisecond {
		t.Errorf("25 frames came in %v: not paced", elapsed)
	}
	t.Logf("25 frames in %v", elapsed)
}

// The sound card's periods need not be 20 ms (miniaudio may settle on another size):
// frameIO re-cuts the microphone's into 160-sample frames and asks for the speaker's in
// pieces of at most a frame, without dropping or reordering a sample, and allocates
// nothing on the audio thread.
func TestFrameIOReframes(t *testing.T) {
	var captured []int16
	next := int16(0)
	f := newFrameIO(func(pcm []int16) {
		if len(pcm) != media.FrameSamples {
			t.Fatalf("capture frame of %d", len(pcm))
		}
		captured = append(captured, pcm...)
	}, func(pcm []int16) {
		if len(pcm) == 0 || len(pcm) > media.FrameSamples {
			t.Fatalf("playback buffer of %d", len(pcm))
		}
		for i := range pcm {
			pcm[i] = next
			next++
		}
	})
	var in, out []int16
	var speaker []int16
	for i, n := 0, 0; i < 40; i++ {
		size := []int{100, 441, 160, 7, 320}[i%5]
		in = in[:0]
		for range size {
			in = append(in, int16(n))
			n++
		}
		out = append(out[:0], make([]int16, size)...)
		f.process(out, in, size)
		speaker = append(speaker, out...)
	}
	for i, v := range captured {
		if v != int16(i) {
			t.Fatalf("captured[%d] = %d: samples lost or reordered", i, v)
		}
	}
	for i, v := range speaker {
		if v != int16(i) {
			t.Fatalf("played[%d] = %d: samples lost or reordered", i, v)
		}
	}
	if len(captured) < len(speaker)-media.FrameSamples {
		t.Errorf("captured %d samples of %d", len(captured), len(speaker))
	}

	// One side missing: a playback-only card captures silence, a capture-only one
	// still pulls playback.
	var silent bool
	g := newFrameIO(func(pcm []int16) { silent = !slices.ContainsFunc(pcm, func(v int16) bool { return v != 0 }) }, func(pcm []int16) {})
	g.process(make([]int16, 160), nil, 160)
	if !silent {
		t.Error("playback-only card: capture was not silence")
	}
	g.process(nil, make([]int16, 160), 160)

	buf := make([]int16, 441)
	h := newFrameIO(func([]int16) {}, func([]int16) {})
	if a := testing.AllocsPerRun(100, func() { h.process(buf, buf, len(buf)) }); a != 0 {
		t.Errorf("%v allocations per callback, want 0", a)
	}
}

func TestParseDeviceID(t *testing.T) {
	id, err := parseDeviceID("6e756c6c")
	if err != nil || id == nil || id.String() != "6e756c6c" || !isNullDevice(*id) {
		t.Errorf("parseDeviceID: %v %v", id, err)
	}
	if id, err := parseDeviceID(""); id != nil || err != nil {
		t.Errorf(`parseDeviceID(""): %v %v, want the default`, id, err)
	}
	if _, err := parseDeviceID("zz"); err == nil {
		t.Error("bad hex accepted")
	}
}

// The softphone's sound card stops while no call uses it (simphone pauses it) and plays
// again on Resume.
func TestMalgoPauseResume(t *testing.T) {
	d, err := newMalgoAudio([]malgo.Backend{nullBackend}, malgo.Duplex, nil, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Skipf("no null backend: %v", err)
	}
	defer d.Close()
	var n atomic.Int64
	if err := d.Start(func([]int16) { n.Add(1) }, nil); err != nil {
		t.Fatal(err)
	}
	wait := func(what string) {
		t.Helper()
		from := n.Load()
		for deadline := time.Now().Add(2 * time.Second); n.Load() < from+3; {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no frames", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	wait("started")
	if err := d.Pause(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Millisecond)
	from := n.Load()
	time.Sleep(100 * time.Millisecond)
	if got := n.Load() - from; got != 0 {
		t.Errorf("%d frames captured while paused", got)
	}
	if err := d.Resume(); err != nil {
		t.Fatal(err)
	}
	wait("resumed")
}
