package simphone

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

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
// softphone's link to its server is a LAN, so one frame. It is adaptive so that a late
// frame is waited for rather than skipped; how long frames wait is up to the playout
// phase below, which trims what a re-prefill or a burst leaves queued.
var playoutJitter = media.JitterConfig{Depth: 1, MaxDepth: 2}

// The playout phase. The server sends a frame every 20 ms on its clock; the sound card
// asks for audio every period (10 ms) on its own. A frame waits in the buffer from its
// arrival until the first period that plays it begins, so the phase between the two
// clocks costs up to a whole frame when frames are started on a fixed 20 ms grid. The
// playout point instead follows arrivals: each frame carries its arrival time through the
// jitter buffer, and when for a while every frame arrived at least playoutMargin plus a
// period before it was needed, the speaker skips a period's worth of audio (once: it is
// the same 10 ms for every later frame), so frames start in the first period after they
// arrive. A frame that comes too late makes the speaker wait a period for it, and the
// next skip then waits for a longer clean spell, so a jittery link settles instead of
// skipping and starving in turn. A whole frame or more left waiting (a burst after a
// stall, a re-prefill) is skipped at once after a short spell.
const (
	// stampSize is the arrival time appended to each payload in the jitter buffer.
	stampSize = 8
	// playoutMargin is the least time a frame should have arrived before it is needed:
	// scheduling jitter of the receiving goroutine and of the audio thread.
	playoutMargin = 2 * time.Millisecond
	// trimFrames is how many frames (1 s) must all arrive early enough before the
	// playout point moves a period earlier; each late frame doubles it, up to
	// maxTrimFrames (30 s). backlogFrames (200 ms) is the spell for a frame or more.
	trimFrames    = 50
	maxTrimFrames = 1500
	backlogFrames = 10
)

// Pauser is implemented by devices that can stop their clock while no call uses them
// and start it again (the softphone's sound card): an idle phone then costs nothing.
// The phone pauses such a device right after starting it, resumes it when a call's
// media starts and pauses it again when the last call's media ends.
type Pauser interface {
	Pause() error
	Resume() error
}

// Lookahead is implemented by devices that can play a period without asking for it (the
// softphone's sound card, whose goroutine then need not wake for that period). peek
// fills pcm with what the speaker's next period will play, when that is decided already,
// and reports whether it did; it uses nothing up. Once the device has played that period
// it calls advance(len(pcm)), before it asks playback for anything more.
type Lookahead interface {
	SetLookahead(peek func(pcm []int16) bool, advance func(n int))
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
	ready   []*streamAudio // capture's: streams with a frame to send
	polling []*streamAudio // playback's: streams to read, outside mu
	peeked  []*streamAudio // peek's: the streams whose audio it gave
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

// capture hands what the microphone took to every call, and each call sends the frames
// it completes: right away, on the device's goroutine, outside mu (a send takes the
// stream's locks).
func (a *phoneAudio) capture(pcm []int16) {
	a.mu.Lock()
	ready := a.ready[:0]
	for _, s := range a.streams {
		if s.pushCapture(pcm) {
			ready = append(ready, s)
		}
	}
	a.ready = ready
	a.mu.Unlock()
	for i, s := range ready {
		s.send()
		ready[i] = nil
	}
}

// playback first reads what arrived for every call (outside mu: that takes the streams'
// locks), then plays the sum of their audio.
func (a *phoneAudio) playback(pcm []int16) {
	a.mu.Lock()
	polling := append(a.polling[:0], a.streams...)
	a.mu.Unlock()
	for i, s := range polling {
		if s.poll != nil {
			s.poll()
			s.polled.Store(int64(time.Since(s.epoch)))
		}
		polling[i] = nil
	}
	a.polling = polling
	clear(pcm)
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range a.streams {
		s.mixPlayout(pcm)
	}
}

// peek fills pcm with the speaker's next period if every call is in the middle of a
// frame with that much of it left: only a frame boundary asks the jitter buffer, where
// what arrives meanwhile counts. What arrives before the period after it is read then,
// dated by the kernel, so playing a period ahead changes nothing the speaker plays.
func (a *phoneAudio) peek(pcm []int16) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	clear(pcm)
	a.peeked = a.peeked[:0]
	for _, s := range a.streams {
		if !s.peekPlayout(pcm) {
			clear(a.peeked)
			a.peeked = a.peeked[:0]
			return false
		}
		a.peeked = append(a.peeked, s)
	}
	return len(a.peeked) > 0
}

