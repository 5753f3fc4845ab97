//go:build linux && cgo

package app

import (
	"log/slog"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gen2brain/malgo"
)

// When Go is late for a period (here its only P is busy), the sound card plays silence
// for that period and keeps its clock: periods keep coming at the device's pace, none
// waits for Go, and Go takes them again as soon as it can.
func TestHandoffLatePeriodsKeepTheDeviceClock(t *testing.T) {
	d, err := newMalgoAudio([]malgo.Backend{nullBackend}, malgo.Duplex, nil, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Skipf("no null backend: %v", err)
	}
	defer d.Close()
	if d.handoff == nil {
		t.Fatal("the handoff was not installed on miniaudio's device: periods run in malgo's Go callback")
	}
	var played atomic.Int64
	if err := d.Start(nil, func(pcm []int16) {
		played.Add(1)
		for i := range pcm {
			pcm[i] = 1000
		}
	}); err != nil {
		t.Fatal(err)
	}
	waitPlayed := func(what string, n int64) {
		t.Helper()
		from := played.Load()
		for deadline := time.Now().Add(3 * time.Second); played.Load() < from+n; {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d periods played in 3 s, want %d", what, played.Load()-from, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitPlayed("started", 10)
	if n := d.handoff.late(); n != 0 {
		t.Logf("%d periods late before the stall (a busy machine)", n)
	}

	// Starve the handoff's goroutine: one P, held by a loop Go preempts only every 10 ms
	// or so, for 300 ms.
	procs := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(procs)
	lateBefore := d.handoff.late()
	playedBefore := played.Load()
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for until := time.Now().Add(300 * time.Millisecond); time.Now().Before(until); {
		}
	}()
	<-done
	runtime.GOMAXPROCS(procs)
	waitPlayed("after the stall", 10)
	elapsed := time.Since(start)
	late := d.handoff.late() - lateBefore
	taken := played.Load() - playedBefore
	if late == 0 {
		t.Fatalf("no period given up while Go was starved for 300 ms (%d taken)", taken)
	}
	// Each period is either taken by Go or played as silence, on the device's clock:
	// together they cover the time (10 ms periods; the null device is not exact).
	periods := int64(elapsed / devicePeriod)
	if got := taken + int64(late); got < periods*7/10 || got > periods*13/10 {
		t.Errorf("%d periods taken and %d given up in %v: the device's clock gives about %d", taken, late, elapsed.Round(time.Millisecond), periods)
	}
	t.Logf("in %v: %d periods taken by Go, %d played as silence", elapsed.Round(time.Millisecond), taken, late)
}
