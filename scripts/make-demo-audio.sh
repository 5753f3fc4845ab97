#!/usr/bin/env bash
# Regenerates the demo bots' speech in assets/: two short recorded lines, one per side of
# the demo call, as 8 kHz mono 16-bit PCM WAV (what a G.711 phone carries), each < 150 KB.
# The files are committed; this script only documents how they were made.
# Needs: apt-get install -y espeak-ng sox
set -euo pipefail
cd "$(dirname "$0")/.."
out=assets
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# say VOICE SPEED PITCH FILE TEXT: speak with espeak-ng, then convert with sox to 8 kHz mono
# s16, low-passed to telephone band, normalised to -3 dBFS, with 0.6 s of silence after
# so the looped line leaves a pause for the other side.
say() {
	local voice=$1 speed=$2 pitch=$3 file=$4 text=$5
	espeak-ng -v "$voice" -s "$speed" -p "$pitch" -w "$tmp/raw.wav" "$text"
	sox "$tmp/raw.wav" -r 8000 -c 1 -b 16 -e signed-integer "$out/$file" \
		highpass 300 lowpass 3400 norm -3 pad 0 0.6
	printf '%s: %s s, %s bytes\n' "$file" "$(soxi -D "$out/$file")" "$(stat -c %s "$out/$file")"
}

say en-us+f3 165 55 customer.wav \
	"Hi, I'm calling about my order. It hasn't arrived yet, and it's been a week."
say en+m3 165 40 agent.wav \
	"Thanks for calling. Let me look that up for you. What's your order number?"
