// Package demo runs what `ringside --demo` shows: ringside-media in-process on loopback
// with the demo users, two bot agents that answer and talk, and two simulated customers
// who keep calling them, so the dashboard always has a conversation to monitor; and a
// third bot agent, signed in like a softphone, whom a web visitor keeps calling from the
// browser side (WebRTC on loopback), so the dashboard also shows a live call, locked:
// live calls are end-to-end encrypted and can't be monitored.
package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"ringside/app"
	"ringside/app/webvisitor"
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
	{Name: "carol", Ext: "1003", Password: Password("carol"), Role: store.RoleAgent, Teams: []string{"red"}},
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

// The live call: a web visitor calling carol from the browser (the call page's side,
// spoken by pion). carol is signed in through the softphone core (app.Session), so her
// end is the real one: agent WebSocket, pion, Opus. Both ends keep ICE on loopback.
var visitor = customer{name: "Noor Haddad", agentExt: "1003", talkFor: 5 * time.Minute}

const liveAgent = "carol"

// loopbackOnly holds the live call's ICE to 127.0.0.0/8, like `ringside --demo`'s own
// softphone.
var loopbackOnly = app.LiveConfig{Networks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}

// Demo is a running demo. Close stops it.
type Demo struct {
	log    *slog.Logger
	dir    string
	srv    *server.Server
	phones []*simphone.Phone // agents first, customers after: closed in reverse
	live   *app.Session      // carol, the live calls' agent

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Start brings the demo up: the media server (SIP and HTTP on free loopback ports, an
// SQLite in a temporary directory), the users, the agents registered (carol signed in
// for live calls) and the customers and the web visitor dialling. It returns once
// everything is started; the first calls are up about two seconds later. ctx bounds
// only the start-up.
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
		if u.Role != store.RoleAgent || u.Name == liveAgent {
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
	if err := d.startLive(ctx, runCtx, agentWAV); err != nil {
		return err
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

// startLive signs carol in (her softphone speaks agent.wav), has her answer what rings
// after ringFor, and starts the web visitor who keeps calling her.
func (d *Demo) startLive(ctx, runCtx context.Context, agentWAV string) error {
	pcm, err := app.DecodeWAV(assets.CustomerSpeech)
	if err != nil {
		return fmt.Errorf("the visitor's speech: %w", err)
	}
	s, err := app.Login(ctx, d.Account(liveAgent), app.Options{
		Audio:  app.WAVAudio(agentWAV, true),
		Logger: d.log.With("part", "bot"),
		Live:   loopbackOnly,
	})
	if err != nil {
		return fmt.Errorf("bot agent %s: %w", liveAgent, err)
	}
	d.live = s
	ring := make(chan struct{}, 1)
	stopWatching := s.OnChange(func() {
		select {
		case ring <- struct{}{}:
		default:
		}
	})
	d.wg.Go(func() {
		defer stopWatching()
		d.answerCalls(runCtx, s, ring)
	})
	d.wg.Go(func() { d.keepVisiting(runCtx, pcm) })
	return nil
}

// answerCalls is carol at her softphone: every call that rings is answered after ringFor.
func (d *Demo) answerCalls(ctx context.Context, s *app.Session, ring <-chan struct{}) {
	var answering sync.WaitGroup
	defer answering.Wait()
	seen := map[*app.OwnCall]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-ring:
		}
		own := s.OwnCalls()
		for c := range seen {
			if c.State() == app.CallEnded {
				delete(seen, c)
			}
		}
		for _, c := range own {
			if !c.Incoming() || c.State() != app.CallRinging || seen[c] {
				continue
			}
			seen[c] = true
			answering.Go(func() {
				sleep(ctx, ringFor)
				if ctx.Err() != nil {
					return // Close hangs up
				}
				actx, cancel := context.WithTimeout(ctx, giveUpDial)
				defer cancel()
				if err := c.Answer(actx); err != nil && ctx.Err() == nil {
					d.log.Info("demo agent could not answer", "agent", liveAgent, "err", err)
				}
			})
		}
	}
}

// keepVisiting is the web visitor: call carol from the browser side, talk a while (the
// customer's recorded speech), hang up, call again.
func (d *Demo) keepVisiting(ctx context.Context, speech []int16) {
	c := visitor
	log := d.log.With("visitor", c.name, "agent", c.agentExt)
	for ctx.Err() == nil {
		if err := d.visit(ctx, speech); err != nil && ctx.Err() == nil {
			log.Info("demo web visitor did not get through; calling again soon", "err", err)
		}
		sleep(ctx, redialAfter)
	}
}

// visit is one live call from the visitor, until either side hangs up.
func (d *Demo) visit(ctx context.Context, speech []int16) error {
	c := visitor
	dctx, cancel := context.WithTimeout(ctx, giveUpDial)
	defer cancel()
	v, err := webvisitor.Dial(dctx, d.srv.HTTPAddr, c.agentExt, webvisitor.Config{
		Name:      c.name,
		Voice:     webvisitor.Loop(speech),
		RecordMax: time.Second, // nobody listens; keep it from growing
	})
	if err != nil {
		return err
	}
	defer v.Close()
	if _, err := v.Expect(dctx, "answer"); err != nil {
		return err
	}
	talk := c.talkFor + rand.N(c.talkFor/5)
	tctx, stop := context.WithTimeout(ctx, talk)
	defer stop()
	// Expect keeps reading the server's messages (candidates) until carol hangs up, the
	// socket closes, or the visitor has talked long enough (or the demo closes).
	if _, err := v.Expect(tctx, "hangup"); err == nil || tctx.Err() == nil {
		return nil
	}
	if err := v.Hangup(); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
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

// Close stops the customers (their calls end with a BYE) and the web visitor, the agents
// and the server, and removes the temporary directory.
func (d *Demo) Close() error {
	d.closeOnce.Do(func() {
		d.cancel()
		d.wg.Wait()
		var errs []error
		if d.live != nil {
			errs = append(errs, d.live.Close())
		}
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
