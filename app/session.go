package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"ringside/server/simphone"
)

// Options tune a Session.
type Options struct {
	Audio  AudioDevice  // default: the system's sound devices (NullAudio without any)
	Logger *slog.Logger // default: discard
	Live   LiveConfig   // live calls' networks (WebRTC); the zero value allows any
}

// Connection states of the event stream.
const (
	StateConnected    = "connected"
	StateReconnecting = "reconnecting"
)

const (
	registerExpiry = 5 * time.Minute
	// recordKeep bounds what the SIP phone keeps of each call's received audio (it
	// records for tests; the softphone plays through the device).
	recordKeep = 5 * time.Second
	closeWait  = 5 * time.Second
)

// Session is one logged-in user: the calls this user may see, kept current from the
// server's events, the user's monitor sessions and own calls, over one SIP registration.
type Session struct {
	log    *slog.Logger
	client *Client
	user   User
	domain string
	phone  *simphone.Phone
	hub    *audioHub // the sound device, shared by the phone and live calls

	liveCfg LiveConfig
	live    liveLine

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	synced chan struct{} // closed after the first resync from the event stream

	mu        sync.Mutex
	closed    bool
	calls     map[string]Call
	own       []*OwnCall
	monitors  []*MonitorSession
	listeners map[int]func()
	nextL     int
	conn      string
	lost      bool // the stream dropped since the last resync

	closeOnce sync.Once
	closeErr  error
}

