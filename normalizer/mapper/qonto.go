package mapper

import (
	"fmt"
	"github.com/go-json-experiment/json/jsontext"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/money"
)

// Qonto client invoices (receivables). A delivery is Qonto's envelope
// {"id", "subscription_id", "organization_id", "membership_id", "type",
// "created_at", "data"}; the topic "v1/client-invoices" carries a client
// invoice in data, every other topic (v1/clients, v1/transactions...) is
// skipped. The client-invoice page lists the events created and updated
// but its example has no data.event: data.event is used when present and
// otherwise the normalizer tells created from updated by what it knows.
// Client invoices have no update time: the envelope's created_at versions
// them. A body without envelope is read as the bare client invoice (the
// page's generated schema). Amounts are {"value": "12.00", "currency":
// "EUR"}.

var qontoStatuses = map[string]schemas.Status{
	"draft":    schemas.StatusDraft,
	"unpaid":   schemas.StatusOpen,
	"paid":     schemas.StatusPaid,
	"canceled": schemas.StatusVoid,
}

type qontoEnvelope struct {
	ID        string         `json:"id"`
	Type      string         `json:"type"`
	CreatedAt string         `json:"created_at"`
	Data      jsontext.Value `json:"data"`
}

// qontoInvoiceTopic is the topic of client-invoice webhooks.
const qontoInvoiceTopic = "v1/client-invoices"

type qontoAmount struct {
	Value    jsontext.Value `json:"value"`
	Currency string         `json:"currency"`
}

type qontoAddress struct {
	StreetAddress string `json:"street_address"`
	City          string `json:"city"`
	ZipCode       string `json:"zip_code"`
	ProvinceCode  string `json:"province_code"`
	CountryCode   string `json:"country_code"`
}

type qontoInvoice struct {
	// Event is what happened, where Qonto says (data.event).
	Event                  string       `json:"event"`
	ID                     string       `json:"id"`
	Number                 string       `json:"number"`
	PurchaseOrder          string       `json:"purchase_order"`
	Status                 string       `json:"status"`
	ContactEmail           string       `json:"contact_email"`
	TermsAndConditions     string       `json:"terms_and_conditions"`
	DiscountConditions     string       `json:"discount_conditions"`
	LatePaymentPenalties   string       `json:"late_payment_penalties"`
	LegalFixedCompensation string       `json:"legal_fixed_compensation"`
	Header                 string       `json:"header"`
	Footer                 string       `json:"footer"`
	Currency               string       `json:"currency"`
	TotalAmount            *qontoAmount `json:"total_amount"`
	VATAmount              *qontoAmount `json:"vat_amount"`
	AmountPaid             *qontoAmount `json:"amount_paid"`
	IssueDate              string       `json:"issue_date"`
	DueDate                string       `json:"due_date"`
	PerformanceStartDate   string       `json:"performance_start_date"`
	PerformanceEndDate     string       `json:"performance_end_date"`
	CreatedAt              string       `json:"created_at"`
	FinalizedAt            string       `json:"finalized_at"`
	PaidAt                 string       `json:"paid_at"`
	InvoiceType            string       `json:"invoice_type"`
	Discount               *struct {
		Type   string       `json:"type"`
		Value  string       `json:"value"`
		Amount *qontoAmount `json:"amount"`
	} `json:"discount"`
	Client *struct {
		ID                      string        `json:"id"`
		Name                    string        `json:"name"`
		FirstName               string        `json:"first_name"`
		LastName                string        `json:"last_name"`
		Email                   string        `json:"email"`
		VATNumber               string        `json:"vat_number"`
		TaxIdentificationNumber string        `json:"tax_identification_number"`
		Address                 string        `json:"address"`
		City                    string        `json:"city"`
		ZipCode                 string        `json:"zip_code"`
		CountryCode             string        `json:"country_code"`
		BillingAddress          *qontoAddress `json:"billing_address"`
	} `json:"client"`
	Organization *struct {
		ID             string `json:"id"`
		LegalName      string `json:"legal_name"`
		VATNumber      string `json:"vat_number"`
		AddressLine1   string `json:"address_line_1"`
		AddressLine2   string `json:"address_line_2"`
		AddressZipcode string `json:"address_zipcode"`
		AddressCity    string `json:"address_city"`
		AddressCountry string `json:"address_country"`
	} `json:"organization"`
	Items []qontoItem `json:"items"`
}

type qontoItem struct {
	Title       string         `json:"title"`
	Description string         `json:"description"`
	Quantity    jsontext.Value `json:"quantity"`
	Unit        string         `json:"unit"`
	UnitPrice   *qontoAmount   `json:"unit_price"`
	VATRate     jsontext.Value `json:"vat_rate"`
	TotalVAT    *qontoAmount   `json:"total_vat"`
	TotalAmount *qontoAmount   `json:"total_amount"`
	Subtotal    *qontoAmount   `json:"subtotal"`
	Discount    *struct {
		Amount *qontoAmount `json:"amount"`
	} `json:"discount"`
}

