package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// The host probe tells the server's late frames apart from the host's: over the bench's
// window a child process keeps one thread on each core sleeping to the same instants
// (every probeEvery) on the kernel's clock and notes how late each woke. It starts before
// the calls and counts from the window on: started at the window, the process (exec,
// loading, pinning its threads) held the server and the generator up for tens of
// milliseconds, and the jitter buffers that waited for that took seconds of the window
// to give the delay back (added latency p99 29–88 ms instead of 11–16). A thread that
// does nothing else and still wakes more than 5 ms late was held off its core by something
// else (a kernel thread that does not yield, the hypervisor); the server's polls wake the
// same way, so its late frames cannot fall below that.
const (
	benchProbeEnv = "RINGSIDE_BENCH_PROBE"
	probeEvery    = 5 * time.Millisecond
	probeLate     = 5 * time.Millisecond // as a late frame
)

// hostProbe is what the probe saw: at how many instants its cores woke, how often one
// core woke late, and how often every core did at once (then nothing woke in time on any
// core, and no scheduling of the server's could have been on time).
type hostProbe struct {
	Cores             int     `json:"cores"`
	Wakes             int     `json:"wakes"`                // instants, on each core
	LateRatio         float64 `json:"late_ratio"`           // wakes more than 5 ms late, over all cores
	AllCoresLateRatio float64 `json:"all_cores_late_ratio"` // instants at which every core woke late
	LagMsMax          float64 `json:"lag_ms_max"`
	Error             string  `json:"error,omitempty"`
}

// summarize reduces lags[core][instant] to a hostProbe.
func summarize(lags [][]time.Duration) hostProbe {
	p := hostProbe{Cores: len(lags)}
	if len(lags) == 0 {
		return p
	}
	n := len(lags[0])
	for _, l := range lags {
		n = min(n, len(l))
	}
	p.Wakes = n
	if n == 0 {
		return p
	}
	var late, allLate int
	var lagMax time.Duration
	for i := range n {
		all := true
		for _, l := range lags {
			lagMax = max(lagMax, l[i])
			if l[i] > probeLate {
				late++
			} else {
				all = false
			}
		}
		if all {
			allLate++
		}
	}
	p.LateRatio = round6(float64(late) / float64(n*len(lags)))
	p.AllCoresLateRatio = round6(float64(allLate) / float64(n))
	p.LagMsMax = round3(lagMax.Seconds() * 1000)
	return p
}

// kdamonds counts the kernel's DAMON threads (kdamond.N): data-access monitoring, which a
// virtual machine's kernel may run to reclaim cold memory. Each scans pages with its core
// held (a kernel built without preemption does not yield mid-scan): 2–6 ms about every
// 512 ms on the machine this was measured on, and the threads queued on that core, the
// server's included, wait. Zero without /proc.
func kdamonds() int {
	comms, _ := filepath.Glob("/proc/[0-9]*/comm")
	n := 0
	for _, c := range comms {
		if b, err := os.ReadFile(c); err == nil && strings.HasPrefix(string(b), "kdamond") {
			n++
		}
	}
	return n
}

func round6(x float64) float64 { return float64(int64(x*1e6+0.5)) / 1e6 }

// benchProbe is the probe child: it probes until its stdin closes, counting the wakes
// after the first line it reads there, then prints the result.
func benchProbe(stdout io.Writer) error {
	begin, stop := make(chan struct{}), make(chan struct{})
	go func() {
		in := bufio.NewReader(os.Stdin)
		if _, err := in.ReadString('\n'); err == nil {
			close(begin)
			_, _ = io.Copy(io.Discard, in)
		}
		close(stop)
	}()
	lags, err := probeCores(begin, stop)
	p := summarize(lags)
	if err != nil {
		p.Error = err.Error()
	}
	line, _ := json.Marshal(p)
	fmt.Fprintf(stdout, "%s\n", line)
	return nil
}

// probeRun is a running probe child.
type probeRun struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   io.Reader
	once  sync.Once
	res   *hostProbe
}

// startProbe starts the probe child, which counts nothing until begin (nil if it could
// not run: the bench goes on without).
func startProbe(exe string, env []string) *probeRun {
	cmd := exec.Command(exe, "bench")
	cmd.Env = append(env, benchProbeEnv+"=1", testBinaryArgsEnv+"=bench")
	stdin, err1 := cmd.StdinPipe()
	out, err2 := cmd.StdoutPipe()
	if err1 != nil || err2 != nil || cmd.Start() != nil {
		return nil
	}
	return &probeRun{cmd: cmd, stdin: stdin, out: out}
}

// begin starts the counting: the window starts.
func (p *probeRun) begin() {
	if p != nil {
		_, _ = io.WriteString(p.stdin, "begin\n")
	}
}

// end stops the probe and returns what it counted (nil without a probe, or if it
// reported nothing); later calls return the same.
func (p *probeRun) end() *hostProbe {
	if p == nil {
		return nil
	}
	p.once.Do(func() {
		p.stdin.Close()
		sc := bufio.NewScanner(p.out)
		for sc.Scan() {
			var h hostProbe
			if json.Unmarshal(sc.Bytes(), &h) == nil && h.Cores > 0 {
				p.res = &h
			}
		}
		_ = p.cmd.Wait()
	})
	return p.res
}
