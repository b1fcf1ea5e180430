package ce

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/invoicehub/invoicehub/schemas/money"
	"github.com/shopspring/decimal"

	cenats "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

// An odd but valid body: the archive must keep its exact bytes.
var oddBody = []byte("{ \"id\" :\"e-1\",\n\t\"amount\": 0.10 , \"name\":\"caf\u00e9 \\u00e9\" }\n")

func rawEvent(t testing.TB, id string, body []byte) Raw {
	t.Helper()
	return Raw{
		Provider: "qonto", Source: "acme", Type: "com.qonto.v1/client-invoices", ID: id,
		Time: time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC), Body: body, VerifiedKey: 1, ClockSkew: -1500 * time.Millisecond,
	}
}

func TestRawRoundTripKeepsBodyBytes(t *testing.T) {
	e, err := NewRaw(rawEvent(t, "e-1", oddBody))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := ToMsg(t.Context(), subject.Webhook("qonto", "acme"), e)
	if err != nil {
		t.Fatal(err)
	}
	wantHeaders := map[string]string{
		"ce-id": "e-1", "ce-source": "/webhooks/qonto/acme", "ce-type": "com.qonto.v1/client-invoices",
		"ce-specversion": "1.0", "ce-time": "2024-01-01T12:00:00Z", "ce-datacontenttype": "application/json",
		"ce-provider": "qonto", "ce-sourceid": "acme", "ce-verifiedkey": "1", "ce-clockskewms": "-1500",
		jetstream.MsgIDHeader: "e-1",
	}
	for k, want := range wantHeaders {
		if got := msg.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if !bytes.Equal(msg.Data, oddBody) {
		t.Fatalf("body changed:\n got %q\nwant %q", msg.Data, oddBody)
	}
	back, err := FromMsg(t.Context(), msg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.Data(), oddBody) || back.ID() != "e-1" || StringExtension(back, ExtVerifiedKey) != "1" {
		t.Fatalf("decoded %v with body %q", back, back.Data())
	}
}

func TestCanonicalEvent(t *testing.T) {
	d := paidEvent(t)
	seq := InvoiceVersion(*d.Invoice.RemoteUpdatedAt)
	e, err := NewCanonical(d, "raw-1", seq, "")
	if err != nil {
		t.Fatal(err)
	}
	again, _ := NewCanonical(d, "raw-1", seq, "")
	if e.ID() != again.ID() {
		t.Fatal("canonical id is not deterministic")
	}
	if other := CanonicalID("qonto", "acme", "raw-1", schemas.KindUpdated); other == e.ID() {
		t.Fatal("kinds share an id")
	}
	if e.Type() != "com.invoicehub.invoice.paid.v1" || e.Subject() != d.Invoice.ID || e.DataSchema() != schemas.SchemaURL {
		t.Fatalf("attributes: %s", e.String())
	}
	msg, err := ToMsg(t.Context(), subject.Invoice("paid", "qonto", "acme"), e)
	if err != nil {
		t.Fatal(err)
	}
	back, err := FromMsg(t.Context(), msg)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ParseInvoiceVersion(back); err != nil || got != seq {
		t.Fatalf("sequence = %d, %v; want %d", got, err, seq)
	}
	if err := schemas.Validate(back.Data()); err != nil {
		t.Fatal(err)
	}
	d.Event.Kind = "bogus"
	if _, err := NewCanonical(d, "raw-1", seq, ""); err == nil {
		t.Fatal("NewCanonical accepted schema-invalid data")
	}
}

func TestFromMsgRejects(t *testing.T) {
	tests := []struct {
		name string
		msg  *nats.Msg
		want error
	}{
		{"no headers", &nats.Msg{Data: []byte("{}")}, ErrNotCloudEvent},
		{"structured mode", &nats.Msg{Header: nats.Header{"content-type": {"application/cloudevents+json"}}, Data: []byte(`{"specversion":"1.0"}`)}, ErrNotCloudEvent},
		{"missing id", &nats.Msg{Header: nats.Header{"ce-specversion": {"1.0"}, "ce-source": {"/x"}, "ce-type": {"t"}}}, nil},
		{"bad specversion", &nats.Msg{Header: nats.Header{"ce-specversion": {"9.9"}, "ce-id": {"1"}, "ce-source": {"/x"}, "ce-type": {"t"}}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FromMsg(t.Context(), tt.msg)
			if err == nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestDottedName(t *testing.T) {
	for in, want := range map[string]string{"InvoiceSent": "invoice.sent", "PaymentReceived": "payment.received", "Paid": "paid"} {
		if got := DottedName(in); got != want {
			t.Errorf("DottedName(%q) = %q", in, got)
		}
	}
}

func TestProviderHeaders(t *testing.T) {
	h := nats.Header{"provider-x-event-type": {"InvoiceSent"}, "ce-id": {"1"}}
	got := ProviderHeaders(h)
	if len(got) != 1 || got["x-event-type"] != "InvoiceSent" {
		t.Fatalf("got %v", got)
	}
}

func FuzzFromMsg(f *testing.F) {
	f.Add("1.0", "id-1", "/webhooks/qonto/acme", "com.qonto.v1/client-invoices", "2024-01-01T00:00:00Z", []byte(`{}`))
	f.Add("1.0", "", "", "", "not a time", []byte{0xff})
	f.Fuzz(func(t *testing.T, spec, id, source, typ, tm string, data []byte) {
		msg := &nats.Msg{Header: nats.Header{
			"ce-specversion": {spec}, "ce-id": {id}, "ce-source": {source}, "ce-type": {typ}, "ce-time": {tm},
		}, Data: data}
		e, err := FromMsg(t.Context(), msg)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes and decodes to the same event.
		out, err := ToMsg(t.Context(), "x", *e)
		if err != nil {
			t.Fatalf("decoded event does not re-encode: %v", err)
		}
		again, err := FromMsg(t.Context(), out)
		if err != nil || again.ID() != e.ID() || !bytes.Equal(again.Data(), e.Data()) {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

func TestCanonicalSetValidatesOnce(t *testing.T) {
	raw, _ := os.ReadFile("../testdata/events/qonto-paid.json")
	var d schemas.EventData
	json.Unmarshal(raw, &d)
	updated, paymentEv := d, d
	updated.Event.Kind = schemas.KindUpdated
	paymentEv.Event.Kind = schemas.KindPaymentReceived
	eur, _ := money.LookupCurrency("EUR")
	paymentEv.Payment = &schemas.Payment{Currency: "EUR", Amount: money.Total(decimal.NewFromInt(5), eur)}
	set, err := CanonicalMsgs([]schemas.EventData{updated, paymentEv}, nil, "raw-1", 1, "")
	if err != nil {
		t.Fatal(err)
	}
	if set[0].Header.Get("ce-type") != "com.invoicehub.invoice.updated.v1" || set[1].Header.Get("ce-id") == set[0].Header.Get("ce-id") {
		t.Fatalf("set %v", set)
	}
	// The payment event is the representative: an invalid payment fails the set.
	paymentEv.Payment.Currency = "euros"
	if _, err := CanonicalMsgs([]schemas.EventData{updated, paymentEv}, nil, "raw-1", 1, ""); err == nil {
		t.Fatal("invalid payment accepted")
	}
}

// BenchmarkToMsg encodes a raw event with a 2.5 KB body, as ingress does
// for every webhook.
func BenchmarkToMsg(b *testing.B) {
	r := rawEvent(b, "e-bench", bytes.Repeat([]byte("x"), 2500))
	e, err := NewRaw(r)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ToMsg(context.Background(), "webhooks.qonto.acme", e); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRawMsgIsToMsgOfNewRaw holds ingress's direct writer to the SDK's
// event through ToMsg (itself held to the SDK's binding below), and to
// the same refusals.
func TestRawMsgIsToMsgOfNewRaw(t *testing.T) {
	full := rawEvent(t, "e-full", oddBody)
	full.ContentType, full.Traceparent = "application/x-www-form-urlencoded", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	full.Time = time.Date(2024, 2, 29, 23, 59, 59, 123456789, time.FixedZone("", 3600))
	bare := Raw{Provider: "moxie", Source: "s", Type: "com.moxie.invoice.sent", ID: "0", Time: time.Unix(0, 0)}
	noTime := rawEvent(t, "e-no-time", []byte(`{}`))
	noTime.Time = time.Time{}
	valid := map[string]Raw{"raw": rawEvent(t, "e-raw", oddBody), "all fields": full, "zero values": bare, "no time": noTime}
	type invalidRaw struct {
		r          Raw
		refusal    string // in RawMsg's error
		sdkRefuses bool   // NewRaw then ToMsg refuse it too
	}
	invalid := map[string]invalidRaw{}
	for _, field := range []string{"id", "type", "provider", "source"} {
		for _, blank := range []string{"", " "} {
			r := rawEvent(t, "e-invalid", oddBody)
			*map[string]*string{"id": &r.ID, "type": &r.Type, "provider": &r.Provider, "source": &r.Source}[field] = blank
			invalid[fmt.Sprintf("%s %q", field, blank)] = invalidRaw{r, "without " + field, field == "id" || field == "type"}
		}
	}
	for _, ct := range []string{"application/json charset=utf-8", "/", "application/", "text/plain,application/json"} {
		r := rawEvent(t, "e-invalid", oddBody)
		r.ContentType = ct
		invalid["content type "+ct] = invalidRaw{r, "datacontenttype", true}
	}
	badSource := rawEvent(t, "e-invalid", oddBody)
	badSource.Source = "a%zz"
	invalid["source not a URI reference"] = invalidRaw{badSource, "source", true}
	for name, r := range valid {
		t.Run(name, func(t *testing.T) {
			got, err := RawMsg("webhooks.qonto.acme", r)
			if err != nil {
				t.Fatal(err)
			}
			e, err := NewRaw(r)
			if err != nil {
				t.Fatal(err)
			}
			want, err := ToMsg(t.Context(), "webhooks.qonto.acme", e)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.EqualFunc(got.Header, want.Header, slices.Equal) || got.Subject != want.Subject || !bytes.Equal(got.Data, want.Data) {
				t.Errorf("RawMsg\n %v %q\nToMsg(NewRaw)\n %v %q", got.Header, got.Data, want.Header, want.Data)
			}
		})
	}
	for name, c := range invalid {
		t.Run(name, func(t *testing.T) {
			if _, err := RawMsg("webhooks.qonto.acme", c.r); err == nil || !strings.Contains(err.Error(), c.refusal) {
				t.Errorf("RawMsg: %v, want a refusal naming %q", err, c.refusal)
			}
			e, err := NewRaw(c.r)
			if err == nil {
				_, err = ToMsg(t.Context(), "webhooks.qonto.acme", e)
			}
			if (err != nil) != c.sdkRefuses {
				t.Errorf("the SDK's validation: %v; refusing expected: %v", err, c.sdkRefuses)
			}
		})
	}
	// The header values share one array: adding to one must leave the
	// others as they were (ingress adds and replaces headers).
	msg, err := RawMsg("webhooks.qonto.acme", full)
	if err != nil {
		t.Fatal(err)
	}
	for name := range msg.Header {
		before := maps.Clone(msg.Header)
		msg.Header.Add(name, "added")
		for other, v := range before {
			if other != name && !slices.Equal(msg.Header[other], v) {
				t.Errorf("adding to %s changed %s: %q, was %q", name, other, msg.Header[other], v)
			}
		}
		msg.Header[name] = before[name]
	}
}

// FuzzRawMsg holds RawMsg to ToMsg of NewRaw on any raw event: what the
// SDK refuses, RawMsg refuses; what RawMsg writes, the SDK writes too.
func FuzzRawMsg(f *testing.F) {
	f.Add("qonto", "acme", "com.qonto.v1/client-invoices", "evt-1", "application/json", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", int64(1704110400), 1, int64(-1500), []byte(`{}`))
	f.Add(" ", "a%zz", "\t", "\xff", "application/json charset=utf-8", "", int64(0), 0, int64(0), []byte(nil))
	f.Fuzz(func(t *testing.T, prov, src, typ, id, ct, traceparent string, unix int64, key int, skewMS int64, body []byte) {
		r := Raw{Provider: prov, Source: src, Type: typ, ID: id, ContentType: ct, Traceparent: traceparent,
			Time: time.Unix(unix, 0), Body: body, VerifiedKey: key, ClockSkew: time.Duration(skewMS) * time.Millisecond}
		if unix == 0 {
			r.Time = time.Time{}
		}
		got, err := RawMsg("webhooks.x", r)
		e, sdkErr := NewRaw(r)
		var want *nats.Msg
		if sdkErr == nil {
			want, sdkErr = ToMsg(t.Context(), "webhooks.x", e)
		}
		switch {
		case sdkErr != nil && err == nil:
			t.Fatalf("RawMsg wrote what the SDK refuses (%v): %v", sdkErr, got.Header)
		case err != nil && sdkErr == nil && strings.TrimSpace(prov) != "" && strings.TrimSpace(src) != "":
			t.Fatalf("RawMsg refused (%v) what the SDK writes", err)
		case err == nil && (!maps.EqualFunc(got.Header, want.Header, slices.Equal) || !bytes.Equal(got.Data, want.Data)):
			t.Fatalf("RawMsg\n %v\nToMsg(NewRaw)\n %v", got.Header, want.Header)
		}
	})
}

// BenchmarkRawMsg writes the raw event of BenchmarkToMsg directly.
func BenchmarkRawMsg(b *testing.B) {
	r := rawEvent(b, "e-bench", bytes.Repeat([]byte("x"), 2500))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := RawMsg("webhooks.qonto.acme", r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNewRawToMsg is what ingress did before RawMsg: the SDK's event,
// then ToMsg.
func BenchmarkNewRawToMsg(b *testing.B) {
	r := rawEvent(b, "e-bench", bytes.Repeat([]byte("x"), 2500))
	b.ReportAllocs()
	for b.Loop() {
		e, err := NewRaw(r)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ToMsg(context.Background(), "webhooks.qonto.acme", e); err != nil {
			b.Fatal(err)
		}
	}
}

// TestToMsgWritesWhatTheSDKWrites holds ToMsg to the SDK's NATS JetStream
// binding: the same headers (plus Nats-Msg-Id) and the same body.
func TestToMsgWritesWhatTheSDKWrites(t *testing.T) {
	raw := rawEvent(t, "e-sdk", oddBody)
	raw.ContentType, raw.Traceparent = "application/json", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	rawEv, err := NewRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	full := event.New()
	full.SetID("e-full")
	full.SetSource("/invoices/qonto/acme")
	full.SetType("com.invoicehub.invoice.updated")
	full.SetSubject("inv-1")
	full.SetTime(time.Date(2024, 2, 29, 23, 59, 59, 123456789, time.FixedZone("", 3600)))
	full.SetDataSchema("https://invoicehub.dev/schemas/invoice-event.v1.json")
	full.SetExtension("count", 7)
	full.SetExtension("flag", true)
	full.SetExtension("when", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	if err := full.SetData(event.ApplicationJSON, json.RawMessage(`{"a":"é"}`)); err != nil {
		t.Fatal(err)
	}
	bare := event.New()
	bare.SetID("e-bare")
	bare.SetSource("s")
	bare.SetType("t")
	for name, e := range map[string]event.Event{"raw": rawEv, "all attributes": full, "no data": bare} {
		t.Run(name, func(t *testing.T) {
			got, err := ToMsg(context.Background(), "subj", e)
			if err != nil {
				t.Fatal(err)
			}
			var body bytes.Buffer
			want, err := cenats.WriteMsg(context.Background(), binding.ToMessage(&e), &body)
			if err != nil {
				t.Fatal(err)
			}
			want.Set(jetstream.MsgIDHeader, e.ID())
			if !maps.EqualFunc(got.Header, want, slices.Equal) {
				t.Errorf("headers\n got %v\nwant %v", got.Header, want)
			}
			if !bytes.Equal(got.Data, body.Bytes()) {
				t.Errorf("body %q, want %q", got.Data, body.Bytes())
			}
		})
	}
}

// TestFromMsgReadsWhatTheSDKReads: FromMsg decodes every message ToMsg
// writes, and some it does not (a content-type header, an extension
// nobody set, a timezone, no data), into the event the SDK's binding
// decodes.
func TestFromMsgReadsWhatTheSDKReads(t *testing.T) {
	raw, err := NewRaw(rawEvent(t, "e-sdk", oddBody))
	if err != nil {
		t.Fatal(err)
	}
	canonical, err := NewCanonical(paidEvent(t), "raw-1", 1700000000000000, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*nats.Msg
	for _, e := range []event.Event{raw, canonical} {
		m, err := ToMsg(t.Context(), "subj", e)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	msgs = append(msgs, &nats.Msg{Subject: "subj", Header: nats.Header{
		"ce-specversion": {"1.0"}, "ce-id": {"x"}, "ce-source": {"/a/b"}, "ce-type": {"t"}, "ce-time": {"2024-02-29T23:59:59.123456789+01:00"},
		"content-type": {"application/xml"}, "ce-tenant": {"t-1"}, "ce-dataschema": {"https://example.com/s.json"}, "X-Other": {"ignored"},
	}, Data: []byte("<a/>")}, &nats.Msg{Subject: "subj", Header: nats.Header{"ce-specversion": {"1.0"}, "ce-id": {"y"}, "ce-source": {"s"}, "ce-type": {"t"}}})
	for i, m := range msgs {
		got, err := FromMsg(t.Context(), m)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		want, err := binding.ToEvent(t.Context(), cenats.NewMessage(m))
		if err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() || !bytes.Equal(got.Data(), want.Data()) {
			t.Errorf("message %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

// createdSet is the data of the three events of a new, finalized invoice
// (created, updated, sent), as the normalizer builds them per webhook in
// `make bench-e2e`.
func createdSet(tb testing.TB) []schemas.EventData {
	d := paidEvent(tb)
	var ds []schemas.EventData
	for _, k := range []schemas.Kind{schemas.KindCreated, schemas.KindUpdated, schemas.KindSent} {
		d.Event.Kind, d.Payment = k, nil
		ds = append(ds, d)
	}
	return ds
}

// BenchmarkCanonicalMsgs writes the messages of createdSet, as the
// normalizer does.
func BenchmarkCanonicalMsgs(b *testing.B) {
	ds := createdSet(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := CanonicalMsgs(ds, nil, "raw-1", 1, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNewCanonicalToMsg is createdSet through the SDK's event, each
// validated: NewCanonical, then ToMsg.
func BenchmarkNewCanonicalToMsg(b *testing.B) {
	ds := createdSet(b)
	b.ReportAllocs()
	for b.Loop() {
		for _, d := range ds {
			e, err := NewCanonical(d, "raw-1", 1, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := ToMsg(b.Context(), "invoices.v1.created.qonto.acme", e); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// TestCanonicalMsgsAreToMsgOfNewCanonical holds the normalizer's direct
// writer to the SDK's event through ToMsg (itself held to the SDK's
// binding), event by event, on the golden events and on odd values.
func TestCanonicalMsgsAreToMsgOfNewCanonical(t *testing.T) {
	odd := paidEvent(t)
	odd.Invoice.ID, odd.Invoice.Number, odd.Invoice.Provider, odd.Invoice.Source = "qonto:acme:inv 1", "F\u00a0-1 é", "qonto", "a b"
	odd.Event.OccurredAt = time.Date(2024, 2, 29, 23, 59, 59, 123456789, time.FixedZone("", 3600))
	sets := map[string][]schemas.EventData{"created, updated, sent": createdSet(t), "odd values": {odd}}
	files, _ := filepath.Glob("../testdata/events/*.json")
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d schemas.EventData
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatal(err)
		}
		sets[filepath.Base(f)] = []schemas.EventData{d}
	}
	for name, ds := range sets {
		for _, tp := range []string{"", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"} {
			t.Run(fmt.Sprintf("%s, traceparent %q", name, tp), func(t *testing.T) {
				got, err := CanonicalMsgs(ds, nil, "raw-1", 1700000000000000, tp)
				if err != nil {
					t.Fatal(err)
				}
				for i, d := range ds {
					e, err := NewCanonical(d, "raw-1", 1700000000000000, tp)
					if err != nil {
						t.Fatal(err)
					}
					want, err := ToMsg(t.Context(), subject.Invoice(string(d.Event.Kind), d.Invoice.Provider, d.Invoice.Source), e)
					if err != nil {
						t.Fatal(err)
					}
					if !maps.EqualFunc(got[i].Header, want.Header, slices.Equal) || got[i].Subject != want.Subject || !bytes.Equal(got[i].Data, want.Data) {
						t.Errorf("CanonicalMsgs\n %s %v\nToMsg(NewCanonical)\n %s %v", got[i].Subject, got[i].Header, want.Subject, want.Header)
					}
				}
			})
		}
	}
}

// FuzzCanonicalMsgs holds CanonicalMsgs to ToMsg(NewCanonical) on any
// invoice id, number, provider, source, time, version and trace context:
// the same message, or the same refusal.
func FuzzCanonicalMsgs(f *testing.F) {
	f.Add("qonto:acme:inv-1", "F-2024-001", "qonto", "acme", int64(1704110400), int64(1), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Add(" ", "\x00", "a%zz", "", int64(0), int64(-1), "")
	f.Add("qonto:acme:F-1\r\nX: 1", "F-1", "qonto", "acme", int64(1), int64(1), "")
	f.Add("qonto:acme:F-1 ", "F-1", "qonto", "acme", int64(1), int64(1), "")
	f.Fuzz(func(t *testing.T, id, number, prov, src string, unix, version int64, traceparent string) {
		d := paidEvent(t)
		d.Invoice.ID, d.Invoice.Number, d.Invoice.Provider, d.Invoice.Source = id, number, prov, src
		d.Event.OccurredAt = time.Unix(unix, 0)
		if unix == 0 {
			d.Event.OccurredAt = time.Time{}
		}
		got, err := CanonicalMsgs([]schemas.EventData{d}, nil, "raw-1", version, traceparent)
		e, sdkErr := NewCanonical(d, "raw-1", version, traceparent)
		var want *nats.Msg
		if sdkErr == nil {
			want, sdkErr = ToMsg(t.Context(), subject.Invoice(string(d.Event.Kind), prov, src), e)
		}
		switch {
		case (err == nil) != (sdkErr == nil):
			t.Fatalf("CanonicalMsgs: %v; NewCanonical then ToMsg: %v", err, sdkErr)
		case err == nil && (!maps.EqualFunc(got[0].Header, want.Header, slices.Equal) || got[0].Subject != want.Subject || !bytes.Equal(got[0].Data, want.Data)):
			t.Fatalf("CanonicalMsgs\n %s %v\nToMsg(NewCanonical)\n %s %v", got[0].Subject, got[0].Header, want.Subject, want.Header)
		case err == nil && (got[0].Header.Get(headerName("subject")) != id || got[0].Header.Get(headerName(ExtPartitionKey)) != id):
			t.Fatalf("id %q: subject %q, partition key %q", id, got[0].Header.Get(headerName("subject")), got[0].Header.Get(headerName(ExtPartitionKey)))
		}
	})
}

// TestSetEncodesAsEventData: the set's events, their invoice encoded once
// (here or by the caller) and their heads once where only the kind
// differs, carry the bytes schemas.EncodeJSON gives each EventData; so do
// events whose information differs otherwise.
func TestSetEncodesAsEventData(t *testing.T) {
	d := paidEvent(t)
	eur, _ := money.LookupCurrency("EUR")
	var ds []schemas.EventData
	for _, k := range []schemas.Kind{schemas.KindUpdated, schemas.KindStatusChanged, schemas.KindPaymentReceived, schemas.KindPaid} {
		d.Event.Kind, d.Payment = k, nil
		if k == schemas.KindPaymentReceived {
			d.Payment = &schemas.Payment{Currency: "EUR", Amount: money.Total(decimal.NewFromInt(5), eur)}
		}
		ds = append(ds, d)
	}
	odd := slices.Clone(ds)
	odd[1].Event.ChangedFields = []string{"status", "<due_date>"}
	odd[2].Event.OccurredAt = odd[2].Event.OccurredAt.In(time.FixedZone("", 3600))
	odd[3].SchemaVersion = "1\u0026"
	invoice, err := schemas.EncodeJSON(d.Invoice)
	if err != nil {
		t.Fatal(err)
	}
	sameAs := func(t *testing.T, ds []schemas.EventData, data func(i int) []byte) {
		t.Helper()
		for i, d := range ds {
			want, err := schemas.EncodeJSON(d)
			if err != nil {
				t.Fatal(err)
			}
			if got := data(i); !bytes.Equal(got, want) {
				t.Fatalf("%s:\n got %s\nwant %s", d.Event.Kind, got, want)
			}
		}
	}
	for name, given := range map[string][]byte{"the invoice encoded here": nil, "the invoice given": invoice} {
		t.Run(name, func(t *testing.T) {
			set, err := CanonicalMsgs(ds, given, "raw-1", 1, "")
			if err != nil {
				t.Fatal(err)
			}
			sameAs(t, ds, func(i int) []byte { return set[i].Data })
		})
	}
	t.Run("other information", func(t *testing.T) { // not a set CanonicalMsgs takes (another schema version): encoded one by one
		var heads headCache
		sameAs(t, odd, func(i int) []byte {
			data, err := encodeWithInvoice(odd[i], invoice, &heads)
			if err != nil {
				t.Fatal(err)
			}
			return data
		})
	})
}
