package mapper

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/shopspring/decimal"

	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/money"
)

// Mercoa invoices (payables unless the source is configured as
// receivables). The body is {"eventType", "invoice", "user"} and, for
// invoice.status.changed, "newStatus" and "previousStatus". Amounts are JSON
// numbers in major units; payer is the buyer, vendor the seller.

var mercoaStatuses = map[string]schemas.Status{
	"DRAFT":      schemas.StatusDraft,
	"UNASSIGNED": schemas.StatusDraft,
	"NEW":        schemas.StatusPendingApproval,
	"APPROVED":   schemas.StatusApproved,
	"SCHEDULED":  schemas.StatusScheduled,
	"PENDING":    schemas.StatusProcessing,
	"PROCESSING": schemas.StatusProcessing,
	"PAID":       schemas.StatusPaid,
	"REFUSED":    schemas.StatusRejected,
	"CANCELED":   schemas.StatusVoid,
	"FAILED":     schemas.StatusFailed,
	"ARCHIVED":   schemas.StatusVoid,
}

var mercoaVoidReasons = map[string]string{"CANCELED": "cancelled", "ARCHIVED": "archived"}

type mercoaEntity struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Email   string `json:"email"`
	Profile *struct {
		Business *struct {
			LegalBusinessName string `json:"legalBusinessName"`
			Email             string `json:"email"`
			Address           *struct {
				AddressLine1    string `json:"addressLine1"`
				AddressLine2    string `json:"addressLine2"`
				City            string `json:"city"`
				StateOrProvince string `json:"stateOrProvince"`
				PostalCode      string `json:"postalCode"`
				Country         string `json:"country"`
			} `json:"address"`
			TaxID *struct {
				EIN *struct {
					Number string `json:"number"`
				} `json:"ein"`
			} `json:"taxId"`
		} `json:"business"`
	} `json:"profile"`
}

type mercoaInvoice struct {
	ID             string          `json:"id"`
	Status         string          `json:"status"`
	Amount         json.RawMessage `json:"amount"`
	Currency       string          `json:"currency"`
	InvoiceNumber  string          `json:"invoiceNumber"`
	InvoiceDate    string          `json:"invoiceDate"`
	DueDate        string          `json:"dueDate"`
	CreatedAt      string          `json:"createdAt"`
	UpdatedAt      string          `json:"updatedAt"`
	ProcessedAt    string          `json:"processedAt"`
	SettlementDate string          `json:"settlementDate"`
	ServiceStart   string          `json:"serviceStartDate"`
	ServiceEnd     string          `json:"serviceEndDate"`
	NoteToSelf     string          `json:"noteToSelf"`
	ForeignID      string          `json:"foreignId"`
	Payer          *mercoaEntity   `json:"payer"`
	Vendor         *mercoaEntity   `json:"vendor"`
	LineItems      []struct {
		Name         string          `json:"name"`
		Description  string          `json:"description"`
		Amount       json.RawMessage `json:"amount"`
		Currency     string          `json:"currency"`
		Quantity     json.RawMessage `json:"quantity"`
		UnitPrice    json.RawMessage `json:"unitPrice"`
		ServiceStart string          `json:"serviceStartDate"`
		ServiceEnd   string          `json:"serviceEndDate"`
	} `json:"lineItems"`
}

type mercoaBody struct {
	EventType      string         `json:"eventType"`
	Invoice        *mercoaInvoice `json:"invoice"`
	NewStatus      string         `json:"newStatus"`
	PreviousStatus string         `json:"previousStatus"`
}

func mapMercoa(in Input) (Result, error) {
	var body mercoaBody
	if err := decodeJSON(in.Body, &body); err != nil {
		return Result{}, err
	}
	res := Result{ProviderEventType: body.EventType, Action: ActionUpsert}
	switch t := body.EventType; {
	case t == "invoice.created":
		res.Action = ActionCreated
	case t == "invoice.deleted":
		res.Action = ActionDeleted
	case t == "invoice.updated", t == "invoice.status.changed", strings.HasPrefix(t, "invoice.status."):
	default:
		return Result{}, fmt.Errorf("%w: mercoa %q", ErrUnknownEventType, t)
	}
	if body.Invoice == nil || body.Invoice.ID == "" {
		return Result{}, unmappable("mercoa: invoice.id missing")
	}
	inv, err := body.Invoice.canonical(in)
	if err != nil {
		return Result{}, fmt.Errorf("mercoa invoice %s: %w", body.Invoice.ID, err)
	}
	if body.NewStatus != "" && body.NewStatus != body.Invoice.Status {
		return Result{}, unmappable("mercoa: newStatus %s disagrees with invoice.status %s", body.NewStatus, body.Invoice.Status)
	}
	if body.PreviousStatus != "" {
		res.PreviousStatus = status(mercoaStatuses, body.PreviousStatus)
	}
	res.Invoice = inv
	res.OccurredAt = in.Time.UTC()
	if inv.RemoteUpdatedAt != nil {
		res.OccurredAt = *inv.RemoteUpdatedAt
	}
	return res, nil
}

