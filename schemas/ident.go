package schemas

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxIdentifierBytes bounds every identifier of a canonical event (the
// schema's "identifier" and "reference": invoice id, remote id, provider,
// source, number, provider event id and type, payment id) in UTF-8 bytes.
// An id becomes a KV key, a subject token, a header and a dedup id, and a
// NATS server closes the connection of a client whose protocol line (a
// subject with its reply and sizes) exceeds max_control_line, 4096 bytes
// by default: 255 bytes, escaped three times over at worst (subject.Token),
// stay well inside it. Providers document ids of 36 characters (UUIDs) or
// fewer.
const MaxIdentifierBytes = 255

// ErrIdentifier is returned for a value that cannot be an identifier.
var ErrIdentifier = errors.New("invalid identifier")

// CheckIdentifier reports why s cannot be an identifier: empty, beginning
// or ending with white space (a CloudEvent's subject is trimmed, and must
// equal the invoice id), over MaxIdentifierBytes, not UTF-8, or holding a
// control character (it would not survive a header).
func CheckIdentifier(field, s string) error {
	if s == "" {
		return fmt.Errorf("%w: %s is empty", ErrIdentifier, field)
	}
	if strings.TrimSpace(s) != s {
		return fmt.Errorf("%w: %s begins or ends with white space", ErrIdentifier, field)
	}
	return CheckReference(field, s)
}

// CheckReference is CheckIdentifier for a value that may be empty.
func CheckReference(field, s string) error {
	switch {
	case len(s) > MaxIdentifierBytes:
		return fmt.Errorf("%w: %s is %d bytes, at most %d", ErrIdentifier, field, len(s), MaxIdentifierBytes)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s is not UTF-8", ErrIdentifier, field)
	}
	if i := strings.IndexFunc(s, unicode.IsControl); i >= 0 {
		r, _ := utf8.DecodeRuneInString(s[i:])
		return fmt.Errorf("%w: %s holds the control character %U at byte %d", ErrIdentifier, field, r, i)
	}
	return nil
}
