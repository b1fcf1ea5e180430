package mapper

import (
	"errors"
	"fmt"
	"github.com/go-json-experiment/json/jsontext"
	"regexp"
	"slices"
	"strings"

	"github.com/shopspring/decimal"

	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/money"
)

// Rillet invoices and credit memos (receivables) and bills (payables).
// The raw event type com.rillet.<entity>.<event> comes from X-Rillet-Entity
// and X-Rillet-Event (read in lower snake case by ingress); the body is the
// entity, or for DELETED its bare id. Rillet recommends one endpoint for
// every entity: CONTRACT, CUSTOMER, VENDOR and JOURNAL_ENTRY events are
// skipped. Amounts are {"amount": "1.01", "currency": "USD"}; quantities
// and tax percentages are JSON numbers.

var rilletStatuses = map[string]schemas.Status{
	"UNBILLED":       schemas.StatusDraft,
	"UNPAID":         schemas.StatusOpen,
	"PARTIALLY_PAID": schemas.StatusPartiallyPaid,
	"PAID":           schemas.StatusPaid,
	"CREDITED":       schemas.StatusVoid,
	// PARTIALLY_CREDITED is derived from the amounts, see rilletInvoice.status.
}

var rilletCreditMemoStatuses = map[string]schemas.Status{
	"UNAPPLIED":         schemas.StatusOpen,
	"PARTIALLY_APPLIED": schemas.StatusPartiallyPaid,
	"APPLIED":           schemas.StatusPaid,
	"REFUNDED":          schemas.StatusPaid,
}

type rilletAmount struct {
	Amount   jsontext.Value `json:"amount"`
	Currency string         `json:"currency"`
}

type rilletAddress struct {
	Line1   string `json:"line1"`
	Line2   string `json:"line2"`
	City    string `json:"city"`
	State   string `json:"state"`
	ZipCode string `json:"zip_code"`
	Country string `json:"country"`
}

func (a *rilletAddress) canonical() *schemas.Address {
	if a == nil {
		return nil
	}
	return address(a.Line1, a.Line2, a.City, a.ZipCode, a.State, a.Country)
}

type rilletItem struct {
	ID            string         `json:"id"`
	Description   string         `json:"description"`
	Quantity      jsontext.Value `json:"quantity"`
	GrossRate     *rilletAmount  `json:"gross_rate"`
	TotalAmount   *rilletAmount  `json:"total_amount"`
	TotalDiscount *rilletAmount  `json:"total_discount"`
	TaxedAmount   *rilletAmount  `json:"taxed_amount"`
	NetAmount     *rilletAmount  `json:"net_amount"` // credit memo items
	Revenue       *struct {
		Period *struct {
			Start string `json:"start"`
			End   string `json:"end"`
		} `json:"period"`
	} `json:"revenue"`
}

type rilletDocument struct {
	ID                  string         `json:"id"`
	InvoiceNumber       string         `json:"invoice_number"`
	CreditMemoNumber    string         `json:"credit_memo_number"`
	CustomerID          string         `json:"customer_id"`
	ContractID          string         `json:"contract_id"`
	Items               []rilletItem   `json:"items"`
	DueDate             string         `json:"due_date"`
	InvoiceDate         string         `json:"invoice_date"`
	CreditMemoDate      string         `json:"credit_memo_date"`
	Address             *rilletAddress `json:"address"`
	CustomerAddress     *rilletAddress `json:"customer_address"`
	Status              string         `json:"status"`
	NetAmount           *rilletAmount  `json:"net_amount"`
	AmountDue           *rilletAmount  `json:"amount_due"`
	Total               *rilletAmount  `json:"total"`
	Subtotal            *rilletAmount  `json:"subtotal"`
	TotalDiscount       *rilletAmount  `json:"total_discount"`
	TaxedAmount         *rilletAmount  `json:"taxed_amount"`
	AppliedAmount       *rilletAmount  `json:"applied_amount"`
	RemainingAmount     *rilletAmount  `json:"remaining_amount"`
	PurchaseOrderNumber string         `json:"purchase_order_number"`
	ExchangeRate        *struct {
		Rate string `json:"rate"`
	} `json:"exchange_rate"`
	Memo      string `json:"memo"`
	Overdue   bool   `json:"overdue"`
	UpdatedAt string `json:"updated_at"`
	SentAt    string `json:"sent_at"`
}

// rilletEvents lists the documented events of each invoice entity.
var rilletEvents = map[string][]string{
	"invoice":     {"created", "updated", "payment_updated", "deleted"},
	"credit_memo": {"created", "updated", "payment_updated", "deleted"},
	"bill":        {"created", "updated", "deleted"},
}

