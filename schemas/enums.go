package schemas

import "fmt"

// Status is the canonical invoice status. Overdue is a flag, not a status.
type Status string

// The closed set of statuses; a provider status with no mapping is StatusUnknown.
const (
	StatusDraft           Status = "draft"
	StatusPendingApproval Status = "pending_approval"
	StatusApproved        Status = "approved"
	StatusOpen            Status = "open"
	StatusScheduled       Status = "scheduled"
	StatusProcessing      Status = "processing"
	StatusPartiallyPaid   Status = "partially_paid"
	StatusPaid            Status = "paid"
	StatusVoid            Status = "void"
	StatusRejected        Status = "rejected"
	StatusFailed          Status = "failed"
	StatusUnknown         Status = "unknown"
)

// Kind is what an event reports. Every change emits KindUpdated with the full
// state, plus the specific kinds that apply.
type Kind string

// The event kinds.
const (
	KindCreated         Kind = "created"
	KindUpdated         Kind = "updated"
	KindStatusChanged   Kind = "status_changed"
	KindSent            Kind = "sent"
	KindPaymentReceived Kind = "payment_received"
	KindPaid            Kind = "paid"
	KindDeleted         Kind = "deleted"
)

// Kinds lists every kind, in the order an event set is published.
var Kinds = []Kind{KindCreated, KindUpdated, KindStatusChanged, KindSent, KindPaymentReceived, KindPaid, KindDeleted}

// EventType returns the CloudEvent type for kind: com.invoicehub.invoice.<kind>.v1.
func (k Kind) EventType() string {
	return fmt.Sprintf("com.invoicehub.invoice.%s.v1", k)
}

// Direction says who pays: a receivable is money owed to the account holder,
// a payable is money it owes.
type Direction string

// The directions.
const (
	DirectionReceivable Direction = "receivable"
	DirectionPayable    Direction = "payable"
)

// DocumentType tells an invoice from a credit note.
type DocumentType string

// The document types.
const (
	DocumentInvoice    DocumentType = "invoice"
	DocumentCreditNote DocumentType = "credit_note"
)
