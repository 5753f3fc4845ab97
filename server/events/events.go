// Package events carries call and monitor changes from the SIP side to whoever listens
// (the API's event streams today, NATS between nodes later) through a small Publisher.
package events

import (
	"sync"

	"ringside/server/calls"
)

// Type is the SSE event name.
type Type string

const (
	CallStarted    Type = "call.started"
	CallUpdated    Type = "call.updated"
	CallEnded      Type = "call.ended"
	MonitorStarted Type = "monitor.started"
	MonitorUpdated Type = "monitor.updated"
	MonitorEnded   Type = "monitor.ended"
)

// Event is one change. Call is the snapshot after the change; Monitor is set for monitor.*.
type Event struct {
	Type    Type
	Call    calls.Call
	Monitor *calls.Monitor
}

// Publisher is where the SIP side sends changes; it never talks to HTTP clients itself.
type Publisher interface {
	Publish(Event)
}

// Bus is the in-process Publisher: every subscriber gets every event, in order. A
// subscriber that falls behind by a whole buffer loses events rather than stalling calls;
// it is told through Lost so it can resynchronise.
type Bus struct {
	mu   sync.Mutex
	subs map[*Subscription]struct{}
}

// NewBus returns an empty bus.
func NewBus() *Bus { return &Bus{subs: make(map[*Subscription]struct{})} }

// Subscription receives events until Close.
type Subscription struct {
	C    <-chan Event
	c    chan Event
	lost chan struct{}
	bus  *Bus
	once sync.Once
}

// Lost is signalled when events were dropped because the subscriber was too slow.
func (s *Subscription) Lost() <-chan struct{} { return s.lost }

// Close stops delivery and closes C.
func (s *Subscription) Close() {
	s.once.Do(func() {
		s.bus.mu.Lock()
		delete(s.bus.subs, s)
		close(s.c)
		s.bus.mu.Unlock()
	})
}

// Subscribe starts a subscription with room for buffer pending events.
func (b *Bus) Subscribe(buffer int) *Subscription {
	c := make(chan Event, buffer)
	s := &Subscription{C: c, c: c, lost: make(chan struct{}, 1), bus: b}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// Publish delivers e to every subscriber without blocking.
func (b *Bus) Publish(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		select {
		case s.c <- e:
		default:
			select {
			case s.lost <- struct{}{}:
			default:
			}
		}
	}
}
