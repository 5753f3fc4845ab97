package simphone

import (
	"errors"
	"strings"
	"testing"
	"time"

	"ringside/media"
)

// Two SRTP phones call each other directly: the offer is actpass, the answerer takes the
// active role, both get keys and hear each other's tone; a phone with SRTP off refuses the
// offer with 488; the registration carries the feature tag.
func TestSRTPPhoneToPhone(t *testing.T) {
	a := newPhone(t, Config{Ext: "alice", ToneHz: 1000, SRTP: true})
	b := newPhone(t, Config{Ext: "bob", ToneHz: 440, SRTP: true, AutoAnswer: true})
	ac, err := a.Dial(ctxT(t, 5*time.Second), uriOf(b, "bob"))
	if err != nil {
		t.Fatal(err)
	}
	bc := recvCall(t, b)
	for _, body := range []string{string(ac.Request().Body()), string(ac.Response().Body())} {
		if !strings.Contains(body, "UDP/TLS/RTP/SAVP") || !strings.Contains(body, "a=fingerprint:sha-256 ") {
			t.Fatalf("SDP without DTLS-SRTP:\n%s", body)
		}
	}
	if !strings.Contains(string(ac.Request().Body()), "a=setup:actpass") || !strings.Contains(string(ac.Response().Body()), "a=setup:active") {
		t.Fatalf("setup roles: offer\n%s\nanswer\n%s", ac.Request().Body(), ac.Response().Body())
	}
	deadline := time.Now().Add(5 * time.Second)
	for !ac.Secure() || !bc.Secure() {
		if time.Now().After(deadline) {
			t.Fatalf("no keys: %v / %v", ac.MediaError(), bc.MediaError())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, x := range []struct {
		c  *Call
		hz float64
	}{{ac, 440}, {bc, 1000}} {
		x.c.ResetRecording()
		if err := x.c.WaitRecording(ctxT(t, 5*time.Second), 500*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if lv := media.ToneLevelDB(x.c.Recording(), x.hz); lv < -25 {
			t.Errorf("%v Hz at %.1f dB through SRTP", x.hz, lv)
		}
	}
	if err := ac.Hangup(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	waitDone(t, bc, "callee")

	plain := newPhone(t, Config{Ext: "carol", AutoAnswer: true})
	_, err = a.Dial(ctxT(t, 5*time.Second), uriOf(plain, "carol"))
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 488 {
		t.Fatalf("a phone with SRTP off took a DTLS-SRTP offer: %v", err)
	}
	if ct := a.registerContact().String(); !strings.Contains(ct, ";+ringside.dtls-srtp") {
		t.Errorf("REGISTER Contact without the feature tag: %s", ct)
	}
	if ct := plain.registerContact().String(); strings.Contains(ct, "dtls") {
		t.Errorf("plain phone registers the feature tag: %s", ct)
	}
}
