// Package room is the heart of Ringside: one Room per call holds the customer leg, the
// agent leg and any number of supervisor legs, and every 20 ms sends each listener
// exactly the sources the hearing matrix lets it hear. It knows nothing of SIP or sockets:
// legs take encoded frames in (Push) and give them out through a FrameWriter.
package room

import (
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"ringside/media"
)

// Role of a leg in the room.
type Role uint8

const (
	Customer Role = iota
	Agent
	Supervisor
)

func (r Role) String() string {
	switch r {
	case Customer:
		return "customer"
	case Agent:
		return "agent"
	}
	return "supervisor"
}

// Hears is the hearing matrix: whether a listener hears a source. A leg never hears itself;
// callers pass distinct legs.
//
//	customer   hears agent + supervisors in barge
//	agent      hears customer + supervisors in whisper or barge
//	supervisor hears customer + agent + other supervisors in whisper or barge
func Hears(listener Role, source Role, sourceMode Mode) bool {
	if source != Supervisor {
		return listener != source
	}
	if listener == Customer {
		return sourceMode == Barge
	}
	return sourceMode.Talks()
}

// FrameWriter sends one encoded 20 ms frame to a leg's peer. The implementation owns the
// outgoing stream (SSRC, sequence numbers, timestamps), so the room changing how it builds
// frames never shows on the wire.
type FrameWriter interface {
	WriteFrame(payload []byte) error
}

// LevelWriter is a FrameWriter that can also tell its listener how loud each mixed source
// is (RFC 6465). Supervisors' legs get the customer's and the agent's levels, in that order,
// so their softphone shows two meters from one mixed stream.
type LevelWriter interface {
	WriteFrameLevels(payload []byte, csrc []uint32, levels []uint8) error
}

// Receiver is a leg's inbound side when nothing else reads it: the room drains it on the
// clock's goroutine right before taking the leg's frame from its jitter buffer, so no
// goroutine waits per leg. Receive must not block. A FrameWriter that
// is also a Receiver (the leg's RTP endpoint) is drained this way.
type Receiver interface {
	Receive()
}

// SharedReceiver is a Receiver on a socket it shares with other legs, drained every poll
// for all of them by the clock shard's ShardIO: the room skips it (Receive would drain the
// whole socket again), and only SetMode calls it.
type SharedReceiver interface {
	Receiver
	SharedSocket() bool
}

// ErrFull is returned when a room already has the leg a role allows only once.
var ErrFull = errors.New("room already has that leg")

// Leg is one party's audio in a room.
type Leg struct {
	ID    string
	Role  Role
	Codec media.Codec

	out       FrameWriter
	levelOut  LevelWriter // out, when it carries levels
	in        Receiver    // out, when it is one (SetMode drains it)
	tickIn    Receiver    // in, when the room drains it (not a shared socket)
	csrc      uint32      // names this leg as a contributing source
	jitter    *media.JitterBuffer
	mode      atomic.Value // Mode, supervisors only
	receiving atomic.Bool  // false while the peer put us on hold (sendonly/inactive): send nothing
	flush     atomic.Bool  // SetMode made the leg heard by more: drop what it said before
	lastHeard atomic.Int64 // unix nanos of the last frame pushed

	// The leg's frame of this period and the pace it is taken at, touched only by the
	// room's clock.
	raw     [media.FrameSamples * 2]byte
	rawLen  int
	has     bool // a whole frame was taken
	said    Mode // a supervisor's mode when its frame was taken
	decoded bool // pcm holds raw decoded
	leveled bool // level is raw's
	level   uint8
	pcm     [media.FrameSamples]int16
	enc     [media.FrameSamples]byte
	took    bool          // the frame was taken in this step of Service
	paced   bool          // due is set
	due     time.Duration // when the next frame is taken, on the clock's timeline
	onGrid  bool          // due is on grid
	grid    time.Duration // the leg's grid (arrivals.earliest) that due is on

	arrivals arrivals // when the leg's frames come
}

