package live_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"ringside/server/live"
	"ringside/server/store"
)

// The whole server's tests are in server/live_test.go; these cover what needs a setting
// the server does not expose.

// liveServer is a live-call server alone over a real store, on loopback.
func liveServer(t *testing.T, cfg live.Config) string {
	t.Helper()
	st, err := store.OpenWith(context.Background(), t.TempDir(), store.Options{PasswordIterations: 1000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.AddUser(context.Background(), store.NewUser{Name: "alice", Ext: "1001", Password: "alice-pw", Role: store.RoleAgent}); err != nil {
		t.Fatal(err)
	}
	cfg.Store = st
	s := live.New(cfg)
	mux := http.NewServeMux()
	s.Register(mux)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		hs.Close()
	})
	return strings.Replace(hs.URL, "http://", "ws://", 1)
}

func TestVisitorWhoNeverOffersIsClosed(t *testing.T) {
	url := liveServer(t, live.Config{OfferWait: 200 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url+"/live/1001/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	_, b, err := ws.Read(ctx)
	if err != nil {
		t.Fatalf("want an error message, got %v", err)
	}
	var m struct{ Type, Reason string }
	if json.Unmarshal(b, &m); m.Type != "error" || !strings.Contains(m.Reason, "press Call again") {
		t.Errorf("got %s, want an error telling the visitor to call again", b)
	}
	if _, _, err := ws.Read(ctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Errorf("want the socket closed normally, got %v", err)
	}
}
