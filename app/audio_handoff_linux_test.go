//go:build linux && cgo

package app

import (
	"fmt"
	"log/slog"
	"ringside/media"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gen2brain/malgo"
)

// When Go is late for a period (here its only P is busy), the sound card plays silence
// for that period and keeps its clock: periods keep coming at the device's pace, none
// waits for Go, and Go takes them again as soon as it can.
func TestHandoffLatePeriodsKeepTheDeviceClock(t *testing.T) {
	d, err := newMalgoAudio([]malgo.Backend{nullBackend}, malgo.Duplex, nil, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Skipf("no null backend: %v", err)
	}
	defer d.Close()
	if d.handoff == nil {
		t.Fatal("the handoff was not installed on miniaudio's device: periods run in malgo's Go callback")
	}
	var played atomic.Int64
	if err := d.Start(nil, func(pcm []int16) {
		played.Add(1)
		for i := range pcm {
			pcm[i] = 1000
		}
	}); err != nil {
		t.Fatal(err)
	}
	waitPlayed := func(what string, n int64) {
		t.Helper()
		from := played.Load()
		for deadline := time.Now().Add(3 * time.Second); played.Load() < from+n; {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d periods played in 3 s, want %d", what, played.Load()-from, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitPlayed("started", 10)
	if n := d.handoff.late(); n != 0 {
		t.Logf("%d periods late before the stall (a busy machine)", n)
	}

	// Starve the handoff's goroutine: one P, held by a loop Go preempts only every 10 ms
	// or so, for 300 ms.
	procs := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(procs)
	lateBefore := d.handoff.late()
	playedBefore := played.Load()
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for until := time.Now().Add(300 * time.Millisecond); time.Now().Before(until); {
		}
	}()
	<-done
	runtime.GOMAXPROCS(procs)
	waitPlayed("after the stall", 10)
	elapsed := time.Since(start)
	late := d.handoff.late() - lateBefore
	taken := played.Load() - playedBefore
	if late == 0 {
		t.Fatalf("no period given up while Go was starved for 300 ms (%d taken)", taken)
	}
	// Each period is either taken by Go or played as silence, on the device's clock:
	// together they cover the time (10 ms periods; the null device is not exact).
	periods := int64(elapsed / devicePeriod)
	if got := taken + int64(late); got < periods*7/10 || got > periods*13/10 {
		t.Errorf("%d periods taken and %d given up in %v: the device's clock gives about %d", taken, late, elapsed.Round(time.Millisecond), periods)
	}
	t.Logf("in %v: %d periods taken by Go, %d played as silence", elapsed.Round(time.Millisecond), taken, late)
}

// aheadPhone stands for the SIP phone's audio: the peer's frames (160 samples, counting
// up) are there whenever needed, and peek knows the next period only while the frame
// being played has that much left, as simphone's phoneAudio does: where a frame ends,
// the next depends on what arrives.
type aheadPhone struct {
	pos        int // samples played
	played     []int16
	frames     [][]int16 // captured frames
	capturedIn []int     // the period each frame was captured in
	period     *atomic.Int64
}

func (p *aheadPhone) fill(pcm []int16, from int) {
	for i := range pcm {
		pcm[i] = int16((from + i) % 30000)
	}
}

func (p *aheadPhone) playback(pcm []int16) {
	p.fill(pcm, p.pos)
	p.pos += len(pcm)
}

func (p *aheadPhone) peek(pcm []int16) bool {
	if left := media.FrameSamples - p.pos%media.FrameSamples; left == media.FrameSamples || left < len(pcm) {
		return false
	}
	p.fill(pcm, p.pos)
	return true
}

func (p *aheadPhone) advance(n int) { p.pos += n }

func (p *aheadPhone) capture(pcm []int16) {
	p.frames = append(p.frames, slices.Clone(pcm))
	p.capturedIn = append(p.capturedIn, int(p.period.Load()))
}

// A period the phone knows already (the rest of a frame under way) is played by the
// audio thread without waking Go, and Go catches up in the next one: the speaker plays
// every sample once and in order, each microphone frame is still sent in the very
// period it completes, and once the frame boundary has moved to suit (dropping one
// period of the microphone, once) every other period is played ahead.
func TestHandoffPlaysAhead(t *testing.T) {
	// The peer's frames begin with the first period, or with the second: then the
	// microphone's frames complete in the periods the phone knows, until they move.
	for _, phase := range []int{0, 80} {
		t.Run(fmt.Sprintf("phase %d", phase), func(t *testing.T) { testHandoffPlaysAhead(t, phase) })
	}
}

func testHandoffPlaysAhead(t *testing.T, phase int) {
	h, conn := newHandoff(time.Second) // the test's thread is no audio thread: never late
	if h == nil {
		t.Skip("no eventfd")
	}
	var period atomic.Int64
	p := &aheadPhone{period: &period, pos: phase}
	f := newFrameIO(p.capture, p.playback)
	f.peek, f.advance = p.peek, p.advance
	var io atomic.Pointer[frameIO]
	io.Store(f)
	go h.serve(conn, &io)

	const n, periods = 80, 400
	var speaker []int16
	out, in := make([]int16, n), make([]int16, n)
	var aheadLast200 uint64
	for i := range periods {
		period.Store(int64(i))
		for j := range in {
			in[j] = int16(1 + i*n + j) // the microphone counts up too
		}
		if i == periods-200 {
			aheadLast200 = h.playedAhead()
		}
		h.runPeriod(out, in)
		speaker = append(speaker, out...)
	}
	aheadLast200 = h.playedAhead() - aheadLast200
	ahead := h.playedAhead()
	h.close() // p is the test's again

	for i, v := range speaker {
		if v != int16((phase+i)%30000) {
			t.Fatalf("speaker sample %d is %d: samples lost, repeated or reordered", i, v)
		}
	}
	dropped := 0
	want := int16(1)
	for i, fr := range p.frames {
		if fr[0] != want {
			if fr[0] != want+n || dropped > 0 {
				t.Fatalf("frame %d starts with microphone sample %d, want %d", i, fr[0], want)
			}
			dropped++
		}
		for j, v := range fr {
			if v != fr[0]+int16(j) {
				t.Fatalf("frame %d sample %d is %d: not contiguous", i, j, v)
			}
		}
		want = fr[len(fr)-1] + 1
		// Its last sample came in period (v-1)/n: the frame was sent in that period.
		if took := int(fr[len(fr)-1]-1) / n; took != p.capturedIn[i] {
			t.Fatalf("frame %d completed in period %d but was sent in period %d", i, took, p.capturedIn[i])
		}
	}
	if len(p.frames) < periods/2-2 {
		t.Errorf("%d microphone frames sent in %d periods", len(p.frames), periods)
	}
	if aheadLast200 < 99 || aheadLast200 > 100 {
		t.Errorf("%d of the last 200 periods played ahead, want every other one", aheadLast200)
	}
	t.Logf("%d of %d periods played ahead (%d of the last 200); %d microphone period dropped to align",
		ahead, periods, aheadLast200, dropped)
}
