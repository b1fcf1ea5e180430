package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// TestFixturesRoundTripAndValidate decodes every canonical fixture into the
// Go types, encodes it again, and validates the result: the types lose
// nothing and produce schema-valid JSON.
func TestFixturesRoundTripAndValidate(t *testing.T) {
	files, err := filepath.Glob("testdata/events/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if err := Validate(raw); err != nil {
				t.Fatalf("fixture itself is invalid: %v", err)
			}
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			var data EventData
			if err := dec.Decode(&data); err != nil {
				t.Fatal(err)
			}
			out, err := Marshal(data)
			if err != nil {
				t.Fatal(err)
			}
			if !jsonEqual(t, raw, out) {
				t.Fatalf("round trip changed the event:\n got %s\nwant %s", out, raw)
			}
		})
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(x, y)
}

// TestSchemaRejects mutates a valid fixture into each kind of contract
// breach and expects the schema to refuse it.
func TestSchemaRejects(t *testing.T) {
	base, err := os.ReadFile("testdata/events/qonto-paid.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(doc map[string]any)
	}{
		{"money as JSON number", func(d map[string]any) { totals(d)["total"] = 108.0 }},
		{"money with comma", func(d map[string]any) { totals(d)["total"] = "108,00" }},
		{"money with exponent", func(d map[string]any) { totals(d)["total"] = "1.08e2" }},
		{"money with 21 integer digits", func(d map[string]any) { totals(d)["total"] = "100000000000000000000.00" }},
		{"unit price with 13 decimals", func(d map[string]any) {
			invoice(d)["lines"].([]any)[0].(map[string]any)["unit_price"] = "1.0000000000001"
		}},
		{"payment amount as number", func(d map[string]any) {
			d["payment"] = map[string]any{"amount": 5, "currency": "EUR"}
		}},
		{"line unit price as number", func(d map[string]any) {
			invoice(d)["lines"].([]any)[0].(map[string]any)["unit_price"] = 50
		}},
		{"unknown status", func(d map[string]any) { invoice(d)["status"] = "overdue" }},
		{"unknown kind", func(d map[string]any) { d["event"].(map[string]any)["kind"] = "refunded" }},
		{"lower-case currency", func(d map[string]any) { invoice(d)["currency"] = "eur" }},
		{"missing totals", func(d map[string]any) { delete(invoice(d), "totals") }},
		{"missing due", func(d map[string]any) { delete(totals(d), "due") }},
		{"extra field", func(d map[string]any) { invoice(d)["amount"] = "1.00" }},
		{"wrong schema version", func(d map[string]any) { d["schema_version"] = "2" }},
		{"bad date", func(d map[string]any) { invoice(d)["issue_date"] = "01/03/2022" }},
		{"bad date-time", func(d map[string]any) { invoice(d)["paid_at"] = "yesterday" }},
		{"raw ref sequence zero", func(d map[string]any) { invoice(d)["raw_ref"].(map[string]any)["sequence"] = 0 }},
		{"February 30th", func(d map[string]any) { invoice(d)["due_date"] = "2026-02-30" }},
		{"month 13", func(d map[string]any) { invoice(d)["issue_date"] = "2026-13-01" }},
		{"NUL in the memo", func(d map[string]any) { invoice(d)["memo"] = "a\x00b" }},
		{"NUL in a line name", func(d map[string]any) { invoice(d)["lines"].([]any)[0].(map[string]any)["name"] = "\x00" }},
		{"escape in the seller's name", func(d map[string]any) { invoice(d)["seller"] = map[string]any{"name": "a\x1bb"} }},
		{"line feed in the id", func(d map[string]any) { invoice(d)["id"] = "qonto:acme:a\nb" }},
		{"carriage return in the number", func(d map[string]any) { invoice(d)["number"] = "F-1\r" }},
		{"tab in the provider event id", func(d map[string]any) { d["event"].(map[string]any)["provider_event_id"] = "a\tb" }},
		{"id of 256 characters", func(d map[string]any) { invoice(d)["id"] = strings.Repeat("x", 256) }},
		{"memo of 65537 characters", func(d map[string]any) { invoice(d)["memo"] = strings.Repeat("<", 65537) }},
		{"empty remote id", func(d map[string]any) { invoice(d)["remote_id"] = "" }},
		{"id ending with a space", func(d map[string]any) { invoice(d)["id"] = "qonto:acme:inv-1 " }},
		{"C1 control (NEL) in the memo", func(d map[string]any) { invoice(d)["memo"] = "a\u0085b" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := mutated(t, base, tt.mutate)
			if err := Validate(raw); err == nil {
				t.Fatalf("schema accepted %s", raw)
			}
		})
	}
}

