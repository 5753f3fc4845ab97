package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ringside/server/realtime"
)

// TestBenchSmallRun runs the whole bench: an in-process server, the load generator in a
// child process (this test binary again, at niceness 3), 5 calls of which 2 whispered,
// for 3 s.
func TestBenchSmallRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real calls for a few seconds")
	}
	var out, errOut bytes.Buffer
	if err := run([]string{"bench", "--calls", "5", "--monitored", "2", "--duration", "3s", "--warmup", "1s", "--generator-nice", "3"}, &out, &errOut); err != nil {
		t.Fatalf("bench: %v\n%s", err, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	t.Log(last)
	var got map[string]any
	if err := json.Unmarshal([]byte(last), &got); err != nil {
		t.Fatalf("last line is not JSON: %v\n%s", err, last)
	}
	for _, k := range []string{"calls", "monitored", "pps_in", "pps_out", "server_cpu_per_call_pct", "generator_cpu_pct",
		"late_frame_ratio", "added_latency_ms_p50", "added_latency_ms_p99", "setup_calls_per_s", "rss_per_call_kb", "lost_or_leaked"} {
		if _, ok := got[k].(float64); !ok {
			t.Errorf("%s = %v, want a number", k, got[k])
		}
	}
	num := func(k string) float64 { v, _ := got[k].(float64); return v }
	if num("calls") != 5 || num("monitored") != 2 || num("calls_up") != 5 || num("monitors_up") != 2 {
		t.Errorf("calls %v/%v up, monitors %v/%v up", got["calls_up"], got["calls"], got["monitors_up"], got["monitored"])
	}
	if num("lost_or_leaked") != 0 {
		t.Errorf("lost_or_leaked = %v (whisper_leaks %v, missing_tones %v), want 0", got["lost_or_leaked"], got["whisper_leaks"], got["missing_tones"])
	}
	// 12 legs (5 customers, 5 agents, 2 supervisors) at 50 packets a second each way.
	for _, k := range []string{"pps_in", "pps_out"} {
		if v := num(k); v < 12*50*0.8 || v > 12*50*1.2 {
			t.Errorf("%s = %.0f, want about 600", k, v)
		}
	}
	if r := num("late_frame_ratio"); r < 0 || r > 1 {
		t.Errorf("late_frame_ratio = %v", r)
	}
	// The jitter buffer holds two frames, so the server adds tens of milliseconds.
	if p50, p99 := num("added_latency_ms_p50"), num("added_latency_ms_p99"); p50 <= 0 || p99 < p50 || p99 > 500 {
		t.Errorf("added latency p50 %v ms, p99 %v ms", p50, p99)
	}
	// Every audio path on its own: the conversation both ways, and on the two whispered
	// calls the supervisor hearing either party and its whisper reaching the agent.
	paths, _ := got["latency_ms"].(map[string]any)
	for _, name := range []string{"customer_to_agent", "agent_to_customer", "customer_to_supervisor", "agent_to_supervisor", "supervisor_to_agent"} {
		p, _ := paths[name].(map[string]any)
		p50, _ := p["p50"].(float64)
		p99, _ := p["p99"].(float64)
		n, _ := p["n"].(float64)
		if n <= 0 || p50 <= 0 || p50 >= 100 || p99 < p50 || p99 > 500 {
			t.Errorf("latency_ms.%s = %v, want markers measured, p50 under 100 ms", name, paths[name])
		}
	}
	if num("server_cpu_per_call_pct") < 0 || num("generator_cpu_pct") < 0 || num("setup_calls_per_s") <= 0 {
		t.Errorf("cpu per call %v, generator cpu %v, setup %v/s", got["server_cpu_per_call_pct"], got["generator_cpu_pct"], got["setup_calls_per_s"])
	}
	// The server's jitter buffers, over the window only: at most one missing frame per
	// leg and tick (a count from before the window, or one gone backwards, would not fit).
	legTicks := 12 * 50 * num("window_s")
	for _, k := range []string{"server_jitter_missing", "server_jitter_dropped"} {
		if v, ok := got[k].(float64); !ok || v < 0 || v > legTicks {
			t.Errorf("%s = %v, want a count under %.0f", k, got[k], legTicks)
		}
	}
	// The host probe woke on every core every 5 ms of the 3 s window: it runs from before
	// the set-up, but counts only the window's instants (set-up and warm-up would add a
	// third more).
	probe, _ := got["host_probe"].(map[string]any)
	cores, _ := probe["cores"].(float64)
	wakes, _ := probe["wakes"].(float64)
	ratio, _ := probe["late_ratio"].(float64)
	if cores < 1 || wakes < 3000/5*0.9 || wakes > 3000/5*1.1 || ratio < 0 || ratio > 1 || probe["error"] != nil {
		t.Errorf("host_probe = %v, want about 600 wakes on each core", got["host_probe"])
	}
	// Every thread of the generator runs at the niceness asked for, as /proc shows it:
	// one left at 0 would read 0.
	if n := num("generator_nice"); n != 3 {
		t.Errorf("generator_nice = %v, want 3 (--generator-nice 3) for all its threads", n)
	}
	// The CPU wake latency limit, held by default where the bench may (root, Linux); where
	// it may not, stderr says why and the bench runs on.
	if _, err := realtime.WakeLatency(); err == nil && os.Geteuid() == 0 {
		if v, ok := got["cpu_wake_latency_us"].(float64); !ok || v != 0 {
			t.Errorf("cpu_wake_latency_us = %v, want 0: held by default as root", got["cpu_wake_latency_us"])
		}
	} else if _, ok := got["cpu_wake_latency_us"]; ok || !strings.Contains(errOut.String(), "idle CPUs may sleep") {
		t.Errorf("cpu_wake_latency_us = %v where it cannot be held; stderr %q, want it to say why", got["cpu_wake_latency_us"], errOut.String())
	}
	// DAMON's threads, as ps would list them, and the warning on stderr when there are any.
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	damon := 0
	for _, s := range stats {
		if b, err := os.ReadFile(s); err == nil && bytes.Contains(b, []byte("(kdamond")) {
			damon++
		}
	}
	warned := strings.Contains(errOut.String(), "runs DAMON")
	if num("host_kdamonds") != float64(damon) || warned != (damon > 0) {
		t.Errorf("host_kdamonds = %v and warned %v, want %d kdamond threads (from /proc/*/stat)", got["host_kdamonds"], warned, damon)
	}
}

func TestSummarizeProbe(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		d := make([]time.Duration, len(v))
		for i, x := range v {
			d[i] = time.Duration(x) * time.Millisecond
		}
		return d
	}
	// Core 0 stalls at instants 1 and 2, core 1 at 2 and 3: 4 late wakes of 10, and only
	// at instant 2 did no core wake in time.
	p := summarize([][]time.Duration{ms(0, 6, 7, 1, 0), ms(1, 0, 9, 6, 0, 4)})
	want := hostProbe{Cores: 2, Wakes: 5, LateRatio: 0.4, AllCoresLateRatio: 0.2, LagMsMax: 9}
	if p != want {
		t.Errorf("summarize = %+v, want %+v", p, want)
	}
}

