package normalizer

import (
	"bytes"
	"log/slog"
	"reflect"
	"testing"

	"github.com/invoicehub/invoicehub/internal/consume"
	"github.com/invoicehub/invoicehub/schemas"
)

// TestStateEncodesAsEncodeJSON: a state whose invoice announced encoded
// is written with those bytes, as schemas.EncodeJSON writes it, through a story
// of changes (with and without announcement, applied ids, deletion,
// the legacy raw id).
func TestStateEncodesAsEncodeJSON(t *testing.T) {
	var states []*State
	for _, story := range [][]string{
		{"testdata/raw/qonto/created-draft.json", "testdata/raw/qonto/updated-paid.json"},
		{"testdata/raw/rillet/invoice-unbilled-minimal.json", "testdata/raw/rillet/invoice-deleted.json"},
	} {
		states = append(states, storyStates(t, story)...)
	}
	if len(states) != 12 {
		t.Fatalf("%d states", len(states))
	}
	deleted := false
	for i, s := range states {
		deleted = deleted || s.Deleted
		if s.invoiceJSON == nil {
			t.Fatalf("state %d: the invoice's JSON was not kept", i)
		}
		got, err := s.encode()
		if err != nil {
			t.Fatal(err)
		}
		want, err := schemas.EncodeJSON(s)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("state %d:\n got %s\nwant %s", i, got, want)
		}
	}
	if !deleted {
		t.Error("no deleted state written")
	}
}

// storyStates normalizes the fixtures of one invoice in order and returns
// each state written, then cleared, then with a legacy raw id.
func storyStates(t *testing.T, paths []string) []*State {
	t.Helper()
	var st *State
	var states []*State
	for i, path := range paths {
		out, next := step(t, st, path, uint64(i+1))
		if out.State == nil {
			t.Fatalf("%s stored nothing", path)
		}
		cleared := *next
		cleared.Pending = nil
		legacy := *next
		legacy.LegacyRawID = "raw-0"
		states = append(states, next, &cleared, &legacy)
		st = &cleared
	}
	return states
}

// TestStateRestIsStateButTheInvoice: stateRest has every member State
// encodes after the invoice, in order, with the same names and options.
func TestStateRestIsStateButTheInvoice(t *testing.T) {
	var want []reflect.StructField
	st := reflect.TypeFor[State]()
	for i := range st.NumField() {
		if f := st.Field(i); f.IsExported() && f.Name != "Invoice" {
			want = append(want, f)
		}
	}
	rest := reflect.TypeFor[stateRest]()
	if rest.NumField() != len(want) {
		t.Fatalf("stateRest has %d fields, State %d after the invoice", rest.NumField(), len(want))
	}
	for i, w := range want {
		if f := rest.Field(i); f.Name != w.Name || f.Type != w.Type || f.Tag != w.Tag {
			t.Errorf("stateRest field %d is %s %s %q, State's %s %s %q", i, f.Name, f.Type, f.Tag, w.Name, w.Type, w.Tag)
		}
	}
}

// TestStateFailsClosed: a value at an invoice's key that is not that
// invoice's state (an acknowledgement stored there through a reply
// subject, a state copied from another invoice, garbage) is refused as
// corrupt_state, a permanent class, never read as "no state".
func TestStateFailsClosed(t *testing.T) {
	js := newJetStream(t)
	store, err := openStateStore(t.Context(), js, 1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	key := stateKey("inv-1")
	own, err := schemas.EncodeJSON(State{Invoice: schemas.Invoice{ID: "inv-1"}, Sequence: 5})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := schemas.EncodeJSON(State{Invoice: schemas.Invoice{ID: "inv-2"}, Sequence: 9})
	for _, tt := range []struct {
		name  string
		value string
		ok    bool
	}{
		{"its own state", string(own), true},
		{"a JetStream acknowledgement", `{"stream":"KV_INVOICE_STATE","seq":7}`, false},
		{"another invoice's state", string(other), false},
		{"an empty object", `{}`, false},
		{"not JSON", `+OK`, false},
	} {
		if _, err := store.kv.Put(t.Context(), key, []byte(tt.value)); err != nil {
			t.Fatal(err)
		}
		st, _, err := store.load(t.Context(), key)
		class, _ := consume.PermanentClassOf(err)
		switch {
		case tt.ok && (err != nil || st == nil || st.Sequence != 5):
			t.Errorf("%s: %+v, %v", tt.name, st, err)
		case !tt.ok && class != "corrupt_state":
			t.Errorf("%s: loaded as %+v (err %v), want corrupt_state", tt.name, st, err)
		}
	}
}
