package simphone

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"ringside/media"
	"ringside/media/dtlssrtp"
)

type callState int

const (
	stateRinging     callState = iota // incoming, not answered yet / outgoing, INVITE pending
	stateAnswering                    // incoming, 200 sent, waiting for ACK
	stateEstablished                  // media flowing
	stateEnded
)

// ErrCallEnded is returned by operations on a call that has ended.
var ErrCallEnded = errors.New("simphone: call ended")

// Call is one SIP dialog of a Phone with its RTP stream.
type Call struct {
	p        *Phone
	incoming bool
	st       *stream
	digits   chan rune

	req      *sip.Request  // the initial INVITE (received, or sent by Dial)
	res      *sip.Response // outgoing: the 2xx
	callID   string
	localTag string

	cs *sipgo.DialogClientSession // outgoing
	ss *sipgo.DialogServerSession // incoming

	mu           sync.Mutex
	state        callState
	remoteTag    string
	dialogID     string
	remoteTarget sip.Uri
	localDir     media.Direction // what we want: sendrecv, or sendonly while holding
	negotiated   media.Direction // direction of the last offer/answer, from our side
	sdpID        uint64
	sdpVersion   uint64
	offer        *media.SessionDesc // incoming: the INVITE's offer (nil: offer-less INVITE)
	dtls         *media.DTLSParams  // our DTLS-SRTP attributes; nil: plain RTP
	awaitAckSDP  bool
	dialCancel   func() // outgoing, while the INVITE is pending

	reqMu       sync.Mutex // serialises our in-dialog requests (CSeq, re-INVITE + ACK)
	reinviting  atomic.Bool
	localHangup atomic.Bool
	byRemote    atomic.Bool

	referStat chan int // final statuses from NOTIFYs about our REFER

	answered     chan struct{} // closed when ringing/answering is over (either way)
	answeredOnce sync.Once
	kill         chan struct{} // forces the call down without signalling
	killOnce     sync.Once
	done         chan struct{}
	finishOnce   sync.Once
}

func (p *Phone) newCall(incoming bool) (*Call, error) {
	digits := make(chan rune, 64)
	st, err := newStreamAt(p.ip, p.audio, p.log, p.cfg.Codec, p.cfg.ToneHz, p.cfg.RecordMax, digits)
	if err != nil {
		return nil, fmt.Errorf("simphone: RTP socket: %w", err)
	}
	return &Call{
		p:          p,
		incoming:   incoming,
		st:         st,
		digits:     digits,
		localDir:   media.SendRecv,
		negotiated: media.SendRecv,
		sdpID:      rand.Uint64N(1 << 62),
		answered:   make(chan struct{}),
		referStat:  make(chan int, 8),
		kill:       make(chan struct{}),
		done:       make(chan struct{}),
	}, nil
}

// --- SDP ---

func sends(d media.Direction) bool { return d == media.SendRecv || d == media.SendOnly || d == "" }
func recvs(d media.Direction) bool { return d == media.SendRecv || d == media.RecvOnly || d == "" }

func direction(send, recv bool) media.Direction {
	switch {
	case send && recv:
		return media.SendRecv
	case send:
		return media.SendOnly
	case recv:
		return media.RecvOnly
	}
	return media.Inactive
}

// offerLocked builds our SDP offer; c.mu held.
func (c *Call) offerLocked() []byte {
	c.sdpVersion++
	d := media.SessionDesc{
		Addr:      c.st.local,
		Codecs:    c.p.codecs(),
		DTMFType:  defaultDTMFType,
		Direction: c.localDir,
		Ptime:     20,
		LevelsID:  levelsExtID,
	}
	if c.p.cfg.SRTP && c.dtls == nil && c.st.secure.Load() == nil {
		if cert, err := dtlssrtp.LocalCertificate(); err == nil {
			c.dtls = &media.DTLSParams{Fingerprint: cert.Fingerprint.String(), Setup: dtlssrtp.SetupActPass}
		} else {
			c.p.log.Error("offering plain RTP", "err", err)
		}
	}
	d.DTLS = c.dtls
	d.RTCPMux = c.dtls != nil
	return c.p.mangle(d.Marshal(c.sdpID, c.sdpVersion))
}

