// Package room is the heart of Ringside: one Room per call holds the customer leg, the
// agent leg and any number of supervisor legs, and every 20 ms mixes for each listener
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

// Receiver is a leg's inbound side when nothing else reads it: the room drains it at the
// start of every tick, on the clock's goroutine, before taking the leg's frame from its
// jitter buffer, so no goroutine waits per leg. Receive must not block. A FrameWriter that
// is also a Receiver (the leg's RTP endpoint) is drained this way.
type Receiver interface {
	Receive()
}

// SharedReceiver is a Receiver on a socket it shares with other legs, drained once a tick
// for all of them by the clock shard's ShardIO: the room's tick skips it (Receive would
// drain the whole socket again), and only SetMode calls it.
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
	tickIn    Receiver    // in, when the room's tick drains it (not a shared socket)
	csrc      uint32      // names this leg as a contributing source
	jitter    *media.JitterBuffer
	mode      atomic.Value // Mode, supervisors only
	receiving atomic.Bool  // false while the peer put us on hold (sendonly/inactive): send nothing
	lastHeard atomic.Int64 // unix nanos of the last frame pushed

	// Per-tick scratch, touched only by the room's clock.
	raw    [media.FrameSamples * 2]byte
	rawLen int
	has    bool
	talks  bool
	now    Mode // the leg's mode for this tick, read once
	level  uint8
	pcm    [media.FrameSamples]int16
	enc    [media.FrameSamples]byte
}

// legJitter starts every inbound leg at one frame of buffering (20 ms added latency) and
// lets it grow, one frame at a time up to 80 ms, only on a link that proves jittery.
var legJitter = media.JitterConfig{Depth: 1, MaxDepth: 4, Capacity: 16}

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

// Push hands the leg one inbound audio frame (from its socket's drain).
func (l *Leg) Push(seq uint16, ts uint32, payload []byte) {
	l.lastHeard.Store(time.Now().UnixNano())
	l.jitter.Push(seq, ts, payload)
}

// Heard marks the leg alive without audio (RTCP, telephone-event, comfort noise).
func (l *Leg) Heard() { l.lastHeard.Store(time.Now().UnixNano()) }

// LastHeard is when the leg last sent anything.
func (l *Leg) LastHeard() time.Time { return time.Unix(0, l.lastHeard.Load()) }

// Mode of a supervisor leg.
func (l *Leg) Mode() Mode { return l.mode.Load().(Mode) }

// SetMode switches a supervisor leg; it takes effect at the next tick. When the leg
// becomes audible to more people, audio it spoke under the old mode and still waiting in
// its jitter buffer is dropped: what was said in listen (or whisper) must never be played
// out to the agent (or the customer) after the switch. That includes audio that has
// arrived but still waits in the leg's socket for the next tick's drain: it is drained
// here, then dropped with the rest.
func (l *Leg) SetMode(m Mode) {
	old := l.mode.Swap(m).(Mode)
	if (m == Barge && old != Barge) || (m.Talks() && !old.Talks()) {
		if l.in != nil {
			l.in.Receive()
		}
		l.jitter.Reset()
	}
}

// SetReceiving stops (false) or resumes sending audio to the leg, for hold.
func (l *Leg) SetReceiving(on bool) { l.receiving.Store(on) }

// JitterStats of the leg's inbound buffer.
func (l *Leg) JitterStats() media.JitterStats { return l.jitter.Stats() }

// Room is one call's mixing point. Legs are held in an immutable slice swapped on join and
// leave, so the tick reads them without a lock.
type Room struct {
	ID string

	mu   sync.Mutex // serialises Join/Leave
	legs atomic.Pointer[[]*Leg]

	// Scratch of the tick.
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

// Tick runs one 20 ms period: take one frame from every leg's jitter buffer, then write to
// every leg what it hears. It must be called by one goroutine at a time (the clock).
func (r *Room) Tick() {
	legs := *r.legs.Load()
	var customer, agent *Leg
	supervisors := 0
	for _, l := range legs {
		if l.tickIn != nil {
			l.tickIn.Receive()
		}
		l.rawLen, l.has = l.jitter.Pop(l.raw[:])
		switch l.Role {
		case Customer:
			customer = l
		case Agent:
			agent = l
		default:
			supervisors++
		}
	}
	if supervisors == 0 && customer != nil && agent != nil && customer.Codec == agent.Codec {
		r.relay(customer, agent)
		return
	}
	r.mix(legs)
}

// relay forwards an unmonitored call's frames without decoding.
func (r *Room) relay(c, a *Leg) {
	forward(c, a)
	forward(a, c)
}

func forward(from, to *Leg) {
	if !to.receiving.Load() {
		return
	}
	if from.has && from.rawLen == media.FrameSamples {
		to.out.WriteFrame(from.raw[:from.rawLen])
		return
	}
	silence(to)
}

func silence(to *Leg) {
	s := to.Codec.Silence()
	for i := range to.enc {
		to.enc[i] = s
	}
	to.out.WriteFrame(to.enc[:])
}

// mix decodes every heard frame once, then sums for each listener the sources it hears and
// encodes once per listener.
func (r *Room) mix(legs []*Leg) {
	// Decode once. A supervisor in listen is never heard: its frame is dropped undecoded.
	// Levels cost a square root and a logarithm per source: only when a supervisor shows them.
	wantLevels := false
	for _, l := range legs {
		wantLevels = wantLevels || (l.Role == Supervisor && l.levelOut != nil)
	}
	for _, l := range legs {
		l.now = ""
		if l.Role == Supervisor {
			l.now = l.Mode()
		}
		l.talks = l.has && l.rawLen == media.FrameSamples && (l.Role != Supervisor || l.now.Talks())
		l.level = media.SilentLevel
		if l.talks {
			l.Codec.Decode(l.pcm[:], l.raw[:l.rawLen])
		}
		switch l.Role {
		case Customer, Agent:
			if l.talks && wantLevels {
				l.level = media.AudioLevel(l.pcm[:])
			}
			r.csrc[l.Role], r.levels[l.Role] = l.csrc, l.level
		}
	}
	for _, listener := range legs {
		if !listener.receiving.Load() {
			continue
		}
		var first *Leg
		n := 0
		for _, src := range legs {
			if src == listener || !src.talks || !Hears(listener.Role, src.Role, src.now) {
				continue
			}
			if n == 0 {
				first = src
				for i, v := range src.pcm {
					r.sum[i] = int32(v)
				}
			} else {
				for i, v := range src.pcm {
					r.sum[i] += int32(v)
				}
			}
			n++
		}
		switch {
		case n == 0:
			silence(listener)
		case n == 1 && first.Codec == listener.Codec:
			// One source in the same codec: G.711 round-trips exactly, so pass its bytes on.
			r.write(listener, first.raw[:first.rawLen])
		default:
			var pcm [media.FrameSamples]int16
			for i, v := range r.sum {
				pcm[i] = clip16(v)
			}
			listener.Codec.Encode(listener.enc[:], pcm[:])
			r.write(listener, listener.enc[:])
		}
	}
}

// write sends a mixed frame, with the customer's and agent's levels to supervisors.
func (r *Room) write(l *Leg, frame []byte) {
	if l.Role == Supervisor && l.levelOut != nil {
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
