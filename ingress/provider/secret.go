package provider

import (
	"crypto/hmac"
	"crypto/sha256"
	"log/slog"
)

// Secret is a webhook secret. It never prints: fmt and slog show REDACTED.
type Secret struct{ b []byte }

// NewSecret wraps the secret bytes.
func NewSecret(b []byte) Secret { return Secret{b: append([]byte(nil), b...)} }

// Bytes returns the secret's bytes.
func (s Secret) Bytes() []byte { return s.b }

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