func (p *Phone) mangle(body []byte) []byte {
	if p.cfg.MangleSDP != nil {
		return p.cfg.MangleSDP(body)
	}
	return body
}

// acceptable refuses offers the phone's configuration can't take: DTLS-SRTP without
// Config.SRTP, or with a fingerprint we can't read.
func (p *Phone) acceptable(offer media.SessionDesc) error {
	if offer.DTLS == nil {
		return nil
	}
	if !p.cfg.SRTP {
		return fmt.Errorf("%w (this phone has SRTP off)", media.ErrEncryptedMedia)
	}
	_, err := dtlssrtp.ParseFingerprint(offer.DTLS.Fingerprint)
	return err
}

// registerContact is our Contact for REGISTER, with the DTLS-SRTP feature tag when on.
func (p *Phone) registerContact() *sip.ContactHeader {
	ct := p.contact.Clone()
	if p.cfg.SRTP {
		if ct.Params == nil {
			ct.Params = sip.NewParams()
		}
		ct.Params.Add(dtlssrtp.ContactFeature, "")
	}
	return ct
}

// secureLocked starts DTLS-SRTP on the call's stream once offer/answer agreed on it (the
// stream is configured: the handshake goes to the peer's SDP address); c.mu held. A
// failed handshake (the peer's certificate is not the one its SDP named) hangs up.
func (c *Call) secureLocked(role dtlssrtp.Role, peer *media.DTLSParams) error {
	if c.st.secure.Load() != nil {
		return nil // a re-INVITE keeps the association (RFC 5763 §6.7 allows no change here)
	}
	fp, err := dtlssrtp.ParseFingerprint(peer.Fingerprint)
	if err != nil {
		return err
	}
	return c.st.startSecure(role, fp, func(err error) {
		c.p.log.Warn("DTLS-SRTP failed, hanging up", "err", err)
		if !c.p.enter() {
			return
		}
		go func() {
			defer c.p.wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
			defer cancel()
			_ = c.Hangup(ctx)
		}()
	})
}

// answerLocked answers a peer's offer and applies it to the stream; c.mu held.
func (c *Call) answerLocked(offer media.SessionDesc) ([]byte, error) {
	codec, err := media.Negotiate(offer, c.p.codecs())
	if err != nil {
		return nil, err
	}
	if err := c.p.acceptable(offer); err != nil {
		return nil, err
	}
	dir := direction(sends(c.localDir) && recvs(offer.Direction), recvs(c.localDir) && sends(offer.Direction))
	c.negotiated = dir
	c.sdpVersion++
	d := media.SessionDesc{
		Addr:      c.st.local,
		Codecs:    []media.Codec{codec},
		DTMFType:  offer.DTMFType,
		Direction: dir,
		Ptime:     20,
		LevelsID:  offer.LevelsID,
	}
	c.st.configure(offer.Addr, codec, offer.DTMFType, offer.DTMFType, sends(dir))
	c.st.setLevelsID(offer.LevelsID)
	if offer.DTLS != nil {
		// We answer active, as SIP phones do (RFC 5763 §5): our ClientHello follows the answer.
		role, setup := dtlssrtp.AnswerRole(offer.DTLS.Setup, dtlssrtp.Client)
		if c.dtls == nil {
			cert, err := dtlssrtp.LocalCertificate()
			if err != nil {
				return nil, err
			}
			c.dtls = &media.DTLSParams{Fingerprint: cert.Fingerprint.String(), Setup: setup}
		}
		if err := c.secureLocked(role, offer.DTLS); err != nil {
			return nil, err
		}
	} else if c.st.secure.Load() == nil {
		c.dtls = nil
	}
	d.DTLS = c.dtls
	d.RTCPMux = offer.RTCPMux
	return c.p.mangle(d.Marshal(c.sdpID, c.sdpVersion)), nil
}

