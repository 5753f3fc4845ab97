// Package dtlssrtp secures one RTP stream with DTLS-SRTP (RFC 5763, RFC 5764), the way SIP
// phones do it without ICE: the DTLS handshake runs on the RTP socket itself, each side's
// certificate is pinned by the fingerprint in its SDP, and the SRTP keys come out of the
// handshake (use_srtp).
//
// The package never reads a socket. Its owner keeps the one receive loop it already has
// (the media server's clock drains with recvmmsg; the simphone has a goroutine), tells
// packets apart by their first byte (RFC 7983) and hands DTLS records to HandleDTLS. The
// handshake runs on a goroutine of the Session and writes through the owner's Send.
// Encrypting and decrypting take caller buffers and allocate nothing per packet.
package dtlssrtp

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/selfsign"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// Packet kinds by first byte (RFC 7983 §7).
func IsDTLS(pkt []byte) bool { return len(pkt) > 0 && pkt[0] >= 20 && pkt[0] <= 63 }

// IsRTP tells RTP and RTCP (first byte 128..191) from the rest.
func IsRTP(pkt []byte) bool { return len(pkt) > 0 && pkt[0] >= 128 && pkt[0] <= 191 }

var (
	// ErrNotReady: the handshake has not finished; the packet is dropped.
	ErrNotReady = errors.New("dtls-srtp: handshake not finished")
	// ErrFingerprint: the peer's certificate is not the one its SDP announced.
	ErrFingerprint = errors.New("DTLS-SRTP: the peer's certificate does not match the fingerprint in its SDP")
	// ErrNoFingerprint: an SDP offered DTLS-SRTP without a usable a=fingerprint.
	ErrNoFingerprint = errors.New("DTLS-SRTP: the SDP has no usable a=fingerprint")
	// ErrClosed: the session was closed before its handshake finished.
	ErrClosed = errors.New("dtls-srtp: session closed")
)

// Fingerprint is an SDP a=fingerprint value: hash function and colon-separated hex digest
// (RFC 8122 §5), e.g. {"sha-256", "AB:CD:…"}.
type Fingerprint struct {
	Hash  string
	Value string
}

// String is the attribute value, "sha-256 AB:CD:…".
func (f Fingerprint) String() string { return f.Hash + " " + f.Value }

// IsZero reports a missing fingerprint.
func (f Fingerprint) IsZero() bool { return f.Hash == "" || f.Value == "" }

// ParseFingerprint reads an a=fingerprint value.
func ParseFingerprint(v string) (Fingerprint, error) {
	h, val, ok := strings.Cut(strings.TrimSpace(v), " ")
	val = strings.TrimSpace(val)
	if !ok || val == "" || newHash(strings.ToLower(h)) == nil {
		return Fingerprint{}, fmt.Errorf("%w: %q", ErrNoFingerprint, v)
	}
	return Fingerprint{Hash: strings.ToLower(h), Value: strings.ToUpper(val)}, nil
}

func newHash(name string) hash.Hash {
	switch name {
	case "sha-256":
		return sha256.New()
	case "sha-384":
		return sha512.New384()
	case "sha-512":
		return sha512.New()
	case "sha-1":
		return sha1.New()
	}
	return nil
}

// FingerprintOf computes the fingerprint of a DER certificate with the named hash.
func FingerprintOf(der []byte, hashName string) (Fingerprint, error) {
	h := newHash(strings.ToLower(hashName))
	if h == nil {
		return Fingerprint{}, fmt.Errorf("%w: hash %q", ErrNoFingerprint, hashName)
	}
	h.Write(der)
	sum := strings.ToUpper(hex.EncodeToString(h.Sum(nil)))
	var b strings.Builder
	for i := 0; i < len(sum); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(sum[i : i+2])
	}
	return Fingerprint{Hash: strings.ToLower(hashName), Value: b.String()}, nil
}

// Certificate is this process's DTLS identity.
type Certificate struct {
	TLS         tls.Certificate
	Fingerprint Fingerprint // sha-256, for our SDP
}

