// Package webvisitor is a web visitor calling an agent from the browser, spoken by pion
// instead of a browser: the call page's side of docs/live-calls.md over the real visitor
// WebSocket of a real server, ICE on loopback only. The demo's bot visitor speaks
// recorded speech through it (Loop); tests send a tone (Tone) and measure what the
// visitor hears, the way a user would notice it.
package webvisitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	pmedia "github.com/pion/webrtc/v4/pkg/media"

	"ringside/media"
	"ringside/media/opus"
)

// Message is one signalling message from the server to the visitor.
type Message struct {
	Type      string                   `json:"type"`
	CallID    string                   `json:"call_id,omitempty"`
	SDP       string                   `json:"sdp,omitempty"`
	Candidate *webrtc.ICECandidateInit `json:"candidate,omitempty"`
	Reason    string                   `json:"reason,omitempty"`
}

// Codecs a Visitor may offer.
const (
	Opus = "opus"
	PCMU = "PCMU"
)

var (
	opusCap = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}
	pcmuCap = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000, Channels: 1}
)

func loopback(ip net.IP) bool { return ip.IsLoopback() }

// Voice is what the visitor's microphone hears: Fill gets one 20 ms frame (8 kHz mono)
// at a time, from one goroutine.
type Voice interface {
	Fill(pcm []int16)
}

// Tone is a steady tone of hz at 0.3 of full scale, the tests' voice.
func Tone(hz float64) Voice { return media.NewTone(hz, 0.3) }

// Loop plays pcm (8 kHz mono, e.g. from app.DecodeWAV) over and over; empty is silence.
func Loop(pcm []int16) Voice { return &loop{pcm: pcm} }

type loop struct {
	pcm []int16
	pos int
}

func (l *loop) Fill(frame []int16) {
	if len(l.pcm) == 0 {
		clear(frame)
		return
	}
	for n := 0; n < len(frame); {
		k := copy(frame[n:], l.pcm[l.pos:])
		n += k
		l.pos = (l.pos + k) % len(l.pcm)
	}
}

// Config is one visitor's call.
type Config struct {
	Name  string // the name the visitor gives ("" leaves it to the server: "Web visitor")
	Voice Voice  // what the visitor says; nil is silence
	// Codecs the visitor offers, in order of preference: Opus, PCMU. Default both, Opus first.
	Codecs []string
	// Tamper, when set, rewrites the offer before it goes out, as a server in the
	// middle might (a test of what the agent refuses).
	Tamper func(sdp string) string
	// RecordMax bounds what the visitor keeps of what it hears (Listen needs at least
	// its skip plus its duration); zero keeps everything until Close.
	RecordMax time.Duration
}

// Visitor is one web visitor's call in progress.
type Visitor struct {
	ws   *websocket.Conn
	pc   *webrtc.PeerConnection
	msgs chan Message
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup
	keep int // samples of heard kept; 0: all

	mu      sync.Mutex
	heard   []int16
	errs    []error
	dropped bool // DropMedia: the peer connection's errors are expected
}

// Call opens ws://httpAddr/live/{ext}/ws and offers a call from name, sending a tone of
// hz, offering codecs in that order of preference (default Opus then PCMU); its
// candidates trickle after the offer. Close ends it.
func Call(ctx context.Context, httpAddr, ext, name string, hz float64, codecs ...string) (*Visitor, error) {
	return Dial(ctx, httpAddr, ext, Config{Name: name, Voice: Tone(hz), Codecs: codecs})
}

// CallTampered is Call with the offer rewritten by tamper before it goes out, as a
// server in the middle might (a test of what the agent refuses).
func CallTampered(ctx context.Context, httpAddr, ext, name string, hz float64, tamper func(sdp string) string) (*Visitor, error) {
	return Dial(ctx, httpAddr, ext, Config{Name: name, Voice: Tone(hz), Tamper: tamper})
}