// applyAnswerLocked applies the peer's answer to our offer; c.mu held.
func (c *Call) applyAnswerLocked(body []byte) error {
	ans, err := media.ParseSDP(body)
	if err != nil {
		return err
	}
	codec, ok := media.Codec(0), false
	for _, a := range ans.Codecs {
		for _, s := range c.p.codecs() {
			if a == s {
				codec, ok = a, true
				break
			}
		}
		if ok {
			break
		}
	}
	if !ok {
		return fmt.Errorf("%w: answer has %v", media.ErrNoCommonCodec, ans.Codecs)
	}
	if ans.DTLS != nil && c.dtls == nil {
		return fmt.Errorf("%w: the answer is DTLS-SRTP, our offer was plain RTP", media.ErrBadSDP)
	}
	dir := direction(sends(c.localDir) && recvs(ans.Direction), recvs(c.localDir) && sends(ans.Direction))
	c.negotiated = dir
	c.st.configure(ans.Addr, codec, ans.DTMFType, ans.DTMFType, sends(dir))
	c.st.setLevelsID(ans.LevelsID)
	switch {
	case ans.DTLS != nil && c.st.secure.Load() == nil:
		role := dtlssrtp.OfferRole(ans.DTLS.Setup)
		setup := dtlssrtp.SetupPassive
		if role == dtlssrtp.Client {
			setup = dtlssrtp.SetupActive
		}
		c.dtls = &media.DTLSParams{Fingerprint: c.dtls.Fingerprint, Setup: setup} // what later offers say
		return c.secureLocked(role, ans.DTLS)
	case ans.DTLS == nil && c.st.secure.Load() == nil:
		c.dtls = nil // the peer chose plain RTP
	}
	return nil
}

// --- life cycle ---

func (c *Call) closeAnswered() { c.answeredOnce.Do(func() { close(c.answered) }) }

// waitAnswered waits until the call left the ringing/answering phase; false
// on timeout.
func (c *Call) waitAnswered(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.answered:
		return true
	case <-c.done:
		return true
	case <-t.C:
		return false
	}
}

// terminate forces the call down locally (no signalling).
func (c *Call) terminate() {
	c.killOnce.Do(func() { close(c.kill) })
}

// finish runs once when the dialog is over.
func (c *Call) finish() {
	c.finishOnce.Do(func() {
		c.mu.Lock()
		c.state = stateEnded
		c.mu.Unlock()
		c.byRemote.Store(!c.localHangup.Load())
		c.closeAnswered()
		c.st.close()
		c.p.removeCall(c)
		close(c.done)
		c.p.log.Debug("call ended", "call-id", c.callID, "by_remote", c.byRemote.Load())
	})
}

