package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"ringside/server"
	"ringside/server/calls"
	"ringside/server/simphone"
	"ringside/server/store"
)

// An SDP as a browser would send it, with characters JSON and HTML treat specially, so a
// relay that re-encodes or "cleans" it shows.
const (
	visitorSDP = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n" +
		"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=fingerprint:sha-256 AB:CD:EF\r\n" +
		"a=setup:actpass\r\na=mid:0\r\na=x-note:<&> \"quoted\" \\ é\r\na=rtpmap:111 opus/48000/2\r\n"
	agentSDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n" +
		"a=fingerprint:sha-256 12:34:56\r\na=setup:active\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n"
)

var (
	visitorCandidate = map[string]any{"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host", "sdpMid": "0", "sdpMLineIndex": float64(0)}
	agentCandidate   = map[string]any{"candidate": "candidate:2 1 udp 2122260223 127.0.0.1 50002 typ host", "sdpMid": "0", "sdpMLineIndex": float64(0), "usernameFragment": "abcd"}
)

// ws is a test WebSocket client, a visitor's page or an agent's softphone.
type ws struct {
	t    *testing.T
	conn *websocket.Conn
	msgs chan map[string]any
	done chan struct{}
	err  error // why the socket closed, once done is closed
}

func (r *rig) wsURL(path string) string { return "ws://" + r.srv.HTTPAddr + path }

func (r *rig) dialWS(path, token string) (*ws, *http.Response, error) {
	r.t.Helper()
	opts := &websocket.DialOptions{HTTPHeader: http.Header{}}
	if token != "" {
		opts.HTTPHeader.Set("Authorization", "Bearer "+token)
	}
	c, res, err := websocket.Dial(ctx(r.t, 5*time.Second), r.wsURL(path), opts)
	if err != nil {
		return nil, res, err
	}
	c.SetReadLimit(1 << 20)
	w := &ws{t: r.t, conn: c, msgs: make(chan map[string]any, 64), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			_, b, err := c.Read(context.Background())
			if err != nil {
				w.err = err
				close(w.msgs)
				return
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				m = map[string]any{"type": "not json", "raw": string(b)}
			}
			w.msgs <- m
		}
	}()
	r.t.Cleanup(func() { c.CloseNow(); <-w.done })
	return w, res, nil
}

func (r *rig) visitor(ext string) *ws {
	r.t.Helper()
	w, _, err := r.dialWS("/live/"+ext+"/ws", "")
	if err != nil {
		r.t.Fatalf("visitor socket to %s: %v", ext, err)
	}
	return w
}

// agentSocket is a softphone's live-call socket, logged in as user.
func (r *rig) agentSocket(user, password string) *ws {
	r.t.Helper()
	w, _, err := r.dialWS("/api/live/agent", r.login(user, password))
	if err != nil {
		r.t.Fatalf("agent socket of %s: %v", user, err)
	}
	return w
}

func (w *ws) send(v any) {
	w.t.Helper()
	b, _ := json.Marshal(v)
	w.sendRaw(string(b))
}

func (w *ws) sendRaw(s string) {
	w.t.Helper()
	if err := w.conn.Write(ctx(w.t, 5*time.Second), websocket.MessageText, []byte(s)); err != nil {
		w.t.Fatalf("send: %v", err)
	}
}

// next returns the next message, which must be of type typ.
func (w *ws) next(typ string) map[string]any {
	w.t.Helper()
	select {
	case m, ok := <-w.msgs:
		if !ok {
			w.t.Fatalf("socket closed (%v) while waiting for %q", w.err, typ)
		}
		if m["type"] != typ {
			w.t.Fatalf("got %v, want a %q message", m, typ)
		}
		return m
	case <-time.After(5 * time.Second):
		w.t.Fatalf("no %q message within 5 s", typ)
	}
	return nil
}

// closed waits for the server to close the socket, with no message before.
func (w *ws) closed() {
	w.t.Helper()
	select {
	case m, ok := <-w.msgs:
		if ok {
			w.t.Fatalf("got %v, want the socket closed", m)
		}
	case <-time.After(5 * time.Second):
		w.t.Fatal("the server did not close the socket")
	}
}

// quiet checks that nothing arrives for a moment.
func (w *ws) quiet() {
	w.t.Helper()
	select {
	case m, ok := <-w.msgs:
		w.t.Fatalf("got %v (open %v), want nothing", m, ok)
	case <-time.After(100 * time.Millisecond):
	}
}

