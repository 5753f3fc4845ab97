package room

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"

	"ringside/media"
	"ringside/server/realtime"
)

// hog keeps every core busy with shell loops at the highest niceness the test may set:
// other work on the media server's machine (a backup, a build, a runaway process).
func hog(t *testing.T) {
	t.Helper()
	nice := "-20"
	if syscall.Geteuid() != 0 {
		nice = "0"
	}
	script := ""
	for range 2 * runtime.NumCPU() {
		script += "nice -n " + nice + " sh -c 'while :; do :; done' & "
	}
	cmd := exec.Command("sh", "-c", script+"wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("busy loops: %v", err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	time.Sleep(100 * time.Millisecond) // every loop running
}

// lateFrames runs calls on a clock for window and counts the frames its legs were sent
// more than 5 ms after the 20 ms beat, of all they were sent.
func lateFrames(t *testing.T, realtime bool, window time.Duration) (late, frames int, worst time.Duration) {
	c := NewClock(2)
	c.Realtime = realtime
	c.OnRealtime = func(err error) { t.Errorf("real-time clock refused: %v", err) }
	var legs []*timesheet
	for range 8 {
		r := New("call")
		for _, role := range []Role{Customer, Agent} {
			// Room for every frame of the run: the test allocates nothing meanwhile, so no
			// collection (whose pauses wait for normal threads too) falls in the window.
			w := &timesheet{at: make([]time.Time, 0, 1024)}
			if err := r.Join(NewLeg(role.String(), role, media.PCMU, w, "")); err != nil {
				t.Fatal(err)
			}
			legs = append(legs, w)
		}
		c.Add(r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		c.Run(ctx)
		close(done)
	}()
	if realtime {
		// The shards start on normal threads, behind the busy loops, until they are in.
		for start := time.Now(); c.RealtimeShards() != c.Shards(); time.Sleep(10 * time.Millisecond) {
			if time.Since(start) > 5*time.Second {
				t.Fatalf("%d of %d shards on real-time threads after 5 s", c.RealtimeShards(), c.Shards())
			}
		}
	}
	time.Sleep(200 * time.Millisecond) // every leg paced
	from := time.Now()
	time.Sleep(window)
	to := time.Now()
	cancel()
	<-done
	for _, w := range legs {
		w.mu.Lock()
		var last time.Time
		for _, at := range w.at {
			if at.Before(from) || at.After(to) {
				continue
			}
			if !last.IsZero() {
				gap := at.Sub(last)
				worst = max(worst, gap)
				if gap > media.FrameDuration+5*time.Millisecond {
					late++
				}
				frames++
			}
			last = at
		}
		w.mu.Unlock()
	}
	return late, frames, worst
}

func TestRealtimeClockSendsOnTimeWhileOtherWorkHoldsTheCores(t *testing.T) {
	if os.Getenv("RINGSIDE_TEST_REALTIME") == "" {
		t.Skip("keeps every core busy, which would starve the tests running beside it: make test runs it alone (RINGSIDE_TEST_REALTIME=1)")
	}
	if err := realtime.Available(DefaultPoll, deadlineShare); err != nil {
		t.Skipf("this machine refuses real-time threads: %v", err)
	}
	hog(t)
	const window = 2 * time.Second
	normalLate, normalFrames, normalWorst := lateFrames(t, false, window)
	late, frames, worst := lateFrames(t, true, window)
	ratio := func(late, frames int) string {
		return fmt.Sprintf("%d of %d (%.2f %%)", late, frames, 100*float64(late)/float64(max(frames, 1)))
	}
	t.Logf("busy cores: normal threads sent %s frames late, the worst gap %v; real-time threads %s, the worst gap %v",
		ratio(normalLate, normalFrames), normalWorst, ratio(late, frames), worst)
	if want := int(window / media.FrameDuration * 16 * 9 / 10); frames < want {
		t.Fatalf("real-time clock sent %d frames in %v on 16 legs, want at least %d", frames, window, want)
	}
	if normalLate*50 < normalFrames {
		t.Fatalf("normal threads sent only %s frames late under the busy loops: the load shows nothing", ratio(normalLate, normalFrames))
	}
	// Normal threads sent 4.5–35 % late in 28 runs; real-time ones none in most, and in a
	// few one room's frames once, after a wait of 40–240 ms not yet explained.
	if late*100 > frames || late*10 > normalLate {
		t.Errorf("real-time clock sent %s frames more than 5 ms late, want under 1 %% and a tenth of the normal threads' %s",
			ratio(late, frames), ratio(normalLate, normalFrames))
	}
}
