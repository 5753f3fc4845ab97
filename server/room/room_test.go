package room

import (
	"fmt"
	"testing"

	"ringside/media"
)

// tape is a FrameWriter that keeps what a leg was sent, decoded.
type tape struct {
	codec media.Codec
	pcm   []int16
	keep  bool
	n     int
}

func (t *tape) WriteFrame(p []byte) error {
	t.n++
	if t.keep {
		frame := make([]int16, len(p))
		t.codec.Decode(frame, p)
		t.pcm = append(t.pcm, frame...)
	}
	return nil
}

// talker feeds a leg one frame of its tone per tick, as its socket would.
type talker struct {
	leg  *Leg
	tone *media.Tone
	seq  uint16
	ts   uint32
	pcm  [media.FrameSamples]int16
	enc  [media.FrameSamples]byte
}

func (k *talker) speak() {
	k.tone.Fill(k.pcm[:])
	k.leg.Codec.Encode(k.enc[:], k.pcm[:])
	k.leg.Push(k.seq, k.ts, k.enc[:])
	k.seq++
	k.ts += media.FrameSamples
}

type party struct {
	*talker
	out *tape
}

func join(t testing.TB, r *Room, role Role, codec media.Codec, hz float64, mode Mode, keep bool) party {
	out := &tape{codec: codec, keep: keep}
	l := NewLeg(fmt.Sprint(role, hz), role, codec, out, mode)
	if err := r.Join(l); err != nil {
		t.Fatal(err)
	}
	return party{talker: &talker{leg: l, tone: media.NewTone(hz, 0.3)}, out: out}
}

func run(r *Room, ticks int, ps ...party) {
	for range ticks {
		for _, p := range ps {
			p.speak()
		}
		r.Tick()
	}
}

// heard returns the level of each tone in what the party received after the first 5 ticks.
func heard(p party, tones ...float64) map[float64]float64 {
	pcm := p.out.pcm[5*media.FrameSamples:]
	out := map[float64]float64{}
	for _, hz := range tones {
		out[hz] = media.ToneLevelDB(pcm, hz)
	}
	return out
}

const (
	cHz, aHz, s1Hz, s2Hz = 440, 1000, 2300, 1700
)

func TestHearingMatrix(t *testing.T) {
	cases := []struct {
		name       string
		s1, s2     Mode
		customer   []float64
		agent      []float64
		supervisor []float64 // what s1 hears
	}{
		{"listen", Listen, Listen, []float64{aHz}, []float64{cHz}, []float64{cHz, aHz}},
		{"whisper", Whisper, Listen, []float64{aHz}, []float64{cHz, s1Hz}, []float64{cHz, aHz}},
		{"barge", Barge, Listen, []float64{aHz, s1Hz}, []float64{cHz, s1Hz}, []float64{cHz, aHz}},
		{"whisper+whisper", Whisper, Whisper, []float64{aHz}, []float64{cHz, s1Hz, s2Hz}, []float64{cHz, aHz, s2Hz}},
		{"listen+barge", Listen, Barge, []float64{aHz, s2Hz}, []float64{cHz, s2Hz}, []float64{cHz, aHz, s2Hz}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := New("call")
			c := join(t, r, Customer, media.PCMU, cHz, "", true)
			a := join(t, r, Agent, media.PCMA, aHz, "", true)
			s1 := join(t, r, Supervisor, media.PCMU, s1Hz, tc.s1, true)
			s2 := join(t, r, Supervisor, media.PCMU, s2Hz, tc.s2, true)
			run(r, 50, c, a, s1, s2)
			check(t, "customer", heard(c, cHz, aHz, s1Hz, s2Hz), tc.customer)
			check(t, "agent", heard(a, cHz, aHz, s1Hz, s2Hz), tc.agent)
			check(t, "supervisor", heard(s1, cHz, aHz, s1Hz, s2Hz), tc.supervisor)
		})
	}
}

func check(t *testing.T, who string, lv map[float64]float64, want []float64) {
	t.Helper()
	for hz, db := range lv {
		should := false
		for _, w := range want {
			should = should || w == hz
		}
		switch {
		case should && db < -20:
			t.Errorf("%s should hear %v Hz, level %.1f dB", who, hz, db)
		case !should && db > -50: // 40 dB under a heard tone (about -10 dB)
			t.Errorf("%s must not hear %v Hz, level %.1f dB", who, hz, db)
		}
	}
}

