package loadgen_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"ringside/server"
	"ringside/server/loadgen"
	"ringside/server/store"
)

func startServer(t *testing.T, agents, supervisors int) *server.Server {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.SIPAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.RTPMin, cfg.RTPMax = 0, 0
	cfg.PasswordIterations = 1
	srv, err := server.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	def := loadgen.DefaultConfig()
	add := func(name string, ext int, role string) {
		if _, err := srv.Store().AddUser(context.Background(), store.NewUser{Name: name, Ext: strconv.Itoa(ext), Password: def.Password, Role: role}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range agents {
		add("agent"+strconv.Itoa(i), def.AgentBase+i, store.RoleAgent)
	}
	for i := range supervisors {
		add("sup"+strconv.Itoa(i), def.SupervisorBase+i, store.RoleSupervisor)
	}
	return srv
}

// TestRunHearsTheMatrix: three calls, two whispered; every leg hears what it should, the
// customer never the supervisor, and the numbers add up.
func TestRunHearsTheMatrix(t *testing.T) {
	srv := startServer(t, 3, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var phases []loadgen.Phase
	res, err := loadgen.Run(ctx, loadgen.Config{
		Server: srv.SIPAddr, Calls: 3, Monitored: 2, Duration: 2 * time.Second, WarmUp: time.Second,
		Progress: func(p loadgen.Phase) { phases = append(phases, p) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.CallsUp != 3 || res.MonitorsUp != 2 || res.SetupFailed != 0 {
		t.Errorf("calls up %d, monitors up %d, failed %d; want 3, 2, 0", res.CallsUp, res.MonitorsUp, res.SetupFailed)
	}
	if res.LostOrLeaked != 0 {
		t.Errorf("lost_or_leaked = %d (leaks %d, missing %d), want 0", res.LostOrLeaked, res.WhisperLeaks, res.MissingTones)
	}
	// 8 legs at 50 packets a second each way.
	for name, pps := range map[string]float64{"in": res.PPSIn, "out": res.PPSOut} {
		if pps < 8*50*0.9 || pps > 8*50*1.1 {
			t.Errorf("pps_%s = %.0f, want about 400", name, pps)
		}
	}
	if res.LatencySamples == 0 || res.LatencyP50Ms <= 0 || res.LatencyP99Ms < res.LatencyP50Ms {
		t.Errorf("latency p50 %.1f p99 %.1f from %d samples", res.LatencyP50Ms, res.LatencyP99Ms, res.LatencySamples)
	}
	// Every audio path is measured, the monitoring ones on the two whispered calls, each
	// marker once per second per call (the supervisor's twice).
	paths := res.Latency.All()
	if len(paths) != 5 {
		t.Errorf("latency_ms has %d paths, want 5", len(paths))
	}
	for name, p := range paths {
		if p.N == 0 || p.P50Ms <= 0 || p.P50Ms >= 100 || p.P99Ms < p.P50Ms || p.P99Ms > 500 {
			t.Errorf("%s: p50 %.1f ms, p99 %.1f ms from %d markers (%d missed)", name, p.P50Ms, p.P99Ms, p.N, p.Missed)
		}
		if p.Missed > p.N {
			t.Errorf("%s: %d markers missed, %d measured", name, p.Missed, p.N)
		}
	}
	conv := res.Latency.CustomerToAgent.N + res.Latency.AgentToCustomer.N
	if res.LatencySamples != conv {
		t.Errorf("latency_samples %d, want the conversation paths' %d", res.LatencySamples, conv)
	}
	if len(phases) != 3 {
		t.Errorf("phases %v", phases)
	}
}

// TestRunCatchesALeak: a supervisor in barge is heard by the customer, which the tone
// check must report as a whisper leak on every such call.
func TestRunCatchesALeak(t *testing.T) {
	srv := startServer(t, 2, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := loadgen.Run(ctx, loadgen.Config{
		Server: srv.SIPAddr, Calls: 2, Monitored: 1, Duration: time.Second, WarmUp: time.Second, MonitorCode: "*3",
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.WhisperLeaks != 1 || res.LostOrLeaked != 1 {
		t.Errorf("barge: whisper_leaks %d, lost_or_leaked %d; want 1 and 1", res.WhisperLeaks, res.LostOrLeaked)
	}
}
