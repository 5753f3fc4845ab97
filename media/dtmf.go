package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// DTMFEvent is an RFC 4733 telephone-event payload.
type DTMFEvent struct {
	Event    uint8 // 0-9, 10 '*', 11 '#', 12-15 'A'-'D', 16 flash
	End      bool
	Volume   uint8  // 0..63, in -dBm0
	Duration uint16 // in timestamp units (8 kHz)
}

var ErrBadDTMF = errors.New("media: bad DTMF")

// Built once so that the per-packet path returns them without allocating.
var (
	errDTMFShort = fmt.Errorf("%w: telephone-event payload shorter than 4 bytes", ErrBadDTMF)
	errDTMFEvent = fmt.Errorf("%w: telephone-event code is not a DTMF digit or flash (0-16)", ErrBadDTMF)
)

// ParseDTMFEvent reads the first 4 bytes of an RFC 4733 payload; events
// above 16 (modem and line tones) are refused.
func ParseDTMFEvent(payload []byte) (DTMFEvent, error) {
	if len(payload) < 4 {
		return DTMFEvent{}, errDTMFShort
	}
	if payload[0] > 16 {
		return DTMFEvent{}, errDTMFEvent
	}
	return DTMFEvent{
		Event:    payload[0],
		End:      payload[1]&0x80 != 0,
		Volume:   payload[1] & 0x3F,
		Duration: binary.BigEndian.Uint16(payload[2:]),
	}, nil
}

// Marshal writes the 4-byte payload into dst and returns 4.
func (e DTMFEvent) Marshal(dst []byte) int {
	_ = dst[3]
	dst[0] = e.Event
	dst[1] = e.Volume & 0x3F
	if e.End {
		dst[1] |= 0x80
	}
	binary.BigEndian.PutUint16(dst[2:], e.Duration)
	return 4
}

const dtmfDigits = "0123456789*#ABCD"

// DTMFDigit maps an event code to its key: 0-9, 10 '*', 11 '#', 12-15 'A'-'D'.
func DTMFDigit(event uint8) (rune, bool) {
	if int(event) >= len(dtmfDigits) {
		return 0, false
	}
	return rune(dtmfDigits[event]), true
}

// DTMFEventCode maps a key (A-D in either case) to its event code.
func DTMFEventCode(digit rune) (uint8, bool) {
	if digit >= 'a' && digit <= 'd' {
		digit -= 'a' - 'A'
	}
	i := strings.IndexRune(dtmfDigits, digit)
	if i < 0 {
		return 0, false
	}
	return uint8(i), true
}

// ParseDTMFRelay reads the body of a SIP INFO carrying one key press:
// "application/dtmf-relay" ("Signal=5\r\nDuration=160\r\n"; keys in any case,
// \n or \r\n, spaces around '=') or "application/dtmf" (body "5"). The signal
// may also be given as its event code ("Signal=11" for '#'), as some phones do.
func ParseDTMFRelay(contentType string, body []byte) (rune, error) {
	mediaType, _, _ := strings.Cut(contentType, ";")
	mediaType = strings.ToLower(strings.TrimSpace(mediaType))
	switch mediaType {
	case "application/dtmf-relay":
		for line := range strings.Lines(string(body)) {
			key, value, ok := strings.Cut(line, "=")
			if ok && strings.EqualFold(strings.TrimSpace(key), "signal") {
				return parseDTMFSignal(value)
			}
		}
		return 0, fmt.Errorf("%w: application/dtmf-relay body has no Signal= line", ErrBadDTMF)
	case "application/dtmf":
		return parseDTMFSignal(string(body))
	}
	return 0, fmt.Errorf("%w: content type %q is neither application/dtmf-relay nor application/dtmf", ErrBadDTMF, contentType)
}

func parseDTMFSignal(s string) (rune, error) {
	s = strings.TrimSpace(s)
	if len(s) == 1 {
		if code, ok := DTMFEventCode(rune(s[0])); ok {
			return rune(dtmfDigits[code]), nil
		}
	}
	if code, err := strconv.ParseUint(s, 10, 8); err == nil {
		if d, ok := DTMFDigit(uint8(code)); ok {
			return d, nil
		}
	}
	return 0, fmt.Errorf("%w: signal %q is not a DTMF key (0-9, *, #, A-D)", ErrBadDTMF, s)
}
