// Package demo runs what `ringside --demo` shows: ringside-media in-process on loopback
// with the demo users, two bot agents that answer and talk, and two simulated customers
// who keep calling them, so the dashboard always has a conversation to monitor.
package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"ringside/app"
	"ringside/assets"
	"ringside/server"
	"ringside/server/simphone"
	"ringside/server/store"
)

// Users are the demo's logins. Each password is the name plus "-pw": the server wants
// at least four characters, and "bob", "sam" and "ada" have three.
var Users = []store.NewUser{
	{Name: "alice", Ext: "1001", Password: Password("alice"), Role: store.RoleAgent, Teams: []string{"red"}},
	{Name: "bob", Ext: "1002", Password: Password("bob"), Role: store.RoleAgent, Teams: []string{"blue"}},
	{Name: "sam", Ext: "2001", Password: Password("sam"), Role: store.RoleSupervisor, Teams: []string{"red"}},
	{Name: "ada", Ext: "3001", Password: Password("ada"), Role: store.RoleAdmin},
}

// Password is a demo user's password.
func Password(user string) string { return user + "-pw" }

// The bots' habits. A customer hangs up after a few minutes and calls again a few
// seconds later, so calls come and go (and fill the history) but one is nearly always
// up; each customer has its own rhythm so the two calls do not end together.
const (
	ringFor     = 2 * time.Second // how long a bot agent lets the phone ring
	redialAfter = 4 * time.Second
	giveUpDial  = 30 * time.Second
	registerFor = 10 * time.Minute
)

// A customer calling an agent.
type customer struct {
	number, name string
	agentExt     string
	talkFor      time.Duration // then hangs up (plus up to 20 % more)
}

var customers = []customer{
	{number: "+14155550123", name: "Jordan Miles", agentExt: "1001", talkFor: 3 * time.Minute},
	{number: "+14155550178", name: "Priya Shah", agentExt: "1002", talkFor: 4 * time.Minute},
}

// Demo is a running demo. Close stops it.
type Demo struct {
	log    *slog.Logger
	dir    string
	srv    *server.Server
	phones []*simphone.Phone // agents first, customers after: closed in reverse

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Start brings the demo up: the media server (SIP and HTTP on free loopback ports, an
// SQLite in a temporary directory), the users, the agents registered and the customers
// dialling. It returns once everything is started; the first call is up about two
// seconds later. ctx bounds only the start-up.
func Start(ctx context.Context, logger *slog.Logger) (*Demo, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	dir, err := os.MkdirTemp("", "ringside-demo-")
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	d := &Demo{log: logger, dir: dir, cancel: cancel}
	if err := d.start(ctx, runCtx); err != nil {
		_ = d.Close()
		return nil, fmt.Errorf("demo: %w", err)
	}
	return d, nil
}

func (d *Demo) start(ctx, runCtx context.Context) error {
	cfg := server.DefaultConfig()
	cfg.DataDir = filepath.Join(d.dir, "data")
	cfg.SIPAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.RTPMin, cfg.RTPMax = 0, 0
	cfg.Node = "demo"
	// A throwaway database of published passwords: the full PBKDF2 cost (600,000
	// rounds) would only slow the demo's start and each login.
	cfg.PasswordIterations = 10_000
	cfg.Logger = d.log.With("part", "media")
	srv, err := server.Start(ctx, cfg)
	if err != nil {
		return err
	}
	d.srv = srv
	for _, u := range Users {
		if _, err := srv.Store().AddUser(ctx, u); err != nil {
			return fmt.Errorf("adding user %s: %w", u.Name, err)
		}
	}

	// The bots speak through WAV devices, which read files.
	agentWAV := filepath.Join(d.dir, "agent.wav")
	customerWAV := filepath.Join(d.dir, "customer.wav")
	if err := os.WriteFile(agentWAV, assets.AgentSpeech, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(customerWAV, assets.CustomerSpeech, 0o600); err != nil {
		return err
	}

	for _, u := range Users {
		if u.Role != store.RoleAgent {
			continue
		}
		p, err := d.newPhone(ctx, simphone.Config{
			Ext: u.Ext, Password: u.Password, Name: u.Name,
			AutoAnswer: true, AnswerDelay: ringFor,
			Audio: app.WAVAudio(agentWAV, true),
		})
		if err != nil {
			return fmt.Errorf("bot agent %s: %w", u.Name, err)
		}
		if err := p.KeepRegistered(ctx, registerFor); err != nil {
			return fmt.Errorf("bot agent %s: %w", u.Name, err)
		}
	}
	for _, c := range customers {
		p, err := d.newPhone(ctx, simphone.Config{
			Ext: c.number, Name: c.name,
			Audio: app.WAVAudio(customerWAV, true),
		})
		if err != nil {
			return fmt.Errorf("customer %s: %w", c.name, err)
		}
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.keepCalling(runCtx, p, c)
		}()
	}
	d.log.Info("demo running", "sip", srv.SIPAddr, "http", srv.HTTPAddr, "data", cfg.DataDir)
	return nil
}

func (d *Demo) newPhone(ctx context.Context, cfg simphone.Config) (*simphone.Phone, error) {
	cfg.Server = d.srv.SIPAddr
	cfg.Logger = d.log.With("part", "bot")
	cfg.RecordMax = time.Second // nobody reads it; keep it from growing
	p, err := simphone.New(ctx, cfg)
	if err != nil {
		if cfg.Audio != nil {
			_ = cfg.Audio.Close()
		}
		return nil, err
	}
	d.phones = append(d.phones, p)
	return p, nil
}

// keepCalling is one customer: call the agent, talk a while, hang up, call again.
func (d *Demo) keepCalling(ctx context.Context, p *simphone.Phone, c customer) {
	log := d.log.With("customer", c.name, "agent", c.agentExt)
	for ctx.Err() == nil {
		dctx, cancel := context.WithTimeout(ctx, giveUpDial)
		call, err := p.Dial(dctx, c.agentExt)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				log.Info("demo customer did not get through; calling again soon", "err", err)
			}
			sleep(ctx, redialAfter)
			continue
		}
		talk := c.talkFor + rand.N(c.talkFor/5)
		t := time.NewTimer(talk)
		select {
		case <-call.Done():
		case <-t.C:
			hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := call.Hangup(hctx); err != nil && ctx.Err() == nil {
				log.Info("demo customer's hangup failed", "err", err)
			}
			cancel()
		case <-ctx.Done():
			// Close hangs up.
		}
		t.Stop()
		sleep(ctx, redialAfter)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// Account is the softphone login of a demo user ("sam", "ada", ...).
func (d *Demo) Account(user string) app.Account {
	return app.Account{ServerURL: d.ServerURL(), User: user, Password: Password(user)}
}

// ServerURL is the media server's API, http://127.0.0.1:<port>.
func (d *Demo) ServerURL() string { return "http://" + d.srv.HTTPAddr }

// SIPAddr is the media server's SIP address, for pointing another SIP phone at it.
func (d *Demo) SIPAddr() string { return d.srv.SIPAddr }

// Close stops the customers (their calls end with a BYE), the agents and the server, and
// removes the temporary directory.
func (d *Demo) Close() error {
	d.closeOnce.Do(func() {
		d.cancel()
		d.wg.Wait()
		var errs []error
		for i := len(d.phones) - 1; i >= 0; i-- {
			errs = append(errs, d.phones[i].Close())
		}
		if d.srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			errs = append(errs, d.srv.Stop(ctx))
			cancel()
		}
		errs = append(errs, os.RemoveAll(d.dir))
		d.closeErr = errors.Join(errs...)
	})
	return d.closeErr
}