// A whisper must never reach the customer, whatever order modes change in.
func TestWhisperNeverReachesCustomerAcrossSwitches(t *testing.T) {
	r := New("call")
	c := join(t, r, Customer, media.PCMU, cHz, "", false)
	a := join(t, r, Agent, media.PCMU, aHz, "", false)
	s := join(t, r, Supervisor, media.PCMU, s1Hz, Listen, false)
	for _, m := range []Mode{Whisper, Listen, Whisper, Barge, Whisper, Listen, Barge, Listen} {
		s.leg.SetMode(m)
		c.out.pcm, c.out.keep = nil, true
		run(r, 10, c, a, s)
		lv := media.ToneLevelDB(c.out.pcm, s1Hz)
		if m != Barge && lv > -55 {
			t.Fatalf("after switching to %s the customer hears the supervisor at %.1f dB", m, lv)
		}
		if m == Barge && lv < -20 {
			t.Fatalf("in barge the customer does not hear the supervisor (%.1f dB)", lv)
		}
	}
}

func TestJoinRefusesASecondAgent(t *testing.T) {
	r := New("call")
	join(t, r, Agent, media.PCMU, aHz, "", false)
	if err := r.Join(NewLeg("x", Agent, media.PCMU, &tape{}, "")); err != ErrFull {
		t.Fatalf("second agent: %v, want ErrFull", err)
	}
}

func TestHeldLegIsSentNothing(t *testing.T) {
	r := New("call")
	c := join(t, r, Customer, media.PCMU, cHz, "", false)
	a := join(t, r, Agent, media.PCMU, aHz, "", false)
	a.leg.SetReceiving(false)
	run(r, 10, c, a)
	if a.out.n != 0 || c.out.n != 10 {
		t.Fatalf("held agent got %d frames, customer %d", a.out.n, c.out.n)
	}
}

func TestTickDoesNotAllocate(t *testing.T) {
	for _, n := range []int{0, 1, 3} {
		r := New("call")
		c := join(t, r, Customer, media.PCMU, cHz, "", false)
		a := join(t, r, Agent, media.PCMU, aHz, "", false)
		ps := []party{c, a}
		for range n {
			ps = append(ps, join(t, r, Supervisor, media.PCMU, s1Hz, Whisper, false))
		}
		run(r, 5, ps...)
		if allocs := testing.AllocsPerRun(200, func() { run(r, 1, ps...) }); allocs != 0 {
			t.Errorf("%d supervisors: %.1f allocations per tick", n, allocs)
		}
	}
}

// Benchmarks: one 20 ms tick of one call, frames already in the jitter buffers.
func benchTick(b *testing.B, modes ...Mode) {
	r := New("call")
	c := join(b, r, Customer, media.PCMU, cHz, "", false)
	a := join(b, r, Agent, media.PCMU, aHz, "", false)
	ps := []party{c, a}
	for _, m := range modes {
		ps = append(ps, join(b, r, Supervisor, media.PCMU, s1Hz, m, false))
	}
	run(r, 5, ps...)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for _, p := range ps {
			p.leg.Push(p.seq, p.ts, p.enc[:])
			p.seq++
			p.ts += media.FrameSamples
		}
		r.Tick()
	}
}

func BenchmarkTickUnmonitored(b *testing.B) { benchTick(b) }
func BenchmarkTickMonitored(b *testing.B)   { benchTick(b, Listen) }
func BenchmarkTickWhispered(b *testing.B)   { benchTick(b, Whisper) }
func BenchmarkTickTwoSupervisors(b *testing.B) {
	benchTick(b, Whisper, Listen)
}

// levelTape is a supervisor's writer that also takes RFC 6465 levels.
type levelTape struct {
	tape
	csrc   []uint32
	levels []uint8
}

func (t *levelTape) WriteFrameLevels(p []byte, csrc []uint32, levels []uint8) error {
	t.csrc, t.levels = append(t.csrc[:0], csrc...), append(t.levels[:0], levels...)
	return t.WriteFrame(p)
}