// LocalCertificate is the process's self-signed ECDSA certificate, made on first use. One
// per process is what RFC 5763 §5 expects of an endpoint; making one takes milliseconds, too
// long to do per call.
var LocalCertificate = sync.OnceValues(func() (*Certificate, error) {
	cert, err := selfsign.GenerateSelfSigned()
	if err != nil {
		return nil, fmt.Errorf("dtls-srtp: certificate: %w", err)
	}
	fp, err := FingerprintOf(cert.Certificate[0], "sha-256")
	if err != nil {
		return nil, err
	}
	return &Certificate{TLS: cert, Fingerprint: fp}, nil
})

// ContactFeature is the Contact header parameter (an RFC 3840 feature tag) with which a
// phone registers that it takes DTLS-SRTP calls: the media server then offers
// UDP/TLS/RTP/SAVP when it calls that phone, and plain RTP/AVP to every other phone.
const ContactFeature = "+ringside.dtls-srtp"

// Role says which end of the DTLS handshake we are.
type Role int

const (
	// Server waits for the ClientHello: SDP a=setup:passive.
	Server Role = iota
	// Client sends the ClientHello: SDP a=setup:active.
	Client
)

func (r Role) String() string {
	if r == Client {
		return "client"
	}
	return "server"
}

// Setup values of RFC 4145 as RFC 5763 uses them.
const (
	SetupActPass = "actpass"
	SetupActive  = "active"
	SetupPassive = "passive"
)

// AnswerRole is our role, and the a=setup of our answer, for an offer with offerSetup
// (RFC 5763 §5): an active offerer (or one without a=setup) makes us the server, a passive
// one the client, and actpass leaves the choice to us (prefer).
func AnswerRole(offerSetup string, prefer Role) (Role, string) {
	role := prefer
	switch strings.ToLower(offerSetup) {
	case SetupActive, "": // absent means active (RFC 4145 §4)
		role = Server
	case SetupPassive:
		role = Client
	}
	if role == Client {
		return Client, SetupActive
	}
	return Server, SetupPassive
}

// OfferRole is our role after we offered actpass and the peer answered answerSetup.
func OfferRole(answerSetup string) Role {
	if strings.EqualFold(answerSetup, SetupPassive) {
		return Client
	}
	return Server
}

// Config starts a Session.
type Config struct {
	Role Role
	// Remote is the fingerprint from the peer's SDP; the handshake fails without a match.
	Remote Fingerprint
	// Send writes one datagram to the peer (the latched SDP address). It is called from the
	// handshake goroutine and must not block for long.
	Send func(pkt []byte) error
	// Timeout bounds the handshake; default 10 s.
	Timeout time.Duration
	// Certificate; default LocalCertificate.
	Certificate *Certificate
}

// Stats of a session, read with atomic loads.
type Stats struct {
	AuthFailed atomic.Uint64 // SRTP packets that failed authentication or replay checks, dropped
	NotReady   atomic.Uint64 // RTP packets before the keys were known, dropped (both ways)
}

// Session is the DTLS-SRTP state of one RTP stream.
type Session struct {
	pc   *packetConn
	role Role

	ready   atomic.Bool // keys below are set
	tx      *srtp.Context
	rx      *srtp.Context
	profile string

	// Header scratch, one per direction, so neither allocates.
	txHdr rtp.Header
	rxHdr rtp.Header

	Stats Stats

	done   chan struct{} // closed when the handshake finished, either way
	err    error         // valid after done
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	conn *dtls.Conn
}

// New starts the handshake. Packets the peer sends must reach HandleDTLS from then on.
func New(cfg Config) (*Session, error) {
	cert := cfg.Certificate
	if cert == nil {
		var err error
		if cert, err = LocalCertificate(); err != nil {
			return nil, err
		}
	}
	if cfg.Remote.IsZero() {
		return nil, ErrNoFingerprint
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	s := &Session{pc: newPacketConn(cfg.Send), role: cfg.Role, done: make(chan struct{})}
	want := cfg.Remote
	opts := []dtls.Option{
		dtls.WithCertificates(cert.TLS),
		dtls.WithSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80),
		dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret),
		// Self-signed certificates are the norm: the SDP fingerprint is the trust (RFC 5763 §5).
		dtls.WithInsecureSkipVerify(true),
		dtls.WithVerifyPeerCertificate(func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return ErrFingerprint
			}
			got, err := FingerprintOf(raw[0], want.Hash)
			if err != nil {
				return err
			}
			if got.Value != want.Value {
				return ErrFingerprint
			}
			return nil
		}),
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	s.cancel = cancel
	s.wg.Add(1)
	go s.handshake(ctx, opts)
	return s, nil
}

