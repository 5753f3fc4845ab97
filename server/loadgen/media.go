package loadgen

import (
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"net/netip"
	"sync/atomic"
	"time"
	"unsafe"

	"ringside/media"
	"ringside/server/realtime"
)

// Tones of the three roles: distinct, none a multiple of another (G.711 puts spurs on
// harmonics), as DESIGN.md's routing proofs use them.
const (
	CustomerHz   = 440
	AgentHz      = 1000
	SupervisorHz = 2300

	toneAmplitude = 0.3 // about -10.5 dBFS
	codec         = media.PCMU
	dtmfPT        = 101

	ringFrames   = 25  // 0.5 s of received audio per tone check
	heardDB      = -30 // a tone at or above this level is heard
	separationDB = 40  // a whisper must sit this far under what the customer hears
	floorDB      = -70 // below this a tone is not there at all
	checkEvery   = 5   // ticks between two tone checks of a group (one leg per check)

	lateStep    = 500 * time.Microsecond // lateness histogram resolution
	lateOrigin  = 50 * time.Millisecond  // the histogram starts this early
	lateBuckets = 1000                   // … and spans 500 ms
	lateAfter   = 5 * time.Millisecond   // a frame later than this after its tick is late

	markerEvery   = 50 // frames in one cycle of a call's latency markers (1 s)
	markerTimeout = 500 * time.Millisecond
	latencyStep   = 100 * time.Microsecond
	latencyBins   = 5000 // 500 ms
	lagStep       = 100 * time.Microsecond
	lagBins       = 1000 // 100 ms
)

// Phases of a run, shared by every group.
const (
	phaseSetup int32 = iota
	phaseWarmUp
	phaseMeasure
	phaseDone
)

type role uint8

const (
	customer role = iota
	agent
	supervisor
)

func (r role) String() string { return [...]string{"customer", "agent", "supervisor"}[r] }

// roleHz is the tone each role sends.
var roleHz = [...]float64{customer: CustomerHz, agent: AgentHz, supervisor: SupervisorHz}

// path is one way audio takes through the server, from the party who sends a latency
// marker to the one who hears it.
type path uint8

const (
	customerToAgent path = iota
	agentToCustomer
	customerToSupervisor
	agentToSupervisor
	supervisorToAgent
	nPaths
)

var pathNames = [nPaths]string{"customer_to_agent", "agent_to_customer", "customer_to_supervisor", "agent_to_supervisor", "supervisor_to_agent"}

func (p path) String() string { return pathNames[p] }

// A path's marker is sent by from and looked for, as from's tone vanishing, in what to
// hears. The supervisor paths run on monitored calls only.
var pathFrom = [nPaths]role{customer, agent, customer, agent, supervisor}

var (
	// sends are the paths a role's marker starts, hears the paths a role's received audio
	// ends.
	sends = [3][]path{customer: {customerToAgent, customerToSupervisor}, agent: {agentToCustomer, agentToSupervisor}, supervisor: {supervisorToAgent}}
	hears = [3][]path{customer: {agentToCustomer}, agent: {customerToAgent, supervisorToAgent}, supervisor: {customerToSupervisor, agentToSupervisor}}
	// markerAt is where in the markerEvery-frame cycle each role sends its marker frames:
	// staggered, so that one call's markers are never in flight together and each 0.5 s
	// ring of received frames (check) holds at most one silent frame of any one tone.
	markerAt = [3][]int{customer: {0}, agent: {markerEvery / 2}, supervisor: {12, 37}}
)

func supervisorPath(p path) bool {
	return p == customerToSupervisor || p == agentToSupervisor || p == supervisorToAgent
}

// toneCycle is a tone pre-encoded once as the shortest run of 20 ms frames after which its
// phase repeats (440 Hz: 5 frames; 1000 and 2300 Hz: 1), so sending it costs a copy-free
// iovec per packet and no encoding.
func toneCycle(hz float64) [][]byte {
	n := 1
	for ; n < 50; n++ {
		cycles := hz * float64(media.FrameSamples*n) / media.SampleRate
		if cycles == math.Trunc(cycles) {
			break
		}
	}
	t := media.NewTone(hz, toneAmplitude)
	pcm := make([]int16, media.FrameSamples)
	out := make([][]byte, n)
	for i := range out {
		t.Fill(pcm)
		out[i] = make([]byte, media.FrameSamples)
		codec.Encode(out[i], pcm)
	}
	return out
}

