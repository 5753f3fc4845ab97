package media

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// Direction is the SDP media direction attribute (RFC 3264 §5.1).
type Direction string

const (
	SendRecv Direction = "sendrecv"
	SendOnly Direction = "sendonly"
	RecvOnly Direction = "recvonly"
	Inactive Direction = "inactive"
)

// SessionDesc is what an audio leg needs from an SDP body: plain RTP/AVP, or DTLS-SRTP
// (UDP/TLS/RTP/SAVP) with the fingerprint and setup role of RFC 5763.
type SessionDesc struct {
	Addr      netip.AddrPort // where the peer wants RTP (media-level c= overrides session-level)
	Codecs    []Codec        // audio codecs we understand, in the peer's order of preference (unknown PTs skipped)
	DTMFType  uint8          // payload type of telephone-event/8000, 0 if absent
	Direction Direction      // default sendrecv
	Ptime     int            // ms, 0 if absent
	// LevelsID is the RFC 8285 id of the RFC 6465 csrc-audio-level extension, 0 if absent.
	LevelsID uint8
	// DTLS, when set, makes the stream UDP/TLS/RTP/SAVP: SRTP keyed by a DTLS handshake on
	// the RTP port (RFC 5763, RFC 5764). Nil is plain RTP/AVP.
	DTLS *DTLSParams
	// RTCPMux: RTCP shares the RTP port (a=rtcp-mux, RFC 5761). We offer it with DTLS-SRTP
	// (one DTLS association per port) and answer it only when offered.
	RTCPMux bool
}

// DTLSParams are the SDP attributes of a DTLS-SRTP stream.
type DTLSParams struct {
	Fingerprint string // a=fingerprint value: "sha-256 AB:CD:…" (RFC 8122)
	Setup       string // a=setup: actpass, active or passive (RFC 4145, RFC 5763 §5)
}

var (
	ErrNoAudio        = errors.New("media: SDP has no audio stream")
	ErrNoCommonCodec  = errors.New("media: no codec in common")
	ErrBadSDP         = errors.New("media: bad SDP")
	ErrEncryptedMedia = errors.New("media: encrypted media (SRTP) is not supported on plain RTP legs")
)

// ParseSDP parses the first audio m-line. A port of 0 (stream refused) and
// c=0.0.0.0 (RFC 2543 hold) are not errors: they come back as Inactive.
func ParseSDP(body []byte) (SessionDesc, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		// pion accepts an empty body; for us it is a missing offer or answer.
		return SessionDesc{}, fmt.Errorf("%w: empty body", ErrBadSDP)
	}
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(body); err != nil {
		return SessionDesc{}, fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	var md *sdp.MediaDescription
	for _, m := range sd.MediaDescriptions {
		if m.MediaName.Media == "audio" {
			md = m
			break
		}
	}
	if md == nil {
		return SessionDesc{}, ErrNoAudio
	}
	proto := strings.Join(md.MediaName.Protos, "/")
	d := SessionDesc{Direction: SendRecv}
	switch strings.ToUpper(proto) {
	case "RTP/AVP", "RTP/AVPF":
	case "UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF":
		fp, ok := md.Attribute("fingerprint")
		if !ok {
			fp, ok = sd.Attribute("fingerprint")
		}
		if !ok || strings.TrimSpace(fp) == "" {
			return SessionDesc{}, fmt.Errorf("%w (the offer uses %s without a=fingerprint)", ErrEncryptedMedia, proto)
		}
		setup, ok := md.Attribute("setup")
		if !ok {
			setup, _ = sd.Attribute("setup")
		}
		d.DTLS = &DTLSParams{Fingerprint: strings.TrimSpace(fp), Setup: strings.ToLower(strings.TrimSpace(setup))}
	case "RTP/SAVP", "RTP/SAVPF":
		return SessionDesc{}, fmt.Errorf("%w (the offer uses %s with SDES keys; DTLS-SRTP, UDP/TLS/RTP/SAVP, is supported)", ErrEncryptedMedia, proto)
	default:
		return SessionDesc{}, fmt.Errorf("%w: audio transport %q is not RTP/AVP", ErrBadSDP, proto)
	}

	port := md.MediaName.Port.Value
	if port < 0 || port > 65535 {
		return SessionDesc{}, fmt.Errorf("%w: audio port %d out of range", ErrBadSDP, port)
	}
	conn := md.ConnectionInformation
	if conn == nil {
		conn = sd.ConnectionInformation
	}
	addr, err := connectionAddr(conn)
	switch {
	case err == nil:
		d.Addr = netip.AddrPortFrom(addr, uint16(port))
	case port != 0: // a refused stream needs no address
		return SessionDesc{}, err
	}

	for _, f := range md.MediaName.Formats {
		pt, err := strconv.ParseUint(f, 10, 7)
		if err != nil {
			continue
		}
		switch name := rtpmapName(md, f); {
		case pt == uint64(PCMU) || pt == uint64(PCMA):
			if !slices.Contains(d.Codecs, Codec(pt)) {
				d.Codecs = append(d.Codecs, Codec(pt))
			}
		case strings.EqualFold(name, "telephone-event/8000") && d.DTMFType == 0:
			d.DTMFType = uint8(pt)
		}
	}

	if v, ok := sd.Attribute("ptime"); ok {
		d.Ptime, _ = strconv.Atoi(strings.TrimSpace(v))
	}
	if v, ok := md.Attribute("ptime"); ok {
		d.Ptime, _ = strconv.Atoi(strings.TrimSpace(v))
	}
	d.Ptime = max(d.Ptime, 0)
	for _, a := range md.Attributes {
		if a.Key != "extmap" {
			continue
		}
		idDir, uri, _ := strings.Cut(strings.TrimSpace(a.Value), " ")
		idStr, _, _ := strings.Cut(idDir, "/")
		id, err := strconv.ParseUint(idStr, 10, 8)
		// One-byte headers carry ids 1..14 (RFC 8285 §4.2).
		if err == nil && id >= 1 && id <= 14 && strings.TrimSpace(uri) == CSRCAudioLevelURI {
			d.LevelsID = uint8(id)
		}
	}
	_, d.RTCPMux = md.Attribute("rtcp-mux")
	d.Direction = direction(sd.Attributes, d.Direction)
	d.Direction = direction(md.Attributes, d.Direction)
	if port == 0 || addr.IsUnspecified() {
		d.Direction = Inactive
	}
	return d, nil
}

