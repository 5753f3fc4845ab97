// Package metrics exposes ringside-media's Prometheus metrics on a registry of its own
// (never the global default one). What can be read off the live calls (calls, legs,
// monitors, jitter-buffer and RTP counters) is gathered at scrape time from a snapshot of
// the SIP server, so the media path does no extra work; only the clock's tick lag and
// authentication failures are counted as they happen.
//
// The metrics carry no user data (no names, extensions or numbers), so /metrics is served
// without a token.
package metrics

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"ringside/server/room"
	"ringside/server/sip"
)

// LateTick is how late a poll of the room clock may start before it counts in
// ringside_late_ticks_total: frames due at it go out that much late.
const LateTick = 5 * time.Millisecond

// Metrics holds ringside-media's collectors and their registry.
type Metrics struct {
	Registry *prometheus.Registry

	tickLag      prometheus.Histogram
	tickTook     prometheus.Histogram
	lateTicks    prometheus.Counter
	authFailures *prometheus.CounterVec

	// For TakeTicks (the bench): the same polls, counted without Prometheus.
	polls, latePolls atomic.Uint64
	maxLag           atomic.Int64 // ns, since the last TakeTicks
}

// TickStats is what the room clock's polls did since the last TakeTicks.
type TickStats struct {
	Polls, Late uint64        // polls, and those that started more than LateTick late
	MaxLag      time.Duration // the latest start
}

// TakeTicks reports the polls since its last call (or since New).
func (m *Metrics) TakeTicks() TickStats {
	return TickStats{Polls: m.polls.Swap(0), Late: m.latePolls.Swap(0), MaxLag: time.Duration(m.maxLag.Swap(0))}
}

// New registers every collector on a new registry. stats is asked for a snapshot at each
// scrape (the SIP server's MediaStats); nil leaves those metrics out.
func New(stats func() sip.MediaStats) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		tickLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ringside_tick_lag_seconds",
			Help:    "How late each poll of the room clock (a few a frame) started.",
			Buckets: []float64{0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1},
		}),
		tickTook: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ringside_tick_duration_seconds",
			Help:    "How long each poll of the room clock took to take, mix and send the frames due in its shard's rooms.",
			Buckets: []float64{0.00005, 0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02},
		}),
		lateTicks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ringside_late_ticks_total",
			Help: "Polls of the room clock that started more than 5 ms late.",
		}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringside_auth_failures_total",
			Help: "SIP requests refused for bad credentials or too many failed attempts, by method.",
		}, []string{"method"}),
	}
	for _, method := range []string{"REGISTER", "INVITE"} {
		m.authFailures.WithLabelValues(method)
	}
	m.Registry.MustRegister(m.tickLag, m.tickTook, m.lateTicks, m.authFailures,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if stats != nil {
		m.Registry.MustRegister(&snapshotCollector{stats: stats})
	}
	return m
}

// CountRescues exports rescues (room.Clock.Rescues), read at each scrape, as
// ringside_clock_rescues_total.
func (m *Metrics) CountRescues(rescues func() uint64) {
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "ringside_clock_rescues_total",
		Help: "Times a room-clock shard found another 1.5 ms past its poll (its thread stalled) and serviced that shard's overdue rooms.",
	}, func() float64 { return float64(rescues()) }))
}

// CountRealtimeShards exports shards (room.Clock.RealtimeShards), read at each scrape, as
// ringside_clock_realtime_shards.
func (m *Metrics) CountRealtimeShards(shards func() int) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ringside_clock_realtime_shards",
		Help: "Room-clock shards running on real-time threads (serve --realtime); 0 when off or refused by the kernel.",
	}, func() float64 { return float64(shards()) }))
}

// WakeLatencyHeld exports the CPU wake latency limit the server holds
// (serve --cpu-wake-latency) as ringside_cpu_wake_latency_seconds; absent while none is.
func (m *Metrics) WakeLatencyHeld(limit time.Duration) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ringside_cpu_wake_latency_seconds",
		Help: "The CPU wake latency limit serve holds (--cpu-wake-latency; 0: idle CPUs poll); absent when it holds none.",
	}, limit.Seconds))
}

