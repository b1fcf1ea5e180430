package sqlsink

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/ce"
	"github.com/invoicehub/invoicehub/schemas/money"
	"github.com/invoicehub/invoicehub/sinks"
)

// edge is one value at a bound of the canonical schema: edit puts it into
// the golden event; refused says the schema (Validate or Check) refuses
// it, so the normalizer dead-letters it and no sink ever sees it.
type edge struct {
	name    string
	edit    func(t *testing.T, d *schemas.EventData)
	refused bool
}

// edges are the schema's bounds ($defs identifier, reference, label,
// text, date, money), each as close to the line as it goes, on both sides.
func edges() []edge {
	memo := func(s string) func(*testing.T, *schemas.EventData) {
		return func(_ *testing.T, d *schemas.EventData) { d.Invoice.Memo = s }
	}
	dates := func(issue, due string) func(*testing.T, *schemas.EventData) {
		return func(_ *testing.T, d *schemas.EventData) { d.Invoice.IssueDate, d.Invoice.DueDate = issue, due }
	}
	amounts := func(code, literal string) func(*testing.T, *schemas.EventData) {
		return func(t *testing.T, d *schemas.EventData) { settle(t, d, code, literal) }
	}
	const specials = `<script>alert("x") & 'y'</script> C:\dir\ \\ \" \u0000 \n %s ? $1 -- ;`
	const odd = "\uFEFFbom \u200D zwj 👩\u200D👩\u200D👧\u200D👦 \uE000\uF8FF\U000F0000\U0010FFFD private \uFFFE\uFFFF\uFDD0 nonchar"
	return []edge{
		{name: "memo with tab, LF, CR and CRLF", edit: func(_ *testing.T, d *schemas.EventData) {
			d.Invoice.Memo = "a\tb\nc\rd\r\ne\n"
			d.Invoice.Lines[0].Description = "\r\n\t"
			d.Invoice.Notes[0].Text = "line 1\r\nline 2\n\tindented"
		}},
		{name: "memo of 65536 ASCII characters", edit: memo(strings.Repeat("x", 65536))},
		{name: "memo of 65536 HTML characters", edit: memo(strings.Repeat("<&>'", 65536/4))},
		{name: "memo of 65536 é (2 bytes each)", edit: memo(strings.Repeat("é", 65536))},
		{name: "memo of 65536 😀 (4 bytes each)", edit: func(_ *testing.T, d *schemas.EventData) {
			d.Invoice.Memo = strings.Repeat("😀", 65536)
			d.Invoice.Lines[0].Description = strings.Repeat("😀", 65536)
		}},
		{name: "U+2028 and U+2029 in text, labels and references", edit: func(_ *testing.T, d *schemas.EventData) {
			d.Invoice.Memo, d.Invoice.ProviderStatus = "a\u2028b\u2029c", "\u2028paid\u2029"
			d.Invoice.Number, d.Invoice.Seller.Name = "F\u20281", "Acme\u2029SAS"
		}},
		{name: "markup, quotes and backslashes everywhere", edit: func(_ *testing.T, d *schemas.EventData) {
			d.Invoice.Memo, d.Invoice.ProviderStatus, d.Invoice.Number = specials, specials, specials
			d.Invoice.RemoteID = specials
			d.Invoice.ID = schemas.InvoiceID(d.Invoice.Provider, d.Invoice.Source, specials)
		}},
		{name: "id and number of 255 ASCII bytes", edit: func(_ *testing.T, d *schemas.EventData) {
			d.Invoice.ID = "qonto:acme:" + strings.Repeat("x", 255-len("qonto:acme:"))
			d.Invoice.RemoteID, d.Invoice.Number = strings.Repeat("r", 255), strings.Repeat("n", 255)
			d.Event.ProviderEventID = strings.Repeat("e", 254) + "1"
		}},
		{name: "id and number of 255 multi-byte bytes", edit: func(_ *testing.T, d *schemas.EventData) {
			d.Invoice.ID = "qonto:acme:" + strings.Repeat("é", 122) // 11 + 244 bytes
			d.Invoice.RemoteID = strings.Repeat("é", 122) + "abc"
			d.Invoice.Number = strings.Repeat("😀", 63) + "abc" // 252 + 3 bytes
		}},
		{name: "non-ASCII id", edit: func(_ *testing.T, d *schemas.EventData) {
			d.Invoice.RemoteID, d.Invoice.Number = "facture-été n°1", "n°1 – été"
			d.Invoice.ID = schemas.InvoiceID("qonto", "acme", d.Invoice.RemoteID)
		}},
		{name: "BOM, ZWJ, private use and noncharacters in id, label and text", edit: func(_ *testing.T, d *schemas.EventData) {
			d.Invoice.Memo, d.Invoice.ProviderStatus, d.Invoice.Number = odd, odd, odd
			d.Invoice.RemoteID = odd
			d.Invoice.ID = schemas.InvoiceID("qonto", "acme", odd)
		}},
		{name: "labels of 1024 characters", edit: func(_ *testing.T, d *schemas.EventData) {
			d.Invoice.ProviderStatus = strings.Repeat("é", 1024)
			d.Invoice.Seller.Name, d.Invoice.PurchaseOrderRef = strings.Repeat("😀", 1024), strings.Repeat("x", 1024)
			d.Invoice.Lines[0].Name = strings.Repeat("<", 1024)
		}},
		{name: "leap day", edit: dates("2028-02-29", "2028-02-29")},
		{name: "year 0001 and year 9999", edit: func(_ *testing.T, d *schemas.EventData) {
			d.Invoice.IssueDate, d.Invoice.DueDate = "0001-01-01", "9999-12-31"
			d.Invoice.Lines[0].Period = &schemas.Period{Start: "0001-01-01", End: "9999-12-31"}
		}},
		// format: date is Go's time.Parse("2006-01-02"): year 0000 (ISO
		// 8601's 1 BC, a leap year) is a date the schema accepts.
		{name: "year 0000", edit: dates("0000-01-01", "0000-02-29")},
		{name: "no dates", edit: dates("", "")},
		{name: "KWD largest totals", edit: amounts("KWD", "99999999999999999999.999")},
		{name: "KWD smallest totals", edit: amounts("KWD", "-99999999999999999999.999")},
		{name: "KWD smallest positive", edit: amounts("KWD", "0.001")},
		{name: "JPY largest totals", edit: amounts("JPY", "99999999999999999999")},
		{name: "JPY smallest totals", edit: amounts("JPY", "-99999999999999999999")},
		{name: "12 decimals in unit price, quantity and rates", edit: func(t *testing.T, d *schemas.EventData) {
			eur, _ := money.LookupCurrency("EUR")
			l := &d.Invoice.Lines[0]
			l.UnitPrice = money.Exact(parse(t, "99999999999999999999.999999999999").Decimal(), eur)
			l.Quantity, l.TaxRate = parse(t, "0.000000000001"), ptr(parse(t, "0.999999999999"))
			d.Invoice.ExchangeRate = ptr(parse(t, "-0.000000000001"))
		}},
		{name: "occurred at with nanoseconds and an offset", edit: func(_ *testing.T, d *schemas.EventData) {
			d.Event.OccurredAt = time.Date(2024, 2, 29, 23, 30, 0, 123456789, time.FixedZone("", -12*3600))
		}},
		{name: "occurred at the last nanosecond of year 9999", edit: func(_ *testing.T, d *schemas.EventData) {
			d.Event.OccurredAt = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
		}},

		{name: "NUL in the memo", edit: memo("a\x00b"), refused: true},
		{name: "C1 control (NEL) in the memo", edit: memo("a\u0085b"), refused: true},
		{name: "memo of 65537 characters", edit: memo(strings.Repeat("é", 65537)), refused: true},
		{name: "February 30th", edit: dates("2026-02-01", "2026-02-30"), refused: true},
		{name: "day 00", edit: dates("2026-01-00", ""), refused: true},
		{name: "line feed in the id", edit: func(_ *testing.T, d *schemas.EventData) { d.Invoice.ID = "qonto:acme:a\nb" }, refused: true},
		{name: "id of 128 é, 256 bytes (Check)", edit: func(_ *testing.T, d *schemas.EventData) {
			d.Invoice.ID = strings.Repeat("é", 128)
		}, refused: true},
		{name: "DEL in a label", edit: func(_ *testing.T, d *schemas.EventData) { d.Invoice.ProviderStatus = "paid\x7f" }, refused: true},
		{name: "label of 1025 characters", edit: func(_ *testing.T, d *schemas.EventData) {
			d.Invoice.ProviderStatus = strings.Repeat("x", 1025)
		}, refused: true},
		{name: "KWD total at 2 decimals (Check)", edit: func(t *testing.T, d *schemas.EventData) {
			settle(t, d, "KWD", "1.000")
			eur, _ := money.LookupCurrency("EUR")
			d.Invoice.Totals.Total = money.Total(parse(t, "1.00").Decimal(), eur)
		}, refused: true},
	}
}