// Dial opens ws://httpAddr/live/{ext}/ws and offers a call as cfg says; the visitor's
// candidates (loopback only) trickle after the offer, and it speaks cfg.Voice from
// then on. The server's messages queue for Expect: a visitor that runs a while must
// keep reading them. Close ends the call.
func Dial(ctx context.Context, httpAddr, ext string, cfg Config) (*Visitor, error) {
	codecs := cfg.Codecs
	if len(codecs) == 0 {
		codecs = []string{Opus, PCMU}
	}
	voice := cfg.Voice
	if voice == nil {
		voice = Loop(nil)
	}
	ws, _, err := websocket.Dial(ctx, "ws://"+httpAddr+"/live/"+ext+"/ws", nil)
	if err != nil {
		return nil, fmt.Errorf("visitor socket: %w", err)
	}
	v := &Visitor{ws: ws, msgs: make(chan Message, 32), stop: make(chan struct{}),
		keep: int(cfg.RecordMax / (time.Second / media.SampleRate))}
	m := &webrtc.MediaEngine{}
	var first webrtc.RTPCodecCapability
	for i, c := range codecs {
		cap, pt := opusCap, webrtc.PayloadType(111)
		if c == PCMU {
			cap, pt = pcmuCap, 0
		}
		if i == 0 {
			first = cap
		}
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: cap, PayloadType: pt}, webrtc.RTPCodecTypeAudio); err != nil {
			_ = ws.CloseNow()
			return nil, err
		}
	}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(loopback)
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se))
	if v.pc, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		_ = ws.CloseNow()
		return nil, err
	}
	fail := func(err error) (*Visitor, error) {
		v.Close()
		return nil, err
	}
	track, err := webrtc.NewTrackLocalStaticSample(first, "mic", "visitor")
	if err != nil {
		return fail(err)
	}
	if _, err := v.pc.AddTrack(track); err != nil {
		return fail(err)
	}
	v.pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		v.wg.Go(func() { v.receive(tr) })
	})
	// Candidates wait for the offer to go first.
	cands := make(chan webrtc.ICECandidateInit, 16)
	v.pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			select {
			case cands <- c.ToJSON():
			default:
			}
		}
	})
	offer, err := v.pc.CreateOffer(nil)
	if err != nil {
		return fail(err)
	}
	if err := v.pc.SetLocalDescription(offer); err != nil {
		return fail(err)
	}
	v.wg.Go(v.read)
	sdp := offer.SDP
	if cfg.Tamper != nil {
		sdp = cfg.Tamper(sdp)
	}
	if err := v.send(map[string]any{"type": "offer", "sdp": sdp, "name": cfg.Name}); err != nil {
		return fail(err)
	}
	v.wg.Go(func() {
		for {
			select {
			case <-v.stop:
				return
			case c := <-cands:
				_ = v.send(map[string]any{"type": "candidate", "candidate": c})
			}
		}
	})
	v.wg.Go(func() { v.speak(track, first.MimeType, voice) })
	return v, nil
}

func (v *Visitor) send(m any) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return v.ws.Write(ctx, websocket.MessageText, b)
}

func (v *Visitor) fail(err error) {
	v.mu.Lock()
	if !v.dropped {
		v.errs = append(v.errs, err)
	}
	v.mu.Unlock()
}

// Err is what went wrong on the visitor's side (a bad answer, no decoder), nil if nothing.
func (v *Visitor) Err() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return errors.Join(v.errs...)
}

// read applies the server's answer and candidates and queues every message for Next.
func (v *Visitor) read() {
	defer close(v.msgs)
	for {
		_, b, err := v.ws.Read(context.Background())
		if err != nil {
			return
		}
		var m Message
		if json.Unmarshal(b, &m) != nil {
			continue
		}
		switch m.Type {
		case "answer":
			if err := v.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.SDP}); err != nil {
				v.fail(fmt.Errorf("the agent's answer: %w", err))
			}
		case "candidate":
			if m.Candidate != nil {
				_ = v.pc.AddICECandidate(*m.Candidate)
			}
		}
		select {
		case v.msgs <- m:
		case <-v.stop:
			return
		}
	}
}

// Expect waits for the server's next message of type typ, skipping others; an "error"
// message fails it.
func (v *Visitor) Expect(ctx context.Context, typ string) (Message, error) {
	for {
		select {
		case m, ok := <-v.msgs:
			if !ok {
				return Message{}, fmt.Errorf("the visitor socket closed while waiting for %q", typ)
			}
			if m.Type == typ {
				return m, nil
			}
			if m.Type == "error" {
				return m, fmt.Errorf("the server said %q while the visitor waited for %q", m.Reason, typ)
			}
		case <-ctx.Done():
			return Message{}, fmt.Errorf("waiting for %q: %w", typ, ctx.Err())
		}
	}
}

