// Package schemas is invoicehub's public contract: the canonical invoice
// event (Go types and the JSON Schema they match), its statuses and kinds.
//
// Subscribers import this package to read events from the INVOICES stream.
// Subpackages hold the rest of the wire contract: money (exact amounts),
// subject (NATS subject names), stream (JetStream stream configs) and ce
// (CloudEvents on NATS).
package schemas

import (
	"time"

	"github.com/invoicehub/invoicehub/schemas/money"
)

// SchemaVersion is the value of EventData.SchemaVersion for this package.
const SchemaVersion = "1"

// EventData is the data of a canonical CloudEvent: what happened, the
// invoice's full state after it, and the payment when the event carries one.
type EventData struct {
	SchemaVersion string    `json:"schema_version"`
	Event         EventInfo `json:"event"`
	Invoice       Invoice   `json:"invoice"`
	Payment       *Payment  `json:"payment,omitempty"`
}

// EventInfo describes the change an event reports.
type EventInfo struct {
	Kind              Kind      `json:"kind"`
	OccurredAt        time.Time `json:"occurred_at"`
	ProviderEventID   string    `json:"provider_event_id"`
	ProviderEventType string    `json:"provider_event_type"`
	PreviousStatus    Status    `json:"previous_status,omitempty"`
	ChangedFields     []string  `json:"changed_fields,omitempty"`
}

// Invoice is the full post-image of an invoice in canonical form. Field names
// follow EN 16931 business terms where one exists.
type Invoice struct {
	// ID is the canonical invoice id, see InvoiceID.
	ID             string       `json:"id"`
	Provider       string       `json:"provider"`
	Source         string       `json:"source"`
	RemoteID       string       `json:"remote_id"`
	Number         string       `json:"number,omitempty"`
	Direction      Direction    `json:"direction"`
	DocumentType   DocumentType `json:"document_type"`
	Status         Status       `json:"status"`
	ProviderStatus string       `json:"provider_status"`
	VoidReason     string       `json:"void_reason,omitempty"`
	IsOverdue      bool         `json:"is_overdue"`
	// IssueDate and DueDate are calendar dates, "2006-01-02".
	IssueDate        string        `json:"issue_date,omitempty"`
	DueDate          string        `json:"due_date,omitempty"`
	SentAt           *time.Time    `json:"sent_at,omitempty"`
	PaidAt           *time.Time    `json:"paid_at,omitempty"`
	Currency         string        `json:"currency"`
	ExchangeRate     *money.Amount `json:"exchange_rate,omitempty"`
	Seller           *Party        `json:"seller,omitempty"`
	Buyer            *Party        `json:"buyer,omitempty"`
	Totals           Totals        `json:"totals"`
	TaxBreakdown     []TaxSubtotal `json:"tax_breakdown,omitempty"`
	Lines            []Line        `json:"lines,omitempty"`
	PurchaseOrderRef string        `json:"purchase_order_ref,omitempty"`
	ContractRef      string        `json:"contract_ref,omitempty"`
	Memo             string        `json:"memo,omitempty"`
	// Notes holds named free texts that have no field of their own, such as
	// the French legal mentions on a Qonto invoice.
	Notes           []Note     `json:"notes,omitempty"`
	RemoteCreatedAt *time.Time `json:"remote_created_at,omitempty"`
	RemoteUpdatedAt *time.Time `json:"remote_updated_at,omitempty"`
	RawRef          RawRef     `json:"raw_ref"`
}

// Party is a seller or a buyer.
type Party struct {
	ID      string   `json:"id,omitempty"`
	Name    string   `json:"name,omitempty"`
	Email   string   `json:"email,omitempty"`
	TaxID   string   `json:"tax_id,omitempty"`
	Country string   `json:"country,omitempty"`
	Address *Address `json:"address,omitempty"`
}

// Address is a postal address; Country is ISO 3166-1 alpha-2.
type Address struct {
	Line1      string `json:"line1,omitempty"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city,omitempty"`
	PostalCode string `json:"postal_code,omitempty"`
	Region     string `json:"region,omitempty"`
	Country    string `json:"country,omitempty"`
}

// Totals are the document totals, all at the currency's minor unit.
// LinesNet − Discount = Net; Net + Tax = Total; Total − Paid − Credited = Due.
type Totals struct {
	LinesNet money.Amount `json:"lines_net"`
	Discount money.Amount `json:"discount"`
	Net      money.Amount `json:"net"`
	Tax      money.Amount `json:"tax"`
	Total    money.Amount `json:"total"`
	Paid     money.Amount `json:"paid"`
	Credited money.Amount `json:"credited"`
	Due      money.Amount `json:"due"`
}

// TaxSubtotal is the tax for one rate; Rate is a fraction ("0.2" for 20%).
type TaxSubtotal struct {
	Rate          money.Amount `json:"rate"`
	TaxableAmount money.Amount `json:"taxable_amount"`
	TaxAmount     money.Amount `json:"tax_amount"`
}

// Line is an invoice line. TaxRate is a fraction ("0.2" for 20%).
type Line struct {
	Name        string        `json:"name"`
	Description string        `json:"description,omitempty"`
	Quantity    money.Amount  `json:"quantity"`
	Unit        string        `json:"unit,omitempty"`
	UnitPrice   money.Amount  `json:"unit_price"`
	Discount    *money.Amount `json:"discount,omitempty"`
	NetAmount   money.Amount  `json:"net_amount"`
	TaxRate     *money.Amount `json:"tax_rate,omitempty"`
	TaxAmount   *money.Amount `json:"tax_amount,omitempty"`
	TotalAmount *money.Amount `json:"total_amount,omitempty"`
	Period      *Period       `json:"period,omitempty"`
}

// Period is a date range, "2006-01-02" dates.
type Period struct {
	Start string `json:"start,omitempty"`
	End   string `json:"end,omitempty"`
}

// Note is a named free text.
type Note struct {
	Name string `json:"name"`
	Text string `json:"text"`
}

// Payment is a payment an event reports.
type Payment struct {
	ID        string       `json:"id,omitempty"`
	Amount    money.Amount `json:"amount"`
	Currency  string       `json:"currency"`
	PaidAt    *time.Time   `json:"paid_at,omitempty"`
	Method    string       `json:"method,omitempty"`
	Reference string       `json:"reference,omitempty"`
}

// RawRef points at the raw webhook an invoice state was derived from.
type RawRef struct {
	Stream   string `json:"stream"`
	Sequence uint64 `json:"sequence"`
}

// InvoiceID returns the canonical invoice id, "<provider>:<source>:<remote id>".
// It is the CloudEvent subject and the partition key of the invoice's events.
func InvoiceID(provider, source, remoteID string) string {
	return provider + ":" + source + ":" + remoteID
}
