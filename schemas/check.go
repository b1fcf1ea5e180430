package schemas

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/invoicehub/invoicehub/schemas/money"
)

// ErrScale is returned by Check for an amount that is not written at its
// currency's ISO 4217 minor unit.
var ErrScale = errors.New("schemas: amount not at the currency's minor unit")

// Check verifies what the JSON Schema cannot: every settled amount (the
// totals, the tax breakdown, each line's net, discount, tax and total, the
// payment) is written with exactly its currency's minor unit ("1.234" EUR
// is refused, "1.23" is right; JPY takes none, KWD three). Unit prices,
// quantities and rates keep their precision. The producer runs it on
// everything it publishes.
func (d EventData) Check() error {
	errs := []error{d.Invoice.Check(),
		CheckIdentifier("event.provider_event_id", d.Event.ProviderEventID),
		CheckIdentifier("event.provider_event_type", d.Event.ProviderEventType)}
	if p := d.Payment; p != nil {
		errs = append(errs, CheckReference("payment.id", p.ID),
			checkScale(p.Currency, map[string]money.Amount{"payment.amount": p.Amount}))
	}
	return errors.Join(errs...)
}

// Check verifies an invoice's identifiers and settled amounts as
// EventData.Check does.
func (inv Invoice) Check() error {
	return errors.Join(inv.checkIdentifiers(), inv.checkAmounts())
}

// checkIdentifiers holds the invoice's identifiers to MaxIdentifierBytes
// (the schema counts characters, not bytes).
func (inv Invoice) checkIdentifiers() error {
	errs := []error{
		CheckIdentifier("invoice.id", inv.ID), CheckIdentifier("invoice.remote_id", inv.RemoteID),
		CheckIdentifier("invoice.provider", inv.Provider), CheckIdentifier("invoice.source", inv.Source),
		CheckReference("invoice.number", inv.Number),
	}
	if inv.Seller != nil {
		errs = append(errs, CheckReference("invoice.seller.id", inv.Seller.ID))
	}
	if inv.Buyer != nil {
		errs = append(errs, CheckReference("invoice.buyer.id", inv.Buyer.ID))
	}
	return errors.Join(errs...)
}

// checkAmounts holds the settled amounts to their currency's minor unit.
func (inv Invoice) checkAmounts() error {
	t := inv.Totals
	amounts := map[string]money.Amount{
		"totals.lines_net": t.LinesNet, "totals.discount": t.Discount, "totals.net": t.Net, "totals.tax": t.Tax,
		"totals.total": t.Total, "totals.paid": t.Paid, "totals.credited": t.Credited, "totals.due": t.Due,
	}
	for i, s := range inv.TaxBreakdown {
		amounts[fmt.Sprintf("tax_breakdown[%d].taxable_amount", i)] = s.TaxableAmount
		amounts[fmt.Sprintf("tax_breakdown[%d].tax_amount", i)] = s.TaxAmount
	}
	for i, l := range inv.Lines {
		amounts[fmt.Sprintf("lines[%d].net_amount", i)] = l.NetAmount
		for name, a := range map[string]*money.Amount{"discount": l.Discount, "tax_amount": l.TaxAmount, "total_amount": l.TotalAmount} {
			if a != nil {
				amounts[fmt.Sprintf("lines[%d].%s", i, name)] = *a
			}
		}
	}
	return checkScale(inv.Currency, amounts)
}

func checkScale(code string, amounts map[string]money.Amount) error {
	cur, err := money.LookupCurrency(code)
	if err != nil {
		return fmt.Errorf("schemas: check: %w", err)
	}
	var errs []error
	for _, field := range slices.Sorted(maps.Keys(amounts)) {
		if a := amounts[field]; a.Places() != cur.MinorUnits {
			errs = append(errs, fmt.Errorf("%w: %s %q in %s (want %d decimals)", ErrScale, field, a.String(), cur.Code, cur.MinorUnits))
		}
	}
	return errors.Join(errs...)
}
