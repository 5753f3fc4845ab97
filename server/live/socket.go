package live

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Limits of the signalling sockets (docs/live-calls.md: one JSON text frame, at most 64 KiB).
const (
	maxMessage = 64 << 10
	// A message up to maxDrained is read to its end and refused with an error, keeping
	// the call; anything larger closes the socket (1009), as a flood would.
	maxDrained = 1 << 20
	writeWait  = 10 * time.Second
	queueLen   = 64 // messages waiting for a slow reader before its socket is closed
)

const (
	statusNormal    = websocket.StatusNormalClosure
	statusGoingAway = websocket.StatusGoingAway
)

// socket is one open WebSocket, a visitor's page or an agent's softphone. Messages to it
// go through a queue that its writer drains, so a call never waits on a slow browser and
// no lock is held across a write.
type socket struct {
	ws  *websocket.Conn
	out chan []byte

	once   sync.Once
	done   chan struct{} // closed by close: the writer sends what is queued, then closes
	code   websocket.StatusCode
	reason string
}

func newSocket(ws *websocket.Conn) *socket {
	return &socket{ws: ws, out: make(chan []byte, queueLen), done: make(chan struct{})}
}

// send queues one message; on a socket too slow to keep up it gives up and closes it.
func (so *socket) send(msg any) {
	b, err := marshal(msg)
	if err != nil {
		return
	}
	so.sendRaw(b)
}

// sendRaw queues an encoded message.
func (so *socket) sendRaw(b []byte) {
	select {
	case <-so.done:
		return
	default:
	}
	select {
	case so.out <- b:
	default:
		so.close(websocket.StatusPolicyViolation, "too many messages waiting: the connection is too slow")
	}
}

// close ends the socket once what is queued has been sent.
func (so *socket) close(code websocket.StatusCode, reason string) {
	so.once.Do(func() {
		so.code, so.reason = code, reason
		close(so.done)
	})
}

// write sends the queue until close, then the rest of the queue, then the close frame.
func (so *socket) write() {
	for {
		select {
		case b := <-so.out:
			if !so.writeOne(b) {
				so.close(websocket.StatusGoingAway, "write failed")
				so.ws.CloseNow()
				return
			}
		case <-so.done:
			for {
				select {
				case b := <-so.out:
					if !so.writeOne(b) {
						so.ws.CloseNow()
						return
					}
				default:
					_ = so.ws.Close(so.code, so.reason)
					return
				}
			}
		}
	}
}

func (so *socket) writeOne(b []byte) bool {
	ctx, cancel := context.WithTimeout(context.Background(), writeWait)
	defer cancel()
	return so.ws.Write(ctx, websocket.MessageText, b) == nil
}

// ping checks every interval that the far end still answers, and closes the socket when
// it does not, so a softphone that vanished without closing stops being offered calls.
func (so *socket) ping(every time.Duration, still func() error) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-so.done:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), every)
			err := so.ws.Ping(ctx)
			cancel()
			if err != nil {
				so.close(websocket.StatusGoingAway, "no answer to ping")
				return
			}
			if still == nil {
				continue
			}
			if err := still(); err != nil {
				so.send(errorOf("", err.Error()))
				so.close(websocket.StatusPolicyViolation, "signed out")
				return
			}
		}
	}
}

// errTooBig is a message over maxMessage that was read to its end; the socket stays open.
var errTooBig = fmt.Errorf("the message is larger than %d KiB; send less", maxMessage>>10)

// read returns the next message. errTooBig and errNotText are refusals the socket
// survives; other errors mean it is gone.
func (so *socket) read(ctx context.Context) ([]byte, error) {
	typ, r, err := so.ws.Reader(ctx)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(r, maxMessage+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxMessage {
		if _, err := io.Copy(io.Discard, r); err != nil {
			return nil, err
		}
		return nil, errTooBig
	}
	if typ != websocket.MessageText {
		return nil, errNotText
	}
	return b, nil
}

var errNotText = errors.New("send messages as JSON text frames, not binary")

// message is every field any side sends; which are used depends on type.
type message struct {
	Type      string          `json:"type"`
	SDP       string          `json:"sdp,omitempty"`
	Name      string          `json:"name,omitempty"`
	CallID    string          `json:"call_id,omitempty"`
	Candidate json.RawMessage `json:"candidate,omitempty"`
}

// parse reads one message; its errors are sentences for the sender.
func parse(b []byte) (message, error) {
	var m message
	if err := json.Unmarshal(b, &m); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return m, fmt.Errorf("field %q has the wrong type (%s); see docs/live-calls.md", typeErr.Field, typeErr.Value)
		}
		return m, errors.New("the message is not a JSON object; send {\"type\": ...} as one JSON text frame")
	}
	if m.Type == "" {
		return m, errors.New(`the message has no "type"`)
	}
	if len(m.Candidate) > 0 {
		c := bytes.TrimSpace(m.Candidate)
		if len(c) == 0 || c[0] != '{' {
			return m, errors.New(`"candidate" must be an object {"candidate","sdpMid","sdpMLineIndex"}`)
		}
	}
	return m, nil
}

// marshal encodes a message without HTML escaping, so an SDP reads as sent.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// Messages the server sends.
type (
	errorMsg struct {
		Type   string `json:"type"` // "error"
		CallID string `json:"call_id,omitempty"`
		Reason string `json:"reason"`
	}
	hangupMsg struct {
		Type   string `json:"type"` // "hangup"
		CallID string `json:"call_id,omitempty"`
		Reason string `json:"reason"`
	}
	ringingMsg struct {
		Type   string `json:"type"` // "ringing"
		CallID string `json:"call_id"`
	}
	sdpMsg struct {
		Type    string   `json:"type"` // "offer" to the agent, "answer" to the visitor
		CallID  string   `json:"call_id,omitempty"`
		SDP     string   `json:"sdp"`
		Visitor *visitor `json:"visitor,omitempty"`
	}
	visitor struct {
		Name string `json:"name"`
	}
	candidateMsg struct {
		Type      string          `json:"type"` // "candidate"
		CallID    string          `json:"call_id,omitempty"`
		Candidate json.RawMessage `json:"candidate"`
	}
)

func errorOf(callID, reason string) errorMsg {
	return errorMsg{Type: "error", CallID: callID, Reason: reason}
}

// visitorAddress is where a visitor's socket comes from, as the per-address limit counts
// it: the IP, or for IPv6 its /64 (one subscriber's whole network, which one attacker
// can spread over). Forwarded headers are not trusted: a visitor could name any address
// and escape the limit (so a proxy in front counts as one address).
func visitorAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	if ip = ip.Unmap(); ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}
