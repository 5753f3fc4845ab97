package media

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// sdpBody joins lines with CRLF as SIP sends them.
func sdpBody(lines ...string) []byte {
	return []byte(strings.Join(lines, "\r\n") + "\r\n")
}

var offerLines = []string{
	"v=0",
	"o=- 123 456 IN IP4 192.0.2.1",
	"s=-",
	"c=IN IP4 192.0.2.1",
	"t=0 0",
	"m=audio 4000 RTP/AVP 8 96 0 101",
	"a=rtpmap:8 PCMA/8000",
	"a=rtpmap:96 opus/48000/2",
	"a=rtpmap:0 PCMU/8000",
	"a=rtpmap:101 telephone-event/8000",
	"a=fmtp:101 0-16",
	"a=ptime:20",
	"a=sendrecv",
}

func TestParseSDPOffer(t *testing.T) {
	d, err := ParseSDP(sdpBody(offerLines...))
	if err != nil {
		t.Fatal(err)
	}
	want := SessionDesc{
		Addr:      netip.MustParseAddrPort("192.0.2.1:4000"),
		Codecs:    []Codec{PCMA, PCMU},
		DTMFType:  101,
		Direction: SendRecv,
		Ptime:     20,
	}
	if d.Addr != want.Addr || !slices.Equal(d.Codecs, want.Codecs) || d.DTMFType != want.DTMFType ||
		d.Direction != want.Direction || d.Ptime != want.Ptime {
		t.Errorf("got %+v, want %+v", d, want)
	}
}