// advance uses up the period peek gave, which the device played.
func (a *phoneAudio) advance(n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, s := range a.peeked {
		s.advancePlayout(n)
		a.peeked[i] = nil
	}
	a.peeked = a.peeked[:0]
}

// streamAudio is one call's share of the device: a small FIFO of captured samples that
// the send loop drains as frames complete, and a jitter buffer that the speaker drains.
type streamAudio struct {
	mu   sync.Mutex
	ring media.SampleRing
	// send sends the frames waiting in ring (the stream's sendCaptured): at once, as
	// they complete, rather than on a clock of the stream's own, which would add up to
	// a frame of delay.
	send func()
	// poll reads what waits on the call's socket (the stream's pollPackets), on the
	// device's goroutine before each period plays; nil: the stream's receive loop reads.
	poll func()
	// polled is when poll last ran, in ns since epoch (0: never): the stream's receive
	// loop stands by while it is recent.
	polled atomic.Int64

	jb      *media.JitterBuffer
	rxCodec media.Codec
	payload [media.MaxFramePayload]byte
	out     [media.MaxFramePayload]int16 // the frame being played
	outPos  int
	outLen  int

	epoch   time.Time                   // arrival stamps count from here
	stamped [media.MaxFramePayload]byte // the receiver's: payload and arrival stamp
	noStamp bool                        // payloads too long to carry a stamp: fixed phase
	// The playout phase (audio thread): whether the last Pop found a frame, the frames
	// seen in this trim window and the window's length, and the least slack in it.
	fed      bool
	seen     int
	window   int
	minSlack time.Duration
	skip     int  // samples still to skip
	wait     bool // the frame in out starts with the next period
}

func newStreamAudio() *streamAudio {
	return &streamAudio{jb: media.NewJitterBuffer(playoutJitter), send: func() {},
		epoch: time.Now(), window: trimFrames, ring: media.NewSampleRing(captureFrames * media.FrameSamples)}
}

// pushCapture queues what the microphone took and reports whether a whole frame waits.
func (s *streamAudio) pushCapture(pcm []int16) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ring.Push(pcm, false)
	return s.ring.Len() >= media.FrameSamples
}

// takeFrame fills frame with the oldest captured audio and reports true, or reports
// false (frame untouched) when less than a frame waits.
func (s *streamAudio) takeFrame(frame []int16) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ring.Take(frame)
}

// polling tells whether the device read the socket lately (its receive loop may stand by).
func (s *streamAudio) polling(now time.Time) bool {
	t := s.polled.Load()
	return t != 0 && now.Sub(s.epoch)-time.Duration(t) < deviceStale
}

// pushReceived queues one received audio payload for the speaker, stamped with its
// arrival time.
func (s *streamAudio) pushReceived(h media.RTPHeader, payload []byte, arrived time.Time) {
	at := arrived.Sub(s.epoch)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rxCodec = media.Codec(h.PayloadType)
	if !s.noStamp && len(payload) > len(s.stamped)-stampSize {
		s.noStamp = true
		s.jb.Reset() // what it holds carries stamps
	}
	if s.noStamp {
		s.jb.Push(h.Seq, h.Timestamp, payload)
		return
	}
	n := copy(s.stamped[:], payload)
	binary.LittleEndian.PutUint64(s.stamped[n:], uint64(at))
	s.jb.Push(h.Seq, h.Timestamp, s.stamped[:n+stampSize])
}

