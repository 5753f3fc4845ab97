package media

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func FuzzParseRTP(f *testing.F) {
	buf := make([]byte, 12+FrameSamples)
	MarshalRTP(buf, RTPHeader{Marker: true, PayloadType: 8, Seq: 1, Timestamp: 160, SSRC: 7}, make([]byte, FrameSamples))
	f.Add(buf)
	f.Add([]byte{0x90, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xBE, 0xDE, 0, 1, 0x10, 0xAA, 0, 0, 9})
	f.Add([]byte{0xA2, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 0, 2})
	f.Add([]byte{0x81, 201, 0, 1, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, payload, err := ParseRTP(b)
		IsRTCP(b)
		if err != nil {
			return
		}
		if len(payload) > len(b)-12 || cap(payload) != len(payload) {
			t.Fatalf("payload of %d bytes (cap %d) from a %d-byte packet", len(payload), cap(payload), len(b))
		}
		out := make([]byte, 12+len(payload))
		MarshalRTP(out, h, payload)
		h2, p2, err := ParseRTP(out)
		if err != nil || h2 != h || !bytes.Equal(p2, payload) {
			t.Fatalf("re-marshal: %+v %v, want %+v", h2, err, h)
		}
	})
}

func FuzzParseSDP(f *testing.F) {
	f.Add(sdpBody(offerLines...))
	f.Add([]byte("v=0\no=- 1 1 IN IP6 ::1\ns=-\nt=0 0\nm=audio 0 RTP/AVP 0\n"))
	f.Add([]byte("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 5000 RTP/SAVP 0 8\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\n"))
	f.Add(SessionDesc{Addr: netip.MustParseAddrPort("127.0.0.1:4000"), Codecs: []Codec{PCMA}, DTMFType: 101}.Marshal(1, 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseSDP(b)
		if err != nil || !d.Addr.IsValid() {
			return
		}
		// Whatever we accept, we can answer with, and read back.
		back, err := ParseSDP(d.Marshal(1, 1))
		if err != nil {
			t.Fatalf("own SDP for %+v refused: %v", d, err)
		}
		if back.Addr != d.Addr || !slices.Equal(back.Codecs, d.Codecs) || back.DTMFType != d.DTMFType ||
			(back.Direction != d.Direction && d.Direction != "") {
			t.Fatalf("round trip: %+v became %+v", d, back)
		}
	})
}

func FuzzParseDTMFEvent(f *testing.F) {
	f.Add([]byte{0x0B, 0x8A, 0x03, 0x20})
	f.Add([]byte{16, 0, 0, 0})
	f.Add([]byte{17, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseDTMFEvent(b)
		if err != nil {
			return
		}
		if e.Event > 16 || e.Volume > 63 {
			t.Fatalf("accepted %+v", e)
		}
		var out [4]byte
		e.Marshal(out[:])
		if out[0] != b[0] || out[1] != b[1]&^0x40 || out[2] != b[2] || out[3] != b[3] {
			t.Fatalf("% x → %+v → % x", b[:4], e, out)
		}
	})
}

func FuzzParseDTMFRelay(f *testing.F) {
	f.Add("application/dtmf-relay", []byte("Signal=5\r\nDuration=160\r\n"))
	f.Add("application/dtmf-relay; x=y", []byte("signal = #\n"))
	f.Add("application/dtmf", []byte("11"))
	f.Add("text/plain", []byte(""))
	f.Fuzz(func(t *testing.T, ctype string, body []byte) {
		d, err := ParseDTMFRelay(ctype, body)
		if err != nil {
			return
		}
		if !strings.ContainsRune(dtmfDigits, d) {
			t.Fatalf("%q %q gave %q", ctype, body, d)
		}
	})
}

// FuzzJitterBuffer drives Push and Pop in any order: every frame played must
// be one that was pushed under that number, and the bookkeeping must add up.
func FuzzJitterBuffer(f *testing.F) {
	f.Add([]byte{0, 1, 0, 3, 0, 2, 0xFF, 0xFF, 0xFF})
	f.Add([]byte{0, 1, 0, 2, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 3, 0x80, 0, 0x80, 1})
	f.Fuzz(func(t *testing.T, ops []byte) {
		j := NewJitterBuffer(JitterConfig{Depth: 3, Capacity: 8})
		base, pushes := uint16(0), uint64(0)
		dst := make([]byte, MaxFramePayload)
		for i := 0; i+1 < len(ops); i += 2 {
			if ops[i] == 0xFF { // tick
				n, ok := j.Pop(dst)
				if ok && (n != 4 || binary.BigEndian.Uint16(dst) != ^binary.BigEndian.Uint16(dst[2:])) {
					t.Fatalf("popped a frame never pushed: % x", dst[:n])
				}
				checkJitterInvariants(t, j, pushes)
				i-- // a tick takes one byte
				continue
			}
			seq := base + (uint16(ops[i]&0x7F)<<8 | uint16(ops[i+1]))
			if ops[i]&0x80 != 0 {
				base += 20000 // new stream
			}
			var p [4]byte
			binary.BigEndian.PutUint16(p[:], seq)
			binary.BigEndian.PutUint16(p[2:], ^seq)
			j.Push(seq, 0, p[:])
			pushes++
			checkJitterInvariants(t, j, pushes)
		}
	})
}

// checkJitterInvariants checks the slot bookkeeping and that every Push
// call is accounted for exactly once: played, still held, or dropped.
func checkJitterInvariants(t *testing.T, j *JitterBuffer, pushes uint64) {
	t.Helper()
	held := 0
	for _, s := range j.size {
		if s >= 0 {
			held++
		}
	}
	if held != j.held || j.span > j.slots || j.held > j.span || j.head < 0 || j.head >= j.slots {
		t.Fatalf("held %d counted %d, span %d, head %d of %d", j.held, held, j.span, j.head, j.slots)
	}
	if st := j.stats; st.Popped+uint64(j.held)+st.Dropped != pushes {
		t.Fatalf("%d pushes but stats %+v with %d held", pushes, st, j.held)
	}
}