type liveCallView struct {
	ID                  string
	Kind                string
	State               string
	Direction           string
	Monitorable         bool
	UnmonitorableReason string `json:"unmonitorable_reason"`
	Agent               struct{ Name, Ext string }
	Customer            struct{ Number, Name string }
	AnsweredAt          *time.Time `json:"answered_at"`
	EndReason           string     `json:"end_reason"`
}

func (r *rig) activeCalls(token string) []liveCallView {
	r.t.Helper()
	var cs []liveCallView
	if code := r.do("GET", "/api/calls", token, nil, &cs); code != 200 {
		r.t.Fatalf("GET /api/calls: %d", code)
	}
	return cs
}

func (r *rig) historyCall(token, id string) liveCallView {
	r.t.Helper()
	var hs []liveCallView
	if code := r.do("GET", "/api/history", token, nil, &hs); code != 200 {
		r.t.Fatalf("GET /api/history: %d", code)
	}
	for _, h := range hs {
		if h.ID == id {
			return h
		}
	}
	r.t.Fatalf("call %s not in history %+v", id, hs)
	return liveCallView{}
}

// ringLive has a visitor call ext and returns the visitor and the call id once the agent's
// softphone rings.
func ringLive(t *testing.T, visitor, agent *ws, name string) string {
	t.Helper()
	visitor.send(map[string]string{"type": "offer", "sdp": visitorSDP, "name": name})
	offer := agent.next("offer")
	ringing := visitor.next("ringing")
	if offer["call_id"] == "" || offer["call_id"] != ringing["call_id"] {
		t.Fatalf("offer %v and ringing %v don't name the same call", offer, ringing)
	}
	return offer["call_id"].(string)
}

