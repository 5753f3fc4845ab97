package media

import (
	"encoding/binary"
	"math"
)

// CSRCAudioLevelURI names the RFC 6465 mixer-to-client audio level header extension: a
// mixer tells each listener how loud every contributing source is, in CSRC order.
const CSRCAudioLevelURI = "urn:ietf:params:rtp-hdrext:csrc-audio-level"

// SilentLevel is the quietest RFC 6464/6465 level (-127 dBov).
const SilentLevel = 127

// AudioLevel is the RFC 6464 level of a frame: its power in -dBov, 0 (full scale) to 127.
func AudioLevel(pcm []int16) uint8 {
	if len(pcm) == 0 {
		return SilentLevel
	}
	var sum float64
	for _, s := range pcm {
		v := float64(s)
		sum += v * v
	}
	rms := math.Sqrt(sum/float64(len(pcm))) / 32768
	if rms <= 0 {
		return SilentLevel
	}
	db := -20 * math.Log10(rms)
	return uint8(min(max(math.Round(db), 0), SilentLevel))
}

// MarshalRTPLevels writes an RTP packet whose CSRC list names the mixed sources and whose
// one-byte header extension (RFC 8285) with id extID carries their RFC 6465 levels, then
// payload. len(levels) must equal len(csrc), 1..15. dst needs room for
// 12 + 4*len(csrc) + 4 + 4*ceil((1+len(csrc))/4) + len(payload) bytes.
func MarshalRTPLevels(dst []byte, h RTPHeader, extID uint8, csrc []uint32, levels []uint8, payload []byte) int {
	n := len(csrc)
	dst[0] = 2<<6 | 0x10 | byte(n) // version 2, extension, CC
	dst[1] = h.PayloadType & 0x7F
	if h.Marker {
		dst[1] |= 0x80
	}
	binary.BigEndian.PutUint16(dst[2:], h.Seq)
	binary.BigEndian.PutUint32(dst[4:], h.Timestamp)
	binary.BigEndian.PutUint32(dst[8:], h.SSRC)
	off := rtpHeaderLen
	for _, c := range csrc {
		binary.BigEndian.PutUint32(dst[off:], c)
		off += 4
	}
	words := (1 + n + 3) / 4
	binary.BigEndian.PutUint16(dst[off:], 0xBEDE)
	binary.BigEndian.PutUint16(dst[off+2:], uint16(words))
	off += 4
	ext := dst[off : off+4*words]
	clear(ext)
	ext[0] = extID<<4 | byte(n-1)
	for i, l := range levels {
		ext[1+i] = l & 0x7F
	}
	off += 4 * words
	return off + copy(dst[off:], payload)
}

// ParseRTPLevels reads the RFC 6465 levels with extension id extID from an RTP packet
// into dst, in CSRC order, and returns how many there were (0 when absent).
func ParseRTPLevels(pkt []byte, extID uint8, dst []uint8) int {
	if len(pkt) < rtpHeaderLen || pkt[0]>>6 != 2 || pkt[0]&0x10 == 0 || extID == 0 {
		return 0
	}
	off := rtpHeaderLen + 4*int(pkt[0]&0x0F)
	if len(pkt) < off+4 || binary.BigEndian.Uint16(pkt[off:]) != 0xBEDE {
		return 0
	}
	end := off + 4 + 4*int(binary.BigEndian.Uint16(pkt[off+2:]))
	if end > len(pkt) {
		return 0
	}
	for i := off + 4; i < end; {
		b := pkt[i]
		if b == 0 { // padding
			i++
			continue
		}
		id, l := b>>4, int(b&0x0F)+1
		if id == 15 || i+1+l > end {
			return 0
		}
		if id == extID {
			n := copy(dst, pkt[i+1:i+1+l])
			for k := range n {
				dst[k] &= 0x7F
			}
			return n
		}
		i += 1 + l
	}
	return 0
}
