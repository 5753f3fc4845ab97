// Package live is ringside-media's side of live calls: a web visitor calling an agent from
// the browser, WebRTC end to end between the browser and the agent's softphone. The
// server serves the call page and relays signalling between two WebSockets (the visitor's
// and the agent softphone's) as docs/live-calls.md says. It never carries media and never
// changes an SDP: offers, answers and candidates go through byte for byte, so the
// DTLS-SRTP keys exist only at the two ends and nobody here can listen.
//
// A live call is still a call of the call center: it is listed, recorded in history and
// announced on the event bus like a phone call, with kind live and the reason it can't be
// monitored, and it makes its agent busy for phone calls (and the other way round).
package live

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"ringside/server/calls"
	"ringside/server/events"
	"ringside/server/store"
)

// Config of the live-call side; zero values take DefaultConfig's.
type Config struct {
	Store  store.Store
	Events events.Publisher
	// Authenticate checks an agent socket's Bearer token as the API does; on failure it
	// has answered the request and returns false.
	Authenticate func(w http.ResponseWriter, r *http.Request) (store.User, bool)
	// Recheck tells who r's token belongs to now (an error once it is signed out or
	// expired); agent sockets repeat it at every ping. nil: never rechecked.
	Recheck func(r *http.Request) (store.User, error)
	// AgentOnPhoneCall tells whether an agent is on a phone call (the SIP side); nil: never.
	AgentOnPhoneCall func(ext string) bool
	Node             string
	RingFor          time.Duration // how long the agent's softphone rings before "no answer" (default 60 s)
	VisitorsPerIP    int           // open visitor sockets one address may hold (default 10)
	PingEvery        time.Duration // keep-alive on agent sockets, so a vanished softphone is noticed (default 20 s)
	OfferWait        time.Duration // a visitor socket without an offer this long is closed, freeing its place (default 30 s)
	Logger           *slog.Logger
}

// DefaultConfig holds the defaults.
func DefaultConfig() Config {
	return Config{RingFor: 60 * time.Second, VisitorsPerIP: 10, PingEvery: 20 * time.Second, OfferWait: 30 * time.Second, Node: "local"}
}

// Server relays live calls. Its methods are safe for concurrent use.
type Server struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	closed   bool
	agents   map[string][]*socket // agent ext → its softphones' open sockets
	calls    map[string]*call     // registered calls by id
	byExt    map[string]*call     // agent ext → its live call, from the moment it is claimed
	visitors map[string]int       // open visitor sockets by remote IP
	sockets  map[*socket]struct{} // every open socket, for shutdown
	wg       sync.WaitGroup       // socket handlers, writers, pingers and ring timers
	started  atomic.Uint64        // calls registered over the server's life, for metrics
}

// New returns a live-call server; Register mounts its endpoints, Shutdown ends it.
func New(cfg Config) *Server {
	def := DefaultConfig()
	if cfg.RingFor <= 0 {
		cfg.RingFor = def.RingFor
	}
	if cfg.VisitorsPerIP <= 0 {
		cfg.VisitorsPerIP = def.VisitorsPerIP
	}
	if cfg.PingEvery <= 0 {
		cfg.PingEvery = def.PingEvery
	}
	if cfg.OfferWait <= 0 {
		cfg.OfferWait = def.OfferWait
	}
	if cfg.Node == "" {
		cfg.Node = def.Node
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		agents:   make(map[string][]*socket),
		calls:    make(map[string]*call),
		byExt:    make(map[string]*call),
		visitors: make(map[string]int),
		sockets:  make(map[*socket]struct{}),
	}
}

// Register mounts the call page and both WebSocket endpoints on mux.
func (s *Server) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /live/{ext}", s.servePage)
	mux.HandleFunc("GET /live/{ext}/ws", s.serveVisitor)
	mux.HandleFunc("GET /api/live/agent", s.serveAgent)
}

// track counts a goroutine for Shutdown to wait for, unless shutdown has begun.
func (s *Server) track() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// Shutdown stops taking calls, ends every live call ("server shutdown", history written,
// both sides told), closes every socket and waits for their goroutines.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	active := make([]*call, 0, len(s.calls))
	for _, c := range s.calls {
		active = append(active, c)
	}
	s.mu.Unlock()
	for _, c := range active {
		s.end(c, "server shutdown", nil)
	}
	s.mu.Lock()
	for so := range s.sockets {
		so.close(statusGoingAway, "the server is shutting down")
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// AgentOnLiveCall returns the live call the agent at ext is on (ringing or talking).
func (s *Server) AgentOnLiveCall(ext string) (calls.Call, bool) {
	s.mu.Lock()
	c := s.byExt[ext]
	s.mu.Unlock()
	if c == nil {
		return calls.Call{}, false
	}
	return c.snapshot(), true
}

// Active lists the live calls in progress, newest first.
func (s *Server) Active() []calls.Call {
	s.mu.Lock()
	cs := make([]*call, 0, len(s.calls))
	for _, c := range s.calls {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	out := make([]calls.Call, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.snapshot())
	}
	calls.NewestFirst(out)
	return out
}

// Counts are the live calls in progress and those started since the server started, for
// metrics.
func (s *Server) Counts() (active int, started uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls), s.started.Load()
}

// Call returns one live call in progress.
func (s *Server) Call(id string) (calls.Call, bool) {
	s.mu.Lock()
	c := s.calls[id]
	s.mu.Unlock()
	if c == nil {
		return calls.Call{}, false
	}
	return c.snapshot(), true
}

// storeCtx bounds history writes; a slow disk must not hold a call's signalling forever.
func storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Second)
}
