package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"time"

	"ringside/server"
	"ringside/server/loadgen"
	"ringside/server/realtime"
	"ringside/server/sip"
	"ringside/server/store"
)

// The bench runs the load generator in a child process (this binary again, told so by
// benchGeneratorEnv) so that /proc gives the server's CPU and the generator's apart. The
// child reports on stdout one JSON line per phase and one with its result, and stops when
// its stdin closes, so it never outlives the bench.
const (
	benchGeneratorEnv = "RINGSIDE_BENCH_GENERATOR"
	// The command's tests re-run their own binary with RINGSIDE_MEDIA_ARGS (see main_test.go).
	testBinaryArgsEnv = "RINGSIDE_MEDIA_ARGS"
	clockTicksPerS    = 100 // USER_HZ of /proc/<pid>/stat on Linux
)

type benchFlags struct {
	loadgen.Config
	target       string
	serverPID    int
	findCapacity bool
	compare      bool
	probeHost    bool
	maxCalls     int
	cpuProfile   string
	execTrace    string
	genProfile   string
	genNice      int
	logLevel     string
	rtpMux       bool
	muxSockets   int
	wakeLatency  *time.Duration
}

// generatorConfig is what the bench hands its generator child.
type generatorConfig struct {
	loadgen.Config
	CPUProfile string // the generator's own CPU profile over the window
	Nice       int    // the generator's niceness
}

// benchResult is the JSON line the bench prints last.
type benchResult struct {
	loadgen.Result
	Mode                string   `json:"mode"` // in-process or target
	Server              string   `json:"server"`
	Cores               int      `json:"cores"`
	HostLoad1m          float64  `json:"host_load_1m"`            // at the window's start: other work on the machine skews every number
	HostKdamonds        int      `json:"host_kdamonds"`           // the kernel's DAMON threads running at the window's start: each stalls a core now and then
	ServerCPUPct        *float64 `json:"server_cpu_pct"`          // % of one core
	ServerCPUPerCallPct *float64 `json:"server_cpu_per_call_pct"` // % of one core per concurrent call
	GeneratorCPUPct     float64  `json:"generator_cpu_pct"`
	GeneratorNice       int      `json:"generator_nice"` // its threads' lowest niceness
	// In-process: the server's room clock over the window. A poll that starts late sends
	// its frames late; late frames without late polls were delayed elsewhere (the
	// generator, the kernel).
	ServerPolls     *uint64 `json:"server_polls,omitempty"`
	ServerLatePolls *uint64 `json:"server_late_polls,omitempty"`
	// Times a shard serviced the overdue rooms of another that had stalled.
	ServerRescues *uint64 `json:"server_rescues,omitempty"`
	// Shards on real-time threads at the window's end (--realtime).
	ServerRealtimeShards *int     `json:"server_realtime_shards,omitempty"`
	ServerPollLagMaxMs   *float64 `json:"server_poll_lag_ms_max,omitempty"`
	// In-process, over the window: ticks at which a leg's jitter buffer had nothing to
	// play (the generator's audio reached the server late or not at all), and frames the
	// buffers refused or discarded unplayed (too late, overflow, draining a backlog).
	ServerJitterMissing *uint64    `json:"server_jitter_missing,omitempty"`
	ServerJitterDropped *uint64    `json:"server_jitter_dropped,omitempty"`
	RSSPerCallKB        *float64   `json:"rss_per_call_kb"`
	ServerRSSMB         *float64   `json:"server_rss_mb"`
	Capacity            *int       `json:"capacity,omitempty"`
	Steps               []step     `json:"steps,omitempty"`
	Compare             []load     `json:"compare,omitempty"`
	HostProbe           *hostProbe `json:"host_probe,omitempty"`
	// The CPU wake latency limit the bench held over its run (--cpu-wake-latency), in µs;
	// absent when it held none.
	CPUWakeLatencyUs *int64 `json:"cpu_wake_latency_us,omitempty"`
}

// load is one load of --compare: the same number of calls relayed and whispered, one
// run after the other on the same server.
type load struct {
	Calls     int      `json:"calls"`
	Relayed   cost     `json:"relayed"`
	Whispered cost     `json:"whispered"`
	CPURatio  *float64 `json:"whispered_cpu_ratio"` // server CPU per whispered call over per relayed call
}

