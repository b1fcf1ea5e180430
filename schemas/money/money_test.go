package money

import (
	"encoding/json"
	"errors"
	"testing"
)

func mustCurrency(t *testing.T, code string) Currency {
	t.Helper()
	c, err := LookupCurrency(code)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestParseAndRenderTotals(t *testing.T) {
	tests := []struct {
		name     string
		literal  string
		currency string
		want     string
	}{
		{"plain", "1234567.89", "USD", "1234567.89"},
		{"pads to scale", "15175", "USD", "15175.00"},
		{"one decimal", "78.5", "EUR", "78.50"},
		{"negative credit", "-120.5", "EUR", "-120.50"},
		{"exponent", "1e3", "EUR", "1000.00"},
		{"negative exponent", "15e-1", "EUR", "1.50"},
		{"jpy has no decimals", "15000", "JPY", "15000"},
		{"jpy rounds half even down", "1500.5", "JPY", "1500"},
		{"jpy rounds half even up", "1501.5", "JPY", "1502"},
		{"kwd three decimals", "12.345", "KWD", "12.345"},
		{"kwd pads", "7.1", "KWD", "7.100"},
		{"clf four decimals", "0.1234", "CLF", "0.1234"},
		{"too many decimals rounds half even", "12.345", "EUR", "12.34"},
		{"too many decimals rounds half even up", "12.355", "EUR", "12.36"},
		{"above half rounds up", "12.3451", "EUR", "12.35"},
		{"negative rounds symmetric", "-12.345", "EUR", "-12.34"},
		{"zero", "0", "EUR", "0.00"},
		{"large", "99999999999999999999.99", "USD", "99999999999999999999.99"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Parse(tt.literal)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.literal, err)
			}
			if got := Total(d, mustCurrency(t, tt.currency)).String(); got != tt.want {
				t.Errorf("Total(%q, %s) = %q, want %q", tt.literal, tt.currency, got, tt.want)
			}
		})
	}
}

func TestDecimalArithmeticIsExact(t *testing.T) {
	a, _ := ParseJSON(json.RawMessage(`0.1`))
	b, _ := ParseJSON(json.RawMessage(`"0.2"`))
	want, _ := Parse("0.3")
	if sum := a.Add(b); !sum.Equal(want) {
		t.Fatalf("0.1 + 0.2 = %s, want exactly 0.3", sum)
	}
	// The float64 answer would be 0.30000000000000004.
	if got := Exact(a.Add(b), mustCurrency(t, "USD")).String(); got != "0.30" {
		t.Fatalf("rendered %q, want 0.30", got)
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name    string
		literal string
		want    error
	}{
		{"empty", "", ErrSyntax},
		{"letters", "12a", ErrSyntax},
		{"leading plus", "+1", ErrSyntax},
		{"leading zero", "012", ErrSyntax},
		{"trailing dot", "1.", ErrSyntax},
		{"comma decimal", "1,50", ErrSyntax},
		{"spaces", " 1", ErrSyntax},
		{"nan", "NaN", ErrSyntax},
		{"infinity", "Infinity", ErrSyntax},
		{"hex", "0x10", ErrSyntax},
		{"huge exponent", "1e999999999", ErrOutOfRange},
		{"tiny exponent", "1e-999999999", ErrOutOfRange},
		{"exponent overflow", "1e99999999999", ErrOutOfRange},
		{"too many integer digits", "123456789012345678901", ErrOutOfRange},
		{"too many decimals", "0.1234567890123", ErrOutOfRange},
		{"too long", "1.000000000000000000000000000000000000000000000000000000000000000000", ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d, err := Parse(tt.literal); !errors.Is(err, tt.want) {
				t.Fatalf("Parse(%q) = %v, %v; want %v", tt.literal, d, err, tt.want)
			}
		})
	}
}

func TestParseAcceptsTrailingZeros(t *testing.T) {
	d, err := Parse("1.50000000000000000")
	if err != nil {
		t.Fatal(err)
	}
	if got := d.String(); got != "1.5" {
		t.Fatalf("got %s", got)
	}
}

