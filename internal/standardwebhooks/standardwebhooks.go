// Package standardwebhooks is the Standard Webhooks v1 signature format
// (https://www.standardwebhooks.com), shared by ingress, which verifies it
// on what senders post, and the http sink, which signs what it posts:
// webhook-id, webhook-timestamp (unix seconds) and webhook-signature, a
// space-separated list of "v1,<base64 HMAC-SHA256 of id.timestamp.body>",
// keyed with the bytes of a whsec_ secret.
package standardwebhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names; Svix sends the same with svix- instead of webhook-.
const (
	HeaderID        = "Webhook-Id"
	HeaderTimestamp = "Webhook-Timestamp"
	HeaderSignature = "Webhook-Signature"
)

// ErrSecret is returned for a secret that is not whsec_ and base64.
var ErrSecret = errors.New("not a Standard Webhooks secret (whsec_ followed by base64)")

// DecodeSecret returns the key of a whsec_ secret (the prefix is optional).
// The error never repeats the secret.
func DecodeSecret(secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(strings.TrimSpace(secret), "whsec_"))
	if err != nil || len(key) == 0 {
		return nil, ErrSecret
	}
	return key, nil
}

// Signature returns HMAC-SHA256(key, "<id>.<timestamp>.<body>"), the bytes
// a v1 signature carries in base64.
func Signature(key []byte, id, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte("."))
	m.Write([]byte(timestamp))
	m.Write([]byte("."))
	m.Write(body)
	return m.Sum(nil)
}

// Sign sets the webhook-id and webhook-timestamp headers of a delivery of
// body at at, and its webhook-signature when key is not nil.
func Sign(h http.Header, key []byte, id string, at time.Time, body []byte) {
	ts := strconv.FormatInt(at.Unix(), 10)
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, ts)
	if key != nil {
		h.Set(HeaderSignature, "v1,"+base64.StdEncoding.EncodeToString(Signature(key, id, ts, body)))
	}
}
