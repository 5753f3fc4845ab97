// Package loadgen is the load generator behind `ringside-media bench`: it places calls on
// a ringside-media over real SIP on loopback, customer and agent legs with real RTP at the
// real 20 ms pace, puts some under a whispering supervisor (*2<ext>), and measures what
// the server gives back: packet rates, frames late against the server's 20 ms grid, the
// delay the server adds on every audio path (on the wire: customer and agent to each
// other, either of them to a monitoring supervisor, its whisper to the agent), and whether
// every leg hears exactly the tones the hearing matrix says (customer 440 Hz, agent
// 1000 Hz, supervisor 2300 Hz).
//
// It is built to cost far less than the server it loads: legs are served in groups, each
// by one goroutine and one socket on a shared 20 ms clock, with tone frames encoded once,
// one sendmmsg and a recvmmsg drain per tick, and no allocation per packet. Every packet
// stays on 127.0.0.1.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"ringside/media"
	"ringside/server/realtime"
)

// Config of one run. Zero fields take DefaultConfig's values.
type Config struct {
	Server    string        // ringside-media SIP address, host:port
	Calls     int           // concurrent calls
	Monitored int           // of them under a whispering supervisor
	Duration  time.Duration // the measurement window, after set-up and warm-up
	WarmUp    time.Duration // between set-up and the window (jitter buffers fill, mixers start)

	// Users the server must know: agents AgentBase … AgentBase+Calls-1 (role agent),
	// supervisors SupervisorBase … SupervisorBase+Monitored-1 (role supervisor, allowed to
	// monitor the agents), all with Password.
	AgentBase      int
	SupervisorBase int
	Password       string

	LegsPerGroup     int // legs sharing one goroutine and socket
	SetupConcurrency int // calls (and monitors) being set up at once

	// MonitorCode is the feature code supervisors dial before the agent's extension:
	// "*2" (whisper, the default). "*3" (barge) lets tests prove that a supervisor heard by
	// the customer is caught as a leak.
	MonitorCode string

	// Realtime ticks the groups from a few real-time threads (package realtime) instead of
	// a goroutine each: the generator stands in for phones on other machines, and against
	// a server on real-time threads a normal one loses every contest for the cores.
	Realtime bool

	Logger *slog.Logger `json:"-"`
	// Progress, when set, is told of each phase as it begins.
	Progress func(Phase) `json:"-"`
}

// Phase of a run, as told to Config.Progress.
type Phase string

const (
	Established Phase = "established"  // every call and monitor is up; warm-up begins
	WindowStart Phase = "window-start" // measuring
	WindowEnd   Phase = "window-end"   // measuring stopped; hang-up follows
)

// DefaultConfig is a small run against a local server.
func DefaultConfig() Config {
	return Config{
		Server: "127.0.0.1:5060", Calls: 10, Duration: 30 * time.Second, WarmUp: 2 * time.Second,
		AgentBase: 40000, SupervisorBase: 50000, Password: "bench",
		LegsPerGroup: 32, SetupConcurrency: 16, MonitorCode: "*2",
	}
}