func mapQonto(in Input) (Result, error) {
	var env qontoEnvelope
	if err := decodeJSON(in.Body, &env); err != nil {
		return Result{}, err
	}
	data, topic := env.Data, env.Type
	if topic == "" && data == nil { // the bare client invoice: no envelope
		data, topic = jsontext.Value(in.Body), qontoInvoiceTopic
	}
	if topic != qontoInvoiceTopic {
		return skip(topic)
	}
	if data == nil {
		return Result{}, unmappable("qonto: data missing")
	}
	var inv qontoInvoice
	if err := decodeJSON(data, &inv); err != nil {
		return Result{}, err
	}
	res := Result{Action: ActionUpsert, OccurredAt: in.Time.UTC(), Version: in.Time.UnixMicro(), ProviderEventType: topic}
	switch inv.Event {
	case "":
	case "created":
		res.Action = ActionCreated
	case "updated":
	default:
		return Result{}, unknownEvent("qonto", topic+" "+inv.Event)
	}
	if inv.Event != "" {
		res.ProviderEventType = topic + "." + inv.Event
	}
	if inv.ID == "" {
		return Result{}, unmappable("qonto: data.id missing")
	}
	var err error
	if res.Invoice, err = inv.canonical(in, res.OccurredAt); err != nil {
		return Result{}, fmt.Errorf("qonto invoice %s: %w", inv.ID, err)
	}
	return res, nil
}

// value parses a Qonto amount and checks it is in the invoice currency.
func (a *qontoAmount) value(cur money.Currency, field string) (decimal.Decimal, error) {
	if a == nil {
		return decimal.Zero, nil
	}
	return amountIn(a.Value, a.Currency, cur, field)
}

// settled is value held to the currency's minor unit (see settled).
func (a *qontoAmount) settled(cur money.Currency, field string) (decimal.Decimal, error) {
	if a == nil {
		return decimal.Zero, nil
	}
	return settledIn(a.Value, a.Currency, cur, field)
}

func (q *qontoInvoice) canonical(in Input, occurred time.Time) (schemas.Invoice, error) {
	cur, err := currency(q.Currency, "currency")
	if err != nil {
		return schemas.Invoice{}, err
	}
	inv := schemas.Invoice{
		ID: schemas.InvoiceID(in.Provider, in.Source, q.ID), Provider: in.Provider, Source: in.Source, RemoteID: q.ID,
		Number: q.Number, Direction: schemas.DirectionReceivable, DocumentType: schemas.DocumentInvoice,
		Status: status(qontoStatuses, q.Status), ProviderStatus: q.Status, Currency: cur.Code,
		PurchaseOrderRef: q.PurchaseOrder, Notes: q.notes(), RawRef: in.RawRef,
		Seller: q.seller(), Buyer: q.buyer(),
	}
	if inv.Status == schemas.StatusVoid {
		inv.VoidReason = "cancelled"
	}
	var problems errs
	inv.IssueDate, err = date(q.IssueDate, "issue_date")
	problems.add(err)
	inv.DueDate, err = date(q.DueDate, "due_date")
	problems.add(err)
	inv.SentAt, err = timestamp(q.FinalizedAt, "finalized_at")
	problems.add(err)
	inv.PaidAt, err = timestamp(q.PaidAt, "paid_at")
	problems.add(err)
	inv.RemoteCreatedAt, err = timestamp(q.CreatedAt, "created_at")
	problems.add(err)
	inv.RemoteUpdatedAt = &occurred
	inv.IsOverdue = overdue(inv.Status, inv.DueDate, occurred)

	period, err := periodOf(q.PerformanceStartDate, q.PerformanceEndDate)
	problems.add(err)
	lines, linesNet, rates, err := q.lines(cur, period)
	problems.add(err)
	inv.Lines = lines
	t, err := q.totals(cur, linesNet)
	problems.add(err)
	if inv.Totals, err = t.render(cur); err != nil {
		return schemas.Invoice{}, err
	}
	inv.TaxBreakdown = rates.breakdown(t.LinesNet.Sub(t.Discount), t.Tax, cur)
	if err := problems.err(); err != nil {
		return schemas.Invoice{}, err
	}
	return inv, nil
}

func (q *qontoInvoice) totals(cur money.Currency, linesNet *decimal.Decimal) (totalsInput, error) {
	total, err := q.TotalAmount.value(cur, "total_amount")
	if err != nil {
		return totalsInput{}, err
	}
	tax, err := q.VATAmount.value(cur, "vat_amount")
	if err != nil {
		return totalsInput{}, err
	}
	discount := decimal.Zero
	if q.Discount != nil {
		if discount, err = q.Discount.Amount.value(cur, "discount.amount"); err != nil {
			return totalsInput{}, err
		}
	}
	t := totalsInput{Discount: discount, Tax: tax, Total: total}
	if q.TotalAmount != nil { // the invoice states its total and VAT: net is what they say
		t.Net = decimalPtr(total.Sub(tax))
	}
	if linesNet != nil {
		t.LinesNet = *linesNet
	} else { // no items: the lines carry what the total says before tax
		t.LinesNet = total.Sub(tax).Add(discount)
	}
	switch {
	case q.AmountPaid != nil:
		if t.Paid, err = q.AmountPaid.value(cur, "amount_paid"); err != nil {
			return totalsInput{}, err
		}
	case q.Status == "paid":
		t.Paid = total
	}
	return t, nil
}

