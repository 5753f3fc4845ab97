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
	io    []ShardIO
}

// ShardIO is I/O shared by the rooms of one shard: legs multiplexed on a few sockets. The
// clock calls Receive before the shard's rooms tick (every leg's packets reach its jitter
// buffer) and Flush after (everything the rooms wrote goes out together), so a tick costs a
// few system calls however many legs it carries.
type ShardIO interface {
	Receive()
	Flush()
}

// NewClock makes a clock with n shards (at least one), each ticking its rooms in turn.
func NewClock(n int) *Clock {
	c := &Clock{shards: make([]*shard, max(n, 1))}
	for i := range c.shards {
		c.shards[i] = &shard{}
	}
	return c
}

// Shards is how many shards the clock has.
func (c *Clock) Shards() int { return len(c.shards) }

// NextShard picks the shard for a new room, round-robin: a caller that must know the shard
// before the room starts ticking (its legs' I/O lives there) picks it, then uses AddTo.
func (c *Clock) NextShard() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := c.next % len(c.shards)
	c.next++
	return i
}

// AttachIO has shard i drive io around its rooms' ticks.
func (c *Clock) AttachIO(i int, io ShardIO) {
	s := c.shards[i%len(c.shards)]
	s.mu.Lock()
	s.io = append(s.io, io)
	s.mu.Unlock()
}

// Add starts ticking r; rooms are spread over shards round-robin.
func (c *Clock) Add(r *Room) { c.AddTo(c.NextShard(), r) }

// AddTo starts ticking r on shard i.
func (c *Clock) AddTo(i int, r *Room) {
	s := c.shards[i%len(c.shards)]
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
	var io []ShardIO
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
		io = append(io[:0], s.io...)
		s.mu.Unlock()
		for _, x := range io {
			x.Receive()
		}
		for _, r := range rooms {
			r.Tick()
		}
		for _, x := range io {
			x.Flush()
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