// Answer answers a ringing incoming call with 200 + SDP and waits for the
// ACK (sipgo gives up after 64*T1).
func (c *Call) Answer(ctx context.Context) error {
	if !c.incoming {
		return errors.New("simphone: Answer on an outgoing call")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	if c.state != stateRinging {
		c.mu.Unlock()
		return fmt.Errorf("simphone: Answer: call is not ringing")
	}
	c.state = stateAnswering
	var body []byte
	if c.offer != nil {
		var err error
		body, err = c.answerLocked(*c.offer)
		if err != nil { // checked when the INVITE arrived
			c.mu.Unlock()
			return err
		}
	} else {
		body = c.offerLocked()
		c.awaitAckSDP = true
	}
	c.mu.Unlock()

	c.st.startSending()
	err := c.ss.RespondSDP(body)
	c.mu.Lock()
	if err == nil && c.state == stateAnswering {
		c.state = stateEstablished
	}
	c.mu.Unlock()
	c.closeAnswered()
	if err != nil {
		c.terminate()
		return fmt.Errorf("simphone: answer: %w", err)
	}
	return nil
}

// Reject answers a ringing incoming call with a final error response.
func (c *Call) Reject(code int, reason string) error {
	if !c.incoming {
		return errors.New("simphone: Reject on an outgoing call")
	}
	if code < 300 || code > 699 {
		return fmt.Errorf("simphone: Reject with %d", code)
	}
	c.mu.Lock()
	if c.state != stateRinging {
		c.mu.Unlock()
		return fmt.Errorf("simphone: Reject: call is not ringing")
	}
	c.state = stateEnded
	c.mu.Unlock()
	c.localHangup.Store(true)
	err := c.ss.Respond(code, reason, nil)
	c.terminate()
	<-c.done
	return err
}

// Hangup ends the call: BYE when answered, CANCEL while an outgoing INVITE
// is pending, 603 Decline for a ringing incoming call. It returns once the
// call is over (Done closed) or ctx expires; on a signalling failure the call
// is torn down locally all the same.
func (c *Call) Hangup(ctx context.Context) error {
	c.localHangup.Store(true)
	c.mu.Lock()
	state, dialCancel := c.state, c.dialCancel
	if c.incoming && state == stateRinging {
		c.state = stateEnded
	}
	c.mu.Unlock()

	var err error
	switch {
	case state == stateEnded:
	case c.incoming && state == stateRinging:
		err = c.ss.Respond(603, "Decline", nil)
		c.terminate()
	default:
		if !c.incoming && state == stateRinging && dialCancel != nil {
			dialCancel() // Dial sends CANCEL, or gives up, and ends the call
		}
		select {
		case <-c.answered:
		case <-ctx.Done():
			c.terminate()
			return ctx.Err()
		}
		c.mu.Lock()
		state = c.state
		c.mu.Unlock()
		if state == stateEstablished {
			if err = c.sendBye(ctx); err != nil {
				c.terminate()
			}
		}
	}
	select {
	case <-c.done:
		return err
	case <-ctx.Done():
		c.terminate()
		return ctx.Err()
	}
}

func (c *Call) target() sip.Uri {
	c.mu.Lock()
	defer c.mu.Unlock()
	return *c.remoteTarget.Clone()
}

func (c *Call) sendBye(ctx context.Context) error {
	c.reqMu.Lock()
	defer c.reqMu.Unlock()
	bye := sip.NewRequest(sip.BYE, c.target())
	c.p.setLaddr(bye)
	if c.cs != nil {
		return c.cs.WriteBye(ctx, bye)
	}
	return c.ss.WriteBye(ctx, bye)
}

// do sends one in-dialog request and waits for its final response.
func (c *Call) doLocked(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	c.p.setLaddr(req)
	if c.cs != nil {
		return c.cs.Do(ctx, req)
	}
	return c.ss.Do(ctx, req)
}

func (c *Call) writeLocked(req *sip.Request) error {
	c.p.setLaddr(req)
	if c.cs != nil {
		return c.cs.WriteRequest(req)
	}
	return c.ss.WriteRequest(req)
}

func (c *Call) established() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateEstablished {
		if c.state == stateEnded {
			return ErrCallEnded
		}
		return errors.New("simphone: call not answered yet")
	}
	return nil
}

// Hold sends a re-INVITE with a=sendonly (the phone keeps sending its tone,
// as music on hold would; the peer should stop sending).
func (c *Call) Hold(ctx context.Context) error { return c.reinvite(ctx, media.SendOnly) }

// Resume sends a re-INVITE with a=sendrecv.
func (c *Call) Resume(ctx context.Context) error { return c.reinvite(ctx, media.SendRecv) }

