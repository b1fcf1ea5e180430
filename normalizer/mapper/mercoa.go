package mapper

import (
	"errors"
	"fmt"
	"github.com/go-json-experiment/json/jsontext"
	"slices"
	"strings"

	"github.com/shopspring/decimal"

	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/money"
)

// Mercoa invoices (payables unless the source is configured as
// receivables). The body is {"eventType", ...}: invoice events carry
// "invoice" (and "user"), invoice.status.changed adds "newStatus" and
// "previousStatus" (lower case in Mercoa's examples, where invoice.status
// is upper case). Amounts are JSON numbers in major units; payer is the
// buyer, vendor the seller. Events without an invoice payload are skipped:
// bulk events (ids only), an invoice.email with only existingInvoiceId,
// transactions (their invoices' changes arrive as invoice events), and
// every event about counterparties, entities, payment methods and jobs.

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
	ID             string         `json:"id"`
	Status         string         `json:"status"`
	Amount         jsontext.Value `json:"amount"`
	Currency       string         `json:"currency"`
	InvoiceNumber  string         `json:"invoiceNumber"`
	InvoiceDate    string         `json:"invoiceDate"`
	DueDate        string         `json:"dueDate"`
	CreatedAt      string         `json:"createdAt"`
	UpdatedAt      string         `json:"updatedAt"`
	ProcessedAt    string         `json:"processedAt"`
	SettlementDate string         `json:"settlementDate"`
	ServiceStart   string         `json:"serviceStartDate"`
	ServiceEnd     string         `json:"serviceEndDate"`
	NoteToSelf     string         `json:"noteToSelf"`
	ForeignID      string         `json:"foreignId"`
	Payer          *mercoaEntity  `json:"payer"`
	Vendor         *mercoaEntity  `json:"vendor"`
	LineItems      []struct {
		Name         string         `json:"name"`
		Description  string         `json:"description"`
		Amount       jsontext.Value `json:"amount"`
		Currency     string         `json:"currency"`
		Quantity     jsontext.Value `json:"quantity"`
		UnitPrice    jsontext.Value `json:"unitPrice"`
		ServiceStart string         `json:"serviceStartDate"`
		ServiceEnd   string         `json:"serviceEndDate"`
	} `json:"lineItems"`
}

type mercoaBody struct {
	EventType      string         `json:"eventType"`
	Invoice        *mercoaInvoice `json:"invoice"`
	NewStatus      string         `json:"newStatus"`
	PreviousStatus string         `json:"previousStatus"`
}

// mercoaInvoiceEvents are the documented events that carry an invoice,
// with what each reports; per-status events (invoice.status.paid...) are
// upserts too.
var mercoaInvoiceEvents = map[string]Action{
	"invoice.created":                   ActionCreated,
	"invoice.updated":                   ActionUpsert,
	"invoice.deleted":                   ActionDeleted,
	"invoice.status.changed":            ActionUpsert,
	"invoice.email":                     ActionUpsert,
	"invoice.collection.overdue":        ActionUpsert,
	"invoice.collection.email.sent":     ActionUpsert,
	"invoice.collection.email.received": ActionUpsert,
}

// mercoaIDsOnly are the documented invoice events that carry ids only.
var mercoaIDsOnly = []string{"invoice.bulk.created", "invoice.bulk.updated", "invoice.bulk.approved"}

// mercoaAction returns what a documented eventType reports, whether it is
// skipped, or an error for an undocumented invoice event.
func mercoaAction(eventType string) (action Action, err error) {
	if a, ok := mercoaInvoiceEvents[eventType]; ok {
		return a, nil
	}
	if st, ok := strings.CutPrefix(eventType, "invoice.status."); ok {
		if _, known := mercoaStatuses[strings.ToUpper(st)]; known {
			return ActionUpsert, nil
		}
	}
	if slices.Contains(mercoaIDsOnly, eventType) || !strings.HasPrefix(eventType, "invoice.") {
		return ActionSkip, nil
	}
	return 0, unknownEvent("mercoa", eventType)
}

func mapMercoa(in Input) (Result, error) {
	var body mercoaBody
	if err := decodeJSON(in.Body, &body); err != nil {
		return Result{}, err
	}
	action, err := mercoaAction(body.EventType)
	if err != nil {
		return Result{}, err
	}
	if action == ActionSkip || body.EventType == "invoice.email" && body.Invoice == nil {
		return skip(body.EventType)
	}
	if body.Invoice == nil || body.Invoice.ID == "" {
		return Result{}, unmappable("mercoa: invoice.id missing")
	}
	inv, err := body.Invoice.canonical(in)
	if err != nil {
		return Result{}, fmt.Errorf("mercoa invoice %s: %w", body.Invoice.ID, err)
	}
	if body.NewStatus != "" && !strings.EqualFold(body.NewStatus, body.Invoice.Status) {
		return Result{}, unmappable("mercoa: newStatus %s disagrees with invoice.status %s", body.NewStatus, body.Invoice.Status)
	}
	res := Result{Action: action, ProviderEventType: body.EventType, Invoice: inv, OccurredAt: in.Time.UTC()}
	if body.PreviousStatus != "" {
		res.PreviousStatus = status(mercoaStatuses, strings.ToUpper(body.PreviousStatus))
	}
	if inv.RemoteUpdatedAt != nil {
		res.OccurredAt = *inv.RemoteUpdatedAt
	}
	res.Version = versionOf(inv.RemoteUpdatedAt, res.OccurredAt)
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
		net, err1 := settledIn(li.Amount, li.Currency, cur, field("amount"))
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
	if inv.Totals, err = t.render(cur); err != nil {
		return schemas.Invoice{}, err
	}
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
