package provider

import (
	"crypto/hmac"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// tv1Signature is the "t=<unix>,v1=<hex>" scheme of Qonto (and Pennylane):
// hex HMAC-SHA256 over "<t>.<body>" with the secret's raw bytes. Several v1
// entries may be present (the provider signing with old and new secrets).
type tv1Signature struct{ header string }

func (s tv1Signature) verify(req Request, creds Credentials) (Evidence, error) {
	values := req.Header.Values(s.header)
	if len(values) == 0 {
		return Evidence{}, unauthorized("missing %s", s.header)
	}
	if len(values) > 1 {
		return Evidence{}, unauthorized("more than one %s", s.header)
	}
	ts, sigs, err := parseTV1(values[0])
	if err != nil {
		return Evidence{}, unauthorized("%s: %s", s.header, err)
	}
	signedAt := time.Unix(ts, 0)
	if err := checkTolerance(signedAt, req.Received, creds.Tolerance); err != nil {
		return Evidence{}, err
	}
	payload := [][]byte{[]byte(strconv.FormatInt(ts, 10)), []byte("."), req.Body}
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

func (s tv1Signature) sign(secret Secret, body []byte, at time.Time) http.Header {
	ts := strconv.FormatInt(at.Unix(), 10)
	mac := hmacSHA256(secret.Bytes(), []byte(ts), []byte("."), body)
	h := http.Header{}
	h.Set(s.header, "t="+ts+",v1="+hex.EncodeToString(mac))
	h.Set("Content-Type", "application/json")
	return h
}

// parseTV1 reads "t=<unix>,v1=<hex>[,v1=<hex>...]". Unknown keys (future
// versions) are ignored; t must appear once and at least one v1.
func parseTV1(value string) (int64, [][]byte, error) {
	var ts int64
	var haveTS bool
	var sigs [][]byte
	for part := range strings.SplitSeq(value, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return 0, nil, errorString("bad element")
		}
		switch k {
		case "t":
			if haveTS {
				return 0, nil, errorString("t given twice")
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 || len(v) > 12 {
				return 0, nil, errorString("bad timestamp")
			}
			ts, haveTS = n, true
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != 32 {
				return 0, nil, errorString("bad v1 signature")
			}
			if len(sigs) == 10 {
				return 0, nil, errorString("too many signatures")
			}
			sigs = append(sigs, sig)
		}
	}
	if !haveTS {
		return 0, nil, errorString("no timestamp")
	}
	if len(sigs) == 0 {
		return 0, nil, errorString("no v1 signature")
	}
	return ts, sigs, nil
}

type errorString string

func (e errorString) Error() string { return string(e) }

// checkTolerance refuses a signed timestamp too far in the past (a replay)
// or in the future.
func checkTolerance(signedAt, received time.Time, tolerance time.Duration) error {
	switch skew := received.Sub(signedAt); {
	case skew > tolerance:
		return unauthorized("timestamp too old")
	case skew < -tolerance:
		return unauthorized("timestamp in the future")
	}
	return nil
}
