package media

import "sync"

// MaxFramePayload is the largest payload a jitter slot holds: 40 ms of G.711.
const MaxFramePayload = 320

const (
	// underrunTicks is how many Pops may find the buffer empty before it
	// prefills again. Without it a sender that pauses (hold, silence
	// suppression) and resumes would see all its frames judged late, since
	// the playout point kept moving while it was quiet.
	underrunTicks = 3
	// maxMisorder and maxDropout bound what counts as the same stream
	// (RFC 3550 A.1); beyond them a sequence jump means a new stream.
	maxMisorder = 100
	maxDropout  = 3000
	// drainTicks is the window (1 s) over which the lowest fill is watched:
	// if even the lowest exceeded Depth, the network no longer needs the
	// extra frames a past burst left behind, so one is dropped to bring the
	// delay back towards Depth.
	drainTicks = 50
	// shrinkTicks is how long (10 s) an adaptive buffer must play without an
	// underrun, by default, before its target depth steps back down by one frame.
	shrinkTicks = 500
	// lateTicks: an adaptive buffer grows for a late frame only when another was
	// late within this many Pops (1 s). A lone late frame is played as a gap: one
	// outlier should not cost every frame after it a period of delay for 10 s.
	lateTicks = 50
)

// JitterConfig sizes a JitterBuffer. Zero fields take the defaults.
type JitterConfig struct {
	Depth    int // frames to hold before playout starts (default 2 = 40 ms)
	Capacity int // slots (default 16); payloads up to 320 bytes each preallocated
	// MaxDepth, when above Depth, makes the buffer adaptive: a Pop that finds
	// the next frame not yet arrived, for the second time within a second,
	// holds the playout point (the frame is late, not lost, as long as nothing
	// after it arrived) and the target depth grows by one frame, up to
	// MaxDepth; after Shrink Pops without such an underrun it steps back down
	// towards Depth. A link with little jitter
	// (a softphone on the LAN of its server) then plays with one frame of
	// delay instead of paying for the worst case all call long. 0 (or at most
	// Depth): fixed depth, the frame is played as a gap.
	MaxDepth int
	// Shrink is how many Pops (default 500: 10 s) an adaptive buffer must play
	// without an underrun before its depth steps back down.
	Shrink int
	// MaxPayload is the largest payload a slot holds (default MaxFramePayload, 40 ms of
	// G.711); Opus packets can be up to 1275 bytes.
	MaxPayload int
}

func DefaultJitterConfig() JitterConfig {
	return JitterConfig{Depth: 2, Capacity: 16}
}

// JitterStats counts frames: Pushed were stored, Popped played, Missing were
// played as gaps, Dropped were refused on Push or discarded unplayed
// (overflow, Reset, new stream).
type JitterStats struct{ Pushed, Popped, Missing, Dropped uint64 }

// JitterBuffer reorders one inbound leg's frames and releases one per 20 ms
// period. Push (socket reader) and Pop (the room taking the leg's frame) may
// run concurrently; the lock is held only for a copy of one frame.
type JitterBuffer struct {
	mu       sync.Mutex
	depth    int // target depth now
	minDepth int // Depth as configured
	maxDepth int // MaxDepth, at least Depth
	slots    int
	slotSize int // MaxPayload
	clean    int // Pops since the last underrun (adaptive)
	shrink   int // Shrink
	onTime   int // Pops since a frame was last late (adaptive)

	data []byte  // slots × slotSize
	size []int16 // payload length per slot; -1 when empty

	started bool   // nextSeq is meaningful
	playing bool   // prefill done
	nextSeq uint16 // sequence number of the next Pop
	head    int    // slot of nextSeq
	held    int    // frames stored
	span    int    // frames from nextSeq through the highest stored one
	empty   int    // consecutive Pops that found nothing stored
	ticks   int    // Pops in the current drain window
	lowest  int    // lowest fill seen at a Pop in the window
	probe   uint16 // expected next seq after an out-of-range jump
	probing bool

	stats JitterStats
}

// NewJitterBuffer preallocates every slot, so Push and Pop never allocate.
// Capacity is raised to Depth+1 if needed, so prefill can complete.
func NewJitterBuffer(cfg JitterConfig) *JitterBuffer {
	def := DefaultJitterConfig()
	if cfg.Depth <= 0 {
		cfg.Depth = def.Depth
	}
	if cfg.Capacity <= 0 {
		cfg.Capacity = def.Capacity
	}
	if cfg.MaxPayload <= 0 {
		cfg.MaxPayload = MaxFramePayload
	}
	if cfg.Shrink <= 0 {
		cfg.Shrink = shrinkTicks
	}
	cfg.MaxDepth = max(cfg.MaxDepth, cfg.Depth)
	cfg.Capacity = max(cfg.Capacity, cfg.MaxDepth+1)
	j := &JitterBuffer{
		depth:    cfg.Depth,
		minDepth: cfg.Depth,
		maxDepth: cfg.MaxDepth,
		shrink:   cfg.Shrink,
		slots:    cfg.Capacity,
		slotSize: cfg.MaxPayload,
		data:     make([]byte, cfg.Capacity*cfg.MaxPayload),
		size:     make([]int16, cfg.Capacity),
	}
	j.clear()
	return j
}