func TestParseAtScale(t *testing.T) {
	eur, jpy := mustCurrency(t, "EUR"), mustCurrency(t, "JPY")
	if _, err := ParseAtScale("12.34", eur); err != nil {
		t.Errorf("12.34 EUR: %v", err)
	}
	if _, err := ParseAtScale("12.340", eur); err != nil {
		t.Errorf("12.340 EUR: %v", err)
	}
	if _, err := ParseAtScale("12.345", eur); !errors.Is(err, ErrTooPrecise) {
		t.Errorf("12.345 EUR: got %v, want ErrTooPrecise", err)
	}
	if _, err := ParseAtScale("100.5", jpy); !errors.Is(err, ErrTooPrecise) {
		t.Errorf("100.5 JPY: got %v, want ErrTooPrecise", err)
	}
}

func TestExactKeepsPrecision(t *testing.T) {
	eur := mustCurrency(t, "EUR")
	for literal, want := range map[string]string{"0.125": "0.125", "3": "3.00", "2.5": "2.50", "-0.0001": "-0.0001"} {
		d, err := Parse(literal)
		if err != nil {
			t.Fatal(err)
		}
		if got := Exact(d, eur).String(); got != want {
			t.Errorf("Exact(%s) = %s, want %s", literal, got, want)
		}
	}
}

func TestAmountJSON(t *testing.T) {
	var a Amount
	if err := json.Unmarshal([]byte(`"15175.00"`), &a); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(a)
	if string(out) != `"15175.00"` {
		t.Fatalf("round trip = %s", out)
	}
	if err := json.Unmarshal([]byte(`15175.00`), &a); !errors.Is(err, ErrSyntax) {
		t.Fatalf("JSON number accepted: %v", err)
	}
	var zero Amount
	if out, _ := json.Marshal(zero); string(out) != `"0"` {
		t.Fatalf("zero amount = %s", out)
	}
}

func TestLookupCurrency(t *testing.T) {
	tests := []struct {
		code  string
		units int32
		err   bool
	}{
		{"EUR", 2, false}, {"usd", 2, false}, {"JPY", 0, false}, {"KWD", 3, false},
		{"BHD", 3, false}, {"CLF", 4, false}, {"XXX", 0, true}, {"", 0, true}, {"EURO", 0, true},
	}
	for _, tt := range tests {
		c, err := LookupCurrency(tt.code)
		if (err != nil) != tt.err {
			t.Errorf("LookupCurrency(%q) error = %v", tt.code, err)
			continue
		}
		if err != nil && !errors.Is(err, ErrUnknownCurrency) {
			t.Errorf("LookupCurrency(%q) error %v is not ErrUnknownCurrency", tt.code, err)
		}
		if c.MinorUnits != tt.units {
			t.Errorf("LookupCurrency(%q) = %d units, want %d", tt.code, c.MinorUnits, tt.units)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"0", "1234.56", "-0.10", "1e3", "1e999999999", "0.1", "12.345", "x"} {
		f.Add(s)
	}
	eur := Currency{Code: "EUR", MinorUnits: 2}
	f.Fuzz(func(t *testing.T, literal string) {
		d, err := Parse(literal)
		if err != nil {
			return
		}
		// Whatever parses renders and parses back to the same value.
		again, err := Parse(Exact(d, eur).String())
		if err != nil || !again.Equal(d) {
			t.Fatalf("round trip of %q: %v %v", literal, again, err)
		}
	})
}

func TestParseNormalizes(t *testing.T) {
	for literal, want := range map[string]string{"0e-100": "0", "1.50": "1.5", "15e-1": "1.5", "-0.0": "0", "1e3": "1000"} {
		d, err := Parse(literal)
		if err != nil {
			t.Fatalf("Parse(%q): %v", literal, err)
		}
		if got := d.String(); got != want {
			t.Errorf("Parse(%q) = %s, want %s", literal, got, want)
		}
	}
}
