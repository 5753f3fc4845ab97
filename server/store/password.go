package store

import (
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// passwordIterations follows OWASP's advice for PBKDF2-HMAC-SHA256 (about
// 0.1 s per login on a small server). Each hash records its own count, so
// raising this later keeps old passwords working.
const passwordIterations = 600_000

const (
	passwordAlg     = "pbkdf2-sha256"
	passwordSaltLen = 16
	passwordKeyLen  = 32
)

// hashPassword returns "pbkdf2-sha256$<iterations>$<salt>$<hash>", salt and
// hash in unpadded standard base64.
func hashPassword(password string, iterations int) (string, error) {
	salt := make([]byte, passwordSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key, err := pbkdf2.Key(sha256.New, password, salt, iterations, passwordKeyLen)
	if err != nil {
		return "", err
	}
	enc := base64.RawStdEncoding
	return fmt.Sprintf("%s$%d$%s$%s", passwordAlg, iterations, enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

var errBadPasswordHash = errors.New("unreadable password hash")

// verifyPassword reports whether password matches the encoded hash.
func verifyPassword(encoded, password string) (bool, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 4 || parts[0] != passwordAlg {
		return false, errBadPasswordHash
	}
	iterations, err := strconv.Atoi(parts[1])
	if err != nil || iterations < 1 {
		return false, errBadPasswordHash
	}
	enc := base64.RawStdEncoding
	salt, err := enc.DecodeString(parts[2])
	if err != nil {
		return false, errBadPasswordHash
	}
	want, err := enc.DecodeString(parts[3])
	if err != nil || len(want) == 0 {
		return false, errBadPasswordHash
	}
	got, err := pbkdf2.Key(sha256.New, password, salt, iterations, len(want))
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// ha1 returns the SIP digest HA1s, hex MD5 and SHA-256 of ext:realm:password
// (RFC 2617, RFC 7616); the digest username is the extension.
func ha1(ext, password string) (md5Hex, sha256Hex string) {
	s := ext + ":" + Realm + ":" + password
	m := md5.Sum([]byte(s))
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(m[:]), hex.EncodeToString(h[:])
}