func mapRillet(in Input) (Result, error) {
	entity, event, _ := strings.Cut(strings.TrimPrefix(in.EventType, "com.rillet."), ".")
	providerType := strings.ToUpper(entity + "." + event)
	events, invoiceEntity := rilletEvents[entity]
	switch {
	case !invoiceEntity:
		return skip(providerType)
	case !slices.Contains(events, event):
		return Result{}, unknownEvent("rillet", providerType)
	}
	res := Result{OccurredAt: in.Time.UTC(), ProviderEventType: providerType}
	switch event {
	case "created":
		res.Action = ActionCreated
	case "deleted":
		id, err := rilletDeletedID(in.Body)
		if err != nil {
			return Result{}, err
		}
		res.Action, res.Version = ActionDeleted, res.OccurredAt.UnixMicro()
		res.Invoice = schemas.Invoice{ID: schemas.InvoiceID(in.Provider, in.Source, id), Provider: in.Provider, Source: in.Source, RemoteID: id, RawRef: in.RawRef}
		return res, nil
	}
	var inv schemas.Invoice
	var err error
	if entity == "bill" {
		inv, err = mapRilletBill(in)
	} else {
		inv, err = mapRilletDocument(in, entity)
	}
	if err != nil {
		return Result{}, err
	}
	res.Invoice = inv
	if inv.RemoteUpdatedAt != nil {
		res.OccurredAt = *inv.RemoteUpdatedAt
	}
	res.Version = versionOf(inv.RemoteUpdatedAt, res.OccurredAt)
	return res, nil
}

// rilletDeletedID reads a deletion's body: the id as a JSON string, or bare.
func rilletDeletedID(body []byte) (string, error) {
	var id string
	if err := decodeJSON(body, &id); err != nil {
		id = strings.TrimSpace(string(body))
		if !rilletBareID.MatchString(id) {
			return "", err
		}
	}
	if id == "" {
		return "", unmappable("rillet deleted: empty id")
	}
	return id, nil
}

var rilletBareID = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)

func mapRilletDocument(in Input, entity string) (schemas.Invoice, error) {
	docType := schemas.DocumentInvoice
	if entity == "credit_memo" {
		docType = schemas.DocumentCreditNote
	}
	var doc rilletDocument
	if err := decodeJSON(in.Body, &doc); err != nil {
		return schemas.Invoice{}, err
	}
	if doc.ID == "" {
		return schemas.Invoice{}, unmappable("rillet: id missing")
	}
	inv, err := doc.canonical(in, docType)
	if err != nil {
		return schemas.Invoice{}, fmt.Errorf("rillet %s %s: %w", entity, doc.ID, err)
	}
	return inv, nil
}

// value parses a Rillet amount and checks it is in the document currency.
func (a *rilletAmount) value(cur money.Currency, field string) (decimal.Decimal, error) {
	if a == nil {
		return decimal.Zero, nil
	}
	return amountIn(a.Amount, a.Currency, cur, field)
}

// settled is value held to the currency's minor unit (see settled).
func (a *rilletAmount) settled(cur money.Currency, field string) (decimal.Decimal, error) {
	if a == nil {
		return decimal.Zero, nil
	}
	return settledIn(a.Amount, a.Currency, cur, field)
}

func (d *rilletDocument) currency() (money.Currency, error) {
	for _, a := range []*rilletAmount{d.Total, d.NetAmount, d.AmountDue} {
		if a != nil && a.Currency != "" {
			return currency(a.Currency, "total.currency")
		}
	}
	return money.Currency{}, unmappable("no currency: total missing")
}

func (d *rilletDocument) canonical(in Input, docType schemas.DocumentType) (schemas.Invoice, error) {
	cur, err := d.currency()
	if err != nil {
		return schemas.Invoice{}, err
	}
	inv := schemas.Invoice{
		ID: schemas.InvoiceID(in.Provider, in.Source, d.ID), Provider: in.Provider, Source: in.Source, RemoteID: d.ID,
		Number: d.InvoiceNumber, Direction: schemas.DirectionReceivable, DocumentType: docType,
		ProviderStatus: d.Status, IsOverdue: d.Overdue, Currency: cur.Code,
		PurchaseOrderRef: d.PurchaseOrderNumber, ContractRef: d.ContractID, Memo: d.Memo, RawRef: in.RawRef,
		Seller: party("", d.Address.canonical()),
		Buyer:  party(d.CustomerID, d.CustomerAddress.canonical()),
	}
	var problems errs
	issue := d.InvoiceDate
	if docType == schemas.DocumentCreditNote {
		inv.Number, issue = d.CreditMemoNumber, d.CreditMemoDate
	}
	inv.IssueDate, err = date(issue, "invoice_date")
	problems.add(err)
	inv.DueDate, err = date(d.DueDate, "due_date")
	problems.add(err)
	inv.SentAt, err = timestamp(d.SentAt, "sent_at")
	problems.add(err)
	inv.RemoteUpdatedAt, err = timestamp(d.UpdatedAt, "updated_at")
	problems.add(err)
	if d.ExchangeRate != nil && d.ExchangeRate.Rate != "" {
		rate, err := money.Parse(d.ExchangeRate.Rate)
		problems.add(err)
		inv.ExchangeRate = ptr(money.Plain(rate))
	}
	lines, lineNets, lineDiscounts, err := d.lines(cur)
	problems.add(err)
	inv.Lines = lines
	t, err := d.totals(cur, docType, lineNets, lineDiscounts)
	problems.add(err)
	if err := problems.err(); err != nil {
		return schemas.Invoice{}, err
	}
	if inv.Totals, err = t.render(cur); err != nil {
		return schemas.Invoice{}, err
	}
	inv.Status = d.status(docType, t)
	if inv.Status == schemas.StatusVoid {
		inv.VoidReason = "credited"
	}
	return inv, nil
}

