//go:build !linux

package realtime

import (
	"errors"
	"time"
)

// Enter fails: real-time threads are Linux's SCHED_DEADLINE.
func Enter(time.Duration, float64) (leave func(), err error) {
	return nil, errors.New("real-time threads need Linux (SCHED_DEADLINE)")
}

// Sleeper sleeps until an instant; off Linux nothing Enters, so a timer does.
type Sleeper struct{}

// NewSleeper counts instants from epoch.
func NewSleeper(time.Time) *Sleeper { return &Sleeper{} }

// Until returns at t, at once if t has passed.
func (*Sleeper) Until(t time.Time) { time.Sleep(time.Until(t)) }

// HoldWakeLatency fails: the CPU latency limit is Linux's (PM QoS).
func HoldWakeLatency(time.Duration) (release func(), err error) {
	return nil, errors.New("a CPU wake latency limit needs Linux (/dev/cpu_dma_latency)")
}

// WakeLatency fails: the CPU latency limit is Linux's.
func WakeLatency() (time.Duration, error) {
	return 0, errors.New("no CPU latency limit off Linux")
}
