package ingress

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/invoicehub/invoicehub/schemas/subject"

	"github.com/invoicehub/invoicehub/ingress/provider"
	"github.com/invoicehub/invoicehub/internal/jstest"
)

// hostileSource is a configured source and how its requests are built.
type hostileSource struct {
	src Source
	// authHeaders carry the signature or token; tsHeader the signed time
	// ("" when it is inside the signature header or there is none).
	authHeaders []string
	tsHeader    string
	signed      bool // the body is covered by a signature
	timestamped bool
	msg         func(body []byte, at time.Time) provider.Message
	body        []byte
}

const hostileCap = 8192

func hostileSources() []hostileSource {
	creds := func(mode string, keys ...string) provider.Credentials {
		c := provider.Credentials{Tolerance: 5 * time.Minute, Mode: mode, Header: "X-Webhook-Token", User: "hooks"}
		for _, k := range keys {
			c.Secrets = append(c.Secrets, provider.NewSecret([]byte(k)))
		}
		return c
	}
	src := func(p, id, mode string, keys ...string) Source {
		return Source{Provider: p, ID: id, MaxBody: hostileCap, Credentials: creds(mode, keys...)}
	}
	envelope := []byte(`{"id":"evt-1","subscription_id":"s-1","organization_id":"o-1","membership_id":"m-1","type":"v1/client-invoices","created_at":"2024-03-04T15:59:00Z","data":{"id":"inv-1"}}`)
	plain := func(id, typ string) func([]byte, time.Time) provider.Message {
		return func(b []byte, at time.Time) provider.Message {
			return provider.Message{Body: b, At: at, ID: id, Type: typ}
		}
	}
	mercoaBody := []byte(`{"eventType":"invoice.created","invoice":{"id":"in_1"}}`)
	moxieBody := []byte(`{"id":"64ae5aea","status":"SENT"}`)
	swBody := []byte(`{"type":"invoice.created","timestamp":"2024-03-01T09:00:00Z","data":{"remote_id":"F-2024-0117","number":"F-2024-0117","direction":"receivable","document_type":"invoice","status":"open","provider_status":"issued","is_overdue":false,"issue_date":"2022-03-01","due_date":"2022-03-31","currency":"EUR","seller":{"name":"Acme SAS","tax_id":"FR12345678901","country":"FR","address":{"line1":"1 rue de la Paix","city":"Paris","postal_code":"75002","country":"FR"}},"buyer":{"id":"c-1","name":"Client SARL","email":"billing@client.example","country":"FR"},"totals":{"lines_net":"100.00","discount":"10.00","net":"90.00","tax":"18.00","total":"108.00","paid":"0.00","credited":"0.00","due":"108.00"},"tax_breakdown":[{"rate":"0.2","taxable_amount":"90.00","tax_amount":"18.00"}],"lines":[{"name":"Consulting","quantity":"2","unit":"hour","unit_price":"50.00","net_amount":"100.00","tax_rate":"0.2","tax_amount":"20.00","total_amount":"120.00","period":{"start":"2022-03-01","end":"2022-03-31"}}],"purchase_order_ref":"PO-42","notes":[{"name":"late_payment_penalties","text":"Pénalités : trois fois le taux d'intérêt légal."}],"remote_created_at":"2022-03-01T08:00:00Z","remote_updated_at":"2022-03-04T15:58:30Z"}}`)
	return []hostileSource{
		{src("qonto", "q", "hmac", "qonto-key-1", "qonto-key-2"), []string{"X-Qonto-Signature"}, "", true, true, plain("", ""), envelope},
		{src("rillet", "r", "auto", "rillet-key-1-0123456789"), []string{"X-Rillet-Signature"}, "X-Rillet-Timestamp", true, true, plain("evt-r", "INVOICE.CREATED"), []byte(`{"id":"inv-1"}`)},
		{src("rillet", "r-raw", "raw", "rillet-raw-key-0123456789"), []string{"X-Rillet-Signature"}, "X-Rillet-Timestamp", true, true, plain("evt-r2", "INVOICE.UPDATED"), []byte(`{"id":"inv-1"}`)},
		{src("standardwebhooks", "sw", "hmac", "sw-key-1"), []string{"Webhook-Signature"}, "Webhook-Timestamp", true, true, plain("msg_1", ""), swBody},
		{src("mercoa", "m", "standardwebhooks", "mercoa-key-1"), []string{"Webhook-Signature"}, "Webhook-Timestamp", true, true, plain("msg_2", ""), mercoaBody},
		{src("mercoa", "m-header", "header", "mercoa-shared-token"), []string{"X-Webhook-Token"}, "", false, false, plain("", ""), mercoaBody},
		{src("mercoa", "m-basic", "basic", "mercoa-basic-pass"), []string{"Authorization"}, "", false, false, plain("", ""), mercoaBody},
		{src("moxie", "x", "bearer", "moxie-bearer-token"), []string{"Authorization"}, "", false, false, plain("", "InvoiceSent"), moxieBody},
		{src("moxie", "x-basic", "basic", "moxie-basic-pass"), []string{"Authorization"}, "", false, false, plain("", "PaymentReceived"), moxieBody},
		{src("moxie", "x-header", "header", "moxie-header-token"), []string{"X-Webhook-Token"}, "", false, false, plain("", "InvoiceSent"), moxieBody},
	}
}

