package app

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"ringside/media"
)

// ErrUnsupportedWAV says a file is not a WAV of integer PCM samples.
var ErrUnsupportedWAV = errors.New("not a PCM WAV file (8, 16, 24 or 32-bit integer samples)")

// WAVAudio is a sound device whose microphone plays the WAV file at path, at real time,
// 20 ms at a time: the demo bots speak through it. With loop the file starts over at its
// end, else silence follows. What the device would play is pulled at the same pace and
// discarded.
//
// The file should be 8 kHz mono 16-bit PCM, what a G.711 line carries; other integer PCM
// is mixed down to mono and resampled (linearly, after a box filter), which is fine for
// speech but no substitute for sox.
func WAVAudio(path string, loop bool) AudioDevice {
	return &wavAudio{path: path, loop: loop}
}

type wavAudio struct {
	path string
	loop bool

	mu      sync.Mutex
	started bool
	closed  bool
	stop    chan struct{}
	done    chan struct{}
}

func (w *wavAudio) Start(capture, playback func(pcm []int16)) error {
	pcm, err := ReadWAV(w.path)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started || w.closed {
		return ErrDeviceClosed
	}
	w.started = true
	w.stop, w.done = make(chan struct{}), make(chan struct{})
	go w.run(pcm, capture, playback)
	return nil
}

// run is the device's clock: every 20 ms one frame of the file in, one frame out.
func (w *wavAudio) run(pcm []int16, capture, playback func([]int16)) {
	defer close(w.done)
	t := time.NewTicker(media.FrameDuration)
	defer t.Stop()
	in := make([]int16, media.FrameSamples)
	out := make([]int16, media.FrameSamples)
	pos := 0
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		n := 0
		for n < len(in) && pos < len(pcm) {
			k := copy(in[n:], pcm[pos:])
			n += k
			pos += k
			if pos == len(pcm) && w.loop {
				pos = 0
			}
		}
		clear(in[n:])
		if capture != nil {
			capture(in)
		}
		if playback != nil {
			playback(out)
		}
	}
}

func (w *wavAudio) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	started := w.started
	w.mu.Unlock()
	if started {
		close(w.stop)
		<-w.done
	}
	return nil
}

// ReadWAV reads a WAV file as 8 kHz mono 16-bit samples (see WAVAudio on conversion).
func ReadWAV(path string) ([]int16, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pcm, err := DecodeWAV(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pcm, nil
}

// DecodeWAV decodes a RIFF/WAVE file of integer PCM samples into 8 kHz mono 16-bit
// samples: channels are averaged, other rates resampled.
func DecodeWAV(data []byte) ([]int16, error) {
	if len(data) < 12 || string(data[0:4]) != "RIFF" || string(data[8:12]) != "WAVE" {
		return nil, fmt.Errorf("no RIFF/WAVE header: %w", ErrUnsupportedWAV)
	}
	var (
		haveFmt              bool
		channels, bits, rate int
		samples              []byte
		haveData             bool
	)
	for rest := data[12:]; len(rest) >= 8; {
		id, size := string(rest[0:4]), int(binary.LittleEndian.Uint32(rest[4:8]))
		rest = rest[8:]
		if size > len(rest) {
			size = len(rest) // a truncated last chunk: take what is there
		}
		body := rest[:size]
		rest = rest[min(len(rest), size+size&1):] // chunks are padded to an even length
		switch id {
		case "fmt ":
			if len(body) < 16 {
				return nil, fmt.Errorf("short fmt chunk: %w", ErrUnsupportedWAV)
			}
			format := binary.LittleEndian.Uint16(body[0:2])
			if format == 0xfffe && len(body) >= 26 { // WAVE_FORMAT_EXTENSIBLE: the sub-format decides
				format = binary.LittleEndian.Uint16(body[24:26])
			}
			if format != 1 {
				return nil, fmt.Errorf("sample format %#x: %w", format, ErrUnsupportedWAV)
			}
			channels = int(binary.LittleEndian.Uint16(body[2:4]))
			rate = int(binary.LittleEndian.Uint32(body[4:8]))
			bits = int(binary.LittleEndian.Uint16(body[14:16]))
			haveFmt = true
		case "data":
			samples, haveData = body, true
		}
	}
	switch {
	case !haveFmt || !haveData:
		return nil, fmt.Errorf("no fmt or data chunk: %w", ErrUnsupportedWAV)
	case channels < 1 || rate < 1:
		return nil, fmt.Errorf("%d channels at %d Hz: %w", channels, rate, ErrUnsupportedWAV)
	case bits != 8 && bits != 16 && bits != 24 && bits != 32:
		return nil, fmt.Errorf("%d-bit samples: %w", bits, ErrUnsupportedWAV)
	}
	width := bits / 8
	frames := len(samples) / (width * channels)
	mono := make([]int16, frames)
	for i := range mono {
		var sum int
		for c := range channels {
			sum += sample16(samples[(i*channels+c)*width:], width)
		}
		mono[i] = int16(sum / channels)
	}
	if rate == media.SampleRate {
		return mono, nil
	}
	return resample(mono, rate, media.SampleRate), nil
}

// sample16 reads one little-endian sample of width bytes as a 16-bit value.
func sample16(b []byte, width int) int {
	switch width {
	case 1:
		return (int(b[0]) - 128) << 8 // 8-bit WAV is unsigned
	case 2:
		return int(int16(binary.LittleEndian.Uint16(b)))
	case 3:
		return int(int8(b[2]))<<8 | int(b[1])
	default:
		return int(int16(binary.LittleEndian.Uint16(b[2:])))
	}
}

// resample converts by linear interpolation; going down it first averages over one
// output period (a box filter) so speech above the new Nyquist rate does not fold back
// too loudly.
func resample(in []int16, from, to int) []int16 {
	if len(in) == 0 {
		return nil
	}
	src := in
	if from > to {
		w := (from + to - 1) / to
		src = make([]int16, len(in))
		var acc int
		for i, v := range in {
			acc += int(v)
			if i >= w {
				acc -= int(in[i-w])
			}
			src[i] = int16(acc / min(i+1, w))
		}
	}
	n := int(int64(len(in)) * int64(to) / int64(from))
	out := make([]int16, n)
	step := float64(from) / float64(to)
	for i := range out {
		x := float64(i) * step
		j := int(x)
		f := x - float64(j)
		a := float64(src[j])
		b := a
		if j+1 < len(src) {
			b = float64(src[j+1])
		}
		out[i] = int16(a + (b-a)*f)
	}
	return out
}