func TestLiveCallRelaysSignallingAndIsListedAsLive(t *testing.T) {
	r := newRig(t)
	ada := r.login("ada", "ada-pw")
	ev := r.events(ada)
	agent := r.agentSocket("alice", "alice-pw")
	visitor := r.visitor("1001")

	visitor.send(map[string]string{"type": "offer", "sdp": visitorSDP, "name": "  Zoë <b>Fox</b> "})
	offer := agent.next("offer")
	id, _ := offer["call_id"].(string)
	if offer["sdp"] != visitorSDP {
		t.Errorf("agent got the offer SDP %q, want it byte for byte %q", offer["sdp"], visitorSDP)
	}
	if v, _ := offer["visitor"].(map[string]any); v["name"] != "Zoë <b>Fox</b>" {
		t.Errorf("agent sees visitor %v, want the name as typed", offer["visitor"])
	}
	if ringing := visitor.next("ringing"); ringing["call_id"] != id || id == "" {
		t.Errorf("visitor got %v, want ringing for call %s", ringing, id)
	}

	// The call list: every user who may see it sees a live call that can't be monitored.
	for _, who := range [][2]string{{"alice", "alice-pw"}, {"sam", "sam-pw"}, {"ada", "ada-pw"}} {
		cs := r.activeCalls(r.login(who[0], who[1]))
		if len(cs) != 1 {
			t.Fatalf("%s sees calls %+v, want the live call", who[0], cs)
		}
		c := cs[0]
		if c.ID != id || c.Kind != "live" || c.State != "ringing" || c.Monitorable || c.UnmonitorableReason != calls.LiveReason ||
			c.Direction != "inbound" || c.Customer.Number != "web" || c.Customer.Name != "Zoë <b>Fox</b>" || c.Agent.Ext != "1001" {
			t.Errorf("%s sees %+v", who[0], c)
		}
	}
	if m := r.scrape(); m["ringside_calls_active"] != 1 || m[`ringside_calls_total{direction="inbound"}`] != 1 {
		t.Errorf("metrics during the live call: active %v, inbound total %v; want 1 and 1",
			m["ringside_calls_active"], m[`ringside_calls_total{direction="inbound"}`])
	}
	var details liveCallView
	if code := r.do("GET", "/api/calls/"+id, r.login("sam", "sam-pw"), nil, &details); code != 200 ||
		details.Kind != "live" || details.State != "ringing" || details.Monitorable || details.UnmonitorableReason != calls.LiveReason {
		t.Errorf("call details: %d %+v", code, details)
	}
	if cs := r.activeCalls(r.login("tom", "tom-pw")); len(cs) != 0 {
		t.Errorf("tom (team blue) sees %+v, want no call of team red", cs)
	}

	agent.send(map[string]string{"type": "answer", "call_id": id, "sdp": agentSDP})
	if ans := visitor.next("answer"); ans["sdp"] != agentSDP {
		t.Errorf("visitor got the answer SDP %q, want it byte for byte %q", ans["sdp"], agentSDP)
	}
	visitor.send(map[string]any{"type": "candidate", "candidate": visitorCandidate})
	if got := agent.next("candidate"); got["call_id"] != id || !reflect.DeepEqual(got["candidate"], visitorCandidate) {
		t.Errorf("agent got candidate %v, want %v for call %s", got, visitorCandidate, id)
	}
	agent.send(map[string]any{"type": "candidate", "call_id": id, "candidate": agentCandidate})
	if got := visitor.next("candidate"); !reflect.DeepEqual(got["candidate"], agentCandidate) {
		t.Errorf("visitor got candidate %v, want %v", got, agentCandidate)
	}
	if cs := r.activeCalls(ada); len(cs) != 1 || cs[0].State != "talking" || cs[0].AnsweredAt == nil {
		t.Errorf("after the answer the call list shows %+v, want the call talking with answered_at", cs)
	}

	// Nobody can listen in: not through the API...
	sam := r.login("sam", "sam-pw")
	var refusal struct{ Error string }
	if code := r.do("POST", "/api/calls/"+id+"/monitor", sam, map[string]string{"mode": "listen"}, &refusal); code != 409 ||
		refusal.Error != calls.ErrLiveCall.Error() {
		t.Errorf("monitor a live call: %d %q, want 409 %q", code, refusal.Error, calls.ErrLiveCall)
	}
	// ...nor by feature code from a phone...
	samPhone := r.phone("2001", "sam-pw", supervisorHz, false)
	for _, code := range []string{"*11001", "*21001", "*31001"} {
		_, err := samPhone.Dial(ctx(t, 10*time.Second), "sip:"+code+"@"+r.srv.SIPAddr)
		var se *simphone.StatusError
		if !errors.As(err, &se) || se.Code != 403 || se.Reason != calls.ErrLiveCall.Error() {
			t.Errorf("dial %s during a live call: %v, want 403 %q", code, err, calls.ErrLiveCall)
		}
	}
	// ...and a customer calling the agent meanwhile hears busy, though her phone is there.
	r.ringingPhone("1001", "alice-pw")
	_, err := r.phone("15550100", "", customerHz, false).Dial(ctx(t, 10*time.Second), "sip:1001@"+r.srv.SIPAddr)
	if code := statusOf(t, err); code != 486 {
		t.Errorf("customer calling an agent on a live call: %d, want 486 busy", code)
	}

	visitor.send(map[string]string{"type": "hangup"})
	if h := agent.next("hangup"); h["call_id"] != id || h["reason"] != "visitor hung up" {
		t.Errorf("agent got %v, want hangup %q", h, "visitor hung up")
	}
	visitor.closed()
	if cs := r.activeCalls(ada); len(cs) != 0 {
		t.Errorf("calls after hangup: %+v", cs)
	}
	h := r.historyCall(ada, id)
	if h.Kind != "live" || h.State != "ended" || h.EndReason != "visitor hung up" || h.AnsweredAt == nil || h.Monitorable ||
		h.UnmonitorableReason != calls.LiveReason || h.Customer.Name != "Zoë <b>Fox</b>" {
		t.Errorf("history shows %+v", h)
	}

	// Events: started, updated (answered), ended, each a live call.
	var states []string
	for _, want := range []string{"call.started", "call.updated", "call.ended"} {
		e := ev.next(t, 5*time.Second, func(e sse) bool { return strings.HasPrefix(e.Type, "call.") })
		d := jsonField(t, e.Data)
		if e.Type != want || d["id"] != id || d["kind"] != "live" || d["monitorable"] != false {
			t.Errorf("event %s %s, want %s of live call %s", e.Type, e.Data, want, id)
		}
		states = append(states, d["state"].(string))
	}
	if strings.Join(states, ",") != "ringing,talking,ended" {
		t.Errorf("event states %v, want ringing, talking, ended", states)
	}
}

