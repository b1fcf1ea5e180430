package normalizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/invoicehub/invoicehub/internal/consume"
	"github.com/invoicehub/invoicehub/internal/jstest"
	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

// hostileCases are documented fixtures with one field made hostile or
// merely unusual, and the dead-letter class each must get: never a broken
// connection, never a value changed on the way.
var hostileCases = []struct {
	name, fixture string
	mutate        func(data map[string]any)
	class         string
}{
	// The standardwebhooks intake holds its data to the schema itself: "not
	// a canonical invoice", with the schema's reason.
	{"remote_id of 4,200 bytes", swCreated, func(d map[string]any) { d["remote_id"] = strings.Repeat("r", 4200) }, "unmappable"},
	{"CR LF in the remote_id", swCreated, func(d map[string]any) { d["remote_id"] = "F-1\r\nX-Injected: 1" }, "unmappable"},
	{"NUL in the memo", swCreated, func(d map[string]any) { d["memo"] = "a\x00b" }, "unmappable"},
	{"NUL in the buyer's name", swCreated, func(d map[string]any) { d["buyer"].(map[string]any)["name"] = "\x00" }, "unmappable"},
	{"due_date February 30th", swCreated, func(d map[string]any) { d["due_date"] = "2026-02-30" }, "unmappable"},
	{"memo of 201 KB of '<'", swCreated, func(d map[string]any) { d["memo"] = strings.Repeat("<", 201_000) }, "unmappable"},
	{"number of 300 bytes", swCreated, func(d map[string]any) { d["number"] = strings.Repeat("9", 300) }, "unmappable"},
	// A provider's own fields: the id is checked before it keys anything,
	// the text by the schema when the events are built.
	{"Qonto id of 4,200 bytes", qontoMinimal, func(d map[string]any) { d["id"] = strings.Repeat("q", 4200) }, "invalid_identifier"},
	{"Qonto id with a line feed", qontoMinimal, func(d map[string]any) { d["id"] = "inv\n1" }, "invalid_identifier"},
	{"Qonto id ending with a space", qontoMinimal, func(d map[string]any) { d["id"] = "inv-1 " }, "invalid_identifier"},
	{"Qonto NUL in an item title", qontoMultiRate, func(d map[string]any) { d["items"].([]any)[0].(map[string]any)["title"] = "a\x00" }, "schema_violation"},
	{"Qonto number with a tab", qontoMinimal, func(d map[string]any) { d["number"] = "F\t1" }, "schema_violation"},
	{"Qonto due_date February 30th", qontoMinimal, func(d map[string]any) { d["due_date"] = "2026-02-30" }, "unmappable"},
	{"Qonto total_amount 1440.001 EUR", qontoMinimal, func(d map[string]any) {
		d["total_amount"] = map[string]any{"value": "1440.001", "currency": "EUR"}
	}, "amount_too_precise"},
	{"Qonto item total_vat 0.005 EUR", qontoMultiRate, func(d map[string]any) {
		d["items"].([]any)[0].(map[string]any)["total_vat"] = map[string]any{"value": "0.005", "currency": "EUR"}
	}, "amount_too_precise"},
}

const (
	swCreated      = "testdata/raw/standardwebhooks/invoice-created.json"
	qontoMinimal   = "testdata/raw/qonto/created-minimal.json"
	qontoMultiRate = "testdata/raw/qonto/created-multi-rate.json"
)

// TestHostileInputsAreDeadLetteredAndTheStreamFlows: each hostile raw
// event is dead-lettered with its class, and an ordinary invoice stored
// after all of them still becomes canonical events (on today's main the
// 4,200-byte remote_id closed the normalizer's connection for good).
func TestHostileInputsAreDeadLetteredAndTheStreamFlows(t *testing.T) {
	js := newJetStream(t)
	want := map[string]string{}
	for i, tc := range hostileCases {
		p, body, headers := fixture(t, tc.fixture)
		body, headers = hostile(t, p, body, headers, i, tc.mutate)
		publishRaw(t, js, p, body, headers)
		want[fmt.Sprint(i+1)] = tc.class
	}
	publishFixture(t, js, "testdata/raw/qonto/created-draft.json") // the control
	runNormalizer(t, js, 4)
	jstest.Eventually(t, 10*time.Second, "every hostile event dead-lettered, the control published", func() bool {
		return jstest.Count(t, js, subject.DLQStream) == uint64(len(hostileCases)) && jstest.Count(t, js, subject.InvoicesStream) == 2
	})
	for _, m := range jstest.Messages(t, js, subject.DLQStream) {
		seq := m.Header.Get(consume.HeaderStreamSeq)
		if got := m.Header.Get(consume.HeaderErrorClass); got != want[seq] {
			t.Errorf("raw seq %s (%s): class %q, reason %q; want %q", seq, caseName(seq), got, m.Header.Get(consume.HeaderReason), want[seq])
		}
		if len(m.Header.Get(consume.HeaderReason)) > 2048 {
			t.Errorf("raw seq %s: a reason of %d bytes", seq, len(m.Header.Get(consume.HeaderReason)))
		}
	}
}

func caseName(seq string) string {
	var i int
	fmt.Sscan(seq, &i)
	if i < 1 || i > len(hostileCases) {
		return "?"
	}
	return hostileCases[i-1].name
}

// hostile applies mutate to a fixture's invoice (the envelope's data) and
// gives the raw event an id of its own.
func hostile(t *testing.T, providerName string, body []byte, headers map[string]string, i int, mutate func(map[string]any)) ([]byte, map[string]string) {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	mutate(doc["data"].(map[string]any))
	id := fmt.Sprintf("hostile-%d", i)
	h := map[string]string{}
	for k, v := range headers {
		h[k] = v
	}
	switch providerName {
	case "qonto":
		doc["id"] = id
	default:
		h["Webhook-Id"] = id
	}
	out, err := schemas.EncodeJSON(doc) // the '<' as a provider sends it, one byte each
	if err != nil {
		t.Fatal(err)
	}
	return out, h
}
