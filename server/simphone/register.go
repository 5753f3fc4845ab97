package simphone

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// minRefresh keeps a registrar that grants very short expiries from making the phone
// re-register in a tight loop.
const minRefresh = time.Second

// KeepRegistered registers for expires and keeps the registration alive: it re-registers
// at half the expiry the registrar granted (sooner, with back-off, after a failure) until
// Close or Register(ctx, 0). The first REGISTER's outcome is returned; later ones go to
// Config.OnRegister.
func (p *Phone) KeepRegistered(ctx context.Context, expires time.Duration) error {
	granted, err := p.register(ctx, expires)
	if err != nil {
		return err
	}
	if !p.enter() {
		return ErrClosed
	}
	rctx, cancel := context.WithCancel(p.ctx)
	p.refreshMu.Lock()
	if p.refreshing != nil {
		p.refreshing()
	}
	p.refreshing = cancel
	p.refreshMu.Unlock()
	go func() {
		defer p.wg.Done()
		p.refresh(rctx, expires, granted)
	}()
	return nil
}

func (p *Phone) stopRefresh() {
	p.refreshMu.Lock()
	if p.refreshing != nil {
		p.refreshing()
		p.refreshing = nil
	}
	p.refreshMu.Unlock()
}

func (p *Phone) refresh(ctx context.Context, expires, granted time.Duration) {
	wait := max(granted/2, minRefresh)
	retry := minRefresh
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		g, err := p.register(rctx, expires)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if p.cfg.OnRegister != nil {
			p.cfg.OnRegister(err)
		}
		if err != nil {
			p.log.Warn("registration refresh failed", "err", err)
			wait = min(retry, max(granted/2, minRefresh))
			retry = min(2*retry, time.Minute)
		} else {
			granted, retry = g, minRefresh
			wait = max(granted/2, minRefresh)
		}
		t.Reset(wait)
	}
}

// RefreshRegistration re-registers now (after a server restart, say) if KeepRegistered
// is keeping the phone registered; otherwise it does nothing.
func (p *Phone) RefreshRegistration(ctx context.Context, expires time.Duration) error {
	p.refreshMu.Lock()
	on := p.refreshing != nil
	p.refreshMu.Unlock()
	if !on {
		return nil
	}
	_, err := p.register(ctx, expires)
	return err
}

// grantedExpiry reads the expiry a 2xx to REGISTER grants our contact: its Contact's
// expires parameter, else the Expires header, else what we asked for.
func grantedExpiry(res *sip.Response, contact sip.Uri, asked time.Duration) time.Duration {
	for _, h := range res.GetHeaders("Contact") {
		ch, ok := h.(*sip.ContactHeader)
		if !ok || ch.Address.Port != contact.Port || ch.Address.Host != contact.Host {
			continue
		}
		if v, ok := ch.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
				return time.Duration(n) * time.Second
			}
		}
	}
	if h := res.GetHeader("Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil {
			return time.Duration(n) * time.Second
		}
	}
	return asked
}