// Result of a run. Packet and frame counts cover the measurement window only.
type Result struct {
	Calls            int     `json:"calls"`
	Monitored        int     `json:"monitored"`
	CallsUp          int     `json:"calls_up"`
	MonitorsUp       int     `json:"monitors_up"`
	SetupFailed      int     `json:"setup_failed"`
	SetupCallsPerS   float64 `json:"setup_calls_per_s"`
	MonitorSetupPerS float64 `json:"monitor_setup_per_s"`
	WindowS          float64 `json:"window_s"`

	// pps_in is what the generator sent the server, pps_out what it got back.
	PPSIn  float64 `json:"pps_in"`
	PPSOut float64 `json:"pps_out"`

	FramesReceived uint64  `json:"frames_received"`
	FramesLate     uint64  `json:"frames_late"`
	FramesLost     uint64  `json:"frames_lost"`
	LateFrameRatio float64 `json:"late_frame_ratio"`
	LostFrameRatio float64 `json:"lost_frame_ratio"`
	// How far behind its leg's earliest frame (on the 20 ms grid) a frame arrived.
	FrameDelayP99Ms float64 `json:"frame_delay_ms_p99"`
	FrameDelayMaxMs float64 `json:"frame_delay_ms_max"`

	// The delay the server adds on the conversation paths, customer to agent and agent to
	// customer together (what the call's two parties live with), from markers: a frame of
	// silence in place of the sender's tone, timed from leaving the sender to the first
	// frame without that tone reaching the hearer (kernel arrival time). Samples and
	// missed markers (not found within 500 ms) count those two paths.
	LatencyP50Ms   float64 `json:"added_latency_ms_p50"`
	LatencyP99Ms   float64 `json:"added_latency_ms_p99"`
	LatencySamples uint64  `json:"latency_samples"`
	MarkersMissed  uint64  `json:"latency_markers_missed"`
	// Every path on its own, the monitoring ones (measured on monitored calls) included.
	Latency LatencyPaths `json:"latency_ms"`

	LostOrLeaked int `json:"lost_or_leaked"`
	WhisperLeaks int `json:"whisper_leaks"`
	MissingTones int `json:"missing_tones"`

	Groups          int     `json:"generator_groups"`
	RealtimeThreads int     `json:"generator_realtime_threads"` // Config.Realtime: the threads the kernel let run real-time
	TickLagP99Ms    float64 `json:"generator_tick_lag_ms_p99"`
	TickLagMaxMs    float64 `json:"generator_tick_lag_ms_max"`
	SendDrops       uint64  `json:"generator_send_drops"`
	StrayPackets    uint64  `json:"stray_packets"`
	UnstampedFrames uint64  `json:"unstamped_frames"`
}

// PathLatency is the delay the server adds on one audio path, in milliseconds.
type PathLatency struct {
	P50Ms  float64 `json:"p50"`
	P99Ms  float64 `json:"p99"`
	N      uint64  `json:"n"`      // markers measured
	Missed uint64  `json:"missed"` // markers sent but not heard within 500 ms
}

// LatencyPaths has every audio path through the server: the conversation (customer and
// agent hear each other), the monitoring supervisor hearing either party, and its whisper
// reaching the agent.
type LatencyPaths struct {
	CustomerToAgent      PathLatency `json:"customer_to_agent"`
	AgentToCustomer      PathLatency `json:"agent_to_customer"`
	CustomerToSupervisor PathLatency `json:"customer_to_supervisor"`
	AgentToSupervisor    PathLatency `json:"agent_to_supervisor"`
	SupervisorToAgent    PathLatency `json:"supervisor_to_agent"`
}

// All is every path's figures, by the name latency_ms gives it.
func (lp *LatencyPaths) All() map[string]*PathLatency {
	m := make(map[string]*PathLatency, nPaths)
	for p := range nPaths {
		m[p.String()] = lp.of(p)
	}
	return m
}

func (lp *LatencyPaths) of(p path) *PathLatency {
	return [nPaths]*PathLatency{&lp.CustomerToAgent, &lp.AgentToCustomer, &lp.CustomerToSupervisor, &lp.AgentToSupervisor, &lp.SupervisorToAgent}[p]
}

// ErrNoCalls means not one call could be set up.
var ErrNoCalls = errors.New("loadgen: no call could be set up")

type run struct {
	cfg    Config
	log    *slog.Logger
	ua     *userAgent
	groups []*group
	next   atomic.Uint32
	phase  atomic.Int32
	tones  [3][][]byte
	calls  []*call
	byExt  map[string]*call

	// pairs is which server RTP addresses each group's socket already talks to. A group
	// tells its legs apart by the server's address, and a server that shares sockets
	// among legs tells them apart by ours, so one pair of sockets carries one leg at most.
	// The server keeps to that for the legs we offer (customers, supervisors), we for the
	// ones it offers (agents). Agents have groups of their own: while a customer's INVITE
	// is in flight the server has paired its socket with some server socket we can't know
	// yet, so an agent's leg could otherwise collide with it.
	offerGroups, agentGroups []*group
	pairMu                   sync.Mutex
	pairs                    map[*group]map[netip.AddrPort]bool
}

