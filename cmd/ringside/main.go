// Command ringside is the desktop softphone: `ringside` opens the sign-in window,
// `ringside --demo` starts a demo call center in-process and signs in as supervisor sam,
// `RINGSIDE_PASSWORD=… ringside --server URL --user NAME` signs in without typing.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // served only when RINGSIDE_PPROF names an address
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"fyne.io/fyne/v2"
	fyneapp "fyne.io/fyne/v2/app"

	"ringside/app"
	"ringside/app/demo"
	"ringside/assets"
	"ringside/ui"
)

// appID matches FyneApp.toml.
const appID = "dev.ringside.softphone"

// gcPercent is the softphone's GOGC unless the environment sets one.
const gcPercent = 50

func main() {
	demoMode := flag.Bool("demo", false, "start a demo call center (media server, users, a customer talking to a bot agent) and sign in as supervisor sam")
	logLevel := flag.String("log-level", "info", "debug, info, warn or error")
	server := flag.String("server", "", "sign in to this server (http://HOST:PORT) at once, with --user and the password in $RINGSIDE_PASSWORD")
	user := flag.String("user", "", "the user to sign in as with --server")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintln(os.Stderr, "ringside: --log-level:", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if os.Getenv("GOGC") == "" {
		// Most of the heap is long-lived (font faces, widgets) and the softphone allocates
		// little once running, so collecting at half the heap's growth rather than all of
		// it keeps the heap's headroom small for little CPU (scripts/perf-softphone.sh).
		debug.SetGCPercent(gcPercent)
	}
	if addr := os.Getenv("RINGSIDE_PPROF"); addr != "" {
		// Profiling for developers (scripts/perf-softphone.sh): keep it on loopback.
		go func() { logger.Warn("pprof", "err", http.ListenAndServe(addr, nil)) }()
	}
	var signIn *app.Account
	if *server != "" || *user != "" {
		if *server == "" || *user == "" || *demoMode {
			fmt.Fprintln(os.Stderr, "ringside: --server and --user go together, without --demo")
			os.Exit(2)
		}
		signIn = &app.Account{ServerURL: *server, User: *user, Password: os.Getenv("RINGSIDE_PASSWORD")}
	}
	if err := run(*demoMode, signIn, logger); err != nil {
		logger.Error("ringside", "err", err)
		os.Exit(1)
	}
}

// run shows the demo (demoMode), signs in with signIn at once, or opens the sign-in
// window with the remembered account.
func run(demoMode bool, signIn *app.Account, logger *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	a := fyneapp.NewWithID(appID)
	opts := ui.Options{Logger: logger, Icon: fyne.NewStaticResource("icon.png", assets.Icon)}
	if demoMode { // the demo's server and visitors are on this machine: live calls stay on loopback
		opts.Live.Networks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	}
	u := ui.New(a, opts)

	var d *demo.Demo
	if demoMode {
		var err error
		if d, err = demo.Start(ctx, logger); err != nil {
			return fmt.Errorf("starting the demo: %w", err)
		}
		defer d.Close()
		u.SignIn(d.Account("sam"))
	} else if signIn != nil {
		u.SignIn(*signIn)
	} else {
		acct, err := app.LoadAccount()
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			logger.Warn("could not read the remembered account", "err", err)
		}
		u.ShowLogin(acct)
	}

	// A signal quits the app like closing its window does.
	quit := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			fyne.Do(a.Quit)
		case <-quit:
		}
	}()
	a.Run()
	close(quit)
	u.Close()
	return nil
}
