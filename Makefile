# Ringside: `make run` starts the demo, `make test` runs every test.
SHELL := /bin/bash
GO ?= go
BIN := bin
export GOFLAGS ?= -buildvcs=false

# Debian packages the server needs for its tests and interop trials. The softphone adds
# Fyne's and audio's when it lands.
APT_PACKAGES := ca-certificates

.PHONY: deps build run test bench vet fmt clean

deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@command -v $(GO) >/dev/null || { echo "Go 1.26 is needed: https://go.dev/dl/"; exit 1; }
	@$(GO) mod download

build: deps
	$(GO) build -o $(BIN)/ringside-media ./cmd/ringside-media

# The demo: a media server on a throwaway SQLite with demo users.
run: build
	@bash scripts/demo.sh $(BIN)/ringside-media

test: deps
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

bench: deps
	$(GO) test -run '^$$' -bench . -benchmem ./server/room/ ./media/

clean:
	rm -rf $(BIN)
