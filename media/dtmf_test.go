package media

import (
	"errors"
	"testing"
)

func TestDTMFEventRoundTrip(t *testing.T) {
	// '#' end packet, volume 10, 800 samples: 0x0B 0x8A 0x03 0x20 on the wire.
	wire := []byte{0x0B, 0x8A, 0x03, 0x20}
	e, err := ParseDTMFEvent(wire)
	if err != nil {
		t.Fatal(err)
	}
	if e != (DTMFEvent{Event: 11, End: true, Volume: 10, Duration: 800}) {
		t.Fatalf("parsed %+v", e)
	}
	var out [4]byte
	if n := e.Marshal(out[:]); n != 4 || out != [4]byte(wire) {
		t.Errorf("Marshal = %d, % x; want % x", n, out, wire)
	}
	// The reserved bit is ignored on input, never set on output.
	e, _ = ParseDTMFEvent([]byte{5, 0x40 | 7, 0, 160})
	if e != (DTMFEvent{Event: 5, Volume: 7, Duration: 160}) {
		t.Errorf("with R bit: %+v", e)
	}
}

func TestParseDTMFEventErrors(t *testing.T) {
	for _, p := range [][]byte{nil, {1, 2, 3}, {17, 0, 0, 0}, {255, 0, 0, 0}} {
		if _, err := ParseDTMFEvent(p); !errors.Is(err, ErrBadDTMF) {
			t.Errorf("% x: err = %v, want ErrBadDTMF", p, err)
		}
	}
	if e, err := ParseDTMFEvent([]byte{16, 0, 0, 0}); err != nil || e.Event != 16 {
		t.Errorf("flash refused: %v", err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = ParseDTMFEvent([]byte{1, 2, 3}) }); n != 0 {
		t.Errorf("error path allocates %v", n)
	}
}

func TestDTMFDigits(t *testing.T) {
	for code, want := range "0123456789*#ABCD" {
		d, ok := DTMFDigit(uint8(code))
		if !ok || d != want {
			t.Errorf("DTMFDigit(%d) = %q, %v; want %q", code, d, ok, want)
		}
		if c, ok := DTMFEventCode(want); !ok || int(c) != code {
			t.Errorf("DTMFEventCode(%q) = %d, %v", want, c, ok)
		}
	}
	if c, ok := DTMFEventCode('c'); !ok || c != 14 {
		t.Errorf("lower case c = %d, %v", c, ok)
	}
	if _, ok := DTMFDigit(16); ok {
		t.Error("flash is not a digit")
	}
	for _, r := range "xE+ \x00" {
		if _, ok := DTMFEventCode(r); ok {
			t.Errorf("DTMFEventCode(%q) accepted", r)
		}
	}
}

func TestParseDTMFRelay(t *testing.T) {
	cases := []struct {
		ctype, body string
		want        rune
	}{
		{"application/dtmf-relay", "Signal=5\r\nDuration=160\r\n", '5'},
		{"application/dtmf-relay", "Signal=5\nDuration=160\n", '5'},
		{"Application/DTMF-Relay; charset=utf-8", "duration = 250\nSIGNAL = #\n", '#'},
		{"application/dtmf-relay", "Signal= *\r\n", '*'},
		{"application/dtmf-relay", "Signal=11\r\nDuration=100", '#'},
		{"application/dtmf-relay", "Signal=d", 'D'},
		{"application/dtmf", "5", '5'},
		{"application/dtmf", " 3\r\n", '3'},
	}
	for _, c := range cases {
		got, err := ParseDTMFRelay(c.ctype, []byte(c.body))
		if err != nil || got != c.want {
			t.Errorf("%s %q = %q, %v; want %q", c.ctype, c.body, got, err, c.want)
		}
	}
	bad := []struct{ ctype, body string }{
		{"text/plain", "Signal=5"},
		{"application/dtmf-relay", "Duration=160\r\n"},
		{"application/dtmf-relay", "Signal=\r\n"},
		{"application/dtmf-relay", "Signal=55\r\n"},
		{"application/dtmf-relay", "Signal=16\r\n"}, // flash
		{"application/dtmf", "x"},
		{"application/dtmf", ""},
	}
	for _, c := range bad {
		if d, err := ParseDTMFRelay(c.ctype, []byte(c.body)); !errors.Is(err, ErrBadDTMF) {
			t.Errorf("%s %q = %q, %v; want ErrBadDTMF", c.ctype, c.body, d, err)
		}
	}
}
