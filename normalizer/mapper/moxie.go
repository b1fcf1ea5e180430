package mapper

import (
	"fmt"
	"github.com/go-json-experiment/json/jsontext"
	"sort"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/money"
)

// Moxie invoices (receivables). The event type is only in X-Event-Type
// (InvoiceSent, PaymentReceived: com.moxie.invoice.sent,
// com.moxie.payment.received); the body is the invoice. Moxie's other
// events (ClientCreate, DeliverableUpdate...) are skipped. Amounts are JSON
// numbers in major units; "local" amounts (the workspace currency) are
// ignored in favour of the invoice currency. The invoice has no update
// time: its versions are ordered by the latest time the payload proves
// (its payments' timestamps, datePaid, dateSent, dateCreated), so a
// redelivered InvoiceSent never rolls back a later payment.

var moxieStatuses = map[string]schemas.Status{
	"DRAFT":   schemas.StatusDraft,
	"SENT":    schemas.StatusOpen,
	"PARTIAL": schemas.StatusPartiallyPaid,
	"PAID":    schemas.StatusPaid,
	"VOID":    schemas.StatusVoid,
}

type moxiePayment struct {
	ID              string         `json:"id"`
	Amount          jsontext.Value `json:"amount"`
	Currency        string         `json:"currency"`
	Pending         bool           `json:"pending"`
	PaymentProvider string         `json:"paymentProvider"`
	ReferenceNumber string         `json:"referenceNumber"`
	DatePaid        string         `json:"datePaid"`
	Timestamp       string         `json:"timestamp"`
	IsFailedPayment bool           `json:"isFailedPayment"`
}

type moxieInvoice struct {
	ID                     string         `json:"id"`
	InvoiceNumber          jsontext.Value `json:"invoiceNumber"`
	InvoiceNumberFormatted string         `json:"invoiceNumberFormatted"`
	ClientID               string         `json:"clientId"`
	DateCreated            string         `json:"dateCreated"`
	DateSent               string         `json:"dateSent"`
	DateDue                string         `json:"dateDue"`
	DatePaid               string         `json:"datePaid"`
	Status                 string         `json:"status"`
	InvoiceType            string         `json:"invoiceType"`
	SubTotal               jsontext.Value `json:"subTotal"`
	ConvenienceFee         jsontext.Value `json:"convenienceFee"`
	LateFee                jsontext.Value `json:"lateFee"`
	DiscountAmount         jsontext.Value `json:"discountAmount"`
	CreditApplied          jsontext.Value `json:"creditApplied"`
	Tax                    jsontext.Value `json:"tax"`
	Total                  jsontext.Value `json:"total"`
	PaymentTotal           jsontext.Value `json:"paymentTotal"`
	AmountDue              jsontext.Value `json:"amountDue"`
	Currency               string         `json:"currency"`
	ClientInfo             *struct {
		ID       string `json:"id"`
		Name     string `json:"name"`
		Address1 string `json:"address1"`
		Address2 string `json:"address2"`
		City     string `json:"city"`
		Locality string `json:"locality"`
		Postal   string `json:"postal"`
		Country  string `json:"country"`
		TaxID    string `json:"taxId"`
		Contact  *struct {
			Email string `json:"email"`
		} `json:"contact"`
	} `json:"clientInfo"`
	Payments []moxiePayment `json:"payments"`
}

// moxieEvents are the documented invoice events, by raw event type.
var moxieEvents = map[string]string{
	"com.moxie.invoice.sent":     "InvoiceSent",
	"com.moxie.payment.received": "PaymentReceived",
}

func mapMoxie(in Input) (Result, error) {
	eventType, ok := moxieEvents[in.EventType]
	if !ok {
		name := strings.TrimPrefix(in.EventType, "com.moxie.")
		if strings.HasPrefix(name, "invoice.") || strings.HasPrefix(name, "payment.") {
			return Result{}, unknownEvent("moxie", in.EventType)
		}
		return skip(in.Headers["x-event-type"])
	}
	var m moxieInvoice
	if err := decodeJSON(in.Body, &m); err != nil {
		return Result{}, err
	}
	if m.ID == "" {
		return Result{}, unmappable("moxie: id missing")
	}
	inv, err := m.canonical(in)
	if err != nil {
		return Result{}, fmt.Errorf("moxie invoice %s: %w", m.ID, err)
	}
	res := Result{Action: ActionUpsert, OccurredAt: in.Time.UTC(), ProviderEventType: eventType, Invoice: inv}
	if eventType == "PaymentReceived" {
		if res.Payment, err = m.latestPayment(inv.Currency); err != nil {
			return Result{}, fmt.Errorf("moxie invoice %s: %w", m.ID, err)
		}
	}
	if res.Version, err = m.version(); err != nil {
		return Result{}, fmt.Errorf("moxie invoice %s: %w", m.ID, err)
	}
	return res, nil
}

