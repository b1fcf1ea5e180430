package mapper

import (
	"errors"
	"fmt"
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/money"
)

// amount parses a money value from its literal JSON text (a string or a
// number); an absent value is zero.
func amount(raw jsontext.Value, field string) (decimal.Decimal, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return decimal.Zero, nil
	}
	d, err := money.ParseJSON(raw)
	if err != nil {
		return decimal.Decimal{}, unmappable("%s: %v", field, err)
	}
	return d, nil
}

// amountIn parses an amount tagged with its currency code and checks the
// code is the document's (an empty code is taken as the document's).
func amountIn(raw jsontext.Value, code string, cur money.Currency, field string) (decimal.Decimal, error) {
	if code != "" && !strings.EqualFold(code, cur.Code) {
		return decimal.Decimal{}, unmappable("%s: currency %s differs from the document's %s", field, code, cur.Code)
	}
	return amount(raw, field)
}

// currency looks up an ISO 4217 code.
func currency(code, field string) (money.Currency, error) {
	c, err := money.LookupCurrency(code)
	if err != nil {
		return money.Currency{}, unmappable("%s: %v", field, err)
	}
	return c, nil
}

var dateSyntax = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}`)

// date returns the calendar date of a provider date or date-time
// ("2022-03-01", "2021-01-31T00:00:00Z"), or "" for an empty value.
func date(s, field string) (string, error) {
	if s == "" {
		return "", nil
	}
	if !dateSyntax.MatchString(s) {
		return "", unmappable("%s: %q is not a date", field, s)
	}
	d := s[:10]
	if _, err := time.Parse(time.DateOnly, d); err != nil {
		return "", unmappable("%s: %q is not a date", field, s)
	}
	return d, nil
}

// timestamp parses an RFC 3339 date-time, or returns nil for an empty value.
func timestamp(s, field string) (*time.Time, error) {
	if s == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil, unmappable("%s: %q is not an RFC 3339 time", field, s)
	}
	t = t.UTC()
	return &t, nil
}

// status maps a provider status word through table; a word with no mapping
// is StatusUnknown (the normalizer counts those), never an error.
func status(table map[string]schemas.Status, word string) schemas.Status {
	if s, ok := table[word]; ok {
		return s
	}
	return schemas.StatusUnknown
}

// totalsInput is what a provider states about its totals. Net and Due are
// taken as stated when the provider states them (so the EN 16931 checks
// compare real figures), and computed otherwise: net = lines_net −
// discount, due = total − paid − credited.
type totalsInput struct {
	LinesNet, Discount, Tax, Total, Paid, Credited decimal.Decimal
	Net, Due                                       *decimal.Decimal
}

// render writes the totals at the currency's minor unit. What the
// provider states, or derives by adding and subtracting what it states
// (all but LinesNet, which may sum computed line nets), must already be
// at that scale: it is refused, never rounded (see settled).
func (t totalsInput) render(cur money.Currency) (schemas.Totals, error) {
	stated := []struct {
		field string
		value *decimal.Decimal
	}{{"discount", &t.Discount}, {"tax", &t.Tax}, {"total", &t.Total}, {"paid", &t.Paid}, {"credited", &t.Credited}, {"net", t.Net}, {"due", t.Due}}
	for _, s := range stated {
		if s.value == nil {
			continue
		}
		if _, err := settled(*s.value, cur, "totals."+s.field); err != nil {
			return schemas.Totals{}, err
		}
	}
	net := t.LinesNet.Sub(t.Discount)
	if t.Net != nil {
		net = *t.Net
	}
	due := t.Total.Sub(t.Paid).Sub(t.Credited)
	if t.Due != nil {
		due = *t.Due
	}
	return schemas.Totals{
		LinesNet: money.Total(t.LinesNet, cur), Discount: money.Total(t.Discount, cur),
		Net: money.Total(net, cur), Tax: money.Total(t.Tax, cur), Total: money.Total(t.Total, cur),
		Paid: money.Total(t.Paid, cur), Credited: money.Total(t.Credited, cur), Due: money.Total(due, cur),
	}, nil
}

// settled holds an amount the provider states as settled in the currency
// (a total, a tax, a line's net or total, a payment) to the currency's
// minor unit: "1440.001" EUR is refused with ErrTooPrecise, never rounded
// to 1440.00, for every provider alike. Amounts computed here (a line's
// quantity × unit price) are rounded half-even by money.Total, as EN
// 16931 rounds line nets; unit prices, quantities and rates keep their
// decimals.
func settled(d decimal.Decimal, cur money.Currency, field string) (decimal.Decimal, error) {
	if !d.Equal(d.Truncate(cur.MinorUnits)) {
		return decimal.Decimal{}, fmt.Errorf("%w: %s %s has more decimals than %s's %d", ErrTooPrecise, field, d.String(), cur.Code, cur.MinorUnits)
	}
	return d, nil
}

// settledIn is amountIn held to the currency's minor unit (settled).
func settledIn(raw jsontext.Value, code string, cur money.Currency, field string) (decimal.Decimal, error) {
	d, err := amountIn(raw, code, cur, field)
	if err != nil {
		return decimal.Decimal{}, err
	}
	return settled(d, cur, field)
}

// ptr returns a pointer to an amount, for optional line fields.
func ptr(a money.Amount) *money.Amount { return &a }

// country normalizes an ISO 3166-1 alpha-2 code, or returns "" when the
// value is not one.
func country(code string) string {
	c := strings.ToUpper(strings.TrimSpace(code))
	if len(c) != 2 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z' {
		return ""
	}
	return c
}

// decodeJSON decodes a provider body, classing a failure as malformed
// JSON. It reads JSON as ingress does at the door (go-json-experiment's
// json: names match case-sensitively; a repeated name and invalid UTF-8
// are refused), so both read the same fields; unknown members are ignored.
func decodeJSON(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformedJSON, err)
	}
	return nil
}

// micros returns the version of a time: microseconds since the epoch, or
// 0 for nil.
func micros(t *time.Time) int64 {
	if t == nil {
		return 0
	}
	return t.UnixMicro()
}

// versionOf returns the version of a state: the provider's update time,
// or when the event happened when the provider states none.
func versionOf(updated *time.Time, occurred time.Time) int64 {
	if updated != nil {
		return updated.UnixMicro()
	}
	return occurred.UnixMicro()
}

// overdue reports whether an open invoice is past its due date on the day
// of at.
func overdue(st schemas.Status, dueDate string, at time.Time) bool {
	if dueDate == "" || (st != schemas.StatusOpen && st != schemas.StatusPartiallyPaid) {
		return false
	}
	return at.UTC().Format(time.DateOnly) > dueDate
}

// address builds an address, or nil when every part is empty.
func address(line1, line2, city, postal, region, countryCode string) *schemas.Address {
	a := schemas.Address{Line1: line1, Line2: line2, City: city, PostalCode: postal, Region: region, Country: country(countryCode)}
	if a == (schemas.Address{}) {
		return nil
	}
	return &a
}

// taxRates accumulates line nets and VAT per rate, in first-seen order.
type taxRates []taxRate

type taxRate struct{ rate, taxable, tax decimal.Decimal }

func (r taxRates) add(rate, net, vat decimal.Decimal) taxRates {
	for i := range r {
		if r[i].rate.Equal(rate) {
			r[i].taxable, r[i].tax = r[i].taxable.Add(net), r[i].tax.Add(vat)
			return r
		}
	}
	return append(r, taxRate{rate: rate, taxable: net, tax: vat})
}

// breakdown returns the tax breakdown, sorted by rate, only where it agrees
// with the invoice: the lines' VAT adds up to the invoice's tax, or there is
// a single rate (then taxable = net and tax = the invoice's tax, which
// accounts for a document-level discount). Otherwise it returns nil rather
// than numbers that do not add up.
func (r taxRates) breakdown(net, tax decimal.Decimal, cur money.Currency) []schemas.TaxSubtotal {
	if len(r) == 0 {
		return nil
	}
	if len(r) == 1 {
		return []schemas.TaxSubtotal{{Rate: money.Plain(r[0].rate), TaxableAmount: money.Total(net, cur), TaxAmount: money.Total(tax, cur)}}
	}
	sum := decimal.Zero
	for _, x := range r {
		sum = sum.Add(x.tax)
	}
	if !money.Total(sum, cur).Decimal().Equal(money.Total(tax, cur).Decimal()) {
		return nil
	}
	sorted := slices.SortedFunc(slices.Values(r), func(a, b taxRate) int { return a.rate.Cmp(b.rate) })
	out := make([]schemas.TaxSubtotal, len(sorted))
	for i, x := range sorted {
		out[i] = schemas.TaxSubtotal{Rate: money.Plain(x.rate), TaxableAmount: money.Total(x.taxable, cur), TaxAmount: money.Total(x.tax, cur)}
	}
	return out
}

// sumAmounts is the sum of a slice of amounts.
func sumAmounts(ds []decimal.Decimal) decimal.Decimal {
	sum := decimal.Zero
	for _, d := range ds {
		sum = sum.Add(d)
	}
	return sum
}

// errs collects the problems found in one payload.
type errs []error

func (e *errs) add(err error) {
	if err != nil {
		*e = append(*e, err)
	}
}

func (e errs) err() error { return errors.Join(e...) }

// decimalPtr returns a pointer to d.
func decimalPtr(d decimal.Decimal) *decimal.Decimal { return &d }

// midnight returns the start of a date's day in UTC, for providers that
// date events without a time ("2023-07-12").
func midnight(d string) *time.Time {
	if d == "" {
		return nil
	}
	t, err := time.Parse(time.DateOnly, d)
	if err != nil {
		return nil
	}
	return &t
}

// periodOf builds a period from two provider dates, or nil when both are empty.
func periodOf(start, end string) (*schemas.Period, error) {
	s, err1 := date(start, "start date")
	e, err2 := date(end, "end date")
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	if s == "" && e == "" {
		return nil, nil
	}
	return &schemas.Period{Start: s, End: e}, nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