type hostileCase struct {
	name   string
	method string
	path   string
	header http.Header
	body   []byte
	want   int
}

// sign signs body for s at at with the source's last key, or with key.
func (s hostileSource) sign(body []byte, at time.Time, key string) http.Header {
	p, _ := provider.Lookup(s.src.Provider)
	c := s.src.Credentials
	if key != "" {
		c.Secrets = []provider.Secret{provider.NewSecret([]byte(key))}
	} else {
		c.Secrets = c.Secrets[len(c.Secrets)-1:]
	}
	return p.Sign(c, s.msg(body, at))
}

// mutate returns h with fn applied to every auth header value.
func (s hostileSource) mutate(h http.Header, fn func(string) string) http.Header {
	h = h.Clone()
	for _, name := range s.authHeaders {
		h.Set(name, fn(h.Get(name)))
	}
	return h
}

// reencode turns a hex signature into base64 and a base64 one into hex,
// wherever it sits in the header value.
func reencode(v string) string {
	if i := strings.Index(v, "v1="); i >= 0 {
		b, _ := hex.DecodeString(v[i+3:])
		return v[:i+3] + base64.StdEncoding.EncodeToString(b)
	}
	if i := strings.Index(v, "v1,"); i >= 0 {
		b, _ := base64.StdEncoding.DecodeString(v[i+3:])
		return v[:i+3] + hex.EncodeToString(b)
	}
	if b, err := base64.StdEncoding.DecodeString(v); err == nil && len(b) == 32 {
		return hex.EncodeToString(b)
	}
	return base64.StdEncoding.EncodeToString([]byte(v)) // a token, sent encoded
}

