// Package realtime puts a goroutine on a thread of its own that the kernel runs on time:
// under SCHED_DEADLINE (Linux) it runs the moment it wakes, ahead of every normal thread
// on the machine, where a normal thread waits its turn behind whatever holds the cores
// (another process, a kernel thread). HoldWakeLatency keeps idle CPUs from sleeping so deep
// that waking one for a poll takes milliseconds.
//
// Deadline, not SCHED_FIFO: a FIFO thread that spins in the Go runtime waiting for a
// normal thread on its core (the garbage collector holding its goroutine's status while it
// scans the stack, say) starves that thread, and so itself, until the kernel's real-time
// throttling steps in after 950 ms; the bench saw stalls of 600–900 ms. A deadline thread
// spins away its reservation at most, and the other thread runs.
package realtime

import (
	"runtime"
	"sync"
	"time"
)

// Available says whether Enter would succeed, trying it on a thread that then ends.
func Available(period time.Duration, share float64) error {
	done := make(chan error)
	go func() {
		leave, err := Enter(period, share)
		if err == nil {
			leave()
		}
		done <- err
	}()
	return <-done
}

var procsMu sync.Mutex

// AddProcs gives the runtime n more Ps, one for each goroutine about to Enter: a
// real-time thread holds its P through its work and across its sleeps (system calls)
// unless the runtime hands it on, so it never waits for a P on waking and other goroutines
// never wait for its. The func it returns takes them back.
func AddProcs(n int) func() {
	procsMu.Lock()
	runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + n)
	procsMu.Unlock()
	return func() {
		procsMu.Lock()
		runtime.GOMAXPROCS(max(1, runtime.GOMAXPROCS(0)-n))
		procsMu.Unlock()
	}
}