// TestEverySchemaValidEdgeIsStored: each value at a bound the schema
// allows is stored by both backends and read back exactly, in the columns
// and in the JSON documents; each value past a bound is refused by the
// schema, so no sink has to store it.
func TestEverySchemaValidEdgeIsStored(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			s := open(t, b)
			for i, tt := range edges() {
				t.Run(tt.name, func(t *testing.T) {
					d := edgeData(t, i, tt.edit)
					err := validate(t, d)
					if tt.refused {
						if err == nil {
							t.Fatal("the schema accepts it: it must be stored, not refused")
						}
						return
					}
					if err != nil {
						t.Fatalf("not schema-valid: %v", err)
					}
					e := canonical(t, d, fmt.Sprintf("edge-%02d", i))
					if err := s.Deliver(t.Context(), e); err != nil {
						t.Fatalf("deliver: %v", err)
					}
					checkStored(t, s, e, d)
				})
			}
		})
	}
}

// edgeData is the golden event qonto-paid.json, made the i-th edge's own
// invoice, then edited.
func edgeData(t *testing.T, i int, edit func(*testing.T, *schemas.EventData)) schemas.EventData {
	t.Helper()
	raw, err := os.ReadFile("../../schemas/testdata/events/qonto-paid.json")
	if err != nil {
		t.Fatal(err)
	}
	var d schemas.EventData
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	remote := fmt.Sprintf("edge-%02d", i)
	d.Invoice.RemoteID, d.Invoice.ID = remote, schemas.InvoiceID(d.Invoice.Provider, d.Invoice.Source, remote)
	d.Event.ProviderEventID = remote
	edit(t, &d)
	return d
}

