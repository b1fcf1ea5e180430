package mapper

import (
	"errors"
	"fmt"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/shopspring/decimal"

	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/money"
)

// Rillet bills: a vendor's invoice to the company, so a payable; the seller
// is the vendor. The Bill schema has no totals: they are computed from the
// items, each an amount with an optional tax_rate whose coverage says
// whether the amount includes the tax (INCLUSIVE) or not (EXCLUSIVE). Nor
// does it state what was paid: a settled status (PAID, CREDITED, APPLIED)
// leaves nothing due, the others leave the total due.

var rilletBillStatuses = map[string]schemas.Status{
	"UNPAID":             schemas.StatusOpen,
	"PARTIALLY_PAID":     schemas.StatusPartiallyPaid,
	"PAID":               schemas.StatusPaid,
	"CREDITED":           schemas.StatusVoid,
	"PARTIALLY_CREDITED": schemas.StatusOpen,
	"APPLIED":            schemas.StatusPaid,
}

type rilletBill struct {
	ID            string           `json:"id"`
	VendorID      string           `json:"vendor_id"`
	SubsidiaryID  string           `json:"subsidiary_id"`
	ExpenseNumber string           `json:"expense_number"`
	BillDate      string           `json:"bill_date"`
	DueDate       string           `json:"due_date"`
	Status        string           `json:"status"`
	UpdatedAt     string           `json:"updated_at"`
	ExchangeRate  *rilletRate      `json:"exchange_rate"`
	Items         []rilletBillItem `json:"items"`
}

type rilletRate struct {
	Rate string `json:"rate"`
}

type rilletBillItem struct {
	ID          string        `json:"id"`
	AccountCode string        `json:"account_code"`
	Description string        `json:"description"`
	Amount      *rilletAmount `json:"amount"`
	TaxRate     *struct {
		Percentage jsontext.Value `json:"percentage"`
		TaxAmount  *rilletAmount  `json:"tax_amount"`
		Coverage   string         `json:"coverage"`
	} `json:"tax_rate"`
	ServicePeriod *struct {
		Start string `json:"start"`
		End   string `json:"end"`
	} `json:"service_period"`
}

func mapRilletBill(in Input) (schemas.Invoice, error) {
	var b rilletBill
	if err := decodeJSON(in.Body, &b); err != nil {
		return schemas.Invoice{}, err
	}
	if b.ID == "" {
		return schemas.Invoice{}, unmappable("rillet bill: id missing")
	}
	inv, err := b.canonical(in)
	if err != nil {
		return schemas.Invoice{}, fmt.Errorf("rillet bill %s: %w", b.ID, err)
	}
	return inv, nil
}

// currency is the bill's: that of its items, which must agree.
func (b *rilletBill) currency() (money.Currency, error) {
	code := ""
	for i, it := range b.Items {
		if it.Amount == nil || it.Amount.Currency == "" {
			return money.Currency{}, unmappable("items[%d].amount: missing", i)
		}
		if code != "" && it.Amount.Currency != code {
			return money.Currency{}, unmappable("items[%d].amount: currency %s differs from %s", i, it.Amount.Currency, code)
		}
		code = it.Amount.Currency
	}
	if code == "" {
		return money.Currency{}, unmappable("no items")
	}
	return currency(code, "items.amount.currency")
}

