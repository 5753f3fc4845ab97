package room

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ringside/media"
)

// timesheet is a FrameWriter that keeps when each frame was sent. Armed, it holds the next
// write for a while: the room's shard stalls in the middle of its poll, as when the kernel
// takes its thread's core.
type timesheet struct {
	mu    sync.Mutex
	at    []time.Time
	stall chan time.Duration
}

func (w *timesheet) WriteFrame([]byte) error {
	select {
	case d := <-w.stall:
		time.Sleep(d)
	default:
	}
	w.mu.Lock()
	w.at = append(w.at, time.Now())
	w.mu.Unlock()
	return nil
}

// longestGap is the longest wait between two frames sent within [from, to].
func (w *timesheet) longestGap(from, to time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var gap time.Duration
	last := from
	for _, t := range w.at {
		if t.Before(from) {
			continue
		}
		if t.After(to) {
			break
		}
		gap = max(gap, t.Sub(last))
		last = t
	}
	return max(gap, to.Sub(last))
}

// sockets stands for a shard's shared sockets: it counts the drains and flushes.
type sockets struct{ received, flushed atomic.Int32 }

func (s *sockets) Receive() { s.received.Add(1) }
func (s *sockets) Flush()   { s.flushed.Add(1) }

func TestClockRescuesTheRoomsOfAStalledShard(t *testing.T) {
	c := NewClock(2)
	shared := &sockets{}
	c.AttachIO(0, shared)
	call := func(shard int) (customer, agent *timesheet) {
		r := New("call")
		customer, agent = &timesheet{stall: make(chan time.Duration, 1)}, &timesheet{stall: make(chan time.Duration, 1)}
		for _, l := range []*Leg{
			NewLeg("customer", Customer, media.PCMU, customer, ""),
			NewLeg("agent", Agent, media.PCMU, agent, ""),
		} {
			if err := r.Join(l); err != nil {
				t.Fatal(err)
			}
		}
		c.AddTo(shard, r)
		return customer, agent
	}
	_, stuck := call(0)
	var bystanders []*timesheet
	for range 3 {
		customer, agent := call(0)
		bystanders = append(bystanders, customer, agent)
		call(1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		c.Run(ctx)
		close(done)
	}()
	defer func() { cancel(); <-done }()

	time.Sleep(200 * time.Millisecond) // every leg paced
	const stall = 300 * time.Millisecond
	from := time.Now()
	stuck.stall <- stall
	// The stall begins at the stuck room's next frame, within a period. Well inside it, the
	// shard's goroutine is held in the room between its Receive and its Flush: drains and
	// flushes of its sockets then are the rescues', which take its legs' packets in and
	// send what its rooms wrote.
	time.Sleep(50 * time.Millisecond)
	received, flushed := shared.received.Load(), shared.flushed.Load()
	time.Sleep(200 * time.Millisecond)
	received, flushed = shared.received.Load()-received, shared.flushed.Load()-flushed
	time.Sleep(stall - 200*time.Millisecond)
	to := time.Now()
	if received < 3 || flushed < 3 {
		t.Errorf("the stalled shard's sockets were drained %d and flushed %d times in 200 ms of its stall, want a rescue's drain and flush every period or so", received, flushed)
	}

	if gap := stuck.longestGap(from, to); gap < stall {
		t.Fatalf("the stalled room's longest gap is %v, want the %v stall: the test did not stall its shard", gap, stall)
	}
	// A frame every 20 ms; the rescue comes 1.5 ms after a poll was due and up to a poll
	// later. The margin is for a loaded test machine; without a rescue the gap is the stall.
	for i, w := range bystanders {
		if gap := w.longestGap(from, to); gap > 100*time.Millisecond {
			t.Errorf("leg %d of a call on the stalled shard waited %v for a frame, want at most a few periods", i, gap)
		}
	}
	if c.Rescues() == 0 {
		t.Error("Rescues() = 0 after a shard stalled")
	}
}