func (c *Call) reinvite(ctx context.Context, dir media.Direction) error {
	if err := c.established(); err != nil {
		return err
	}
	c.reqMu.Lock()
	defer c.reqMu.Unlock()
	if !c.reinviting.CompareAndSwap(false, true) {
		return errors.New("simphone: re-INVITE already in progress")
	}
	defer c.reinviting.Store(false)

	c.mu.Lock()
	prev := c.localDir
	c.localDir = dir
	body := c.offerLocked()
	target := *c.remoteTarget.Clone()
	c.mu.Unlock()

	req := sip.NewRequest(sip.INVITE, target)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(body)
	res, err := c.doLocked(ctx, req)
	if err == nil && !res.IsSuccess() {
		err = statusError(req, res)
	}
	if err != nil {
		c.mu.Lock()
		c.localDir = prev
		c.mu.Unlock()
		return fmt.Errorf("simphone: re-INVITE: %w", err)
	}
	ack := sip.NewRequest(sip.ACK, target)
	if err := c.writeLocked(ack); err != nil {
		c.p.log.Warn("re-INVITE ACK failed", "err", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(res.Body()) == 0 {
		return errors.New("simphone: re-INVITE: 2xx without SDP")
	}
	return c.applyAnswerLocked(res.Body())
}

// SendDTMF queues one RFC 4733 telephone-event on the RTP stream (payload
// type from the peer's SDP, default 101): 5 packets over 100 ms with the
// event's start timestamp, then 3 redundant End packets. Digits queue up and
// go out one after the other.
func (c *Call) SendDTMF(digit rune) error {
	code, ok := media.DTMFEventCode(digit)
	if !ok {
		return fmt.Errorf("simphone: %q is not a DTMF digit", digit)
	}
	if err := c.established(); err != nil {
		return err
	}
	select {
	case c.st.dtmfQ <- code:
		return nil
	default:
		return errors.New("simphone: DTMF queue full")
	}
}

// SendInfoDTMF sends the digit as SIP INFO application/dtmf-relay.
func (c *Call) SendInfoDTMF(ctx context.Context, digit rune) error {
	code, ok := media.DTMFEventCode(digit)
	if !ok {
		return fmt.Errorf("simphone: %q is not a DTMF digit", digit)
	}
	d, _ := media.DTMFDigit(code)
	if err := c.established(); err != nil {
		return err
	}
	c.reqMu.Lock()
	defer c.reqMu.Unlock()
	req := sip.NewRequest(sip.INFO, c.target())
	req.AppendHeader(sip.NewHeader("Content-Type", "application/dtmf-relay"))
	req.SetBody(fmt.Appendf(nil, "Signal=%c\r\nDuration=160\r\n", d))
	res, err := c.doLocked(ctx, req)
	if err != nil {
		return fmt.Errorf("simphone: INFO: %w", err)
	}
	if !res.IsSuccess() {
		return statusError(req, res)
	}
	return nil
}

// DTMF reports digits received: RFC 4733 events (once per event, at its
// first End packet) and SIP INFO digits. Buffered (64); extra digits are
// dropped. Never closed.
func (c *Call) DTMF() <-chan rune { return c.digits }

// SetTone changes the tone this call sends (0 = silence).
func (c *Call) SetTone(hz float64) { c.st.setTone(hz) }

// StopMedia stops sending RTP altogether, as a phone that died or lost its
// network would (SIP and receiving carry on). StartMedia resumes it, with
// sequence numbers running on and timestamps reflecting the gap.
func (c *Call) StopMedia() { c.st.setHalted(true) }

// StartMedia undoes StopMedia.
func (c *Call) StartMedia() { c.st.setHalted(false) }

// SetMute sends silence instead of the tone while true (packets keep flowing).
func (c *Call) SetMute(mute bool) { c.st.setMuted(mute) }

// Secure reports whether the call's media is DTLS-SRTP with the handshake done.
func (c *Call) Secure() bool {
	s := c.st.secure.Load()
	return s != nil && s.Ready()
}

// MediaError is why the call's DTLS-SRTP handshake failed, nil otherwise.
func (c *Call) MediaError() error {
	if s := c.st.secure.Load(); s != nil {
		return s.Err()
	}
	return nil
}

// Done is closed when the call has ended (either side, or rejected/cancelled).
func (c *Call) Done() <-chan struct{} { return c.done }

// EndedByRemote tells, once Done is closed, whether the peer ended the call
// (BYE, CANCEL, or the peer's reject) rather than this phone.
func (c *Call) EndedByRemote() bool {
	select {
	case <-c.done:
		return c.byRemote.Load()
	default:
		return false
	}
}

// Incoming tells whether the call was received (true) or dialled.
func (c *Call) Incoming() bool { return c.incoming }

// CallID is the dialog's Call-ID.
func (c *Call) CallID() string { return c.callID }

// LocalTag is this phone's tag (From tag when dialled, To tag when received).
func (c *Call) LocalTag() string { return c.localTag }

// RemoteTag is the peer's tag.
func (c *Call) RemoteTag() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.remoteTag
}

// DialogID is sipgo's dialog id from this phone's side (Call-ID, local tag
// and remote tag joined by sipgo's separator).
func (c *Call) DialogID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dialogID
}