func connectionAddr(c *sdp.ConnectionInformation) (netip.Addr, error) {
	if c == nil || c.Address == nil {
		return netip.Addr{}, fmt.Errorf("%w: no connection address (c=) for audio", ErrBadSDP)
	}
	addr, err := netip.ParseAddr(c.Address.Address)
	if err != nil || addr.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%w: connection address %q is not an IP address", ErrBadSDP, c.Address.Address)
	}
	return addr.Unmap(), nil
}

// rtpmapName returns the encoding of payload type pt, e.g. "PCMU/8000".
func rtpmapName(md *sdp.MediaDescription, pt string) string {
	for _, a := range md.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		if p, enc, ok := strings.Cut(strings.TrimSpace(a.Value), " "); ok && p == pt {
			return strings.TrimSpace(enc)
		}
	}
	return ""
}

func direction(attrs []sdp.Attribute, def Direction) Direction {
	for _, a := range attrs {
		switch d := Direction(a.Key); d {
		case SendRecv, SendOnly, RecvOnly, Inactive:
			return d
		}
	}
	return def
}

// Negotiate picks the first codec of the offer that is in supported, so the
// offerer's preference wins (RFC 3264 §6.1).
func Negotiate(offer SessionDesc, supported []Codec) (Codec, error) {
	for _, c := range offer.Codecs {
		for _, s := range supported {
			if c == s {
				return c, nil
			}
		}
	}
	return 0, fmt.Errorf("%w: offer has %v, we support %v", ErrNoCommonCodec, offer.Codecs, supported)
}

// Marshal builds an SDP body for d. Output is deterministic, so tests can
// compare it and a re-INVITE with unchanged media repeats it exactly.
// ptime is always 20: the media path works in FrameDuration frames.
func (d SessionDesc) Marshal(sessionID, version uint64) []byte {
	addrType, addr := "IP4", "0.0.0.0"
	if d.Addr.Addr().IsValid() {
		addr = d.Addr.Addr().String()
		if d.Addr.Addr().Is6() {
			addrType = "IP6"
		}
	}
	formats := make([]string, 0, len(d.Codecs)+1)
	attrs := make([]sdp.Attribute, 0, len(d.Codecs)+4)
	for _, c := range d.Codecs {
		pt := strconv.Itoa(int(c))
		formats = append(formats, pt)
		attrs = append(attrs, sdp.NewAttribute("rtpmap", pt+" "+c.String()+"/8000"))
	}
	if d.DTMFType != 0 {
		pt := strconv.Itoa(int(d.DTMFType))
		formats = append(formats, pt)
		attrs = append(attrs,
			sdp.NewAttribute("rtpmap", pt+" telephone-event/8000"),
			sdp.NewAttribute("fmtp", pt+" 0-16"))
	}
	if d.LevelsID != 0 {
		attrs = append(attrs, sdp.NewAttribute("extmap", strconv.Itoa(int(d.LevelsID))+" "+CSRCAudioLevelURI))
	}
	dir := d.Direction
	if dir == "" {
		dir = SendRecv
	}
	attrs = append(attrs,
		sdp.NewAttribute("ptime", strconv.Itoa(int(FrameDuration.Milliseconds()))),
		sdp.NewPropertyAttribute(string(dir)))
	protos := []string{"RTP", "AVP"}
	if d.DTLS != nil {
		protos = []string{"UDP", "TLS", "RTP", "SAVP"}
		attrs = append(attrs, sdp.NewAttribute("fingerprint", d.DTLS.Fingerprint))
		if d.DTLS.Setup != "" {
			attrs = append(attrs, sdp.NewAttribute("setup", d.DTLS.Setup))
		}
	}
	if d.RTCPMux {
		attrs = append(attrs, sdp.NewPropertyAttribute("rtcp-mux"))
	}

	sd := sdp.SessionDescription{
		Origin: sdp.Origin{
			Username: "ringside", SessionID: sessionID, SessionVersion: version,
			NetworkType: "IN", AddressType: addrType, UnicastAddress: addr,
		},
		SessionName: "ringside",
		ConnectionInformation: &sdp.ConnectionInformation{
			NetworkType: "IN", AddressType: addrType, Address: &sdp.Address{Address: addr},
		},
		TimeDescriptions: []sdp.TimeDescription{{}},
		MediaDescriptions: []*sdp.MediaDescription{{
			MediaName: sdp.MediaName{
				Media:   "audio",
				Port:    sdp.RangedPort{Value: int(d.Addr.Port())},
				Protos:  protos,
				Formats: formats,
			},
			Attributes: attrs,
		}},
	}
	b, err := sd.Marshal()
	if err != nil {
		// Marshal only fails on values this function never builds.
		panic("media: marshal SDP: " + err.Error())
	}
	return b
}
