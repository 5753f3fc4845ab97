package room

import "fmt"

// Mode is how a supervisor takes part in a call.
type Mode string

const (
	// Listen: hears customer and agent; heard by nobody (its audio is dropped at the room).
	Listen Mode = "listen"
	// Whisper: heard by the agent and the other supervisors, never by the customer.
	Whisper Mode = "whisper"
	// Barge: heard by everyone.
	Barge Mode = "barge"
)

// ParseMode reads a mode name as the API and feature codes spell it.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case Listen, Whisper, Barge:
		return m, nil
	}
	return "", fmt.Errorf("unknown mode %q: use listen, whisper or barge", s)
}

// ModeForDigit maps the in-session DTMF digits and feature-code prefixes: 1 listen,
// 2 whisper, 3 barge.
func ModeForDigit(d rune) (Mode, bool) {
	switch d {
	case '1':
		return Listen, true
	case '2':
		return Whisper, true
	case '3':
		return Barge, true
	}
	return "", false
}

// Talks tells whether a supervisor in this mode is heard by anyone.
func (m Mode) Talks() bool { return m == Whisper || m == Barge }
