package subject

import (
	"strings"
	"testing"
)

func TestBuilders(t *testing.T) {
	tests := []struct {
		name, got, want string
	}{
		{"webhook", Webhook("qonto", "acme"), "webhooks.qonto.acme"},
		{"webhook escaped", Webhook("qonto", "acme.eu"), "webhooks.qonto.acme%2Eeu"},
		{"invoice", Invoice("paid", "mercoa", "ap-1"), "invoices.v1.paid.mercoa.ap-1"},
		{"dlq", DeadLetter("sink", "http_crm"), "dlq.sink.http_crm"},
		{"replay", Replay("sink", "http_crm"), "replay.sink.http_crm"},
		{"filter by kind", InvoiceFilter("paid", "", ""), "invoices.v1.paid.*.*"},
		{"filter by provider", InvoiceFilter("", "mercoa", ""), "invoices.v1.*.mercoa.*"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestToken(t *testing.T) {
	tests := map[string]string{
		"acme":      "acme",
		"Acme_1-x":  "Acme_1-x",
		"a.b":       "a%2Eb",
		"*":         "%2A",
		">":         "%3E",
		"a b":       "a%20b",
		"tab\there": "tab%09here",
		"100%":      "100%25",
		"":          "%",
		"\x00":      "%00",
		"é":         "%C3%A9",
	}
	for in, want := range tests {
		if got := Token(in); got != want {
			t.Errorf("Token(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzToken(f *testing.F) {
	for _, s := range []string{"acme", "a.b", "*", ">", " ", "%", "", "%2E"} {
		f.Add(s, "x")
		f.Add(s, "\x00")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ta, tb := Token(a), Token(b)
		if ta == "" || strings.ContainsAny(ta, ".*> \t\r\n") {
			t.Fatalf("Token(%q) = %q is not a single safe token", a, ta)
		}
		if a != b && ta == tb {
			t.Fatalf("Token is not injective: %q and %q both give %q", a, b, ta)
		}
		if len(ta) > MaxTokenBytes {
			t.Fatalf("Token(%q) is %d bytes, over %d", a, len(ta), MaxTokenBytes)
		}
	})
}

// TestLongTokensAreHashed: a value whose escape would pass MaxTokenBytes
// (a 4,200-byte invoice id) gives a bounded token, distinct from every
// escape and from its neighbours'.
func TestLongTokensAreHashed(t *testing.T) {
	long := strings.Repeat("r", 4200)
	tests := []struct {
		name, in string
		hashed   bool
	}{
		{"256 plain bytes", strings.Repeat("a", 256), false},
		{"257 plain bytes", strings.Repeat("a", 257), true},
		{"85 escaped bytes (255)", strings.Repeat(".", 85), false},
		{"86 escaped bytes (258)", strings.Repeat(".", 86), true},
		{"4200 bytes", long, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Token(tt.in)
			if strings.HasPrefix(got, "%%") != tt.hashed || len(got) > MaxTokenBytes {
				t.Fatalf("Token = %q (%d bytes), want hashed %v", got, len(got), tt.hashed)
			}
		})
	}
	if Token(long) == Token(long+"r") {
		t.Fatal("two long values share a token")
	}
	if subj := Ledger("sink", "http_crm", long); len(subj) > 512 {
		t.Fatalf("ledger subject of a 4200-byte invoice id is %d bytes", len(subj))
	}
}