func (s *Session) handshake(ctx context.Context, opts []dtls.Option) {
	defer s.wg.Done()
	defer close(s.done)
	var conn *dtls.Conn
	var err error
	if s.role == Client {
		copts := make([]dtls.ClientOption, len(opts))
		for i, o := range opts {
			copts[i] = o
		}
		conn, err = dtls.ClientWithOptions(s.pc, peerAddr{}, copts...)
	} else {
		sopts := make([]dtls.ServerOption, 0, len(opts)+1)
		for _, o := range opts {
			sopts = append(sopts, o)
		}
		// The client must show its certificate: its fingerprint is what we check.
		sopts = append(sopts, dtls.WithClientAuth(dtls.RequireAnyClientCert))
		conn, err = dtls.ServerWithOptions(s.pc, peerAddr{}, sopts...)
	}
	if err == nil {
		s.mu.Lock()
		s.conn = conn
		s.mu.Unlock()
		err = conn.HandshakeContext(ctx)
	}
	if err == nil {
		err = s.keys(conn)
	}
	if err != nil {
		switch {
		case errors.Is(err, ErrFingerprint) || strings.Contains(err.Error(), ErrFingerprint.Error()):
			err = ErrFingerprint
		case s.pc.isClosed():
			err = ErrClosed
		default:
			err = fmt.Errorf("DTLS-SRTP handshake failed: %w", err)
		}
		s.err = err
		return
	}
	s.ready.Store(true)
}

// keys derives the two SRTP contexts from the finished handshake (RFC 5764 §4.2).
func (s *Session) keys(conn *dtls.Conn) error {
	p, ok := conn.SelectedSRTPProtectionProfile()
	if !ok {
		return errors.New("peer negotiated no SRTP profile (use_srtp)")
	}
	var profile srtp.ProtectionProfile
	var name string
	switch p {
	case dtls.SRTP_AEAD_AES_128_GCM:
		profile, name = srtp.ProtectionProfileAeadAes128Gcm, "AEAD_AES_128_GCM"
	case dtls.SRTP_AES128_CM_HMAC_SHA1_80:
		profile, name = srtp.ProtectionProfileAes128CmHmacSha1_80, "AES128_CM_HMAC_SHA1_80"
	default:
		return fmt.Errorf("unsupported SRTP profile %v", p)
	}
	state, ok := conn.ConnectionState()
	if !ok {
		return errors.New("no connection state")
	}
	cfg := srtp.Config{Profile: profile}
	if err := cfg.ExtractSessionKeysFromDTLS(&state, s.role == Client); err != nil {
		return err
	}
	tx, err := srtp.CreateContext(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, profile)
	if err != nil {
		return err
	}
	rx, err := srtp.CreateContext(cfg.Keys.RemoteMasterKey, cfg.Keys.RemoteMasterSalt, profile,
		srtp.SRTPReplayProtection(128), srtp.SRTCPReplayProtection(128))
	if err != nil {
		return err
	}
	s.tx, s.rx, s.profile = tx, rx, name
	return nil
}

// Profile is the SRTP protection profile the handshake agreed on; "" until Ready.
func (s *Session) Profile() string {
	if !s.ready.Load() {
		return ""
	}
	return s.profile
}

// HandleDTLS takes one DTLS record from the peer (first byte 20..63). It never blocks: a
// record that finds the queue full is dropped, and DTLS retransmits.
func (s *Session) HandleDTLS(pkt []byte) { s.pc.push(pkt) }

// Done is closed when the handshake has finished, successfully or not.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err is why the handshake failed (ErrFingerprint, ErrClosed, a timeout…); nil while it
// runs and after success.
func (s *Session) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Ready reports whether the keys are known.
func (s *Session) Ready() bool { return s.ready.Load() }

// Overhead is what SRTP adds to a packet at most (auth tag or GCM tag).
const Overhead = 16

