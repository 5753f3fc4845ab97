package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseSSE(t *testing.T) {
	in := ": ping\n\nevent: call.started\ndata: {\"id\":\"a\"}\n\nevent:call.updated\r\ndata: {\"id\":\r\ndata: \"b\"}\r\n\r\nevent: empty\n\ndata: plain\n\n"
	var got []Event
	err := parseSSE(strings.NewReader(in), func(e Event) bool { got = append(got, e); return true }, func() {})
	if err != nil {
		t.Fatal(err)
	}
	want := []Event{
		{Type: "call.started", Data: json.RawMessage(`{"id":"a"}`)},
		{Type: "call.updated", Data: json.RawMessage("{\"id\":\n\"b\"}")},
		{Type: "message", Data: json.RawMessage("plain")},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d events %q, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i].Type != want[i].Type || string(got[i].Data) != string(want[i].Data) {
			t.Errorf("event %d = %s %q, want %s %q", i, got[i].Type, got[i].Data, want[i].Type, want[i].Data)
		}
	}
}

// TestEventsReconnect runs the stream against a server that drops the first connection,
// then forgets the token (as a restart does), then keeps the stream open.
func TestEventsReconnect(t *testing.T) {
	var (
		mu     sync.Mutex
		conns  int
		logins int
	)
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/login", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		logins++
		n := logins
		mu.Unlock()
		fmt.Fprintf(w, `{"token":"t%d","user":{"name":"sam","ext":"2001","role":"supervisor","permissions":["call","monitor"]},"sip":{"server":"127.0.0.1:5060","domain":"127.0.0.1:5060"}}`, n)
	})
	mux.HandleFunc("GET /api/events", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conns++
		n, tok := conns, r.Header.Get("Authorization")
		mu.Unlock()
		switch {
		case n == 2:
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintln(w, `{"error":"your session has expired or was ended; log in again"}`)
			return
		case n > 2 && tok != "Bearer t2":
			t.Errorf("connection %d with %q, want the new token", n, tok)
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "event: call.started\ndata: {\"id\":\"c%d\"}\n\n", n)
		w.(http.Flusher).Flush()
		if n == 1 {
			return // drop the stream
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(release)

	c := NewClient(srv.URL)
	defer c.Close()
	c.backoffMin, c.backoffMax = 10*time.Millisecond, 50*time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Login(ctx, "sam", "pw"); err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	events := c.Events(sctx)
	var got []string
	for ev := range events {
		s := ev.Type
		if len(ev.Data) > 0 {
			var v struct{ ID string }
			json.Unmarshal(ev.Data, &v)
			s += " " + v.ID
		}
		got = append(got, s)
		if s == "call.started c3" {
			stop()
		}
	}
	want := []string{"stream.connected", "call.started c1", "stream.lost", "stream.connected", "call.started c3"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("events\n got %q\nwant %q", got, want)
	}
	if logins != 2 {
		t.Errorf("%d logins, want 2 (one again after the 401)", logins)
	}
}

// TestEventsIdleTimeout: a stream that goes silent past the pings is dropped.
func TestEventsIdleTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	c := NewClient(srv.URL)
	defer c.Close()
	c.idleTimeout = 50 * time.Millisecond
	c.backoffMin = 10 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var types []string
	for ev := range c.Events(ctx) {
		types = append(types, ev.Type)
		if len(types) == 3 {
			cancel()
		}
	}
	if strings.Join(types[:3], ",") != "stream.connected,stream.lost,stream.connected" {
		t.Errorf("events %q", types)
	}
}