func (s hostileSource) cases(now time.Time) []hostileCase {
	path := "/webhooks/" + s.src.Provider + "/" + s.src.ID
	good := s.sign(s.body, now, "")
	c := func(name, method string, h http.Header, body []byte, want int) hostileCase {
		return hostileCase{s.src.Provider + "/" + s.src.ID + ": " + name, method, path, h, body, want}
	}
	big := append(bytes.Clone(s.body[:len(s.body)-1]), []byte(`,"pad":"`+strings.Repeat("x", hostileCap)+`"}`)...)
	dup := good.Clone()
	for _, name := range s.authHeaders {
		dup.Add(name, good.Get(name))
	}
	huge := good.Clone()
	huge.Set("X-Padding", strings.Repeat("a", 100<<10))
	out := []hostileCase{
		c("forged with another key", "POST", s.sign(s.body, now, "attacker-key"), s.body, 401),
		c("no authentication", "POST", http.Header{"Content-Type": {"application/json"}}, s.body, 401),
		c("truncated signature", "POST", s.mutate(good, func(v string) string { return v[:len(v)-4] }), s.body, 401),
		c("wrong encoding", "POST", s.mutate(good, reencode), s.body, 401),
		c("empty authentication", "POST", s.mutate(good, func(string) string { return "" }), s.body, 401),
		c("duplicated auth header", "POST", dup, s.body, 401),
		c("empty body", "POST", s.sign(nil, now, ""), nil, 400),
		c("not JSON", "POST", s.sign([]byte("hello"), now, ""), []byte("hello"), 400),
		c("truncated JSON", "POST", s.sign(s.body[:len(s.body)/2], now, ""), s.body[:len(s.body)/2], 400),
		c("oversized", "POST", s.sign(big, now, ""), big, 413),
		c("GET", "GET", good, nil, 405),
		c("PUT", "PUT", good, s.body, 405),
		c("DELETE", "DELETE", good, nil, 405),
		c("huge header", "POST", huge, s.body, 431),
		{s.src.Provider + "/" + s.src.ID + ": unknown source", "POST", path + "-nope", good, s.body, 404},
		{s.src.Provider + "/" + s.src.ID + ": extra path segment", "POST", path + "/more", good, s.body, 404},
	}
	if s.body[0] == '{' { // one JSON reading at both ends: refused at the door, signed or not
		withKeys := func(keys string) []byte { return append([]byte("{"+keys), s.body[1:]...) }
		for _, j := range []struct{ name, keys string }{
			{"duplicate key", `"id":"a","id":"b",`},
			{"keys differing in case", `"Evt_Kind":"a","evt_kind":"b",`},
			{"invalid UTF-8", "\"note\":\"\xff\xfe\","},
		} {
			b := withKeys(j.keys)
			out = append(out, c(j.name, "POST", s.sign(b, now, ""), b, 400))
		}
	}
	if s.signed {
		tampered := bytes.Replace(s.body, []byte("{"), []byte(`{"amount":"9999.00",`), 1)
		if s.body[0] == '"' { // a bare JSON string: change its last letter
			tampered = append(bytes.Clone(s.body[:len(s.body)-2]), 'X', '"')
		}
		if bytes.Equal(tampered, s.body) {
			panic("tampering left the body unchanged")
		}
		out = append(out,
			c("tampered body", "POST", good, tampered, 401),
			c("body with trailing space", "POST", good, append(bytes.Clone(s.body), ' '), 401),
		)
	}
	if s.timestamped {
		stale, future := now.Add(-6*time.Minute), now.Add(6*time.Minute)
		replay := s.sign(s.body, stale, "")
		newTS := func(h http.Header) http.Header {
			h = h.Clone()
			if s.tsHeader == "" { // t= inside the signature header
				old := strconv.FormatInt(stale.Unix(), 10)
				for _, name := range s.authHeaders {
					h.Set(name, strings.Replace(h.Get(name), "t="+old, "t="+strconv.FormatInt(now.Unix(), 10), 1))
				}
			} else if strings.HasPrefix(s.tsHeader, "Webhook") {
				h.Set(s.tsHeader, strconv.FormatInt(now.Unix(), 10))
			} else {
				h.Set(s.tsHeader, now.UTC().Format(time.RFC3339))
			}
			return h
		}
		out = append(out,
			c("stale timestamp", "POST", s.sign(s.body, stale, ""), s.body, 401),
			c("future timestamp", "POST", s.sign(s.body, future, ""), s.body, 401),
			c("replayed with a new timestamp", "POST", newTS(replay), s.body, 401),
		)
	}
	return out
}

