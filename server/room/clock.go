package room

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"ringside/media"
	"ringside/server/realtime"
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
	// Realtime runs each shard on a thread of its own under SCHED_DEADLINE (Linux), which
	// sleeps in the kernel to each poll and runs the moment it is due, ahead of every
	// normal thread on the machine: a normal thread waits its turn behind whatever holds
	// the cores (another process, a kernel thread), and its rooms' frames go out late.
	// Where the kernel refuses, the shard runs as without. Set before Run.
	Realtime bool
	// OnRealtime, when set, is told why a shard could not have its real-time thread; it
	// then runs on normal threads. Called once at most.
	OnRealtime func(error)

	shards       []*shard
	next         int
	mu           sync.Mutex
	realtime     atomic.Int32 // shards running on real-time threads
	realtimeOnce sync.Once
	// rescues counts the times a shard serviced a stalled shard's overdue rooms.
	rescues atomic.Uint64
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
	// polled is when the shard's next poll is due (since epoch), kept until that poll
	// ends: a shard rescueAfter past it has stalled, and the others rescue its rooms.
	polled atomic.Int64
}

// rescueAfter is how far past its poll's due time a shard must be before the other shards
// service its overdue rooms. A shard stalls when the kernel takes its thread's core (a
// kernel thread, another process) for milliseconds, or a room's work holds it: its rooms
// would wait for it while another core has time. Under load a poll often starts a
// millisecond or two late, which costs its frames nothing (a frame counts late at 5 ms),
// so a rescue then only moves work; later than that, frames start to be late. A room the
// stalled shard is servicing right then stays with it (Room.tryService).
const rescueAfter = 1500 * time.Microsecond

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
	rt := false
	if c.Realtime {
		if err := realtime.Available(poll, deadlineShare); err != nil {
			c.refused(err)
		} else {
			rt = true
			defer realtime.AddProcs(len(c.shards))()
		}
	}
	for i, s := range c.shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Shards poll at evenly spread phases, so their bursts of I/O take turns on
			// the cores instead of all landing at once.
			c.runShard(ctx, s, poll, start.Add(poll+time.Duration(i)*poll/time.Duration(len(c.shards))), rt)
		}()
	}
	wg.Wait()
}

// Rescues is how many times a shard serviced the overdue rooms of another, stalled one.
func (c *Clock) Rescues() uint64 { return c.rescues.Load() }

func (c *Clock) runShard(ctx context.Context, s *shard, poll time.Duration, next time.Time, rt bool) {
	var wait func(time.Time) bool
	if leave := c.becomeRealtime(poll, rt); leave != nil {
		defer leave()
		sleeper := realtime.NewSleeper(epoch)
		wait = func(t time.Time) bool {
			sleeper.Until(t)
			return ctx.Err() == nil
		}
	} else {
		timer := time.NewTimer(time.Until(next))
		defer timer.Stop()
		wait = func(t time.Time) bool {
			timer.Reset(time.Until(t))
			select {
			case <-ctx.Done():
				return false
			case <-timer.C:
				return true
			}
		}
	}
	s.polled.Store(int64(next.Sub(epoch)))
	var rooms []*Room
	var io []ShardIO
	for wait(next) {
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
			r.tryService(now)
			wake = min(wake, time.Duration(r.due.Load()))
		}
		for _, x := range io {
			x.Flush()
		}
		if c.OnTick != nil {
			c.OnTick(lag, time.Since(start))
		}
		for _, o := range c.shards {
			if o != s {
				rooms, io = c.rescue(o, rooms, io)
			}
		}
		next = next.Add(poll)
		if until := epoch.Add(wake); until.After(next) {
			// Nothing due before until: sleep to the first poll at or after it. A leg
			// joining meanwhile waits for it, a frame at most.
			next = next.Add((until.Sub(next) + poll - 1).Truncate(poll))
		}
		if behind := time.Since(next); behind > 0 {
			// Behind (a long poll, a stalled thread, a suspended machine): the poll just
			// done took every frame due, so the polls missed meanwhile are skipped rather
			// than run back to back with nothing to do.
			next = next.Add((behind + poll - 1).Truncate(poll))
		}
		s.polled.Store(int64(next.Sub(epoch)))
	}
}

// RealtimeShards is how many shards run on real-time threads right now.
func (c *Clock) RealtimeShards() int { return int(c.realtime.Load()) }

// deadlineShare is the part of each poll a shard's real-time thread has reserved. Shards
// are twice the cores, so their reservations come to half the machine: the kernel admits
// reservations up to about 90% of it (on the 2-core development VM, 1.8 cores), which
// leaves room for the bench's generator. A shard with more to do takes the time no
// deadline thread uses.
const deadlineShare = 0.25

// becomeRealtime puts the calling shard goroutine on a real-time thread of its own, if rt
// and the kernel lets it, until leave.
func (c *Clock) becomeRealtime(poll time.Duration, rt bool) (leave func()) {
	if !rt {
		return nil
	}
	leaveThread, err := realtime.Enter(poll, deadlineShare)
	if err != nil {
		c.refused(err)
		return nil
	}
	c.realtime.Add(1)
	return func() {
		c.realtime.Add(-1)
		leaveThread()
	}
}

func (c *Clock) refused(err error) {
	c.realtimeOnce.Do(func() {
		if c.OnRealtime != nil {
			c.OnRealtime(err)
		}
	})
}

// rescue services s's overdue rooms if s has stalled, with rooms and io as scratch.
func (c *Clock) rescue(s *shard, rooms []*Room, io []ShardIO) ([]*Room, []ShardIO) {
	now := time.Since(epoch)
	if now-time.Duration(s.polled.Load()) < rescueAfter || !s.mu.TryLock() {
		return rooms, io
	}
	rooms = append(rooms[:0], s.rooms...)
	io = append(io[:0], s.io...)
	s.mu.Unlock()
	// Only the overdue rooms: a shard late to a poll with nothing due has not stalled
	// anyone, and its shared sockets are left for its next poll.
	overdue := rooms[:0]
	for _, r := range rooms {
		if time.Duration(r.due.Load()) <= now {
			overdue = append(overdue, r)
		}
	}
	if len(overdue) == 0 {
		return rooms, io
	}
	c.rescues.Add(1)
	for _, x := range io {
		x.Receive()
	}
	for _, r := range overdue {
		r.tryService(now)
	}
	for _, x := range io {
		x.Flush()
	}
	return rooms, io
}
