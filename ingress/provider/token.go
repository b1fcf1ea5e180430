package provider

import (
	"crypto/hmac"
	"crypto/sha256"
	"net/http"
	"strings"
)

// Static-token schemes for providers that do not sign (Moxie, Mercoa):
// the secret itself travels with each request, as a Bearer token, as the
// password of Basic auth, or in a header the source names. Compared in
// constant time (of digests, so the length does not leak either).

const (
	modeBearer = "bearer"
	modeBasic  = "basic"
	modeHeader = "header"
)

func verifyToken(req Request, creds Credentials, mode string) (Evidence, error) {
	token, err := presentedToken(req.Header, creds, mode)
	if err != nil {
		return Evidence{}, err
	}
	for i, secret := range creds.Secrets {
		if equalDigest(token, secret.Bytes()) {
			return Evidence{KeyIndex: i}, nil
		}
	}
	return Evidence{}, unauthorized("wrong credentials")
}

func presentedToken(h http.Header, creds Credentials, mode string) ([]byte, error) {
	switch mode {
	case modeBearer:
		v, err := single(h, "Authorization")
		if err != nil {
			return nil, err
		}
		scheme, token, ok := strings.Cut(v, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
			return nil, unauthorized("Authorization is not a Bearer token")
		}
		return []byte(token), nil
	case modeBasic:
		if _, err := single(h, "Authorization"); err != nil {
			return nil, err
		}
		r := http.Request{Header: h}
		user, pass, ok := r.BasicAuth()
		if !ok {
			return nil, unauthorized("Authorization is not Basic")
		}
		if !equalDigest([]byte(user), []byte(creds.User)) {
			return nil, unauthorized("wrong credentials")
		}
		return []byte(pass), nil
	case modeHeader:
		v, err := single(h, creds.Header)
		if err != nil {
			return nil, err
		}
		return []byte(v), nil
	}
	return nil, unauthorized("unsupported mode %q", mode)
}

func signToken(creds Credentials, mode string) http.Header {
	h := http.Header{}
	secret := string(creds.Secrets[0].Bytes())
	switch mode {
	case modeBearer:
		h.Set("Authorization", "Bearer "+secret)
	case modeBasic:
		r := http.Request{Header: h}
		r.SetBasicAuth(creds.User, secret)
	case modeHeader:
		h.Set(creds.Header, secret)
	}
	h.Set("Content-Type", "application/json")
	return h
}

func equalDigest(a, b []byte) bool {
	da, db := sha256.Sum256(a), sha256.Sum256(b)
	return hmac.Equal(da[:], db[:])
}
