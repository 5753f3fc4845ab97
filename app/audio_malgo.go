package app

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/gen2brain/malgo"

	"ringside/media"
)

// The sound card is asked for what a G.711 call carries: 8 kHz mono 16-bit, in 10 ms
// periods (frameIO makes 20 ms frames of the microphone's and hands the speaker's periods
// on as they come). miniaudio converts to whatever the hardware runs at. Two periods
// (20 ms) is the latency the device adds on top of the network's: with frames sent as
// soon as they are captured, and played from the first period after they arrive (the
// phone's playout follows their arrival at the period's granularity), each direction
// stays under the 40 ms the softphone may add (BenchmarkAudioLatency in server/simphone
// measures it with this buffer counted).
const (
	devicePeriod  = 10 * time.Millisecond
	devicePeriods = 2
)

func init() {
	defaultAudio = func() AudioDevice {
		d, err := OpenAudio("", "")
		if err != nil { // only a bad device ID fails, and "" is none
			return NullAudio()
		}
		return d
	}
}

// nullBackend is miniaudio's null backend (silence in, output discarded, on its own
// clock); malgo.BackendNull itself is the custom backend.
const nullBackend = malgo.Backend(malgo.BackendNull + 1)

// AudioDevices lists the system's sound cards by kind. Without sound hardware both lists
// are empty (ALSA's "null" pseudo-device, which discards everything, is not listed).
// An ID goes back into OpenAudio.
func AudioDevices() (capture, playback []DeviceInfo, err error) {
	mctx, err := malgo.InitContext(nil, malgo.ContextConfig{}, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("audio: %w", err)
	}
	defer func() {
		_ = mctx.Uninit()
		mctx.Free()
	}()
	list := func(kind malgo.DeviceType) ([]DeviceInfo, error) {
		infos, err := mctx.Devices(kind)
		if err != nil {
			return nil, fmt.Errorf("audio: listing devices: %w", err)
		}
		var out []DeviceInfo
		for _, d := range infos {
			if isNullDevice(d.ID) {
				continue
			}
			out = append(out, DeviceInfo{ID: d.ID.String(), Name: d.Name(), Default: d.IsDefault != 0})
		}
		return out, nil
	}
	if capture, err = list(malgo.Capture); err != nil {
		return nil, nil, err
	}
	if playback, err = list(malgo.Playback); err != nil {
		return nil, nil, err
	}
	return capture, playback, nil
}

// isNullDevice tells ALSA's "null" PCM: listed where no card is, it is no sound device.
func isNullDevice(id malgo.DeviceID) bool {
	return strings.TrimRight(string(id[:]), "\x00") == "null"
}

// OpenAudio opens the sound cards with these IDs (from AudioDevices; "" is the system
// default) as one device. A machine with speakers but no microphone (or the reverse) gets
// a device that plays (records) and captures silence (discards what it would play). With
// no sound card at all it falls back to miniaudio's null backend, then to NullAudio, and
// logs why with slog's default logger: the softphone keeps working, silently.
func OpenAudio(captureID, playbackID string) (AudioDevice, error) {
	return openAudio(captureID, playbackID, slog.Default())
}