func TestHostileRequests(t *testing.T) {
	var sources []Source
	hs := hostileSources()
	for _, h := range hs {
		sources = append(sources, h.src)
	}
	f := newFixture(t, Options{}, sources...)
	var cases []hostileCase
	for _, h := range hs {
		cases = append(cases, h.cases(testNow)...)
	}
	cases = append(cases,
		hostileCase{"unknown provider", "POST", "/webhooks/stripe/q", http.Header{}, []byte("{}"), 404},
		hostileCase{"no source", "POST", "/webhooks/qonto", http.Header{}, []byte("{}"), 404},
		hostileCase{"root", "POST", "/", http.Header{}, []byte("{}"), 404},
		hostileCase{"path traversal", "POST", "/webhooks/qonto/..%2f..%2fetc", http.Header{}, []byte("{}"), 404},
		hostileCase{"attacker-sized path", "POST", "/webhooks/qonto/" + strings.Repeat("A", 60<<10), http.Header{}, []byte("{}"), 404},
		hostileCase{"metrics on the webhook port", "GET", "/metrics", http.Header{}, nil, 405},
	)
	if len(cases) < 100 {
		t.Fatalf("only %d hostile cases", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tc.method, f.http.URL+tc.path, bytes.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header = tc.header
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
	t.Logf("%d hostile requests", len(cases))
	if n := jstest.Count(t, f.js, subject.WebhooksStream); n != 0 {
		t.Fatalf("WEBHOOKS holds %d messages after hostile requests", n)
	}
	// The genuine request of every source is accepted (the table is not
	// failing for a broken setup), and no secret reached the logs.
	for _, h := range hs {
		resp := f.post(t, "/webhooks/"+h.src.Provider+"/"+h.src.ID, h.sign(h.body, testNow, ""), h.body)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s/%s: genuine request got %d", h.src.Provider, h.src.ID, resp.StatusCode)
		}
	}
	logs := f.logs.String()
	if strings.Contains(logs, strings.Repeat("A", 100)) {
		t.Error("an attacker-sized path reached the logs")
	}
	for _, h := range hs {
		for _, s := range h.src.Credentials.Secrets {
			if strings.Contains(logs, string(s.Bytes())) {
				t.Errorf("secret of %s/%s found in the logs", h.src.Provider, h.src.ID)
			}
		}
	}
}

// TestHostileSequences: the hostile cases whose answer depends on what
// came before, each a sequence against a server with small budgets: past
// a source's budget of failed verifications every request is 429 (other
// sources unaffected); past its requests in flight, 503; both with
// Retry-After.
func TestHostileSequences(t *testing.T) {
	creds := provider.Credentials{Tolerance: 5 * time.Minute, Secrets: []provider.Secret{provider.NewSecret([]byte(testSecret))}}
	f := newFixture(t, Options{FailedAuthPerSecond: 0.001, FailedAuthBurst: 3, MaxInFlightPerSource: 1},
		Source{Provider: "qonto", ID: "brute", Credentials: creds}, Source{Provider: "qonto", ID: "busy", Credentials: creds},
		Source{Provider: "qonto", ID: "calm", Credentials: creds})
	body := qontoBody("evt-seq")
	forged, genuine := signed(body, "a wrong secret of thirty-two chars"), signed(body, testSecret)
	steps := []struct {
		name, source string
		header       http.Header
		want         int
	}{
		{"forged 1", "brute", forged, 401},
		{"forged 2", "brute", forged, 401},
		{"forged 3", "brute", forged, 401},
		{"forged past the budget", "brute", forged, 429},
		{"genuine while throttled", "brute", genuine, 429},
		{"another source", "calm", genuine, 200},
	}
	for _, s := range steps {
		resp := f.post(t, "/webhooks/qonto/"+s.source, s.header, body)
		if resp.StatusCode != s.want || (s.want == 429 && resp.Header.Get("Retry-After") == "") {
			t.Fatalf("%s: %d (Retry-After %q), want %d", s.name, resp.StatusCode, resp.Header.Get("Retry-After"), s.want)
		}
	}

	// One request holds busy's only slot, sending its headers and not its body.
	held, err := net.Dial("tcp", strings.TrimPrefix(f.http.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(held, "POST /webhooks/qonto/busy HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", len(body))
	until := func(want int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; {
			resp := f.post(t, "/webhooks/qonto/busy", genuine, body)
			if resp.StatusCode == want {
				if want == 503 && resp.Header.Get("Retry-After") == "" {
					t.Fatal("503 without Retry-After")
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("busy source: still %d, want %d", resp.StatusCode, want)
			}
		}
	}
	until(503)
	held.Close()
	until(200)
}

// TestIdentifiersThatCannotBeCarriedAreRefusedBeforeStored: a correctly
// signed webhook whose event id (or type) is over 255 bytes or holds a
// control character is answered 4xx with the reason, and nothing is
// stored: the id would become the dedup id and a header of the raw event.
func TestIdentifiersThatCannotBeCarriedAreRefusedBeforeStored(t *testing.T) {
	bySource := map[string]hostileSource{}
	var sources []Source
	for _, h := range hostileSources() {
		bySource[h.src.ID] = h
		sources = append(sources, h.src)
	}
	f := newFixture(t, Options{}, sources...)
	long := strings.Repeat("m", 4200)
	qontoBody := func(id string) []byte {
		return []byte(`{"id":"` + id + `","subscription_id":"s-1","organization_id":"o-1","membership_id":"m-1","type":"v1/client-invoices","created_at":"2024-03-04T15:59:00Z","data":{"id":"inv-1"}}`)
	}
	tests := []struct {
		name, source, id, typ string
		body                  []byte
	}{
		{"Standard Webhooks webhook-id of 4,200 bytes", "sw", long, "", nil},
		{"Standard Webhooks webhook-id of 256 bytes", "sw", strings.Repeat("m", 256), "", nil},
		{"Standard Webhooks webhook-id with a tab", "sw", "msg\t1", "", nil},
		{"Rillet X-Rillet-Id of 4,200 bytes", "r", long, "INVOICE.CREATED", nil},
		{"Rillet X-Rillet-Event of 300 bytes", "r", "evt-r", "INVOICE." + strings.Repeat("E", 300), nil},
		{"Qonto envelope id of 4,200 bytes", "q", "", "", qontoBody(long)},
		{"Qonto envelope id with a line feed", "q", "", "", qontoBody(`evt\n1`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := bySource[tt.source]
			body := h.body
			if tt.body != nil {
				body = tt.body
			}
			if tt.id != "" || tt.typ != "" {
				h.msg = func(b []byte, at time.Time) provider.Message {
					return provider.Message{Body: b, At: at, ID: tt.id, Type: tt.typ}
				}
			}
			resp := f.post(t, "/webhooks/"+h.src.Provider+"/"+h.src.ID, h.sign(body, testNow, ""), body)
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			// Standard Webhooks' verifier bounds the id it signs over first.
			if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(answer), "Id") && !strings.Contains(string(answer), "id") && !strings.Contains(string(answer), "Event") {
				t.Fatalf("status %d %s, want 400 or 401 naming the id", resp.StatusCode, answer)
			}
		})
	}
	if n := jstest.Count(t, f.js, subject.WebhooksStream); n != 0 {
		t.Fatalf("WEBHOOKS holds %d messages", n)
	}
}

// TestAWebhookWhoseInvoiceCannotBePublishedIsRefused: the size budget. A
// signed Qonto webhook well within max_body, whose canonical invoice would
// not fit what max_payload leaves (its items grow by their canonical
// fields), is refused with 413 and the sizes, before it is stored; the
// same webhook with few items is stored.
func TestAWebhookWhoseInvoiceCannotBePublishedIsRefused(t *testing.T) {
	q := hostileSources()[0]
	q.src.MaxBody = 0 // the largest that fits
	f := newFixture(t, Options{MaxPayload: 64 << 10}, q.src)
	item := `{"title":"x","quantity":"1","unit_price":{"value":"1.00","currency":"EUR"},"vat_rate":"0","total_vat":{"value":"0.00","currency":"EUR"}}`
	body := func(id string, items int) []byte {
		return []byte(`{"id":"` + id + `","subscription_id":"s-1","organization_id":"o-1","membership_id":"m-1","type":"v1/client-invoices","created_at":"2024-03-04T15:59:00Z","data":{"id":"inv-1","status":"unpaid","currency":"EUR","items":[` +
			strings.TrimSuffix(strings.Repeat(item+",", items), ",") + `]}}`)
	}
	big := body("evt-big", 400)
	if len(big) > 60<<10 {
		t.Fatalf("the body (%d bytes) is not within max_body", len(big))
	}
	resp := f.post(t, "/webhooks/qonto/q", q.sign(big, testNow, ""), big)
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(answer), "canonical invoice would be") {
		t.Fatalf("a %d-byte body: status %d %s, want 413 with the sizes", len(big), resp.StatusCode, answer)
	}
	small := body("evt-small", 3)
	if resp := f.post(t, "/webhooks/qonto/q", q.sign(small, testNow, ""), small); resp.StatusCode != http.StatusOK {
		t.Fatalf("a webhook that fits: status %d", resp.StatusCode)
	}
	if n := jstest.Count(t, f.js, subject.WebhooksStream); n != 1 {
		t.Fatalf("WEBHOOKS holds %d messages, want 1", n)
	}
}