// call is one customer–agent call, perhaps with a whispering supervisor.
type call struct {
	idx       int
	agentExt  string
	monitored bool

	marker   [nPaths]atomic.Int64 // per path: unix ns when its pending marker frame left; 0: none
	whisper  atomic.Bool          // the supervisor is in: the agent must hear its tone
	leaked   atomic.Bool          // the supervisor's tone reached the customer
	missing  atomic.Bool          // a leg did not hear a tone it should
	up       atomic.Bool          // customer and agent legs are established
	answered chan struct{}
}

// leg is one party's RTP stream as the generator sees it.
type leg struct {
	call   *call
	role   role
	remote netip.AddrPort // the server's RTP address for this leg
	tone   [][]byte
	group  *group
	ended  atomic.Bool

	// Sending; the group's goroutine only.
	out     outPacket
	hdr     [12]byte
	seq     uint16
	ts      uint32
	ssrc    uint32
	toneIdx int
	started bool

	// Receiving; the group's goroutine only.
	haveSeq  bool
	lastSeq  uint16
	received uint64 // in the window
	lost     uint64 // in the window: sequence gaps
	anchored bool
	ts0      uint32
	t0       int64
	late     []uint32 // arrival offset from the leg's 20 ms grid, lateStep buckets
	ring     [ringFrames][media.FrameSamples]byte
	ringPos  int
	ringN    int
}

func newLeg(c *call, r role, remote netip.AddrPort, tone [][]byte) *leg {
	l := &leg{
		call: c, role: r, remote: remote, tone: tone,
		seq: uint16(rand.Uint32()), ts: rand.Uint32(), ssrc: rand.Uint32(),
		late: make([]uint32, lateBuckets),
	}
	l.out.sa = sockaddr(remote)
	return l
}

// jitter adds the leg's arrival offsets, relative to its earliest, to h (lateStep buckets).
func (l *leg) jitter(h *[lateBuckets]uint32) {
	first := -1
	for i, n := range l.late {
		if n > 0 && first < 0 {
			first = i
		}
		if first >= 0 {
			h[i-first] += n
		}
	}
}

// lateFrames counts window frames that arrived more than lateAfter behind the leg's
// earliest frame relative to the 20 ms grid: the earliest is the server's tick plus its
// fixed position in the tick, so anything later is the tick running late.
func (l *leg) lateFrames() uint64 {
	first := -1
	for i, n := range l.late {
		if n > 0 {
			first = i
			break
		}
	}
	if first < 0 {
		return 0
	}
	var late uint64
	for i := first + int(lateAfter/lateStep) + 1; i < len(l.late); i++ {
		late += uint64(l.late[i])
	}
	return late
}

func bucket(d, step time.Duration, n int) int {
	return max(0, min(n-1, int(d/step)))
}

// groupStats are counted by a group's goroutine during the window.
type groupStats struct {
	ticks, sent, sendDrops, sendErrors uint64
	received, lost, late, stray        uint64
	noStamp                            uint64
	markersMissed                      [nPaths]uint64
	latency                            [nPaths][latencyBins]uint32
	lag                                [lagBins]uint32
	jitter                             [lateBuckets]uint32
}

// group is a set of legs served by one goroutine and one socket on one 20 ms clock: each
// tick drains what arrived with recvmmsg, then sends every leg's next frame with sendmmsg.
type group struct {
	sock    *socket
	epoch   time.Time // tick grid origin, shared by all groups …
	offset  time.Duration
	next    time.Time // the next tick
	phase   *atomic.Int32
	add     chan *leg
	reqs    chan func()
	silence []byte

	legs      []*leg
	byPort    map[netip.AddrPort]*leg
	pkts      []*outPacket
	frame     [media.FrameSamples]int16
	pcm       [ringFrames * media.FrameSamples]int16
	measuring bool // the warm-up or the window: counting
	window    bool // the window: counting what the result will say
	tick      int
	frameNo   int // the tick's 20 ms frame on the grid every group shares (from epoch)
	checkNext int
	st        *groupStats
	spare     *groupStats // the window's, zeroed and resident before it starts
}