// legJitter plays every inbound leg's frame as soon as it is taken (takeMargin after it
// came) and grows, one frame at a time up to 80 ms, only on a link that proves jittery;
// it steps back down after 2 s of frames on time, so a burst of lateness (a busy moment
// of the machine or the network) does not cost the call its short delay for long.
var legJitter = media.JitterConfig{Depth: 1, MaxDepth: 4, Capacity: 16, Shrink: 100}

// NewLeg makes a leg; mode matters for supervisors only.
func NewLeg(id string, role Role, codec media.Codec, out FrameWriter, mode Mode) *Leg {
	l := &Leg{ID: id, Role: role, Codec: codec, out: out, csrc: rand.Uint32(), jitter: media.NewJitterBuffer(legJitter)}
	l.levelOut, _ = out.(LevelWriter)
	l.in, _ = out.(Receiver)
	l.tickIn = l.in
	if s, ok := out.(SharedReceiver); ok && s.SharedSocket() {
		l.tickIn = nil
	}
	if mode == "" {
		mode = Listen
	}
	l.mode.Store(mode)
	l.receiving.Store(true)
	l.lastHeard.Store(time.Now().UnixNano())
	return l
}

// Push hands the leg one inbound audio frame that arrived just now (tests and tools).
func (l *Leg) Push(seq uint16, ts uint32, payload []byte) { l.PushAt(seq, ts, payload, time.Now()) }

// PushAt hands the leg one inbound audio frame (from its socket's drain) that arrived at
// at: the leg's frames are taken a margin after they come.
func (l *Leg) PushAt(seq uint16, ts uint32, payload []byte, at time.Time) {
	l.lastHeard.Store(time.Now().UnixNano())
	if l.jitter.Push(seq, ts, payload) {
		l.arrivals.add(seq, at.Sub(epoch))
	}
}

// Heard marks the leg alive without audio (RTCP, telephone-event, comfort noise).
func (l *Leg) Heard() { l.lastHeard.Store(time.Now().UnixNano()) }

// LastHeard is when the leg last sent anything.
func (l *Leg) LastHeard() time.Time { return time.Unix(0, l.lastHeard.Load()) }

// Mode of a supervisor leg.
func (l *Leg) Mode() Mode { return l.mode.Load().(Mode) }

// SetMode switches a supervisor leg; it takes effect with the next frame. When the leg
// becomes audible to more people, audio it spoke under the old mode and still waiting in
// its jitter buffer is dropped: what was said in listen (or whisper) must never be played
// out to the agent (or the customer) after the switch. That includes audio that has
// arrived but still waits in the leg's socket. The room's clock drops it (take), so no
// frame can be taken between the switch and the drop: flush is raised before the mode
// changes, and take reads the mode before it looks at flush.
func (l *Leg) SetMode(m Mode) {
	if old := l.Mode(); (m == Barge && old != Barge) || (m.Talks() && !old.Talks()) {
		l.flush.Store(true)
	}
	l.mode.Store(m)
}

// SetReceiving stops (false) or resumes sending audio to the leg, for hold.
func (l *Leg) SetReceiving(on bool) { l.receiving.Store(on) }

// JitterStats of the leg's inbound buffer.
func (l *Leg) JitterStats() media.JitterStats { return l.jitter.Stats() }

// Room is one call's mixing point. Legs are held in an immutable slice swapped on join and
// leave, so the clock reads them without a lock.
type Room struct {
	ID string

	mu   sync.Mutex // serialises Join/Leave
	legs atomic.Pointer[[]*Leg]

	// Clock only: when Service next has work, for which legs (Join and Leave store a
	// new slice).
	wake time.Duration
	seen *[]*Leg
	// serving is held by the goroutine servicing the room: its shard's, or another shard's
	// rescuing it. due is wake, for the clock's goroutines that don't hold serving.
	serving sync.Mutex
	due     atomic.Int64

	// Scratch of the clock.
	sum    [media.FrameSamples]int32
	csrc   [2]uint32 // customer, agent
	levels [2]uint8
}

// New returns an empty room.
func New(id string) *Room {
	r := &Room{ID: id}
	r.legs.Store(&[]*Leg{})
	return r
}

