package room

import (
	"math/rand/v2"
	"testing"
	"time"

	"ringside/media"
)

// These tests drive Service on a simulated timeline: frames reach each leg at chosen
// times (as the kernel would stamp them), the room is polled as the clock would poll it,
// and every frame a leg is sent is recorded with the time it went out. Frames are
// numbered in their payload, so a listener's frames can be traced to the speaker's.

type sent struct {
	at time.Duration
	n  int // the speaker's frame number, -1 for none (silence or a mix of numbers)
}

// stopwatch records what a leg is sent, and when.
type stopwatch struct {
	now   *time.Duration
	codec media.Codec
	got   []sent
}

func (w *stopwatch) WriteFrame(p []byte) error {
	w.got = append(w.got, sent{*w.now, frameNumber(p)})
	return nil
}

// A numbered frame is silence but for its first two bytes. Both codecs decode and
// re-encode these bytes exactly, and adding silence to them changes nothing, so a number
// survives the mix of its frame with a silent one.
func numbered(codec media.Codec, n int) []byte {
	p := make([]byte, media.FrameSamples)
	for i := range p {
		p[i] = codec.Silence()
	}
	p[0], p[1] = 0x20+byte(n%64), 0x20+byte(n/64%64)
	return p
}

func frameNumber(p []byte) int {
	if len(p) < 2 || p[0] < 0x20 || p[0] >= 0x60 || p[1] < 0x20 || p[1] >= 0x60 {
		return -1
	}
	return int(p[0]-0x20) + 64*int(p[1]-0x20)
}

type paced struct {
	leg *Leg
	out *stopwatch
	// arrival of frame n
	arrives func(n int) time.Duration
	silent  bool // sends silence, not numbers
	next    int
}

type timeline struct {
	t     *testing.T
	now   time.Duration
	room  *Room
	legs  []*paced
	polls func() time.Duration // the gap to the next poll
}

func newTimeline(t *testing.T) *timeline {
	return &timeline{t: t, room: New("call"), polls: func() time.Duration { return DefaultPoll }}
}

func (tl *timeline) join(role Role, mode Mode, arrives func(n int) time.Duration) *paced {
	p := &paced{out: &stopwatch{now: &tl.now, codec: media.PCMU}, arrives: arrives}
	p.leg = NewLeg(role.String(), role, media.PCMU, p.out, mode)
	if err := tl.room.Join(p.leg); err != nil {
		tl.t.Fatal(err)
	}
	tl.legs = append(tl.legs, p)
	return p
}

// run polls the room until the simulated clock reaches end, delivering every frame that
// arrived since the last poll first.
func (tl *timeline) run(end time.Duration) {
	for tl.now < end {
		tl.now += tl.polls()
		for _, p := range tl.legs {
			for at := p.arrives(p.next); at <= tl.now; at = p.arrives(p.next) {
				payload := numbered(media.PCMU, p.next)
				if p.silent {
					payload = numbered(media.PCMU, 0)
					payload[0], payload[1] = media.PCMU.Silence(), media.PCMU.Silence()
				}
				p.leg.PushAt(uint16(1000+p.next), uint32(p.next*media.FrameSamples), payload, epoch.Add(at))
				p.next++
			}
		}
		tl.room.Service(tl.now)
	}
}

// every returns a steady stream: frame n comes at phase + n periods, late by jitter(n).
func every(phase time.Duration, jitter func(n int) time.Duration) func(int) time.Duration {
	return func(n int) time.Duration {
		return phase + time.Duration(n)*media.FrameDuration + jitter(n)
	}
}

func steady(int) time.Duration { return 0 }

// A frame goes out takeMargin after its speaker's frames come, whatever their phase: not
// at a tick shared by the whole server, up to a period later.
func TestServiceSendsEachFrameAMarginAfterItCame(t *testing.T) {
	tl := newTimeline(t)
	customer := tl.join(Customer, "", every(3*time.Millisecond, steady))
	agent := tl.join(Agent, "", every(14500*time.Microsecond, steady))
	tl.run(3 * time.Second)

	for _, c := range []struct {
		name     string
		listener *paced
		speaker  *paced
	}{{"agent hearing the customer", agent, customer}, {"customer hearing the agent", customer, agent}} {
		got := c.listener.out.got
		checked := 0
		for i, s := range got {
			if s.at < arrivalSettle {
				continue // the grid is still being learnt
			}
			if s.n < 0 {
				t.Fatalf("%s: frame at %v is a gap in a steady stream", c.name, s.at)
			}
			delay := s.at - c.speaker.arrives(s.n)
			if delay < takeMargin || delay > takeMargin+DefaultPoll {
				t.Fatalf("%s: frame %d went out %v after it came, want %v to %v", c.name, s.n, delay, takeMargin, takeMargin+DefaultPoll)
			}
			if prev := got[i-1]; s.n != prev.n+1 || s.at-prev.at > media.FrameDuration+DefaultPoll || s.at-prev.at < media.FrameDuration-DefaultPoll {
				t.Fatalf("%s: frame %d at %v after frame %d at %v: want the next frame a period on", c.name, s.n, s.at, prev.n, prev.at)
			}
			checked++
		}
		if checked < 40 {
			t.Fatalf("%s: %d frames checked", c.name, checked)
		}
	}
}