func newGroup(epoch time.Time, offset time.Duration, phase *atomic.Int32, capacity int) (*group, error) {
	s, err := openSocket()
	if err != nil {
		return nil, err
	}
	sil := make([]byte, media.FrameSamples)
	for i := range sil {
		sil[i] = codec.Silence()
	}
	return &group{
		sock: s, epoch: epoch, offset: offset, next: epoch.Add(offset), phase: phase,
		add: make(chan *leg, capacity), reqs: make(chan func()), silence: sil,
		byPort: make(map[netip.AddrPort]*leg, capacity),
		st:     residentStats(), spare: residentStats(),
	}, nil
}

// residentStats are zero statistics in memory already: the first counts after a phase
// begins fault no pages in (13 MB at 500 calls held every group up for 40 ms).
func residentStats() *groupStats {
	st := new(groupStats)
	b := unsafe.Slice((*byte)(unsafe.Pointer(st)), unsafe.Sizeof(*st))
	for i := 0; i < len(b); i += 4096 {
		b[i] = 0
	}
	return st
}

// do runs f on the group's goroutine between two ticks and waits for it.
func (g *group) do(ctx context.Context, f func()) error {
	done := make(chan struct{})
	select {
	case g.reqs <- func() { f(); close(done) }:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *group) run(ctx context.Context) {
	timer := time.NewTimer(time.Until(g.next))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-g.reqs:
			f()
			continue
		case <-timer.C:
		}
		g.tickNext()
		timer.Reset(time.Until(g.next))
	}
}

// tickNext sends the frames due at g.next and moves it on a frame.
func (g *group) tickNext() {
	g.frameNo = int(g.next.Sub(g.epoch) / media.FrameDuration)
	g.tickOnce(time.Since(g.next))
	g.next = g.next.Add(media.FrameDuration)
	if behind := time.Since(g.next); behind > 10*media.FrameDuration {
		g.next = time.Now().Add(media.FrameDuration)
	}
}

// driverPeriod and driverShare are a driver's real-time reservation (realtime.Enter): a
// driver wakes at least every driverPeriod, and the generator costs about half what the
// server does. The period is longer than the server's poll, so when both want a core the
// kernel (earliest deadline first) mostly runs the server.
const (
	driverPeriod = 2 * time.Millisecond
	driverShare  = 0.3
)

// drive ticks groups from the calling goroutine, on a thread of its own sleeping in the
// kernel to the next group's tick (Config.Realtime), and runs the groups' requests
// between ticks: a request waits driverPeriod at most.
func drive(ctx context.Context, epoch time.Time, groups []*group) {
	sleeper := realtime.NewSleeper(epoch)
	for ctx.Err() == nil {
		for _, g := range groups {
			g.serveRequests()
		}
		next := time.Now().Add(driverPeriod)
		for _, g := range groups {
			if !g.next.After(time.Now()) {
				g.tickNext()
			}
			if g.next.Before(next) {
				next = g.next
			}
		}
		sleeper.Until(next)
	}
}

// serveRequests runs the requests waiting for the group (group.do).
func (g *group) serveRequests() {
	for {
		select {
		case f := <-g.reqs:
			f()
		default:
			return
		}
	}
}