// validate is what the normalizer holds every event to: the schema, then
// Check.
func validate(t *testing.T, d schemas.EventData) error {
	t.Helper()
	data, err := schemas.EncodeJSON(d)
	if err != nil {
		t.Fatal(err)
	}
	return errors.Join(schemas.Validate(data), d.Check())
}

// canonical is the event the normalizer publishes for d.
func canonical(t *testing.T, d schemas.EventData, rawID string) sinks.Event {
	t.Helper()
	version := ce.InvoiceVersion(*d.Invoice.RemoteUpdatedAt)
	ev, err := ce.NewCanonical(d, rawID, version, "")
	if err != nil {
		t.Fatal(err)
	}
	return sinks.Event{CloudEvent: ev, Version: version, StreamSequence: 1}
}

// settle puts every settled amount of d (totals, tax breakdown, line
// amounts) at literal in currency code, and the unit prices too.
func settle(t *testing.T, d *schemas.EventData, code, literal string) {
	t.Helper()
	cur, err := money.LookupCurrency(code)
	if err != nil {
		t.Fatal(err)
	}
	a := money.Total(parse(t, literal).Decimal(), cur)
	if a.String() != literal {
		t.Fatalf("%s is not at %s's minor unit", literal, code)
	}
	d.Invoice.Currency = code
	tt := &d.Invoice.Totals
	for _, p := range []*money.Amount{&tt.LinesNet, &tt.Discount, &tt.Net, &tt.Tax, &tt.Total, &tt.Paid, &tt.Credited, &tt.Due} {
		*p = a
	}
	for i := range d.Invoice.TaxBreakdown {
		d.Invoice.TaxBreakdown[i].TaxableAmount, d.Invoice.TaxBreakdown[i].TaxAmount = a, a
	}
	for i := range d.Invoice.Lines {
		l := &d.Invoice.Lines[i]
		l.UnitPrice, l.NetAmount, l.TaxAmount, l.TotalAmount = money.Exact(a.Decimal(), cur), a, ptr(a), ptr(a)
	}
}

// parse is money.Parse, as written (money.Plain), failing the test on an
// error.
func parse(t *testing.T, literal string) money.Amount {
	t.Helper()
	d, err := money.Parse(literal)
	if err != nil {
		t.Fatal(err)
	}
	return money.Plain(d)
}

// ptr is a pointer to a copy of v, for the optional amounts.
func ptr[T any](v T) *T { return &v }