// Jitter under the margin costs nothing; one frame far later than the rest is played as a
// gap, and the frames after it keep their short delay rather than all waiting a period
// more for one outlier.
func TestServiceAbsorbsJitterAndOneLateFrame(t *testing.T) {
	const late = 100
	rnd := rand.New(rand.NewPCG(1, 2))
	jitter := func(n int) time.Duration {
		if n == late {
			return 15 * time.Millisecond
		}
		return time.Duration(rnd.Int64N(int64(takeMargin - time.Millisecond)))
	}
	// Draw the jitter once per frame, so arrival(n) answers the same each time it is asked.
	drawn := map[int]time.Duration{}
	tl := newTimeline(t)
	customer := tl.join(Customer, "", every(7*time.Millisecond, func(n int) time.Duration {
		if _, ok := drawn[n]; !ok {
			drawn[n] = jitter(n)
		}
		return drawn[n]
	}))
	// The earliest arrival sets the grid: make frame 0 come on time.
	drawn[0] = 0
	agent := tl.join(Agent, "", every(0, steady))
	tl.run(4 * time.Second)

	gaps, seen := 0, map[int]bool{}
	for _, s := range agent.out.got {
		if s.at < arrivalSettle {
			continue
		}
		if s.n < 0 {
			gaps++
			continue
		}
		seen[s.n] = true
		if delay := s.at - customer.arrives(s.n) + drawn[s.n]; delay > takeMargin+DefaultPoll {
			t.Errorf("frame %d went out %v after its time, want at most %v", s.n, delay, takeMargin+DefaultPoll)
		}
	}
	if gaps != 1 || seen[late] {
		t.Errorf("%d gaps, frame %d played: %v; want the one late frame, and only it, played as a gap", gaps, late, seen[late])
	}
}

// With a supervisor whispering, the agent hears the customer and the whisper, and the
// supervisor hears the customer and the agent: each speaker's frames reach each listener
// once and in order, even when the clock's polls come late and unevenly, and whatever the
// phases of the speakers.
func TestServiceKeepsEveryFrameOnceWhenPollsAreLate(t *testing.T) {
	for _, phases := range [][3]time.Duration{{2, 3, 11}, {5, 2, 5}, {9, 18, 1}} {
		ms := time.Millisecond
		tl := newTimeline(t)
		rnd := rand.New(rand.NewPCG(3, 4))
		tl.polls = func() time.Duration {
			if rnd.IntN(20) == 0 {
				return time.Duration(rnd.Int64N(int64(3 * media.FrameDuration))) // a late poll
			}
			return DefaultPoll
		}
		customer := tl.join(Customer, "", every(phases[0]*ms, steady))
		customer.silent = true
		agent := tl.join(Agent, "", every(phases[1]*ms, steady))
		sup := tl.join(Supervisor, Whisper, every(phases[2]*ms, steady))
		tl.run(4 * time.Second)

		for _, c := range []struct {
			name     string
			listener *paced
		}{{"agent hearing the whisper", agent}, {"supervisor hearing the agent", sup}} {
			last, n := -1, 0
			for _, s := range c.listener.out.got {
				if s.at < arrivalSettle || s.n < 0 {
					continue
				}
				if last >= 0 && s.n != last+1 {
					t.Fatalf("phases %v: %s: frame %d after frame %d", phases, c.name, s.n, last)
				}
				last = s.n
				n++
			}
			if n < 80 {
				t.Fatalf("phases %v: %s: %d frames heard", phases, c.name, n)
			}
		}
	}
}

// When a speaker's path gets slower mid-call (its frames now come 7 ms later), the room
// follows without a gap: once while the frames still come within the margin, and again
// when the earlier arrivals age out of the leg's window and its grid moves.
func TestServiceFollowsAPathThatGetsSlower(t *testing.T) {
	tl := newTimeline(t)
	customer := tl.join(Customer, "", every(3*time.Millisecond, func(n int) time.Duration {
		if n >= 150 {
			return 7 * time.Millisecond
		}
		return 0
	}))
	agent := tl.join(Agent, "", every(0, steady))
	tl.run(35 * time.Second) // past two of the leg's 10 s windows

	last := -1
	for _, s := range agent.out.got {
		if s.at < arrivalSettle {
			continue
		}
		if s.n < 0 || (last >= 0 && s.n != last+1) {
			t.Fatalf("at %v the agent got frame %d after frame %d: want no gap", s.at, s.n, last)
		}
		if delay := s.at - customer.arrives(s.n); delay > takeMargin+DefaultPoll {
			t.Fatalf("frame %d went out %v after it came, want at most %v", s.n, delay, takeMargin+DefaultPoll)
		}
		last = s.n
	}
	if last < 1700 {
		t.Fatalf("the agent heard up to frame %d", last)
	}
}

// A speaker that pauses (silence suppression: its numbers run on, its frames stop coming
// for a while) is heard again with the same short delay from its second frame on (the
// first waits for the leg's old grid, up to a period): pauses are not taken for late
// frames, which would grow the delay a period a pause.
func TestServiceResumesAfterPausesWithoutAddedDelay(t *testing.T) {
	pause := func(n int) time.Duration { return time.Duration(n/100) * 210 * time.Millisecond }
	tl := newTimeline(t)
	customer := tl.join(Customer, "", every(5*time.Millisecond, pause))
	agent := tl.join(Agent, "", every(0, steady))
	tl.run(8 * time.Second)

	resumed := 0
	for _, s := range agent.out.got {
		if s.at < arrivalSettle || s.n < 0 {
			continue
		}
		if delay := s.at - customer.arrives(s.n); delay > media.FrameDuration+takeMargin || (s.n%100 > 0 && delay > takeMargin+DefaultPoll) {
			t.Fatalf("frame %d (after %d pauses) went out %v after it came, want at most %v", s.n, s.n/100, delay, takeMargin+DefaultPoll)
		}
		if s.n%100 == 5 {
			resumed++
		}
	}
	if resumed < 3 {
		t.Fatalf("heard the customer again after %d pauses, want 3 or more", resumed)
	}
}
