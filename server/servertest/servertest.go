// Package servertest starts an in-process ringside-media for tests, as net/http/httptest
// does for HTTP servers: loopback ports, a temporary data directory, cheap password
// hashing, and a Cleanup that stops it. It is for tests only.
package servertest

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"ringside/server"
	"ringside/server/store"
)

// Users are demo users for tests: two agents and a supervisor in team red, and an admin.
// Each password is the name followed by "-pw".
var Users = []store.NewUser{
	{Name: "alice", Ext: "1001", Password: "alice-pw", Role: store.RoleAgent, Teams: []string{"red"}},
	{Name: "bob", Ext: "1002", Password: "bob-pw", Role: store.RoleAgent, Teams: []string{"red"}},
	{Name: "sam", Ext: "2001", Password: "sam-pw", Role: store.RoleSupervisor, Teams: []string{"red"}},
	{Name: "ada", Ext: "3001", Password: "ada-pw", Role: store.RoleAdmin},
}

// Logger logs at debug level to stderr when RINGSIDE_TEST_LOG is set, and discards
// otherwise.
func Logger() *slog.Logger {
	if os.Getenv("RINGSIDE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// Server is a ringside-media started for a test.
type Server struct {
	*server.Server // the running server; nil while stopped
	Config         server.Config
	t              testing.TB
}

// Start starts a server on 127.0.0.1 (SIP and HTTP on free ports, RTP on any port) with
// its data in t.TempDir(), node "test" and Logger; mod may change the Config first. The
// server is stopped at cleanup.
func Start(t testing.TB, mod ...func(*server.Config)) *Server {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.SIPAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.RTPMin, cfg.RTPMax = 0, 0
	cfg.Node = "test"
	cfg.PasswordIterations = 1000
	cfg.Logger = Logger()
	for _, m := range mod {
		m(&cfg)
	}
	s := &Server{Config: cfg, t: t}
	s.Start()
	return s
}

// Start starts the server again with s.Config after Stop.
func (s *Server) Start() {
	s.t.Helper()
	srv, err := server.Start(context.Background(), s.Config)
	if err != nil {
		s.t.Fatalf("start server: %v", err)
	}
	s.Server = srv
	s.t.Cleanup(func() {
		if s.Server == srv {
			s.Stop()
		}
	})
}

// Stop stops the server, failing the test if it does not stop cleanly.
func (s *Server) Stop() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Server.Stop(ctx); err != nil {
		s.t.Errorf("stop server: %v", err)
	}
	s.Server = nil
}

// URL is the base URL of the HTTP API.
func (s *Server) URL() string { return "http://" + s.HTTPAddr }

// AddUsers adds users to the store; a user already there (from an earlier run on the same
// data directory) is left as it is.
func (s *Server) AddUsers(users ...store.NewUser) {
	s.t.Helper()
	for _, u := range users {
		if _, err := s.Store().AddUser(context.Background(), u); err != nil {
			if _, err2 := s.Store().User(context.Background(), u.Name); err2 != nil {
				s.t.Fatalf("add user %s: %v", u.Name, err)
			}
		}
	}
}