func TestSupervisorGetsCustomerAndAgentLevels(t *testing.T) {
	r := New("call")
	c := join(t, r, Customer, media.PCMU, cHz, "", false)
	a := join(t, r, Agent, media.PCMU, aHz, "", false)
	out := &levelTape{tape: tape{codec: media.PCMU}}
	s := NewLeg("sup", Supervisor, media.PCMU, out, Listen)
	if err := r.Join(s); err != nil {
		t.Fatal(err)
	}
	run(r, 10, c, a) // the agent talks
	if len(out.levels) != 2 || out.levels[0] > 20 || out.levels[1] > 20 {
		t.Fatalf("levels with both talking: %v", out.levels)
	}
	if out.csrc[0] != c.leg.csrc || out.csrc[1] != a.leg.csrc {
		t.Fatalf("CSRCs %v are not customer, agent", out.csrc)
	}
	run(r, 10, c) // the agent goes quiet
	if out.levels[0] > 20 || out.levels[1] != media.SilentLevel {
		t.Fatalf("levels with only the customer talking: %v", out.levels)
	}
}

// Audio a supervisor spoke while whispering, still waiting in its jitter buffer, must not
// reach the customer once the supervisor barges.
func TestBufferedWhisperIsNotPlayedAfterBarge(t *testing.T) {
	r := New("call")
	c := join(t, r, Customer, media.PCMU, cHz, "", true)
	a := join(t, r, Agent, media.PCMU, aHz, "", false)
	s := join(t, r, Supervisor, media.PCMU, s1Hz, Whisper, false)
	run(r, 10, c, a, s)
	for range 8 { // a burst of whisper arrives
		s.speak()
	}
	s.leg.SetMode(Barge)
	c.out.pcm = nil
	run(r, 8, c, a) // the supervisor says nothing more
	if lv := media.ToneLevelDB(c.out.pcm, s1Hz); lv > -50 {
		t.Fatalf("the customer heard buffered whisper after the switch to barge: %.1f dB", lv)
	}
}

// inbox is a leg's endpoint as the room sees it: frames wait in it until the room drains
// it (Receive), as they wait in the socket.
type inbox struct {
	tape
	leg      *Leg
	pending  int
	receives int
	seq      uint16
}

func (b *inbox) Receive() {
	b.receives++
	var frame [media.FrameSamples]byte
	for ; b.pending > 0; b.pending-- {
		b.leg.Push(b.seq, uint32(b.seq)*media.FrameSamples, frame[:])
		b.seq++
	}
}

// Every tick drains every leg's receiver before taking its frame; a supervisor becoming
// audible has its receiver drained at the next frame, and what was there dropped with the
// rest of its buffer, not played.
func TestTickDrainsReceivers(t *testing.T) {
	r := New("r")
	var boxes []*inbox
	for _, role := range []Role{Customer, Agent, Supervisor} {
		b := &inbox{tape: tape{codec: media.PCMU}}
		b.leg = NewLeg(role.String(), role, media.PCMU, b, Listen)
		if err := r.Join(b.leg); err != nil {
			t.Fatal(err)
		}
		boxes = append(boxes, b)
	}
	for range 3 {
		for _, b := range boxes {
			b.pending = 1
		}
		r.Tick()
	}
	for _, b := range boxes {
		if b.receives != 3 || b.pending != 0 {
			t.Fatalf("%s: %d drains, %d frames left; want 3 and 0", b.leg.ID, b.receives, b.pending)
		}
		if st := b.leg.JitterStats(); st.Pushed != 3 || st.Popped == 0 {
			t.Fatalf("%s: frames drained before the pop: %+v", b.leg.ID, st)
		}
	}
	sup := boxes[2]
	sup.pending = 2 // spoken in listen, not yet drained
	before := sup.leg.JitterStats()
	sup.leg.SetMode(Whisper)
	r.Tick()
	st := sup.leg.JitterStats()
	if sup.pending != 0 || st.Pushed != before.Pushed+2 || st.Dropped < before.Dropped+2 || st.Popped != before.Popped {
		t.Fatalf("switch to whisper: %d left in the socket, stats %+v (before %+v)", sup.pending, st, before)
	}
}
