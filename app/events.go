package app

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"
)

// Event is one server-sent event: its type (call.started, monitor.updated, ...) and its
// JSON data.
type Event struct {
	Type string
	Data json.RawMessage
}

// Event types of the server (DESIGN.md) and the two the client adds about the stream
// itself.
const (
	EventCallStarted    = "call.started"
	EventCallUpdated    = "call.updated"
	EventCallEnded      = "call.ended"
	EventMonitorStarted = "monitor.started"
	EventMonitorUpdated = "monitor.updated"
	EventMonitorEnded   = "monitor.ended"

	// EventStreamConnected is sent each time the stream (re)connects; the server then
	// starts with a snapshot of the active calls as call.started.
	EventStreamConnected = "stream.connected"
	// EventStreamLost is sent when the stream drops; reconnecting follows, with back-off.
	EventStreamLost = "stream.lost"
)

// Events streams GET /api/events until ctx ends, then closes the channel. A dropped
// stream is reconnected with back-off (from half a second up to 15 s, reset once
// connected); a server that forgot the token (restart) gets a fresh login. Each
// (re)connection is announced with EventStreamConnected, each drop with
// EventStreamLost.
func (c *Client) Events(ctx context.Context) <-chan Event {
	out := make(chan Event, 64)
	go func() {
		defer close(out)
		delay := c.backoffMin
		for {
			connected, err := c.streamOnce(ctx, out)
			if ctx.Err() != nil {
				return
			}
			_ = err // the next attempt says more; the UI shows "reconnecting"
			if connected {
				delay = c.backoffMin
				select {
				case out <- Event{Type: EventStreamLost}:
				case <-ctx.Done():
					return
				}
			}
			// ±20 % jitter, so a restarted server is not hit by every softphone at once.
			d := time.Duration(float64(delay) * (0.8 + 0.4*rand.Float64()))
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			delay = min(2*delay, c.backoffMax)
		}
	}()
	return out
}

// streamOnce runs one connection of the event stream; connected tells whether it got as
// far as the server's 200.
func (c *Client) streamOnce(ctx context.Context, out chan<- Event) (connected bool, err error) {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	token := c.Token()
	res, err := c.send(cctx, c.sc, http.MethodGet, "/api/events", nil, token)
	if err != nil {
		return false, err
	}
	if res.StatusCode == http.StatusUnauthorized {
		res.Body.Close()
		if err := c.relogin(ctx, token); err != nil {
			return false, err
		}
		if res, err = c.send(cctx, c.sc, http.MethodGet, "/api/events", nil, c.Token()); err != nil {
			return false, err
		}
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return false, fmt.Errorf("event stream: %s", res.Status)
	}
	select {
	case out <- Event{Type: EventStreamConnected}:
	case <-ctx.Done():
		return true, ctx.Err()
	}
	// A stream that stays silent past the server's pings is dead (a half-open TCP
	// connection after a network change): drop it and reconnect.
	idle := time.AfterFunc(c.idleTimeout, cancel)
	defer idle.Stop()
	return true, parseSSE(res.Body, func(ev Event) bool {
		select {
		case out <- ev:
			return true
		case <-cctx.Done():
			return false
		}
	}, func() { idle.Reset(c.idleTimeout) })
}

// parseSSE reads server-sent events (the text/event-stream format: "event:" and "data:"
// fields, comments starting with ':', a blank line ending each event) and hands each
// event to emit until emit returns false or the stream ends. alive is called on every
// line, pings included.
func parseSSE(r interface{ Read([]byte) (int, error) }, emit func(Event) bool, alive func()) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	var (
		typ  string
		data strings.Builder
		has  bool
	)
	for sc.Scan() {
		alive()
		line := sc.Text()
		if line == "" {
			if has {
				t := typ
				if t == "" {
					t = "message"
				}
				if !emit(Event{Type: t, Data: json.RawMessage(data.String())}) {
					return nil
				}
			}
			typ, has = "", false
			data.Reset()
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue // comment (ping)
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			typ = value
		case "data":
			if has {
				data.WriteByte('\n')
			}
			data.WriteString(value)
			has = true
		}
	}
	return sc.Err()
}