// groupFor picks a group whose socket carries no leg to server yet, and claims the pair.
func (r *run) groupFor(server netip.AddrPort) (*group, bool) {
	r.pairMu.Lock()
	defer r.pairMu.Unlock()
	start := int(r.next.Add(1) - 1)
	for i := range r.agentGroups {
		g := r.agentGroups[(start+i)%len(r.agentGroups)]
		if !r.pairs[g][server] {
			r.pairs[g][server] = true
			return g, true
		}
	}
	return nil, false
}

// claim records the pair the server chose for a leg of ours; false when g already has a
// leg to that server address, which the server must not do.
func (r *run) claim(g *group, server netip.AddrPort) bool {
	r.pairMu.Lock()
	defer r.pairMu.Unlock()
	if r.pairs[g][server] {
		return false
	}
	r.pairs[g][server] = true
	return true
}

// Run places the calls, measures for cfg.Duration, hangs up and reports. ctx cancels it.
func Run(ctx context.Context, cfg Config) (Result, error) {
	def := DefaultConfig()
	if cfg.Server == "" {
		cfg.Server = def.Server
	}
	if cfg.Duration <= 0 {
		cfg.Duration = def.Duration
	}
	if cfg.WarmUp <= 0 {
		cfg.WarmUp = def.WarmUp
	}
	if cfg.AgentBase <= 0 {
		cfg.AgentBase = def.AgentBase
	}
	if cfg.SupervisorBase <= 0 {
		cfg.SupervisorBase = def.SupervisorBase
	}
	if cfg.Password == "" {
		cfg.Password = def.Password
	}
	if cfg.LegsPerGroup <= 0 {
		cfg.LegsPerGroup = def.LegsPerGroup
	}
	if cfg.SetupConcurrency <= 0 {
		cfg.SetupConcurrency = def.SetupConcurrency
	}
	if cfg.MonitorCode == "" {
		cfg.MonitorCode = def.MonitorCode
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Calls <= 0 || cfg.Monitored < 0 || cfg.Monitored > cfg.Calls {
		return Result{}, fmt.Errorf("loadgen: want 0 < calls and 0 <= monitored <= calls, got %d and %d", cfg.Calls, cfg.Monitored)
	}
	r := &run{cfg: cfg, log: cfg.Logger, byExt: make(map[string]*call), pairs: make(map[*group]map[netip.AddrPort]bool)}
	r.tones = [3][][]byte{toneCycle(CustomerHz), toneCycle(AgentHz), toneCycle(SupervisorHz)}
	for i := range cfg.Calls {
		c := &call{idx: i, agentExt: strconv.Itoa(cfg.AgentBase + i), monitored: i < cfg.Monitored, answered: make(chan struct{})}
		r.calls = append(r.calls, c)
		r.byExt[c.agentExt] = c
	}

	// Media first: groups tick from the start, idle until legs join.
	legs := 2*cfg.Calls + cfg.Monitored
	// Agent groups are half-filled: a group pairs with each server socket once, so they
	// need room to spare.
	nOffer := (cfg.Calls + cfg.Monitored + cfg.LegsPerGroup - 1) / cfg.LegsPerGroup
	nAgent := (2*cfg.Calls + cfg.LegsPerGroup - 1) / cfg.LegsPerGroup
	n := nOffer + nAgent
	epoch := time.Now().Add(media.FrameDuration)
	gctx, stopGroups := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		stopGroups()
		wg.Wait()
		for _, g := range r.groups {
			g.sock.close()
		}
	}()
	for i := range n {
		// Groups tick at evenly spread offsets, as independent phones would.
		g, err := newGroup(epoch, time.Duration(i)*media.FrameDuration/time.Duration(n), &r.phase, legs)
		if err != nil {
			return Result{}, err
		}
		r.groups = append(r.groups, g)
		// Roles alternate, so customers' packets, like agents', come at every phase of
		// the 20 ms, as from phones that each started on their own.
		if len(r.agentGroups) >= nAgent || (i%2 == 0 && len(r.offerGroups) < nOffer) {
			r.offerGroups = append(r.offerGroups, g)
		} else {
			r.agentGroups = append(r.agentGroups, g)
		}
		r.pairs[g] = make(map[netip.AddrPort]bool)
		if !cfg.Realtime {
			wg.Add(1)
			go func() {
				defer wg.Done()
				g.run(gctx)
			}()
		}
	}
	var realtimeThreads atomic.Int32
	if cfg.Realtime {
		drivers := min(runtime.GOMAXPROCS(0), len(r.groups))
		defer realtime.AddProcs(drivers)()
		for i := range drivers {
			// Each driver a share of both kinds: a driver with every offer group
			// (customers and supervisors) fell behind where the agents' did not.
			var mine []*group
			for _, groups := range [][]*group{r.offerGroups, r.agentGroups} {
				for j := i; j < len(groups); j += drivers {
					mine = append(mine, groups[j])
				}
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if leave, err := realtime.Enter(driverPeriod, driverShare); err != nil {
					r.log.Warn("generator: ticking on a normal thread", "err", err)
				} else {
					realtimeThreads.Add(1)
					defer leave()
				}
				drive(gctx, epoch, mine)
			}()
		}
	}

	ua, err := newUserAgent(ctx, cfg.Server, r.log)
	if err != nil {
		return Result{}, err
	}
	r.ua = ua
	ua.onAgentInvite = r.answerAgent
	defer ua.close()

	res := Result{Calls: cfg.Calls, Monitored: cfg.Monitored, Groups: n}
	if err := r.setUp(ctx, &res); err != nil {
		return res, err
	}
	r.phase.Store(phaseWarmUp)
	r.progress(Established)
	if err := sleep(ctx, cfg.WarmUp); err != nil {
		return res, err
	}
	r.phase.Store(phaseMeasure)
	start := time.Now()
	r.progress(WindowStart)
	if err := sleep(ctx, cfg.Duration); err != nil {
		return res, err
	}
	r.phase.Store(phaseDone)
	window := time.Since(start)
	r.progress(WindowEnd)
	res.RealtimeThreads = int(realtimeThreads.Load())

	var total groupStats
	for _, g := range r.groups {
		var st groupStats
		if err := g.do(ctx, func() { st = g.finish() }); err != nil {
			return res, err
		}
		total.add(&st)
	}
	r.hangUp()
	ctx2, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	parallel(ctx2, cfg.SetupConcurrency, r.calls, func(c *call) error {
		return r.ua.register(ctx2, c.agentExt, cfg.Password, unbind)
	})
	r.summarise(&res, &total, window)
	return res, nil
}

