package room

import (
	"context"
	"sync"
	"time"

	"ringside/media"
)

// Clock drives the 20 ms tick of many rooms from one goroutine per shard, rather than a
// goroutine or timer per room or leg: at hundreds of calls the wakeups would cost more
// than the mixing.
type Clock struct {
	shards []*shard
	next   int
	mu     sync.Mutex
	// OnTick, when set, is told after every tick how late it started and how long it took;
	// metrics hook it. Called from the shard goroutines.
	OnTick func(lag, took time.Duration)
}

type shard struct {
	mu    sync.Mutex
	rooms []*Room
}

// NewClock makes a clock with n shards (at least one), each ticking its rooms in turn.
func NewClock(n int) *Clock {
	c := &Clock{shards: make([]*shard, max(n, 1))}
	for i := range c.shards {
		c.shards[i] = &shard{}
	}
	return c
}

// Add starts ticking r; rooms are spread over shards round-robin.
func (c *Clock) Add(r *Room) {
	c.mu.Lock()
	s := c.shards[c.next%len(c.shards)]
	c.next++
	c.mu.Unlock()
	s.mu.Lock()
	s.rooms = append(s.rooms, r)
	s.mu.Unlock()
}

// Remove stops ticking r.
func (c *Clock) Remove(r *Room) {
	for _, s := range c.shards {
		s.mu.Lock()
		for i, o := range s.rooms {
			if o == r {
				s.rooms = append(s.rooms[:i], s.rooms[i+1:]...)
				s.mu.Unlock()
				return
			}
		}
		s.mu.Unlock()
	}
}

// Run ticks until ctx ends. Each shard keeps its own deadline so a slow tick is caught up
// (never skipped): a skipped tick would be a gap in every stream.
func (c *Clock) Run(ctx context.Context) {
	var wg sync.WaitGroup
	start := time.Now()
	for i, s := range c.shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Shards tick at evenly spread phases, so their bursts of I/O take turns on
			// the cores instead of all landing at once.
			c.runShard(ctx, s, start.Add(media.FrameDuration+time.Duration(i)*media.FrameDuration/time.Duration(len(c.shards))))
		}()
	}
	wg.Wait()
}

func (c *Clock) runShard(ctx context.Context, s *shard, next time.Time) {
	timer := time.NewTimer(time.Until(next))
	defer timer.Stop()
	var rooms []*Room
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		start := time.Now()
		lag := start.Sub(next)
		// Copy under the lock so Add and Remove never wait for a whole tick's I/O.
		s.mu.Lock()
		rooms = append(rooms[:0], s.rooms...)
		s.mu.Unlock()
		for _, r := range rooms {
			r.Tick()
		}
		if c.OnTick != nil {
			c.OnTick(lag, time.Since(start))
		}
		next = next.Add(media.FrameDuration)
		if behind := time.Since(next); behind > 10*media.FrameDuration {
			// Hopelessly behind (machine suspended): start afresh rather than burst.
			next = time.Now().Add(media.FrameDuration)
		}
		timer.Reset(time.Until(next))
	}
}