// cost is what one run of --compare measured.
type cost struct {
	ServerCPUPerCallPct *float64 `json:"server_cpu_per_call_pct"`
	RSSPerCallKB        *float64 `json:"rss_per_call_kb"`
	PPSIn               float64  `json:"pps_in"`
	PPSOut              float64  `json:"pps_out"`
	LateFrameRatio      float64  `json:"late_frame_ratio"`
	AddedLatencyP99Ms   float64  `json:"added_latency_ms_p99"`
	LostOrLeaked        int      `json:"lost_or_leaked"`
	SetupFailed         int      `json:"setup_failed"`
}

func costOf(r benchResult) cost {
	return cost{ServerCPUPerCallPct: r.ServerCPUPerCallPct, RSSPerCallKB: r.RSSPerCallKB, PPSIn: r.PPSIn, PPSOut: r.PPSOut,
		LateFrameRatio: r.LateFrameRatio, AddedLatencyP99Ms: r.LatencyP99Ms, LostOrLeaked: r.LostOrLeaked, SetupFailed: r.SetupFailed}
}

// step is one run of --find-capacity.
type step struct {
	Calls               int      `json:"calls"`
	Monitored           int      `json:"monitored"`
	Held                bool     `json:"held"`
	LateFrameRatio      float64  `json:"late_frame_ratio"`
	LostFrameRatio      float64  `json:"lost_frame_ratio"`
	LostOrLeaked        int      `json:"lost_or_leaked"`
	SetupFailed         int      `json:"setup_failed"`
	ServerCPUPerCallPct *float64 `json:"server_cpu_per_call_pct"`
	HostLateRatio       *float64 `json:"host_late_ratio,omitempty"` // host_probe.late_ratio of the step
}