func (r *run) progress(p Phase) {
	if r.cfg.Progress != nil {
		r.cfg.Progress(p)
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// start hands a leg to its group; it sends from the group's next tick.
func (l *leg) start() { l.group.add <- l }

func (r *run) setUp(ctx context.Context, res *Result) error {
	cfg := r.cfg
	// Register every agent, dropping bindings an earlier run may have left: the server
	// rings every binding and a dead one holds the call's set-up until its INVITE times out.
	regErr := parallel(ctx, cfg.SetupConcurrency, r.calls, func(c *call) error {
		if err := r.ua.register(ctx, c.agentExt, cfg.Password, unbindAll); err != nil {
			return err
		}
		return r.ua.register(ctx, c.agentExt, cfg.Password, bind)
	})
	registered := 0
	for i, err := range regErr {
		if err != nil {
			r.log.Warn("agent did not register", "ext", r.calls[i].agentExt, "err", err)
		} else {
			registered++
		}
	}
	if registered == 0 {
		return fmt.Errorf("%w: %w (the server must know agents %d… with password %q)", ErrNoCalls, firstErr(regErr), cfg.AgentBase, cfg.Password)
	}

	// Customers call in from a trunk address: no auth.
	t0 := time.Now()
	callErr := parallel(ctx, cfg.SetupConcurrency, r.calls, func(c *call) error {
		if regErr[c.idx] != nil {
			return regErr[c.idx]
		}
		return r.placeCall(ctx, c)
	})
	took := time.Since(t0)
	for i, err := range callErr {
		if err != nil {
			r.log.Warn("call failed", "agent", r.calls[i].agentExt, "err", err)
			r.calls[i].missing.Store(true)
			res.SetupFailed++
		} else {
			res.CallsUp++
		}
	}
	if res.CallsUp == 0 {
		return fmt.Errorf("%w: %w", ErrNoCalls, firstErr(callErr))
	}
	res.SetupCallsPerS = float64(res.CallsUp) / took.Seconds()

	// Supervisors whisper to the first Monitored agents.
	monitored := r.calls[:cfg.Monitored]
	t0 = time.Now()
	monErr := parallel(ctx, cfg.SetupConcurrency, monitored, func(c *call) error {
		if callErr[c.idx] != nil {
			return callErr[c.idx]
		}
		return r.monitor(ctx, c, strconv.Itoa(cfg.SupervisorBase+c.idx))
	})
	took = time.Since(t0)
	for i, err := range monErr {
		if err != nil {
			if callErr[i] == nil {
				r.log.Warn("monitor failed", "agent", monitored[i].agentExt, "err", err)
				monitored[i].missing.Store(true)
				res.SetupFailed++
			}
		} else {
			res.MonitorsUp++
		}
	}
	if res.MonitorsUp > 0 {
		res.MonitorSetupPerS = float64(res.MonitorsUp) / took.Seconds()
	}
	return ctx.Err()
}

// placeCall dials the agent as a customer and waits until both legs carry media.
func (r *run) placeCall(ctx context.Context, c *call) error {
	// The customer's SDP names the socket of the group its leg will join.
	g := r.nextGroup()
	cs, answer, err := r.ua.dial(ctx, c.agentExt, "0700"+c.agentExt, "", answerSDP(g.sock.local))
	if err != nil {
		return err
	}
	if !r.claim(g, answer.Addr) {
		return fmt.Errorf("loadgen: the server answered call %s with an RTP address another leg of ours already talks to from the same socket", c.agentExt)
	}
	l := newLeg(c, customer, answer.Addr, r.tones[customer])
	l.group = g
	r.ua.trackUAC(cs, l)
	l.start()
	select {
	case <-c.answered:
	case <-ctx.Done():
		return ctx.Err()
	}
	c.up.Store(true)
	return nil
}

func (r *run) monitor(ctx context.Context, c *call, supExt string) error {
	g := r.nextGroup()
	cs, answer, err := r.ua.dial(ctx, r.cfg.MonitorCode+c.agentExt, supExt, r.cfg.Password, answerSDP(g.sock.local))
	if err != nil {
		return err
	}
	if !r.claim(g, answer.Addr) {
		return fmt.Errorf("loadgen: the server answered monitor %s with an RTP address another leg of ours already talks to from the same socket", supExt)
	}
	l := newLeg(c, supervisor, answer.Addr, r.tones[supervisor])
	l.group = g
	r.ua.trackUAC(cs, l)
	l.start()
	c.whisper.Store(true)
	return nil
}

func (r *run) nextGroup() *group {
	return r.offerGroups[int(r.next.Add(1)-1)%len(r.offerGroups)]
}

// answerAgent answers the server's INVITE to an agent and holds it until the dialog ends.
func (r *run) answerAgent(req *sip.Request, tx sip.ServerTransaction) {
	c := r.byExt[req.Recipient.User]
	if c == nil {
		respond(tx, req, 404, "Not Found")
		return
	}
	offer, err := media.ParseSDP(req.Body())
	if err == nil {
		_, err = media.Negotiate(offer, []media.Codec{codec})
	}
	if err != nil {
		respond(tx, req, 488, "Not Acceptable Here")
		return
	}
	ds, err := r.ua.dua.ReadInvite(req, tx)
	if err != nil {
		respond(tx, req, 400, "Bad Request")
		return
	}
	defer ds.Close()
	g, ok := r.groupFor(offer.Addr)
	if !ok {
		_ = ds.Respond(503, "Service Unavailable: every generator socket already talks to that server address", nil)
		return
	}
	l := newLeg(c, agent, offer.Addr, r.tones[agent])
	l.group = g
	r.ua.trackUAS(ds, l)
	l.start()
	if err := ds.RespondSDP(answerSDP(g.sock.local)); err != nil {
		l.ended.Store(true)
		r.ua.forget(ds.InviteRequest.CallID().Value())
		r.log.Warn("agent answer not acknowledged", "ext", c.agentExt, "err", err)
		return
	}
	select {
	case <-c.answered: // a second INVITE for a busy agent; the server refuses those
	default:
		close(c.answered)
	}
	select {
	case <-ds.Context().Done():
	case <-r.ua.ctx.Done():
	}
	l.ended.Store(true)
}

// hangUp ends every call from the customer's side and waits (10 s at most) until the
// server has ended the agents' and supervisors' dialogs too.
func (r *run) hangUp() {
	ds := r.ua.customerDialogs()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	parallel(ctx, r.cfg.SetupConcurrency, ds, func(d uacDialog) error {
		d.leg.ended.Store(true)
		r.ua.bye(d.cs)
		r.ua.forget(d.cs.InviteRequest.CallID().Value())
		return nil
	})
	for {
		n, changed := r.ua.open()
		if n == 0 {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			r.log.Warn("dialogs still open after hang-up", "dialogs", n)
			return
		}
	}
}

func (r *run) summarise(res *Result, st *groupStats, window time.Duration) {
	secs := window.Seconds()
	res.WindowS = secs
	res.PPSIn = float64(st.sent) / secs
	res.PPSOut = float64(st.received) / secs
	res.FramesReceived, res.FramesLate, res.FramesLost = st.received, st.late, st.lost
	if st.received > 0 {
		res.LateFrameRatio = float64(st.late) / float64(st.received)
		res.LostFrameRatio = float64(st.lost) / float64(st.received+st.lost)
	}
	res.FrameDelayP99Ms = percentile(st.jitter[:], lateStep, 0.99)
	res.FrameDelayMaxMs = percentile(st.jitter[:], lateStep, 1)
	var conversation [latencyBins]uint32
	for p := range nPaths {
		h := st.latency[p][:]
		pl := res.Latency.of(p)
		pl.P50Ms = percentile(h, latencyStep, 0.50)
		pl.P99Ms = percentile(h, latencyStep, 0.99)
		for _, n := range h {
			pl.N += uint64(n)
		}
		pl.Missed = st.markersMissed[p]
		if p == customerToAgent || p == agentToCustomer {
			for i, n := range h {
				conversation[i] += n
			}
			res.LatencySamples += pl.N
			res.MarkersMissed += pl.Missed
		}
	}
	res.LatencyP50Ms = percentile(conversation[:], latencyStep, 0.50)
	res.LatencyP99Ms = percentile(conversation[:], latencyStep, 0.99)
	res.TickLagP99Ms = percentile(st.lag[:], lagStep, 0.99)
	res.TickLagMaxMs = percentile(st.lag[:], lagStep, 1)
	res.SendDrops = st.sendDrops
	res.StrayPackets = st.stray
	res.UnstampedFrames = st.noStamp
	for _, c := range r.calls {
		leaked, missing := c.leaked.Load(), c.missing.Load()
		if leaked {
			res.WhisperLeaks++
		}
		if missing {
			res.MissingTones++
		}
		if leaked || missing {
			res.LostOrLeaked++
		}
	}
}

func (s *groupStats) add(o *groupStats) {
	s.ticks += o.ticks
	s.sent += o.sent
	s.sendDrops += o.sendDrops
	s.sendErrors += o.sendErrors
	s.received += o.received
	s.lost += o.lost
	s.late += o.late
	s.stray += o.stray
	s.noStamp += o.noStamp
	for p := range nPaths {
		s.markersMissed[p] += o.markersMissed[p]
		for i, n := range o.latency[p] {
			s.latency[p][i] += n
		}
	}
	for i, n := range o.lag {
		s.lag[i] += n
	}
	for i, n := range o.jitter {
		s.jitter[i] += n
	}
}

// percentile of a histogram of step-wide buckets, in milliseconds (bucket upper edge).
func percentile(h []uint32, step time.Duration, p float64) float64 {
	var total uint64
	for _, n := range h {
		total += uint64(n)
	}
	if total == 0 {
		return 0
	}
	want := uint64(p*float64(total) + 0.5)
	want = max(want, 1)
	var seen uint64
	for i, n := range h {
		seen += uint64(n)
		if seen >= want {
			return float64(time.Duration(i+1)*step) / float64(time.Millisecond)
		}
	}
	return float64(time.Duration(len(h))*step) / float64(time.Millisecond)
}

// parallel runs f over items, at most n at a time, and returns each item's error.
func parallel[T any](ctx context.Context, n int, items []T, f func(T) error) []error {
	errs := make([]error, len(items))
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for i, it := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			errs[i] = ctx.Err()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = f(it)
		}()
	}
	wg.Wait()
	return errs
}

func firstErr(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