// lines maps the items; linesNet is nil when there are none.
func (q *qontoInvoice) lines(cur money.Currency, period *schemas.Period) ([]schemas.Line, *decimal.Decimal, taxRates, error) {
	if len(q.Items) == 0 {
		return nil, nil, nil, nil
	}
	var lines []schemas.Line
	var rates taxRates
	sum := decimal.Zero
	for i, it := range q.Items {
		line, net, rate, vat, err := it.canonical(cur, period, fmt.Sprintf("items[%d]", i))
		if err != nil {
			return nil, nil, nil, err
		}
		lines = append(lines, line)
		sum = sum.Add(net)
		rates = rates.add(rate, net, vat)
	}
	return lines, &sum, rates, nil
}

func (it qontoItem) canonical(cur money.Currency, period *schemas.Period, at string) (line schemas.Line, net, rate, vat decimal.Decimal, err error) {
	field := func(name string) string { return at + "." + name }
	qty, err := amount(it.Quantity, field("quantity"))
	if err != nil {
		return
	}
	unit, err := it.UnitPrice.value(cur, field("unit_price"))
	if err != nil {
		return
	}
	var lineDiscount decimal.Decimal
	if it.Discount != nil {
		if lineDiscount, err = it.Discount.Amount.settled(cur, field("discount.amount")); err != nil {
			return
		}
	}
	net = qty.Mul(unit).Sub(lineDiscount)
	if it.Subtotal != nil {
		if net, err = it.Subtotal.settled(cur, field("subtotal")); err != nil {
			return
		}
	}
	if rate, err = amount(it.VATRate, field("vat_rate")); err != nil {
		return
	}
	if vat, err = it.TotalVAT.settled(cur, field("total_vat")); err != nil {
		return
	}
	totalAmount := net.Add(vat)
	if it.TotalAmount != nil {
		if totalAmount, err = it.TotalAmount.settled(cur, field("total_amount")); err != nil {
			return
		}
	}
	line = schemas.Line{
		Name: it.Title, Description: it.Description, Quantity: money.Plain(qty), Unit: it.Unit,
		UnitPrice: money.Exact(unit, cur), NetAmount: money.Total(net, cur),
		TaxRate: ptr(money.Plain(rate)), TaxAmount: ptr(money.Total(vat, cur)),
		TotalAmount: ptr(money.Total(totalAmount, cur)), Period: period,
	}
	if !lineDiscount.IsZero() {
		line.Discount = ptr(money.Total(lineDiscount, cur))
	}
	return line, net, rate, vat, nil
}

func (q *qontoInvoice) seller() *schemas.Party {
	o := q.Organization
	if o == nil {
		return nil
	}
	return &schemas.Party{
		ID: o.ID, Name: o.LegalName, TaxID: o.VATNumber, Country: country(o.AddressCountry),
		Address: address(o.AddressLine1, o.AddressLine2, o.AddressCity, o.AddressZipcode, "", o.AddressCountry),
	}
}

func (q *qontoInvoice) buyer() *schemas.Party {
	c := q.Client
	if c == nil {
		return nil
	}
	name := c.Name
	if name == "" {
		name = strings.TrimSpace(c.FirstName + " " + c.LastName)
	}
	email := c.Email
	if email == "" {
		email = q.ContactEmail
	}
	taxID := c.VATNumber
	if taxID == "" {
		taxID = c.TaxIdentificationNumber
	}
	p := &schemas.Party{ID: c.ID, Name: name, Email: email, TaxID: taxID}
	if b := c.BillingAddress; b != nil {
		p.Address = address(b.StreetAddress, "", b.City, b.ZipCode, b.ProvinceCode, b.CountryCode)
	} else {
		p.Address = address(c.Address, "", c.City, c.ZipCode, "", c.CountryCode)
	}
	if p.Country = country(c.CountryCode); p.Country == "" && p.Address != nil {
		p.Country = p.Address.Country
	}
	return p
}

// notes keeps Qonto's free texts, the French legal mentions among them.
func (q *qontoInvoice) notes() []schemas.Note {
	var notes []schemas.Note
	for _, n := range []schemas.Note{
		{Name: "header", Text: q.Header},
		{Name: "footer", Text: q.Footer},
		{Name: "terms_and_conditions", Text: q.TermsAndConditions},
		{Name: "discount_conditions", Text: q.DiscountConditions},
		{Name: "late_payment_penalties", Text: q.LatePaymentPenalties},
		{Name: "legal_fixed_compensation", Text: q.LegalFixedCompensation},
		{Name: "invoice_type", Text: q.InvoiceType},
	} {
		if n.Text != "" {
			notes = append(notes, n)
		}
	}
	return notes
}