func TestLiveCallRefusedWhenAgentCantTakeIt(t *testing.T) {
	r := newRig(t)
	refused := func(t *testing.T, ext, want string) {
		t.Helper()
		v := r.visitor(ext)
		// For an unknown extension the error comes at once, and the socket may close
		// before the offer is written.
		b, _ := json.Marshal(map[string]string{"type": "offer", "sdp": visitorSDP})
		_ = v.conn.Write(ctx(t, 5*time.Second), websocket.MessageText, b)
		if e := v.next("error"); !strings.Contains(e["reason"].(string), want) {
			t.Errorf("visitor calling %s got %v, want an error with %q", ext, e, want)
		}
		v.closed()
	}
	t.Run("unknown extension", func(t *testing.T) { refused(t, "1999", "no agent at extension 1999") })
	t.Run("agent without softphone", func(t *testing.T) { refused(t, "1002", "agent is not available") })

	agent := r.agentSocket("alice", "alice-pw")
	t.Run("agent on a live call", func(t *testing.T) {
		ringLive(t, r.visitor("1001"), agent, "")
		refused(t, "1001", "agent is busy")
		agent.quiet() // the second visitor never rang the agent
	})
	t.Run("agent on a phone call", func(t *testing.T) {
		r.agentSocket("bob", "bob-pw")
		bob := r.phone("1002", "bob-pw", agentHz, true)
		r.call(bob, "1002")
		refused(t, "1002", "agent is busy")
	})
	if n := len(r.activeCalls(r.login("ada", "ada-pw"))); n != 2 {
		t.Errorf("%d calls active, want the live call and the phone call only: refusals register nothing", n)
	}
	t.Run("agent socket without a token", func(t *testing.T) {
		_, res, err := r.dialWS("/api/live/agent", "")
		if err == nil || res == nil || res.StatusCode != 401 {
			t.Fatalf("got %v %v, want 401", err, res)
		}
	})
}

func TestLiveCallEndings(t *testing.T) {
	r := newRig(t, func(c *server.Config) { c.LiveRingFor = 1500 * time.Millisecond })
	ada := r.login("ada", "ada-pw")
	agent := r.agentSocket("alice", "alice-pw")
	ended := func(t *testing.T, id, reason string) {
		t.Helper()
		waitFor(t, func() bool { return len(r.activeCalls(ada)) == 0 }, "the call has left the list")
		if h := r.historyCall(ada, id); h.State != "ended" || h.EndReason != reason {
			t.Errorf("history %+v, want ended %q", h, reason)
		}
	}
	t.Run("no answer", func(t *testing.T) {
		v := r.visitor("1001")
		id := ringLive(t, v, agent, "")
		if h := v.next("hangup"); h["reason"] != "no answer" {
			t.Errorf("visitor got %v", h)
		}
		if h := agent.next("hangup"); h["call_id"] != id || h["reason"] != "no answer" {
			t.Errorf("agent got %v", h)
		}
		ended(t, id, "no answer")
	})
	t.Run("agent declines", func(t *testing.T) {
		v := r.visitor("1001")
		id := ringLive(t, v, agent, "")
		agent.send(map[string]string{"type": "decline", "call_id": id})
		if h := v.next("hangup"); h["reason"] != "agent declined" {
			t.Errorf("visitor got %v", h)
		}
		v.closed()
		ended(t, id, "agent declined")
	})
	t.Run("agent hangs up", func(t *testing.T) {
		v := r.visitor("1001")
		id := ringLive(t, v, agent, "")
		agent.send(map[string]string{"type": "answer", "call_id": id, "sdp": agentSDP})
		v.next("answer")
		agent.send(map[string]string{"type": "hangup", "call_id": id})
		if h := v.next("hangup"); h["reason"] != "agent hung up" {
			t.Errorf("visitor got %v", h)
		}
		ended(t, id, "agent hung up")
	})
	t.Run("visitor leaves", func(t *testing.T) {
		v := r.visitor("1001")
		id := ringLive(t, v, agent, "")
		agent.send(map[string]string{"type": "answer", "call_id": id, "sdp": agentSDP})
		v.next("answer")
		v.conn.CloseNow() // the tab closed: no hangup message
		if h := agent.next("hangup"); h["call_id"] != id || h["reason"] != "visitor left" {
			t.Errorf("agent got %v", h)
		}
		ended(t, id, "visitor left")
	})
	t.Run("first answer wins", func(t *testing.T) {
		v := r.visitor("1001")
		id := ringLive(t, v, agent, "")
		v.send(map[string]any{"type": "candidate", "candidate": visitorCandidate})
		agent.next("candidate")
		// alice's second softphone comes online while the call rings: it rings too, with
		// the visitor's candidates so far.
		desk := r.agentSocket("alice", "alice-pw")
		if o := desk.next("offer"); o["call_id"] != id || o["sdp"] != visitorSDP {
			t.Errorf("the softphone that came online got %v", o)
		}
		if c := desk.next("candidate"); !reflect.DeepEqual(c["candidate"], visitorCandidate) {
			t.Errorf("the softphone that came online got %v", c)
		}
		desk.send(map[string]string{"type": "answer", "call_id": id, "sdp": agentSDP})
		v.next("answer")
		if h := agent.next("hangup"); h["call_id"] != id || h["reason"] != "answered elsewhere" {
			t.Errorf("the other softphone got %v, want hangup %q", h, "answered elsewhere")
		}
		agent.send(map[string]string{"type": "answer", "call_id": id, "sdp": agentSDP})
		if e := agent.next("error"); !strings.Contains(e["reason"].(string), "answered elsewhere") {
			t.Errorf("late answer got %v", e)
		}
		desk.conn.CloseNow() // the answering softphone goes away
		if h := v.next("hangup"); h["reason"] != "agent's softphone went offline" {
			t.Errorf("visitor got %v", h)
		}
		ended(t, id, "agent's softphone went offline")
	})
}