// TestSchemaAccepts: what the text rules allow, at their bounds.
func TestSchemaAccepts(t *testing.T) {
	base, err := os.ReadFile("testdata/events/qonto-paid.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(doc map[string]any)
	}{
		{"February 29th of a leap year", func(d map[string]any) { invoice(d)["due_date"] = "2028-02-29" }},
		{"tab, line feed and carriage return in the memo", func(d map[string]any) { invoice(d)["memo"] = "a\tb\r\nc" }},
		{"memo of 65536 characters", func(d map[string]any) { invoice(d)["memo"] = strings.Repeat("<", 65536) }},
		{"id of 255 bytes", func(d map[string]any) { invoice(d)["id"] = strings.Repeat("x", 255) }},
		{"non-ASCII id", func(d map[string]any) { invoice(d)["id"] = "qonto:acme:facture-été n°1" }},
		{"empty number", func(d map[string]any) { invoice(d)["number"] = "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := mutated(t, base, tt.mutate)
			if err := Validate(raw); err != nil {
				t.Fatalf("schema refused it: %v", err)
			}
			var d EventData
			if err := json.Unmarshal(raw, &d); err != nil {
				t.Fatal(err)
			}
			if err := d.Check(); err != nil {
				t.Fatalf("Check refused it: %v", err)
			}
		})
	}
}

// TestCheckBoundsIdentifiersInBytes: the schema counts characters, Check
// bytes.
func TestCheckBoundsIdentifiersInBytes(t *testing.T) {
	tests := map[string]struct {
		id   string
		want bool
	}{
		"255 bytes":                 {strings.Repeat("x", 255), true},
		"256 bytes":                 {strings.Repeat("x", 256), false},
		"128 two-byte characters":   {strings.Repeat("é", 128), false},
		"127 two-byte characters":   {strings.Repeat("é", 127), true},
		"4200 bytes":                {strings.Repeat("r", 4200), false},
		"invalid UTF-8":             {"a\xffb", false},
		"DEL":                       {"a\x7fb", false},
		"C1 control (NEL)":          {"a\u0085b", false},
		"empty":                     {"", false},
		"spaces and punctuation ok": {"a b.c*d>e", true},
		"leading space":             {" a", false},
		"trailing space":            {"a ", false},
		"trailing NBSP":             {"a\u00a0", false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			err := CheckIdentifier("invoice.id", tt.id)
			if (err == nil) != tt.want {
				t.Fatalf("CheckIdentifier = %v, want ok %v", err, tt.want)
			}
			if err != nil && !errors.Is(err, ErrIdentifier) {
				t.Fatalf("error %v is not ErrIdentifier", err)
			}
		})
	}
}

// mutated is the event base with mutate applied, encoded.
func mutated(t *testing.T, base []byte, mutate func(doc map[string]any)) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(base, &doc); err != nil {
		t.Fatal(err)
	}
	mutate(doc)
	raw, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func invoice(d map[string]any) map[string]any { return d["invoice"].(map[string]any) }
func totals(d map[string]any) map[string]any  { return invoice(d)["totals"].(map[string]any) }

// TestGoTypesMatchSchema walks the Go types and the schema side by side: each
// struct has exactly the properties of its schema object, and required
// properties are never omitempty.
func TestGoTypesMatchSchema(t *testing.T) {
	var schema map[string]any
	if err := json.Unmarshal(SchemaJSON, &schema); err != nil {
		t.Fatal(err)
	}
	defs := schema["$defs"].(map[string]any)
	pairs := map[reflect.Type]map[string]any{
		reflect.TypeFor[EventData]():   schema,
		reflect.TypeFor[EventInfo]():   defs["event"].(map[string]any),
		reflect.TypeFor[Invoice]():     defs["invoice"].(map[string]any),
		reflect.TypeFor[Party]():       defs["party"].(map[string]any),
		reflect.TypeFor[Address]():     defs["address"].(map[string]any),
		reflect.TypeFor[Totals]():      defs["totals"].(map[string]any),
		reflect.TypeFor[TaxSubtotal](): defs["tax_subtotal"].(map[string]any),
		reflect.TypeFor[Line]():        defs["line"].(map[string]any),
		reflect.TypeFor[Period]():      defs["period"].(map[string]any),
		reflect.TypeFor[Note]():        defs["memo_field"].(map[string]any),
		reflect.TypeFor[Payment]():     defs["payment"].(map[string]any),
		reflect.TypeFor[RawRef]():      defs["raw_ref"].(map[string]any),
	}
	for typ, obj := range pairs {
		props := obj["properties"].(map[string]any)
		var required []string
		if r, ok := obj["required"].([]any); ok {
			for _, name := range r {
				required = append(required, name.(string))
			}
		}
		var goNames []string
		for field := range typ.Fields() {
			name, opts, _ := strings.Cut(field.Tag.Get("json"), ",")
			goNames = append(goNames, name)
			if _, ok := props[name]; !ok {
				t.Errorf("%s.%s: json %q is not in the schema", typ.Name(), field.Name, name)
			}
			if slices.Contains(required, name) && strings.Contains(opts, "omitempty") {
				t.Errorf("%s.%s: required by the schema but omitempty", typ.Name(), field.Name)
			}
		}
		for name := range props {
			if !slices.Contains(goNames, name) {
				t.Errorf("%s: schema property %q has no Go field", typ.Name(), name)
			}
		}
	}
}

