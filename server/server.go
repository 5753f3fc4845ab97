// Package server assembles ringside-media: store, SIP, rooms, API and events.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"time"

	"ringside/server/api"
	"ringside/server/events"
	"ringside/server/live"
	"ringside/server/metrics"
	"ringside/server/realtime"
	"ringside/server/room"
	"ringside/server/sip"
	"ringside/server/store"
)

// Config of a ringside-media process.
type Config struct {
	DataDir  string
	SIPAddr  string // UDP host:port; port 0 picks a free one
	HTTPAddr string // TCP host:port; port 0 picks a free one
	RTPMin   uint16
	RTPMax   uint16
	// RTPMux shares a few RTP sockets per clock shard among the legs (sip.Config.RTPMux).
	RTPMux        bool
	RTPMuxSockets int // shared sockets per clock shard; 0: the default
	TrunkAllow    []netip.Prefix
	TrunkURI      string
	PublicIP      netip.Addr
	DeadAfter     time.Duration
	// DigestAlgorithms offered to phones, in order of preference; default MD5 only.
	DigestAlgorithms []string
	Node             string
	Logger           *slog.Logger
	// LiveRingFor is how long a live call rings before "no answer" (0: 60 s).
	LiveRingFor time.Duration
	// LivePingEvery is how often agent sockets are pinged and their login rechecked (0: 20 s).
	LivePingEvery time.Duration
	// Realtime runs the room clock on real-time threads (SCHED_DEADLINE, Linux;
	// room.Clock.Realtime); where the kernel refuses, on normal threads, and a warning says
	// how to permit it.
	Realtime bool
	// CPUWakeLatency, when set, is held as the machine's CPU wake latency limit while the
	// server runs (realtime.HoldWakeLatency; 0: idle CPUs poll rather than sleep), so a
	// poll never waits for a sleeping core to wake; where the kernel refuses, a warning
	// says how to permit it.
	CPUWakeLatency *time.Duration
	// PasswordIterations lowers the cost of new password hashes; tests only (0: default).
	PasswordIterations int
}

// DefaultConfig is one box on loopback.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		SIPAddr:  "127.0.0.1:5060",
		HTTPAddr: "127.0.0.1:8080",
		RTPMin:   20000,
		RTPMax:   29999,
		// Shared sockets pass every test but save little CPU in the bench yet (see
		// transport/mux.go): off until they earn their place.
		RTPMux:     false,
		TrunkAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		DeadAfter:  30 * time.Second,
		Node:       host,
	}
}

// Server is a running ringside-media.
type Server struct {
	cfg     Config
	log     *slog.Logger
	store   store.Store
	sip     *sip.Server
	live    *live.Server
	api     *api.API
	http    *http.Server
	clock   *room.Clock
	metrics *metrics.Metrics

	SIPAddr  string // as bound
	HTTPAddr string

	cancel      context.CancelFunc
	wg          sync.WaitGroup
	releaseWake func() // the CPU wake latency limit held (Config.CPUWakeLatency)
}

// Start opens the store (marking calls a crash left open as interrupted), binds SIP and
// HTTP and starts serving. Stop ends it.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DataDir == "" {
		return nil, errors.New("--data DIR is required: the directory for ringside.db")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	st, err := store.OpenWith(ctx, cfg.DataDir, store.Options{PasswordIterations: cfg.PasswordIterations})
	if err != nil {
		return nil, err
	}
	if n, err := st.MarkInterrupted(ctx, cfg.Node, time.Now().UTC()); err != nil {
		st.Close()
		return nil, err
	} else if n > 0 {
		cfg.Logger.Warn("calls left open by an earlier crash marked interrupted", "calls", n)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, store: st, clock: room.NewClock(2 * runtime.GOMAXPROCS(0))}
	if err := s.start(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return s, nil
}