func TestLiveCallBadInputKeepsTheCall(t *testing.T) {
	r := newRig(t)
	ada := r.login("ada", "ada-pw")
	agent := r.agentSocket("alice", "alice-pw")
	bob := r.agentSocket("bob", "bob-pw")
	v := r.visitor("1001")

	refused := func(w *ws, want string) {
		t.Helper()
		if e := w.next("error"); !strings.Contains(e["reason"].(string), want) {
			t.Errorf("got error %q, want it to say %q", e["reason"], want)
		}
	}
	v.send(map[string]any{"type": "candidate", "candidate": visitorCandidate})
	refused(v, "offer before candidates")
	v.sendRaw("{not json")
	refused(v, "not a JSON object")
	// Junk in place of an SDP offer rings nobody (a ringing agent is busy for customers).
	v.send(map[string]string{"type": "offer", "sdp": "hello"})
	refused(v, "not an SDP offer with audio")
	if cs := r.activeCalls(ada); len(cs) != 0 {
		t.Fatalf("a junk offer made a call: %+v", cs)
	}

	id := ringLive(t, v, agent, "")
	// Candidates are bounded in size and number: each is kept while the call rings.
	v.send(map[string]any{"type": "candidate", "candidate": map[string]string{"candidate": strings.Repeat("x", 3<<10)}})
	refused(v, "at most 2 KiB")
	for range 32 {
		v.send(map[string]any{"type": "candidate", "candidate": visitorCandidate})
		agent.next("candidate")
	}
	v.send(map[string]any{"type": "candidate", "candidate": visitorCandidate})
	refused(v, "too many candidates")
	v.sendRaw(`{"type":"offer","sdp":` + strings.Repeat(" ", 70<<10) + `"x"}`)
	refused(v, "larger than 64 KiB")
	v.send(map[string]string{"type": "offer", "sdp": visitorSDP})
	refused(v, "one offer per call")
	v.send(map[string]string{"type": "dance"})
	refused(v, `unknown message type "dance"`)
	agent.sendRaw("[1,2,3]")
	refused(agent, "not a JSON object")
	agent.send(map[string]string{"type": "answer", "call_id": "no-such-call", "sdp": agentSDP})
	refused(agent, "no such call")
	bob.send(map[string]string{"type": "answer", "call_id": id, "sdp": agentSDP})
	refused(bob, "no such call of yours")
	agent.send(map[string]any{"type": "candidate", "call_id": id, "candidate": agentCandidate})
	refused(agent, "answer the call before sending candidates")

	// The call is still ringing and goes on as if nothing happened.
	if cs := r.activeCalls(ada); len(cs) != 1 || cs[0].ID != id || cs[0].State != "ringing" {
		t.Fatalf("after bad input the calls are %+v, want the call still ringing", cs)
	}
	agent.send(map[string]string{"type": "answer", "call_id": id, "sdp": agentSDP})
	v.next("answer")
	agent.send(map[string]string{"type": "hangup", "call_id": id})
	v.next("hangup")
	waitFor(t, func() bool { return len(r.activeCalls(ada)) == 0 }, "the call has ended")
	if h := r.historyCall(ada, id); h.State != "ended" || h.EndReason != "agent hung up" || h.AnsweredAt == nil {
		t.Errorf("history %+v, want answered and ended by the agent", h)
	}
}

