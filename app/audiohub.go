package app

import (
	"sync"

	"ringside/media"
	"ringside/media/opus"
	"ringside/server/simphone"
)

// audioHub shares the session's one sound device between the SIP phone (which starts it
// once and pauses it while it has no call) and live calls, which tap into its capture and
// playback. The device runs while either needs it.
type audioHub struct {
	dev AudioDevice

	// run serializes pausing and resuming the device; mu is never held while it stops
	// (stopping waits for the callback, which takes mu).
	run        sync.Mutex
	phoneWants bool // the phone has a call with media (it resumed us)
	paused     bool

	mu                          sync.Mutex
	phoneCapture, phonePlayback func([]int16)
	phonePeek                   func([]int16) bool
	phoneAdvance                func(int)
	taps                        []*liveAudio
}

func newAudioHub(dev AudioDevice) *audioHub { return &audioHub{dev: dev} }

// Start is the phone's: its callbacks get the device's frames first.
func (h *audioHub) Start(capture, playback func(pcm []int16)) error {
	h.mu.Lock()
	h.phoneCapture, h.phonePlayback = capture, playback
	h.mu.Unlock()
	if l, ok := h.dev.(simphone.Lookahead); ok {
		l.SetLookahead(h.peek, h.advance)
	}
	return h.dev.Start(h.capture, h.playback)
}

// SetLookahead is the phone's (simphone.Lookahead). The device plays a period ahead only
// while no live call taps it: a live call's jitter buffer runs on the period itself.
func (h *audioHub) SetLookahead(peek func(pcm []int16) bool, advance func(n int)) {
	h.mu.Lock()
	h.phonePeek, h.phoneAdvance = peek, advance
	h.mu.Unlock()
}

func (h *audioHub) peek(pcm []int16) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.taps) == 0 && h.phonePeek != nil && h.phonePeek(pcm)
}

func (h *audioHub) advance(n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.phoneAdvance != nil {
		h.phoneAdvance(n)
	}
}

func (h *audioHub) Close() error { return h.dev.Close() }

// Pause and Resume are the phone's (simphone.Pauser): the device only pauses when no
// live call uses it either.
func (h *audioHub) Pause() error  { return h.want(false) }
func (h *audioHub) Resume() error { return h.want(true) }

func (h *audioHub) want(phone bool) error {
	h.run.Lock()
	defer h.run.Unlock()
	h.phoneWants = phone
	return h.applyLocked()
}

// applyLocked pauses or resumes a pausable device as its users need; h.run held.
func (h *audioHub) applyLocked() error {
	p, ok := h.dev.(simphone.Pauser)
	if !ok {
		return nil
	}
	h.mu.Lock()
	need := h.phoneWants || len(h.taps) > 0
	h.mu.Unlock()
	switch {
	case need && h.paused:
		h.paused = false
		return p.Resume()
	case !need && !h.paused:
		h.paused = true
		return p.Pause()
	}
	return nil
}

// attach makes a live call hear the microphone and be heard on the speaker.
func (h *audioHub) attach(a *liveAudio) {
	h.run.Lock()
	defer h.run.Unlock()
	h.mu.Lock()
	h.taps = append(h.taps, a)
	h.mu.Unlock()
	_ = h.applyLocked()
}

func (h *audioHub) detach(a *liveAudio) {
	h.run.Lock()
	defer h.run.Unlock()
	h.mu.Lock()
	for i, x := range h.taps {
		if x == a {
			h.taps = append(h.taps[:i], h.taps[i+1:]...)
			break
		}
	}
	h.mu.Unlock()
	_ = h.applyLocked()
}

func (h *audioHub) capture(pcm []int16) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.phoneCapture != nil {
		h.phoneCapture(pcm)
	}
	for _, a := range h.taps {
		a.pushCapture(pcm)
	}
}

