package sip

import (
	"strconv"
	"sync"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"ringside/media/dtlssrtp"
)

// Registration limits (seconds).
const (
	minExpires     = 10
	maxExpires     = 3600
	defaultExpires = 3600
)

type binding struct {
	contact sipmsg.Uri
	expires time.Time
	dtls    bool // registered with the DTLS-SRTP feature tag: call it with UDP/TLS/RTP/SAVP
}

// registrar keeps where each extension's phones are; volatile by design (phones refresh).
type registrar struct {
	mu       sync.Mutex
	bindings map[string][]binding
}

func newRegistrar() *registrar { return &registrar{bindings: make(map[string][]binding)} }

// contacts returns the live contacts of ext.
func (r *registrar) contacts(ext string) []sipmsg.Uri {
	out, _ := r.contactsDTLS(ext)
	return out
}

// contactsDTLS returns the live contacts of ext, and whether every one of them registered
// for DTLS-SRTP (one offer goes to all of them: a plain phone among them gets plain RTP).
func (r *registrar) contactsDTLS(ext string) ([]sipmsg.Uri, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	var out []sipmsg.Uri
	all := true
	for _, b := range r.bindings[ext] {
		if b.expires.After(now) {
			out = append(out, b.contact)
			all = all && b.dtls
		}
	}
	return out, all && len(out) > 0
}

func (r *registrar) expire(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for ext, bs := range r.bindings {
		kept := bs[:0]
		for _, b := range bs {
			if b.expires.After(now) {
				kept = append(kept, b)
			}
		}
		if len(kept) == 0 {
			delete(r.bindings, ext)
		} else {
			r.bindings[ext] = kept
		}
	}
}

// update applies one REGISTER's contacts (RFC 3261 §10.3) and returns the bindings now held.
func (r *registrar) update(ext string, contacts []*sipmsg.ContactHeader, headerExpires int, now time.Time) []binding {
	r.mu.Lock()
	defer r.mu.Unlock()
	bs := r.bindings[ext]
	for _, c := range contacts {
		if c.Address.Wildcard {
			bs = nil
			continue
		}
		exp := headerExpires
		if v, ok := c.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(v); err == nil {
				exp = n
			}
		}
		kept := bs[:0]
		for _, b := range bs {
			if b.contact.String() != c.Address.String() {
				kept = append(kept, b)
			}
		}
		bs = kept
		if exp > 0 {
			bs = append(bs, binding{contact: *c.Address.Clone(), expires: now.Add(time.Duration(min(exp, maxExpires)) * time.Second),
				dtls: c.Params.Has(dtlssrtp.ContactFeature)})
		}
	}
	if len(bs) == 0 {
		delete(r.bindings, ext)
		return nil
	}
	r.bindings[ext] = bs
	return append([]binding(nil), bs...)
}

func (s *Server) onRegister(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	user, ok := s.authenticate(req, tx)
	if !ok {
		return
	}
	to := req.To()
	if to == nil || to.Address.User != user.Ext {
		respond(tx, req, 403, "You may only register your own extension")
		return
	}
	expires := defaultExpires
	if h := req.GetHeader("Expires"); h != nil {
		n, err := strconv.Atoi(h.Value())
		if err != nil || n < 0 {
			respond(tx, req, 400, "Bad Expires header")
			return
		}
		expires = n
	}
	var contacts []*sipmsg.ContactHeader
	for _, h := range req.GetHeaders("Contact") {
		c, ok := h.(*sipmsg.ContactHeader)
		if !ok {
			continue
		}
		exp := expires
		if v, ok := c.Params.Get("expires"); ok {
			exp, _ = strconv.Atoi(v)
		}
		if c.Address.Wildcard && expires != 0 {
			respond(tx, req, 400, "Contact * needs Expires: 0")
			return
		}
		if exp > 0 && exp < minExpires {
			res := sipmsg.NewResponseFromRequest(req, 423, "Interval Too Brief", nil)
			res.AppendHeader(sipmsg.NewHeader("Min-Expires", strconv.Itoa(minExpires)))
			_ = tx.Respond(res)
			return
		}
		contacts = append(contacts, c)
	}
	now := time.Now()
	bs := s.reg.update(user.Ext, contacts, expires, now)
	res := sipmsg.NewResponseFromRequest(req, 200, "OK", nil)
	for _, b := range bs {
		c := &sipmsg.ContactHeader{Address: b.contact}
		c.Params = sipmsg.NewParams()
		c.Params.Add("expires", strconv.Itoa(int(b.expires.Sub(now).Round(time.Second).Seconds())))
		res.AppendHeader(c)
	}
	_ = tx.Respond(res)
	s.log.Info("registered", "ext", user.Ext, "bindings", len(bs))
}
