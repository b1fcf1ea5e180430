package provider

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Minimum secret lengths, refused at start below them. Qonto documents its
// own bounds; the Standard Webhooks specification recommends keys of 24 to
// 64 bytes; the others document none, so 16 characters is our floor for a
// token a provider's dashboard generates or a person types.
const (
	qontoMinSecret, qontoMaxSecret = 32, 128
	standardMinKey                 = 24
	tokenMinSecret                 = 16
)

// checkLength refuses a secret shorter than min characters; the error
// never repeats the secret.
func checkLength(raw []byte, min int) error {
	if n := utf8.RuneCount(raw); n < min {
		return fmt.Errorf("too short: %d characters, want at least %d", n, min)
	}
	return nil
}

// tokenSecret is a static token compared as it is (Moxie, Mercoa's header
// and basic modes).
func tokenSecret(_ string, raw []byte) (Secret, error) {
	if err := checkLength(raw, tokenMinSecret); err != nil {
		return Secret{}, err
	}
	return NewSecret(raw), nil
}

// base64Reading returns the base64 decoding of a secret's text, standard
// or URL-safe alphabet, padded or not, or nil when it is not base64.
func base64Reading(text []byte) []byte {
	s := strings.TrimSpace(string(text))
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil && len(k) > 0 {
			return k
		}
	}
	return nil
}

// withReadings returns a secret whose canonical key is the text and whose
// other key, when there is one, is its base64 decoding after prefix.
func withReadings(text []byte, prefix string) Secret {
	rest, ok := bytes.CutPrefix(text, []byte(prefix))
	if !ok {
		return NewSecret(text)
	}
	if k := base64Reading(rest); k != nil {
		return NewSecret(text, k)
	}
	return NewSecret(text)
}
