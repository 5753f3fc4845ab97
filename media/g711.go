// Package media holds the per-packet building blocks shared by the media server
// and the softphone: G.711, RTP, the jitter buffer, DTMF, SDP and tone tools.
// It knows nothing of calls or SIP dialogs.
package media

import (
	"fmt"
	"strings"
	"time"
)

const (
	SampleRate    = 8000
	FrameSamples  = 160 // 20 ms at 8 kHz
	FrameDuration = 20 * time.Millisecond
)

// Codec is a G.711 variant; its value is the static RTP payload type, so it
// can be written into an RTP header as is.
type Codec uint8

const (
	PCMU Codec = 0
	PCMA Codec = 8
)

func (c Codec) String() string {
	switch c {
	case PCMU:
		return "PCMU"
	case PCMA:
		return "PCMA"
	}
	return fmt.Sprintf("Codec(%d)", uint8(c))
}

// CodecByName finds a codec by its SDP encoding name, ignoring case.
func CodecByName(name string) (Codec, bool) {
	switch {
	case strings.EqualFold(name, "PCMU"):
		return PCMU, true
	case strings.EqualFold(name, "PCMA"):
		return PCMA, true
	}
	return 0, false
}

// Silence returns the encoded silence byte of the codec (0xFF for PCMU, 0xD5 for PCMA).
func (c Codec) Silence() byte {
	if c == PCMA {
		return 0xD5
	}
	return 0xFF
}

// Encode compresses pcm into dst, one byte per sample; len(dst) must be at
// least len(pcm). Codecs other than PCMU and PCMA panic: a Codec only comes
// from CodecByName or SDP negotiation, so another value is a programming error.
func (c Codec) Encode(dst []byte, pcm []int16) {
	dst = dst[:len(pcm)]
	switch c {
	case PCMU:
		// μ-law keeps 14 bits and A-law 13, so the top bits of the sample
		// index a table small enough to stay in cache.
		for i, s := range pcm {
			dst[i] = ulawEncode[uint16(s)>>2]
		}
	case PCMA:
		for i, s := range pcm {
			dst[i] = alawEncode[uint16(s)>>3]
		}
	default:
		panic("media: Encode with unknown codec " + c.String())
	}
}

// Decode expands payload into dst, one sample per byte; len(dst) must be at
// least len(payload). Unknown codecs panic, as for Encode.
func (c Codec) Decode(dst []int16, payload []byte) {
	dst = dst[:len(payload)]
	var table *[256]int16
	switch c {
	case PCMU:
		table = &ulawDecode
	case PCMA:
		table = &alawDecode
	default:
		panic("media: Decode with unknown codec " + c.String())
	}
	for i, b := range payload {
		dst[i] = table[b]
	}
}

var (
	ulawEncode [1 << 14]byte
	alawEncode [1 << 13]byte
	ulawDecode [256]int16
	alawDecode [256]int16
)

func init() {
	for i := range ulawEncode {
		// Index i holds the top 14 bits of a two's-complement sample.
		ulawEncode[i] = linearToULaw(int(int16(uint16(i) << 2)))
	}
	for i := range alawEncode {
		alawEncode[i] = linearToALaw(int(int16(uint16(i) << 3)))
	}
	for i := range 256 {
		ulawDecode[i] = ulawToLinear(byte(i))
		alawDecode[i] = alawToLinear(byte(i))
	}
}

// The four conversions below follow the ITU-T G.711 reference (Sun's g711.c);
// they only build the tables.

func segment(v int, ends *[8]int) int {
	for seg, end := range ends {
		if v <= end {
			return seg
		}
	}
	return 8
}

var (
	ulawSegEnds = [8]int{0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF}
	alawSegEnds = [8]int{0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF}
)

func linearToULaw(pcm int) byte {
	const bias, clip = 0x84, 8159
	pcm >>= 2
	mask := 0xFF
	if pcm < 0 {
		pcm = -pcm
		mask = 0x7F
	}
	pcm = min(pcm, clip) + bias>>2
	seg := segment(pcm, &ulawSegEnds)
	if seg >= 8 {
		return byte(0x7F ^ mask)
	}
	return byte((seg<<4 | (pcm>>(seg+1))&0xF) ^ mask)
}

func ulawToLinear(u byte) int16 {
	const bias = 0x84
	u = ^u
	t := (int(u&0x0F) << 3) + bias
	t <<= (u & 0x70) >> 4
	if u&0x80 != 0 {
		return int16(bias - t)
	}
	return int16(t - bias)
}

func linearToALaw(pcm int) byte {
	pcm >>= 3
	mask := 0xD5
	if pcm < 0 {
		mask = 0x55
		pcm = -pcm - 1
	}
	seg := segment(pcm, &alawSegEnds)
	if seg >= 8 {
		return byte(0x7F ^ mask)
	}
	a := seg << 4
	if seg < 2 {
		a |= (pcm >> 1) & 0x0F
	} else {
		a |= (pcm >> seg) & 0x0F
	}
	return byte(a ^ mask)
}

func alawToLinear(a byte) int16 {
	a ^= 0x55
	t := int(a&0x0F) << 4
	switch seg := int(a&0x70) >> 4; seg {
	case 0:
		t += 8
	case 1:
		t += 0x108
	default:
		t += 0x108
		t <<= seg - 1
	}
	if a&0x80 != 0 {
		return int16(t)
	}
	return int16(-t)
}
