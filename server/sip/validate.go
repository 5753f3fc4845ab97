package sip

import (
	"strings"

	sipmsg "github.com/emiago/sipgo/sip"
)

func init() {
	// sipgo refuses to write a UDP message over 1300 bytes (it expects the caller to
	// switch to TCP, RFC 3261 §18.1.1), and a response that can't be written is lost
	// without a word. We speak UDP only, and a response must go back the way the request
	// came (§18.2.2): a request with long headers (RFC 4475 longreq, or a long
	// Record-Route path) would get no answer at all. Let IP fragment what it must.
	sipmsg.UDPMTUSize = 65535
}

// singleHeaders may appear once in a request (RFC 3261 §7.3.1: not comma-list headers);
// compact forms count as their long names.
var singleHeaders = map[string]string{
	"from": "From", "f": "From",
	"to": "To", "t": "To",
	"call-id": "Call-ID", "i": "Call-ID",
	"cseq":           "CSeq",
	"content-length": "Content-Length", "l": "Content-Length",
	"max-forwards": "Max-Forwards",
}

// malformed tells why a request that parsed can still not be processed (RFC 3261 §8.2
// and §19.1.1; the RFC 4475 torture cases insuf, multi01, mcl01, escruri, mismatch01 and
// mismatch02), or ""
// when it can. Such a request is answered 400.
func malformed(req *sipmsg.Request) string {
	switch {
	case req.Via() == nil:
		return "Via missing"
	case req.From() == nil:
		return "From missing"
	case req.To() == nil:
		return "To missing"
	case req.CallID() == nil:
		return "Call-ID missing"
	case req.CSeq() == nil:
		return "CSeq missing"
	}
	// sipgo upper-cases the request line's method but not CSeq's.
	if m := req.CSeq().MethodName; !strings.EqualFold(string(m), string(req.Method)) {
		return "CSeq method " + string(m) + " does not match the request method " + string(req.Method)
	}
	if len(req.Recipient.Headers) > 0 {
		return "headers are not allowed in a Request-URI" // RFC 3261 §19.1.1
	}
	seen := make(map[string]bool, 8)
	for _, h := range req.Headers() {
		name, single := singleHeaders[strings.ToLower(h.Name())]
		if !single {
			continue
		}
		if seen[name] {
			return "more than one " + name + " header"
		}
		seen[name] = true
	}
	return ""
}

// refuseMalformed answers a malformed request 400 and reports whether it did.
func refuseMalformed(req *sipmsg.Request, tx sipmsg.ServerTransaction) bool {
	why := malformed(req)
	if why == "" {
		return false
	}
	if req.IsAck() {
		return true // ACK is never answered
	}
	if req.Via() != nil {
		respond(tx, req, 400, "Bad Request: "+why)
	}
	return true
}