func openAudio(captureID, playbackID string, log *slog.Logger) (AudioDevice, error) {
	capID, err := parseDeviceID(captureID)
	if err != nil {
		return nil, fmt.Errorf("audio: capture device: %w", err)
	}
	playID, err := parseDeviceID(playbackID)
	if err != nil {
		return nil, fmt.Errorf("audio: playback device: %w", err)
	}
	// Only try what exists: every failed open makes ALSA print a screenful to stderr.
	var kinds []malgo.DeviceType
	var why error
	capture, playback, err := AudioDevices()
	switch {
	case err != nil:
		why = err
	case len(capture) > 0 && len(playback) > 0:
		kinds = []malgo.DeviceType{malgo.Duplex, malgo.Playback, malgo.Capture}
	case len(playback) > 0:
		kinds = []malgo.DeviceType{malgo.Playback}
	case len(capture) > 0:
		kinds = []malgo.DeviceType{malgo.Capture}
	default:
		why = errors.New("no sound card found")
	}
	var reasons []error
	for _, kind := range kinds {
		d, err := newMalgoAudio(nil, kind, capID, playID, log)
		if err == nil {
			if kind != malgo.Duplex {
				oneWay := errors.Join(reasons...)
				if oneWay == nil && kind == malgo.Playback {
					oneWay = errors.New("no microphone found: you will be heard as silence")
				} else if oneWay == nil {
					oneWay = errors.New("no speaker found: you will hear nothing")
				}
				log.Warn("sound card opened for one direction only", "kind", kindName(kind), "why", oneWay)
			}
			log.Info("sound device opened", "kind", kindName(kind), "buffer", d.latency)
			return d, nil
		}
		reasons = append(reasons, fmt.Errorf("%s: %w", kindName(kind), err))
	}
	if len(reasons) > 0 {
		why = errors.Join(reasons...)
	}
	d, err := newMalgoAudio([]malgo.Backend{nullBackend}, malgo.Duplex, nil, nil, log)
	if err == nil {
		log.Warn("no usable sound device: using the null audio backend (silence in, nothing out)", "why", why, "buffer", d.latency)
		return d, nil
	}
	log.Warn("no usable sound device: using silent audio", "why", why, "null backend", err)
	return NullAudio(), nil
}

func kindName(k malgo.DeviceType) string {
	switch k {
	case malgo.Duplex:
		return "capture+playback"
	case malgo.Playback:
		return "playback"
	case malgo.Capture:
		return "capture"
	}
	return strconv.Itoa(int(k))
}

func parseDeviceID(s string) (*malgo.DeviceID, error) {
	if s == "" {
		return nil, nil
	}
	b, err := hex.DecodeString(s)
	var id malgo.DeviceID
	if err != nil || len(b) > len(id) {
		return nil, fmt.Errorf("bad device ID %q", s)
	}
	copy(id[:], b)
	return &id, nil
}

// frameIO turns the microphone's periods into the 20 ms frames RTP carries, whatever
// the period miniaudio settled on, and asks for the speaker's audio period by period (at
// most a frame at a time): a received frame can then start playing in the first period
// after it arrived, not only on a 20 ms grid. It runs on the audio thread: no
// allocation, no locks, no logging.
type frameIO struct {
	capture, playback func(pcm []int16)
	// The phone's lookahead (simphone.Lookahead; nil: none): the handoff plays a period
	// ahead without waking Go when the phone knows it already (ahead).
	peek    func(pcm []int16) bool
	advance func(n int)

	in      [media.FrameSamples]int16
	inN     int
	discard [media.FrameSamples]int16 // the speaker of a capture-only card
	blocked int                       // periods not played ahead only because a frame completed in them
}

func newFrameIO(capture, playback func([]int16)) *frameIO {
	return &frameIO{capture: capture, playback: playback}
}

// process takes what the microphone gave (nil for a playback-only card: silence) and
// fills what the speaker plays (nil for a capture-only card: pulled and discarded), n
// samples each.
func (f *frameIO) process(out, in []int16, n int) {
	f.take(in, n)
	for i := 0; i < n; {
		k := min(n-i, media.FrameSamples)
		buf := f.discard[:k]
		if out != nil {
			buf = out[i : i+k]
		}
		if f.playback != nil {
			f.playback(buf)
		} else {
			clear(buf)
		}
		i += k
	}
}

// take reframes n samples of the microphone (nil: silence), capturing each frame it
// completes.
func (f *frameIO) take(in []int16, n int) {
	for i := 0; i < n; {
		k := min(n-i, len(f.in)-f.inN)
		if in != nil {
			copy(f.in[f.inN:], in[i:i+k])
		} else {
			clear(f.in[f.inN : f.inN+k])
		}
		f.inN += k
		if f.inN == len(f.in) {
			if f.capture != nil {
				f.capture(f.in[:])
			}
			f.inN = 0
		}
		i += k
	}
}

