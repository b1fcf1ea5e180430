package provider

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func secrets(keys ...string) []Secret {
	var out []Secret
	for _, k := range keys {
		out = append(out, NewSecret([]byte(k)))
	}
	return out
}

func mustKey(t testing.TB, p Provider, mode, raw string) string {
	t.Helper()
	k, err := p.Key(mode, []byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return string(k)
}

// Known-answer tests: vectors from the providers' documentation (Qonto,
// Standard Webhooks) or computed with an independent implementation
// (Python's hmac module, for Rillet).
func TestKnownAnswers(t *testing.T) {
	swKey := mustKey(t, standardWebhooks, "hmac", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	rilletBody := `{"id":"3f1c2b9e-8d7a-4c6b-9e5f-0a1b2c3d4e5f","invoice_number":"INV01","status":"UNPAID"}`
	rilletHeaders := func(sig string) http.Header {
		return http.Header{
			"X-Rillet-Signature": {sig}, "X-Rillet-Timestamp": {"2024-05-01T10:00:00Z"},
			"X-Rillet-Id": {"7c1a2b3c-0000-4000-8000-000000000001"}, "X-Rillet-Entity": {"INVOICE"}, "X-Rillet-Event": {"CREATED"},
		}
	}
	tests := []struct {
		name     string
		p        Provider
		mode     string
		key      string
		header   http.Header
		body     string
		received time.Time
	}{
		{"qonto documented vector", qonto, "hmac", "test-secret",
			http.Header{"X-Qonto-Signature": {"t=1704110400,v1=56aff06dc227db80d6568a5070f912c601c31f20451745d257cbc0b5dfa93805"}},
			`{"test":"data"}`, time.Unix(1704110400, 0)},
		{"qonto vector in upper-case hex", qonto, "hmac", "test-secret",
			http.Header{"X-Qonto-Signature": {"t=1704110400,v1=56AFF06DC227DB80D6568A5070F912C601C31F20451745D257CBC0B5DFA93805"}},
			`{"test":"data"}`, time.Unix(1704110400, 0)},
		{"pennylane, same scheme as qonto", pennylane, "hmac", "test-secret",
			http.Header{"X-Pennylane-Signature": {"t=1704110400,v1=56aff06dc227db80d6568a5070f912c601c31f20451745d257cbc0b5dfa93805"}},
			`{"test":"data"}`, time.Unix(1704110400, 0)},
		{"standard webhooks spec example", standardWebhooks, "hmac", swKey,
			http.Header{"Webhook-Id": {"msg_p5jXN8AQM9LWM0D4loKWxJek"}, "Webhook-Timestamp": {"1614265330"}, "Webhook-Signature": {"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}},
			`{"test": 2432232314}`, time.Unix(1614265330, 0)},
		{"mercoa with svix headers", mercoa, "standardwebhooks", swKey,
			http.Header{"Svix-Id": {"msg_p5jXN8AQM9LWM0D4loKWxJek"}, "Svix-Timestamp": {"1614265330"}, "Svix-Signature": {"v1a,ignored v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}},
			`{"test": 2432232314}`, time.Unix(1614265330, 0)},
		{"rillet base64 key mode", rillet, "base64", mustKey(t, rillet, "base64", "c2VjcmV0LXJpbGxldC10b2tlbi0xMjM0NTY="),
			rilletHeaders("BYfu7UHDDU5jIBbnd5nt1TwbRsYXtUfQBSX9gLgglgk="), rilletBody, time.Date(2024, 5, 1, 10, 0, 30, 0, time.UTC)},
		{"rillet raw key mode", rillet, "raw", mustKey(t, rillet, "raw", "c2VjcmV0LXJpbGxldC10b2tlbi0xMjM0NTY="),
			rilletHeaders("YUht62QtaKJA5kX6Hv571kwyRoS8sZj0RV3S0j3aUQk="), rilletBody, time.Date(2024, 5, 1, 10, 0, 30, 0, time.UTC)},
		{"rillet, second of several signatures", rillet, "raw", "c2VjcmV0LXJpbGxldC10b2tlbi0xMjM0NTY=",
			rilletHeaders("BYfu7UHDDU5jIBbnd5nt1TwbRsYXtUfQBSX9gLgglgk=, YUht62QtaKJA5kX6Hv571kwyRoS8sZj0RV3S0j3aUQk="), rilletBody, time.Date(2024, 5, 1, 10, 0, 30, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			creds := Credentials{Secrets: secrets("unrelated", tt.key), Tolerance: 5 * time.Minute, Mode: tt.mode}
			ev, err := tt.p.Verify(Request{Header: tt.header, Body: []byte(tt.body), Received: tt.received}, creds)
			if err != nil {
				t.Fatal(err)
			}
			if ev.KeyIndex != 1 {
				t.Fatalf("matched key %d, want 1", ev.KeyIndex)
			}
			// One byte less and the same headers fail.
			if _, err := tt.p.Verify(Request{Header: tt.header, Body: []byte(tt.body[1:]), Received: tt.received}, creds); !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("truncated body accepted: %v", err)
			}
		})
	}
}

// modes lists every provider × mode with credentials to sign and verify.
func modes() []struct {
	p     Provider
	creds Credentials
} {
	var out []struct {
		p     Provider
		creds Credentials
	}
	for _, name := range Names() {
		p, _ := Lookup(name)
		for _, mode := range p.Modes {
			c := Credentials{Secrets: secrets("key-old", "key-new"), Tolerance: 5 * time.Minute, Mode: mode, Header: "X-Webhook-Token", User: "hooks"}
			out = append(out, struct {
				p     Provider
				creds Credentials
			}{p, c})
		}
	}
	return out
}

// sampleMessage returns a body and message each provider's Identify accepts.
func sampleMessage(p Provider, at time.Time) Message {
	switch p.Name {
	case "rillet":
		return Message{Body: []byte(`{"id":"inv-1","status":"UNPAID"}`), At: at, ID: "evt-1", Type: "INVOICE.CREATED"}
	case "moxie":
		return Message{Body: []byte(`{"id":"64ae5aea","status":"SENT"}`), At: at, Type: "InvoiceSent"}
	case "mercoa":
		return Message{Body: []byte(`{"eventType":"invoice.created","invoice":{"id":"in_1"}}`), At: at, ID: "msg_1"}
	case "standardwebhooks":
		return Message{Body: []byte(`{"type":"invoice.paid","timestamp":"2024-01-01T00:00:00Z","data":{}}`), At: at, ID: "msg_1"}
	default:
		return Message{Body: []byte(`{"id":"evt-1","event_type":"client_invoices.created","data":{}}`), At: at, ID: "evt-1"}
	}
}

func TestSignVerifyIdentifyEveryMode(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	want := map[string]string{
		"qonto": "com.qonto.client_invoices.created", "pennylane": "com.pennylane.client_invoices.created",
		"rillet": "com.rillet.invoice.created", "moxie": "com.moxie.invoice.sent",
		"mercoa": "com.mercoa.invoice.created", "standardwebhooks": "com.standardwebhooks.invoice.paid",
	}
	for _, m := range modes() {
		t.Run(m.p.Name+"/"+m.creds.Mode, func(t *testing.T) {
			msg := sampleMessage(m.p, now)
			signer := m.creds
			signer.Secrets = m.creds.Secrets[1:] // sign with the newer key
			req := Request{Header: m.p.Sign(signer, msg), Body: msg.Body, Received: now.Add(time.Second)}
			ev, err := m.p.Verify(req, m.creds)
			if err != nil {
				t.Fatal(err)
			}
			if ev.KeyIndex != 1 {
				t.Fatalf("key index %d", ev.KeyIndex)
			}
			id, err := m.p.Identify(req)
			if err != nil {
				t.Fatal(err)
			}
			wantID := msg.ID
			if m.p.Name == "mercoa" && m.creds.Mode != "standardwebhooks" {
				wantID = "" // no webhook-id: ingress derives the id from the content
			}
			if id.Type != want[m.p.Name] || id.ID != wantID {
				t.Fatalf("identity %+v", id)
			}
			wrong := m.creds
			wrong.Secrets = secrets("other")
			if _, err := m.p.Verify(req, wrong); !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("wrong key accepted: %v", err)
			}
		})
	}
}

func TestTimestampTolerance(t *testing.T) {
	signedAt := time.Unix(1_700_000_000, 0)
	for _, m := range modes() {
		msg := sampleMessage(m.p, signedAt)
		h := m.p.Sign(m.creds, msg)
		if h.Get("X-Qonto-Signature")+h.Get("X-Pennylane-Signature")+h.Get("X-Rillet-Timestamp")+h.Get("Webhook-Timestamp") == "" {
			continue // unsigned schemes carry no timestamp
		}
		t.Run(m.p.Name+"/"+m.creds.Mode, func(t *testing.T) {
			for received, ok := range map[time.Time]bool{
				signedAt.Add(5 * time.Minute): true, signedAt.Add(-5 * time.Minute): true,
				signedAt.Add(5*time.Minute + time.Second): false, signedAt.Add(-5*time.Minute - time.Second): false,
			} {
				_, err := m.p.Verify(Request{Header: h, Body: msg.Body, Received: received}, m.creds)
				if (err == nil) != ok {
					t.Errorf("received %v after signing: err %v", received.Sub(signedAt), err)
				}
			}
		})
	}
}

func TestTokenModes(t *testing.T) {
	creds := func(mode string) Credentials {
		return Credentials{Secrets: secrets("s3cret"), Mode: mode, Header: "X-Webhook-Token", User: "hooks"}
	}
	basic := func(user, pass string) string {
		r := http.Request{Header: http.Header{}}
		r.SetBasicAuth(user, pass)
		return r.Header.Get("Authorization")
	}
	tests := []struct {
		name   string
		mode   string
		header http.Header
		ok     bool
	}{
		{"bearer", "bearer", http.Header{"Authorization": {"Bearer s3cret"}}, true},
		{"bearer lower-case scheme", "bearer", http.Header{"Authorization": {"bearer s3cret"}}, true},
		{"bearer wrong", "bearer", http.Header{"Authorization": {"Bearer s3cre"}}, false},
		{"bearer prefix of secret", "bearer", http.Header{"Authorization": {"Bearer s3cretX"}}, false},
		{"bearer as basic", "bearer", http.Header{"Authorization": {basic("hooks", "s3cret")}}, false},
		{"bearer missing", "bearer", http.Header{}, false},
		{"bearer empty token", "bearer", http.Header{"Authorization": {"Bearer "}}, false},
		{"bearer twice", "bearer", http.Header{"Authorization": {"Bearer s3cret", "Bearer s3cret"}}, false},
		{"basic", "basic", http.Header{"Authorization": {basic("hooks", "s3cret")}}, true},
		{"basic wrong user", "basic", http.Header{"Authorization": {basic("root", "s3cret")}}, false},
		{"basic wrong password", "basic", http.Header{"Authorization": {basic("hooks", "nope")}}, false},
		{"basic not base64", "basic", http.Header{"Authorization": {"Basic !!!"}}, false},
		{"header", "header", http.Header{"X-Webhook-Token": {"s3cret"}}, true},
		{"header wrong", "header", http.Header{"X-Webhook-Token": {"S3CRET"}}, false},
		{"header other name", "header", http.Header{"X-Token": {"s3cret"}}, false},
		{"header twice", "header", http.Header{"X-Webhook-Token": {"s3cret", "x"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := moxie.Verify(Request{Header: tt.header}, creds(tt.mode))
			if (err == nil) != tt.ok || err != nil && !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("err %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestKeys(t *testing.T) {
	tests := []struct {
		p       Provider
		mode    string
		raw     string
		want    string
		wantErr bool
	}{
		{standardWebhooks, "hmac", "whsec_c2VjcmV0", "secret", false},
		{standardWebhooks, "hmac", "c2VjcmV0", "secret", false},
		{standardWebhooks, "hmac", "whsec_not base64!", "", true},
		{mercoa, "standardwebhooks", "whsec_!!", "", true},
		{mercoa, "header", "plain", "plain", false},
		{rillet, "base64", "c2VjcmV0", "secret", false},
		{rillet, "base64", "not-base64!", "", true},
		{rillet, "raw", "not-base64!", "not-base64!", false},
		{qonto, "hmac", "anything", "anything", false},
	}
	for _, tt := range tests {
		k, err := tt.p.Key(tt.mode, []byte(tt.raw))
		if (err != nil) != tt.wantErr || string(k) != tt.want {
			t.Errorf("%s %s Key(%q) = %q, %v", tt.p.Name, tt.mode, tt.raw, k, err)
		}
		if err != nil && strings.Contains(err.Error(), tt.raw) {
			t.Errorf("key error repeats the secret: %v", err)
		}
	}
}

func TestIdentifyRejects(t *testing.T) {
	tests := []struct {
		name   string
		p      Provider
		header http.Header
		body   string
	}{
		{"qonto not json", qonto, nil, `hello`},
		{"qonto array", qonto, nil, `[]`},
		{"qonto no id", qonto, nil, `{"event_type":"x"}`},
		{"qonto no type", qonto, nil, `{"id":"e1"}`},
		{"qonto type with spaces", qonto, nil, `{"id":"e1","event_type":"a b"}`},
		{"qonto bad time", qonto, nil, `{"id":"e1","event_type":"x","created_at":"yesterday"}`},
		{"qonto id too long", qonto, nil, `{"id":"` + strings.Repeat("x", 300) + `","event_type":"x"}`},
		{"qonto id with newline", qonto, nil, `{"id":"a\nb","event_type":"x"}`},
		{"moxie no event type", moxie, http.Header{}, `{}`},
		{"moxie bad event type", moxie, http.Header{"X-Event-Type": {"invoice sent"}}, `{}`},
		{"moxie not json", moxie, http.Header{"X-Event-Type": {"InvoiceSent"}}, `{`},
		{"mercoa no eventType", mercoa, http.Header{}, `{"invoice":{}}`},
		{"mercoa not object", mercoa, http.Header{}, `"x"`},
		{"rillet not json", rillet, http.Header{"X-Rillet-Signature": {"x"}, "X-Rillet-Timestamp": {"2024-01-01T00:00:00Z"}, "X-Rillet-Id": {"1"}, "X-Rillet-Entity": {"INVOICE"}, "X-Rillet-Event": {"CREATED"}}, `{`},
		{"rillet bad entity", rillet, http.Header{"X-Rillet-Signature": {"x"}, "X-Rillet-Timestamp": {"2024-01-01T00:00:00Z"}, "X-Rillet-Id": {"1"}, "X-Rillet-Entity": {"invoice.x"}, "X-Rillet-Event": {"CREATED"}}, `{}`},
		{"standardwebhooks no type", standardWebhooks, http.Header{"Webhook-Id": {"m"}}, `{}`},
		{"standardwebhooks no id", standardWebhooks, http.Header{}, `{"type":"a"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.p.Identify(Request{Header: tt.header, Body: []byte(tt.body)}); !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
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
