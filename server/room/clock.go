package room

import (
	"context"
	"sync"
	"time"

	"ringside/media"
)

// Clock drives many rooms from one goroutine per shard, rather than a goroutine or timer
// per room or leg: at hundreds of calls the wakeups would cost more than the mixing. Each
// shard polls its rooms every Poll: drains what arrived on shared sockets, then lets every
// room take and send what is due (Room.Service), so a frame waits at most one poll past
// the point its leg's grid set for it.
type Clock struct {
	// Poll is how often a shard services its rooms (default DefaultPoll, at most one
	// frame): a frame waits up to a poll past its due time. A poll costs a wakeup, a pass
	// over the shard's rooms and a drain of its shared sockets. Set before Run.
	Poll time.Duration

	shards []*shard
	next   int
	mu     sync.Mutex
	// OnTick, when set, is told after every poll how late it started and how long it took;
	// metrics hook it. Called from the shard goroutines.
	OnTick func(lag, took time.Duration)
}

// DefaultPoll is a sixteenth of a frame: a frame waits 1.25 ms at most for its room's
// poll. Polls with nothing due are slept through, so an idle server does not wake.
const DefaultPoll = media.FrameDuration / 16

type shard struct {
	mu    sync.Mutex
	rooms []*Room
	io    []ShardIO
}

// ShardIO is I/O shared by the rooms of one shard: legs multiplexed on a few sockets. The
// clock calls Receive before the shard's rooms are serviced (every leg's packets reach its
// jitter buffer) and Flush after (everything the rooms wrote goes out together), so a poll
// costs a few system calls however many legs it carries.
type ShardIO interface {
	Receive()
	Flush()
}

// NewClock makes a clock with n shards (at least one), each polling its rooms in turn.
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
// before the room is driven (its legs' I/O lives there) picks it, then uses AddTo.
func (c *Clock) NextShard() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := c.next % len(c.shards)
	c.next++
	return i
}

// AttachIO has shard i drive io around its polls of its rooms.
func (c *Clock) AttachIO(i int, io ShardIO) {
	s := c.shards[i%len(c.shards)]
	s.mu.Lock()
	s.io = append(s.io, io)
	s.mu.Unlock()
}

// Add starts driving r; rooms are spread over shards round-robin.
func (c *Clock) Add(r *Room) { c.AddTo(c.NextShard(), r) }

// AddTo starts driving r on shard i.
func (c *Clock) AddTo(i int, r *Room) {
	s := c.shards[i%len(c.shards)]
	s.mu.Lock()
	s.rooms = append(s.rooms, r)
	s.mu.Unlock()
}

// Remove stops driving r.
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

// Run polls until ctx ends. A slow poll is caught up by the rooms' own due times (Service):
// a skipped frame would be a gap in the stream, so none is, short of the clock falling
// maxCatchUp frames behind.
func (c *Clock) Run(ctx context.Context) {
	var wg sync.WaitGroup
	start := time.Now()
	poll := c.Poll
	if poll <= 0 {
		poll = DefaultPoll
	}
	poll = min(poll, media.FrameDuration)
	for i, s := range c.shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Shards poll at evenly spread phases, so their bursts of I/O take turns on
			// the cores instead of all landing at once.
			c.runShard(ctx, s, poll, start.Add(poll+time.Duration(i)*poll/time.Duration(len(c.shards))))
		}()
	}
	wg.Wait()
}

func (c *Clock) runShard(ctx context.Context, s *shard, poll time.Duration, next time.Time) {
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
		// Copy under the lock so Add and Remove never wait for a whole poll's I/O.
		s.mu.Lock()
		rooms = append(rooms[:0], s.rooms...)
		io = append(io[:0], s.io...)
		s.mu.Unlock()
		for _, x := range io {
			x.Receive()
		}
		now := time.Since(epoch)
		wake := now + media.FrameDuration
		for _, r := range rooms {
			r.Service(now)
			wake = min(wake, r.wake)
		}
		for _, x := range io {
			x.Flush()
		}
		if c.OnTick != nil {
			c.OnTick(lag, time.Since(start))
		}
		next = next.Add(poll)
		if until := epoch.Add(wake); until.After(next) {
			// Nothing due before until: sleep to the first poll at or after it. A leg
			// joining meanwhile waits for it, a frame at most.
			next = next.Add((until.Sub(next) + poll - 1).Truncate(poll))
		}
		if behind := time.Since(next); behind > media.FrameDuration {
			// Far behind (machine suspended): poll afresh; the rooms catch up.
			next = time.Now().Add(poll)
		}
		timer.Reset(time.Until(next))
	}
}