// Join adds a leg. A room takes one customer and one agent, any number of supervisors.
func (r *Room) Join(l *Leg) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.legs.Load()
	if l.Role != Supervisor {
		for _, o := range old {
			if o.Role == l.Role {
				return ErrFull
			}
		}
	}
	legs := make([]*Leg, 0, len(old)+1)
	legs = append(append(legs, old...), l)
	r.legs.Store(&legs)
	return nil
}

// Leave removes a leg; unknown legs are ignored.
func (r *Room) Leave(l *Leg) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.legs.Load()
	legs := make([]*Leg, 0, len(old))
	for _, o := range old {
		if o != l {
			legs = append(legs, o)
		}
	}
	r.legs.Store(&legs)
}

// Legs returns the current legs (do not modify the slice).
func (r *Room) Legs() []*Leg { return *r.legs.Load() }

// Pacing. A room used to take every leg's frame at one shared 20 ms tick, so a frame
// waited for the tick half a period on average and a whole one at worst. Now each party's
// frame is taken on the party's own 20 ms grid, placed a margin after its frames arrive
// (by the kernel's stamp), and a listener's frame goes out the moment the frame of the
// party it mainly hears is taken: the customer's for the agent and for supervisors, the
// agent's for the customer. Output stays on a steady 20 ms grid, so the receiving phone's
// jitter buffer sees no jitter of the sender's; the other sources of a mix (the whisper,
// the agent for a supervisor) wait up to a period.
const (
	// takeMargin is how long after its frames come at the earliest a leg's frame is
	// taken: jitter up to it costs nothing; a frame later still is a late one, which the
	// jitter buffer conceals and, if it recurs, grows for.
	takeMargin = 8 * time.Millisecond
	// maxCatchUp bounds the frames a room's legs take in one Service, about this many a
	// leg, when the clock fell behind; beyond it the rest are skipped (the machine was
	// suspended).
	maxCatchUp = 10
)

// epoch starts the rooms' timeline: Service's now and arrival times count from it.
var epoch = time.Now()

// Service takes every party's frame that is due, with the supervisors' frames alongside
// the customer's, and sends each listener its frame as soon as the frame of the party it
// mainly hears is taken. The clock calls it every poll, from one goroutine at a time,
// with the time since epoch.
func (r *Room) Service(now time.Duration) {
	lp := r.legs.Load()
	if now < r.wake && lp == r.seen {
		return // nothing due yet, no leg joined or left
	}
	legs := *lp
	customer, agent := parties(legs)
	lead := customer
	if lead == nil {
		lead = agent
	}
	// Frames are taken one at a time, earliest due first, each followed by what its
	// listeners are owed: after a late poll the room catches up in the order it would have
	// gone, so a listener hearing two parties gets each one's frames once and in turn.
	for range maxCatchUp * len(legs) {
		var l *Leg
		for _, o := range legs {
			o.took = false
			if o.Role == Supervisor && lead != nil {
				continue // taken with the lead party
			}
			if !o.paced {
				o.paced, o.due = true, now
			}
			if o.due <= now && (l == nil || o.due < l.due) {
				l = o
			}
		}
		if l == nil {
			break
		}
		l.receive()
		l.take()
		l.took = true
		l.due = l.next()
		if l == lead {
			for _, s := range legs {
				if s.Role == Supervisor {
					s.receive()
					s.take()
					// Paced afresh from whenever the room has no party left to lead it.
					s.took, s.paced = true, false
				}
			}
		}
		for _, x := range legs {
			if primary(x, customer, agent).took {
				r.emit(x, legs, customer, agent)
			}
		}
	}
	r.wake, r.seen = now+media.FrameDuration, lp
	for _, l := range legs {
		if l.Role != Supervisor || lead == nil {
			for l.due <= now { // still behind after catching up: skip on (a suspended machine)
				l.due += media.FrameDuration
			}
			r.wake = min(r.wake, l.due)
		}
	}
	r.due.Store(int64(r.wake))
}

// tryService services the room unless another goroutine is at it: the clock's shard and
// one rescuing it never wait for each other.
func (r *Room) tryService(now time.Duration) {
	if r.serving.TryLock() {
		r.Service(now)
		r.serving.Unlock()
	}
}

