package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"ringside/server/calls"
	"ringside/server/events"
	"ringside/server/store"
)

// fuzzRoutes are the API's JSON bodies a client controls, each sent as the user who may
// send it (so the body is actually read): bad JSON must come back as a 4xx, never a 5xx
// or a panic.
var fuzzRoutes = []struct {
	user, method, path string
}{
	{"", "POST", "/api/login"},
	{"sue", "POST", "/api/calls/c-red/monitor"},
	{"ada", "POST", "/api/calls/c-blue/monitor"},
	{"sue", "PUT", "/api/monitors/m-red-1"},
	{"ada", "PUT", "/api/settings"},
	{"ada", "POST", "/api/users"},
	{"ada", "PUT", "/api/users/bob"},
}

func FuzzAPIJSON(f *testing.F) {
	ctx := context.Background()
	// A store of its own, with cheap password hashes: the fuzzer finds valid logins and
	// new users quickly, and the production hash cost would make every such exec slow.
	st, err := store.OpenWith(ctx, f.TempDir(), store.Options{PasswordIterations: 1})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	for _, u := range testUsers {
		if _, err := st.AddUser(ctx, u); err != nil {
			f.Fatal(err)
		}
	}
	bus := events.NewBus()
	fc := &fakeCalls{calls: make(map[string]calls.Call), bus: bus}
	for _, c := range testCalls() {
		fc.calls[c.ID] = c
	}
	a := New(Config{Store: st, Calls: fc, Events: bus, SIPHost: "127.0.0.1:5060", TokenTTL: time.Hour})
	a.throttle.base = 0 // no waiting after failed logins
	f.Cleanup(a.Close)
	tokens := map[string]string{}
	for _, u := range testUsers {
		tok, _, err := a.sessions.create(u.Name, time.Now(), time.Hour)
		if err != nil {
			f.Fatal(err)
		}
		tokens[u.Name] = tok
	}
	if _, ok := fc.Monitor("m-red-1"); !ok {
		fc.addMonitor("c-red", "m-red-1", "sue", "2001", "listen")
	}

	seeds := []string{
		`{"user":"alice","password":"alice-pw"}`, `{"user":"alice","password":"nope"}`,
		`{"mode":"listen"}`, `{"mode":"whisper"}`, `{"mode":"barge"}`, `{"mode":"shout"}`,
		`{"notify_agent_on_monitor":true}`, `{"notify_agent_on_monitor":"yes"}`,
		`{"name":"zed","ext":"1009","password":"zed-password","role":"agent","teams":["red"]}`,
		`{"role":"supervisor","teams":[]}`, `{"password":""}`,
		``, `null`, `[]`, `{`, `{"mode":null}`, `{"mode":"listen"}{"mode":"barge"}`,
		`{"user":1e999}`, "{\"user\":\"\xff\xfe\"}", `{"teams":[null,1,{}]}`,
	}
	for i, s := range seeds {
		f.Add(uint8(i), []byte(s))
	}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		r := fuzzRoutes[int(route)%len(fuzzRoutes)]
		req := httptest.NewRequest(r.method, r.path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if r.user != "" {
			req.Header.Set("Authorization", "Bearer "+tokens[r.user])
		}
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s %q: status %d: %s", r.method, r.path, body, rec.Code, rec.Body.Bytes())
		}
		if rec.Code >= 400 {
			var eb errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Error == "" {
				t.Fatalf("%s %s %q: status %d with body %q, want {\"error\": sentence}", r.method, r.path, body, rec.Code, rec.Body.Bytes())
			}
		}
		if rec.Code == http.StatusOK && r.path == "/api/login" {
			var lr loginResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &lr); err != nil || lr.Token == "" {
				t.Fatalf("login answered 200 without a token: %s", rec.Body.Bytes())
			}
		}
	})
}