func TestLiveVisitorsPerAddressAreLimited(t *testing.T) {
	r := newRig(t)
	for range 10 {
		r.visitor("1001")
	}
	v := r.visitor("1001")
	if e := v.next("error"); !strings.Contains(e["reason"].(string), "too many calls from your address") {
		t.Errorf("11th socket got %v", e)
	}
	v.closed()
}

func TestServerShutdownEndsLiveCalls(t *testing.T) {
	r := newRig(t)
	agent := r.agentSocket("alice", "alice-pw")
	v := r.visitor("1001")
	id := ringLive(t, v, agent, "")
	agent.send(map[string]string{"type": "answer", "call_id": id, "sdp": agentSDP})
	v.next("answer")

	r.srv.Stop()
	if h := v.next("hangup"); h["reason"] != "server shutdown" {
		t.Errorf("visitor got %v", h)
	}
	if h := agent.next("hangup"); h["call_id"] != id || h["reason"] != "server shutdown" {
		t.Errorf("agent got %v", h)
	}
	agent.closed()
	r.srv.Start()
	rec, err := r.srv.Store().Call(context.Background(), id)
	if err != nil || rec.Kind != store.KindLive || rec.State != store.StateEnded || rec.EndReason != "server shutdown" {
		t.Errorf("history after restart: %+v %v, want the live call ended by the shutdown", rec, err)
	}
}

func TestLivePage(t *testing.T) {
	r := newRig(t)
	r.srv.AddUsers(store.NewUser{Name: `Eve <script>alert(1)</script> & "Co"`, Ext: "1009", Password: "eve-pw", Role: store.RoleAgent})
	get := func(path string) (int, string, http.Header) {
		res, err := http.Get(r.srv.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b), res.Header
	}
	code, body, h := get("/live/1009")
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /live/1009: %d %s", code, h.Get("Content-Type"))
	}
	if !strings.Contains(body, "Eve &lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;Co&#34;") || strings.Contains(body, "<script>alert") {
		t.Errorf("the agent's name is not shown escaped:\n%s", body)
	}
	for _, want := range []string{"End-to-end encrypted", "Hang up", "window.ringside", "RTCPeerConnection", "getUserMedia", "<audio"} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if refs := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?\s*(https?:)?//`).FindAllString(body, -1); len(refs) > 0 {
		t.Errorf("the page loads from elsewhere: %v", refs)
	}
	if urls := regexp.MustCompile(`(?i)https?://`).FindAllString(body, -1); len(urls) > 0 {
		t.Errorf("the page names outside URLs: %v", urls)
	}
	code, body, _ = get("/live/1999")
	if code != 404 || !strings.Contains(body, "There is no agent at extension 1999") {
		t.Errorf("GET /live/1999: %d\n%s", code, body)
	}
}

// A softphone that signs out stops being offered live calls, though its socket was open
// (the same recheck at every ping catches a changed extension or a lost permission).
func TestAgentSocketFollowsTheLogin(t *testing.T) {
	r := newRig(t, func(c *server.Config) { c.LivePingEvery = 100 * time.Millisecond })
	token := r.login("alice", "alice-pw")
	agent, _, err := r.dialWS("/api/live/agent", token)
	if err != nil {
		t.Fatal(err)
	}
	agent.quiet()
	if code := r.do("POST", "/api/logout", token, nil, nil); code != http.StatusNoContent {
		t.Fatalf("logout: status %d", code)
	}
	if e := agent.next("error"); !strings.Contains(e["reason"].(string), "sign in again") {
		t.Errorf("error %v, want it to ask to sign in again", e)
	}
	agent.closed()
	v := r.visitor("1001")
	v.send(map[string]string{"type": "offer", "sdp": visitorSDP})
	if e := v.next("error"); !strings.Contains(e["reason"].(string), "not available") {
		t.Errorf("a visitor reached a signed-out softphone: %v", e)
	}
}
