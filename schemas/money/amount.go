package money

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/shopspring/decimal"
)

// Amount is an exact decimal amount with the number of decimals it is
// rendered with. It marshals to a JSON string ("15175.00") and refuses a
// JSON number when unmarshalled, so money never passes through float64.
// The zero Amount is "0".
type Amount struct {
	value  decimal.Decimal
	places int32
}

// Total returns d rounded half-even to the currency's minor unit, for totals
// and other amounts that are settled in the currency ("12.345" EUR → "12.34",
// "12.355" EUR → "12.36", "1500.4" JPY → "1500").
func Total(d decimal.Decimal, cur Currency) Amount {
	return Amount{value: d.RoundBank(cur.MinorUnits), places: cur.MinorUnits}
}

// Exact returns d unrounded, rendered with at least the currency's minor
// unit, for unit prices and rates that may carry more decimals ("0.125" EUR
// stays "0.125", "3" EUR becomes "3.00").
func Exact(d decimal.Decimal, cur Currency) Amount {
	places := cur.MinorUnits
	if -d.Exponent() > places {
		places = -d.Exponent()
	}
	return Amount{value: d, places: places}
}

// Plain returns d as it is, for quantities and rates that have no currency
// ("2", "0.2", "1.5").
func Plain(d decimal.Decimal) Amount {
	return Amount{value: d, places: max(0, -d.Exponent())}
}

// Decimal returns the amount's value.
func (a Amount) Decimal() decimal.Decimal { return a.value }

// Places returns how many decimals the amount is rendered with.
func (a Amount) Places() int32 { return a.places }

// IsZero reports whether the amount is zero.
func (a Amount) IsZero() bool { return a.value.IsZero() }

// String renders the amount with its decimals, e.g. "-12.50".
func (a Amount) String() string { return a.value.StringFixed(a.places) }

// MarshalText renders the amount as String does; encoding/json writes it
// as a JSON string (and, unlike a MarshalJSON, does not re-scan it).
func (a Amount) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalJSON reads a JSON string holding a decimal number and keeps the
// decimals it was written with ("12.50" stays "12.50"). A JSON number is
// refused with ErrSyntax.
func (a *Amount) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%w: amount must be a JSON string, got %s", ErrSyntax, truncate(string(b)))
	}
	d, err := Parse(s)
	if err != nil {
		return err
	}
	*a = Amount{value: d, places: writtenPlaces(s)}
	return nil
}

// writtenPlaces counts the decimals a plain literal was written with; an
// exponent literal counts as normalized.
func writtenPlaces(literal string) int32 {
	if strings.ContainsAny(literal, "eE") {
		return 0
	}
	if i := strings.IndexByte(literal, '.'); i >= 0 {
		return int32(min(len(literal)-i-1, maxFractionDigits))
	}
	return 0
}
