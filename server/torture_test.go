package server_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The RFC 4475 torture messages (as sipgo's repository carries them, in
// testdata/rfc4475) are sent over UDP to a running server. Whatever arrives, the server
// must not crash: it still answers OPTIONS and carries a normal call afterwards. Valid
// requests get a final response (any status: most are INVITEs and REGISTERs for users
// and hosts we don't know). Malformed ones get 400 or nothing. Responses are dropped.
// The rest of RFC 4475's "invalid" set are well-formed messages with odd semantics
// (unknown URI schemes, Max-Forwards 0, unknown Proxy-Require...), where any final answer
// or none is fine.
type tortureWant int

const (
	wantAnswer    tortureWant = iota // a final response, any status
	wantRejected                     // 400 (505 for a version we don't speak) or nothing
	wantDropped                      // nothing: it is a response matching no transaction
	wantAnyOrNone                    // any final response, or nothing
)

var tortureCases = map[string]tortureWant{
	// RFC 4475 §3.1.1: valid messages.
	"valid/wsinv": wantAnswer, "valid/intmeth": wantAnswer, "valid/esc01": wantAnswer,
	"valid/escnull": wantAnswer, "valid/esc02": wantAnswer, "valid/lwsdisp": wantAnswer,
	"valid/longreq": wantAnswer, "valid/dblreq": wantAnswer, "valid/semiuri": wantAnswer,
	"valid/transports": wantAnswer, "valid/mpart01": wantAnswer,
	"valid/unreason": wantDropped, "valid/noreason": wantDropped, // responses
	// §3.1.2: invalid messages.
	"invalid/badinv01": wantRejected, "invalid/clerr": wantRejected, "invalid/ncl": wantRejected,
	"invalid/scalar02": wantRejected, "invalid/quotbal": wantRejected, "invalid/ltgtruri": wantRejected,
	"invalid/lwsruri": wantRejected, "invalid/lwsstart": wantRejected, "invalid/trws": wantRejected,
	"invalid/escruri": wantRejected, "invalid/baddate": wantAnyOrNone, "invalid/regbadct": wantAnyOrNone,
	"invalid/badaspec": wantRejected, "invalid/baddn": wantRejected, "invalid/badvers": wantRejected,
	"invalid/mismatch01": wantRejected, "invalid/mismatch02": wantRejected, "invalid/test": wantRejected,
	"invalid/scalarlg": wantDropped, "invalid/bigcode": wantDropped, // responses
	// regbadct's Contact carries ?Route=... without <>; once sipgo has parsed it, it can't
	// be told from the legal <sip:...?Route=...> of a REGISTER Contact (RFC 3261 §19.1.1),
	// and it is challenged (401) before any Contact is looked at.
	// §3.3: well-formed, semantically odd.
	"invalid/insuf": wantRejected, "invalid/multi01": wantRejected, "invalid/mcl01": wantRejected,
	"invalid/badbranch": wantAnyOrNone, "invalid/bcast": wantAnyOrNone, "invalid/bext01": wantAnyOrNone,
	"invalid/cparam01": wantAnyOrNone, "invalid/cparam02": wantAnyOrNone, "invalid/inv2543": wantAnyOrNone,
	"invalid/invut": wantAnyOrNone, "invalid/novelsc": wantAnyOrNone, "invalid/regaut01": wantAnyOrNone,
	"invalid/regescrt": wantAnyOrNone, "invalid/sdp01": wantAnyOrNone, "invalid/unkscm": wantAnyOrNone,
	"invalid/unksm2": wantAnyOrNone, "invalid/zeromf": wantAnyOrNone,
}

// topVia finds the transport and sent-by of the first Via, whatever the whitespace.
var topVia = regexp.MustCompile(`(?i)((?:^|\n)(?:via|v)[ \t]*:\s*SIP\s*/\s*2\.0\s*/\s*)([A-Za-z]+)(\s+)([^;,\s]+)`)

// replyHere points the top Via at addr over UDP, so the server's answer (sent to the
// source address and the Via's port, RFC 3263 §5) comes back to our socket. The rest of
// the message, odd whitespace and all, is left as it is.
func replyHere(msg []byte, addr string) []byte {
	loc := topVia.FindSubmatchIndex(msg)
	if loc == nil {
		return msg
	}
	var out []byte
	out = append(out, msg[:loc[3]]...)
	out = append(out, "UDP"...)
	out = append(out, msg[loc[5]:loc[7]]...)
	out = append(out, addr...)
	return append(out, msg[loc[9]:]...)
}

// sendUDP sends msg from a fresh socket and returns the first final status that comes
// back within wait (0: none).
func sendUDP(t *testing.T, server string, msg []byte, wait time.Duration) (int, string) {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dst, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.WriteTo(replyHere(msg, conn.LocalAddr().String()), dst); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(wait)
	buf := make([]byte, 65535)
	for {
		_ = conn.SetReadDeadline(deadline)
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			return 0, ""
		}
		line, _, _ := bytes.Cut(buf[:n], []byte("\r\n"))
		f := strings.Fields(string(line))
		if len(f) < 2 || f[0] != "SIP/2.0" {
			t.Errorf("not a SIP response: %q", line)
			continue
		}
		code, err := strconv.Atoi(f[1])
		if err != nil {
			t.Errorf("bad status line %q", line)
			continue
		}
		if code >= 200 {
			return code, string(line)
		}
	}
}

func TestRFC4475Torture(t *testing.T) {
	r := newRig(t)
	options := func() int {
		msg := fmt.Sprintf("OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK%d;rport\r\n"+
			"From: <sip:probe@127.0.0.1>;tag=p1\r\nTo: <sip:%s>\r\nCall-ID: probe-%d\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
			r.srv.SIPAddr, time.Now().UnixNano(), r.srv.SIPAddr, time.Now().UnixNano())
		code, _ := sendUDP(t, r.srv.SIPAddr, []byte(msg), 3*time.Second)
		return code
	}
	if code := options(); code != 200 {
		t.Fatalf("OPTIONS before the torture: %d", code)
	}
	// All at once from their own sockets (t.Parallel would run only GOMAXPROCS at a
	// time, and each unanswered message waits out its deadline).
	type result struct {
		code int
		line string
	}
	results := make(map[string]result, len(tortureCases))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name := range tortureCases {
		msg, err := os.ReadFile(filepath.Join("testdata", "rfc4475", name+".dat"))
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			code, line := sendUDP(t, r.srv.SIPAddr, msg, 2*time.Second)
			mu.Lock()
			results[name] = result{code, line}
			mu.Unlock()
		})
	}
	wg.Wait()
	for name, want := range tortureCases {
		t.Run(name, func(t *testing.T) {
			code, line := results[name].code, results[name].line
			t.Logf("%d %s", code, line)
			switch want {
			case wantAnswer:
				if code == 0 {
					t.Errorf("a valid request got no answer")
				}
			case wantRejected:
				if code != 0 && code != 400 && !(name == "invalid/badvers" && code == 505) {
					t.Errorf("a malformed request got %q, want 400 or nothing", line)
				}
			case wantDropped:
				if code != 0 {
					t.Errorf("a stray response was answered: %q", line)
				}
			}
		})
	}
	t.Run("still serving", func(t *testing.T) {
		if code := options(); code != 200 {
			t.Fatalf("OPTIONS after the torture: %d", code)
		}
		alice := r.phone("1001", "alice-pw", agentHz, true)
		customer, agent := r.call(alice, "1001")
		lv := levels(t, customer, agent)
		expect(t, "customer", lv[0], agentHz)
		expect(t, "agent", lv[1], customerHz)
	})
}
