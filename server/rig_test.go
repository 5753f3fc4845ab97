package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"ringside/media"
	"ringside/server"
	"ringside/server/servertest"
	"ringside/server/simphone"
	"ringside/server/store"
)

// Distinct tones, none a multiple of another (G.711 puts spurs on harmonics).
const (
	customerHz    = 440
	agentHz       = 1000
	supervisorHz  = 2300
	supervisor2Hz = 1700
)

// heardDB is the level above which a tone counts as heard; the phones send at 0.3 of full
// scale (about -10 dB), so a heard tone sits near -11 dB, and an unheard one at the noise
// floor far below.
const heardDB = -25

// rig is a ringside-media running in-process on loopback with demo users.
type rig struct {
	t   *testing.T
	srv *servertest.Server
}

// users are servertest's demo users but with bob in team blue, and two more supervisors:
// sue in red and tom in blue.
var users = []store.NewUser{
	{Name: "alice", Ext: "1001", Password: "alice-pw", Role: store.RoleAgent, Teams: []string{"red"}},
	{Name: "bob", Ext: "1002", Password: "bob-pw", Role: store.RoleAgent, Teams: []string{"blue"}},
	{Name: "sam", Ext: "2001", Password: "sam-pw", Role: store.RoleSupervisor, Teams: []string{"red"}},
	{Name: "sue", Ext: "2002", Password: "sue-pw", Role: store.RoleSupervisor, Teams: []string{"red"}},
	{Name: "tom", Ext: "2003", Password: "tom-pw", Role: store.RoleSupervisor, Teams: []string{"blue"}},
	{Name: "ada", Ext: "3001", Password: "ada-pw", Role: store.RoleAdmin},
}

func newRig(t *testing.T, mod ...func(*server.Config)) *rig {
	t.Helper()
	r := &rig{t: t, srv: servertest.Start(t, mod...)}
	r.srv.AddUsers(users...)
	return r
}

func ctx(t *testing.T, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return c
}

// phone makes a simulated phone; agents (autoAnswer) register first.
func (r *rig) phone(ext, password string, tone float64, agent bool) *simphone.Phone {
	r.t.Helper()
	p, err := simphone.New(ctx(r.t, 10*time.Second), simphone.Config{
		Server: r.srv.SIPAddr, Ext: ext, Password: password, ToneHz: tone, AutoAnswer: agent, Logger: servertest.Logger(),
	})
	if err != nil {
		r.t.Fatalf("phone %s: %v", ext, err)
	}
	r.t.Cleanup(func() { p.Close() })
	if agent {
		if err := p.Register(ctx(r.t, 10*time.Second), time.Hour); err != nil {
			r.t.Fatalf("register %s: %v", ext, err)
		}
	}
	return p
}

// ringingPhone is a registered phone that lets incoming calls ring until the test answers.
func (r *rig) ringingPhone(ext, password string) *simphone.Phone {
	r.t.Helper()
	p := r.phone(ext, password, 0, false)
	if err := p.Register(ctx(r.t, 10*time.Second), time.Hour); err != nil {
		r.t.Fatalf("register %s: %v", ext, err)
	}
	return p
}

// call has a customer call the agent at ext and returns both ends, answered.
func (r *rig) call(agentPhone *simphone.Phone, ext string) (customer, agent *simphone.Call) {
	r.t.Helper()
	cust := r.phone("15550100", "", customerHz, false)
	c, err := cust.Dial(ctx(r.t, 10*time.Second), "sip:"+ext+"@"+r.srv.SIPAddr)
	if err != nil {
		r.t.Fatalf("customer dials %s: %v", ext, err)
	}
	select {
	case a := <-agentPhone.Incoming():
		return c, a
	case <-time.After(10 * time.Second):
		r.t.Fatal("agent phone never got the call")
	}
	return nil, nil
}

// monitor dials a feature code from a supervisor phone.
func (r *rig) monitor(sup *simphone.Phone, code string) *simphone.Call {
	r.t.Helper()
	c, err := sup.Dial(ctx(r.t, 10*time.Second), "sip:"+code+"@"+r.srv.SIPAddr)
	if err != nil {
		r.t.Fatalf("supervisor %s dials %s: %v", sup.Ext(), code, err)
	}
	return c
}

