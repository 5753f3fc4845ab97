package digest

import (
	"errors"
	"strings"
)

// maxHeaderLen bounds the Authorization value we are willing to parse. Real
// headers are a few hundred bytes; anything much larger is abuse.
const maxHeaderLen = 8 << 10

// maxParams bounds the number of auth-params in one header.
const maxParams = 32

var errMalformed = errors.New("digest: malformed authorization")

// param is one auth-param of a credentials header.
type param struct {
	name   string // lower case
	value  string // unquoted and unescaped
	quoted bool
}

// cutScheme reports whether h is a Digest credentials value and returns the
// text after the scheme. The scheme name is case-insensitive (RFC 3261 §25.1).
func cutScheme(h string) (string, bool) {
	h = strings.TrimLeft(h, " \t\r\n")
	const scheme = "digest"
	if len(h) < len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return "", false
	}
	rest := h[len(scheme):]
	if rest == "" {
		return "", true // "Digest" alone: a digest header with no params (malformed later)
	}
	if !isLWS(rest[0]) {
		return "", false // e.g. "DigestX ..."
	}
	return rest, true
}

func isLWS(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// isTokenChar reports whether c may appear in an RFC 3261 token.
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-.!%*_+`'~", c) >= 0
}

// parseParams parses a comma separated list of auth-params:
//
//	auth-param = name LWS? "=" LWS? ( token / quoted-string )
//
// Names are returned lower case; quoted values are unescaped. Empty list
// elements (",,") are tolerated as in RFC 7230 §7. Anything else that does
// not fit the grammar is an error; the parser never panics.
func parseParams(s string) ([]param, error) {
	if len(s) > maxHeaderLen {
		return nil, errMalformed
	}
	var out []param
	i := 0
	skip := func() {
		for i < len(s) && isLWS(s[i]) {
			i++
		}
	}
	for {
		// Skip separators and empty elements.
		for i < len(s) && (isLWS(s[i]) || s[i] == ',') {
			i++
		}
		if i >= len(s) {
			break
		}
		start := i
		for i < len(s) && isTokenChar(s[i]) {
			i++
		}
		if i == start {
			return nil, errMalformed
		}
		name := strings.ToLower(s[start:i])
		skip()
		if i >= len(s) || s[i] != '=' {
			return nil, errMalformed
		}
		i++
		skip()
		var p param
		p.name = name
		if i < len(s) && s[i] == '"' {
			i++
			var b strings.Builder
			closed := false
			for i < len(s) {
				c := s[i]
				if c == '\\' {
					if i+1 >= len(s) {
						return nil, errMalformed
					}
					b.WriteByte(s[i+1])
					i += 2
					continue
				}
				if c == '"' {
					i++
					closed = true
					break
				}
				b.WriteByte(c)
				i++
			}
			if !closed {
				return nil, errMalformed
			}
			p.value, p.quoted = b.String(), true
		} else {
			start := i
			for i < len(s) && isTokenChar(s[i]) {
				i++
			}
			if i == start {
				return nil, errMalformed
			}
			p.value = s[start:i]
		}
		out = append(out, p)
		if len(out) > maxParams {
			return nil, errMalformed
		}
		skip()
		if i < len(s) && s[i] != ',' {
			return nil, errMalformed
		}
	}
	return out, nil
}

// authorization holds the directives of a Digest credentials header that
// matter to the server.
type authorization struct {
	username, realm, nonce, uri, response string
	algorithm, cnonce, opaque, qop, nc    string
	hasOpaque                             bool
	userhash                              string
}

// parseAuthorization parses the params of a Digest Authorization value (the
// text after the scheme). Each known directive may appear at most once
// (RFC 7616 §3.4).
func parseAuthorization(s string) (*authorization, error) {
	pp, err := parseParams(s)
	if err != nil {
		return nil, err
	}
	var a authorization
	seen := make(map[string]bool, len(pp))
	for _, p := range pp {
		var dst *string
		switch p.name {
		case "username":
			dst = &a.username
		case "realm":
			dst = &a.realm
		case "nonce":
			dst = &a.nonce
		case "uri":
			dst = &a.uri
		case "response":
			dst = &a.response
		case "algorithm":
			dst = &a.algorithm
		case "cnonce":
			dst = &a.cnonce
		case "opaque":
			dst = &a.opaque
			a.hasOpaque = true
		case "qop":
			dst = &a.qop
		case "nc":
			dst = &a.nc
		case "userhash":
			dst = &a.userhash
		default:
			continue // unknown directives are ignored
		}
		if seen[p.name] {
			return nil, errMalformed
		}
		seen[p.name] = true
		*dst = p.value
	}
	return &a, nil
}

// Username returns the username claimed by a Digest Authorization header
// value, or "" when there is none. It does not authenticate anything; it is
// meant for logging failed attempts.
func Username(authorization string) string {
	rest, ok := cutScheme(authorization)
	if !ok {
		return ""
	}
	a, err := parseAuthorization(rest)
	if err != nil {
		return ""
	}
	return a.username
}
