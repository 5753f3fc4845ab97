package server_test

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"ringside/server/servertest"
	"ringside/server/simphone"
)

// securePhone is rig.phone with the softphone's DTLS-SRTP switch (and an SDP hook).
func (r *rig) securePhone(ext, password string, tone float64, agent, srtp bool, mangle func([]byte) []byte) *simphone.Phone {
	r.t.Helper()
	p, err := simphone.New(ctx(r.t, 10*time.Second), simphone.Config{
		Server: r.srv.SIPAddr, Ext: ext, Password: password, ToneHz: tone, AutoAnswer: agent,
		Logger: servertest.Logger(), SRTP: srtp, MangleSDP: mangle,
	})
	if err != nil {
		r.t.Fatalf("phone %s: %v", ext, err)
	}
	r.t.Cleanup(func() { p.Close() })
	if agent {
		if err := p.Register(ctx(r.t, 10*time.Second), time.Hour); err != nil {
			r.t.Fatalf("register %s: %v", ext, err)
		}
	}
	return p
}

// waitSecure waits until a call's DTLS handshake gave keys.
func waitSecure(t *testing.T, who string, c *simphone.Call) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !c.Secure() {
		if err := c.MediaError(); err != nil {
			t.Fatalf("%s: DTLS-SRTP failed: %v", who, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no DTLS-SRTP after 10 s", who)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSRTPLegsHearingMatrix runs the hearing matrix (listen, whisper, barge) with the agent
// and the supervisor on DTLS-SRTP softphones, each alone on SRTP, and the customer always
// on a plain RTP trunk: the room hears the same whatever the legs' transport.
func TestSRTPLegsHearingMatrix(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		agentSRTP, supervisor bool
	}{
		{"agent and supervisor on SRTP", true, true},
		{"agent on SRTP, supervisor plain", true, false},
		{"agent plain, supervisor on SRTP", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			alice := r.securePhone("1001", "alice-pw", agentHz, true, tc.agentSRTP, nil)
			customer, agent := r.call(alice, "1001")
			sam := r.securePhone("2001", "sam-pw", supervisorHz, false, tc.supervisor, nil)
			sup := r.monitor(sam, "*11001")
			for _, leg := range []struct {
				who    string
				c      *simphone.Call
				secure bool
			}{{"customer", customer, false}, {"agent", agent, tc.agentSRTP}, {"supervisor", sup, tc.supervisor}} {
				if leg.secure {
					waitSecure(t, leg.who, leg.c)
				} else if leg.c.Secure() {
					t.Fatalf("%s leg is SRTP; it offered plain RTP", leg.who)
				}
			}

			lv := levels(t, customer, agent, sup)
			// From here, with keys on both ends, no SRTP packet may be dropped (one sent
			// in the instant the handshake completes may be, before the other end holds
			// its keys).
			before := map[*simphone.Call]int{customer: customer.Stats().SRTPDropped, agent: agent.Stats().SRTPDropped}
			expect(t, "customer (listen)", lv[0], agentHz)
			expect(t, "agent (listen)", lv[1], customerHz)
			expect(t, "supervisor (listen)", lv[2], customerHz, agentHz)

			if err := sup.SendDTMF('2'); err != nil {
				t.Fatal(err)
			}
			waitMode(t, r, "sam", "whisper")
			lv = levels(t, customer, agent, sup)
			expect(t, "customer (whisper)", lv[0], agentHz)
			expect(t, "agent (whisper)", lv[1], customerHz, supervisorHz)
			expect(t, "supervisor (whisper)", lv[2], customerHz, agentHz)
			if gap := lv[0][agentHz] - lv[0][supervisorHz]; gap < 40 {
				t.Errorf("customer hears the whisper only %.1f dB under the agent", gap)
			}

			if err := sup.SendDTMF('3'); err != nil {
				t.Fatal(err)
			}
			waitMode(t, r, "sam", "barge")
			lv = levels(t, customer, agent, sup)
			expect(t, "customer (barge)", lv[0], agentHz, supervisorHz)
			expect(t, "agent (barge)", lv[1], customerHz, supervisorHz)
			expect(t, "supervisor (barge)", lv[2], customerHz, agentHz)

			// The supervisor leaves: the unmonitored call is relayed again, SRTP legs
			// re-encrypted per leg.
			if err := sup.Hangup(ctx(t, 5*time.Second)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
			lv = levels(t, customer, agent)
			expect(t, "customer (relayed)", lv[0], agentHz)
			expect(t, "agent (relayed)", lv[1], customerHz)
			for _, c := range []*simphone.Call{customer, agent} {
				if n := c.Stats().SRTPDropped - before[c]; n > 0 {
					t.Errorf("%s dropped %d SRTP packets during the call", c, n)
				}
			}
		})
	}
}

// TestSRTPBetweenTwoSoftphones: an extension on a DTLS-SRTP softphone calls another: both
// legs are SRTP, relayed by decrypting on one and encrypting on the other.
func TestSRTPBetweenTwoSoftphones(t *testing.T) {
	r := newRig(t)
	alice := r.securePhone("1001", "alice-pw", agentHz, true, true, nil)
	bob := r.securePhone("1002", "bob-pw", customerHz, false, true, nil)
	c, err := bob.Dial(ctx(t, 10*time.Second), "sip:1001@"+r.srv.SIPAddr)
	if err != nil {
		t.Fatal(err)
	}
	var a *simphone.Call
	select {
	case a = <-alice.Incoming():
	case <-time.After(10 * time.Second):
		t.Fatal("alice never got the call")
	}
	waitSecure(t, "caller", c)
	waitSecure(t, "callee", a)
	lv := levels(t, c, a)
	expect(t, "caller", lv[0], agentHz)
	expect(t, "callee", lv[1], customerHz)

	// Hold and resume re-INVITE with the same fingerprint and setup: the association
	// and its keys carry on. (A packet or two may be dropped at the very start, sent by
	// the side that finished the handshake first before the other holds its keys; none
	// may be dropped from here on.)
	before := map[*simphone.Call]int{c: c.Stats().SRTPDropped, a: a.Stats().SRTPDropped}
	if err := c.Hold(ctx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := c.Resume(ctx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	lv = levels(t, c, a)
	expect(t, "caller after hold", lv[0], agentHz)
	expect(t, "callee after hold", lv[1], customerHz)
	for _, x := range []*simphone.Call{c, a} {
		if n := x.Stats().SRTPDropped - before[x]; n > 0 {
			t.Errorf("%s dropped %d SRTP packets across hold and resume", x, n)
		}
	}
}

var fingerprintRe = regexp.MustCompile(`(a=fingerprint:sha-256 )([0-9A-F]{2})`)

// forgeFingerprint changes the first byte of the SDP's fingerprint: the certificate the
// phone then presents is not the one its SDP names.
func forgeFingerprint(body []byte) []byte {
	return fingerprintRe.ReplaceAllFunc(body, func(m []byte) []byte {
		sub := fingerprintRe.FindSubmatch(m)
		b := "00"
		if string(sub[2]) == "00" {
			b = "01"
		}
		return append(append([]byte(nil), sub[1]...), b...)
	})
}

// TestSRTPFingerprintMismatchEndsTheLeg: a supervisor whose SDP fingerprint doesn't match
// its certificate is hung up with the reason, and no audio reaches it; the call goes on.
// An agent phone doing the same ends the call, with the reason in history.
func TestSRTPFingerprintMismatchEndsTheLeg(t *testing.T) {
	r := newRig(t)
	alice := r.securePhone("1001", "alice-pw", agentHz, true, true, nil)
	customer, agent := r.call(alice, "1001")
	waitSecure(t, "agent", agent)

	forged := 0
	sam := r.securePhone("2001", "sam-pw", supervisorHz, false, true, func(b []byte) []byte {
		out := forgeFingerprint(b)
		if !bytes.Equal(out, b) {
			forged++
		}
		return out
	})
	sup := r.monitor(sam, "*21001")
	select {
	case <-sup.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("the supervisor with a forged fingerprint is still in the call")
	}
	if forged == 0 {
		t.Fatal("the SDP had no fingerprint to forge")
	}
	if sup.Secure() {
		t.Error("keys were agreed despite the forged fingerprint")
	}
	if st := sup.Stats(); st.Received > 0 {
		t.Errorf("the supervisor received %d audio packets", st.Received)
	}
	lv := levels(t, customer, agent)
	expect(t, "customer", lv[0], agentHz)
	expect(t, "agent", lv[1], customerHz)
	reason := ""
	deadline := time.Now().Add(5 * time.Second)
	for reason == "" && time.Now().Before(deadline) {
		for _, h := range history(t, r) {
			for _, m := range h.Monitors {
				reason = m.EndReason
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(reason, "fingerprint") {
		t.Errorf("monitor end reason %q does not name the fingerprint", reason)
	}
	if err := customer.Hangup(ctx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}

	// An agent phone answering with a forged fingerprint: the call ends, with the reason.
	bob := r.securePhone("1002", "bob-pw", agentHz, true, true, forgeFingerprint)
	customer2, _ := r.call(bob, "1002")
	select {
	case <-customer2.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("the call with a forged agent fingerprint goes on")
	}
	found := false
	for _, h := range history(t, r) {
		found = found || strings.Contains(h.EndReason, "fingerprint")
	}
	if !found {
		t.Errorf("no call in history ended for the fingerprint: %+v", history(t, r))
	}
}
