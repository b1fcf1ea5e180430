package provider

import (
	"bytes"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Qonto's documented test vector.
const (
	qontoVectorBody   = `{"test":"data"}`
	qontoVectorSecret = "test-secret"
	qontoVectorHeader = "t=1704110400,v1=56aff06dc227db80d6568a5070f912c601c31f20451745d257cbc0b5dfa93805"
)

var qontoVectorTime = time.Unix(1704110400, 0)

func qontoRequest(header string, body string, received time.Time) Request {
	h := http.Header{}
	if header != "" {
		h.Set("X-Qonto-Signature", header)
	}
	return Request{Header: h, Body: []byte(body), Received: received}
}

func creds(secrets ...string) Credentials {
	c := Credentials{Tolerance: 5 * time.Minute}
	for _, s := range secrets {
		c.Secrets = append(c.Secrets, NewSecret([]byte(s)))
	}
	return c
}

func TestQontoKnownAnswer(t *testing.T) {
	ev, err := qonto.Verify(qontoRequest(qontoVectorHeader, qontoVectorBody, qontoVectorTime.Add(2*time.Second)), creds(qontoVectorSecret))
	if err != nil {
		t.Fatal(err)
	}
	if ev.KeyIndex != 0 || !ev.SignedAt.Equal(qontoVectorTime) {
		t.Fatalf("evidence %+v", ev)
	}
	if skew := ev.ClockSkew(qontoVectorTime.Add(2 * time.Second)); skew != -2*time.Second {
		t.Fatalf("skew %v", skew)
	}
}

// signQonto produces a valid header, as Qonto would.
func signQonto(secret, body string, at time.Time) string {
	return qonto.Sign(NewSecret([]byte(secret)), []byte(body), at).Get("X-Qonto-Signature")
}

func TestQontoSignMatchesVector(t *testing.T) {
	if got := signQonto(qontoVectorSecret, qontoVectorBody, qontoVectorTime); got != qontoVectorHeader {
		t.Fatalf("Sign = %q, want Qonto's vector %q", got, qontoVectorHeader)
	}
}

func TestQontoVerify(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	body := `{"id":"e1","event_type":"client_invoices.created"}`
	good := signQonto("new", body, now)
	tests := []struct {
		name     string
		header   string
		body     string
		secrets  []string
		received time.Time
		wantKey  int
		wantErr  string
	}{
		{"valid", good, body, []string{"new"}, now, 0, ""},
		{"second secret matches", good, body, []string{"old", "new"}, now, 1, ""},
		{"edge of tolerance", good, body, []string{"new"}, now.Add(5 * time.Minute), 0, ""},
		{"two v1, second good", strings.Replace(good, ",v1=", ",v1="+strings.Repeat("0", 64)+",v1=", 1), body, []string{"new"}, now, 0, ""},
		{"missing header", "", body, []string{"new"}, now, 0, "missing X-Qonto-Signature"},
		{"wrong secret", good, body, []string{"other"}, now, 0, "signature mismatch"},
		{"tampered body", good, body + " ", []string{"new"}, now, 0, "signature mismatch"},
		{"stale", good, body, []string{"new"}, now.Add(5*time.Minute + time.Second), 0, "too old"},
		{"future", good, body, []string{"new"}, now.Add(-5*time.Minute - time.Second), 0, "future"},
		{"replayed with new timestamp", strings.Replace(good, "t=1700000000", "t=1700000100", 1), body, []string{"new"}, now, 0, "signature mismatch"},
		{"no timestamp", "v1=" + strings.Repeat("a", 64), body, []string{"new"}, now, 0, "no timestamp"},
		{"no signature", "t=1700000000", body, []string{"new"}, now, 0, "no v1"},
		{"short signature", "t=1700000000,v1=abcd", body, []string{"new"}, now, 0, "bad v1"},
		{"non-hex signature", "t=1700000000,v1=" + strings.Repeat("z", 64), body, []string{"new"}, now, 0, "bad v1"},
		{"negative timestamp", "t=-5,v1=" + strings.Repeat("a", 64), body, []string{"new"}, now, 0, "bad timestamp"},
		{"garbage", "hello", body, []string{"new"}, now, 0, "bad element"},
		{"no secrets configured", good, body, nil, now, 0, "signature mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := qonto.Verify(qontoRequest(tt.header, tt.body, tt.received), creds(tt.secrets...))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if ev.KeyIndex != tt.wantKey {
					t.Fatalf("key index %d, want %d", ev.KeyIndex, tt.wantKey)
				}
				return
			}
			if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want unauthorized containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestQontoDuplicatedHeaderRefused(t *testing.T) {
	req := qontoRequest(qontoVectorHeader, qontoVectorBody, qontoVectorTime)
	req.Header.Add("X-Qonto-Signature", qontoVectorHeader)
	if _, err := qonto.Verify(req, creds(qontoVectorSecret)); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("got %v", err)
	}
}

func TestQontoIdentify(t *testing.T) {
	tests := []struct {
		name, body string
		want       Identity
		wantErr    bool
	}{
		{"created", `{"id":"e1","event_type":"client_invoices.created","created_at":"2024-01-01T12:00:00Z","data":{}}`,
			Identity{ID: "e1", Type: "com.qonto.client_invoices.created", Time: time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)}, false},
		{"no time", `{"id":"e2","event_type":"client_invoices.updated"}`, Identity{ID: "e2", Type: "com.qonto.client_invoices.updated"}, false},
		{"not json", `hello`, Identity{}, true},
		{"array", `[]`, Identity{}, true},
		{"no id", `{"event_type":"client_invoices.created"}`, Identity{}, true},
		{"no type", `{"id":"e1"}`, Identity{}, true},
		{"type with spaces", `{"id":"e1","event_type":"a b"}`, Identity{}, true},
		{"bad time", `{"id":"e1","event_type":"x","created_at":"yesterday"}`, Identity{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := qonto.Identify(Request{Body: []byte(tt.body)})
			if tt.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("got %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil || got.ID != tt.want.ID || got.Type != tt.want.Type || !got.Time.Equal(tt.want.Time) {
				t.Fatalf("got %+v, %v", got, err)
			}
		})
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := NewSecret([]byte("hunter2"))
	for _, out := range []string{s.String(), s.GoString(), s.LogValue().String()} {
		if strings.Contains(out, "hunter2") {
			t.Fatalf("secret printed: %s", out)
		}
	}
}

func FuzzQontoVerify(f *testing.F) {
	f.Add(qontoVectorHeader, []byte(qontoVectorBody))
	f.Add("t=1,v1=00", []byte("{}"))
	f.Add("t=1704110400,v1=,v1=x,t=2", []byte(nil))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		req := Request{Header: http.Header{"X-Qonto-Signature": {header}}, Body: body, Received: qontoVectorTime}
		ev, err := qonto.Verify(req, creds(qontoVectorSecret))
		if err == nil {
			// Accepted: one of the header's v1 values must be the true MAC
			// of these exact bytes (hex case does not matter).
			ts := strconv.FormatInt(ev.SignedAt.Unix(), 10)
			want := hmacSHA256([]byte(qontoVectorSecret), []byte(ts), []byte("."), body)
			_, sigs, _ := parseTV1(header)
			if !slices.ContainsFunc(sigs, func(sig []byte) bool { return bytes.Equal(sig, want) }) {
				t.Fatalf("accepted forged header %q for body %q", header, body)
			}
		}
		if err != nil && !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("unclassified error %v", err)
		}
	})
}

func FuzzIdentifyEnvelope(f *testing.F) {
	f.Add([]byte(`{"id":"e1","event_type":"client_invoices.created","created_at":"2024-01-01T12:00:00Z"}`))
	f.Add([]byte(`{"id":1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		id, err := qonto.Identify(Request{Body: body})
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if id.ID == "" || !strings.HasPrefix(id.Type, "com.qonto.") || strings.ContainsAny(id.Type, " \t\n") {
			t.Fatalf("bad identity %+v", id)
		}
	})
}