// checkStored reads back e's rows and fails the test unless every column
// and both JSON documents hold exactly what was sent.
func checkStored(t *testing.T, s *Sink, e sinks.Event, d schemas.EventData) {
	t.Helper()
	inv := d.Invoice
	var r struct {
		id, provider, source, remoteID, providerStatus, currency, total, paid, due, lastEventID, invoice string
		number                                                                                           sql.NullString
		issueDate, dueDate, updatedAt                                                                    any
		sequence                                                                                         int64
	}
	err := s.db.QueryRowContext(t.Context(), s.d.rebind(`SELECT id, provider, source, remote_id, number, provider_status,
		currency, total, paid, due, issue_date, due_date, sequence, last_event_id, updated_at, invoice FROM invoices WHERE id = ?`), inv.ID).
		Scan(&r.id, &r.provider, &r.source, &r.remoteID, &r.number, &r.providerStatus, &r.currency, &r.total, &r.paid, &r.due,
			&r.issueDate, &r.dueDate, &r.sequence, &r.lastEventID, &r.updatedAt, &r.invoice)
	if err != nil {
		t.Fatalf("invoice %q: %v", inv.ID, err)
	}
	var ev struct{ eventID, invoiceID, kind, event string }
	var occurredAt any
	err = s.db.QueryRowContext(t.Context(), s.d.rebind(`SELECT event_id, invoice_id, kind, occurred_at, event FROM invoice_events WHERE event_id = ?`), e.ID()).
		Scan(&ev.eventID, &ev.invoiceID, &ev.kind, &occurredAt, &ev.event)
	if err != nil {
		t.Fatalf("event %s: %v", e.ID(), err)
	}
	sentInvoice, err := schemas.EncodeJSON(inv)
	if err != nil {
		t.Fatal(err)
	}
	sentEvent, err := json.Marshal(e.CloudEvent)
	if err != nil {
		t.Fatal(err)
	}
	at := s.d.storedTime(d.Event.OccurredAt)
	for _, c := range []struct{ column, got, want string }{
		{"invoices.id", r.id, inv.ID}, {"invoices.provider", r.provider, inv.Provider}, {"invoices.source", r.source, inv.Source},
		{"invoices.remote_id", r.remoteID, inv.RemoteID}, {"invoices.number", r.number.String, inv.Number},
		{"invoices.provider_status", r.providerStatus, inv.ProviderStatus}, {"invoices.currency", r.currency, inv.Currency},
		{"invoices.total", r.total, inv.Totals.Total.String()}, {"invoices.paid", r.paid, inv.Totals.Paid.String()},
		{"invoices.due", r.due, inv.Totals.Due.String()},
		{"invoices.issue_date", dateOf(t, r.issueDate), inv.IssueDate}, {"invoices.due_date", dateOf(t, r.dueDate), inv.DueDate},
		{"invoices.sequence", fmt.Sprint(r.sequence), fmt.Sprint(e.Version)}, {"invoices.last_event_id", r.lastEventID, e.ID()},
		{"invoices.updated_at", timeOf(t, r.updatedAt), at}, {"invoices.invoice", canonicalJSON(t, r.invoice), canonicalJSON(t, string(sentInvoice))},
		{"invoice_events.event_id", ev.eventID, e.ID()}, {"invoice_events.invoice_id", ev.invoiceID, inv.ID},
		{"invoice_events.kind", ev.kind, string(d.Event.Kind)}, {"invoice_events.occurred_at", timeOf(t, occurredAt), at},
		{"invoice_events.event", canonicalJSON(t, ev.event), canonicalJSON(t, string(sentEvent))},
	} {
		if c.got != c.want {
			t.Errorf("%s: %s", c.column, differ(c.got, c.want))
		}
	}
	if r.number.Valid != (inv.Number != "") {
		t.Errorf("invoices.number: NULL is %v for %q", !r.number.Valid, inv.Number)
	}
}

// storedTime is t as the dialect's timestamp columns keep it: PostgreSQL's
// TIMESTAMPTZ holds microseconds (pgx truncates), SQLite's text all of it.
// The JSON documents keep every digit either way.
func (d dialect) storedTime(t time.Time) string {
	if d.native {
		t = t.Truncate(time.Microsecond)
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// dateOf renders a DATE column read back: a time.Time from PostgreSQL, a
// string from SQLite, nil for NULL.
func dateOf(t *testing.T, v any) string {
	t.Helper()
	switch v := v.(type) {
	case nil:
		return ""
	case time.Time:
		return v.Format(time.DateOnly)
	case string:
		return v
	}
	t.Fatalf("date read back as %T", v)
	return ""
}

// timeOf renders a timestamp column read back as RFC 3339 in UTC.
func timeOf(t *testing.T, v any) string {
	t.Helper()
	switch v := v.(type) {
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano)
	case string:
		return v
	}
	t.Fatalf("timestamp read back as %T", v)
	return ""
}

// canonicalJSON re-encodes a JSON document with its keys sorted and its
// numbers as written, so a document read back from JSONB (which orders
// keys its own way) compares with the one sent. Strings are compared
// decoded: "\u2028" and the character itself are the same string.
func canonicalJSON(t *testing.T, doc string) string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("stored JSON: %v", err)
	}
	b, err := schemas.EncodeJSON(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// differ says where got first differs from want without printing values
// of 256 KiB whole.
func differ(got, want string) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	clip := func(s string) string { return s[i:min(len(s), i+40)] }
	return fmt.Sprintf("got %d bytes, want %d; from byte %d got %q, want %q", len(got), len(want), i, clip(got), clip(want))
}