// TestBenchCompare runs --compare at 3 calls: the same load relayed, then whispered, on one
// server; the whispered run carries the supervisors' legs too, and is the result.
func TestBenchCompare(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real calls for a few seconds")
	}
	var out, errOut bytes.Buffer
	if err := run([]string{"bench", "--calls", "3", "--compare", "--duration", "2s", "--warmup", "1s"}, &out, &errOut); err != nil {
		t.Fatalf("bench --compare: %v\n%s", err, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var got benchResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
		t.Fatalf("last line is not JSON: %v\n%s", err, lines[len(lines)-1])
	}
	if got.Calls != 3 || got.Monitored != 3 || got.MonitorsUp != 3 || len(got.Compare) != 1 {
		t.Fatalf("calls %d, monitored %d (%d up), %d loads compared; want the whispered run of 3 calls and one load", got.Calls, got.Monitored, got.MonitorsUp, len(got.Compare))
	}
	l := got.Compare[0]
	// Customer and agent legs both ways; whispered, a supervisor's leg too: 50 packets a second each.
	for _, c := range []struct {
		name string
		cost cost
		legs float64
	}{{"relayed", l.Relayed, 6}, {"whispered", l.Whispered, 9}} {
		if v := c.cost.PPSIn; v < c.legs*50*0.8 || v > c.legs*50*1.2 {
			t.Errorf("%s: pps_in %.0f, want about %.0f", c.name, v, c.legs*50)
		}
		if c.cost.LostOrLeaked != 0 || c.cost.SetupFailed != 0 {
			t.Errorf("%s: lost_or_leaked %d, setup_failed %d", c.name, c.cost.LostOrLeaked, c.cost.SetupFailed)
		}
		if c.cost.ServerCPUPerCallPct == nil {
			t.Errorf("%s: no server CPU per call", c.name)
		}
	}
	if l.CPURatio == nil || *l.CPURatio <= 0 {
		t.Errorf("whispered_cpu_ratio = %v, want a ratio", l.CPURatio)
	}
	if !strings.Contains(errOut.String(), "whispered: %cpu/call") {
		t.Errorf("no comparison table on stderr:\n%s", errOut.String())
	}
}