func (b *rilletBill) canonical(in Input) (schemas.Invoice, error) {
	cur, err := b.currency()
	if err != nil {
		return schemas.Invoice{}, err
	}
	direction := schemas.DirectionPayable
	if in.Direction != "" {
		direction = in.Direction
	}
	inv := schemas.Invoice{
		ID: schemas.InvoiceID(in.Provider, in.Source, b.ID), Provider: in.Provider, Source: in.Source, RemoteID: b.ID,
		Number: b.ExpenseNumber, Direction: direction, DocumentType: schemas.DocumentInvoice,
		Status: status(rilletBillStatuses, b.Status), ProviderStatus: b.Status, Currency: cur.Code, RawRef: in.RawRef,
		Seller: party(b.VendorID, nil), Buyer: party(b.SubsidiaryID, nil),
	}
	if b.Status == "CREDITED" {
		inv.VoidReason = "credited"
	}
	var problems errs
	inv.IssueDate, err = date(b.BillDate, "bill_date")
	problems.add(err)
	inv.DueDate, err = date(b.DueDate, "due_date")
	problems.add(err)
	inv.RemoteUpdatedAt, err = timestamp(b.UpdatedAt, "updated_at")
	problems.add(err)
	if b.ExchangeRate != nil && b.ExchangeRate.Rate != "" {
		rate, err := money.Parse(b.ExchangeRate.Rate)
		problems.add(err)
		inv.ExchangeRate = ptr(money.Plain(rate))
	}
	var t totalsInput
	var rates taxRates
	for i, it := range b.Items {
		line, net, tax, rate, err := it.canonical(cur, fmt.Sprintf("items[%d]", i))
		if err != nil {
			problems.add(err)
			continue
		}
		inv.Lines = append(inv.Lines, line)
		t.LinesNet, t.Tax = t.LinesNet.Add(net), t.Tax.Add(tax)
		if rate != nil {
			rates = rates.add(*rate, net, tax)
		}
	}
	if err := problems.err(); err != nil {
		return schemas.Invoice{}, err
	}
	t.Total = t.LinesNet.Add(t.Tax)
	switch b.Status {
	case "PAID", "APPLIED":
		t.Paid = t.Total
	case "CREDITED":
		t.Credited = t.Total
	}
	if inv.Totals, err = t.render(cur); err != nil {
		return schemas.Invoice{}, err
	}
	inv.TaxBreakdown = rates.breakdown(t.LinesNet, t.Tax, cur)
	inv.IsOverdue = overdue(inv.Status, inv.DueDate, in.Time)
	return inv, nil
}

// canonical maps an item: its net amount, tax and rate (a fraction; nil
// without tax_rate). An INCLUSIVE amount holds its tax, an EXCLUSIVE one
// does not.
func (it rilletBillItem) canonical(cur money.Currency, at string) (line schemas.Line, net, tax decimal.Decimal, rate *decimal.Decimal, err error) {
	amt, err := it.Amount.settled(cur, at+".amount")
	if err != nil {
		return
	}
	net = amt
	if tr := it.TaxRate; tr != nil {
		if tax, err = tr.TaxAmount.settled(cur, at+".tax_rate.tax_amount"); err != nil {
			return
		}
		pct, perr := amount(tr.Percentage, at+".tax_rate.percentage")
		if perr != nil {
			err = perr
			return
		}
		fraction := pct.Shift(-2)
		rate = &fraction
		switch tr.Coverage {
		case "INCLUSIVE":
			net = amt.Sub(tax)
		case "EXCLUSIVE":
		default:
			err = unmappable("%s.tax_rate.coverage %q: want INCLUSIVE or EXCLUSIVE", at, tr.Coverage)
			return
		}
	}
	name := it.Description
	if name == "" {
		name = it.AccountCode
	}
	line = schemas.Line{
		Name: name, Quantity: money.Plain(decimal.NewFromInt(1)), UnitPrice: money.Exact(net, cur),
		NetAmount: money.Total(net, cur), TaxAmount: ptr(money.Total(tax, cur)), TotalAmount: ptr(money.Total(net.Add(tax), cur)),
	}
	if rate != nil {
		line.TaxRate = ptr(money.Plain(*rate))
	}
	if p := it.ServicePeriod; p != nil {
		start, err1 := date(p.Start, at+".service_period.start")
		end, err2 := date(p.End, at+".service_period.end")
		if err = errors.Join(err1, err2); err != nil {
			return
		}
		line.Period = &schemas.Period{Start: start, End: end}
	}
	return line, net, tax, rate, nil
}