// Login logs in to the API, registers the SIP phone (user = ext, same password) with
// the server the API names, and starts following the event stream. It returns once the
// call list is in step with the server. The session owns opts.Audio from here on (also
// when Login fails): Close closes it.
func Login(ctx context.Context, acct Account, opts Options) (*Session, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	audio := opts.Audio
	if audio == nil {
		audio = defaultAudio()
	}
	closeAudio := func() { _ = audio.Close() }
	hub := newAudioHub(audio)

	client := NewClient(acct.ServerURL)
	user, err := client.Login(ctx, acct.User, acct.Password)
	if err != nil {
		closeAudio()
		client.Close()
		return nil, err
	}
	sipInfo := client.SIP()
	s := &Session{
		log:       log.With("user", user.Name),
		client:    client,
		user:      user,
		domain:    sipInfo.Domain,
		calls:     make(map[string]Call),
		listeners: make(map[int]func()),
		conn:      StateReconnecting,
		synced:    make(chan struct{}),
		hub:       hub,
		liveCfg:   opts.Live,
		live:      liveLine{ready: make(chan struct{})},
	}
	phone, err := simphone.New(ctx, simphone.Config{
		Server:    sipInfo.Server,
		Ext:       user.Ext,
		Password:  acct.Password,
		Name:      user.Name,
		Logger:    log,
		Audio:     hub,
		LocalIP:   localIPFor(sipInfo.Server),
		RecordMax: recordKeep,
		SRTP:      true, // DTLS-SRTP to ringside-media; plain SIP phones stay on RTP
		OnRegister: func(err error) {
			if err != nil {
				s.log.Warn("SIP registration refresh failed", "err", err)
			}
		},
	})
	if err != nil {
		closeAudio()
		client.Close()
		return nil, fmt.Errorf("starting the phone: %w", err)
	}
	s.phone = phone
	if err := phone.KeepRegistered(ctx, registerExpiry); err != nil {
		phone.Close()
		client.Close()
		return nil, fmt.Errorf("SIP registration with %s failed: %w", sipInfo.Server, sipError(err))
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(3)
	go s.followEvents()
	go s.takeIncoming()
	go s.followLive()

	select {
	case <-s.synced:
	case <-ctx.Done():
		s.Close()
		return nil, fmt.Errorf("the server's event stream did not answer: %w", ctx.Err())
	}
	// Web visitors can call once the agent socket is up; a server without live calls
	// refuses it, and the session works without.
	wait := time.NewTimer(liveLoginWait)
	defer wait.Stop()
	select {
	case <-s.live.ready:
	case <-wait.C:
	case <-ctx.Done():
	}
	return s, nil
}

// localIPFor is the address this machine reaches server from (the phone binds and
// advertises it), 127.0.0.1 for a server on loopback.
func localIPFor(server string) netip.Addr {
	c, err := net.Dial("udp", server)
	if err != nil {
		return netip.Addr{}
	}
	defer c.Close()
	if ua, ok := c.LocalAddr().(*net.UDPAddr); ok {
		if a, ok := netip.AddrFromSlice(ua.IP); ok {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}

// User is who is logged in.
func (s *Session) User() User { return s.user }

// Client is the session's API client (history, details, admin).
func (s *Session) Client() *Client { return s.client }

// Close leaves every monitor session, hangs up every own call, unregisters, stops the
// audio device and the event stream, and logs out.
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		monitors := slices.Clone(s.monitors)
		own := slices.Clone(s.own)
		s.mu.Unlock()

		ctx, cancel := context.WithTimeout(context.Background(), closeWait)
		defer cancel()
		var wg sync.WaitGroup
		for _, m := range monitors {
			wg.Go(func() { _ = m.Leave(ctx) })
		}
		for _, c := range own {
			wg.Go(func() { _ = c.Hangup(ctx) })
		}
		wg.Wait()
		var errs []error
		if err := s.phone.Register(ctx, 0); err != nil {
			errs = append(errs, fmt.Errorf("unregistering: %w", err))
		}
		if err := s.phone.Close(); err != nil {
			errs = append(errs, err)
		}
		if s.cancel != nil {
			s.cancel()
		}
		s.wg.Wait()
		_ = s.client.Logout(ctx)
		s.client.Close()
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// OnChange registers fn to be called (from any goroutine) after any change of Calls(),
// OwnCalls(), Monitors(), ConnectionState() or the state of one of them. cancel
// unregisters it.
func (s *Session) OnChange(fn func()) (cancel func()) {
	s.mu.Lock()
	id := s.nextL
	s.nextL++
	s.listeners[id] = fn
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.listeners, id)
		s.mu.Unlock()
	}
}

func (s *Session) changed() {
	s.mu.Lock()
	fns := make([]func(), 0, len(s.listeners))
	for _, fn := range s.listeners {
		fns = append(fns, fn)
	}
	s.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// Calls is the active calls this user may see, oldest first, kept current from events.
func (s *Session) Calls() []Call {
	s.mu.Lock()
	out := make([]Call, 0, len(s.calls))
	for _, c := range s.calls {
		out = append(out, cloneCall(c))
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Call) int {
		if c := a.StartedAt.Compare(b.StartedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

func cloneCall(c Call) Call {
	c.Monitors = slices.Clone(c.Monitors)
	return c
}

// ConnectionState is StateConnected or StateReconnecting (the event stream).
func (s *Session) ConnectionState() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
}

// ---- events

func (s *Session) followEvents() {
	defer s.wg.Done()
	first := true
	for ev := range s.client.Events(s.ctx) {
		switch ev.Type {
		case EventStreamConnected:
			s.resync()
			if first {
				first = false
				close(s.synced)
			}
		case EventStreamLost:
			s.mu.Lock()
			s.conn, s.lost = StateReconnecting, true
			s.mu.Unlock()
			s.log.Info("event stream lost; reconnecting")
		case EventCallStarted, EventCallUpdated, EventCallEnded:
			var w wireCall
			if err := json.Unmarshal(ev.Data, &w); err != nil {
				s.log.Warn("bad event", "type", ev.Type, "err", err)
				continue
			}
			s.applyCall(ev.Type, w.call())
		case EventMonitorStarted, EventMonitorUpdated, EventMonitorEnded:
			s.applyMonitorEvent(ev)
		default:
			continue
		}
		s.changed()
	}
}

// resync replaces the call list with the server's after the stream (re)connected: calls
// that ended while it was down get no call.ended. Events queued behind it replay on top.
func (s *Session) resync() {
	ctx, cancel := context.WithTimeout(s.ctx, requestTimeout)
	defer cancel()
	calls, err := s.client.Calls(ctx)
	s.mu.Lock()
	lost := s.lost
	s.conn, s.lost = StateConnected, false
	if err == nil {
		s.calls = make(map[string]Call, len(calls))
		for _, c := range calls {
			s.calls[c.ID] = c
		}
		s.bindOwnCallsLocked()
	}
	s.mu.Unlock()
	if err != nil {
		s.log.Warn("reading the call list after connecting", "err", err)
	}
	if lost {
		s.log.Info("event stream back")
		// The server may have restarted and forgotten the registration. Re-register off
		// the event loop: a SIP server slow to answer (or gone to another port) must not
		// hold back the events queued behind this resync for the REGISTER's timeout.
		s.goTracked(func() {
			rctx, rcancel := context.WithTimeout(s.ctx, requestTimeout)
			defer rcancel()
			if err := s.phone.RefreshRegistration(rctx, registerExpiry); err != nil && s.ctx.Err() == nil {
				s.log.Warn("re-registering after reconnect", "err", err)
			}
		})
	}
}

func (s *Session) applyCall(typ string, c Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if typ == EventCallEnded || c.State == "ended" {
		delete(s.calls, c.ID)
		for _, m := range s.monitors {
			if m.callID == c.ID {
				m.noteCallEnded(c)
			}
		}
		return
	}
	s.calls[c.ID] = c
	s.bindOwnCallsLocked()
}

// monitorEvent is the data of monitor.*: the status for everyone who may know, and for
// admins and the session's own supervisor the monitor and the call.
type monitorEvent struct {
	CallID    string       `json:"call_id"`
	Monitored bool         `json:"monitored"`
	Whisper   bool         `json:"whisper"`
	Monitor   *wireMonitor `json:"monitor"`
	Call      *wireCall    `json:"call"`
}

func (s *Session) applyMonitorEvent(ev Event) {
	var me monitorEvent
	if err := json.Unmarshal(ev.Data, &me); err != nil {
		s.log.Warn("bad event", "type", ev.Type, "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, known := s.calls[me.CallID]
	if me.Call != nil {
		c, known = me.Call.call(), true
	} else if known && me.Monitor != nil {
		m := me.Monitor.monitor(me.CallID)
		c.Monitors = slices.DeleteFunc(slices.Clone(c.Monitors), func(x Monitor) bool { return x.ID == m.ID })
		if ev.Type != EventMonitorEnded {
			c.Monitors = append(c.Monitors, m)
		}
	}
	if known && c.State != "ended" {
		c.Monitored, c.Whisper = me.Monitored, me.Whisper
		s.calls[me.CallID] = c
	}
	if me.Monitor == nil || me.Monitor.User != s.user.Name {
		return
	}
	m := me.Monitor.monitor(me.CallID)
	if ms := s.sessionForLocked(m); ms != nil {
		ms.mu.Lock()
		ms.id = m.ID
		if m.Mode != "" {
			ms.mode = m.Mode
		}
		if !m.Since.IsZero() {
			ms.since = m.Since
		}
		ms.mu.Unlock()
	}
}

// sessionForLocked finds this user's MonitorSession for server monitor m: the one with
// its id, else one on its call whose id is not known yet.
func (s *Session) sessionForLocked(m Monitor) *MonitorSession {
	var free *MonitorSession
	for _, ms := range s.monitors {
		ms.mu.Lock()
		id := ms.id
		ms.mu.Unlock()
		if id == m.ID {
			return ms
		}
		if id == "" && ms.callID == m.CallID && free == nil {
			free = ms
		}
	}
	return free
}

// bindOwnCallsLocked gives own calls their server call id: a call of this agent that no
// other own call has, preferring one with the same customer number.
func (s *Session) bindOwnCallsLocked() {
	taken := make(map[string]bool)
	for _, oc := range s.own {
		if id := oc.serverID(); id != "" {
			taken[id] = true
		}
	}
	for _, oc := range s.own {
		if oc.serverID() != "" {
			continue
		}
		var pick string
		for id, c := range s.calls {
			if taken[id] || c.Agent.Ext != s.user.Ext || c.State == "ended" || c.Kind == CallKindLive {
				continue
			}
			if pick == "" || (oc.number != "" && c.Customer.Number == oc.number) {
				pick = id
			}
		}
		if pick != "" {
			taken[pick] = true
			oc.mu.Lock()
			oc.id = pick
			oc.mu.Unlock()
		}
	}
}

// callLocked is the server's view of call id, if active.
func (s *Session) call(id string) (Call, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.calls[id]
	return cloneCall(c), ok
}

// ---- monitoring

// MonitorSession is this supervisor listening to (or whispering into) one call.
type MonitorSession struct {
	s      *Session
	callID string
	done   chan struct{}

	mu         sync.Mutex
	sc         *simphone.Call // once the INVITE was answered
	cancelDial context.CancelFunc
	id         string // server monitor id, once known
	mode       string
	since      time.Time
	last       Call // the call as last seen
	left       bool
	callEnded  bool
	endReason  string
}

// Errors of monitoring and own calls.
var (
	ErrMonitorPending      = errors.New("the server has not confirmed the monitor session yet; try again in a moment")
	ErrTransferUnsupported = errors.New("the server does not support transferring calls yet")
	ErrSessionClosed       = errors.New("logged out")
)

// MonitorCall starts monitoring call callID in listen mode: the API's permission
// (POST /api/calls/{id}/monitor) and then a SIP INVITE to the sip_uri it gives, with
// Target-Dialog naming the agent's leg.
func (s *Session) MonitorCall(ctx context.Context, callID string) (*MonitorSession, error) {
	tgt, err := s.client.Monitor(ctx, callID, "listen")
	if err != nil {
		return nil, err
	}
	last, _ := s.call(callID)
	m := &MonitorSession{s: s, callID: callID, done: make(chan struct{}), mode: "listen", since: time.Now(), last: last}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrSessionClosed
	}
	s.monitors = append(s.monitors, m) // before the INVITE: monitor.started may beat its answer
	s.mu.Unlock()
	s.changed()

	var hdrs []sip.Header
	if tgt.TargetDialog != "" {
		hdrs = append(hdrs, sip.NewHeader("Target-Dialog", tgt.TargetDialog))
	}
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m.mu.Lock()
	m.cancelDial = cancel
	m.mu.Unlock()
	sc, err := s.phone.Dial(dctx, tgt.SIPURI, hdrs...)
	if err == nil && m.wasLeft() {
		hctx, hcancel := context.WithTimeout(context.Background(), closeWait)
		_ = sc.Hangup(hctx)
		hcancel()
		err = errors.New("left before the server answered")
	}
	if err != nil {
		s.removeMonitor(m)
		m.finish("could not join")
		s.changed()
		return nil, fmt.Errorf("joining the call: %w", sipError(err))
	}
	m.mu.Lock()
	m.sc, m.cancelDial = sc, nil
	m.mu.Unlock()
	watch := func() {
		<-sc.Done()
		m.finish(m.reasonAfterBye())
		s.removeMonitor(m)
		s.changed()
	}
	if !s.goTracked(watch) {
		hctx, hcancel := context.WithTimeout(context.Background(), closeWait)
		_ = sc.Hangup(hctx)
		hcancel()
		m.finish("logged out")
		s.removeMonitor(m)
		return nil, ErrSessionClosed
	}
	return m, nil
}

// goTracked runs fn on a goroutine Close waits for, unless the session is closing.
func (s *Session) goTracked(fn func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
	return true
}

func (m *MonitorSession) wasLeft() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.left
}

func (m *MonitorSession) call() *simphone.Call {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sc
}

// Monitors is this user's monitor sessions in progress.
func (s *Session) Monitors() []*MonitorSession {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.monitors)
}

func (s *Session) removeMonitor(m *MonitorSession) {
	s.mu.Lock()
	s.monitors = slices.DeleteFunc(s.monitors, func(x *MonitorSession) bool { return x == m })
	s.mu.Unlock()
}

// noteCallEnded records that the monitored call ended; s.mu held.
func (m *MonitorSession) noteCallEnded(c Call) {
	m.mu.Lock()
	m.callEnded = true
	m.last = c
	m.mu.Unlock()
}

func (m *MonitorSession) reasonAfterBye() string {
	m.mu.Lock()
	left, ended := m.left, m.callEnded
	m.mu.Unlock()
	switch {
	case left:
		return "you left the call"
	case ended:
		return "the call ended"
	}
	// The BYE may beat call.ended: ask the server.
	ctx, cancel := context.WithTimeout(m.s.ctx, 2*time.Second)
	defer cancel()
	c, err := m.s.client.Call(ctx, m.callID)
	var ae *APIError
	if (err == nil && c.State == "ended") || (errors.As(err, &ae) && ae.Status == 404) {
		return "the call ended"
	}
	return "the monitor session was ended by the server"
}

func (m *MonitorSession) finish(reason string) {
	m.mu.Lock()
	if m.endReason == "" {
		m.endReason = reason
	}
	m.mu.Unlock()
	select {
	case <-m.done:
	default:
		close(m.done)
	}
}

// Call is the monitored call as currently known (the last snapshot once it ended).
func (m *MonitorSession) Call() Call {
	if c, ok := m.s.call(m.callID); ok {
		m.mu.Lock()
		m.last = c
		m.mu.Unlock()
		return c
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return cloneCall(m.last)
}

// ID is the server's monitor id ("" until the server confirmed the session).
func (m *MonitorSession) ID() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.id
}

// Mode is listen, whisper or barge.
func (m *MonitorSession) Mode() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mode
}

// Since is when the session started.
func (m *MonitorSession) Since() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.since
}

// SetWhisper switches between whisper (the agent hears this supervisor, the customer
// never does) and listen (nobody hears this supervisor).
func (m *MonitorSession) SetWhisper(ctx context.Context, on bool) error {
	mode := "listen"
	if on {
		mode = "whisper"
	}
	id, err := m.monitorID(ctx)
	if err != nil {
		return err
	}
	if err := m.s.client.SetMonitorMode(ctx, id, mode); err != nil {
		return err
	}
	m.mu.Lock()
	m.mode = mode
	m.mu.Unlock()
	m.s.changed()
	return nil
}

// monitorID is the server's id of this session: from monitor.started, else from the
// call's details (a supervisor sees its own sessions there).
func (m *MonitorSession) monitorID(ctx context.Context) (string, error) {
	if id := m.ID(); id != "" {
		return id, nil
	}
	c, err := m.s.client.Call(ctx, m.callID)
	if err != nil {
		return "", err
	}
	s := m.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, mon := range c.Monitors {
		if mon.User != s.user.Name {
			continue
		}
		if ms := s.sessionForLocked(mon); ms == m {
			m.mu.Lock()
			m.id = mon.ID
			m.mu.Unlock()
			return mon.ID, nil
		}
	}
	return "", ErrMonitorPending
}

// Levels is how loud the customer and the agent are right now, 0 (silent) to 1 (full
// scale), from the RFC 6465 levels the server's mixer puts on this supervisor's stream
// (CSRC 0 the customer, CSRC 1 the agent); 0, 0 when the server sends none.
func (m *MonitorSession) Levels() (customer, agent float64) {
	sc := m.call()
	if sc == nil {
		return 0, 0
	}
	lv := sc.AudioLevels()
	level := func(i int) float64 {
		if i >= len(lv) {
			return 0
		}
		return 1 - float64(min(lv[i], 127))/127
	}
	return level(0), level(1)
}

// Leave ends the session (BYE) and returns once it has ended.
func (m *MonitorSession) Leave(ctx context.Context) error {
	m.mu.Lock()
	m.left = true
	sc, cancelDial := m.sc, m.cancelDial
	m.mu.Unlock()
	if sc == nil {
		if cancelDial != nil {
			cancelDial() // MonitorCall gives up the INVITE and ends the session
		}
		select {
		case <-m.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := sc.Hangup(ctx); err != nil && !errors.Is(err, simphone.ErrCallEnded) {
		return fmt.Errorf("leaving the call: %w", err)
	}
	select {
	case <-m.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Done is closed when the session has ended: left, or the call ended.
func (m *MonitorSession) Done() <-chan struct{} { return m.done }

// EndReason says why the session ended ("" while it lasts).
func (m *MonitorSession) EndReason() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.endReason
}

// sipError turns a SIP failure into the sentence a user reads.
func sipError(err error) error {
	var se *simphone.StatusError
	if !errors.As(err, &se) {
		return err
	}
	var msg string
	switch se.Code {
	case 401, 403, 407:
		msg = "the server refused the SIP credentials"
	case 404:
		msg = "no such number or call"
	case 408, 480:
		msg = "nobody answered"
	case 486, 600:
		msg = "busy"
	case 487:
		msg = "cancelled"
	case 488, 606:
		msg = "no common audio codec"
	case 503:
		msg = "the server is unavailable"
	case 603:
		msg = "declined"
	default:
		return err
	}
	return fmt.Errorf("%s (%w)", msg, err)
}
