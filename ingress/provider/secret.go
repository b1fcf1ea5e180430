package provider

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"log/slog"
)

// Secret is one configured webhook secret and the keys it may stand for.
// Where a provider's documentation allows more than one reading of its
// secrets (the text itself, or its base64 decoding), each reading is a key
// and any of them verifies. The first key is the canonical reading: static
// tokens compare with it and Sign uses it. A Secret never prints: fmt and
// slog show REDACTED.
type Secret struct{ keys [][]byte }

// NewSecret wraps the keys of one secret, first the canonical reading.
// Repeated readings are kept once.
func NewSecret(keys ...[]byte) Secret {
	var s Secret
	for _, k := range keys {
		if !containsKey(s.keys, k) {
			s.keys = append(s.keys, bytes.Clone(k))
		}
	}
	return s
}

func containsKey(keys [][]byte, k []byte) bool {
	for _, have := range keys {
		if bytes.Equal(have, k) {
			return true
		}
	}
	return false
}

// Bytes returns the canonical reading of the secret.
func (s Secret) Bytes() []byte {
	if len(s.keys) == 0 {
		return nil
	}
	return s.keys[0]
}

// Keys returns every reading of the secret, the canonical one first.
func (s Secret) Keys() [][]byte { return s.keys }

// String implements fmt.Stringer without revealing the secret.
func (Secret) String() string { return "REDACTED" }

// GoString keeps %#v from revealing the secret.
func (Secret) GoString() string { return "provider.Secret{REDACTED}" }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// hmacSHA256 returns HMAC-SHA256(key, parts...).
func hmacSHA256(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}
