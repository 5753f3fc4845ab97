package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"ringside/server/simphone"
)

// OwnCall is one of this user's own phone calls: incoming (ringing until Answer) or
// dialled.
type OwnCall struct {
	s        *Session
	incoming bool
	number   string // the other end's number (caller, or what was dialled)
	name     string
	done     chan struct{}
	live     *liveCall // a live call with a web visitor (sc stays nil); set at creation

	mu         sync.Mutex
	sc         *simphone.Call // nil while a Dial is in progress
	id         string         // server call id once bound
	state      string
	answeredAt time.Time
	muted      bool
	held       bool
	hangingUp  bool
	cancelDial context.CancelFunc
	endReason  string
}

// Call states of an OwnCall.
const (
	CallRinging = "ringing"
	CallTalking = "talking"
	CallHeld    = "held"
	CallEnded   = "ended"
)

// takeIncoming turns the phone's incoming INVITEs into ringing OwnCalls.
func (s *Session) takeIncoming() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case sc := <-s.phone.Incoming():
			oc := &OwnCall{s: s, incoming: true, sc: sc, state: CallRinging, done: make(chan struct{})}
			if req := sc.Request(); req != nil {
				if from := req.From(); from != nil {
					oc.number, oc.name = from.Address.User, from.DisplayName
				}
			}
			s.mu.Lock()
			s.own = append(s.own, oc)
			s.bindOwnCallsLocked()
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				oc.watch(sc)
			}()
			s.changed()
		}
	}
}

// watch ends the OwnCall when its dialog ends.
func (c *OwnCall) watch(sc *simphone.Call) {
	<-sc.Done()
	reason := "hung up"
	if sc.EndedByRemote() {
		reason = "the other side hung up"
		c.mu.Lock()
		if c.state == CallRinging && c.incoming {
			reason = "missed"
		}
		c.mu.Unlock()
	}
	c.finish(reason)
}

func (c *OwnCall) finish(reason string) {
	c.mu.Lock()
	if c.state == CallEnded {
		c.mu.Unlock()
		return
	}
	c.state = CallEnded
	if c.endReason == "" {
		c.endReason = reason
	}
	c.mu.Unlock()
	// Out of OwnCalls before Done fires: whoever wakes on Done sees the call gone.
	s := c.s
	s.mu.Lock()
	s.own = slices.DeleteFunc(s.own, func(x *OwnCall) bool { return x == c })
	s.mu.Unlock()
	close(c.done)
	s.changed()
}

// Dial calls number (an extension, or an outside number the server routes to its
// trunk). While it rings the call is in OwnCalls() in state ringing, and Hangup (or
// cancelling ctx) cancels it; Dial returns once it is answered or has failed.
func (s *Session) Dial(ctx context.Context, number string) (*OwnCall, error) {
	number = strings.TrimSpace(number)
	if number == "" {
		return nil, errors.New("enter a number to call")
	}
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	oc := &OwnCall{s: s, number: number, state: CallRinging, cancelDial: cancel, done: make(chan struct{})}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrSessionClosed
	}
	s.own = append(s.own, oc)
	s.mu.Unlock()
	s.changed()

	sc, err := s.phone.Dial(dctx, number)
	oc.mu.Lock()
	hangingUp := oc.hangingUp
	oc.cancelDial = nil
	if err == nil {
		oc.sc = sc
		oc.state, oc.answeredAt = CallTalking, time.Now()
	}
	oc.mu.Unlock()
	if err != nil {
		reason := "failed"
		if hangingUp {
			reason = "cancelled"
		}
		oc.finish(reason)
		return nil, fmt.Errorf("calling %s: %w", number, sipError(err))
	}
	if !s.goTracked(func() { oc.watch(sc) }) {
		hctx, hcancel := context.WithTimeout(context.Background(), closeWait)
		_ = sc.Hangup(hctx)
		hcancel()
		oc.finish("logged out")
		return nil, ErrSessionClosed
	}
	if hangingUp {
		_ = oc.Hangup(ctx)
	}
	s.mu.Lock()
	s.bindOwnCallsLocked()
	s.mu.Unlock()
	s.changed()
	return oc, nil
}