// alignAfter is how many periods may go unplayed ahead because the microphone's frame
// would complete in them (and wait a period to be sent) before the frame boundary moves.
const alignAfter = 50

// ahead fills next, the speaker's next period, if the phone knows it already and no
// microphone frame completes in that period: the device may then play it without waking
// Go, which catches up (playedAhead) in the period after. Frames arrive every 20 ms and
// periods are 10 ms, so the phone knows every other period. If the microphone's frames
// keep completing in exactly those periods, the frame boundary moves a period (once, the
// microphone's audio of one period is dropped, as the speaker skips one to play frames
// sooner): sending each frame as soon as it is complete is worth more than the wake-up.
func (f *frameIO) ahead(next []int16) bool {
	if f.peek == nil || len(next) >= len(f.in) || !f.peek(next) {
		return false
	}
	if f.inN+len(next) >= len(f.in) {
		if f.blocked++; f.blocked < alignAfter {
			return false
		}
		f.inN = 0
	}
	f.blocked = 0
	return true
}

// playedAhead catches up on the period the device played from ahead: the speaker used
// it up, and in is what the microphone took meanwhile (nil: silence).
func (f *frameIO) playedAhead(in []int16, n int) {
	f.advance(n)
	f.take(in, n)
}

// malgoAudio is a miniaudio device with its own context.
type malgoAudio struct {
	log     *slog.Logger
	mctx    *malgo.AllocatedContext
	dev     *malgo.Device
	kind    malgo.DeviceType
	latency time.Duration // what the device buffers: period × periods, per direction

	io      atomic.Pointer[frameIO] // set by Start before the device runs
	peek    func(pcm []int16) bool  // the phone's lookahead (SetLookahead), for frameIO
	advance func(n int)
	handoff *audioHandoff // runs the periods off the audio thread (nil: malgo's callback does)
	// op serializes Pause, Resume and Close; mu (the flags) is never held while the
	// device starts or stops, since miniaudio may call stopped meanwhile.
	op      sync.Mutex
	mu      sync.Mutex
	started bool
	paused  bool
	closed  bool
}

// bufferSize finds miniaudio's report of the buffer it set up, e.g. "Buffer Size: 160*2 (320)".
var bufferSize = regexp.MustCompile(`Buffer Size:\s*(\d+)\*(\d+)`)

func newMalgoAudio(backends []malgo.Backend, kind malgo.DeviceType, capID, playID *malgo.DeviceID, log *slog.Logger) (*malgoAudio, error) {
	// miniaudio's log tells what the backend really granted; keep it for the latency.
	var logMu sync.Mutex
	var initLog strings.Builder
	mctx, err := malgo.InitContext(backends, malgo.ContextConfig{}, func(msg string) {
		logMu.Lock()
		initLog.WriteString(msg)
		logMu.Unlock()
	})
	if err != nil {
		return nil, err
	}
	cfg := malgo.DefaultDeviceConfig(kind)
	cfg.SampleRate = media.SampleRate
	cfg.PeriodSizeInMilliseconds = uint32(devicePeriod / time.Millisecond)
	cfg.Periods = devicePeriods
	cfg.Capture.Format, cfg.Capture.Channels = malgo.FormatS16, 1
	cfg.Playback.Format, cfg.Playback.Channels = malgo.FormatS16, 1
	if capID != nil {
		cfg.Capture.DeviceID = unsafe.Pointer(capID)
	}
	if playID != nil {
		cfg.Playback.DeviceID = unsafe.Pointer(playID)
	}
	a := &malgoAudio{log: log, mctx: mctx, kind: kind}
	dev, err := malgo.InitDevice(mctx.Context, cfg, malgo.DeviceCallbacks{Data: a.data, Stop: a.stopped})
	if err != nil {
		_ = mctx.Uninit()
		mctx.Free()
		return nil, err
	}
	a.dev = dev
	a.handoff = installHandoff(dev, kind, &a.io)
	logMu.Lock()
	report := initLog.String()
	logMu.Unlock()
	a.latency = devicePeriod * devicePeriods
	if m := bufferSize.FindStringSubmatch(report); m != nil {
		frames, _ := strconv.Atoi(m[1])
		periods, _ := strconv.Atoi(m[2])
		a.latency = time.Duration(frames*periods) * time.Second / media.SampleRate
	}
	mctx.SetLogProc(nil) // from here on, nothing to learn from it
	return a, nil
}

