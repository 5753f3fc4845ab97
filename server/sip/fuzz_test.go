package sip_test

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"ringside/server/events"
	"ringside/server/room"
	"ringside/server/sip"
	"ringside/server/store"
)

// startServer runs a SIP server on loopback with one user (1001, "alice-pw") and no
// registrations, for fuzzing.
func startServer(tb testing.TB) string {
	tb.Helper()
	ctx := context.Background()
	st, err := store.OpenWith(ctx, tb.TempDir(), store.Options{PasswordIterations: 1})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := st.AddUser(ctx, store.NewUser{Name: "alice", Ext: "1001", Password: "alice-pw", Role: store.RoleSupervisor}); err != nil {
		tb.Fatal(err)
	}
	clock := room.NewClock(1)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { clock.Run(runCtx); close(done) }()
	s, err := sip.New(sip.Config{
		MediaIP: netip.MustParseAddr("127.0.0.1"), TrunkAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		RingFor: time.Second, Store: st, Events: events.NewBus(), Clock: clock,
	})
	if err != nil {
		tb.Fatal(err)
	}
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.Serve(runCtx, conn); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
		defer scancel()
		_ = s.Shutdown(sctx)
		cancel()
		<-done
		st.Close()
	})
	return s.Host()
}

// topVia finds the transport and sent-by of the first Via, whatever the whitespace.
var topVia = regexp.MustCompile(`(?i)((?:^|\n)(?:via|v)[ \t]*:\s*SIP\s*/\s*2\.0\s*/\s*)([A-Za-z]+)(\s+)([^;,\s]+)`)

// replyHere points the top Via at addr over UDP so the server's answer comes back to us.
func replyHere(msg []byte, addr string) []byte {
	loc := topVia.FindSubmatchIndex(msg)
	if loc == nil {
		return msg
	}
	out := append([]byte(nil), msg[:loc[3]]...)
	out = append(out, "UDP"...)
	out = append(out, msg[loc[5]:loc[7]]...)
	out = append(out, addr...)
	return append(out, msg[loc[9]:]...)
}

var fuzzSeeds = []string{
	"OPTIONS sip:1001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK1;rport\r\nFrom: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:1001@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
	"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK2\r\nFrom: <sip:1001@127.0.0.1>;tag=2\r\nTo: <sip:1001@127.0.0.1>\r\nCall-ID: c2\r\nCSeq: 1 REGISTER\r\nContact: <sip:1001@127.0.0.1:9>\r\nExpires: 60\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
	"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK3\r\nFrom: <sip:1001@127.0.0.1>;tag=3\r\nTo: <sip:1001@127.0.0.1>\r\nCall-ID: c3\r\nCSeq: 2 REGISTER\r\nContact: *\r\nExpires: 0\r\nAuthorization: Digest username=\"1001\", realm=\"ringside\", nonce=\"abc\", uri=\"sip:127.0.0.1\", response=\"00000000000000000000000000000000\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"x\"\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
	"INVITE sip:1001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK4\r\nFrom: \"Cust\" <sip:15550100@127.0.0.1>;tag=4\r\nTo: <sip:1001@127.0.0.1>\r\nCall-ID: c4\r\nCSeq: 1 INVITE\r\nContact: <sip:15550100@127.0.0.1:9>\r\nContent-Type: application/sdp\r\nMax-Forwards: 70\r\nContent-Length: 129\r\n\r\nv=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n",
	"INVITE sip:*21001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK5\r\nFrom: <sip:1001@127.0.0.1>;tag=5\r\nTo: <sip:*21001@127.0.0.1>\r\nCall-ID: c5\r\nCSeq: 1 INVITE\r\nTarget-Dialog: abc;local-tag=1;remote-tag=2\r\nContact: <sip:1001@127.0.0.1:9>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
	"INFO sip:1001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK6\r\nFrom: <sip:1001@127.0.0.1>;tag=6\r\nTo: <sip:x@127.0.0.1>;tag=7\r\nCall-ID: c6\r\nCSeq: 2 INFO\r\nContent-Type: application/dtmf-relay\r\nMax-Forwards: 70\r\nContent-Length: 24\r\n\r\nSignal=2\r\nDuration=160\r\n",
	"BYE sip:1001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK7\r\nFrom: <sip:1001@127.0.0.1>;tag=6\r\nTo: <sip:x@127.0.0.1>;tag=7\r\nCall-ID: c6\r\nCSeq: 3 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
	"REFER sip:1001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK8\r\nFrom: <sip:1001@127.0.0.1>;tag=6\r\nTo: <sip:x@127.0.0.1>;tag=7\r\nCall-ID: c6\r\nCSeq: 4 REFER\r\nRefer-To: <sip:1002@127.0.0.1>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
	"CANCEL sip:1001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK9\r\nFrom: <sip:1001@127.0.0.1>;tag=6\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: c9\r\nCSeq: 1 CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
}

// FuzzSIPMessage feeds messages to a running server through its own UDP socket, the way a
// phone would: sipgo parses them, the transaction layer and our handlers take them. A
// message sipgo can't parse is dropped by its transport, so only what parses is sent
// (the parser itself still runs on every input). The server must never crash and never
// answer 500 (our handlers turn a panic into a 500).
func FuzzSIPMessage(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	for _, dir := range []string{"valid", "invalid"} {
		files, _ := filepath.Glob(filepath.Join("..", "testdata", "rfc4475", dir, "*.dat"))
		for _, name := range files {
			if b, err := os.ReadFile(name); err == nil {
				f.Add(b)
			}
		}
	}
	server := startServer(f)
	dst, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		f.Fatal(err)
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { conn.Close() })
	here := conn.LocalAddr().String()
	parser := sipmsg.NewParser()
	buf := make([]byte, 65535)
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := parser.ParseSIP(data)
		if err != nil {
			return
		}
		req, ok := msg.(*sipmsg.Request)
		if !ok {
			return // a response matching no transaction: dropped
		}
		_ = req.String()
		if _, err := conn.WriteToUDP(replyHere(data, here), dst); err != nil {
			t.Fatal(err)
		}
		// Read what comes back (to this or earlier messages) for a moment.
		deadline := time.Now().Add(20 * time.Millisecond)
		for {
			_ = conn.SetReadDeadline(deadline)
			n, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			line, _, _ := bytes.Cut(buf[:n], []byte("\r\n"))
			if code, ok := statusCode(line); ok && code == 500 {
				t.Fatalf("server answered %q to %q", line, data)
			}
		}
	})
}

func statusCode(line []byte) (int, bool) {
	if !bytes.HasPrefix(line, []byte("SIP/2.0 ")) || len(line) < 11 {
		return 0, false
	}
	n, err := strconv.Atoi(string(line[8:11]))
	return n, err == nil
}
