package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"ringside/server/room"
	"ringside/server/sip"
)

func TestMetrics(t *testing.T) {
	m := New(func() sip.MediaStats {
		return sip.MediaStats{
			CallsActive:    2,
			CallsStarted:   map[string]uint64{"inbound": 5, "outbound": 1},
			LegsActive:     map[room.Role]int{room.Customer: 2, room.Agent: 2, room.Supervisor: 1},
			MonitorsByMode: map[room.Mode]int{room.Barge: 1},
			JitterDropped:  7, JitterMissing: 9, RTPForeign: 3, RTPMalformed: 4,
		}
	})
	m.ObserveTick(time.Millisecond, 100*time.Microsecond)
	m.ObserveTick(6*time.Millisecond, 100*time.Microsecond)
	m.ObserveTick(-time.Millisecond, 100*time.Microsecond)
	m.CountRescues(func() uint64 { return 12 })
	m.CountRealtimeShards(func() int { return 4 })
	m.AuthFailure("REGISTER")
	m.AuthFailure("REGISTER")
	m.AuthFailure("X-SOMETHING-ODD")

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	out := string(b)
	for _, want := range []string{
		"ringside_calls_active 2\n",
		`ringside_calls_total{direction="inbound"} 5` + "\n",
		`ringside_calls_total{direction="outbound"} 1` + "\n",
		`ringside_legs_active{role="customer"} 2` + "\n",
		`ringside_legs_active{role="supervisor"} 1` + "\n",
		`ringside_monitors_active{mode="barge"} 1` + "\n",
		`ringside_monitors_active{mode="listen"} 0` + "\n",
		"ringside_jitter_dropped_frames_total 7\n",
		"ringside_jitter_missing_frames_total 9\n",
		"ringside_rtp_foreign_packets_total 3\n",
		"ringside_rtp_malformed_packets_total 4\n",
		"ringside_tick_lag_seconds_count 3\n",
		"ringside_late_ticks_total 1\n",
		"ringside_clock_rescues_total 12\n",
		"ringside_clock_realtime_shards 4\n",
		`ringside_auth_failures_total{method="REGISTER"} 2` + "\n",
		`ringside_auth_failures_total{method="INVITE"} 0` + "\n",
		`ringside_auth_failures_total{method="other"} 1` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}