// mixPlayout adds this call's next samples to pcm (one period of the sound card),
// popping a frame from the jitter buffer whenever the one being played is used up. When
// the next frame has not arrived, the rest of the period stays silent and the next
// period asks again.
func (s *streamAudio) mixPlayout(pcm []int16) {
	now := time.Since(s.epoch)
	s.mu.Lock()
	defer s.mu.Unlock()
	for off := 0; off < len(pcm); {
		if (s.outPos == s.outLen && !s.next(now, off, len(pcm))) || s.wait {
			s.wait = false
			return
		}
		k := min(len(pcm)-off, s.outLen-s.outPos)
		mixInto(pcm[off:off+k], s.out[s.outPos:s.outPos+k])
		off += k
		s.outPos += k
	}
}

// peekPlayout adds the next len(pcm) samples of the frame being played to pcm and
// reports true if it holds that many (mixPlayout would then play just them), else
// reports false. It uses nothing up.
func (s *streamAudio) peekPlayout(pcm []int16) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.outLen-s.outPos < len(pcm) {
		return false
	}
	mixInto(pcm, s.out[s.outPos:s.outPos+len(pcm)])
	return true
}

// advancePlayout uses up n samples peekPlayout gave.
func (s *streamAudio) advancePlayout(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outPos = min(s.outPos+n, s.outLen)
}

// mixInto adds src to dst, saturating.
func mixInto(dst, src []int16) {
	for i, v := range src {
		dst[i] = int16(max(-32768, min(32767, int32(dst[i])+int32(v))))
	}
}

// next decodes the next frame into out, or reports false when it is not there yet. now
// is when the period began, off where in it the frame would start and period its length
// in samples.
func (s *streamAudio) next(now time.Duration, off, period int) bool {
	n, ok := s.jb.Pop(s.payload[:])
	if !ok || n == 0 || (!s.noStamp && n <= stampSize) {
		s.skip = 0
		if s.fed {
			// Late (or lost): be slower to move the playout point earlier again.
			s.fed, s.seen = false, 0
			s.window = min(2*s.window, maxTrimFrames)
		}
		return false
	}
	starting := !s.fed
	s.fed = true
	if s.noStamp {
		s.rxCodec.Decode(s.out[:n], s.payload[:n])
		s.outPos, s.outLen = 0, n
		return true
	}
	n -= stampSize
	at := time.Duration(binary.LittleEndian.Uint64(s.payload[n:]))
	s.rxCodec.Decode(s.out[:n], s.payload[:n])
	s.outPos, s.outLen = 0, n
	if s.skip > 0 {
		s.outPos = min(s.skip, n)
		s.skip -= s.outPos
		return true // mixPlayout asks again when this frame was skipped whole
	}

	// The frame was needed when the period began: its slack is how long before that it
	// arrived.
	slack := now - at
	if starting && slack < playoutMargin && off == 0 {
		// The first frame after a gap arrived just now: start it a period later, so
		// that the next ones, as early or late as it was, do not miss their period.
		s.wait = true
		slack += time.Duration(period) * time.Second / media.SampleRate
	}
	if s.seen == 0 || slack < s.minSlack {
		s.minSlack = slack
	}
	s.seen++
	periodTime := time.Duration(period) * time.Second / media.SampleRate
	frameTime := time.Duration(n) * time.Second / media.SampleRate
	excess := s.minSlack - playoutMargin
	switch {
	case s.seen >= backlogFrames && excess >= frameTime:
	case s.seen >= s.window:
	default:
		return true
	}
	s.seen = 0
	// Start frames at the beginning of a period (dropping off samples keeps them in the
	// same period), and as many periods earlier as every frame of the spell would still
	// have arrived in time.
	drop := off
	if excess > 0 {
		drop += int(excess/periodTime) * period
	}
	s.outPos = min(drop, n)
	s.skip = drop - s.outPos
	return true
}