func bench(args []string, stdout, stderr io.Writer) error {
	if os.Getenv(benchProbeEnv) != "" {
		return benchProbe(stdout)
	}
	if cfg := os.Getenv(benchGeneratorEnv); cfg != "" {
		return benchGenerator(cfg, stdout, stderr)
	}
	f := benchFlags{Config: loadgen.DefaultConfig()}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&f.Calls, "calls", f.Calls, "concurrent calls (customer + agent legs each)")
	fs.IntVar(&f.Monitored, "monitored", 0, "calls of them with a whispering supervisor (*2<ext>)")
	fs.DurationVar(&f.Duration, "duration", f.Duration, "measurement window, after set-up and warm-up")
	fs.DurationVar(&f.WarmUp, "warmup", f.WarmUp, "wait between set-up and the window")
	fs.StringVar(&f.target, "target", "", "SIP address of a running ringside-media (default: start one in-process)")
	fs.IntVar(&f.serverPID, "server-pid", 0, "with --target: the server's process id, to measure its CPU and memory")
	fs.BoolVar(&f.findCapacity, "find-capacity", false, "raise --calls until more than 0.1% of frames are late; report the highest that held")
	fs.BoolVar(&f.compare, "compare", false, "run 10 calls up to --calls (or the capacity found) twice each, all relayed and all whispered, and compare what a call costs")
	fs.BoolVar(&f.probeHost, "probe-host", true, "over the window, measure how late a bare thread on each core wakes (host_probe), to tell the host's stalls from the server's")
	fs.IntVar(&f.maxCalls, "max-calls", 3000, "with --find-capacity: stop here")
	fs.IntVar(&f.AgentBase, "agent-base", f.AgentBase, "extension of the first agent")
	fs.IntVar(&f.SupervisorBase, "supervisor-base", f.SupervisorBase, "extension of the first supervisor")
	fs.StringVar(&f.Password, "password", f.Password, "password of every bench user")
	fs.IntVar(&f.LegsPerGroup, "legs-per-group", f.LegsPerGroup, "generator legs per goroutine and socket")
	fs.IntVar(&f.SetupConcurrency, "setup-concurrency", f.SetupConcurrency, "calls set up at once")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "in-process: write the server's CPU profile over the window to this file")
	fs.StringVar(&f.execTrace, "trace", "", "in-process: write the server's execution trace over the window to this file (go tool trace; -pprof=sched shows who waited for a thread)")
	fs.IntVar(&f.genNice, "generator-nice", 0, "run the load generator at this niceness (0 to 19): the server, the system measured, goes first when they share a core")
	fs.StringVar(&f.genProfile, "generator-cpuprofile", "", "write the load generator's CPU profile over the window to this file")
	fs.StringVar(&f.logLevel, "log-level", "error", "in-process server's log level (to stderr)")
	fs.BoolVar(&f.rtpMux, "rtp-mux", server.DefaultConfig().RTPMux, "in-process server: RTP on shared sockets per clock shard (serve --rtp-mux); false: a socket per leg")
	fs.BoolVar(&f.Realtime, "realtime", server.DefaultConfig().Realtime, "the in-process server's room clock (serve --realtime) and the generator's ticks on real-time threads")
	fs.IntVar(&f.muxSockets, "rtp-mux-sockets", 0, "in-process server, with --rtp-mux: shared sockets per clock shard")
	// A deployment's setting (README: CPU wake latency), so the bench measures with it
	// where it may.
	var awake time.Duration
	f.wakeLatency = &awake
	fs.Var(wakeLatencyFlag{&f.wakeLatency}, "cpu-wake-latency", wakeLatencyUsage+" (serve --cpu-wake-latency; the limit is the machine's, so it holds for a --target server on this machine too; held by default where permitted)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	wakeLatencyAsked := false
	fs.Visit(func(fl *flag.Flag) { wakeLatencyAsked = wakeLatencyAsked || fl.Name == "cpu-wake-latency" })
	if f.Calls <= 0 || f.Monitored < 0 || f.Monitored > f.Calls {
		return usageError{fmt.Errorf("bench: want --calls > 0 and 0 <= --monitored <= --calls")}
	}
	if f.target != "" && (f.cpuProfile != "" || f.execTrace != "") {
		return usageError{errors.New("bench: --cpuprofile and --trace look into the in-process server; drop --target")}
	}
	if f.genNice < 0 || f.genNice > 19 {
		return usageError{fmt.Errorf("bench: --generator-nice %d: give 0 (the default) to 19; the generator never goes before the server", f.genNice)}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return usageError{fmt.Errorf("--log-level: %w", err)}
	}

	ctx := context.Background()
	var wakeLatencyUs *int64
	if f.wakeLatency != nil {
		// Held here rather than by the in-process server: the limit is the machine's, and
		// it holds as well for the generator and for a --target server on this machine.
		release, err := realtime.HoldWakeLatency(*f.wakeLatency)
		switch {
		case err != nil && wakeLatencyAsked:
			return fmt.Errorf("bench: --cpu-wake-latency: %w", err)
		case err != nil:
			fmt.Fprintf(stderr, "bench: idle CPUs may sleep, and frames wait for them to wake (on a virtual machine, the main cause of late frames; README: CPU wake latency): %v\n", err)
		default:
			defer release()
			us := f.wakeLatency.Microseconds()
			wakeLatencyUs = &us
		}
	}
	b := &bencher{f: f, stderr: stderr, pid: f.serverPID}
	if f.target == "" {
		dir, err := os.MkdirTemp("", "ringside-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		cfg := server.DefaultConfig()
		cfg.DataDir = dir
		cfg.SIPAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
		cfg.RTPMin, cfg.RTPMax = 0, 0
		cfg.RTPMux, cfg.RTPMuxSockets = f.rtpMux, f.muxSockets
		cfg.Realtime = f.Realtime
		cfg.Node = "bench"
		cfg.PasswordIterations = 1 // a throwaway store
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
		srv, err := server.Start(ctx, cfg)
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = srv.Stop(sctx)
		}()
		b.srv, b.pid, b.f.Server = srv, os.Getpid(), srv.SIPAddr
	} else {
		b.f.Server = f.target
	}

	var out benchResult
	switch {
	case f.compare && !f.findCapacity:
		// The compare below runs the loads; its top load's whispered run is the result.
	case !f.findCapacity:
		r, err := b.step(ctx, f.Calls, f.Monitored)
		if err != nil {
			return err
		}
		out = r
	default:
		var best *benchResult
		var steps []step
		ratio := float64(f.Monitored) / float64(f.Calls)
		for n := f.Calls; n <= f.maxCalls; n = nextCapacityStep(n) {
			m := int(math.Round(float64(n) * ratio))
			r, err := b.step(ctx, n, m)
			if err != nil && !errors.Is(err, loadgen.ErrNoCalls) {
				return err
			}
			held := err == nil && r.LateFrameRatio <= 0.001 && r.LostFrameRatio <= 0.001 && r.LostOrLeaked == 0 && r.SetupFailed == 0
			steps = append(steps, step{Calls: n, Monitored: m, Held: held, LateFrameRatio: r.LateFrameRatio, LostFrameRatio: r.LostFrameRatio,
				LostOrLeaked: r.LostOrLeaked, SetupFailed: r.SetupFailed, ServerCPUPerCallPct: r.ServerCPUPerCallPct})
			host := ""
			if r.HostProbe != nil {
				steps[len(steps)-1].HostLateRatio = &r.HostProbe.LateRatio
				host = fmt.Sprintf(" (a bare thread: %.4f%% late)", 100*r.HostProbe.LateRatio)
			}
			fmt.Fprintf(stderr, "bench: %d calls (%d monitored): late %.4f%%%s, lost %.4f%%, lost_or_leaked %d -> %s\n",
				n, m, 100*r.LateFrameRatio, host, 100*r.LostFrameRatio, r.LostOrLeaked, map[bool]string{true: "held", false: "did not hold"}[held])
			if !held {
				if best == nil {
					best = &r
				}
				break
			}
			best = &r
			time.Sleep(time.Second) // let the server finish the last calls' history
		}
		out = *best
		capacity := 0
		for _, s := range steps {
			if s.Held {
				capacity = s.Calls
			}
		}
		out.Capacity, out.Steps = &capacity, steps
	}
	if f.compare {
		top := f.Calls
		if out.Capacity != nil {
			top = *out.Capacity
		}
		if top <= 0 {
			return errors.New("bench: --compare: no load held, so there is nothing to compare up to")
		}
		loads, whispered, err := b.compare(ctx, top)
		if err != nil {
			return err
		}
		if !f.findCapacity {
			out = whispered
		}
		out.Compare = loads
	}
	if out.HostKdamonds > 0 {
		fmt.Fprintf(stderr, "bench: the host's kernel runs DAMON (%d kdamond thread(s)), which holds a core for milliseconds about every half second: some frames will be late for it (host_probe shows the host's share; README: host_kdamonds)\n", out.HostKdamonds)
	}
	out.CPUWakeLatencyUs = wakeLatencyUs
	line, err := json.Marshal(out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n", line)
	return nil
}

// compare runs every load of compareLoads(top) twice, all calls relayed and then all
// whispered, and returns the loads and the top load's whispered run.
func (b *bencher) compare(ctx context.Context, top int) ([]load, benchResult, error) {
	var loads []load
	var last benchResult
	fmt.Fprintf(b.stderr, "bench: %6s  %-30s  %-30s  %s\n", "calls", "relayed: %cpu/call late p99", "whispered: %cpu/call late p99", "cpu ratio")
	for _, n := range compareLoads(top) {
		var runs [2]benchResult
		for i, m := range []int{0, n} {
			time.Sleep(time.Second) // let the server finish the last calls' history
			r, err := b.step(ctx, n, m)
			if err != nil {
				return nil, last, fmt.Errorf("bench: --compare at %d calls (%d whispered): %w", n, m, err)
			}
			runs[i] = r
		}
		l := load{Calls: n, Relayed: costOf(runs[0]), Whispered: costOf(runs[1])}
		ratio := "-"
		if a, w := l.Relayed.ServerCPUPerCallPct, l.Whispered.ServerCPUPerCallPct; a != nil && w != nil && *a > 0 {
			r := round3(*w / *a)
			l.CPURatio, ratio = &r, fmt.Sprintf("%.2f", r)
		}
		fmt.Fprintf(b.stderr, "bench: %6d  %-30s  %-30s  %s\n", n, l.Relayed, l.Whispered, ratio)
		loads, last = append(loads, l), runs[1]
	}
	return loads, last, nil
}

// compareLoads is 10, 25, 50, 100, 250, … below top, then top.
func compareLoads(top int) []int {
	var loads []int
	for decade := 10; decade < top; decade *= 10 {
		for _, n := range []int{decade, decade * 5 / 2, decade * 5} {
			if n < top {
				loads = append(loads, n)
			}
		}
	}
	return append(loads, top)
}

// String is a row of the --compare table on stderr.
func (c cost) String() string {
	cpu := "-"
	if c.ServerCPUPerCallPct != nil {
		cpu = fmt.Sprintf("%.3f", *c.ServerCPUPerCallPct)
	}
	return fmt.Sprintf("%s  %.3f%%  %.1f ms", cpu, 100*c.LateFrameRatio, c.AddedLatencyP99Ms)
}

// nextCapacityStep grows by a quarter, in tens.
func nextCapacityStep(n int) int {
	return (n + max(10, n/4) + 9) / 10 * 10
}

type bencher struct {
	f      benchFlags
	stderr io.Writer
	srv    *server.Server // nil with --target
	pid    int            // the server's process, 0 if unknown
	agents int            // bench users created so far (in-process)
	sups   int
}

// ensureUsers adds the bench's agents and supervisors to the in-process server's store.
func (b *bencher) ensureUsers(ctx context.Context, calls, monitored int) error {
	st := b.srv.Store()
	add := func(name string, ext int, role string) error {
		_, err := st.AddUser(ctx, store.NewUser{Name: name, Ext: strconv.Itoa(ext), Password: b.f.Password, Role: role})
		return err
	}
	for ; b.agents < calls; b.agents++ {
		if err := add(fmt.Sprintf("bench-agent-%d", b.agents), b.f.AgentBase+b.agents, store.RoleAgent); err != nil {
			return err
		}
	}
	for ; b.sups < monitored; b.sups++ {
		if err := add(fmt.Sprintf("bench-supervisor-%d", b.sups), b.f.SupervisorBase+b.sups, store.RoleSupervisor); err != nil {
			return err
		}
	}
	return nil
}

// step runs the generator once with calls and monitored and measures the server meanwhile.
func (b *bencher) step(ctx context.Context, calls, monitored int) (benchResult, error) {
	out := benchResult{Mode: "target", Server: b.f.Server, Cores: runtime.NumCPU()}
	if b.srv != nil {
		out.Mode = "in-process"
		if err := b.ensureUsers(ctx, calls, monitored); err != nil {
			return out, err
		}
		runtime.GC()
		debug.FreeOSMemory()
	}
	rss0, rssErr := rssBytes(b.pid)

	cfg := generatorConfig{Config: b.f.Config, CPUProfile: b.f.genProfile, Nice: b.f.genNice}
	cfg.Calls, cfg.Monitored = calls, monitored
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return out, err
	}
	exe, err := os.Executable()
	if err != nil {
		return out, err
	}
	// The host probe starts before the calls: a process starting holds the machine up
	// for tens of milliseconds.
	var probe *probeRun
	if b.f.probeHost {
		probe = startProbe(exe, os.Environ())
	}
	defer probe.end() // the window may not have ended (the generator failed)
	limit := cfg.Duration + cfg.WarmUp + 5*time.Minute
	cctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(cctx, exe, "bench")
	cmd.Env = append(os.Environ(), benchGeneratorEnv+"="+string(cfgJSON), testBinaryArgsEnv+"=bench")
	cmd.Stderr = b.stderr
	stdin, err := cmd.StdinPipe() // closing it tells the generator to stop
	if err != nil {
		return out, err
	}
	defer stdin.Close()
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return out, err
	}
	if err := cmd.Start(); err != nil {
		return out, fmt.Errorf("bench: starting the load generator: %w", err)
	}
	gen := cmd.Process.Pid

	var (
		t0, t1         time.Time
		srv0, srv1     float64
		gen0, gen1     float64
		media0         sip.MediaStats
		rescues0       uint64
		genNice        = b.f.genNice
		rss1           int64
		result         *loadgen.Result
		genErr         string
		profiling      bool
		profileFile    *os.File
		profileStarted bool
		traceFile      *os.File
		tracing        bool
	)
	sc := bufio.NewScanner(pipe)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var msg generatorMessage
		if err := json.Unmarshal(sc.Bytes(), &msg); err != nil {
			continue // not ours (a test binary may print)
		}
		switch msg.Phase {
		case loadgen.WindowStart:
			probe.begin()
			t0 = time.Now()
			out.HostLoad1m = loadAverage()
			out.HostKdamonds = kdamonds()
			srv0, _ = cpuSeconds(b.pid)
			gen0, _ = cpuSeconds(gen)
			if b.srv != nil {
				b.srv.TakeTicks()
				media0 = b.srv.MediaStats()
				rescues0 = b.srv.Rescues()
			}
			if b.f.cpuProfile != "" && b.srv != nil && !profileStarted {
				if profileFile, err = os.Create(b.f.cpuProfile); err == nil && pprof.StartCPUProfile(profileFile) == nil {
					profiling = true
				}
				profileStarted = true
			}
			if b.f.execTrace != "" && b.srv != nil && traceFile == nil {
				if traceFile, err = os.Create(b.f.execTrace); err == nil && trace.Start(traceFile) == nil {
					tracing = true
				}
			}
		case loadgen.WindowEnd:
			t1 = time.Now()
			srv1, _ = cpuSeconds(b.pid)
			gen1, _ = cpuSeconds(gen)
			if n, err := leastNice(gen); err == nil {
				genNice = n // what its threads run at, not just what was asked
			}
			rss1, _ = rssBytes(b.pid)
			if b.srv != nil {
				t := b.srv.TakeTicks()
				lag := round3(t.MaxLag.Seconds() * 1000)
				out.ServerPolls, out.ServerLatePolls, out.ServerPollLagMaxMs = &t.Polls, &t.Late, &lag
				rescues := b.srv.Rescues() - rescues0
				out.ServerRescues = &rescues
				rt := b.srv.RealtimeShards()
				out.ServerRealtimeShards = &rt
				m := b.srv.MediaStats()
				missing, dropped := m.JitterMissing-media0.JitterMissing, m.JitterDropped-media0.JitterDropped
				out.ServerJitterMissing, out.ServerJitterDropped = &missing, &dropped
			}
			out.HostProbe = probe.end() // after the readings: it waits for the probe to exit
			if profiling {
				pprof.StopCPUProfile()
				profiling = false
			}
			if tracing {
				trace.Stop()
				tracing = false
			}
		}
		if msg.Result != nil {
			result = msg.Result
		}
		if msg.Error != "" {
			genErr = msg.Error
		}
	}
	if profiling {
		pprof.StopCPUProfile()
	}
	if profileFile != nil {
		profileFile.Close()
	}
	if tracing {
		trace.Stop()
	}
	if traceFile != nil {
		traceFile.Close()
	}
	waitErr := cmd.Wait()
	if result == nil {
		if genErr != "" {
			if strings.Contains(genErr, loadgen.ErrNoCalls.Error()) {
				return out, fmt.Errorf("bench: %s: %w", genErr, loadgen.ErrNoCalls)
			}
			return out, fmt.Errorf("bench: %s", genErr)
		}
		return out, fmt.Errorf("bench: the load generator gave no result: %v", waitErr)
	}
	out.Result = *result
	roundResult(&out.Result)
	window := t1.Sub(t0).Seconds()
	if window > 0 {
		out.GeneratorCPUPct = round3(100 * (gen1 - gen0) / window)
		out.GeneratorNice = genNice
		if b.pid != 0 {
			pct := round3(100 * (srv1 - srv0) / window)
			out.ServerCPUPct = &pct
			if out.CallsUp > 0 {
				per := round3(pct / float64(out.CallsUp))
				out.ServerCPUPerCallPct = &per
			}
		}
	}
	if b.pid != 0 && rssErr == nil && rss1 > 0 {
		mb := round3(float64(rss1) / (1 << 20))
		out.ServerRSSMB = &mb
		if out.CallsUp > 0 {
			kb := round3(float64(rss1-rss0) / 1024 / float64(out.CallsUp))
			out.RSSPerCallKB = &kb
		}
	}
	return out, nil
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// roundResult keeps the JSON readable; ratios keep their precision.
func roundResult(r *loadgen.Result) {
	for _, p := range []*float64{&r.SetupCallsPerS, &r.MonitorSetupPerS, &r.WindowS, &r.PPSIn, &r.PPSOut} {
		*p = math.Round(*p*10) / 10
	}
	r.LateFrameRatio = math.Round(r.LateFrameRatio*1e6) / 1e6
	r.LostFrameRatio = math.Round(r.LostFrameRatio*1e6) / 1e6
	// Latencies come from 0.1 ms buckets.
	ms := []*float64{&r.LatencyP50Ms, &r.LatencyP99Ms}
	for _, p := range r.Latency.All() {
		ms = append(ms, &p.P50Ms, &p.P99Ms)
	}
	for _, p := range ms {
		*p = math.Round(*p*10) / 10
	}
}

