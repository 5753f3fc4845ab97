package dtlssrtp

import (
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"ringside/media"
)

// The handshake's goroutines (ours and pion's) end with Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair links two sessions as if by a socket.
func pair(t *testing.T, clientWants, serverWants Fingerprint) (*Session, *Session) {
	t.Helper()
	var a, b *Session
	ready := make(chan struct{})
	a, err := New(Config{Role: Client, Remote: clientWants, Send: func(p []byte) error {
		<-ready
		b.HandleDTLS(p)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	b, err = New(Config{Role: Server, Remote: serverWants, Send: func(p []byte) error {
		<-ready
		a.HandleDTLS(p)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	close(ready)
	t.Cleanup(func() { a.Close(); b.Close() })
	for _, s := range []*Session{a, b} {
		select {
		case <-s.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("handshake did not finish")
		}
	}
	return a, b
}

func TestHandshakeAndRoundTrip(t *testing.T) {
	cert, err := LocalCertificate()
	if err != nil {
		t.Fatal(err)
	}
	a, b := pair(t, cert.Fingerprint, cert.Fingerprint)
	if a.Err() != nil || b.Err() != nil {
		t.Fatalf("handshake: client %v, server %v", a.Err(), b.Err())
	}
	var pkt, enc, dec [300]byte
	payload := make([]byte, 160)
	for i := range payload {
		payload[i] = byte(i)
	}
	n := media.MarshalRTP(pkt[:], media.RTPHeader{PayloadType: 0, Seq: 7, Timestamp: 160, SSRC: 42}, payload)
	ct, err := a.EncryptRTP(enc[:0], pkt[:n])
	if err != nil {
		t.Fatal(err)
	}
	if string(ct[12:12+160]) == string(payload) {
		t.Fatal("payload not encrypted")
	}
	pt, err := b.DecryptRTP(dec[:0], ct)
	if err != nil {
		t.Fatal(err)
	}
	if string(pt) != string(pkt[:n]) {
		t.Fatal("round trip changed the packet")
	}
	if _, err := b.DecryptRTP(dec[:0], ct); err == nil {
		t.Fatal("replayed packet accepted")
	}
	ct[len(ct)-1] ^= 1
	if _, err := b.DecryptRTP(dec[:0], ct); err == nil {
		t.Fatal("forged packet accepted")
	}
	if got := b.Stats.AuthFailed.Load(); got != 2 {
		t.Fatalf("auth failures counted %d, want 2", got)
	}
}

func TestFingerprintMismatch(t *testing.T) {
	cert, err := LocalCertificate()
	if err != nil {
		t.Fatal(err)
	}
	wrong := cert.Fingerprint
	wrong.Value = "00" + wrong.Value[2:]
	a, b := pair(t, cert.Fingerprint, wrong)
	if !errors.Is(b.Err(), ErrFingerprint) {
		t.Fatalf("server: %v, want %v", b.Err(), ErrFingerprint)
	}
	if a.Ready() || b.Ready() {
		t.Fatal("keys after a failed handshake")
	}
}

func TestSetupRoles(t *testing.T) {
	for _, tc := range []struct {
		offer       string
		prefer      Role
		role        Role
		answerSetup string
	}{
		{SetupActPass, Server, Server, SetupPassive}, // the media server answering
		{SetupActPass, Client, Client, SetupActive},  // a phone answering
		{SetupActive, Client, Server, SetupPassive},
		{SetupPassive, Server, Client, SetupActive},
		{"", Client, Server, SetupPassive}, // RFC 4145: absent means active
	} {
		role, setup := AnswerRole(tc.offer, tc.prefer)
		if role != tc.role || setup != tc.answerSetup {
			t.Errorf("offer %q prefer %v: %v %q, want %v %q", tc.offer, tc.prefer, role, setup, tc.role, tc.answerSetup)
		}
		// The offerer's view of that answer is the other end.
		if got := OfferRole(setup); got == role {
			t.Errorf("offerer and answerer both %v for answer %q", got, setup)
		}
	}
}

func TestParseFingerprint(t *testing.T) {
	f, err := ParseFingerprint("SHA-256 ab:cd")
	if err != nil || f.Hash != "sha-256" || f.Value != "AB:CD" {
		t.Fatalf("%+v %v", f, err)
	}
	if _, err := ParseFingerprint("md5 ab:cd"); err == nil {
		t.Fatal("md5 accepted")
	}
}
