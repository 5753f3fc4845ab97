// Command ringside-media is the media server every phone call is anchored on.
//
//	ringside-media serve --data DIR [--sip-addr 127.0.0.1:5060] [--http-addr 127.0.0.1:8080]
//	                     [--rtp-ports 20000-29999] [--trunk-allow 127.0.0.0/8] [--trunk-uri sip:HOST:PORT]
//	                     [--public-ip IP] [--rtp-mux] [--rtp-mux-sockets 8] [--realtime] [--cpu-wake-latency 0s]
//	ringside-media user add NAME --ext EXT --password PW --role agent|supervisor|admin [--team T] --data DIR
//	ringside-media setting set notify-agent-on-monitor true|false --data DIR
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"ringside/server"
	"ringside/server/store"
)

const usage = `usage:
  ringside-media serve --data DIR [--sip-addr 127.0.0.1:5060] [--http-addr 127.0.0.1:8080]
                       [--rtp-ports 20000-29999] [--trunk-allow 127.0.0.0/8] [--trunk-uri sip:HOST:PORT]
                       [--public-ip IP] [--rtp-mux] [--rtp-mux-sockets 8] [--realtime] [--cpu-wake-latency 0s]
  ringside-media user add NAME --ext EXT --password PW --role agent|supervisor|admin [--team T] --data DIR
  ringside-media user list --data DIR
  ringside-media setting set notify-agent-on-monitor true|false --data DIR
  ringside-media bench --calls N [--monitored M] [--duration 30s] [--target ADDR] [--find-capacity] [--compare]
                       [--realtime] [--cpu-wake-latency 0s|off]
`

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "ringside-media:", err)
		var u usageError
		if errors.As(err, &u) {
			fmt.Fprint(os.Stderr, usage)
		}
		os.Exit(2)
	}
}

type usageError struct{ error }

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{errors.New("missing command")}
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr)
	case "user":
		if len(args) > 1 && args[1] == "add" {
			return userAdd(args[2:], stdout)
		}
		if len(args) > 1 && args[1] == "list" {
			return userList(args[2:], stdout)
		}
	case "setting":
		if len(args) > 1 && args[1] == "set" {
			return settingSet(args[2:], stdout)
		}
	case "bench":
		return bench(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return usageError{fmt.Errorf("unknown command %q", strings.Join(args, " "))}
}

