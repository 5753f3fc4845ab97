package media

import (
	"encoding/binary"
	"sync"
	"testing"
)

// frame is a payload that names its sequence number, so a test can tell
// which frame Pop returned.
func frame(seq uint16) []byte {
	p := make([]byte, FrameSamples)
	binary.BigEndian.PutUint16(p, seq)
	return p
}

// pops pops n times and returns the sequence numbers, -1 for a gap.
func pops(t *testing.T, j *JitterBuffer, n int) []int {
	t.Helper()
	var out []int
	buf := make([]byte, MaxFramePayload)
	for range n {
		k, ok := j.Pop(buf)
		switch {
		case !ok:
			out = append(out, -1)
		case k != FrameSamples:
			t.Fatalf("Pop returned %d bytes, want %d", k, FrameSamples)
		default:
			out = append(out, int(binary.BigEndian.Uint16(buf)))
		}
	}
	return out
}

func push(t *testing.T, j *JitterBuffer, want bool, seqs ...uint16) {
	t.Helper()
	for _, s := range seqs {
		if got := j.Push(s, uint32(s)*FrameSamples, frame(s)); got != want {
			t.Fatalf("Push(%d) = %v, want %v", s, got, want)
		}
	}
}

func equal(t *testing.T, what string, got []int, want ...int) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: got %v, want %v", what, got, want)
		}
	}
}

func TestJitterPrefillThenInOrder(t *testing.T) {
	j := NewJitterBuffer(DefaultJitterConfig())
	equal(t, "empty", pops(t, j, 2), -1, -1)
	push(t, j, true, 1)
	equal(t, "one frame held, Depth 2", pops(t, j, 1), -1)
	// Each tick one frame arrives and the one before it plays: 40 ms delay.
	for s := uint16(2); s < 10; s++ {
		push(t, j, true, s)
		equal(t, "steady", pops(t, j, 1), int(s-1))
	}
	if st := j.Stats(); st != (JitterStats{Pushed: 9, Popped: 8}) {
		t.Errorf("stats %+v: prefill ticks must not count as missing", st)
	}
}

func TestJitterReordersAcrossWrap(t *testing.T) {
	j := NewJitterBuffer(JitterConfig{Depth: 4})
	push(t, j, true, 65534, 0, 65535, 1, 3, 2)
	equal(t, "order", pops(t, j, 6), 65534, 65535, 0, 1, 2, 3)
}

func TestJitterReorderBeforeFirstFrame(t *testing.T) {
	// The first frame to arrive need not be the first sent.
	j := NewJitterBuffer(DefaultJitterConfig())
	push(t, j, true, 11, 10)
	equal(t, "order", pops(t, j, 2), 10, 11)
}

func TestJitterLossDuplicateLate(t *testing.T) {
	j := NewJitterBuffer(DefaultJitterConfig())
	push(t, j, true, 1, 2, 4, 5)
	push(t, j, false, 2) // duplicate
	equal(t, "gap for 3", pops(t, j, 3), 1, 2, -1)
	push(t, j, false, 3, 1) // after their playout
	equal(t, "rest", pops(t, j, 2), 4, 5)
	if st := j.Stats(); st != (JitterStats{Pushed: 4, Popped: 4, Missing: 1, Dropped: 3}) {
		t.Errorf("stats %+v", st)
	}
}

func TestJitterRejectsOversizePayload(t *testing.T) {
	j := NewJitterBuffer(DefaultJitterConfig())
	if j.Push(1, 0, make([]byte, MaxFramePayload+1)) {
		t.Fatal("oversize payload accepted")
	}
	if !j.Push(2, 0, make([]byte, MaxFramePayload)) {
		t.Fatal("320-byte payload refused")
	}
}

// A sender whose clock runs fast (or a burst) must not grow latency past
// Capacity: the oldest frames go.
func TestJitterOverflowDropsOldest(t *testing.T) {
	j := NewJitterBuffer(JitterConfig{Depth: 2, Capacity: 16})
	for s := uint16(1); s <= 40; s++ {
		j.Push(s, 0, frame(s))
	}
	want := make([]int, 0, 16)
	for s := 25; s <= 40; s++ {
		want = append(want, s)
	}
	equal(t, "newest 16", pops(t, j, 16), want...)
	if st := j.Stats(); st.Dropped != 24 || st.Popped != 16 {
		t.Errorf("stats %+v", st)
	}
}

// After a long loss the buffer resynchronises on the new frames instead of
// playing out a window of silence first.
func TestJitterGapSkipsAhead(t *testing.T) {
	j := NewJitterBuffer(DefaultJitterConfig())
	push(t, j, true, 1, 2)
	equal(t, "start", pops(t, j, 1), 1)
	push(t, j, true, 500, 501)
	equal(t, "after gap", pops(t, j, 2), 500, 501)
}