// version is the latest time the payload proves: a payment's timestamp or
// date, the invoice's payment, send or creation date (dates at midnight
// UTC). A Moxie invoice with none of them is unmappable.
func (m *moxieInvoice) version() (int64, error) {
	var latest time.Time
	consider := func(s, field string, parse func(string, string) (*time.Time, error)) error {
		t, err := parse(s, field)
		if t != nil && t.After(latest) {
			latest = *t
		}
		return err
	}
	asDate := func(s, field string) (*time.Time, error) {
		d, err := date(s, field)
		return midnight(d), err
	}
	var problems errs
	problems.add(consider(m.DateCreated, "dateCreated", asDate))
	problems.add(consider(m.DateSent, "dateSent", asDate))
	problems.add(consider(m.DatePaid, "datePaid", asDate))
	for i, p := range m.Payments {
		problems.add(consider(p.Timestamp, fmt.Sprintf("payments[%d].timestamp", i), timestamp))
		problems.add(consider(p.DatePaid, fmt.Sprintf("payments[%d].datePaid", i), asDate))
	}
	if err := problems.err(); err != nil {
		return 0, err
	}
	if latest.IsZero() {
		return 0, unmappable("no date orders this version (dateCreated, dateSent, datePaid, payments)")
	}
	return latest.UnixMicro(), nil
}

func (m *moxieInvoice) canonical(in Input) (schemas.Invoice, error) {
	cur, err := currency(m.Currency, "currency")
	if err != nil {
		return schemas.Invoice{}, err
	}
	number := m.InvoiceNumberFormatted
	if number == "" {
		number = strings.Trim(string(m.InvoiceNumber), `"`)
	}
	inv := schemas.Invoice{
		ID: schemas.InvoiceID(in.Provider, in.Source, m.ID), Provider: in.Provider, Source: in.Source, RemoteID: m.ID,
		Number: number, Direction: schemas.DirectionReceivable, DocumentType: schemas.DocumentInvoice,
		Status: status(moxieStatuses, m.Status), ProviderStatus: m.Status, Currency: cur.Code, RawRef: in.RawRef,
	}
	if inv.Status == schemas.StatusVoid {
		inv.VoidReason = "void"
	}
	if c := m.ClientInfo; c != nil {
		inv.Buyer = &schemas.Party{ID: c.ID, Name: c.Name, TaxID: c.TaxID, Country: country(c.Country),
			Address: address(c.Address1, c.Address2, c.City, c.Postal, c.Locality, c.Country)}
		if c.Contact != nil {
			inv.Buyer.Email = c.Contact.Email
		}
	}
	var problems errs
	inv.IssueDate, err = date(m.DateCreated, "dateCreated")
	problems.add(err)
	inv.DueDate, err = date(m.DateDue, "dateDue")
	problems.add(err)
	sent, err := date(m.DateSent, "dateSent")
	problems.add(err)
	inv.SentAt = midnight(sent)
	paid, err := date(m.DatePaid, "datePaid")
	problems.add(err)
	if inv.Status == schemas.StatusPaid {
		inv.PaidAt = midnight(paid)
	}
	get := func(raw jsontext.Value, field string) decimal.Decimal {
		d, err := amount(raw, field)
		problems.add(err)
		return d
	}
	t := totalsInput{
		// Fees are charges on the document: they count with the lines.
		LinesNet: get(m.SubTotal, "subTotal").Add(get(m.ConvenienceFee, "convenienceFee")).Add(get(m.LateFee, "lateFee")),
		Discount: get(m.DiscountAmount, "discountAmount"), Tax: get(m.Tax, "tax"), Total: get(m.Total, "total"),
		Paid: get(m.PaymentTotal, "paymentTotal"), Credited: get(m.CreditApplied, "creditApplied"),
	}
	if len(m.AmountDue) > 0 {
		t.Due = decimalPtr(get(m.AmountDue, "amountDue"))
	}
	if err := problems.err(); err != nil {
		return schemas.Invoice{}, err
	}
	if inv.Totals, err = t.render(cur); err != nil {
		return schemas.Invoice{}, err
	}
	inv.IsOverdue = overdue(inv.Status, inv.DueDate, in.Time)
	return inv, nil
}

// latestPayment returns the newest settled payment; a PaymentReceived
// without one is unmappable.
func (m *moxieInvoice) latestPayment(cur string) (*schemas.Payment, error) {
	var done []moxiePayment
	for _, p := range m.Payments {
		if !p.Pending && !p.IsFailedPayment {
			done = append(done, p)
		}
	}
	if len(done) == 0 {
		return nil, unmappable("PaymentReceived without a settled payment")
	}
	sort.SliceStable(done, func(i, j int) bool { return done[i].Timestamp < done[j].Timestamp })
	p := done[len(done)-1]
	c, err := currency(firstNonEmpty(p.Currency, cur), "payments.currency")
	if err != nil {
		return nil, err
	}
	if c.Code != cur {
		return nil, unmappable("payment currency %s differs from the invoice's %s", c.Code, cur)
	}
	amt, err := amount(p.Amount, "payments.amount")
	if err == nil {
		amt, err = settled(amt, c, "payments.amount")
	}
	if err != nil {
		return nil, err
	}
	at, err := timestamp(p.Timestamp, "payments.timestamp")
	if err != nil {
		return nil, err
	}
	if at == nil {
		at = midnight(p.DatePaid)
	}
	return &schemas.Payment{ID: p.ID, Amount: money.Total(amt, c), Currency: c.Code, PaidAt: at, Method: p.PaymentProvider, Reference: p.ReferenceNumber}, nil
}