func (h *audioHub) playback(pcm []int16) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.phonePlayback != nil {
		h.phonePlayback(pcm)
	} else {
		clear(pcm)
	}
	for _, a := range h.taps {
		a.mixPlayout(pcm)
	}
}

// liveCaptureFrames bounds the microphone audio waiting to be sent; older audio is
// dropped beyond it. The sender sends each frame as soon as it is complete.
const liveCaptureFrames = 8

// liveJitter is the playout buffer of a live call: the visitor is somewhere on the
// internet, not on the server's LAN, so it starts at two frames and may grow to six.
var liveJitter = media.JitterConfig{Depth: 2, MaxDepth: 6, Capacity: 32, MaxPayload: opus.MaxPacket}

// liveDecoder turns one received payload into PCM (Opus or G.711) and guesses a lost
// frame; it runs on the audio thread and must not allocate.
type liveDecoder interface {
	decode(dst []int16, payload []byte) int
	conceal(dst []int16) int
}

// liveAudio is one live call's share of the device: a FIFO of captured samples the
// sender drains frame by frame, and a jitter buffer of received payloads the speaker
// drains, decoding on the way.
type liveAudio struct {
	mu    sync.Mutex
	ring  media.SampleRing
	ready chan struct{} // has a value while a whole frame waits
	muted bool

	jb      *media.JitterBuffer
	dec     liveDecoder // nil until the remote track is known
	played  bool        // something was decoded: a gap is concealed, not silent
	payload [opus.MaxPacket]byte
	out     [maxDecodedFrame]int16
	outPos  int
	outLen  int
}

// maxDecodedFrame is the longest frame a payload may decode to: 120 ms of Opus at 8 kHz.
const maxDecodedFrame = media.SampleRate * 120 / 1000

func newLiveAudio() *liveAudio {
	return &liveAudio{jb: media.NewJitterBuffer(liveJitter), ready: make(chan struct{}, 1),
		ring: media.NewSampleRing(liveCaptureFrames * media.FrameSamples)}
}

func (a *liveAudio) setMute(on bool) {
	a.mu.Lock()
	a.muted = on
	a.mu.Unlock()
}

func (a *liveAudio) pushCapture(pcm []int16) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ring.Push(pcm, a.muted)
	if a.ring.Len() >= media.FrameSamples {
		select {
		case a.ready <- struct{}{}:
		default:
		}
	}
}

// takeFrame fills frame with the oldest captured audio and reports true, or reports
// false when less than a frame waits.
func (a *liveAudio) takeFrame(frame []int16) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ring.Take(frame)
}

// setDecoder names how received payloads decode, once the remote track is known.
func (a *liveAudio) setDecoder(d liveDecoder) {
	a.mu.Lock()
	a.dec = d
	a.mu.Unlock()
}

// pushReceived queues one received payload for the speaker.
func (a *liveAudio) pushReceived(seq uint16, ts uint32, payload []byte) {
	a.jb.Push(seq, ts, payload)
}

// mixPlayout adds this call's next samples to pcm.
func (a *liveAudio) mixPlayout(pcm []int16) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.dec == nil {
		return
	}
	for len(pcm) > 0 {
		if a.outPos == a.outLen {
			n, ok := a.jb.Pop(a.payload[:])
			switch {
			case ok && n > 0:
				n = a.dec.decode(a.out[:], a.payload[:n])
				a.played = a.played || n > 0
			case a.played:
				n = a.dec.conceal(a.out[:media.FrameSamples])
			default:
				n = 0
			}
			if n <= 0 {
				n = media.FrameSamples
				clear(a.out[:n])
			}
			a.outPos, a.outLen = 0, n
		}
		k := min(len(pcm), a.outLen-a.outPos)
		for i := range k {
			v := int32(pcm[i]) + int32(a.out[a.outPos+i])
			pcm[i] = int16(max(-32768, min(32767, v)))
		}
		pcm = pcm[k:]
		a.outPos += k
	}
}
