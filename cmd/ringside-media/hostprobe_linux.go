//go:build linux

package main

import (
	"errors"
	"math"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const probeCoresMax = 8

// probeCores runs one pinned thread per core of this process's set (up to
// probeCoresMax), each sleeping with the kernel's absolute timer to the same instants,
// until stop closes; lags[core][i] is how late the i-th instant after begin closed woke
// that core's thread.
func probeCores(begin, stop <-chan struct{}) ([][]time.Duration, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, err
	}
	var cores []int
	// At most probeCoresMax: on a large machine a sample of cores tells the host's
	// stalls as well, for less of its time.
	for cpu := 0; cpu < len(set)*64 && len(cores) < probeCoresMax; cpu++ {
		if set.IsSet(cpu) {
			cores = append(cores, cpu)
		}
	}
	if len(cores) == 0 {
		return nil, errors.New("no cores")
	}
	runtime.GOMAXPROCS(len(cores) + 1) // a P for every probe thread, and one to spare
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return nil, err
	}
	start := ts.Nano() + int64(10*time.Millisecond)
	// Every thread counts from the same instant, the first after begin: the cores'
	// lags stay aligned, instant by instant.
	var from atomic.Int64
	from.Store(math.MaxInt64)
	go func() {
		select {
		case <-begin:
			var now unix.Timespec
			_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &now)
			from.Store(max(0, (now.Nano()-start)/int64(probeEvery)+1))
		case <-stop:
		}
	}()
	lags := make([][]time.Duration, len(cores))
	errs := make([]error, len(cores))
	var wg sync.WaitGroup
	for i, core := range cores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			var one unix.CPUSet
			one.Set(core)
			if err := unix.SchedSetaffinity(0, &one); err != nil {
				errs[i] = err
				return
			}
			lag := make([]time.Duration, 0, 1<<16)
			for k := int64(0); ; k++ {
				select {
				case <-stop:
					lags[i] = lag
					return
				default:
				}
				due := start + k*int64(probeEvery)
				at := unix.NsecToTimespec(due)
				// A raw call: the thread has a P of its own, so it skips the scheduler's
				// hand-off, which would cost more than the sleep.
				for {
					_, _, errno := unix.RawSyscall6(unix.SYS_CLOCK_NANOSLEEP, unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME,
						uintptr(unsafe.Pointer(&at)), 0, 0, 0)
					if errno != unix.EINTR {
						break
					}
				}
				var now unix.Timespec
				_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &now)
				if k >= from.Load() {
					lag = append(lag, time.Duration(now.Nano()-due))
				}
			}
		}()
	}
	wg.Wait()
	return lags, errors.Join(errs...)
}

// niceProcess sets every thread of this process to niceness n. Linux keeps niceness per
// thread: setpriority on the process's ID would change its first thread only, and the
// threads started later inherit from the thread that starts them. A second pass catches a
// thread started from one the first pass had not reached.
func niceProcess(n int) error {
	for range 2 {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			if err := unix.Setpriority(unix.PRIO_PROCESS, tid, n); err != nil && !errors.Is(err, unix.ESRCH) {
				return err
			}
		}
	}
	return nil
}