// OwnCalls is this user's own calls: ringing (incoming or being dialled) and answered.
func (s *Session) OwnCalls() []*OwnCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.own)
}

func (c *OwnCall) serverID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id
}

func (c *OwnCall) phoneCall() *simphone.Call {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sc
}

// ID is the server's call id, "" until the server has listed the call.
func (c *OwnCall) ID() string { return c.serverID() }

// Kind is CallKindPhone, or CallKindLive for a web visitor calling from the browser
// (WebRTC end to end: no hold, keypad or transfer).
func (c *OwnCall) Kind() string {
	if c.live != nil {
		return CallKindLive
	}
	return CallKindPhone
}

// Incoming tells whether the call came in (true) or was dialled.
func (c *OwnCall) Incoming() bool { return c.incoming }

// Peer is who is on the other end: the server's customer once it has listed the call,
// else what SIP said.
func (c *OwnCall) Peer() Customer {
	if sc, ok := c.server(); ok && (sc.Customer.Number != "" || sc.Customer.Name != "") {
		return sc.Customer
	}
	return Customer{Number: c.number, Name: c.name}
}

func (c *OwnCall) server() (Call, bool) {
	id := c.serverID()
	if id == "" {
		return Call{}, false
	}
	return c.s.call(id)
}

// State is ringing, talking, held or ended.
func (c *OwnCall) State() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// AnsweredAt is when the call was answered (zero before).
func (c *OwnCall) AnsweredAt() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.answeredAt
}

// EndReason says how the call ended ("" while it lasts).
func (c *OwnCall) EndReason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endReason
}

// Answer answers a ringing incoming call.
func (c *OwnCall) Answer(ctx context.Context) error {
	if !c.incoming {
		return errors.New("only an incoming call can be answered")
	}
	if c.live != nil {
		if err := c.live.answer(ctx); err != nil {
			return err
		}
		c.setAnswered()
		return nil
	}
	sc := c.phoneCall()
	if err := sc.Answer(ctx); err != nil {
		if errors.Is(err, simphone.ErrCallEnded) {
			return errors.New("the caller hung up")
		}
		return fmt.Errorf("answering: %w", err)
	}
	c.setAnswered()
	return nil
}

func (c *OwnCall) setAnswered() {
	c.mu.Lock()
	if c.state == CallRinging {
		c.state, c.answeredAt = CallTalking, time.Now()
	}
	c.mu.Unlock()
	c.s.changed()
}

// Hangup ends the call: BYE when answered, declines a ringing incoming call, cancels
// one being dialled. It returns once the call has ended or ctx expires.
func (c *OwnCall) Hangup(ctx context.Context) error {
	c.mu.Lock()
	c.hangingUp = true
	sc, cancelDial := c.sc, c.cancelDial
	c.mu.Unlock()
	if c.live != nil {
		c.live.stop("hung up", true)
	} else if sc == nil {
		if cancelDial != nil {
			cancelDial()
		}
	} else if err := sc.Hangup(ctx); err != nil && !errors.Is(err, simphone.ErrCallEnded) {
		return fmt.Errorf("hanging up: %w", err)
	}
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SetMute sends silence instead of the microphone while on.
func (c *OwnCall) SetMute(on bool) {
	c.mu.Lock()
	c.muted = on
	sc, held := c.sc, c.held
	c.mu.Unlock()
	if c.live != nil {
		c.live.audio.setMute(on)
	}
	if sc != nil {
		sc.SetMute(on || held)
	}
	c.s.changed()
}

// Muted tells whether the microphone is muted.
func (c *OwnCall) Muted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.muted
}