// receive drains the leg's own socket, if the room is what reads it.
func (l *Leg) receive() {
	if l.tickIn != nil {
		l.tickIn.Receive()
	}
}

// next is when the leg's next frame is due: one period on, moved onto the leg's grid
// (takeMargin after its frames come) once it has one.
func (l *Leg) next() time.Duration {
	d := l.due + media.FrameDuration
	e, ok := l.arrivals.earliest()
	if !ok {
		return d
	}
	if l.onGrid {
		if move := e - l.grid; move > -media.FrameDuration/2 && move < media.FrameDuration/2 {
			// The grid moved (a path got slower or faster, a sender's clock drifts):
			// the leg's frames come that much later or earlier, and so are taken.
			l.grid = e
			return d + move
		}
	}
	// A grid found (the stream's first frames, or a new stream): the grid point at most
	// 15 ms before one period on, or else up to 5 ms after it. Earlier is the rule: by
	// that point the frame for it has come, so taking it then keeps the jitter buffer
	// from holding a frame more.
	l.onGrid, l.grid = true, e
	off := (d - e - takeMargin) % media.FrameDuration
	if off < 0 {
		off += media.FrameDuration
	}
	if off <= 15*time.Millisecond {
		return d - off
	}
	return d + media.FrameDuration - off
}

// arrivals learns when a leg's frames come: the earliest arrival of a frame, less a period
// per frame since the stream's first, over the last 10 to 20 s (so a sender's clock drift
// is followed, and an early outlier forgotten).
type arrivals struct {
	mu        sync.Mutex // Push runs on the clock, but also where SetMode drains
	started   bool
	last      uint16        // highest sequence number seen
	n         int64         // frames from the stream's first to last
	cur, prev time.Duration // earliest offset in this window and the one before
	ends      time.Duration // of this window
	grid      time.Duration // the earliest offset in use
	settled   time.Duration // from then on the grid moves only for a real change
}

const (
	arrivalWindow = 10 * time.Second
	// Once a stream has settled (arrivalSettle), its grid moves only when its frames
	// come gridTolerance earlier or later than before (a sender's clock drifting): every
	// move shifts what the leg's listeners are sent.
	arrivalSettle = 2 * time.Second
	gridTolerance = 2 * time.Millisecond
	// arrivalResync: frames this much later than the earliest mean the stream paused
	// (hold) or restarted with its numbers running on: learn it afresh.
	arrivalResync = 200 * time.Millisecond
	maxSeqJump    = 100
)

func (a *arrivals) add(seq uint16, at time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	d := int64(int16(seq - a.last))
	if !a.started || d > maxSeqJump || d < -maxSeqJump {
		a.restart(seq, at)
		return
	}
	n := a.n + d
	if d > 0 {
		a.last, a.n = seq, n
	}
	o := at - time.Duration(n)*media.FrameDuration
	if o-min(a.cur, a.prev) > arrivalResync {
		a.restart(seq, at)
		return
	}
	if at >= a.ends {
		a.prev, a.cur, a.ends = a.cur, o, at+arrivalWindow
	} else {
		a.cur = min(a.cur, o)
	}
	if e := min(a.cur, a.prev); at < a.settled || e < a.grid-gridTolerance || e > a.grid+gridTolerance {
		a.grid = e
	}
}

func (a *arrivals) restart(seq uint16, at time.Duration) {
	a.started, a.last, a.n = true, seq, 0
	a.cur, a.prev, a.ends = at, at, at+arrivalWindow
	a.grid, a.settled = at, at+arrivalSettle
}

// earliest is when, give or take whole periods, the leg's frames come at the earliest.
func (a *arrivals) earliest() (time.Duration, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.grid, a.started
}

// take takes the leg's frame of this period from its jitter buffer.
func (l *Leg) take() {
	l.said = ""
	if l.Role == Supervisor {
		l.said = l.Mode()
	}
	if l.flush.Swap(false) {
		// The leg was switched to be heard by more: drop what it said before.
		if l.in != nil {
			l.in.Receive()
		}
		l.jitter.Reset()
	}
	l.rawLen, l.has = l.jitter.Pop(l.raw[:])
	l.has = l.has && l.rawLen == media.FrameSamples
	l.decoded, l.leveled = false, false
}