// Request is the initial INVITE: as received for incoming calls (read From,
// To, custom headers), as sent for dialled ones.
func (c *Call) Request() *sip.Request { return c.req }

// Header returns the value of the initial INVITE's header name ("" if absent).
func (c *Call) Header(name string) string {
	if h := c.req.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

// Response is the 2xx that answered a dialled call (nil for incoming calls).
func (c *Call) Response() *sip.Response { return c.res }

// Recording is a copy of all audio received so far (since ResetRecording),
// decoded, one frame per received packet in arrival order.
func (c *Call) Recording() []int16 { return c.st.recording() }

// ResetRecording drops the audio recorded so far (not ReceivedHeaders).
func (c *Call) ResetRecording() { c.st.resetRecording() }

// WaitRecording waits until at least d of audio was recorded since the last
// ResetRecording.
func (c *Call) WaitRecording(ctx context.Context, d time.Duration) error {
	n := int(d / (time.Second / media.SampleRate))
	select {
	case <-c.st.waitSamples(n):
		return nil
	case <-ctx.Done():
		return fmt.Errorf("simphone: waiting for %v of audio: %w", d, ctx.Err())
	}
}

// ToneLevelDB is the level of freq in the recording, dB relative to full
// scale (media.ToneLevelDB).
func (c *Call) ToneLevelDB(freq float64) float64 {
	return media.ToneLevelDB(c.Recording(), freq)
}

// ReceivedHeaders is every audio RTP header received (since ResetHeaders).
func (c *Call) ReceivedHeaders() []media.RTPHeader { return c.st.headers() }

// ResetHeaders drops the headers collected so far.
func (c *Call) ResetHeaders() { c.st.resetHeaders() }

// Stats counts the call's RTP packets.
func (c *Call) Stats() Stats { return c.st.getStats() }

// RemoteMedia is where the call sends RTP (from the peer's SDP).
func (c *Call) RemoteMedia() netip.AddrPort { return c.st.remoteAddr() }

// LocalMedia is the call's own RTP address (127.0.0.1:port).
func (c *Call) LocalMedia() netip.AddrPort { return c.st.local }

// Codec is the codec the call sends with.
func (c *Call) Codec() media.Codec { return c.st.currentCodec() }

// Direction is the media direction last negotiated, from this phone's side
// (sendonly while it holds, recvonly while the peer holds it).
func (c *Call) Direction() media.Direction {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.negotiated
}

func (c *Call) String() string {
	dir := "out"
	if c.incoming {
		dir = "in"
	}
	return fmt.Sprintf("call(%s %s %s)", c.p.cfg.Ext, dir, c.callID)
}

// AudioLevels is what the server's mixer said, in the last audio packet, about how loud
// each source it mixed is: RFC 6465 levels in -dBov (0 loudest, 127 silent), in CSRC
// order. nil when the packet carried none (the extension was not agreed, or the stream
// is not mixed).
func (c *Call) AudioLevels() []uint8 { return c.st.audioLevels() }