// data is miniaudio's callback on its audio thread.
func (a *malgoAudio) data(out, in []byte, frames uint32) {
	f := a.io.Load()
	if f == nil {
		clear(out)
		return
	}
	f.process(int16s(out), int16s(in), int(frames))
}

// int16s views the device's s16 buffer (native byte order, aligned by miniaudio) as samples.
func int16s(b []byte) []int16 {
	if len(b) < 2 {
		return nil
	}
	return unsafe.Slice((*int16)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/2)
}

func (a *malgoAudio) stopped() {
	a.mu.Lock()
	unexpected := a.started && !a.closed && !a.paused
	a.mu.Unlock()
	if unexpected {
		a.log.Warn("sound device stopped (unplugged?)")
	}
}

// Latency is what the device buffers in each direction: miniaudio's period × periods.
func (a *malgoAudio) Latency() time.Duration { return a.latency }

func (a *malgoAudio) Start(capture, playback func(pcm []int16)) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.started || a.closed {
		return ErrDeviceClosed
	}
	a.io.Store(a.newFrameIO(capture, playback))
	if err := a.dev.Start(); err != nil {
		a.io.Store(nil)
		return fmt.Errorf("audio: starting the sound device: %w", err)
	}
	a.started = true
	return nil
}

// SetLookahead lets the device play a period the phone knows already without running
// Go for it (simphone.Lookahead); call it before Start.
func (a *malgoAudio) SetLookahead(peek func(pcm []int16) bool, advance func(n int)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.peek, a.advance = peek, advance
}

// newFrameIO starts the periods afresh, with nothing played ahead.
func (a *malgoAudio) newFrameIO(capture, playback func([]int16)) *frameIO {
	f := newFrameIO(capture, playback)
	if a.handoff != nil && a.kind == malgo.Duplex {
		f.peek, f.advance = a.peek, a.advance
		a.handoff.reset()
	}
	return f
}

// Pause stops the sound card while no call needs it (simphone.Pauser): its audio thread
// would otherwise wake the process every period for silence.
func (a *malgoAudio) Pause() error {
	a.op.Lock()
	defer a.op.Unlock()
	a.mu.Lock()
	skip := !a.started || a.closed || a.paused
	a.paused = a.paused || !skip
	a.mu.Unlock()
	if skip {
		return nil
	}
	if err := a.dev.Stop(); err != nil {
		return fmt.Errorf("audio: pausing the sound device: %w", err)
	}
	return nil
}

// Resume starts the sound card again after Pause, with no half frame left over.
func (a *malgoAudio) Resume() error {
	a.op.Lock()
	defer a.op.Unlock()
	a.mu.Lock()
	skip := !a.started || a.closed || !a.paused
	a.mu.Unlock()
	if skip {
		return nil
	}
	old := a.io.Load()
	a.io.Store(a.newFrameIO(old.capture, old.playback))
	if err := a.dev.Start(); err != nil {
		return fmt.Errorf("audio: resuming the sound device: %w", err)
	}
	a.mu.Lock()
	a.paused = false
	a.mu.Unlock()
	return nil
}

// Close stops the device (waiting for its thread) and frees it.
func (a *malgoAudio) Close() error {
	a.op.Lock()
	defer a.op.Unlock()
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	a.mu.Unlock()
	a.dev.Uninit()
	if a.handoff != nil {
		if n := a.handoff.late(); n > 0 {
			a.log.Warn("sound device: periods played as silence because the app was late", "periods", n)
		}
		a.handoff.close()
	}
	err := a.mctx.Uninit()
	a.mctx.Free()
	return err
}