// EncryptRTP protects the RTP packet pkt into dst (cap at least len(pkt)+Overhead) and
// returns the SRTP packet. One goroutine at a time.
func (s *Session) EncryptRTP(dst, pkt []byte) ([]byte, error) {
	if !s.ready.Load() {
		s.Stats.NotReady.Add(1)
		return nil, ErrNotReady
	}
	return s.tx.EncryptRTP(dst, pkt, &s.txHdr)
}

// DecryptRTP authenticates and decrypts the SRTP packet pkt into dst (cap at least
// len(pkt)). Failures (forged, replayed, corrupt) are counted and returned. One goroutine at
// a time.
func (s *Session) DecryptRTP(dst, pkt []byte) ([]byte, error) {
	if !s.ready.Load() {
		s.Stats.NotReady.Add(1)
		return nil, ErrNotReady
	}
	out, err := s.rx.DecryptRTP(dst, pkt, &s.rxHdr)
	if err != nil {
		s.Stats.AuthFailed.Add(1)
	}
	return out, err
}

// DecryptRTCP authenticates and decrypts an SRTCP packet; same goroutine as DecryptRTP.
func (s *Session) DecryptRTCP(dst, pkt []byte) ([]byte, error) {
	if !s.ready.Load() {
		return nil, ErrNotReady
	}
	out, err := s.rx.DecryptRTCP(dst, pkt, nil)
	if err != nil {
		s.Stats.AuthFailed.Add(1)
	}
	return out, err
}

// Close ends the handshake or the DTLS association and waits for its goroutine.
func (s *Session) Close() {
	s.cancel()
	s.pc.Close()
	s.mu.Lock()
	conn := s.conn
	s.mu.Unlock()
	s.wg.Wait()
	if conn != nil {
		_ = conn.Close()
	}
}

// packetConn is the net.PacketConn the DTLS handshake runs over: reads come from the
// owner's receive loop (push), writes go out through the owner's socket (send).
type packetConn struct {
	send   func([]byte) error
	in     chan []byte
	closed chan struct{}
	once   sync.Once

	mu       sync.Mutex
	deadline time.Time
	kick     chan struct{} // replaced whenever the deadline changes
}

func newPacketConn(send func([]byte) error) *packetConn {
	return &packetConn{send: send, in: make(chan []byte, 32), closed: make(chan struct{}), kick: make(chan struct{})}
}

func (c *packetConn) push(pkt []byte) {
	b := append([]byte(nil), pkt...) // handshake records only: rare
	select {
	case c.in <- b:
	default:
	}
}

func (c *packetConn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "dtls-srtp: read timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func (c *packetConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		c.mu.Lock()
		dl, kick := c.deadline, c.kick
		c.mu.Unlock()
		var timer *time.Timer
		var expired <-chan time.Time
		if !dl.IsZero() {
			d := time.Until(dl)
			if d <= 0 {
				return 0, nil, timeoutError{}
			}
			timer = time.NewTimer(d)
			expired = timer.C
		}
		n, err, again := 0, error(nil), false
		select {
		case b := <-c.in:
			n = copy(p, b)
		case <-c.closed:
			err = net.ErrClosed
		case <-expired:
			err = timeoutError{}
		case <-kick:
			again = true
		}
		if timer != nil {
			timer.Stop()
		}
		if !again {
			if err != nil {
				return 0, nil, err
			}
			return n, peerAddr{}, nil
		}
	}
}

func (c *packetConn) WriteTo(p []byte, _ net.Addr) (int, error) {
	if c.isClosed() {
		return 0, net.ErrClosed
	}
	if err := c.send(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *packetConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

func (c *packetConn) LocalAddr() net.Addr { return peerAddr{} }

func (c *packetConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

func (c *packetConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	close(c.kick)
	c.kick = make(chan struct{})
	c.mu.Unlock()
	return nil
}

func (c *packetConn) SetWriteDeadline(time.Time) error { return nil }

// peerAddr names the one peer of the stream; the owner's latching decides who that is.
type peerAddr struct{}

func (peerAddr) Network() string { return "udp" }
func (peerAddr) String() string  { return "rtp-peer" }
