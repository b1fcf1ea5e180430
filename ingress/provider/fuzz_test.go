package provider

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// fuzzVerify feeds one provider's verifier arbitrary header values and
// bodies, seeded with genuine signed requests. Whatever comes in, it must
// not panic, every refusal is ErrUnauthorized, and an acceptance names a
// configured key within the tolerance.
func fuzzVerify(f *testing.F, p Provider, mode string) {
	now := time.Unix(1_700_000_000, 0)
	creds := Credentials{Secrets: secrets("key-a-0123456789abcdef", "key-b-0123456789abcdef"), Tolerance: 5 * time.Minute, Mode: mode, Header: "X-Webhook-Token", User: "hooks"}
	msg := sampleMessage(p, now)
	signed := p.Sign(Credentials{Secrets: secrets("key-b-0123456789abcdef"), Mode: mode, Header: "X-Webhook-Token", User: "hooks"}, msg)
	names := slices.Sorted(maps.Keys(signed)) // deterministic, so corpus entries replay
	f.Add(string(msg.Body), signed.Get(names[0]), signed.Get(names[len(names)-1]))
	f.Add("", "", "")
	f.Fuzz(func(t *testing.T, body, first, last string) {
		h := signed.Clone()
		h.Set(names[0], first)
		h.Set(names[len(names)-1], last)
		ev, err := p.Verify(Request{Header: h, Body: []byte(body), Received: now}, creds)
		if err != nil {
			if !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if ev.KeyIndex < 0 || ev.KeyIndex >= len(creds.Secrets) {
			t.Fatalf("key index %d", ev.KeyIndex)
		}
		if skew := ev.ClockSkew(now); skew > creds.Tolerance || skew < -creds.Tolerance {
			t.Fatalf("accepted a timestamp %v away", skew)
		}
	})
}

func FuzzVerifyQonto(f *testing.F)            { fuzzVerify(f, qonto, "hmac") }
func FuzzVerifyRillet(f *testing.F)           { fuzzVerify(f, rillet, "auto") }
func FuzzVerifyStandardWebhooks(f *testing.F) { fuzzVerify(f, standardWebhooks, "hmac") }
func FuzzVerifyMercoa(f *testing.F)           { fuzzVerify(f, mercoa, "standardwebhooks") }
func FuzzVerifyMoxieBearer(f *testing.F)      { fuzzVerify(f, moxie, "bearer") }
func FuzzVerifyMoxieBasic(f *testing.F)       { fuzzVerify(f, moxie, "basic") }
func FuzzVerifyMercoaHeader(f *testing.F)     { fuzzVerify(f, mercoa, "header") }

// FuzzIdentify runs every provider's Identify on arbitrary bodies and
// event-type headers.
func FuzzIdentify(f *testing.F) {
	now := time.Unix(1_700_000_000, 0)
	for _, name := range Names() {
		p, _ := Lookup(name)
		msg := sampleMessage(p, now)
		f.Add(name, string(msg.Body), msg.Type)
	}
	f.Fuzz(func(t *testing.T, name, body, eventType string) {
		p, ok := Lookup(name)
		if !ok {
			return
		}
		h := p.Sign(Credentials{Secrets: secrets("k"), Mode: p.Modes[0]}, Message{Body: []byte(body), At: now, ID: "evt", Type: eventType})
		id, err := p.Identify(Request{Header: h, Body: []byte(body), Received: now})
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if !eventTypeSyntax.MatchString(id.Type[len("com."):]) || checkID(id.ID) != nil {
			t.Fatalf("unsafe identity %+v", id)
		}
	})
}

// FuzzHeaderParsers checks the signature-list parsers stay bounded.
func FuzzHeaderParsers(f *testing.F) {
	f.Add("t=1704110400,v1=56aff06dc227db80d6568a5070f912c601c31f20451745d257cbc0b5dfa93805")
	f.Add("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1a,x")
	f.Add("BYfu7UHDDU5jIBbnd5nt1TwbRsYXtUfQBSX9gLgglgk=,YUht62QtaKJA5kX6Hv571kwyRoS8sZj0RV3S0j3aUQk=")
	f.Fuzz(func(t *testing.T, value string) {
		check := func(sigs [][]byte, err error) {
			if err != nil {
				return
			}
			if len(sigs) == 0 || len(sigs) > maxSignatures {
				t.Fatalf("%d signatures from %q", len(sigs), value)
			}
			for _, s := range sigs {
				if len(s) != 32 {
					t.Fatalf("signature of %d bytes", len(s))
				}
			}
		}
		_, sigs, err := parseTV1(value)
		check(sigs, err)
		check(parseStandardSignatures(value))
		check(parseRilletSignatures(value))
	})
}

// FuzzJSONObject checks the one-pass envelope reader against the
// normalizer's reading (go-json-experiment's json, case-sensitive): it
// accepts exactly the bodies that decode as one JSON object with no
// repeated name, no invalid UTF-8 and no two top-level names differing
// only in case, and reads the same top-level strings.
func FuzzJSONObject(f *testing.F) {
	for _, body := range []string{
		`{"id":"e1","type":"v1/client-invoices","data":{"id":"x"}}`,
		`{"id":1,"id":"two","type":["a"]}`, `{"id":"one","ID":2}`, `[]`, `{"a":}`, `{} {}`, ` {"eventType":"x\u00e9"} `, "{\"id\":\"\xff\"}",
		`{"data":{"a":1,"a":2}}`, `{"Data":1}`,
	} {
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, body string) {
		env, err := jsonObject([]byte(body))
		var fields map[string]jsontext.Value
		wantErr := jsonv2.Unmarshal([]byte(body), &fields) != nil || fields == nil
		folded := map[string]bool{}
		for name := range fields {
			wantErr = wantErr || folded[strings.ToLower(name)]
			folded[strings.ToLower(name)] = true
		}
		if (err != nil) != wantErr {
			t.Fatalf("jsonObject error %v, the normalizer's reading fails: %v", err, wantErr)
		}
		if err != nil {
			return
		}
		var want envelope
		for name, raw := range fields {
			var s string
			if field := want.field(name); field != nil && jsonv2.Unmarshal(raw, &s) == nil {
				*field = s
			}
			want.HasData = want.HasData || name == "data"
		}
		if env.ID != want.ID || env.Type != want.Type || env.CreatedAt != want.CreatedAt || env.EventType != want.EventType ||
			env.Timestamp != want.Timestamp || env.HasData != want.HasData {
			t.Fatalf("envelope %+v, the normalizer's reading %+v", env, want)
		}
	})
}
