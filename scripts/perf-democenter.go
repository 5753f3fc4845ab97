//go:build ignore

// perf-democenter runs the demo call center of `ringside --demo` (ringside-media with the
// demo users, bot agents, customers calling them) as a process of its own, so that
// scripts/perf-softphone.sh can measure the softphone apart from the server and the bots.
// It prints "url=http://127.0.0.1:PORT" once up and runs until SIGINT/SIGTERM.
//
//	go build -o bin/perf-democenter scripts/perf-democenter.go
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"ringside/app/demo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	d, err := demo.Start(sctx, logger)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "perf-democenter:", err)
		os.Exit(1)
	}
	fmt.Printf("url=%s\n", d.ServerURL())
	<-ctx.Done()
	if err := d.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "perf-democenter:", err)
	}
}