func (g *group) tickOnce(lag time.Duration) {
	// The warm-up does the window's work too (statistics, markers) and the window starts
	// them afresh: first touched as the window started, the statistics' pages (13 MB at
	// 500 calls) held every group up for 40 ms, and the server's jitter buffers took
	// seconds of the window to give that delay back.
	phase := g.phase.Load()
	measuring := phase == phaseWarmUp || phase == phaseMeasure
	window := phase == phaseMeasure
	if window && !g.window {
		g.startWindow()
	}
	g.measuring, g.window = measuring, window
	if measuring {
		g.st.ticks++
		g.st.lag[bucket(lag, lagStep, lagBins)]++
	}
	for more := true; more; {
		select {
		case l := <-g.add:
			g.legs = append(g.legs, l)
			g.byPort[l.remote] = l
		default:
			more = false
		}
	}
	g.receive()
	g.sendAll()
	if window && len(g.legs) > 0 && g.tick%checkEvery == 0 { // the warm-up may still miss tones
		g.check(g.legs[g.checkNext%len(g.legs)], false)
		g.checkNext++
	}
	g.tick++
}

func (g *group) startWindow() {
	// Zeroed here (a few hundred kilobytes a group), the statistics held the groups up
	// all at once: on real-time threads the bench saw ticks 27 ms late as the window
	// began, and the legs' jitter buffers grew for the window's first second.
	g.st, g.spare = g.spare, g.st
	for _, l := range g.legs {
		l.received, l.lost, l.anchored = 0, 0, false
		clear(l.late)
	}
}

func (g *group) receive() {
	fallback := int64(0)
	for {
		n, err := g.sock.recv()
		if err != nil || n == 0 {
			return
		}
		for i := range n {
			pkt, from, at := g.sock.packet(i)
			if at == 0 {
				if fallback == 0 {
					fallback = nowNano()
				}
				at = fallback
				g.st.noStamp++
			}
			l := g.byPort[from]
			if l == nil {
				g.st.stray++
				continue
			}
			g.handle(l, pkt, at)
		}
		if n < rxBatch {
			return
		}
	}
}

func (g *group) handle(l *leg, pkt []byte, at int64) {
	if media.IsRTCP(pkt) {
		return
	}
	h, payload, err := media.ParseRTP(pkt)
	if err != nil || h.PayloadType != uint8(codec) {
		return
	}
	if !l.haveSeq {
		l.haveSeq, l.lastSeq = true, h.Seq
	} else if gap := int16(h.Seq - l.lastSeq - 1); gap >= 0 {
		if g.measuring {
			l.lost += uint64(gap)
		}
		l.lastSeq = h.Seq
	}
	if len(payload) == media.FrameSamples {
		copy(l.ring[l.ringPos][:], payload)
		l.ringPos = (l.ringPos + 1) % ringFrames
		l.ringN = min(l.ringN+1, ringFrames)
	}
	if !g.measuring {
		return
	}
	l.received++
	if !l.anchored {
		l.anchored, l.ts0, l.t0 = true, h.Timestamp, at
	}
	k := int64(int32(h.Timestamp-l.ts0)) / media.FrameSamples
	off := time.Duration(at - l.t0 - k*int64(media.FrameDuration))
	l.late[bucket(off+lateOrigin, lateStep, lateBuckets)]++
	g.detectMarkers(l, payload, at)
}

// detectMarkers looks for the markers pending on the paths that end at l: a marker is one
// frame of silence in place of its sender's tone, found as the first frame arriving after
// it left in which that tone is gone (other parties' tones may stay: the supervisor hears
// customer and agent mixed).
func (g *group) detectMarkers(l *leg, payload []byte, at int64) {
	decoded := false
	for _, p := range hears[l.role] {
		sentAt := l.call.marker[p].Load()
		if sentAt == 0 || at <= sentAt {
			continue
		}
		d := time.Duration(at - sentAt)
		if d > markerTimeout {
			if l.call.marker[p].CompareAndSwap(sentAt, 0) {
				g.st.markersMissed[p]++
			}
			continue
		}
		if len(payload) != media.FrameSamples {
			continue
		}
		if !decoded {
			codec.Decode(g.frame[:], payload)
			decoded = true
		}
		if media.ToneLevelDB(g.frame[:], roleHz[pathFrom[p]]) < heardDB && l.call.marker[p].CompareAndSwap(sentAt, 0) {
			g.st.latency[p][bucket(d, latencyStep, latencyBins)]++
		}
	}
}

