package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"ringside/server/realtime"
	"ringside/server/simphone"
	"ringside/server/store"
)

// TestMain lets the test binary run the real command in a child process.
func TestMain(m *testing.M) {
	if args := os.Getenv("RINGSIDE_MEDIA_ARGS"); args != "" {
		if err := run(strings.Fields(args), os.Stdout, os.Stderr); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestCommandLineErrorsSayWhatToDo(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"user", "add", "eve", "--ext", "12a", "--password", "secret", "--role", "agent", "--data", dir}, "ext"},
		{[]string{"user", "add", "eve", "--ext", "1200", "--password", "secret", "--role", "boss", "--data", dir}, "role"},
		{[]string{"setting", "set", "notify-agent-on-monitor", "maybe", "--data", dir}, "true or false"},
		{[]string{"serve", "--rtp-ports", "9-1", "--data", dir}, "LOW-HIGH"},
		{[]string{"serve"}, "--data"},
		{[]string{"bench", "--calls", "1", "--generator-nice", "-5"}, "0 (the default) to 19"},
		{[]string{"serve", "--data", dir, "--cpu-wake-latency", "soon"}, "off or a duration"},
		{[]string{"bench", "--calls", "1", "--cpu-wake-latency", "-1ms"}, "off or a duration"},
		{[]string{"frobnicate"}, "unknown command"},
	} {
		err := run(tc.args, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one mentioning %q", tc.args, err, tc.want)
		}
	}
}