// levels records a fresh stretch of audio on every call and returns each tone's level,
// skipping the first 200 ms so audio from before a change has drained.
func levels(t *testing.T, cs ...*simphone.Call) []map[int]float64 {
	t.Helper()
	for _, c := range cs {
		c.ResetRecording()
	}
	out := make([]map[int]float64, len(cs))
	for i, c := range cs {
		if err := c.WaitRecording(ctx(t, 10*time.Second), 700*time.Millisecond); err != nil {
			t.Fatalf("recording %d: %v", i, err)
		}
		rec := c.Recording()
		rec = rec[1600:]
		out[i] = map[int]float64{}
		for _, hz := range []int{customerHz, agentHz, supervisorHz, supervisor2Hz} {
			out[i][hz] = mediaLevel(rec, hz)
		}
	}
	return out
}

// expect checks what one listener hears: tones in hears above heardDB, every other tone at
// least 40 dB under the weakest heard one.
func expect(t *testing.T, who string, lv map[int]float64, hears ...int) {
	t.Helper()
	weakest := 0.0
	for _, hz := range hears {
		if lv[hz] < heardDB {
			t.Errorf("%s should hear %d Hz: level %.1f dB", who, hz, lv[hz])
		}
		weakest = min(weakest, lv[hz])
	}
	if len(hears) == 0 {
		weakest = heardDB
	}
	for hz, db := range lv {
		if contains(hears, hz) {
			continue
		}
		if db > weakest-40 {
			t.Errorf("%s must not hear %d Hz: level %.1f dB, only %.1f dB under what it hears", who, hz, db, weakest-db)
		}
	}
}

func contains(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// HTTP helpers.

func (r *rig) login(user, password string) string {
	r.t.Helper()
	var out struct{ Token string }
	if code := r.do("POST", "/api/login", "", map[string]string{"user": user, "password": password}, &out); code != 200 {
		r.t.Fatalf("login %s: status %d", user, code)
	}
	return out.Token
}

func (r *rig) do(method, path, token string, body, out any) int {
	r.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, r.srv.URL()+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			r.t.Fatalf("%s %s: decoding %q: %v", method, path, b, err)
		}
	}
	return res.StatusCode
}

// events opens a user's event stream; lines arrive on the channel.
type eventStream struct {
	events chan sse
}

type sse struct {
	Type string
	Data string
}

func (r *rig) events(token string) *eventStream {
	r.t.Helper()
	c, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(c, "GET", r.srv.URL()+"/api/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		cancel()
		r.t.Fatalf("event stream: %v %v", err, res)
	}
	es := &eventStream{events: make(chan sse, 256)}
	done := make(chan struct{})
	r.t.Cleanup(func() { cancel(); res.Body.Close(); <-done })
	go func() {
		defer close(done)
		defer close(es.events)
		sc := bufio.NewScanner(res.Body)
		var ev sse
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.Type = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.Data += strings.TrimPrefix(line, "data: ")
			case line == "":
				if ev.Type != "" {
					es.events <- ev
				}
				ev = sse{}
			}
		}
	}()
	return es
}

// next returns the next event of a type satisfying ok, or fails after d.
func (es *eventStream) next(t *testing.T, d time.Duration, ok func(sse) bool) sse {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case ev, open := <-es.events:
			if !open {
				t.Fatal("event stream closed")
			}
			if ok(ev) {
				return ev
			}
		case <-deadline:
			t.Fatalf("no matching event within %v", d)
		}
	}
}

// collect gathers every event that arrives within d.
func (es *eventStream) collect(d time.Duration) []sse {
	var out []sse
	deadline := time.After(d)
	for {
		select {
		case ev, open := <-es.events:
			if !open {
				return out
			}
			out = append(out, ev)
		case <-deadline:
			return out
		}
	}
}

func jsonField(t *testing.T, data string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(data), &m); err != nil {
		t.Fatalf("event data %q: %v", data, err)
	}
	return m
}

func mediaLevel(pcm []int16, hz int) float64 { return media.ToneLevelDB(pcm, float64(hz)) }

func targetDialogHeader(v string) sip.Header { return sip.NewHeader("Target-Dialog", v) }

func contextWithCancel(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithCancel(parent)
}
