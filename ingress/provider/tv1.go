package provider

import (
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// tv1Signature is Qonto's "t=<unix>,v1=<hex>" scheme: hex HMAC-SHA256 over
// "<t>.<body>" keyed with the webhook secret. Several v1 entries are
// accepted (a sender signing with an old and a new secret).
type tv1Signature struct{ header string }

func (s tv1Signature) verify(req Request, creds Credentials) (Evidence, error) {
	value, err := single(req.Header, s.header)
	if err != nil {
		return Evidence{}, err
	}
	ts, sigs, err := parseTV1(value)
	if err != nil {
		return Evidence{}, unauthorized("%s: %s", s.header, err)
	}
	signedAt := time.Unix(ts, 0)
	if err := checkTolerance(signedAt, req.Received, creds.Tolerance); err != nil {
		return Evidence{}, err
	}
	return matchHMAC(creds, signedAt, sigs, func(key []byte) []byte {
		return hmacSHA256(key, []byte(strconv.FormatInt(ts, 10)), []byte("."), req.Body)
	})
}

func (s tv1Signature) sign(creds Credentials, m Message) http.Header {
	ts := strconv.FormatInt(m.At.Unix(), 10)
	mac := hmacSHA256(creds.Secrets[0].Bytes(), []byte(ts), []byte("."), m.Body)
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
			if len(sigs) == maxSignatures {
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