func TestKindEventType(t *testing.T) {
	if got := KindPaymentReceived.EventType(); got != "com.invoicehub.invoice.payment_received.v1" {
		t.Fatalf("got %q", got)
	}
	if len(Kinds) != 7 {
		t.Fatalf("Kinds has %d entries", len(Kinds))
	}
}

func TestMarshalRefusesInvalid(t *testing.T) {
	d := EventData{SchemaVersion: SchemaVersion, Event: EventInfo{Kind: "bogus", OccurredAt: time.Unix(0, 0).UTC()}}
	if _, err := Marshal(d); err == nil {
		t.Fatal("Marshal accepted an invalid event")
	}
}

// TestCheckRefusesAmountsOffScale: the schema's money pattern accepts any
// number of decimals; the producer's Check holds settled amounts to the
// currency's minor unit.
func TestCheckRefusesAmountsOffScale(t *testing.T) {
	base, err := os.ReadFile("testdata/events/qonto-paid.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(doc map[string]any)
	}{
		{"total 1.234 EUR", func(d map[string]any) { totals(d)["total"] = "1.234" }},
		{"due 12.5 EUR", func(d map[string]any) { totals(d)["due"] = "12.5" }},
		{"line net 100 EUR", func(d map[string]any) { invoice(d)["lines"].([]any)[0].(map[string]any)["net_amount"] = "100" }},
		{"payment 5.000 EUR", func(d map[string]any) { d["payment"] = map[string]any{"amount": "5.000", "currency": "EUR"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := mutated(t, base, tt.mutate)
			if err := Validate(raw); err != nil {
				t.Fatalf("the schema itself refuses it (%v): the test would not show Check", err)
			}
			var d EventData
			if err := json.Unmarshal(raw, &d); err != nil {
				t.Fatal(err)
			}
			if _, err := Marshal(d); !errors.Is(err, ErrScale) {
				t.Fatalf("Marshal = %v, want ErrScale", err)
			}
		})
	}
	var d EventData
	json.Unmarshal(base, &d)
	if err := d.Check(); err != nil {
		t.Fatalf("the fixture itself: %v", err)
	}
}

// decodeCases are JSON texts the validator's reader is held to
// jsonschema.UnmarshalJSON on, beside the golden events.
var decodeCases = []string{
	`{}`, `[]`, `null`, `true`, `"x"`, `0`, `-0`, `1.50`, `1e5`, `-12.5E-3`, `123456789012345678901234567890`,
	`{"a":{"b":[1,"2",null,true,false,{"c":[]}]},"d":""}`, `{"a":1,"a":2}`, `"\u00e9\ud83d\ude00\n\"\\"`,
	` {"x" : [ 1 , 2 ] } `, `{} {}`, `{"a":}`, `[1,]`, `01`, ``, `"\ud800"`, "\"\xff\"",
}

// TestDecodeJSONIsUnmarshalJSON: the validator's reader gives what
// jsonschema.UnmarshalJSON gives, and refuses what it refuses.
func TestDecodeJSONIsUnmarshalJSON(t *testing.T) {
	files, _ := filepath.Glob("testdata/events/*.json")
	cases := slices.Clone(decodeCases)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, string(b))
	}
	for _, c := range cases {
		sameAsUnmarshalJSON(t, []byte(c))
	}
}

func sameAsUnmarshalJSON(t *testing.T, data []byte) {
	t.Helper()
	got, err := decodeJSON(data)
	want, wantErr := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	switch {
	case wantErr != nil && err == nil:
		t.Errorf("%.60q: read %v, UnmarshalJSON refuses it: %v", data, got, wantErr)
	case err != nil && wantErr == nil:
		t.Errorf("%.60q: refused (%v), UnmarshalJSON reads %v", data, err, want)
	case err == nil && !reflect.DeepEqual(got, want):
		t.Errorf("%.60q: read %#v, UnmarshalJSON %#v", data, got, want)
	}
}

func FuzzDecodeJSON(f *testing.F) {
	for _, c := range decodeCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, data []byte) { sameAsUnmarshalJSON(t, data) })
}

// BenchmarkDecodeJSON reads a canonical event as the validator takes it,
// with decodeJSON and with jsonschema.UnmarshalJSON.
func BenchmarkDecodeJSON(b *testing.B) {
	data, err := os.ReadFile("testdata/events/qonto-paid.json")
	if err != nil {
		b.Fatal(err)
	}
	for name, decode := range map[string]func([]byte) (any, error){
		"decodeJSON":    decodeJSON,
		"UnmarshalJSON": func(d []byte) (any, error) { return jsonschema.UnmarshalJSON(bytes.NewReader(d)) },
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decode(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestEncodeJSONKeepsHTMLCharacters: a memo of '<' grows by its quotes
// only, not sixfold.
func TestEncodeJSONKeepsHTMLCharacters(t *testing.T) {
	got, err := EncodeJSON(map[string]string{"memo": "<a & b>"})
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != `{"memo":"<a & b>"}` {
		t.Fatalf("got %s", got)
	}
}