func (s *Server) start(ctx context.Context) error {
	cfg := s.cfg
	sipConn, err := net.ListenPacket("udp", cfg.SIPAddr)
	if err != nil {
		return fmt.Errorf("SIP address %s: %w", cfg.SIPAddr, err)
	}
	httpLn, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		sipConn.Close()
		return fmt.Errorf("HTTP address %s: %w", cfg.HTTPAddr, err)
	}
	// Media binds where SIP does. Listening on every interface leaves no address to put in
	// Contact and SDP, so that needs --public-ip.
	mediaIP := netip.MustParseAddr("127.0.0.1")
	if ap, err := netip.ParseAddrPort(sipConn.LocalAddr().String()); err == nil {
		mediaIP = ap.Addr().Unmap()
	}
	if mediaIP.IsUnspecified() && !cfg.PublicIP.IsValid() {
		sipConn.Close()
		httpLn.Close()
		return fmt.Errorf("--sip-addr %s listens on every interface: add --public-ip with the address phones should send SIP and media to", cfg.SIPAddr)
	}
	bus := events.NewBus()
	// Metrics ask the SIP server for a snapshot at scrape time; only the clock's tick lag
	// and auth failures are counted as they happen.
	s.metrics = metrics.New(func() sip.MediaStats {
		st := s.sip.MediaStats()
		// Live calls count as calls, though their media never passes through here.
		active, started := s.live.Counts()
		st.CallsActive += active
		st.CallsStarted["inbound"] += started
		return st
	})
	s.clock.OnTick = s.metrics.ObserveTick
	s.clock.Realtime = cfg.Realtime
	s.clock.OnRealtime = func(err error) {
		s.log.Warn("--realtime: the room clock runs on normal threads, which wait behind other work when the cores are busy", "err", err)
	}
	s.metrics.CountRealtimeShards(s.clock.RealtimeShards)
	s.metrics.CountRescues(s.clock.Rescues)
	// Live calls (browser to softphone) only borrow the API's login and ask SIP whether
	// an agent is on a phone call; SIP asks them whether an agent is on a live call.
	s.live = live.New(live.Config{
		Store: s.store, Events: bus, Node: cfg.Node, RingFor: cfg.LiveRingFor, PingEvery: cfg.LivePingEvery, Logger: s.log.With("part", "live"),
		Authenticate:     func(w http.ResponseWriter, r *http.Request) (store.User, bool) { return s.api.Authenticate(w, r) },
		Recheck:          func(r *http.Request) (store.User, error) { return s.api.Caller(r) },
		AgentOnPhoneCall: func(ext string) bool { return s.sip.AgentOnCall(ext) },
	})
	s.sip, err = sip.New(sip.Config{
		MediaIP: mediaIP, PublicIP: cfg.PublicIP, RTPMin: cfg.RTPMin, RTPMax: cfg.RTPMax, RTPMux: cfg.RTPMux, RTPMuxSockets: cfg.RTPMuxSockets,
		TrunkAllow: cfg.TrunkAllow, TrunkURI: cfg.TrunkURI, DeadAfter: cfg.DeadAfter, Node: cfg.Node, DigestAlgorithms: cfg.DigestAlgorithms,
		Store: s.store, Events: bus, Clock: s.clock, Logger: s.log.With("part", "sip"),
		OnAuthFailure: s.metrics.AuthFailure, Live: s.live,
	})
	if err != nil {
		sipConn.Close()
		httpLn.Close()
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	if err := s.sip.Serve(runCtx, sipConn); err != nil {
		cancel()
		sipConn.Close()
		httpLn.Close()
		return err
	}
	s.SIPAddr = s.sip.Host()
	s.HTTPAddr = httpLn.Addr().String()
	s.api = api.New(api.Config{Store: s.store, Calls: callRegistry{Server: s.sip, live: s.live}, Events: bus, SIPHost: s.SIPAddr, Logger: s.log.With("part", "api")})
	// /metrics (Prometheus, no token: it carries no user data) beside the API.
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metrics.Handler())
	s.live.Register(mux)
	mux.Handle("/", s.api)
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.http.RegisterOnShutdown(s.api.Close)
	if cfg.CPUWakeLatency != nil {
		s.holdWakeLatency(*cfg.CPUWakeLatency)
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.clock.Run(runCtx)
	}()
	go func() {
		defer s.wg.Done()
		if err := s.http.Serve(httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http stopped", "err", err)
		}
	}()
	return nil
}

// Stop shuts down in two stages: stop taking calls and end those in progress (live calls
// with a hangup to both sides, phone calls with a BYE to every leg; history written), then
// stop the listeners and close the store.
func (s *Server) Stop(ctx context.Context) error {
	lerr := s.live.Shutdown(ctx)
	err := s.sip.Shutdown(ctx)
	if err == nil {
		err = lerr
	}
	s.api.Close()
	_ = s.http.Shutdown(ctx)
	s.cancel()
	s.wg.Wait()
	if s.releaseWake != nil {
		s.releaseWake()
	}
	if cerr := s.store.Close(); err == nil {
		err = cerr
	}
	return err
}

// holdWakeLatency holds limit as the CPUs' wake latency until Stop.
func (s *Server) holdWakeLatency(limit time.Duration) {
	release, err := realtime.HoldWakeLatency(limit)
	if err != nil {
		s.log.Warn("--cpu-wake-latency: idle CPUs sleep as deep as they like, and a poll may wait milliseconds for one to wake", "err", err)
		return
	}
	s.releaseWake = release
	s.metrics.WakeLatencyHeld(limit)
	s.log.Info("holding the CPUs' wake latency", "limit", limit)
}

// Store gives tools and tests the store of a running server.
func (s *Server) Store() store.Store { return s.store }

// RealtimeShards is how many room clock shards run on real-time threads (Config.Realtime).
func (s *Server) RealtimeShards() int { return s.clock.RealtimeShards() }

// Rescues is how many times a clock shard serviced the rooms of another, stalled one.
func (s *Server) Rescues() uint64 { return s.clock.Rescues() }

// TakeTicks reports what the room clock's polls did since its last call.
func (s *Server) TakeTicks() metrics.TickStats { return s.metrics.TakeTicks() }

// MediaStats reports the phone calls' media counters now (jitter buffers, RTP).
func (s *Server) MediaStats() sip.MediaStats { return s.sip.MediaStats() }