func (m *mercoaInvoice) canonical(in Input) (schemas.Invoice, error) {
	cur, err := currency(m.Currency, "currency")
	if err != nil {
		return schemas.Invoice{}, err
	}
	direction := schemas.DirectionPayable
	if in.Direction != "" {
		direction = in.Direction
	}
	st := status(mercoaStatuses, m.Status)
	inv := schemas.Invoice{
		ID: schemas.InvoiceID(in.Provider, in.Source, m.ID), Provider: in.Provider, Source: in.Source, RemoteID: m.ID,
		Number: m.InvoiceNumber, Direction: direction, DocumentType: schemas.DocumentInvoice,
		Status: st, ProviderStatus: m.Status, VoidReason: mercoaVoidReasons[m.Status], Currency: cur.Code,
		Memo: m.NoteToSelf, RawRef: in.RawRef, Seller: m.Vendor.canonical(), Buyer: m.Payer.canonical(),
	}
	if m.ForeignID != "" {
		inv.Notes = []schemas.Note{{Name: "foreign_id", Text: m.ForeignID}}
	}
	var problems errs
	inv.IssueDate, err = date(m.InvoiceDate, "invoiceDate")
	problems.add(err)
	inv.DueDate, err = date(m.DueDate, "dueDate")
	problems.add(err)
	inv.RemoteCreatedAt, err = timestamp(m.CreatedAt, "createdAt")
	problems.add(err)
	inv.RemoteUpdatedAt, err = timestamp(m.UpdatedAt, "updatedAt")
	problems.add(err)
	if st == schemas.StatusPaid {
		paidAt := m.SettlementDate
		if paidAt == "" {
			paidAt = m.ProcessedAt
		}
		inv.PaidAt, err = timestamp(paidAt, "settlementDate")
		problems.add(err)
	}
	period, err := periodOf(m.ServiceStart, m.ServiceEnd)
	problems.add(err)
	total, err := amount(m.Amount, "amount")
	problems.add(err)
	var nets []decimal.Decimal
	for i, li := range m.LineItems {
		field := func(name string) string { return fmt.Sprintf("lineItems[%d].%s", i, name) }
		net, err1 := amountIn(li.Amount, li.Currency, cur, field("amount"))
		qty, err2 := amount(li.Quantity, field("quantity"))
		unit, err3 := amount(li.UnitPrice, field("unitPrice"))
		linePeriod, err4 := periodOf(li.ServiceStart, li.ServiceEnd)
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			problems.add(err)
			continue
		}
		name := li.Name
		if name == "" {
			name = li.Description
		}
		if linePeriod == nil {
			linePeriod = period
		}
		inv.Lines = append(inv.Lines, schemas.Line{
			Name: name, Description: li.Description, Quantity: money.Plain(qty), UnitPrice: money.Exact(unit, cur),
			NetAmount: money.Total(net, cur), TotalAmount: ptr(money.Total(net, cur)), Period: linePeriod,
		})
		nets = append(nets, net)
	}
	if err := problems.err(); err != nil {
		return schemas.Invoice{}, err
	}
	// Mercoa states one amount; its lines carry no tax.
	t := totalsInput{LinesNet: total, Total: total}
	if len(nets) > 0 {
		t.LinesNet = sumAmounts(nets)
		t.Net = decimalPtr(total)
	}
	if st == schemas.StatusPaid {
		t.Paid = total
	}
	inv.Totals = t.render(cur)
	return inv, nil
}

func (e *mercoaEntity) canonical() *schemas.Party {
	if e == nil {
		return nil
	}
	p := &schemas.Party{ID: e.ID, Name: e.Name, Email: e.Email}
	if e.Profile != nil && e.Profile.Business != nil {
		b := e.Profile.Business
		if p.Name == "" {
			p.Name = b.LegalBusinessName
		}
		if p.Email == "" {
			p.Email = b.Email
		}
		if a := b.Address; a != nil {
			p.Address = address(a.AddressLine1, a.AddressLine2, a.City, a.PostalCode, a.StateOrProvince, a.Country)
			p.Country = country(a.Country)
		}
		if b.TaxID != nil && b.TaxID.EIN != nil {
			p.TaxID = b.TaxID.EIN.Number
		}
	}
	return p
}
