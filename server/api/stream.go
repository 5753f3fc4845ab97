package api

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"

	"ringside/server/calls"
	"ringside/server/events"
	"ringside/server/store"
)

// eventStream is GET /api/events: server-sent events, each filtered for the caller by the
// views. On connect, and again whenever the bus reports lost events, the stream first sends
// the visible active calls as call.started, so a client that (re)connects is in step.
func (a *API) eventStream(w http.ResponseWriter, r *http.Request, u store.User) error {
	token, _ := bearerToken(r)
	if !a.startStream() {
		return errShuttingDown
	}
	defer a.streams.Done()
	sub := a.cfg.Events.Subscribe(streamBuffer)
	defer sub.Close()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // tells nginx-style proxies not to hold events back
	w.WriteHeader(http.StatusOK)

	s := &stream{a: a, w: w, rc: http.NewResponseController(w), user: u, sent: make(map[string]sentCall)}
	// Events queued from here on are replayed after the snapshot; replayed in order, they
	// end at the newest state, and unchanged calls are not sent twice.
	if err := s.snapshot(); err != nil {
		return nil
	}
	if err := s.rc.Flush(); err != nil { // the headers, even with no call to show yet
		return nil
	}
	a.log.Debug("event stream opened", "user", u.Name)
	defer a.log.Debug("event stream closed", "user", u.Name)

	ping := time.NewTicker(a.pingEvery)
	defer ping.Stop()
	notifyChanged := a.notifyWatch()
	skip := 0
	for {
		var err error
		select {
		case <-a.done:
			return nil
		case <-r.Context().Done():
			return nil
		case <-ping.C:
			if _, ok := a.sessions.lookup(token, a.now()); !ok {
				return nil // logged out or expired: the client must log in again
			}
			err = s.send([]byte(": ping\n\n"))
		case <-notifyChanged:
			notifyChanged = a.notifyWatch()
			err = s.refresh()
		case <-sub.Lost():
			// The events still queued are older than the snapshot taken now, and some
			// after them are gone: skip them and start again from the snapshot.
			skip = len(sub.C)
			err = s.snapshot()
		case e, ok := <-sub.C:
			if !ok {
				return nil
			}
			if skip > 0 {
				skip--
				continue
			}
			err = s.event(e)
		}
		if err != nil {
			if !errors.Is(err, errEncode) {
				return nil // the client has gone
			}
			a.log.Error("event stream", "user", u.Name, "err", err)
		}
	}
}

// stream is one client's event stream.
type stream struct {
	a    *API
	w    http.ResponseWriter
	rc   *http.ResponseController
	user store.User
	// sent holds, per call the client knows, the last call sent and its data: unchanged
	// calls are not sent again (a monitor joining must not even show as an empty
	// call.updated to an agent who may not know), and a resync can end the calls that ended
	// unseen.
	sent map[string]sentCall
}

type sentCall struct {
	call calls.Call
	data []byte
}

var errEncode = errors.New("encode event")

// snapshot sends every visible active call as call.started, oldest first, and call.ended
// for calls the client knows that are no longer active.
func (s *stream) snapshot() error {
	active := slices.Clone(s.a.cfg.Calls.Active())
	sortCalls(active)
	live := make(map[string]bool, len(active))
	notify := s.a.notify.Load()
	for _, c := range active {
		if !calls.CanSee(s.user, c) {
			continue
		}
		live[c.ID] = true
		if err := s.callEvent(events.CallStarted, c, notify, true); err != nil {
			return err
		}
	}
	for id, sc := range s.sent {
		if live[id] {
			continue
		}
		ended := sc.call
		if c, ok := s.a.cfg.Calls.Call(id); ok && c.State == calls.StateEnded {
			ended = c
		} else {
			now := s.a.now()
			ended.State, ended.EndedAt, ended.Monitors = calls.StateEnded, &now, nil
		}
		if err := s.callEvent(events.CallEnded, ended, notify, true); err != nil {
			return err
		}
	}
	return nil
}

// refresh sends call.updated for the user's own calls when notify-agent-on-monitor has
// changed: the only views that depend on it.
func (s *stream) refresh() error {
	notify := s.a.notify.Load()
	known := make([]calls.Call, 0, len(s.sent))
	for _, sc := range s.sent {
		if isAgentOf(s.user, sc.call) && !calls.SeesMonitors(s.user) {
			known = append(known, sc.call)
		}
	}
	sortCalls(known)
	for _, c := range known {
		if err := s.callEvent(events.CallUpdated, c, notify, false); err != nil {
			return err
		}
	}
	return nil
}

// event sends e if, and as far as, the user may see it.
func (s *stream) event(e events.Event) error {
	notify := s.a.notify.Load()
	switch e.Type {
	case events.CallStarted, events.CallUpdated, events.CallEnded:
		return s.callEvent(e.Type, e.Call, notify, false)
	case events.MonitorStarted, events.MonitorUpdated, events.MonitorEnded:
		if sc, known := s.sent[e.Call.ID]; known {
			sc.call = e.Call // newer monitors for refresh and resync; what was sent stays
			s.sent[e.Call.ID] = sc
		}
		v, ok := viewMonitorEvent(s.user, e, notify)
		if !ok {
			return nil
		}
		data, err := json.Marshal(v)
		if err != nil {
			return errors.Join(errEncode, err)
		}
		return s.write(e.Type, data)
	}
	return nil
}

// callEvent sends c as typ. Unless force, it leaves out a call that has not changed for
// this user since it was last sent, and the end of a call the client never saw.
func (s *stream) callEvent(typ events.Type, c calls.Call, notify, force bool) error {
	if !calls.CanSee(s.user, c) {
		return nil
	}
	data, err := json.Marshal(viewCall(s.user, c, notify))
	if err != nil {
		return errors.Join(errEncode, err)
	}
	prev, known := s.sent[c.ID]
	if typ == events.CallEnded {
		if !known && !force {
			return nil
		}
		delete(s.sent, c.ID)
	} else {
		if known && !force && bytes.Equal(prev.data, data) {
			return nil
		}
		s.sent[c.ID] = sentCall{call: c, data: data}
	}
	return s.write(typ, data)
}

// sortCalls orders calls oldest first, as GET /api/calls lists them.
func sortCalls(cs []calls.Call) {
	slices.SortFunc(cs, func(x, y calls.Call) int {
		return cmp.Or(x.StartedAt.Compare(y.StartedAt), cmp.Compare(x.ID, y.ID))
	})
}

func (s *stream) write(typ events.Type, data []byte) error {
	b := make([]byte, 0, len("event: \ndata: \n\n")+len(typ)+len(data))
	b = append(b, "event: "...)
	b = append(b, typ...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	b = append(b, "\n\n"...)
	return s.send(b)
}

// send writes b and flushes it, giving up on a client that does not read for
// streamWriteWait.
func (s *stream) send(b []byte) error {
	// Streams live longer than any server-wide write timeout; each write gets its own.
	if err := s.rc.SetWriteDeadline(time.Now().Add(streamWriteWait)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	if _, err := s.w.Write(b); err != nil {
		return err
	}
	return s.rc.Flush()
}