// generatorMessage is one line from the generator child.
type generatorMessage struct {
	Phase  loadgen.Phase   `json:"phase,omitempty"`
	Result *loadgen.Result `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// benchGenerator is the child: it runs the load and reports on stdout.
func benchGenerator(cfgJSON string, stdout, stderr io.Writer) error {
	var gc generatorConfig
	if err := json.Unmarshal([]byte(cfgJSON), &gc); err != nil {
		return fmt.Errorf("bench generator: config: %w", err)
	}
	cfg := gc.Config
	if gc.Nice != 0 {
		if err := niceProcess(gc.Nice); err != nil {
			return fmt.Errorf("bench generator: --generator-nice %d: %w", gc.Nice, err)
		}
	}
	emit := func(m generatorMessage) {
		line, _ := json.Marshal(m)
		fmt.Fprintf(stdout, "%s\n", line)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var profile *os.File
	cfg.Progress = func(p loadgen.Phase) {
		switch {
		case p == loadgen.WindowStart && gc.CPUProfile != "":
			if f, err := os.Create(gc.CPUProfile); err == nil && pprof.StartCPUProfile(f) == nil {
				profile = f
			}
		case p == loadgen.WindowEnd && profile != nil:
			pprof.StopCPUProfile()
			profile.Close()
			profile = nil
		}
		emit(generatorMessage{Phase: p})
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// The parent holds our stdin open while it waits for us.
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	res, err := loadgen.Run(ctx, cfg)
	if err != nil {
		emit(generatorMessage{Error: err.Error()})
		return err
	}
	emit(generatorMessage{Result: &res})
	return nil
}

// cpuSeconds is the user+system CPU time of a process, from /proc/<pid>/stat.
func cpuSeconds(pid int) (float64, error) {
	if pid == 0 {
		return 0, errors.New("no pid")
	}
	fields, err := statFields(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	utime, err1 := strconv.ParseFloat(fields[11], 64) // field 14 of stat
	stime, err2 := strconv.ParseFloat(fields[12], 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, errors.New("bad /proc stat")
	}
	return (utime + stime) / clockTicksPerS, nil
}

// leastNice is the lowest niceness among a process's threads, from
// /proc/<pid>/task/*/stat: Linux keeps niceness per thread.
func leastNice(pid int) (int, error) {
	stats, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/[0-9]*/stat", pid))
	least, found := 0, false
	for _, st := range stats {
		fields, err := statFields(st)
		if err != nil {
			continue // the thread ended
		}
		if n, err := strconv.Atoi(fields[16]); err == nil && (!found || n < least) { // field 19
			least, found = n, true
		}
	}
	if !found {
		return 0, fmt.Errorf("no threads of process %d in /proc", pid)
	}
	return least, nil
}

// statFields are the fields of a /proc stat file after the command name (which is in
// parentheses and may hold spaces): field 3 first. There are at least 17.
func statFields(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, errors.New("bad /proc stat")
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 17 {
		return nil, errors.New("bad /proc stat")
	}
	return fields, nil
}

// loadAverage is the machine's 1-minute load average (0 if unknown).
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// rssBytes is a process's resident set, from /proc/<pid>/status.
func rssBytes(pid int) (int64, error) {
	if pid == 0 {
		return 0, errors.New("no pid")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS")
}
