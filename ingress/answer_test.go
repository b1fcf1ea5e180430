package ingress

import (
	"encoding/json"
	"testing"
)

// FuzzStoredAnswerIsItsJSON: the answer to a webhook stored decodes to
// what it says, whatever its id (the content-derived id of a bare Qonto
// invoice, a provider's UUID, any UTF-8 or not), as json.Marshal's would.
func FuzzStoredAnswerIsItsJSON(f *testing.F) {
	for _, id := range []string{"123e4567-e89b-12d3-a456-426614174000", "sha256:ab<&>\"\\\u2028", "\xff", ""} {
		f.Add("accepted", id)
		f.Add("duplicate", id)
	}
	f.Fuzz(func(t *testing.T, status, id string) {
		in := stored{Status: status, ID: id}
		want, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		var got, marshalled map[string]any
		b := in.appendJSON(nil)
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q is not JSON: %v", b, err)
		}
		if err := json.Unmarshal(want, &marshalled); err != nil {
			t.Fatal(err)
		}
		if got["status"] != marshalled["status"] || got["id"] != marshalled["id"] || len(got) != 2 {
			t.Fatalf("%q decodes to %v, json.Marshal's %q to %v", b, got, want, marshalled)
		}
	})
}