// ObserveTick takes the clock's report of one poll (room.Clock.OnTick).
func (m *Metrics) ObserveTick(lag, took time.Duration) {
	lag = max(lag, 0)
	m.tickLag.Observe(lag.Seconds())
	m.tickTook.Observe(took.Seconds())
	m.polls.Add(1)
	if lag > LateTick {
		m.lateTicks.Inc()
		m.latePolls.Add(1)
	}
	for {
		old := m.maxLag.Load()
		if int64(lag) <= old || m.maxLag.CompareAndSwap(old, int64(lag)) {
			break
		}
	}
}

// AuthFailure counts a refused request (sip.Config.OnAuthFailure).
func (m *Metrics) AuthFailure(method string) {
	switch method {
	case "REGISTER", "INVITE", "SUBSCRIBE", "MESSAGE", "OPTIONS", "REFER", "INFO", "BYE":
	default:
		method = "other" // keep the label set bounded whatever arrives
	}
	m.authFailures.WithLabelValues(method).Inc()
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// snapshotCollector turns one MediaStats per scrape into metrics.
type snapshotCollector struct {
	stats func() sip.MediaStats
}

var (
	descCallsActive = prometheus.NewDesc("ringside_calls_active",
		"Phone calls in progress (ringing, talking or held).", nil, nil)
	descCallsTotal = prometheus.NewDesc("ringside_calls_total",
		"Phone calls started, by direction.", []string{"direction"}, nil)
	descLegsActive = prometheus.NewDesc("ringside_legs_active",
		"Call legs with media, by role.", []string{"role"}, nil)
	descMonitorsActive = prometheus.NewDesc("ringside_monitors_active",
		"Supervisors monitoring a call, by mode.", []string{"mode"}, nil)
	descJitterDropped = prometheus.NewDesc("ringside_jitter_dropped_frames_total",
		"Inbound audio frames the jitter buffers refused or discarded unplayed (late, overflow, new stream, mode switch).", nil, nil)
	descJitterMissing = prometheus.NewDesc("ringside_jitter_missing_frames_total",
		"Ticks at which a leg's jitter buffer had no frame to play (loss or late audio).", nil, nil)
	descRTPForeign = prometheus.NewDesc("ringside_rtp_foreign_packets_total",
		"RTP packets dropped for coming from an address other than the one signalled in SDP.", nil, nil)
	descRTPMalformed = prometheus.NewDesc("ringside_rtp_malformed_packets_total",
		"Packets dropped for not being RTP or carrying an unexpected payload type.", nil, nil)
	descSRTPDropped = prometheus.NewDesc("ringside_srtp_dropped_packets_total",
		"SRTP packets dropped for failing authentication or the replay check, or for coming before the DTLS handshake gave keys.", nil, nil)
)

func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCallsActive, descCallsTotal, descLegsActive, descMonitorsActive,
		descJitterDropped, descJitterMissing, descRTPForeign, descRTPMalformed, descSRTPDropped} {
		ch <- d
	}
}

func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descCallsActive, float64(s.CallsActive))
	for _, dir := range []string{"inbound", "outbound"} {
		counter(descCallsTotal, s.CallsStarted[dir], dir)
	}
	for d, n := range s.CallsStarted {
		if d != "inbound" && d != "outbound" {
			counter(descCallsTotal, n, d)
		}
	}
	for _, r := range []room.Role{room.Customer, room.Agent, room.Supervisor} {
		gauge(descLegsActive, float64(s.LegsActive[r]), r.String())
	}
	for _, mode := range []room.Mode{room.Listen, room.Whisper, room.Barge} {
		gauge(descMonitorsActive, float64(s.MonitorsByMode[mode]), string(mode))
	}
	counter(descJitterDropped, s.JitterDropped)
	counter(descJitterMissing, s.JitterMissing)
	counter(descRTPForeign, s.RTPForeign)
	counter(descRTPMalformed, s.RTPMalformed)
	counter(descSRTPDropped, s.SRTPDropped)
}