// SetHold puts the call on hold (re-INVITE sendonly; the microphone is not sent) or
// takes it off.
func (c *OwnCall) SetHold(ctx context.Context, on bool) error {
	if c.live != nil {
		return fmt.Errorf("hold: %w", ErrLiveUnsupported)
	}
	sc := c.phoneCall()
	if sc == nil {
		return errors.New("the call is not answered yet")
	}
	var err error
	if on {
		sc.SetMute(true) // nothing of the room reaches the held party meanwhile
		err = sc.Hold(ctx)
	} else {
		err = sc.Resume(ctx)
	}
	c.mu.Lock()
	if err == nil {
		c.held = on
		if c.state != CallEnded {
			c.state = CallTalking
			if on {
				c.state = CallHeld
			}
		}
	}
	muted, held := c.muted, c.held
	c.mu.Unlock()
	sc.SetMute(muted || held)
	if err != nil {
		if on {
			return fmt.Errorf("putting the call on hold: %w", sipError(err))
		}
		return fmt.Errorf("taking the call off hold: %w", sipError(err))
	}
	c.s.changed()
	return nil
}

// SendDTMF sends one keypad digit (0-9, *, #, A-D) as an RFC 4733 event.
func (c *OwnCall) SendDTMF(digit rune) error {
	if c.live != nil {
		return fmt.Errorf("keypad: %w", ErrLiveUnsupported)
	}
	sc := c.phoneCall()
	if sc == nil {
		return errors.New("the call is not answered yet")
	}
	return sc.SendDTMF(digit)
}

// transferWait bounds how long Transfer waits for the server to report the outcome.
const transferWait = 30 * time.Second

// Transfer hands the call to target (an extension or number) as a blind transfer: SIP
// REFER with Refer-To: sip:<target>@<domain>. It returns once the server reports the
// transfer done (this leg then ends) or failed; ErrTransferUnsupported when the server
// does not do transfers.
func (c *OwnCall) Transfer(ctx context.Context, target string) error {
	target = strings.TrimSpace(target)
	if target == "" {
		return errors.New("enter the number to transfer to")
	}
	if c.live != nil {
		return fmt.Errorf("transfer: %w", ErrLiveUnsupported)
	}
	sc := c.phoneCall()
	if sc == nil {
		return errors.New("the call is not answered yet")
	}
	uri := target
	if !strings.HasPrefix(strings.ToLower(target), "sip:") {
		if !strings.Contains(target, "@") {
			target += "@" + c.s.domain
		}
		uri = "sip:" + target
	}
	if err := sc.Refer(ctx, uri); err != nil {
		var se *simphone.StatusError
		if errors.As(err, &se) && (se.Code == 501 || se.Code == 405 || se.Code == 420) {
			return fmt.Errorf("%w (%v)", ErrTransferUnsupported, err)
		}
		return fmt.Errorf("transferring the call: %w", sipError(err))
	}
	t := time.NewTimer(transferWait)
	defer t.Stop()
	select {
	case <-sc.Done():
		return nil // the server took the call over and ended this leg
	case code := <-sc.ReferStatus():
		if code/100 != 2 {
			return fmt.Errorf("the transfer failed: %s answered %d", target, code)
		}
		hctx, cancel := context.WithTimeout(context.Background(), closeWait)
		defer cancel()
		_ = sc.Hangup(hctx)
		return nil
	case <-t.C:
		return nil // accepted; the server has not said more
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Monitored tells whether a supervisor listens to this call, as far as the server lets
// the agent know (the setting notify-agent-on-monitor).
func (c *OwnCall) Monitored() bool {
	sc, ok := c.server()
	return ok && sc.Monitored
}

// Whisper tells whether a supervisor is talking to the agent (whisper or barge), as far
// as the server lets the agent know.
func (c *OwnCall) Whisper() bool {
	sc, ok := c.server()
	return ok && sc.Whisper
}

// Done is closed when the call has ended.
func (c *OwnCall) Done() <-chan struct{} { return c.done }