// Tick runs one 20 ms period at once: take one frame from every leg's jitter buffer, then
// write to every leg what it hears. For tests and tools that drive a room by hand; the
// clock calls Service. One goroutine at a time.
func (r *Room) Tick() {
	legs := *r.legs.Load()
	customer, agent := parties(legs)
	for _, l := range legs {
		l.receive()
		l.take()
	}
	for _, x := range legs {
		r.emit(x, legs, customer, agent)
	}
}

func parties(legs []*Leg) (customer, agent *Leg) {
	for _, l := range legs {
		switch l.Role {
		case Customer:
			customer = l
		case Agent:
			agent = l
		}
	}
	return customer, agent
}

// primary is the leg whose frame sets when x's frame goes out: the one x mainly hears.
func primary(x, customer, agent *Leg) *Leg {
	switch {
	case x != customer && customer != nil:
		return customer
	case x != agent && agent != nil:
		return agent
	}
	return x
}

// hears reports whether l hears src's frame of this period. A supervisor's frame
// is heard only if its mode lets it be both when it was spoken and now: audio spoken in
// listen is never played out after a switch to whisper, nor whisper after a switch back.
func (l *Leg) hears(src *Leg) bool {
	if src == l || !src.has {
		return false
	}
	if src.Role != Supervisor {
		return Hears(l.Role, src.Role, "")
	}
	return Hears(l.Role, Supervisor, src.said) && Hears(l.Role, Supervisor, src.Mode())
}

// emit writes to x what it hears: silence, the one frame it hears as it came (G.711
// round-trips exactly, so an unmonitored call is relayed undecoded), or the mix, each
// source decoded once a period however many listeners hear it.
func (r *Room) emit(x *Leg, legs []*Leg, customer, agent *Leg) {
	if !x.receiving.Load() {
		return
	}
	var first *Leg
	n := 0
	for _, src := range legs {
		if x.hears(src) {
			if n == 0 {
				first = src
			}
			n++
		}
	}
	switch {
	case n == 0:
		silence(x)
	case n == 1 && first.Codec == x.Codec:
		r.write(x, first.raw[:first.rawLen], customer, agent)
	default:
		clear(r.sum[:])
		for _, src := range legs {
			if x.hears(src) {
				for i, v := range src.decode() {
					r.sum[i] += int32(v)
				}
			}
		}
		var pcm [media.FrameSamples]int16
		for i, v := range r.sum {
			pcm[i] = clip16(v)
		}
		x.Codec.Encode(x.enc[:], pcm[:])
		r.write(x, x.enc[:], customer, agent)
	}
}

func (l *Leg) decode() []int16 {
	if !l.decoded {
		l.Codec.Decode(l.pcm[:], l.raw[:l.rawLen])
		l.decoded = true
	}
	return l.pcm[:]
}

// audioLevel of the leg's frame of this period (RFC 6465), silent when it has none.
func (l *Leg) audioLevel() uint8 {
	if !l.leveled {
		l.level = media.SilentLevel
		if l.has {
			l.level = media.AudioLevel(l.decode())
		}
		l.leveled = true
	}
	return l.level
}

func silence(to *Leg) {
	s := to.Codec.Silence()
	for i := range to.enc {
		to.enc[i] = s
	}
	to.out.WriteFrame(to.enc[:])
}

// write sends a frame, with the customer's and agent's levels to supervisors (levels cost
// a square root and a logarithm per source: only for those who show them).
func (r *Room) write(l *Leg, frame []byte, customer, agent *Leg) {
	if l.Role == Supervisor && l.levelOut != nil {
		for i, p := range [2]*Leg{customer, agent} {
			r.csrc[i], r.levels[i] = 0, media.SilentLevel
			if p != nil {
				r.csrc[i], r.levels[i] = p.csrc, p.audioLevel()
			}
		}
		l.levelOut.WriteFrameLevels(frame, r.csrc[:], r.levels[:])
		return
	}
	l.out.WriteFrame(frame)
}

func clip16(s int32) int16 {
	if s > 32767 {
		return 32767
	}
	if s < -32768 {
		return -32768
	}
	return int16(s)
}
