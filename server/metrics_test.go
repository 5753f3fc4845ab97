package server_test

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrape reads /metrics (no token) into "name{labels}" → value.
func (r *rig) scrape() map[string]float64 {
	r.t.Helper()
	res, err := http.Get(r.srv.URL() + "/metrics")
	if err != nil {
		r.t.Fatalf("GET /metrics: %v", err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		r.t.Fatalf("GET /metrics: status %d: %s", res.StatusCode, b)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			r.t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// waitMetric polls until a metric has the wanted value.
func (r *rig) waitMetric(name string, ok func(float64) bool) map[string]float64 {
	r.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		m := r.scrape()
		v, found := m[name]
		if found && ok(v) {
			return m
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("metric %s = %v (present %v), not as expected", name, v, found)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestMetrics(t *testing.T) {
	r := newRig(t)
	m := r.scrape()
	for _, name := range []string{
		`ringside_calls_active`, `ringside_calls_total{direction="inbound"}`,
		`ringside_legs_active{role="customer"}`, `ringside_monitors_active{mode="whisper"}`,
		`ringside_jitter_dropped_frames_total`, `ringside_jitter_missing_frames_total`,
		`ringside_rtp_foreign_packets_total`, `ringside_rtp_malformed_packets_total`,
		`ringside_late_ticks_total`, `ringside_tick_lag_seconds_count`, `ringside_clock_rescues_total`,
		`ringside_auth_failures_total{method="REGISTER"}`, `go_goroutines`,
	} {
		if _, ok := m[name]; !ok {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if m[`ringside_calls_active`] != 0 || m[`ringside_auth_failures_total{method="REGISTER"}`] != 0 {
		t.Errorf("fresh server: calls_active %v, auth failures %v", m[`ringside_calls_active`], m[`ringside_auth_failures_total{method="REGISTER"}`])
	}

	alice := r.phone("1001", "alice-pw", agentHz, true)
	_, agentCall := r.call(alice, "1001")
	sam := r.phone("2001", "sam-pw", supervisorHz, false)
	mon := r.monitor(sam, "*21001")
	// Some audio flows through the mixer before we look.
	if err := agentCall.WaitRecording(ctx(t, 10*time.Second), 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	m = r.waitMetric(`ringside_monitors_active{mode="whisper"}`, func(v float64) bool { return v == 1 })
	want := map[string]float64{
		`ringside_calls_active`:                     1,
		`ringside_calls_total{direction="inbound"}`: 1,
		`ringside_legs_active{role="customer"}`:     1,
		`ringside_legs_active{role="agent"}`:        1,
		`ringside_legs_active{role="supervisor"}`:   1,
		`ringside_monitors_active{mode="listen"}`:   0,
		`ringside_monitors_active{mode="whisper"}`:  1,
		`ringside_monitors_active{mode="barge"}`:    0,
	}
	for name, v := range want {
		if m[name] != v {
			t.Errorf("%s = %v, want %v", name, m[name], v)
		}
	}
	if m[`ringside_tick_lag_seconds_count`] <= 0 {
		t.Errorf("tick lag histogram is empty during a call")
	}
	if m[`ringside_tick_duration_seconds_count`] <= 0 {
		t.Errorf("tick duration histogram is empty during a call")
	}

	// A wrong password is an auth failure; the first, credential-less REGISTER is not.
	bad := r.phone("1002", "wrong", 0, false)
	if err := bad.Register(ctx(t, 5*time.Second), time.Hour); err == nil {
		t.Fatal("a wrong password registered")
	}
	m = r.waitMetric(`ringside_auth_failures_total{method="REGISTER"}`, func(v float64) bool { return v >= 1 })

	// Leaving and hanging up brings the gauges back to zero; counters stay.
	if err := mon.Hangup(ctx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	r.waitMetric(`ringside_monitors_active{mode="whisper"}`, func(v float64) bool { return v == 0 })
	if err := agentCall.Hangup(ctx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	m = r.waitMetric(`ringside_calls_active`, func(v float64) bool { return v == 0 })
	for _, role := range []string{"customer", "agent", "supervisor"} {
		if v := m[`ringside_legs_active{role="`+role+`"}`]; v != 0 {
			t.Errorf("after the call, legs_active{role=%q} = %v", role, v)
		}
	}
	if v := m[`ringside_calls_total{direction="inbound"}`]; v != 1 {
		t.Errorf("after the call, calls_total{inbound} = %v, want 1", v)
	}
}
