// Package opus encodes and decodes Opus at the pipeline's rate: 8 kHz mono PCM in 20 ms
// frames of 160 samples. It wraps libopus (cgo, gopkg.in/hraban/opus.v2) and is the only
// package that does, so the media server, which never touches Opus, builds without it.
//
// Opus carries no sample rate of its own: a browser's 48 kHz stereo stream decodes here
// to 8 kHz mono, and 8 kHz frames encoded here play in a browser as any Opus. On the
// wire (RTP) the clock is 48 kHz whatever rate the ends run at: a 20 ms frame advances
// the timestamp by RTPFrameTicks.
package opus

import (
	"fmt"
	"time"

	hopus "gopkg.in/hraban/opus.v2"
)

const (
	// SampleRate and FrameSamples are the pipeline's: 8 kHz, 20 ms.
	SampleRate   = 8000
	FrameSamples = SampleRate / 50
	// FrameDuration is one frame.
	FrameDuration = 20 * time.Millisecond
	// MaxFrameSamples is the longest frame Opus sends (120 ms) at SampleRate: a Decode
	// buffer of this size takes any packet.
	MaxFrameSamples = SampleRate * 120 / 1000
	// MaxPacket is the largest packet Encode writes; a buffer of this size always fits.
	MaxPacket = 1275
	// RTPClockRate is Opus's RTP clock (RFC 7587), RTPFrameTicks a 20 ms frame on it.
	RTPClockRate  = 48000
	RTPFrameTicks = RTPClockRate / 50
	// Bitrate is what the encoder aims at: wideband-quality speech for a narrowband
	// source needs little.
	Bitrate = 24000
)

// Encoder turns 20 ms frames of 8 kHz mono PCM into Opus packets. Not safe for
// concurrent use.
type Encoder struct{ enc *hopus.Encoder }

// NewEncoder makes an encoder tuned for speech (OPUS_APPLICATION_VOIP).
func NewEncoder() (*Encoder, error) {
	enc, err := hopus.NewEncoder(SampleRate, 1, hopus.AppVoIP)
	if err != nil {
		return nil, fmt.Errorf("opus: new encoder: %w", err)
	}
	if err := enc.SetBitrate(Bitrate); err != nil {
		return nil, fmt.Errorf("opus: setting the bitrate: %w", err)
	}
	return &Encoder{enc: enc}, nil
}

// Encode writes the packet for one frame (pcm: 2.5 to 60 ms at SampleRate, normally
// FrameSamples) into dst (MaxPacket bytes always fit) and returns its length. It does
// not allocate.
func (e *Encoder) Encode(dst []byte, pcm []int16) (int, error) {
	n, err := e.enc.Encode(pcm, dst)
	if err != nil {
		return 0, fmt.Errorf("opus: encode: %w", err)
	}
	return n, nil
}

// Decoder turns Opus packets (mono or stereo, any rate) into 8 kHz mono PCM. Not safe
// for concurrent use.
type Decoder struct{ dec *hopus.Decoder }

// NewDecoder makes a decoder that outputs 8 kHz mono.
func NewDecoder() (*Decoder, error) {
	dec, err := hopus.NewDecoder(SampleRate, 1)
	if err != nil {
		return nil, fmt.Errorf("opus: new decoder: %w", err)
	}
	return &Decoder{dec: dec}, nil
}

// Decode decodes one packet into dst and returns the samples written: FrameSamples for
// a 20 ms packet. dst must hold the packet's duration (MaxFrameSamples holds any). It
// does not allocate.
func (d *Decoder) Decode(dst []int16, packet []byte) (int, error) {
	n, err := d.dec.Decode(packet, dst[:len(dst):len(dst)])
	if err != nil {
		return 0, fmt.Errorf("opus: decode: %w", err)
	}
	return n, nil
}

// Conceal fills dst (a whole frame) with Opus's guess at a lost packet, smoother than
// silence.
func (d *Decoder) Conceal(dst []int16) error {
	if err := d.dec.DecodePLC(dst[:len(dst):len(dst)]); err != nil {
		return fmt.Errorf("opus: concealing a lost packet: %w", err)
	}
	return nil
}