func TestCompareLoads(t *testing.T) {
	for top, want := range map[int]string{
		3:    "[3]",
		10:   "[10]",
		12:   "[10 12]",
		500:  "[10 25 50 100 250 500]",
		1000: "[10 25 50 100 250 500 1000]",
		1200: "[10 25 50 100 250 500 1000 1200]",
	} {
		if got := fmt.Sprint(compareLoads(top)); got != want {
			t.Errorf("compareLoads(%d) = %s, want %s", top, got, want)
		}
	}
}

// TestBenchRealtime: with --realtime the server's clock and the generator's ticks run on
// real-time threads, and the calls are as whole as on normal ones; with --cpu-wake-latency
// the bench holds the limit over its run and says so.
func TestBenchRealtime(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real calls for a few seconds")
	}
	if os.Getenv("RINGSIDE_TEST_REALTIME") == "" {
		t.Skip("its real-time threads go before the tests running beside it: make test runs it alone (RINGSIDE_TEST_REALTIME=1)")
	}
	if os.Geteuid() != 0 {
		t.Skip("real-time threads need root or CAP_SYS_NICE")
	}
	var out, errOut bytes.Buffer
	if err := run([]string{"bench", "--calls", "5", "--monitored", "2", "--duration", "2s", "--warmup", "1s", "--realtime", "--cpu-wake-latency", "0s", "--probe-host=false"}, &out, &errOut); err != nil {
		t.Fatalf("bench: %v\n%s", err, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var got map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
		t.Fatalf("last line is not JSON: %v", err)
	}
	num := func(k string) float64 { v, _ := got[k].(float64); return v }
	if num("server_realtime_shards") < 1 || num("generator_realtime_threads") < 1 {
		t.Errorf("server_realtime_shards %v, generator_realtime_threads %v, want both on real-time threads; stderr: %s",
			got["server_realtime_shards"], got["generator_realtime_threads"], errOut.String())
	}
	if v, ok := got["cpu_wake_latency_us"].(float64); !ok || v != 0 {
		t.Errorf("cpu_wake_latency_us %v, want 0 (held, --cpu-wake-latency 0s)", got["cpu_wake_latency_us"])
	}
	if num("calls_up") != 5 || num("monitors_up") != 2 || num("lost_or_leaked") != 0 {
		t.Errorf("calls up %v, monitors up %v, lost_or_leaked %v: want 5, 2, 0", got["calls_up"], got["monitors_up"], got["lost_or_leaked"])
	}
	if v := num("pps_out"); v < 12*50*0.8 || v > 12*50*1.2 {
		t.Errorf("pps_out = %.0f, want about 600", v)
	}
	if p50 := num("added_latency_ms_p50"); p50 <= 0 || p50 > 100 {
		t.Errorf("added_latency_ms_p50 = %v", p50)
	}
}
