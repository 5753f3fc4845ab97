//go:build !linux || !cgo

package app

import (
	"sync/atomic"

	"github.com/gen2brain/malgo"
)

// audioHandoff is Linux-only (audio_handoff_linux.go); elsewhere the device keeps
// malgo's Go callback.
type audioHandoff struct{}

func installHandoff(*malgo.Device, malgo.DeviceType, *atomic.Pointer[frameIO]) *audioHandoff {
	return nil
}

func (*audioHandoff) late() uint64        { return 0 }
func (*audioHandoff) playedAhead() uint64 { return 0 }
func (*audioHandoff) reset()              {}
func (*audioHandoff) close()              {}