// baresip and Linphone style: LF only, media-level c=, static PTs without
// rtpmap, video first, telephone-event at two rates.
func TestParseSDPVariants(t *testing.T) {
	body := strings.Join([]string{
		"v=0",
		"o=- 1 1 IN IP6 2001:db8::1",
		"s=call",
		"c=IN IP6 2001:db8::1",
		"t=0 0",
		"a=recvonly",
		"m=video 5000 RTP/AVP 97",
		"a=rtpmap:97 H264/90000",
		"m=audio 4002 RTP/AVP 0 8 100 101",
		"c=IN IP4 198.51.100.7",
		"a=rtpmap:100 telephone-event/48000",
		"a=rtpmap:101 telephone-event/8000",
		"a=ptime:30",
	}, "\n") + "\n"
	d, err := ParseSDP([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if d.Addr != netip.MustParseAddrPort("198.51.100.7:4002") {
		t.Errorf("Addr %v: media-level c= must win", d.Addr)
	}
	if !slices.Equal(d.Codecs, []Codec{PCMU, PCMA}) || d.DTMFType != 101 || d.Ptime != 30 {
		t.Errorf("got %+v", d)
	}
	if d.Direction != RecvOnly {
		t.Errorf("Direction %q: session-level attribute applies", d.Direction)
	}
}

func TestParseSDPHoldAndRefused(t *testing.T) {
	hold := slices.Clone(offerLines)
	hold[3] = "c=IN IP4 0.0.0.0"
	d, err := ParseSDP(sdpBody(hold...))
	if err != nil || d.Direction != Inactive {
		t.Errorf("c=0.0.0.0: %+v, %v; want Inactive", d, err)
	}
	sendonly := slices.Clone(offerLines)
	sendonly[len(sendonly)-1] = "a=sendonly"
	if d, err := ParseSDP(sdpBody(sendonly...)); err != nil || d.Direction != SendOnly {
		t.Errorf("a=sendonly: %+v, %v", d, err)
	}
	refused := slices.Clone(offerLines)
	refused[5] = "m=audio 0 RTP/AVP 0"
	d, err = ParseSDP(sdpBody(refused...))
	if err != nil || d.Direction != Inactive || d.Addr.Port() != 0 {
		t.Errorf("port 0: %+v, %v; want Inactive", d, err)
	}
}

func TestParseSDPErrors(t *testing.T) {
	replace := func(i int, line string) []byte {
		l := slices.Clone(offerLines)
		l[i] = line
		return sdpBody(l...)
	}
	cases := []struct {
		name string
		body []byte
		want error
		text string
	}{
		{"garbage", []byte("hello"), ErrBadSDP, ""},
		{"empty", nil, ErrBadSDP, ""},
		{"video only", replace(5, "m=video 4000 RTP/AVP 96"), ErrNoAudio, ""},
		{"no c=", sdpBody(slices.Delete(slices.Clone(offerLines), 3, 4)...), ErrBadSDP, "connection address"},
		{"hostname", replace(3, "c=IN IP4 pbx.example.com"), ErrBadSDP, "not an IP address"},
		{"SAVP", replace(5, "m=audio 4000 RTP/SAVP 0"), ErrEncryptedMedia, "encrypted media (SRTP) is not supported on plain RTP legs"},
		{"DTLS", replace(5, "m=audio 4000 UDP/TLS/RTP/SAVPF 111"), ErrEncryptedMedia, "RTP/SAVPF"},
		{"T.38", replace(5, "m=audio 4000 udptl t38"), ErrBadSDP, "udptl"},
	}
	for _, c := range cases {
		_, err := ParseSDP(c.body)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("%s: err = %v, want %v containing %q", c.name, err, c.want, c.text)
		}
	}
}

func TestNegotiate(t *testing.T) {
	offer := SessionDesc{Codecs: []Codec{PCMA, PCMU}}
	if c, err := Negotiate(offer, []Codec{PCMU, PCMA}); err != nil || c != PCMA {
		t.Errorf("got %v, %v; the offerer's order wins", c, err)
	}
	if c, err := Negotiate(offer, []Codec{PCMU}); err != nil || c != PCMU {
		t.Errorf("got %v, %v", c, err)
	}
	if _, err := Negotiate(SessionDesc{}, []Codec{PCMU}); !errors.Is(err, ErrNoCommonCodec) {
		t.Errorf("empty offer: %v", err)
	}
}

func TestSDPMarshal(t *testing.T) {
	d := SessionDesc{
		Addr:     netip.MustParseAddrPort("127.0.0.1:20000"),
		Codecs:   []Codec{PCMU, PCMA},
		DTMFType: 101,
	}
	want := strings.Join([]string{
		"v=0",
		"o=ringside 42 7 IN IP4 127.0.0.1",
		"s=ringside",
		"c=IN IP4 127.0.0.1",
		"t=0 0",
		"m=audio 20000 RTP/AVP 0 8 101",
		"a=rtpmap:0 PCMU/8000",
		"a=rtpmap:8 PCMA/8000",
		"a=rtpmap:101 telephone-event/8000",
		"a=fmtp:101 0-16",
		"a=ptime:20",
		"a=sendrecv",
	}, "\r\n") + "\r\n"
	if got := string(d.Marshal(42, 7)); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// What we write, we read back.
	d.Direction = SendOnly
	back, err := ParseSDP(d.Marshal(1, 1))
	if err != nil {
		t.Fatal(err)
	}
	if back.Addr != d.Addr || !slices.Equal(back.Codecs, d.Codecs) || back.DTMFType != 101 ||
		back.Direction != SendOnly || back.Ptime != 20 {
		t.Errorf("round trip: %+v", back)
	}
	v6 := SessionDesc{Addr: netip.MustParseAddrPort("[::1]:3000"), Codecs: []Codec{PCMA}, Direction: Inactive}
	got := string(v6.Marshal(1, 2))
	for _, line := range []string{"c=IN IP6 ::1\r\n", "m=audio 3000 RTP/AVP 8\r\n", "a=inactive\r\n"} {
		if !strings.Contains(got, line) {
			t.Errorf("IPv6 answer lacks %q:\n%s", line, got)
		}
	}
	if strings.Contains(got, "telephone-event") {
		t.Error("DTMFType 0 must not announce telephone-event")
	}
}
