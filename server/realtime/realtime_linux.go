package realtime

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Enter puts the calling goroutine's thread under SCHED_DEADLINE with share of every
// period reserved, and keeps the goroutine on it until leave, which gives the thread back
// to normal scheduling and to the runtime. A thread with more work than its share takes
// the time no deadline thread uses (SCHED_FLAG_RECLAIM); threads it starts get normal
// scheduling (SCHED_FLAG_RESET_ON_FORK). On error the goroutine is as before.
func Enter(period time.Duration, share float64) (leave func(), err error) {
	runtime.LockOSThread()
	attr := unix.SchedAttr{
		Policy:   unix.SCHED_DEADLINE,
		Flags:    unix.SCHED_FLAG_RESET_ON_FORK | unix.SCHED_FLAG_RECLAIM,
		Runtime:  uint64(float64(period) * share),
		Deadline: uint64(period),
		Period:   uint64(period),
	}
	if err = unix.SchedSetAttr(0, &attr, 0); err == nil {
		return normal, nil
	}
	runtime.UnlockOSThread()
	switch {
	case errors.Is(err, unix.EPERM):
		return nil, errors.New("not permitted: run as root or grant CAP_SYS_NICE (AmbientCapabilities=CAP_SYS_NICE in a systemd unit), and leave the process on every CPU (no taskset or CPUAffinity=)")
	case errors.Is(err, unix.EBUSY):
		return nil, errors.New("the machine's deadline-scheduling bandwidth is taken (other real-time work, or fewer CPUs than GOMAXPROCS)")
	}
	return nil, err
}

// normal gives the thread its normal scheduling back, and its reservation to the machine,
// before the runtime has it run other goroutines. Left under SCHED_DEADLINE, a thread the
// runtime cannot end (the process's first) would hold its reservation for good.
func normal() {
	attr := unix.SchedAttr{Policy: unix.SCHED_NORMAL}
	if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
		// Still real-time: exiting locked, the goroutine takes the thread along.
		return
	}
	runtime.UnlockOSThread()
}

// Sleeper sleeps the calling thread itself until an instant: the kernel wakes it (and,
// under SCHED_DEADLINE, runs it at once), where a Go timer would wait for whichever
// runtime thread runs timers to be scheduled first.
type Sleeper struct {
	epoch time.Time
	mono  time.Duration // CLOCK_MONOTONIC at epoch
}

// NewSleeper counts instants from epoch.
func NewSleeper(epoch time.Time) *Sleeper {
	var now unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &now)
	return &Sleeper{epoch: epoch, mono: time.Duration(now.Nano()) - time.Since(epoch)}
}

// Until returns at t, at once if t has passed.
func (s *Sleeper) Until(t time.Time) {
	at := unix.NsecToTimespec(int64(s.mono + t.Sub(s.epoch)))
	for unix.ClockNanosleep(unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME, &at, nil) == unix.EINTR {
	}
}

// cpuLatencyQoS is the kernel's CPU latency limit (PM QoS): a process's request stands
// while it keeps the file open with the limit written, in microseconds.
const cpuLatencyQoS = "/dev/cpu_dma_latency"

// HoldWakeLatency asks the kernel to keep every CPU able to wake within limit, until
// release. An idle CPU otherwise goes into its deepest sleep; waking it for a poll costs
// its exit latency, and in a virtual machine a halted CPU waits for the hypervisor to run
// it again: on the 2-core development VM a core stayed idle 5 ms while a shard's thread
// waited to run on it, and the bench's late frames came mostly from such waits. With limit
// 0, idle CPUs poll instead of sleeping, at the cost of power (in a VM, of the host's CPU
// time). The kernel drops the request when the process ends, however it ends.
func HoldWakeLatency(limit time.Duration) (release func(), err error) {
	us := limit.Microseconds()
	if limit < 0 || us > math.MaxInt32 {
		return nil, fmt.Errorf("CPU wake latency %v: give 0 to %v", limit, time.Duration(math.MaxInt32)*time.Microsecond)
	}
	f, err := os.OpenFile(cpuLatencyQoS, os.O_WRONLY, 0)
	switch {
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("not permitted: run as root (%s, the kernel's CPU latency limit, is root's)", cpuLatencyQoS)
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("this kernel takes no CPU latency requests (no %s)", cpuLatencyQoS)
	case err != nil:
		return nil, err
	}
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], uint32(us))
	if _, err := f.Write(b[:]); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", cpuLatencyQoS, err)
	}
	var once sync.Once
	return func() { once.Do(func() { f.Close() }) }, nil
}

// WakeLatency is the CPU latency limit in force: the strictest of every process's
// requests, or the kernel's default (about 2,000 s) when there are none.
func WakeLatency() (time.Duration, error) {
	b, err := os.ReadFile(cpuLatencyQoS)
	if err != nil {
		return 0, err
	}
	if len(b) != 4 {
		return 0, fmt.Errorf("%s: read %d bytes, want 4", cpuLatencyQoS, len(b))
	}
	return time.Duration(int32(binary.NativeEndian.Uint32(b))) * time.Microsecond, nil
}
