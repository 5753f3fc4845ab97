package realtime

import (
	"os"
	"testing"
	"time"
)

// TestHoldWakeLatency: a held limit is in force until released, the strictest of
// two holds wins, and releasing the last gives the machine its own limit back.
func TestHoldWakeLatency(t *testing.T) {
	if os.Getenv("RINGSIDE_TEST_REALTIME") == "" {
		t.Skip("the limit is the machine's: make test runs it alone (RINGSIDE_TEST_REALTIME=1)")
	}
	if os.Geteuid() != 0 {
		t.Skip("the CPU latency limit is root's")
	}
	before, err := WakeLatency()
	if err != nil {
		t.Skipf("no CPU latency limit here: %v", err)
	}
	if before <= 50*time.Microsecond {
		t.Skipf("another process holds the CPUs' wake latency at %v already", before)
	}
	if _, err := HoldWakeLatency(-time.Microsecond); err == nil {
		t.Error("HoldWakeLatency(-1µs): no error")
	}
	want := func(what string, d time.Duration) {
		t.Helper()
		if got, err := WakeLatency(); err != nil || got != d {
			t.Errorf("%s: limit %v (%v), want %v", what, got, err, d)
		}
	}
	loose, err := HoldWakeLatency(50 * time.Microsecond)
	if err != nil {
		t.Fatal(err)
	}
	want("50µs held", 50*time.Microsecond)
	strict, err := HoldWakeLatency(0)
	if err != nil {
		t.Fatal(err)
	}
	want("50µs and 0 held", 0)
	strict()
	strict() // twice is harmless
	want("0 released", 50*time.Microsecond)
	loose()
	want("both released", before)
}