// status maps the provider status; PARTIALLY_CREDITED is open while an
// amount is due and void (credited) once nothing is.
func (d *rilletDocument) status(docType schemas.DocumentType, t totalsInput) schemas.Status {
	if docType == schemas.DocumentCreditNote {
		return status(rilletCreditMemoStatuses, d.Status)
	}
	if d.Status == "PARTIALLY_CREDITED" {
		if t.Due != nil && t.Due.IsZero() {
			return schemas.StatusVoid
		}
		return schemas.StatusOpen
	}
	return status(rilletStatuses, d.Status)
}

func (d *rilletDocument) lines(cur money.Currency) (lines []schemas.Line, nets, discounts []decimal.Decimal, err error) {
	for i, it := range d.Items {
		field := func(name string) string { return fmt.Sprintf("items[%d].%s", i, name) }
		var problems errs
		get := func(a *rilletAmount, name string) decimal.Decimal {
			v, err := a.settled(cur, field(name))
			problems.add(err)
			return v
		}
		qty, err := amount(it.Quantity, field("quantity"))
		problems.add(err)
		rate, err := it.GrossRate.value(cur, field("gross_rate")) // a unit price: its decimals kept
		problems.add(err)
		discount := get(it.TotalDiscount, "total_discount")
		tax, total := get(it.TaxedAmount, "taxed_amount"), get(it.TotalAmount, "total_amount")
		net := qty.Mul(rate).Sub(discount)
		if it.NetAmount != nil {
			net = get(it.NetAmount, "net_amount")
		}
		if err := problems.err(); err != nil {
			return nil, nil, nil, err
		}
		line := schemas.Line{
			Name: it.Description, Quantity: money.Plain(qty), UnitPrice: money.Exact(rate, cur),
			NetAmount: money.Total(net, cur), TaxAmount: ptr(money.Total(tax, cur)), TotalAmount: ptr(money.Total(total, cur)),
		}
		if !discount.IsZero() {
			line.Discount = ptr(money.Total(discount, cur))
		}
		if it.Revenue != nil && it.Revenue.Period != nil {
			start, err1 := date(it.Revenue.Period.Start, field("revenue.period.start"))
			end, err2 := date(it.Revenue.Period.End, field("revenue.period.end"))
			if err := errors.Join(err1, err2); err != nil {
				return nil, nil, nil, err
			}
			line.Period = &schemas.Period{Start: start, End: end}
		}
		lines = append(lines, line)
		nets, discounts = append(nets, net), append(discounts, discount)
	}
	return lines, nets, discounts, nil
}

// totals reads the document totals. Rillet's subtotal is before the line
// discounts and total_discount sums them; in EN 16931 terms lines_net is the
// sum of the line nets (after their discounts) and the document discount is
// what total_discount has beyond the lines'.
func (d *rilletDocument) totals(cur money.Currency, docType schemas.DocumentType, lineNets, lineDiscounts []decimal.Decimal) (totalsInput, error) {
	var problems errs
	get := func(a *rilletAmount, field string) decimal.Decimal {
		v, err := a.value(cur, field)
		problems.add(err)
		return v
	}
	t := totalsInput{
		Discount: get(d.TotalDiscount, "total_discount"), Tax: get(d.TaxedAmount, "taxed_amount"), Total: get(d.Total, "total"),
	}
	if d.NetAmount != nil {
		t.Net = decimalPtr(get(d.NetAmount, "net_amount"))
	}
	switch {
	case len(lineNets) > 0:
		t.LinesNet = sumAmounts(lineNets)
		t.Discount = t.Discount.Sub(sumAmounts(lineDiscounts))
	case d.Subtotal != nil:
		t.LinesNet = get(d.Subtotal, "subtotal")
	}
	if docType == schemas.DocumentCreditNote {
		t.Paid = get(d.AppliedAmount, "applied_amount")
		if d.RemainingAmount != nil {
			t.Due = decimalPtr(get(d.RemainingAmount, "remaining_amount"))
		}
		return t, problems.err()
	}
	if d.AmountDue != nil {
		t.Due = decimalPtr(get(d.AmountDue, "amount_due"))
	}
	// Rillet states what is due, not what was paid or credited: the rest
	// of the total went to one or the other, as the status says.
	settled := t.Total
	if t.Due != nil {
		settled = t.Total.Sub(*t.Due)
	}
	switch d.Status {
	case "PAID", "PARTIALLY_PAID":
		t.Paid = settled
	case "CREDITED", "PARTIALLY_CREDITED":
		t.Credited = settled
	}
	return t, problems.err()
}

// party builds a party, or nil when it has nothing.
func party(id string, addr *schemas.Address) *schemas.Party {
	if id == "" && addr == nil {
		return nil
	}
	p := &schemas.Party{ID: id, Address: addr}
	if addr != nil {
		p.Country = addr.Country
	}
	return p
}
