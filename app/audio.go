package app

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"ringside/media"
)

// AudioDevice is a sound card: 8 kHz mono, 20 ms frames of 160 samples. Start begins
// calling capture with what the microphone took and playback with a buffer to fill for
// the speaker, each from the device's own goroutine and clock; the callbacks must not
// keep pcm. Capture gets whole frames; playback may be asked for less (a sound card's
// period, at most a frame), so that received audio plays as soon as a period can take
// it. Close stops them and returns once they have.
type AudioDevice interface {
	Start(capture func(pcm []int16), playback func(pcm []int16)) error
	Close() error
}

// DeviceInfo names a sound device for the settings view; ID goes back to OpenAudio.
type DeviceInfo struct {
	ID      string
	Name    string
	Default bool
}

// defaultAudio is the device a Session gets when Options.Audio is nil. The malgo build
// (audio_malgo.go) replaces it in an init with the system's default devices.
var defaultAudio = func() AudioDevice { return NullAudio() }

// Recorder is implemented by devices that keep what they played (ToneAudio): tests and
// bots read what a user would have heard.
type Recorder interface {
	Played() []int16
	ResetPlayed()
	// WaitPlayed waits until at least d was played since the last ResetPlayed.
	WaitPlayed(ctx context.Context, d time.Duration) error
}

// ErrDeviceClosed is returned by Start on a device that was closed (or already started).
var ErrDeviceClosed = errors.New("audio device closed or already started")

// NullAudio is a device without hardware: silence in, nothing out, paced by a 20 ms
// clock so the calls run as with a real card.
func NullAudio() AudioDevice { return newClockDevice(0) }

// ToneAudio is a device whose microphone hears a steady tone of hz (0.3 of full scale)
// and whose speaker records what it plays: *ToneAudioDevice implements Recorder.
func ToneAudio(hz float64) AudioDevice { return newClockDevice(hz) }

// ToneAudioDevice is what ToneAudio and NullAudio return.
type ToneAudioDevice struct {
	tone *media.Tone // nil: silence

	mu       sync.Mutex
	played   []int16
	total    int // samples played since the last reset
	waiters  []playWaiter
	keep     int // samples kept in played
	started  bool
	closed   bool
	stop     chan struct{}
	finished chan struct{}
}

type playWaiter struct {
	n  int
	ch chan struct{}
}

const (
	toneAmplitude = 0.3
	// playedKeep bounds the recording of a long-running bot.
	playedKeep = 60 * media.SampleRate
)

func newClockDevice(hz float64) *ToneAudioDevice {
	d := &ToneAudioDevice{keep: playedKeep, stop: make(chan struct{}), finished: make(chan struct{})}
	if hz > 0 {
		d.tone = media.NewTone(hz, toneAmplitude)
	}
	return d
}

// Start runs the device's 20 ms clock.
func (d *ToneAudioDevice) Start(capture func(pcm []int16), playback func(pcm []int16)) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.started || d.closed {
		return ErrDeviceClosed
	}
	d.started = true
	go d.run(capture, playback)
	return nil
}

func (d *ToneAudioDevice) run(capture, playback func([]int16)) {
	defer close(d.finished)
	t := time.NewTicker(media.FrameDuration)
	defer t.Stop()
	in := make([]int16, media.FrameSamples)
	out := make([]int16, media.FrameSamples)
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
		if d.tone != nil {
			d.tone.Fill(in)
		}
		if capture != nil {
			capture(in)
		}
		clear(out)
		if playback != nil {
			playback(out)
		}
		d.record(out)
	}
}

func (d *ToneAudioDevice) record(pcm []int16) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.played = append(d.played, pcm...)
	if len(d.played) > 2*d.keep {
		d.played = append(d.played[:0], d.played[len(d.played)-d.keep:]...)
	}
	d.total += len(pcm)
	kept := d.waiters[:0]
	for _, w := range d.waiters {
		if d.total >= w.n {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	d.waiters = kept
}

// Close stops the clock and waits for the last callback to return.
func (d *ToneAudioDevice) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	started := d.started
	close(d.stop)
	d.mu.Unlock()
	if started {
		<-d.finished
	}
	return nil
}

// Played is a copy of what the speaker played since the last ResetPlayed (at most the
// last minute).
func (d *ToneAudioDevice) Played() []int16 {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.played
	if len(p) > d.keep {
		p = p[len(p)-d.keep:]
	}
	return append([]int16(nil), p...)
}

// ResetPlayed drops what was played so far.
func (d *ToneAudioDevice) ResetPlayed() {
	d.mu.Lock()
	d.played = d.played[:0]
	d.total = 0
	d.mu.Unlock()
}

// WaitPlayed waits until at least dur was played since the last ResetPlayed.
func (d *ToneAudioDevice) WaitPlayed(ctx context.Context, dur time.Duration) error {
	n := int(dur / (time.Second / media.SampleRate))
	d.mu.Lock()
	if d.total >= n {
		d.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	d.waiters = append(d.waiters, playWaiter{n: n, ch: ch})
	d.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for %v of played audio: %w", dur, ctx.Err())
	}
}

var _ Recorder = (*ToneAudioDevice)(nil)
