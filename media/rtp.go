package media

import (
	"encoding/binary"
	"errors"
)

// RTP header handling is hand-written because pion/rtp allocates per packet
// (CSRC and extension slices), and this path runs for every packet of every leg.

const rtpHeaderLen = 12

// RTPHeader is the part of an RFC 3550 header that the media path uses.
type RTPHeader struct {
	Marker      bool
	PayloadType uint8
	Seq         uint16
	Timestamp   uint32
	SSRC        uint32
}

var (
	ErrShortPacket  = errors.New("media: RTP packet shorter than its header")
	ErrBadVersion   = errors.New("media: RTP version is not 2")
	ErrBadPadding   = errors.New("media: RTP padding length exceeds the payload")
	ErrBadExtension = errors.New("media: RTP header extension runs past the packet")
)

// ParseRTP validates version 2, CSRC count, header extension length and
// padding, and returns the header and the payload, which aliases buf.
// CSRCs and extensions are skipped: G.711 mixing has no use for them.
func ParseRTP(buf []byte) (RTPHeader, []byte, error) {
	if len(buf) < rtpHeaderLen {
		return RTPHeader{}, nil, ErrShortPacket
	}
	if buf[0]>>6 != 2 {
		return RTPHeader{}, nil, ErrBadVersion
	}
	h := RTPHeader{
		Marker:      buf[1]&0x80 != 0,
		PayloadType: buf[1] & 0x7F,
		Seq:         binary.BigEndian.Uint16(buf[2:]),
		Timestamp:   binary.BigEndian.Uint32(buf[4:]),
		SSRC:        binary.BigEndian.Uint32(buf[8:]),
	}
	end := len(buf)
	off := rtpHeaderLen + 4*int(buf[0]&0x0F)
	if off > end {
		return RTPHeader{}, nil, ErrShortPacket
	}
	if buf[0]&0x10 != 0 {
		if off+4 > end {
			return RTPHeader{}, nil, ErrBadExtension
		}
		off += 4 + 4*int(binary.BigEndian.Uint16(buf[off+2:]))
		if off > end {
			return RTPHeader{}, nil, ErrBadExtension
		}
	}
	if buf[0]&0x20 != 0 {
		pad := int(buf[end-1])
		if pad == 0 || pad > end-off {
			return RTPHeader{}, nil, ErrBadPadding
		}
		end -= pad
	}
	return h, buf[off:end:end], nil
}

// MarshalRTP writes a 12-byte header (version 2, no CSRC, no extension) and
// then payload into dst, and returns the length written. dst must have room
// for 12+len(payload) bytes.
func MarshalRTP(dst []byte, h RTPHeader, payload []byte) int {
	_ = dst[rtpHeaderLen+len(payload)-1]
	dst[0] = 2 << 6
	dst[1] = h.PayloadType & 0x7F
	if h.Marker {
		dst[1] |= 0x80
	}
	binary.BigEndian.PutUint16(dst[2:], h.Seq)
	binary.BigEndian.PutUint32(dst[4:], h.Timestamp)
	binary.BigEndian.PutUint32(dst[8:], h.SSRC)
	return rtpHeaderLen + copy(dst[rtpHeaderLen:], payload)
}

// IsRTCP tells RTCP from RTP on a shared port (RFC 5761 §4): RTCP packet
// types 192..223 land where an RTP marker bit plus payload type 64..95 would,
// a range RTP payload types avoid for this reason.
func IsRTCP(buf []byte) bool {
	if len(buf) < 4 || buf[0]>>6 != 2 {
		return false
	}
	pt := buf[1] & 0x7F
	return pt >= 64 && pt <= 95
}
