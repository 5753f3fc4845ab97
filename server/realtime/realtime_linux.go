package realtime

import (
	"errors"
	"runtime"
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
