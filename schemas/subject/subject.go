// Package subject names the JetStream streams and builds the NATS subjects
// of invoicehub's wire contract:
//
//	webhooks.<provider>.<source>                 raw webhooks (stream WEBHOOKS)
//	invoices.v1.<kind>.<provider>.<source>       canonical events (stream INVOICES)
//	dlq.<stage>.<consumer>                       dead letters (stream DLQ)
//	replay.<stage>.<consumer>                    dead letters sent back to one consumer
//	                                             (in the stage's input stream)
//	ledger.<stage>.<consumer>.<invoice>          the delivery ledger: one entry per
//	                                             attempt (stream LEDGER)
//
// Every variable token is escaped with Token, so a value can never add a
// level or a wildcard to a subject.
package subject

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Stream names.
const (
	WebhooksStream = "WEBHOOKS" // raw webhooks, body byte-for-byte (the archive)
	InvoicesStream = "INVOICES" // canonical invoice events
	DLQStream      = "DLQ"      // dead letters with their reason
	LedgerStream   = "LEDGER"   // every delivery attempt, for operators
)

// Roots of the subject spaces.
const (
	WebhooksRoot = "webhooks"
	InvoicesRoot = "invoices.v1"
	DLQRoot      = "dlq"
	ReplayRoot   = "replay"
	LedgerRoot   = "ledger"
)

// Token escapes s into a single subject token. Letters, digits, '-' and '_'
// stay as they are; every other byte (including '.', '*', '>', whitespace and
// '%' itself) becomes %XX with upper-case hex, the way URLs escape. The empty
// string becomes a lone "%", which no escape produces, so a token is never
// empty. A value whose escape would pass MaxTokenBytes becomes "%%" and the
// hex SHA-256 of its bytes (66 bytes), which no escape produces either: so
// no value, however long, makes a subject the server refuses (its whole
// protocol line is bounded by max_control_line, 4096 bytes by default, and
// the server closes the connection of a client that passes it), and Token
// stays injective: distinct inputs give distinct tokens.
func Token(s string) string {
	if s == "" {
		return "%"
	}
	if isPlain(s) && len(s) <= MaxTokenBytes {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if plainByte(c) {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
		if b.Len() > MaxTokenBytes {
			return hashed(s)
		}
	}
	return b.String()
}

// MaxTokenBytes is the longest token Token writes as an escape; a longer
// one is hashed.
const MaxTokenBytes = 256

// hashed is the token of a value too long to escape.
func hashed(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "%%" + hex.EncodeToString(sum[:])
}

func isPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		if !plainByte(s[i]) {
			return false
		}
	}
	return true
}

func plainByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// Webhook returns webhooks.<provider>.<source>.
func Webhook(provider, source string) string {
	return WebhooksRoot + "." + Token(provider) + "." + Token(source)
}

// Invoice returns invoices.v1.<kind>.<provider>.<source>.
func Invoice(kind, provider, source string) string {
	return InvoicesRoot + "." + Token(kind) + "." + Token(provider) + "." + Token(source)
}

// DeadLetter returns dlq.<stage>.<consumer>.
func DeadLetter(stage, consumer string) string {
	return DLQRoot + "." + Token(stage) + "." + Token(consumer)
}

// Replay returns replay.<stage>.<consumer>: a dead letter published there
// reaches only that consumer, which filters on it.
func Replay(stage, consumer string) string {
	return ReplayRoot + "." + Token(stage) + "." + Token(consumer)
}

// Ledger returns ledger.<stage>.<consumer>.<invoice>, where one invoice's
// attempts on one consumer are recorded ("" for a delivery of no known
// invoice).
func Ledger(stage, consumer, invoice string) string {
	return LedgerRoot + "." + Token(stage) + "." + Token(consumer) + "." + Token(invoice)
}

// LedgerOfInvoice returns the filter over every consumer's entries of one
// invoice.
func LedgerOfInvoice(invoice string) string {
	return LedgerRoot + ".*.*." + Token(invoice)
}

// InvoiceFilter returns a filter over canonical subjects; an empty argument
// matches any value ("*"). InvoiceFilter("paid", "", "") is invoices.v1.paid.*.*.
func InvoiceFilter(kind, provider, source string) string {
	return InvoicesRoot + "." + wildcard(kind) + "." + wildcard(provider) + "." + wildcard(source)
}

func wildcard(s string) string {
	if s == "" {
		return "*"
	}
	return Token(s)
}
