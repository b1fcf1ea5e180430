package provider

import (
	"crypto/hmac"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/invoicehub/invoicehub/internal/standardwebhooks"
)

// Standard Webhooks v1 (the format: package schemas/standardwebhooks), also
// sent by Svix with svix- instead of webhook- headers.

// maxSignatures bounds the signatures a request may list.
const maxSignatures = 10

// standardSecret decodes a whsec_ secret into its key.
func standardSecret(_ string, raw []byte) (Secret, error) {
	key, err := standardwebhooks.DecodeSecret(string(raw))
	if err != nil {
		return Secret{}, err
	}
	if len(key) < standardMinKey {
		return Secret{}, fmt.Errorf("key too short: %d bytes, want at least %d", len(key), standardMinKey)
	}
	return NewSecret(key), nil
}

// standardIdentity reads the id and the signed time a Standard Webhooks (or
// Svix) delivery carries in its headers; the time is zero when absent. The
// id is checked as a dedup id when present.
func standardIdentity(h http.Header) (p, id string, at time.Time, err error) {
	p = standardHeaderSet(h)
	id = h.Get(p + "Id")
	if err := checkID(id); err != nil {
		return p, "", time.Time{}, err
	}
	if ts, err := strconv.ParseInt(h.Get(p+"Timestamp"), 10, 64); err == nil && ts > 0 {
		at = time.Unix(ts, 0)
	}
	return p, id, at, nil
}

// standardHeaderSet picks the webhook- or svix- spelling a request uses.
func standardHeaderSet(h http.Header) string {
	if h.Get("Svix-Id") != "" && h.Get("Webhook-Id") == "" {
		return "Svix-"
	}
	return "Webhook-"
}

func verifyStandard(req Request, creds Credentials) (Evidence, error) {
	p := standardHeaderSet(req.Header)
	id, err := single(req.Header, p+"Id")
	if err != nil {
		return Evidence{}, err
	}
	tsText, err := single(req.Header, p+"Timestamp")
	if err != nil {
		return Evidence{}, err
	}
	sigText, err := single(req.Header, p+"Signature")
	if err != nil {
		return Evidence{}, err
	}
	if len(id) > 256 {
		return Evidence{}, unauthorized("%sId too long", p)
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil || ts <= 0 || len(tsText) > 12 {
		return Evidence{}, unauthorized("bad %sTimestamp", p)
	}
	signedAt := time.Unix(ts, 0)
	if err := checkTolerance(signedAt, req.Received, creds.Tolerance); err != nil {
		return Evidence{}, err
	}
	sigs, err := parseStandardSignatures(sigText)
	if err != nil {
		return Evidence{}, unauthorized("%sSignature: %s", p, err)
	}
	return matchHMAC(creds, signedAt, sigs, func(key []byte) []byte {
		return standardwebhooks.Signature(key, id, tsText, req.Body)
	})
}

// parseStandardSignatures reads "v1,<b64> v1,<b64>"; entries of other
// versions (v1a: asymmetric) are skipped.
func parseStandardSignatures(value string) ([][]byte, error) {
	fields := strings.Fields(value)
	if len(fields) > maxSignatures {
		return nil, errorString("too many signatures")
	}
	var sigs [][]byte
	for _, f := range fields {
		version, sig, ok := strings.Cut(f, ",")
		if !ok {
			return nil, errorString("bad element")
		}
		if version != "v1" {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(sig)
		if err != nil || len(b) != 32 {
			return nil, errorString("bad v1 signature")
		}
		sigs = append(sigs, b)
	}
	if len(sigs) == 0 {
		return nil, errorString("no v1 signature")
	}
	return sigs, nil
}

func signStandard(creds Credentials, m Message) http.Header {
	h := http.Header{}
	standardwebhooks.Sign(h, creds.Secrets[0].Bytes(), m.ID, m.At, m.Body)
	h.Set("Content-Type", "application/json")
	return h
}

// matchHMAC finds the secret one of whose keys makes a MAC (as the scheme
// computes it) that is among sigs.
func matchHMAC(creds Credentials, signedAt time.Time, sigs [][]byte, mac func(key []byte) []byte) (Evidence, error) {
	for i, secret := range creds.Secrets {
		for _, key := range secret.Keys() {
			want := mac(key)
			for _, sig := range sigs {
				if hmac.Equal(want, sig) {
					return Evidence{KeyIndex: i, SignedAt: signedAt}, nil
				}
			}
		}
	}
	return Evidence{}, unauthorized("signature mismatch")
}

// single returns the one value of header name: a missing, empty or
// repeated authentication header is refused.
func single(h http.Header, name string) (string, error) {
	values := h.Values(name)
	switch {
	case len(values) == 0 || values[0] == "":
		return "", unauthorized("missing %s", name)
	case len(values) > 1:
		return "", unauthorized("more than one %s", name)
	}
	return values[0], nil
}