// parse lets flags and positional arguments mix (user add NAME --ext 1001 …).
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageError{err}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func serve(args []string, stdout, stderr io.Writer) error {
	cfg := server.DefaultConfig()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.DataDir, "data", "", "directory for ringside.db")
	fs.StringVar(&cfg.SIPAddr, "sip-addr", cfg.SIPAddr, "SIP UDP address")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "HTTP API address")
	rtp := fs.String("rtp-ports", "20000-29999", "RTP port range")
	fs.BoolVar(&cfg.RTPMux, "rtp-mux", cfg.RTPMux, "carry RTP on a few shared sockets per clock shard, legs told apart by the peer's address (fewer system calls)")
	fs.IntVar(&cfg.RTPMuxSockets, "rtp-mux-sockets", 0, "with --rtp-mux: shared sockets per clock shard (default 8)")
	trunk := fs.String("trunk-allow", "127.0.0.0/8", "comma-separated prefixes whose INVITEs are customer calls")
	fs.StringVar(&cfg.TrunkURI, "trunk-uri", "", "where agents' outbound calls go (sip:HOST:PORT)")
	public := fs.String("public-ip", "", "IP advertised in SDP and Contact")
	fs.DurationVar(&cfg.DeadAfter, "dead-after", cfg.DeadAfter, "end a call when a leg sends no RTP this long")
	fs.StringVar(&cfg.Node, "node", cfg.Node, "this server's name in call history")
	fs.BoolVar(&cfg.Realtime, "realtime", cfg.Realtime, "run the room clock on real-time threads (SCHED_DEADLINE; root or CAP_SYS_NICE), so frames go out on time when other work holds the cores")
	fs.Var(wakeLatencyFlag{&cfg.CPUWakeLatency}, "cpu-wake-latency", wakeLatencyUsage)
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	digestAlgs := fs.String("digest-algorithms", "MD5", "digest algorithms offered to phones, preferred first: MD5, SHA-256 (some phones give up when offered one they don't know)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var err error
	if cfg.RTPMin, cfg.RTPMax, err = portRange(*rtp); err != nil {
		return usageError{err}
	}
	cfg.TrunkAllow = nil
	for _, p := range strings.Split(*trunk, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			return usageError{fmt.Errorf("--trunk-allow %q: %w", p, err)}
		}
		cfg.TrunkAllow = append(cfg.TrunkAllow, prefix)
	}
	if *public != "" {
		if cfg.PublicIP, err = netip.ParseAddr(*public); err != nil {
			return usageError{fmt.Errorf("--public-ip: %w", err)}
		}
	}
	for _, a := range strings.Split(*digestAlgs, ",") {
		switch a = strings.ToUpper(strings.TrimSpace(a)); a {
		case "MD5", "SHA-256":
			cfg.DigestAlgorithms = append(cfg.DigestAlgorithms, a)
		default:
			return usageError{fmt.Errorf("--digest-algorithms: %q is not MD5 or SHA-256", a)}
		}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageError{fmt.Errorf("--log-level: %w", err)}
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := server.Start(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ready sip=%s http=%s\n", srv.SIPAddr, srv.HTTPAddr)
	<-ctx.Done()
	cfg.Logger.Info("shutting down: ending calls")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return srv.Stop(sctx)
}

const wakeLatencyUsage = "off, or the longest an idle CPU may take to wake while this runs (0s: idle CPUs poll; root), so a poll never waits milliseconds for a sleeping core, as in a VM it can"

// wakeLatencyFlag is --cpu-wake-latency: off, or a duration from 0.
type wakeLatencyFlag struct{ d **time.Duration }

func (f wakeLatencyFlag) String() string {
	if f.d == nil || *f.d == nil {
		return "off"
	}
	return (**f.d).String()
}

func (f wakeLatencyFlag) Set(s string) error {
	if s == "off" {
		*f.d = nil
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > 30*time.Minute {
		return fmt.Errorf("want off or a duration from 0s (idle CPUs poll) to 30m, such as 20us")
	}
	*f.d = &d
	return nil
}

func portRange(s string) (uint16, uint16, error) {
	lo, hi, ok := strings.Cut(s, "-")
	a, err1 := strconv.ParseUint(lo, 10, 16)
	b, err2 := strconv.ParseUint(hi, 10, 16)
	if !ok || err1 != nil || err2 != nil || a > b || (a == 0) != (b == 0) {
		return 0, 0, fmt.Errorf("--rtp-ports %q: want LOW-HIGH, for example 20000-29999 (0-0 picks any free port)", s)
	}
	return uint16(a), uint16(b), nil
}

func openStore(dir string) (store.Store, error) {
	if dir == "" {
		return nil, usageError{errors.New("--data DIR is required")}
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	return store.Open(context.Background(), dir)
}

type teams []string

func (t *teams) String() string     { return strings.Join(*t, ",") }
func (t *teams) Set(v string) error { *t = append(*t, v); return nil }

func userAdd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("user add", flag.ContinueOnError)
	var u store.NewUser
	var ts teams
	fs.StringVar(&u.Ext, "ext", "", "extension (digits)")
	fs.StringVar(&u.Password, "password", "", "password for the softphone and SIP")
	fs.StringVar(&u.Role, "role", "", "agent, supervisor or admin")
	fs.Var(&ts, "team", "team (repeat for several)")
	data := fs.String("data", "", "data directory")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{errors.New("user add takes exactly one NAME")}
	}
	u.Name, u.Teams = pos[0], ts
	st, err := openStore(*data)
	if err != nil {
		return err
	}
	defer st.Close()
	added, err := st.AddUser(context.Background(), u)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "added %s ext %s role %s\n", added.Name, added.Ext, added.Role)
	return nil
}

func userList(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("user list", flag.ContinueOnError)
	data := fs.String("data", "", "data directory")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	st, err := openStore(*data)
	if err != nil {
		return err
	}
	defer st.Close()
	users, err := st.Users(context.Background())
	if err != nil {
		return err
	}
	for _, u := range users {
		fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\n", u.Name, u.Ext, u.Role, strings.Join(u.Teams, ","))
	}
	return nil
}

func settingSet(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("setting set", flag.ContinueOnError)
	data := fs.String("data", "", "data directory")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageError{errors.New("setting set takes KEY VALUE")}
	}
	key, value := pos[0], pos[1]
	if key != store.SettingNotifyAgentOnMonitor {
		return usageError{fmt.Errorf("unknown setting %q (known: %s)", key, store.SettingNotifyAgentOnMonitor)}
	}
	if _, err := strconv.ParseBool(value); err != nil {
		return usageError{fmt.Errorf("%s takes true or false, not %q", key, value)}
	}
	st, err := openStore(*data)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.SetSetting(context.Background(), key, value); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s = %s\n", key, value)
	return nil
}