// A sender that pauses and resumes where it left off (hold, silence
// suppression) must be heard again, not judged late forever.
func TestJitterUnderrunPrefillsAgain(t *testing.T) {
	j := NewJitterBuffer(DefaultJitterConfig())
	push(t, j, true, 1, 2, 3)
	equal(t, "play", pops(t, j, 3), 1, 2, 3)
	equal(t, "silence", pops(t, j, 10), -1, -1, -1, -1, -1, -1, -1, -1, -1, -1)
	push(t, j, true, 4)
	equal(t, "prefilling again", pops(t, j, 1), -1)
	push(t, j, true, 5)
	equal(t, "resumed", pops(t, j, 2), 4, 5)
	if st := j.Stats(); st.Missing != underrunTicks {
		t.Errorf("Missing = %d, want %d: ticks while prefilling are not losses", st.Missing, underrunTicks)
	}
}

// A new stream (sender restart) far from the old sequence resets the buffer
// once a second packet confirms it; a single stray packet does not.
func TestJitterSequenceJumpResets(t *testing.T) {
	j := NewJitterBuffer(DefaultJitterConfig())
	push(t, j, true, 100, 101, 102)
	push(t, j, false, 40000) // stray
	equal(t, "old stream", pops(t, j, 1), 100)
	push(t, j, true, 103)
	push(t, j, false, 20000)       // new stream, first packet
	push(t, j, true, 20001, 20002) // confirmed: reset
	equal(t, "new stream", pops(t, j, 2), 20001, 20002)
	if st := j.Stats(); st.Dropped != 2+3 {
		t.Errorf("Dropped = %d, want 5 (2 probes + 101,102,103 discarded)", st.Dropped)
	}
}

func TestJitterReset(t *testing.T) {
	j := NewJitterBuffer(DefaultJitterConfig())
	push(t, j, true, 1, 2, 3)
	j.Reset()
	equal(t, "after reset", pops(t, j, 1), -1)
	push(t, j, true, 1, 2) // same numbers are new again
	equal(t, "replay", pops(t, j, 2), 1, 2)
}

func TestJitterShortDst(t *testing.T) {
	j := NewJitterBuffer(JitterConfig{Depth: 1})
	push(t, j, true, 1)
	dst := make([]byte, 10)
	if n, ok := j.Pop(dst); !ok || n != 10 {
		t.Errorf("Pop into 10 bytes = %d, %v", n, ok)
	}
}

// Push from a reader goroutine while the tick pops; run with -race.
func TestJitterConcurrentPushPop(t *testing.T) {
	j := NewJitterBuffer(DefaultJitterConfig())
	const frames = 2000
	var wg sync.WaitGroup
	wg.Go(func() {
		for s := uint16(1); s <= frames; s++ {
			j.Push(s, uint32(s)*FrameSamples, frame(s))
		}
	})
	last := 0
	buf := make([]byte, MaxFramePayload)
	for range frames {
		if n, ok := j.Pop(buf); ok {
			s := int(binary.BigEndian.Uint16(buf[:n]))
			if s <= last {
				t.Fatalf("frame %d popped after %d", s, last)
			}
			last = s
		}
	}
	wg.Wait()
	st := j.Stats()
	if st.Pushed+st.Dropped < frames || st.Popped > st.Pushed {
		t.Errorf("inconsistent stats %+v", st)
	}
}

func TestJitterNoAllocs(t *testing.T) {
	j := NewJitterBuffer(DefaultJitterConfig())
	payload := make([]byte, FrameSamples)
	dst := make([]byte, MaxFramePayload)
	seq := uint16(0)
	n := testing.AllocsPerRun(1000, func() {
		j.Push(seq, uint32(seq)*FrameSamples, payload)
		j.Push(seq, 0, payload) // duplicate: dropped without allocating
		j.Pop(dst)
		seq++
	})
	if n != 0 {
		t.Errorf("Push+Pop: %v allocs per frame", n)
	}
}

func BenchmarkJitterPushPop(b *testing.B) {
	j := NewJitterBuffer(DefaultJitterConfig())
	payload := make([]byte, FrameSamples)
	dst := make([]byte, MaxFramePayload)
	seq := uint16(0)
	b.ReportAllocs()
	for b.Loop() {
		j.Push(seq, uint32(seq)*FrameSamples, payload)
		j.Pop(dst)
		seq++
	}
}

