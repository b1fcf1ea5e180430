package normalizer

import (
	"fmt"

	"github.com/shopspring/decimal"

	"github.com/invoicehub/invoicehub/schemas"
)

// check evaluates the EN 16931 arithmetic of an invoice's totals and
// returns the rules it breaks. They are warnings, never rejections: the
// provider's figures are published as stated.
//
//	BR-CO-10  sum of line net amounts = lines_net
//	BR-CO-13  lines_net − discount = net
//	BR-CO-15  net + tax = total
//	BR-CO-16  total − paid − credited = due
func check(inv schemas.Invoice) []string {
	t := inv.Totals
	var warnings []string
	rule := func(name string, left, right decimal.Decimal) {
		if !left.Equal(right) {
			warnings = append(warnings, fmt.Sprintf("%s: %s ≠ %s", name, left, right))
		}
	}
	if len(inv.Lines) > 0 {
		sum := decimal.Zero
		for _, l := range inv.Lines {
			sum = sum.Add(l.NetAmount.Decimal())
		}
		rule("BR-CO-10 sum of lines = lines_net", sum, t.LinesNet.Decimal())
	}
	rule("BR-CO-13 lines_net − discount = net", t.LinesNet.Decimal().Sub(t.Discount.Decimal()), t.Net.Decimal())
	rule("BR-CO-15 net + tax = total", t.Net.Decimal().Add(t.Tax.Decimal()), t.Total.Decimal())
	rule("BR-CO-16 total − paid − credited = due", t.Total.Decimal().Sub(t.Paid.Decimal()).Sub(t.Credited.Decimal()), t.Due.Decimal())
	return warnings
}
