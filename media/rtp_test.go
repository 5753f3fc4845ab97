package media

import (
	"bytes"
	"errors"
	"testing"

	"github.com/pion/rtp"
)

func TestRTPRoundTrip(t *testing.T) {
	h := RTPHeader{Marker: true, PayloadType: 8, Seq: 65535, Timestamp: 0xDEADBEEF, SSRC: 0x01020304}
	payload := bytes.Repeat([]byte{0xD5}, FrameSamples)
	buf := make([]byte, 12+len(payload))
	n := MarshalRTP(buf, h, payload)
	if n != len(buf) {
		t.Fatalf("MarshalRTP = %d, want %d", n, len(buf))
	}
	got, p, err := ParseRTP(buf[:n])
	if err != nil || got != h || !bytes.Equal(p, payload) {
		t.Fatalf("ParseRTP = %+v, %d bytes, %v; want %+v", got, len(p), err, h)
	}
	// pion agrees on the wire format.
	var ref rtp.Packet
	if err := ref.Unmarshal(buf[:n]); err != nil {
		t.Fatal(err)
	}
	if !ref.Marker || ref.PayloadType != 8 || ref.SequenceNumber != 65535 ||
		ref.Timestamp != 0xDEADBEEF || ref.SSRC != 0x01020304 || !bytes.Equal(ref.Payload, payload) {
		t.Errorf("pion reads %+v", ref.Header)
	}
}

// Packets with CSRCs, a header extension and padding, as built by pion.
func TestParseRTPAgainstPion(t *testing.T) {
	payload := []byte{1, 2, 3, 4, 5}
	pkts := map[string]*rtp.Packet{
		"plain":   {Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: 7, Timestamp: 160, SSRC: 9}, Payload: payload},
		"csrc":    {Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: 7, SSRC: 9, CSRC: []uint32{1, 2, 3}}, Payload: payload},
		"ext":     {Header: rtp.Header{Version: 2, PayloadType: 101, Marker: true, SequenceNumber: 7, SSRC: 9}, Payload: payload},
		"padding": {Header: rtp.Header{Version: 2, PayloadType: 8, SequenceNumber: 7, SSRC: 9, Padding: true, PaddingSize: 3}, Payload: payload},
	}
	if err := pkts["ext"].SetExtension(1, []byte{0xAA, 0xBB, 0xCC}); err != nil {
		t.Fatal(err)
	}
	for name, pkt := range pkts {
		buf, err := pkt.Marshal()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if (name == "ext" && buf[0]&0x10 == 0) || (name == "padding" && buf[0]&0x20 == 0) || (name == "csrc" && buf[0]&0x0F != 3) {
			t.Fatalf("%s: pion did not set the header bits: %#02x", name, buf[0])
		}
		h, p, err := ParseRTP(buf)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		want := RTPHeader{Marker: pkt.Marker, PayloadType: pkt.PayloadType, Seq: pkt.SequenceNumber, Timestamp: pkt.Timestamp, SSRC: pkt.SSRC}
		if h != want || !bytes.Equal(p, payload) {
			t.Errorf("%s: got %+v payload %v, want %+v payload %v", name, h, p, want, payload)
		}
	}
}

func TestParseRTPErrors(t *testing.T) {
	valid := make([]byte, 12+4)
	MarshalRTP(valid, RTPHeader{PayloadType: 0}, []byte{1, 2, 3, 4})
	with := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), valid...)) }
	cases := []struct {
		name string
		buf  []byte
		want error
	}{
		{"empty", nil, ErrShortPacket},
		{"11 bytes", valid[:11], ErrShortPacket},
		{"version 1", with(func(b []byte) []byte { b[0] = 1 << 6; return b }), ErrBadVersion},
		{"version 0 (STUN)", with(func(b []byte) []byte { b[0] = 0; return b }), ErrBadVersion},
		{"csrc past end", with(func(b []byte) []byte { b[0] |= 2; return b }), ErrShortPacket},
		{"extension header missing", with(func(b []byte) []byte { b[0] |= 0x10; return b[:14] }), ErrBadExtension},
		{"extension past end", with(func(b []byte) []byte { b[0] |= 0x10; b[14], b[15] = 0, 1; return b }), ErrBadExtension},
		{"zero padding", with(func(b []byte) []byte { b[0] |= 0x20; b[15] = 0; return b }), ErrBadPadding},
		{"padding past payload", with(func(b []byte) []byte { b[0] |= 0x20; b[15] = 5; return b }), ErrBadPadding},
	}
	for _, c := range cases {
		if _, _, err := ParseRTP(c.buf); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	// Padding that eats the whole payload is legal.
	b := with(func(b []byte) []byte { b[0] |= 0x20; b[15] = 4; return b })
	if _, p, err := ParseRTP(b); err != nil || len(p) != 0 {
		t.Errorf("all padding: %d bytes, %v", len(p), err)
	}
}

func TestIsRTCP(t *testing.T) {
	rr := []byte{0x81, 201, 0, 7, 0, 0, 0, 1} // receiver report
	sr := []byte{0x80, 200, 0, 6, 0, 0, 0, 1} // sender report
	if !IsRTCP(rr) || !IsRTCP(sr) {
		t.Error("RTCP SR/RR not recognised")
	}
	buf := make([]byte, 12+160)
	for _, pt := range []uint8{0, 8, 101, 127} {
		for _, m := range []bool{false, true} {
			MarshalRTP(buf, RTPHeader{PayloadType: pt, Marker: m}, make([]byte, 160))
			if IsRTCP(buf) {
				t.Errorf("RTP PT %d marker %v taken for RTCP", pt, m)
			}
		}
	}
	if IsRTCP([]byte{0x00, 0x01, 0x00, 0x00}) || IsRTCP([]byte{0x80}) {
		t.Error("STUN or runt taken for RTCP")
	}
}

func TestRTPNoAllocs(t *testing.T) {
	buf := make([]byte, 12+FrameSamples)
	payload := make([]byte, FrameSamples)
	h := RTPHeader{PayloadType: 0, Seq: 1, Timestamp: 160, SSRC: 42}
	n := testing.AllocsPerRun(100, func() {
		MarshalRTP(buf, h, payload)
		if _, _, err := ParseRTP(buf); err != nil {
			t.Fatal(err)
		}
		_, _, _ = ParseRTP(buf[:5]) // errors are sentinels, no allocation either
		IsRTCP(buf)
	})
	if n != 0 {
		t.Errorf("RTP path: %v allocs per packet", n)
	}
}

func BenchmarkParseRTP(b *testing.B) {
	buf := make([]byte, 12+FrameSamples)
	MarshalRTP(buf, RTPHeader{PayloadType: 0, Seq: 1, Timestamp: 160, SSRC: 42}, make([]byte, FrameSamples))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ParseRTP(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalRTP(b *testing.B) {
	buf := make([]byte, 12+FrameSamples)
	payload := make([]byte, FrameSamples)
	b.ReportAllocs()
	for b.Loop() {
		MarshalRTP(buf, RTPHeader{PayloadType: 0, Seq: 1, Timestamp: 160, SSRC: 42}, payload)
	}
}
