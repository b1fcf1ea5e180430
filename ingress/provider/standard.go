package provider

import (
	"crypto/hmac"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks v1 (https://www.standardwebhooks.com), also sent by
// Svix with svix- instead of webhook- headers: <p>id, <p>timestamp (unix
// seconds) and <p>signature, a space-separated list of "v1,<base64>";
// base64 HMAC-SHA256 over "<id>.<timestamp>.<body>" keyed with the secret's
// bytes (base64 after the whsec_ prefix).

// maxSignatures bounds the signatures a request may list.
const maxSignatures = 10

// standardKey decodes a whsec_ secret into its key.
func standardKey(_ string, raw []byte) ([]byte, error) {
	s := strings.TrimPrefix(strings.TrimSpace(string(raw)), "whsec_")
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(key) == 0 {
		return nil, errors.New("not a Standard Webhooks secret (whsec_ followed by base64)")
	}
	return key, nil
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
	payload := [][]byte{[]byte(id), []byte("."), []byte(tsText), []byte("."), req.Body}
	return matchHMAC(creds, signedAt, sigs, payload)
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
	ts := strconv.FormatInt(m.At.Unix(), 10)
	mac := hmacSHA256(creds.Secrets[0].Bytes(), []byte(m.ID), []byte("."), []byte(ts), []byte("."), m.Body)
	h := http.Header{}
	h.Set("Webhook-Id", m.ID)
	h.Set("Webhook-Timestamp", ts)
	h.Set("Webhook-Signature", "v1,"+base64.StdEncoding.EncodeToString(mac))
	h.Set("Content-Type", "application/json")
	return h
}

// matchHMAC finds the secret whose HMAC over payload is among sigs.
func matchHMAC(creds Credentials, signedAt time.Time, sigs [][]byte, payload [][]byte) (Evidence, error) {
	for i, secret := range creds.Secrets {
		want := hmacSHA256(secret.Bytes(), payload...)
		for _, sig := range sigs {
			if hmac.Equal(want, sig) {
				return Evidence{KeyIndex: i, SignedAt: signedAt}, nil
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
