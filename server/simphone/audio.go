package simphone

import (
	"sync"

	"ringside/media"
)

// AudioDevice is a sound card as a phone sees it: 8 kHz mono PCM, normally in 20 ms
// frames of 160 samples. The device calls capture with what the microphone took and
// playback with a buffer to fill for the speaker, each from its own goroutine, on its own
// clock. It has exactly the method set of the softphone's app.AudioDevice, so one of those
// can be passed as Config.Audio without either package importing the other.
type AudioDevice interface {
	Start(capture func(pcm []int16), playback func(pcm []int16)) error
	Close() error
}

const (
	// levelsExtID is the RFC 8285 id this phone offers the RFC 6465 levels extension with.
	levelsExtID = 1
	// captureFrames bounds the microphone audio waiting to be sent; older audio is
	// dropped beyond it. The sender sends each frame as soon as it is complete, so
	// normally none waits.
	captureFrames = 8
)

// playoutJitter is the playback jitter buffer of a phone with a sound card: the
// softphone's link to its server is a LAN, so one frame of delay, growing (to three)
// only when frames come late, and shrinking back once they come on time again.
var playoutJitter = media.JitterConfig{Depth: 1, MaxDepth: 3}

// Pauser is implemented by devices that can stop their clock while no call uses them
// and start it again (the softphone's sound card): an idle phone then costs nothing.
// The phone pauses such a device right after starting it, resumes it when a call's
// media starts and pauses it again when the last call's media ends.
type Pauser interface {
	Pause() error
	Resume() error
}

// phoneAudio fans one device out over the phone's calls: captured audio goes to every
// call's sender, and the speaker plays the sum of every call's received audio.
type phoneAudio struct {
	dev AudioDevice

	// run serializes pausing and resuming the device. It is never taken on the audio
	// thread, and mu is never held while the device stops (stopping waits for the
	// callback, which takes mu).
	run sync.Mutex

	mu      sync.Mutex
	streams []*streamAudio
}

// idle pauses a Pauser device while no stream uses it.
func (a *phoneAudio) idle() {
	a.run.Lock()
	defer a.run.Unlock()
	a.mu.Lock()
	n := len(a.streams)
	a.mu.Unlock()
	if p, ok := a.dev.(Pauser); ok && n == 0 {
		_ = p.Pause()
	}
}

func (a *phoneAudio) add(s *streamAudio) {
	a.run.Lock()
	defer a.run.Unlock()
	a.mu.Lock()
	a.streams = append(a.streams, s)
	n := len(a.streams)
	a.mu.Unlock()
	if p, ok := a.dev.(Pauser); ok && n == 1 {
		_ = p.Resume()
	}
}

func (a *phoneAudio) remove(s *streamAudio) {
	a.run.Lock()
	defer a.run.Unlock()
	a.mu.Lock()
	for i, x := range a.streams {
		if x == s {
			a.streams = append(a.streams[:i], a.streams[i+1:]...)
			break
		}
	}
	n := len(a.streams)
	a.mu.Unlock()
	if p, ok := a.dev.(Pauser); ok && n == 0 {
		_ = p.Pause()
	}
}

func (a *phoneAudio) capture(pcm []int16) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range a.streams {
		s.pushCapture(pcm)
	}
}

func (a *phoneAudio) playback(pcm []int16) {
	clear(pcm)
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range a.streams {
		s.mixPlayout(pcm)
	}
}

// streamAudio is one call's share of the device: a small FIFO of captured samples that
// the send loop drains as frames complete, and a jitter buffer that the speaker drains.
type streamAudio struct {
	mu   sync.Mutex
	ring [captureFrames * media.FrameSamples]int16
	head int // index of the oldest sample
	n    int // samples held
	// ready has a value while a whole frame waits: the send loop sends it at once
	// rather than on a clock of its own, which would add up to a frame of delay.
	ready chan struct{}

	jb      *media.JitterBuffer
	rxCodec media.Codec
	payload [media.MaxFramePayload]byte
	out     [media.MaxFramePayload]int16 // the frame being played
	outPos  int
	outLen  int
}

func newStreamAudio() *streamAudio {
	return &streamAudio{jb: media.NewJitterBuffer(playoutJitter), ready: make(chan struct{}, 1)}
}

func (s *streamAudio) pushCapture(pcm []int16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	size := len(s.ring)
	if len(pcm) > size {
		pcm = pcm[len(pcm)-size:]
	}
	if over := s.n + len(pcm) - size; over > 0 {
		s.head = (s.head + over) % size
		s.n -= over
	}
	tail := (s.head + s.n) % size
	k := copy(s.ring[tail:], pcm)
	copy(s.ring[:], pcm[k:])
	s.n += len(pcm)
	if s.n >= media.FrameSamples {
		select {
		case s.ready <- struct{}{}:
		default:
		}
	}
}

// takeFrame fills frame with the oldest captured audio and reports true, or reports
// false (frame untouched) when less than a frame waits.
func (s *streamAudio) takeFrame(frame []int16) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n < len(frame) {
		return false
	}
	size := len(s.ring)
	k := copy(frame, s.ring[s.head:min(size, s.head+len(frame))])
	copy(frame[k:], s.ring[:len(frame)-k])
	s.head = (s.head + len(frame)) % size
	s.n -= len(frame)
	return true
}

// pushReceived queues one received audio payload for the speaker.
func (s *streamAudio) pushReceived(h media.RTPHeader, payload []byte) {
	s.mu.Lock()
	s.rxCodec = media.Codec(h.PayloadType)
	s.mu.Unlock()
	s.jb.Push(h.Seq, h.Timestamp, payload)
}

// mixPlayout adds this call's next samples to pcm, popping a frame from the jitter buffer
// whenever the one being played is used up (a missing frame plays as silence).
func (s *streamAudio) mixPlayout(pcm []int16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(pcm) > 0 {
		if s.outPos == s.outLen {
			n, ok := s.jb.Pop(s.payload[:])
			if !ok || n == 0 {
				n = media.FrameSamples
				clear(s.out[:n])
			} else {
				s.rxCodec.Decode(s.out[:n], s.payload[:n])
			}
			s.outPos, s.outLen = 0, n
		}
		k := min(len(pcm), s.outLen-s.outPos)
		for i := range k {
			v := int32(pcm[i]) + int32(s.out[s.outPos+i])
			pcm[i] = int16(max(-32768, min(32767, v)))
		}
		pcm = pcm[k:]
		s.outPos += k
	}
}
