// Package assets holds the files the softphone ships inside its binary: the demo bots'
// speech and the app icon. scripts/make-demo-audio.sh and scripts/make-icon.go made them.
package assets

import _ "embed"

// The demo call's two sides, recorded with espeak-ng: 8 kHz mono 16-bit PCM WAV files,
// about 5 s each, ready for app.WAVAudio-style playback on a G.711 line.
var (
	//go:embed customer.wav
	CustomerSpeech []byte
	//go:embed agent.wav
	AgentSpeech []byte
)

// Icon is the 256×256 PNG app icon (FyneApp.toml names the file itself).
//
//go:embed icon.png
var Icon []byte
