// Package money holds exact decimal amounts for invoices.
//
// Amounts are parsed from the literal text a provider sent (a JSON number or
// a decimal string), never through float64, and rendered as decimal strings.
// Totals are rendered at their currency's ISO 4217 minor unit with one
// rounding mode, half-even (banker's rounding): a half is rounded to the
// nearest even digit, so rounding does not drift sums in one direction.
package money

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"regexp"

	"github.com/shopspring/decimal"
)

var (
	// ErrUnknownCurrency is returned for a code that is not an active ISO 4217 currency.
	ErrUnknownCurrency = errors.New("money: unknown currency")
	// ErrSyntax is returned for text that is not a decimal number.
	ErrSyntax = errors.New("money: not a decimal number")
	// ErrOutOfRange is returned for a number too large or too precise to be an amount.
	ErrOutOfRange = errors.New("money: amount out of range")
	// ErrTooPrecise is returned by ParseAtScale for an amount with more
	// decimals than its currency allows.
	ErrTooPrecise = errors.New("money: more decimals than the currency allows")
)

// Bounds that keep a hostile literal such as 1e999999999 from allocating
// without limit. Invoices need far less.
const (
	maxIntegerDigits  = 20
	maxFractionDigits = 12
)

// numberSyntax is the JSON number grammar (RFC 8259 §6); decimal strings from
// providers use the same grammar.
var numberSyntax = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// Parse reads an amount from its literal text: "1234.56", "-0.10", "1e3".
// The result is normalized: "1.50" and "15e-1" both give 1.5.
// It returns ErrSyntax for anything that is not a JSON-style number and
// ErrOutOfRange for more than 20 integer digits or 12 decimals.
func Parse(literal string) (decimal.Decimal, error) {
	if len(literal) > 64 || !numberSyntax.MatchString(literal) {
		return decimal.Decimal{}, fmt.Errorf("%w: %q", ErrSyntax, truncate(literal))
	}
	d, err := decimal.NewFromString(literal)
	if err != nil {
		// The grammar matched, so only the exponent can be out of bounds.
		return decimal.Decimal{}, fmt.Errorf("%w: %q: %w", ErrOutOfRange, literal, err)
	}
	n, err := normalize(d)
	if err != nil {
		return decimal.Decimal{}, fmt.Errorf("%q: %w", literal, err)
	}
	return n, nil
}

// ParseJSON reads an amount from a raw JSON value that is either a number
// (Mercoa, Moxie) or a string holding a number (Rillet, Qonto). The number's
// literal text is used as is, so 0.1 stays exactly one tenth.
func ParseJSON(raw []byte) (decimal.Decimal, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return decimal.Decimal{}, fmt.Errorf("%w: %w", ErrSyntax, err)
		}
		return Parse(s)
	}
	return Parse(string(raw))
}

// ParseAtScale parses literal like Parse and also returns ErrTooPrecise when
// it carries more non-zero decimals than the currency's minor unit
// ("12.345" in EUR); "12.50" and "12.5" are both fine.
func ParseAtScale(literal string, cur Currency) (decimal.Decimal, error) {
	d, err := Parse(literal)
	if err != nil {
		return decimal.Decimal{}, err
	}
	if !d.Equal(d.Truncate(cur.MinorUnits)) {
		return decimal.Decimal{}, fmt.Errorf("%w: %q in %s (%d decimals)", ErrTooPrecise, literal, cur.Code, cur.MinorUnits)
	}
	return d, nil
}

// normalize strips trailing zeros (1.50000 has one decimal, 0e-100 is 0) and
// bounds the amount by its digits alone: it never rescales d, so a literal
// like 1e9999 is refused without allocating its expansion.
func normalize(d decimal.Decimal) (decimal.Decimal, error) {
	coef := d.Coefficient()
	if coef.Sign() == 0 {
		return decimal.Zero, nil
	}
	exp := int64(d.Exponent())
	ten, rem := big.NewInt(10), new(big.Int)
	for {
		q, r := new(big.Int).QuoRem(coef, ten, rem)
		if r.Sign() != 0 {
			break
		}
		coef, exp = q, exp+1
	}
	if exp < -maxFractionDigits {
		return decimal.Decimal{}, fmt.Errorf("%w: more than %d decimals", ErrOutOfRange, maxFractionDigits)
	}
	if int64(len(new(big.Int).Abs(coef).String()))+exp > maxIntegerDigits {
		return decimal.Decimal{}, fmt.Errorf("%w: more than %d integer digits", ErrOutOfRange, maxIntegerDigits)
	}
	return decimal.NewFromBigInt(coef, int32(exp)), nil
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}