// speak sends the voice, one 20 ms frame at a time.
func (v *Visitor) speak(track *webrtc.TrackLocalStaticSample, mime string, voice Voice) {
	enc, err := opus.NewEncoder()
	if err != nil {
		v.fail(err)
		return
	}
	frame := make([]int16, media.FrameSamples)
	buf := make([]byte, opus.MaxPacket)
	tick := time.NewTicker(media.FrameDuration)
	defer tick.Stop()
	for {
		select {
		case <-v.stop:
			return
		case <-tick.C:
		}
		voice.Fill(frame)
		n := len(frame)
		if strings.EqualFold(mime, webrtc.MimeTypeOpus) {
			if n, err = enc.Encode(buf, frame); err != nil {
				continue
			}
		} else {
			media.PCMU.Encode(buf[:n], frame)
		}
		_ = track.WriteSample(pmedia.Sample{Data: buf[:n], Duration: media.FrameDuration})
	}
}

// receive decodes what the agent sends.
func (v *Visitor) receive(tr *webrtc.TrackRemote) {
	isOpus := strings.EqualFold(tr.Codec().MimeType, webrtc.MimeTypeOpus)
	dec, err := opus.NewDecoder()
	if err != nil {
		v.fail(err)
		return
	}
	buf := make([]byte, 1500)
	out := make([]int16, opus.MaxFrameSamples)
	var pkt rtp.Packet
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		if pkt.Unmarshal(buf[:n]) != nil {
			continue
		}
		k := len(pkt.Payload)
		if isOpus {
			if k, err = dec.Decode(out, pkt.Payload); err != nil {
				continue
			}
		} else {
			k = min(k, len(out))
			media.PCMU.Decode(out[:k], pkt.Payload[:k])
		}
		v.mu.Lock()
		v.heard = append(v.heard, out[:k]...)
		if v.keep > 0 && len(v.heard) > 2*v.keep {
			v.heard = append(v.heard[:0], v.heard[len(v.heard)-v.keep:]...)
		}
		v.mu.Unlock()
	}
}

// Listen returns d of what the visitor hears from now on, after skipping skip (audio
// from before a change drains meanwhile).
func (v *Visitor) Listen(ctx context.Context, skip, d time.Duration) ([]int16, error) {
	v.mu.Lock()
	v.heard = v.heard[:0]
	v.mu.Unlock()
	from := int(skip / (time.Second / media.SampleRate))
	want := from + int(d/(time.Second/media.SampleRate))
	t := time.NewTicker(media.FrameDuration)
	defer t.Stop()
	for {
		v.mu.Lock()
		if len(v.heard) >= want {
			out := append([]int16(nil), v.heard[from:want]...)
			v.mu.Unlock()
			return out, nil
		}
		n := len(v.heard)
		v.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("the visitor heard only %d samples: %w", n, ctx.Err())
		case <-t.C: // the audio arrives on the network's clock
		}
	}
}

// Hangup tells the server the visitor hung up.
func (v *Visitor) Hangup() error { return v.send(map[string]any{"type": "hangup"}) }

// Fingerprint is the visitor's own DTLS certificate fingerprint, from its offer.
func (v *Visitor) Fingerprint() string {
	for l := range strings.Lines(v.pc.LocalDescription().SDP) {
		if f, ok := strings.CutPrefix(strings.TrimRight(l, "\r\n"), "a=fingerprint:"); ok {
			return f
		}
	}
	return ""
}

// LocalAddr is the visitor's end of the selected ICE candidate pair (zero before).
func (v *Visitor) LocalAddr() netip.AddrPort {
	for _, tr := range v.pc.GetTransceivers() {
		s := tr.Sender()
		if s == nil || s.Transport() == nil {
			continue
		}
		p, err := s.Transport().ICETransport().GetSelectedCandidatePair()
		if err != nil || p == nil || p.Local == nil {
			continue
		}
		if a, err := netip.ParseAddr(p.Local.Address); err == nil {
			return netip.AddrPortFrom(a.Unmap(), p.Local.Port)
		}
	}
	return netip.AddrPort{}
}

// DropMedia closes the visitor's peer connection without a word to the server, as a
// crashed tab or a lost network would: the agent's end finds no path.
func (v *Visitor) DropMedia() {
	v.mu.Lock()
	v.dropped = true
	v.mu.Unlock()
	_ = v.pc.GracefulClose()
}

// Close ends the peer connection and the socket and waits for the visitor's goroutines.
func (v *Visitor) Close() {
	v.once.Do(func() {
		close(v.stop)
		_ = v.pc.GracefulClose()
		_ = v.ws.Close(websocket.StatusNormalClosure, "")
		v.wg.Wait()
	})
}