// marker says whether l sends a marker frame, leaving at sentAt, on this tick, and if so
// arms the paths it starts. It does when its role's place in the call's cycle (spread over
// calls by call.idx*7) has come and every path it starts is free; a marker still pending
// after markerTimeout was missed.
func (g *group) marker(l *leg, sentAt int64) bool {
	c := l.call
	slot := (g.frameNo + c.idx*7) % markerEvery
	due := false
	for _, at := range markerAt[l.role] {
		due = due || slot == at
	}
	if !due {
		return false
	}
	monitored := c.whisper.Load()
	if l.role == supervisor && !monitored {
		return false
	}
	for _, p := range sends[l.role] {
		if supervisorPath(p) && !monitored {
			continue
		}
		m := c.marker[p].Load()
		if m == 0 {
			continue
		}
		if time.Duration(sentAt-m) <= markerTimeout {
			return false // the last one is still on its way
		}
		if c.marker[p].CompareAndSwap(m, 0) {
			g.st.markersMissed[p]++ // its hearer received nothing since
		}
	}
	for _, p := range sends[l.role] {
		if !supervisorPath(p) || monitored {
			c.marker[p].Store(sentAt)
		}
	}
	return true
}

func (g *group) sendAll() {
	pkts := g.pkts[:0]
	sentAt := nowNano()
	for _, l := range g.legs {
		if l.ended.Load() {
			continue
		}
		payload := l.tone[l.toneIdx]
		l.toneIdx = (l.toneIdx + 1) % len(l.tone)
		if g.measuring && g.marker(l, sentAt) {
			payload = g.silence
		}
		l.hdr[0] = 2 << 6
		l.hdr[1] = uint8(codec)
		if !l.started {
			l.hdr[1] |= 0x80
			l.started = true
		}
		binary.BigEndian.PutUint16(l.hdr[2:], l.seq)
		binary.BigEndian.PutUint32(l.hdr[4:], l.ts)
		binary.BigEndian.PutUint32(l.hdr[8:], l.ssrc)
		l.out.set(&l.hdr, payload)
		pkts = append(pkts, &l.out)
		l.seq++
		l.ts += media.FrameSamples
	}
	g.pkts = pkts
	if len(pkts) == 0 {
		return
	}
	n, err := g.sock.send(pkts)
	if g.measuring {
		g.st.sent += uint64(n)
		g.st.sendDrops += uint64(len(pkts) - n)
		if err != nil {
			g.st.sendErrors++
		}
	}
}

// check measures the tones in the last 0.5 s a leg received. final also flags a leg that
// never received enough audio to judge.
func (g *group) check(l *leg, final bool) {
	c := l.call
	if l.ringN < ringFrames {
		if final {
			c.missing.Store(true)
		}
		return
	}
	for i := range ringFrames {
		f := &l.ring[(l.ringPos+i)%ringFrames]
		codec.Decode(g.pcm[i*media.FrameSamples:(i+1)*media.FrameSamples], f[:])
	}
	pcm := g.pcm[:]
	heard := func(hz float64) bool { return media.ToneLevelDB(pcm, hz) >= heardDB }
	switch l.role {
	case customer:
		a := media.ToneLevelDB(pcm, AgentHz)
		s := media.ToneLevelDB(pcm, SupervisorHz)
		if a < heardDB {
			c.missing.Store(true)
		}
		if s > floorDB && s > a-separationDB {
			c.leaked.Store(true)
		}
	case agent:
		if !heard(CustomerHz) || (c.whisper.Load() && !heard(SupervisorHz)) {
			c.missing.Store(true)
		}
	case supervisor:
		if !heard(CustomerHz) || !heard(AgentHz) {
			c.missing.Store(true)
		}
	}
}

// finish checks every leg once more and adds up the window.
func (g *group) finish() groupStats {
	st := *g.st
	for _, l := range g.legs {
		if l.ended.Load() {
			l.call.missing.Store(true) // the call ended before the window closed
		}
		g.check(l, true)
		st.received += l.received
		st.lost += l.lost
		st.late += l.lateFrames()
		l.jitter(&st.jitter)
	}
	return st
}