// Push stores a copy of one audio frame and reports whether it was kept.
// ts is not used for ordering: sequence numbers are, and timestamp gaps from
// silence suppression are absorbed by the underrun re-prefill.
func (j *JitterBuffer) Push(seq uint16, ts uint32, payload []byte) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(payload) > j.slotSize {
		j.stats.Dropped++
		return false
	}
	if !j.started {
		j.start(seq)
	}
	d := int(int16(seq - j.nextSeq))
	if d < -maxMisorder || d > maxDropout {
		// A new stream (sender restart, new SSRC) or a stray packet: switch
		// only when the next packet confirms the jump, as RFC 3550 A.1 does.
		if !j.probing || seq != j.probe {
			j.probing, j.probe = true, seq+1
			j.stats.Dropped++
			return false
		}
		j.discard()
		j.start(seq)
		d = 0
	}
	j.probing = false
	if d < 0 {
		// Before the playout point: late, unless playout has not begun and
		// the frame still fits in front of what is held.
		if j.playing || j.span-d > j.slots {
			j.stats.Dropped++
			return false
		}
		j.nextSeq = seq
		j.head = j.slot(d)
		j.span -= d
		d = 0
	}
	if d >= j.slots {
		j.overflow(d - j.slots + 1)
		if j.held == 0 {
			// Nothing left to play: prefill again from this frame.
			j.nextSeq, j.span, j.playing = seq, 0, false
		}
		d = int(int16(seq - j.nextSeq))
	}
	i := j.slot(d)
	if j.size[i] >= 0 {
		j.stats.Dropped++ // duplicate
		return false
	}
	j.size[i] = int16(copy(j.data[i*j.slotSize:(i+1)*j.slotSize], payload))
	j.held++
	j.span = max(j.span, d+1)
	j.stats.Pushed++
	if !j.playing && j.span >= j.depth {
		j.playing = true
	}
	return true
}

// Pop copies the next frame into dst and returns its length, or ok=false
// when that frame is missing (the caller conceals) or the buffer is still
// prefilling. It advances one frame per call once playing.
func (j *JitterBuffer) Pop(dst []byte) (n int, ok bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.playing {
		return 0, false
	}
	if j.held == 0 {
		j.stats.Missing++
		if j.empty++; j.empty >= underrunTicks {
			j.clear() // re-prefill: the next Push sets the playout point
		} else if j.maxDepth > j.minDepth && j.empty == 1 && j.onTime < lateTicks {
			// Adaptive, and late again: wait for it (the gap played now is the
			// delay added) and keep one more frame from now on. Only the first
			// empty Pop of a run counts: a sender that pauses (silence
			// suppression, hold) leaves many, and is not late.
			j.depth = min(j.depth+1, j.maxDepth)
			j.clean, j.onTime = 0, 0
		} else {
			j.advance(1)
			j.onTime = 0
		}
		return 0, false
	}
	j.empty = 0
	j.onTime++
	if j.maxDepth > j.minDepth && j.depth > j.minDepth {
		if j.clean++; j.clean >= j.shrink {
			j.depth--
			j.clean = 0
		}
	}
	j.drain()
	i := j.head
	if size := j.size[i]; size >= 0 {
		n = copy(dst, j.data[i*j.slotSize:i*j.slotSize+int(size)])
		j.size[i] = -1
		j.held--
		ok = true
		j.stats.Popped++
	} else {
		j.stats.Missing++
	}
	j.advance(1)
	return n, ok
}

// drain drops the oldest frame when the fill stayed above Depth for a whole
// window, so latency added by a past jitter burst does not last the call.
func (j *JitterBuffer) drain() {
	j.lowest = min(j.lowest, j.held)
	if j.ticks++; j.ticks < drainTicks {
		return
	}
	if j.lowest > j.depth {
		j.advance(1)
		for j.held > 0 && j.size[j.head] < 0 {
			j.advance(1)
		}
	}
	j.ticks, j.lowest = 0, j.slots
}

func (j *JitterBuffer) Stats() JitterStats {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.stats
}

// Reset discards held frames and prefills again; stats keep counting, since
// they describe the leg rather than one stream.
func (j *JitterBuffer) Reset() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.discard()
}

func (j *JitterBuffer) slot(d int) int {
	return ((j.head+d)%j.slots + j.slots) % j.slots
}

func (j *JitterBuffer) start(seq uint16) {
	j.started, j.playing = true, false
	j.nextSeq = seq
	j.head, j.span, j.empty = 0, 0, 0
	j.ticks, j.lowest = 0, j.slots
}

// advance moves the playout point k frames on, dropping anything skipped.
func (j *JitterBuffer) advance(k int) {
	for ; k > 0 && j.held > 0; k-- {
		if j.size[j.head] >= 0 {
			j.size[j.head] = -1
			j.held--
			j.stats.Dropped++
		}
		j.head = (j.head + 1) % j.slots
		j.nextSeq++
		j.span = max(j.span-1, 0)
	}
	j.head = (j.head + k) % j.slots
	j.nextSeq += uint16(k)
	j.span = max(j.span-k, 0)
	if j.held == 0 {
		j.span = 0
	}
}

// overflow makes room for a frame k slots past the window by dropping the
// oldest frames, which bounds latency at Capacity frames when the sender's
// clock runs fast. Gaps now at the head are skipped too: playing silence for
// frames that can never arrive in time would only add latency.
func (j *JitterBuffer) overflow(k int) {
	j.advance(k)
	for j.held > 0 && j.size[j.head] < 0 {
		j.advance(1)
	}
}

func (j *JitterBuffer) discard() {
	j.stats.Dropped += uint64(j.held)
	j.clear()
}

func (j *JitterBuffer) clear() {
	for i := range j.size {
		j.size[i] = -1
	}
	j.held, j.span, j.empty = 0, 0, 0
	j.ticks, j.lowest = 0, j.slots
	j.onTime = lateTicks
	j.started, j.playing, j.probing = false, false, false
}