// A burst leaves extra frames behind; once the stream is steady again the
// delay drains back to Depth instead of lasting the whole call.
func TestJitterDrainsBackToDepth(t *testing.T) {
	cfg := DefaultJitterConfig()
	j := NewJitterBuffer(cfg)
	push(t, j, true, 1, 2, 3, 4, 5, 6, 7, 8) // arrived in one burst
	next, last := uint16(9), 0
	buf := make([]byte, MaxFramePayload)
	for range 10 * drainTicks {
		push(t, j, true, next)
		next++
		if _, ok := j.Pop(buf); ok {
			s := int(binary.BigEndian.Uint16(buf))
			if s <= last {
				t.Fatalf("frame %d after %d", s, last)
			}
			last = s
		}
	}
	// Pop runs right after the newest Push here, so Depth frames of delay
	// means the last played frame is Depth-1 behind the newest.
	if delay := int(next-1) - last; delay != cfg.Depth-1 {
		t.Errorf("delay %d frames after 10 s steady, want %d", delay, cfg.Depth-1)
	}
	// The burst queued 8 frames where steady state queues Depth-1.
	surplus := uint64(8 - (cfg.Depth - 1))
	if st := j.Stats(); st.Missing != 0 || st.Dropped != surplus {
		t.Errorf("stats %+v: want only the %d surplus frames dropped", st, surplus)
	}
}

// An adaptive buffer starts at one frame of delay; a frame that comes late is waited for
// (played after one gap, not dropped), the delay stays one frame longer while jitter may
// recur, and after 10 s of steady arrivals it drains back to one frame.
func TestJitterAdaptiveGrowsOnLateFrameAndShrinks(t *testing.T) {
	j := NewJitterBuffer(JitterConfig{Depth: 1, MaxDepth: 3})
	push(t, j, true, 1)
	equal(t, "first frame plays at once", pops(t, j, 1), 1)
	// A lone late frame is played as a gap and dropped when it comes: no delay added.
	equal(t, "frame 2 is late", pops(t, j, 1), -1)
	push(t, j, false, 2)
	push(t, j, true, 3)
	equal(t, "frame 3 on time", pops(t, j, 1), 3)
	// Late again within a second: now the buffer waits for it and grows.
	equal(t, "frame 4 is late", pops(t, j, 1), -1)
	push(t, j, true, 4, 5) // 4 arrives late, 5 on time
	equal(t, "late frame played, not dropped", pops(t, j, 1), 4)
	next := uint16(6)
	buf := make([]byte, MaxFramePayload)
	delay := func() int {
		// Push the next frame, then Pop: the frames still held after the Pop are the delay.
		push(t, j, true, next)
		next++
		if _, ok := j.Pop(buf); !ok {
			t.Fatalf("gap in a steady stream (frame %d)", next-1)
		}
		return j.held
	}
	if d := delay(); d != 1 {
		t.Fatalf("after the late frame: %d frames held, want 1 (grown by one)", d)
	}
	for range shrinkTicks + 2*drainTicks {
		delay()
	}
	if d := delay(); d != 0 {
		t.Errorf("after %d steady frames: %d frames held, want 0 (back to Depth 1)", shrinkTicks+2*drainTicks, d)
	}
	if st := j.Stats(); st.Missing != 2 || st.Dropped != 2 {
		t.Errorf("stats %+v: want two gaps, the lone late frame and one drained frame dropped", st)
	}
}

// A fixed buffer (MaxDepth unset) still plays a late frame's slot as a gap and drops it.
func TestJitterFixedDropsLateFrame(t *testing.T) {
	j := NewJitterBuffer(JitterConfig{Depth: 1})
	push(t, j, true, 1)
	equal(t, "first", pops(t, j, 2), 1, -1)
	push(t, j, false, 2)
	push(t, j, true, 3)
	equal(t, "next", pops(t, j, 1), 3)
}

// A buffer sized for Opus keeps packets G.711 slots could not hold; the default refuses them.
func TestJitterBufferMaxPayload(t *testing.T) {
	big := make([]byte, 1000)
	big[999] = 7
	if NewJitterBuffer(JitterConfig{Depth: 1}).Push(1, 0, big) {
		t.Error("a default buffer kept a 1000-byte payload")
	}
	j := NewJitterBuffer(JitterConfig{Depth: 1, MaxPayload: 1275})
	if !j.Push(1, 0, big) {
		t.Fatal("an Opus-sized buffer refused a 1000-byte payload")
	}
	dst := make([]byte, 1275)
	n, ok := j.Pop(dst)
	if !ok || n != 1000 || dst[999] != 7 {
		t.Errorf("Pop = %d, %v, last byte %d; want the 1000 bytes back", n, ok, dst[999])
	}
}
