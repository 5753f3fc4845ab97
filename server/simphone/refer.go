package simphone

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Refer asks the peer to call target instead (RFC 3515 blind transfer): REFER within the
// dialog with Refer-To: <target>. It returns once the REFER is accepted (2xx, normally 202);
// a refusal comes back as *StatusError (501 or 405 from a peer that does not do transfers).
// How the transfer went arrives on ReferStatus.
func (c *Call) Refer(ctx context.Context, target string) error {
	uri, err := c.p.targetURI(target)
	if err != nil {
		return err
	}
	if err := c.established(); err != nil {
		return err
	}
	c.reqMu.Lock()
	defer c.reqMu.Unlock()
	req := sip.NewRequest(sip.REFER, c.target())
	req.AppendHeader(sip.NewHeader("Refer-To", "<"+uri.String()+">"))
	from := c.p.fromURI()
	req.AppendHeader(sip.NewHeader("Referred-By", "<"+from.String()+">"))
	res, err := c.doLocked(ctx, req)
	if err != nil {
		return fmt.Errorf("simphone: REFER: %w", err)
	}
	if !res.IsSuccess() {
		return statusError(req, res)
	}
	return nil
}

// ReferStatus delivers the final status of a transfer this call asked for with Refer, as
// the peer reports it in NOTIFY message/sipfrag (200: the target answered). Buffered (8);
// never closed.
func (c *Call) ReferStatus() <-chan int { return c.referStat }

func (p *Phone) onNotify(req *sip.Request, tx sip.ServerTransaction) {
	c := p.lookup(req)
	if c == nil {
		respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	respond(tx, req, sip.StatusOK, "OK")
	ev := ""
	if h := req.GetHeader("Event"); h != nil {
		ev = strings.ToLower(strings.TrimSpace(h.Value()))
	}
	if !strings.HasPrefix(ev, "refer") {
		return
	}
	code, ok := sipfragStatus(req.Body())
	if !ok || code < 200 {
		return
	}
	select {
	case c.referStat <- code:
	default:
	}
}

// sipfragStatus reads the status code of a message/sipfrag body ("SIP/2.0 200 OK").
func sipfragStatus(body []byte) (int, bool) {
	line, _, _ := bytes.Cut(bytes.TrimSpace(body), []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 2 || !strings.HasPrefix(f[0], "SIP/") {
		return 0, false
	}
	code, err := strconv.Atoi(f[1])
	return code, err == nil
}