// TestServeEndsCallsCleanlyOnSIGTERM: BYE to every leg, history written, exit 0.
func TestServeEndsCallsCleanlyOnSIGTERM(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	for _, args := range [][]string{
		{"user", "add", "alice", "--ext", "1001", "--password", "alice-pw", "--role", "agent", "--data", dir},
		{"setting", "set", "notify-agent-on-monitor", "false", "--data", dir},
	} {
		if err := run(args, &out, &out); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "RINGSIDE_MEDIA_ARGS=serve --data "+dir+" --sip-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 --rtp-ports 0-0")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "ready" || !strings.HasPrefix(f[1], "sip=") || !strings.HasPrefix(f[2], "http=") {
		t.Fatalf("ready line %q", line)
	}
	sipAddr := strings.TrimPrefix(f[1], "sip=")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	alice, err := simphone.New(ctx, simphone.Config{Server: sipAddr, Ext: "1001", Password: "alice-pw", ToneHz: 1000, AutoAnswer: true})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	if err := alice.Register(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	cust, err := simphone.New(ctx, simphone.Config{Server: sipAddr, Ext: "15550100", ToneHz: 440})
	if err != nil {
		t.Fatal(err)
	}
	defer cust.Close()
	customer, err := cust.Dial(ctx, "sip:1001@"+sipAddr)
	if err != nil {
		t.Fatal(err)
	}
	agent := <-alice.Incoming()

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*simphone.Call{"customer": customer, "agent": agent} {
		select {
		case <-c.Done():
			if !c.EndedByRemote() {
				t.Errorf("%s's call ended, but not by the server's BYE", name)
			}
		case <-ctx.Done():
			t.Fatalf("%s got no BYE on shutdown", name)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve exited with %v, want 0", err)
	}
	st, err := store.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h, err := st.History(context.Background(), store.HistoryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 1 || h[0].State != "ended" || h[0].EndReason != "server shutdown" {
		t.Fatalf("history after shutdown: %+v", h)
	}
}

func TestEveryInterfaceNeedsAPublicIP(t *testing.T) {
	err := run([]string{"serve", "--data", t.TempDir(), "--sip-addr", "0.0.0.0:0", "--http-addr", "127.0.0.1:0"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "--public-ip") {
		t.Fatalf("serve on 0.0.0.0 without --public-ip: %v", err)
	}
}

// startServe runs serve with args in a child process (through wrap, a command such as
// taskset, if given) and returns its HTTP address and its standard error so far.
func startServe(t *testing.T, wrap []string, args string) (httpAddr string, stderr *syncBuffer) {
	t.Helper()
	p := startServeIn(t, os.Args[0], t.TempDir(), wrap, args)
	return p.httpAddr, p.stderr
}

// served is a serve process a test started.
type served struct {
	cmd      *exec.Cmd
	httpAddr string
	stderr   *syncBuffer
}

// startServeIn runs serve from the test binary exe, with its data in dir.
func startServeIn(t *testing.T, exe, dir string, wrap []string, args string) served {
	t.Helper()
	name, argv := exe, []string{"-test.run=^$"}
	if len(wrap) > 0 {
		name, argv = wrap[0], append(append(wrap[1:], exe), argv...)
	}
	cmd := exec.Command(name, argv...)
	cmd.Env = append(os.Environ(), "RINGSIDE_MEDIA_ARGS=serve --data "+dir+" --sip-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 --rtp-ports 0-0 "+args)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("serve %s: %v; stderr: %s", args, err, stderr)
	}
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "ready" {
		t.Fatalf("ready line %q", line)
	}
	return served{cmd: cmd, httpAddr: strings.TrimPrefix(f[2], "http="), stderr: stderr}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// realtimeShards reads ringside_clock_realtime_shards from a server's /metrics, once the
// clock has had time to start.
func realtimeShards(t *testing.T, httpAddr string) string {
	t.Helper()
	var last string
	for range 50 {
		if last = metricValue(t, httpAddr, "ringside_clock_realtime_shards"); last != "" && last != "0" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return last
}

func TestServeRealtime(t *testing.T) {
	if _, err := exec.LookPath("taskset"); err != nil {
		t.Skip("needs taskset (util-linux)")
	}
	// Held to one CPU, the process may not have deadline threads: serve says so and why,
	// and runs on normal threads.
	addr, stderr := startServe(t, []string{"taskset", "-c", "0"}, "--realtime")
	if got := realtimeShards(t, addr); got != "0" {
		t.Errorf("on one CPU of %d: ringside_clock_realtime_shards %q, want 0", runtime.NumCPU(), got)
	}
	if runtime.NumCPU() > 1 {
		for _, want := range []string{"--realtime: the room clock runs on normal threads", "taskset"} {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("serve --realtime under taskset: stderr %q, want it to mention %q", stderr, want)
			}
		}
	}
	if os.Getenv("RINGSIDE_TEST_REALTIME") == "" {
		t.Skip("its real-time threads go before the tests running beside it: make test runs it alone (RINGSIDE_TEST_REALTIME=1)")
	}
	if syscall.Geteuid() != 0 {
		t.Skip("real-time threads need root or CAP_SYS_NICE")
	}
	addr, stderr = startServe(t, nil, "--realtime")
	if got := realtimeShards(t, addr); got == "0" || got == "" {
		t.Errorf("serve --realtime as root: ringside_clock_realtime_shards %q, want every shard; stderr: %s", got, stderr)
	}
	if strings.Contains(stderr.String(), "--realtime") {
		t.Errorf("serve --realtime as root warned: %s", stderr)
	}
}

// metricValue is the value of the metric name in a server's /metrics ("" when absent).
func metricValue(t *testing.T, httpAddr, name string) string {
	t.Helper()
	res, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			return v
		}
	}
	return ""
}

// TestServeHoldsCPUWakeLatency: with --cpu-wake-latency 0s idle CPUs poll while
// serve runs (the machine's CPU latency limit reads 0), and the kernel lets go of the
// limit when serve dies, even killed: a crash leaves the machine's power saving as it was.
// A user who may not set the limit is told so, and serve runs as it would without.
func TestServeHoldsCPUWakeLatency(t *testing.T) {
	if os.Getenv("RINGSIDE_TEST_REALTIME") == "" {
		t.Skip("the limit is the machine's: make test runs it alone (RINGSIDE_TEST_REALTIME=1)")
	}
	if syscall.Geteuid() != 0 {
		t.Skip("the CPU latency limit is root's")
	}
	before, err := realtime.WakeLatency()
	if err != nil {
		t.Skipf("no CPU latency limit here: %v", err)
	}
	if before == 0 {
		t.Skip("another process holds the CPUs' wake latency at 0 already")
	}

	p := startServeIn(t, os.Args[0], t.TempDir(), nil, "--cpu-wake-latency 0s")
	if got, err := realtime.WakeLatency(); err != nil || got != 0 {
		t.Errorf("serve --cpu-wake-latency 0s running: the CPU latency limit is %v (%v), want 0", got, err)
	}
	if got := metricValue(t, p.httpAddr, "ringside_cpu_wake_latency_seconds"); got != "0" {
		t.Errorf("ringside_cpu_wake_latency_seconds %q, want 0", got)
	}
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
	if got, _ := realtime.WakeLatency(); got != before {
		t.Errorf("serve killed: the CPU latency limit is %v, want %v as before it ran", got, before)
	}

	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("needs setpriv (util-linux) to run serve as a user without the right")
	}
	// A copy of this binary and a data directory the unprivileged user can reach.
	dir, err := os.MkdirTemp("", "ringside-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	exe, data := filepath.Join(dir, "ringside-media.test"), filepath.Join(dir, "data")
	bin, err := os.ReadFile(os.Args[0])
	if err == nil {
		err = os.WriteFile(exe, bin, 0o755)
	}
	if err == nil {
		err = os.Mkdir(data, 0o777)
	}
	if err == nil {
		err = errors.Join(os.Chmod(dir, 0o755), os.Chmod(data, 0o777))
	}
	if err != nil {
		t.Fatal(err)
	}
	p = startServeIn(t, exe, data, []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}, "--cpu-wake-latency 0s")
	var warned bool
	for range 100 {
		if warned = strings.Contains(p.stderr.String(), "--cpu-wake-latency") && strings.Contains(p.stderr.String(), "run as root"); warned {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !warned {
		t.Errorf("serve --cpu-wake-latency 0s as nobody: stderr %q, want a warning that says to run as root", p.stderr)
	}
	if got := metricValue(t, p.httpAddr, "ringside_cpu_wake_latency_seconds"); got != "" {
		t.Errorf("serve as nobody: ringside_cpu_wake_latency_seconds %q, want none (nothing held)", got)
	}
	if got, _ := realtime.WakeLatency(); got != before {
		t.Errorf("serve as nobody: the CPU latency limit is %v, want %v unchanged", got, before)
	}
}
