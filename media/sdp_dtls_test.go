package media

import (
	"net/netip"
	"strings"
	"testing"
)

func TestSDPDTLSRoundTrip(t *testing.T) {
	d := SessionDesc{
		Addr: netip.MustParseAddrPort("127.0.0.1:20000"), Codecs: []Codec{PCMU, PCMA}, DTMFType: 101,
		DTLS:    &DTLSParams{Fingerprint: "sha-256 AB:CD", Setup: "actpass"},
		RTCPMux: true,
	}
	body := string(d.Marshal(1, 1))
	for _, want := range []string{"m=audio 20000 UDP/TLS/RTP/SAVP 0 8 101", "a=fingerprint:sha-256 AB:CD", "a=setup:actpass", "a=rtcp-mux"} {
		if !strings.Contains(body, want) {
			t.Errorf("SDP lacks %q:\n%s", want, body)
		}
	}
	got, err := ParseSDP([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if got.DTLS == nil || *got.DTLS != *d.DTLS || !got.RTCPMux {
		t.Fatalf("parsed %+v", got.DTLS)
	}

	// Session-level fingerprint and setup (as some phones send them), upper-case hash name.
	s := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"a=fingerprint:SHA-256 AB:CD\r\na=setup:ACTIVE\r\nm=audio 4000 UDP/TLS/RTP/SAVP 0\r\n"
	got, err = ParseSDP([]byte(s))
	if err != nil || got.DTLS == nil || got.DTLS.Setup != "active" || got.DTLS.Fingerprint != "SHA-256 AB:CD" || got.RTCPMux {
		t.Fatalf("session-level: %+v %v", got.DTLS, err)
	}

	// Plain stays plain.
	plain := SessionDesc{Addr: d.Addr, Codecs: []Codec{PCMU}}
	if b := string(plain.Marshal(1, 1)); !strings.Contains(b, "RTP/AVP 0") || strings.Contains(b, "fingerprint") || strings.Contains(b, "rtcp-mux") {
		t.Fatalf("plain SDP changed:\n%s", b)
	}
}
