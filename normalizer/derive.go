package normalizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"

	"github.com/shopspring/decimal"

	"github.com/invoicehub/invoicehub/normalizer/mapper"
	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/money"
)

// Outcome says what a raw event did.
type Outcome string

// The outcomes besides publishing events.
const (
	OutcomePublished      Outcome = "published"
	OutcomeUnchanged      Outcome = "unchanged"       // a newer version with nothing new
	OutcomeStale          Outcome = "stale"           // older than the known state: dropped
	OutcomeDeletedUnknown Outcome = "deleted_unknown" // a deletion of an invoice never seen
	OutcomeApplied        Outcome = "applied"         // a repeat: the state holds this raw event's change already
	OutcomeSkipped        Outcome = "skipped"         // a genuine event that is not about an invoice
)

// change is the derived result of one raw event.
type change struct {
	kinds   []schemas.Kind
	info    schemas.EventInfo // shared by the change's events, but Kind
	invoice schemas.Invoice   // post-image
	payment *schemas.Payment
	outcome Outcome
}

// derive computes the events of a mapped raw event against the previous
// post-image (nil when the invoice is new or was deleted). It is pure: the
// same inputs always derive the same events.
func derive(prev *schemas.Invoice, res mapper.Result, rawID string) change {
	c := change{invoice: res.Invoice, payment: res.Payment, outcome: OutcomePublished}
	c.info = schemas.EventInfo{OccurredAt: res.OccurredAt.UTC(), ProviderEventID: rawID, ProviderEventType: res.ProviderEventType}
	if res.Action == mapper.ActionDeleted {
		if res.Invoice.Currency == "" { // the provider sent only the id
			if prev == nil {
				c.outcome = OutcomeDeletedUnknown
				return c
			}
			post := *prev
			post.RawRef = res.Invoice.RawRef
			c.invoice = post
		}
		c.kinds = []schemas.Kind{schemas.KindDeleted}
		return c
	}
	post := &c.invoice
	if prev == nil {
		c.kinds = []schemas.Kind{schemas.KindCreated, schemas.KindUpdated}
		if res.PreviousStatus != "" && res.PreviousStatus != post.Status {
			c.info.PreviousStatus = res.PreviousStatus
			c.kinds = append(c.kinds, schemas.KindStatusChanged)
		}
		if post.SentAt != nil {
			c.kinds = append(c.kinds, schemas.KindSent)
		}
		if c.payment == nil && post.Totals.Paid.Decimal().IsPositive() {
			c.payment = paymentOf(*post, post.Totals.Paid.Decimal())
		}
	} else {
		c.info.ChangedFields = changedFields(prev, post)
		if len(c.info.ChangedFields) == 0 && c.payment == nil {
			c.outcome = OutcomeUnchanged
			return c
		}
		c.kinds = []schemas.Kind{schemas.KindUpdated}
		if prev.Status != post.Status {
			c.info.PreviousStatus = prev.Status
			c.kinds = append(c.kinds, schemas.KindStatusChanged)
		}
		if prev.SentAt == nil && post.SentAt != nil {
			c.kinds = append(c.kinds, schemas.KindSent)
		}
		if delta := post.Totals.Paid.Decimal().Sub(prev.Totals.Paid.Decimal()); c.payment == nil && delta.IsPositive() {
			c.payment = paymentOf(*post, delta)
		}
	}
	if c.payment != nil {
		c.kinds = append(c.kinds, schemas.KindPaymentReceived)
	}
	if post.Status == schemas.StatusPaid && (prev == nil || prev.Status != schemas.StatusPaid) {
		c.kinds = append(c.kinds, schemas.KindPaid)
	}
	return c
}

// paymentOf describes a payment the provider implied by a higher paid total.
func paymentOf(inv schemas.Invoice, amount decimal.Decimal) *schemas.Payment {
	cur, _ := money.LookupCurrency(inv.Currency) // the mapper checked it
	return &schemas.Payment{Amount: money.Total(amount, cur), Currency: inv.Currency, PaidAt: inv.PaidAt}
}

// unversioned lists invoice fields that are bookkeeping, not content: a
// change to them alone is no change.
var unversioned = []string{"raw_ref", "remote_updated_at"}

// changedFields lists the top-level invoice fields that differ, sorted.
func changedFields(prev, post *schemas.Invoice) []string {
	a, b := fields(prev), fields(post)
	var changed []string
	for k := range merged(a, b) {
		if !slices.Contains(unversioned, k) && !bytes.Equal(a[k], b[k]) {
			changed = append(changed, k)
		}
	}
	slices.Sort(changed)
	return changed
}

func fields(inv *schemas.Invoice) map[string]json.RawMessage {
	raw, _ := json.Marshal(inv)
	var m map[string]json.RawMessage
	_ = json.Unmarshal(raw, &m)
	return m
}

func merged(a, b map[string]json.RawMessage) map[string]struct{} {
	keys := map[string]struct{}{}
	for k := range a {
		keys[k] = struct{}{}
	}
	for k := range b {
		keys[k] = struct{}{}
	}
	return keys
}

// ErrSchemaViolation classes a canonical event the schema refuses: text
// the contract does not allow (a NUL, February 30th, a memo over its
// bound) or a bug in a mapper, dead-lettered with the schema's reason so
// that the stream flows on and every sink receives the same events.
var ErrSchemaViolation = errors.New("schema_violation")
