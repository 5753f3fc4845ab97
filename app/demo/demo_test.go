package demo

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"ringside/app"
)

func testLogger() *slog.Logger {
	if os.Getenv("RINGSIDE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// The demo's promise: a supervisor who logs in finds a conversation to monitor within
// seconds, and beside it a live call from a web visitor that he can't monitor; closing
// the demo leaves nothing running.
func TestDemoHasALiveCallForTheSupervisor(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(),
		// server.Stop leaves sipgo's read loop on the SIP socket running (the socket is
		// never closed): the server's to fix, not the demo's.
		goleak.IgnoreAnyFunction("ringside/server/sip.(*Server).Serve.func3"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	started := time.Now()
	d, err := Start(ctx, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	acct := d.Account("sam")
	c := app.NewClient(acct.ServerURL)
	defer c.Close()
	user, err := c.Login(ctx, acct.User, acct.Password)
	if err != nil {
		t.Fatalf("login as sam: %v", err)
	}
	if !user.Can("monitor") {
		t.Fatalf("sam may not monitor: %+v", user)
	}

	talking := func(calls []app.Call, agent string) *app.Call {
		for i, call := range calls {
			if call.Agent.Name == agent && call.State == "talking" {
				return &calls[i]
			}
		}
		return nil
	}
	deadline := time.Now().Add(10 * time.Second)
	var calls []app.Call
	for {
		calls, err = c.Calls(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if talking(calls, "alice") != nil && talking(calls, "carol") != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no talking calls to alice and carol after 10 s; sam sees %+v", calls)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if call := talking(calls, "alice"); call.Kind != app.CallKindPhone || !call.Monitorable || call.Customer.Number == "" {
		t.Errorf("alice's call: %+v, want a monitorable phone call from a customer", *call)
	}
	// carol's is the web visitor's live call: listed with the lock's reason, not monitorable.
	live := talking(calls, "carol")
	if live.Kind != app.CallKindLive || live.Monitorable || live.UnmonitorableReason != "live calls are end-to-end encrypted" ||
		live.Customer.Number != "web" || live.Customer.Name != visitor.name {
		t.Errorf("carol's call: %+v, want a live call from web visitor %s that can't be monitored", *live, visitor.name)
	}
	var apiErr *app.APIError
	if _, err := c.Monitor(ctx, live.ID, "listen"); !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict {
		t.Errorf("monitoring the live call: %v, want 409", err)
	}
	// sam's team is red: bob's call (team blue) is not his to see, but the admin sees both.
	for _, call := range calls {
		if call.Agent.Name != "alice" && call.Agent.Name != "carol" {
			t.Errorf("sam sees %s's call", call.Agent.Name)
		}
	}
	admin := d.Account("ada")
	ac := app.NewClient(admin.ServerURL)
	defer ac.Close()
	if _, err := ac.Login(ctx, admin.User, admin.Password); err != nil {
		t.Fatalf("login as ada: %v", err)
	}
	for {
		all, err := ac.Calls(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if talking(all, "alice") != nil && talking(all, "bob") != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the admin does not see both demo calls talking: %+v", all)
		}
		time.Sleep(100 * time.Millisecond)
	}

	t.Logf("the calls are talking %v after Start", time.Since(started))

	// The live call's media runs between the visitor and carol's softphone, encrypted
	// with the visitor's certificate that its offer named.
	for {
		var info app.LiveInfo
		for _, oc := range d.live.OwnCalls() {
			if i, ok := oc.LiveInfo(); ok {
				info = i
			}
		}
		if info.Connection == "connected" && info.RemoteCertFingerprint != "" {
			if info.RemoteCertFingerprint != info.RemoteFingerprint || !info.Remote.Addr().IsLoopback() {
				t.Errorf("carol's live call: %+v, want the offer's certificate over loopback", info)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("carol's live call did not connect: %+v", info)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The bots speak: each customer hears its agent's recorded voice through the server.
	for _, p := range d.phones {
		for _, call := range p.Calls() {
			if call.Incoming() {
				continue // an agent's leg
			}
			if err := call.WaitRecording(ctx, 500*time.Millisecond); err != nil {
				t.Fatalf("%s hears nothing: %v", p.Ext(), err)
			}
			if r := rms(call.Recording()); r < 100 {
				t.Errorf("customer %s hears a level of %.0f, want speech", p.Ext(), r)
			}
		}
	}

	c.Close()
	ac.Close()
	closing := time.Now()
	if err := d.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	t.Logf("Close took %v", time.Since(closing))
}

func rms(pcm []int16) float64 {
	var sum float64
	for _, v := range pcm {
		sum += float64(v) * float64(v)
	}
	return math.Sqrt(sum / float64(max(1, len(pcm))))
}
