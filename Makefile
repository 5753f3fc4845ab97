# Ringside: `make run` starts the demo, `make test` runs every test.
SHELL := /bin/bash
GO ?= go
BIN := bin
export GOFLAGS ?= -buildvcs=false

# Debian packages: gcc for cgo (Fyne's GL driver, miniaudio), Fyne's GL and X11 headers,
# and for the softphone's window tests and screenshots xvfb and imagemagick, with openbox and
# xdotool to minimize and restore the window as a desktop would. libopus-dev and
# libopusfile-dev are the softphone's Opus codec for live calls (media/opus, cgo; the media
# server does not need them), and chromium is the real browser of the live-call tests. Sound
# needs no headers: miniaudio loads libasound/libpulse at run time (see AUDIO_LIB). espeak-ng
# and sox made assets/*.wav once (scripts/make-demo-audio.sh); they are not needed here.
APT_PACKAGES := ca-certificates gcc libgl1-mesa-dev xorg-dev xvfb imagemagick openbox xdotool chromium libopus-dev libopusfile-dev
# ALSA's runtime, which miniaudio dlopens; Debian 13 and Ubuntu 24.04 call it libasound2t64.
AUDIO_LIB := libasound.so.2

# no_emoji leaves out Fyne's built-in emoji font, which it parses once per text style
# (about 23 MB resident); the softphone shows no emoji, and a system emoji font still works.
# migrated_fynedo is what `fyne build` and `fyne package` add for FyneApp.toml's
# [Migrations] fyneDo: the UI touches widgets only on Fyne's goroutine (fyne.Do), so Fyne
# need not check it on every refresh (a runtime.Stack each: 6 % of the UI thread's samples
# while the monitoring window's meters move, too little to show in the process's total).
# Tests build without it and keep the checks.
SOFTPHONE_TAGS ?= no_emoji,migrated_fynedo

# The softphone builds with two Fyne patches (third_party/fyne-patches: the GLFW loop
# sleeps while nothing changes instead of ticking at 60 Hz; the system's font for the
# user's language is loaded at the first letter the bundled fonts lack, not at start-up)
# through a build overlay that scripts/fyne-overlay.go writes per machine; it fails if Fyne
# is no longer the version the patches were made from. FYNE_OVERLAY= builds stock Fyne; a
# plain `go build` does too.
FYNE_OVERLAY ?= $(CURDIR)/$(BIN)/fyne-overlay.json
OVERLAY_FLAG = $(if $(FYNE_OVERLAY),-overlay=$(FYNE_OVERLAY))

.PHONY: deps build run package test bench bench-load vet fmt clean overlay

deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if ! /sbin/ldconfig -p 2>/dev/null | grep -q '$(AUDIO_LIB)'; then \
		if apt-cache show libasound2t64 >/dev/null 2>&1; then missing="$$missing libasound2t64"; else missing="$$missing libasound2"; fi; \
	fi; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@command -v $(GO) >/dev/null || { echo "Go 1.26 is needed: https://go.dev/dl/"; exit 1; }
	@$(GO) mod download

overlay: deps
	@if [ -n "$(FYNE_OVERLAY)" ]; then $(GO) run scripts/fyne-overlay.go -o $(FYNE_OVERLAY) >/dev/null; fi

build: overlay
	$(GO) build -o $(BIN)/ringside-media ./cmd/ringside-media
	@if [ -d cmd/ringside ]; then echo "$(GO) build $(OVERLAY_FLAG) -tags '$(SOFTPHONE_TAGS)' -o $(BIN)/ringside ./cmd/ringside"; $(GO) build $(OVERLAY_FLAG) -tags '$(SOFTPHONE_TAGS)' -o $(BIN)/ringside ./cmd/ringside; fi

# The demo: the softphone with --demo starts ringside-media in-process (throwaway SQLite,
# demo users, bot agents and customers on the line) and logs in as the supervisor sam.
# Without cmd/ringside (or a display) it falls back to the server alone with demo users.
run: build
	@if [ -x $(BIN)/ringside ] && [ -d cmd/ringside ] && [ -n "$${DISPLAY}$${WAYLAND_DISPLAY}" ]; then \
		exec $(BIN)/ringside --demo; \
	else \
		[ -d cmd/ringside ] && echo "no display (DISPLAY unset): running the media server only"; \
		exec bash scripts/demo.sh $(BIN)/ringside-media; \
	fi

# A desktop package of bin/ringside (Linux: bin/Ringside.tar.xz with the binary, icon and
# .desktop file) made by the fyne CLI with FyneApp.toml's name, id, version and icon (passed
# as flags: fyne reads FyneApp.toml from --src, and ours sits at the root). fyne.io/tools
# v1.7.4 is the CLI of the fyne v2.7 era; it is not in go.mod (its own fyne requirement
# would raise ours), so the first run needs the module proxy; later ones work offline.
FYNE_CLI ?= fyne.io/tools/cmd/fyne@v1.7.4
package: build
	@toml() { sed -n "s/^ *$$1 *= *\"\(.*\)\"/\1/p" FyneApp.toml | head -1; }; \
	name=$$(toml Name); \
	set -x; $(GO) run $(FYNE_CLI) package --target $$($(GO) env GOOS) --src ./cmd/ringside --exe $(CURDIR)/$(BIN)/ringside \
		--name "$$name" --app-id "$$(toml ID)" --app-version "$$(toml Version)" --icon $(CURDIR)/$$(toml Icon) --release && \
	if [ -e "$$name.tar.xz" ]; then mv "$$name.tar.xz" $(BIN)/; fi

# vet runs without the overlay (its cgo check can't read overlaid files); the tests with it,
# passed in GOFLAGS so that the programs tests build themselves (cmd/ringside) get it too.
test: overlay
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go') third_party)" || { echo "gofmt needed:"; gofmt -l . third_party; exit 1; }
	$(GO) vet ./...
	GOFLAGS='$(GOFLAGS) $(OVERLAY_FLAG)' $(GO) test -race -count=1 -timeout 20m ./...
	# Alone, one package at a time: real-time threads go before everything else, one test
	# keeps every core busy to show the real-time clock's frames still go out on time (without
	# the race detector: under it, real-time threads waited 40-150 ms in 3 runs of 7), and the
	# CPU wake latency limit is the machine's.
	RINGSIDE_TEST_REALTIME=1 GOFLAGS='$(GOFLAGS) $(OVERLAY_FLAG)' $(GO) test -p 1 -count=1 -run 'Realtime|WakeLatency' ./server/room ./server/realtime
	RINGSIDE_TEST_REALTIME=1 GOFLAGS='$(GOFLAGS) $(OVERLAY_FLAG)' $(GO) test -race -count=1 -run 'Realtime|WakeLatency' ./cmd/ringside-media

bench: deps
	$(GO) test -run '^$$' -bench . -benchmem ./server/room/ ./media/

# The load bench: an in-process ringside-media under real SIP + RTP load from a generator in
# a child process; prints one JSON line. make bench-load BENCH_CALLS=300 BENCH_MONITORED=300
BENCH_CALLS ?= 100
BENCH_MONITORED ?= $(BENCH_CALLS)
BENCH_DURATION ?= 30s
BENCH_FLAGS ?=
bench-load: deps
	$(GO) build -o $(BIN)/ringside-media ./cmd/ringside-media
	$(BIN)/ringside-media bench --calls $(BENCH_CALLS) --monitored $(BENCH_MONITORED) --duration $(BENCH_DURATION) $(BENCH_FLAGS)

clean:
	rm -rf $(BIN)
