package normalizer

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/money"
)

// step normalizes a fixture against st and returns the kinds published and
// the state that results (st itself when nothing is stored).
func step(t *testing.T, st *State, path string, seq uint64) (Output, *State) {
	t.Helper()
	p, body, headers := fixture(t, path)
	raw, h := rawEvent(t, p, body, headers)
	out, err := Normalize(raw, h, schemas.RawRef{Stream: "WEBHOOKS", Sequence: seq}, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if out.State != nil {
		return out, out.State
	}
	return out, st
}

func kinds(out Output) []schemas.Kind {
	var ks []schemas.Kind
	for _, c := range out.Events {
		ks = append(ks, c.Data.Event.Kind)
	}
	return ks
}

func TestDeriveStory(t *testing.T) {
	const draft, paid = "testdata/raw/qonto/created-draft.json", "testdata/raw/qonto/updated-paid.json"
	out, st := step(t, nil, draft, 1)
	if got := kinds(out); !slices.Equal(got, []schemas.Kind{"created", "updated"}) {
		t.Fatalf("first sight: %v", got)
	}
	out, st = step(t, st, paid, 2)
	want := []schemas.Kind{"updated", "status_changed", "sent", "payment_received", "paid"}
	if got := kinds(out); !slices.Equal(got, want) {
		t.Fatalf("draft → paid: %v, want %v", got, want)
	}
	for _, c := range out.Events {
		if c.Data.Event.PreviousStatus != schemas.StatusDraft {
			t.Errorf("%s: previous_status %q", c.Data.Event.Kind, c.Data.Event.PreviousStatus)
		}
		if !slices.Contains(c.Data.Event.ChangedFields, "status") || !slices.Contains(c.Data.Event.ChangedFields, "totals") {
			t.Errorf("%s: changed_fields %v", c.Data.Event.Kind, c.Data.Event.ChangedFields)
		}
	}
	if p := out.Events[3].Data.Payment; p == nil || p.Amount.String() != "1308.00" || p.Currency != "EUR" {
		t.Fatalf("payment %+v", p)
	}
	if st.Invoice.Status != schemas.StatusPaid || len(st.Applied) != 2 || st.Pending == nil || st.Pending.RawID != st.Applied[1] {
		t.Fatalf("state %+v", st)
	}
	// The state's announcement builds the same events, ids included.
	if announced, err := st.announced(); err != nil || !slices.Equal(ids(Output{Events: announced}), ids(out)) {
		t.Fatalf("announcement: %v, %v", ids(Output{Events: announced}), err)
	}

	// The same raw event again (a redelivery, or a resend long after): the
	// state holds its change already; nothing is announced again.
	again, st2 := step(t, st, paid, 2)
	if again.Outcome != OutcomeApplied || again.State != nil || st2 != st || len(again.Events) != 0 {
		t.Fatalf("repeat: %+v", again)
	}

	// The draft again, late: a repeat, nothing. Had the state forgotten
	// it, its older version would be stale: nothing either.
	late, st3 := step(t, st, draft, 1)
	if late.Outcome != OutcomeApplied || len(late.Events) != 0 || st3 != st {
		t.Fatalf("late draft: %+v", late)
	}
	st.Applied = st.Applied[1:]
	if late, _ = step(t, st, draft, 1); late.Outcome != OutcomeStale || len(late.Events) != 0 {
		t.Fatalf("older version: %+v", late)
	}
}

func ids(out Output) []string {
	var s []string
	for _, c := range out.Events {
		s = append(s, c.ID())
	}
	return s
}

func TestDeriveUnchangedAndDeleted(t *testing.T) {
	const created, deleted = "testdata/raw/rillet/invoice-unbilled-minimal.json", "testdata/raw/rillet/invoice-deleted.json"
	// A deletion of an invoice never seen publishes nothing and stores nothing.
	if out, st := step(t, nil, deleted, 1); out.Outcome != OutcomeDeletedUnknown || st != nil {
		t.Fatalf("deleted unknown: %+v %+v", out, st)
	}
	out, st := step(t, nil, created, 1)
	if len(out.Events) != 2 {
		t.Fatalf("created: %v", kinds(out))
	}
	// The same content in another raw event under a newer version:
	// unchanged, nothing announced, the version advances.
	st.Sequence--
	st.Applied, st.Pending = []string{"earlier"}, nil
	out, st = step(t, st, created, 2)
	if out.Outcome != OutcomeUnchanged || len(out.Events) != 0 || len(st.Applied) != 2 || st.Pending != nil {
		t.Fatalf("unchanged: %+v %+v", out, st)
	}
	// Deleted after it was seen: one deleted event carrying the last state.
	out, st = step(t, st, deleted, 3)
	if got := kinds(out); !slices.Equal(got, []schemas.Kind{"deleted"}) || !st.Deleted {
		t.Fatalf("deleted: %v %+v", got, st)
	}
	if inv := out.Events[0].Data.Invoice; inv.Currency != "USD" || inv.RemoteID != "3f1c2b9e-8d7a-4c6b-9e5f-0a1b2c3d4e06" || inv.RawRef.Sequence != 3 {
		t.Fatalf("deleted event invoice %+v", inv)
	}
	// Seen again after deletion (another raw event): created anew.
	st.Sequence, st.Applied = 0, nil
	if out, _ = step(t, st, created, 4); !slices.Equal(kinds(out), []schemas.Kind{"created", "updated"}) {
		t.Fatalf("after deletion: %v", kinds(out))
	}
}

func TestDerivePartialPaymentFromTotals(t *testing.T) {
	_, st := step(t, nil, "testdata/raw/moxie/invoice-sent.json", 1)
	st.Sequence = 0 // moxie fixtures share the arrival time; order them here
	out, _ := step(t, st, "testdata/raw/moxie/payment-received-seed.json", 2)
	want := []schemas.Kind{"updated", "status_changed", "payment_received"}
	if got := kinds(out); !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if p := out.Events[2].Data.Payment; p.Amount.String() != "78.75" || p.Method != "CHECK" {
		t.Fatalf("payment %+v", p)
	}
}

func TestCheckFlagsBrokenArithmetic(t *testing.T) {
	usd, _ := money.LookupCurrency("USD")
	a := func(s string) money.Amount { d, _ := money.Parse(s); return money.Total(d, usd) }
	inv := schemas.Invoice{
		Lines:  []schemas.Line{{NetAmount: a("60")}, {NetAmount: a("30")}},
		Totals: schemas.Totals{LinesNet: a("100"), Discount: a("5"), Net: a("90"), Tax: a("10"), Total: a("101"), Paid: a("50"), Credited: a("0"), Due: a("50")},
	}
	got := check(inv)
	if len(got) != 4 {
		t.Fatalf("warnings %v, want all four rules", got)
	}
	inv.Lines[1].NetAmount = a("40")
	inv.Totals = schemas.Totals{LinesNet: a("100"), Discount: a("10"), Net: a("90"), Tax: a("11"), Total: a("101"), Paid: a("50"), Credited: a("1"), Due: a("50")}
	if got := check(inv); len(got) != 0 {
		t.Fatalf("consistent invoice flagged: %v", got)
	}
}

func TestAnnouncementRefusesSchemaViolation(t *testing.T) {
	st := &State{
		Invoice:  schemas.Invoice{ID: "q:a:1", Provider: "q", Source: "a", RemoteID: "1", Currency: "euro"},
		Sequence: 1,
		Pending:  &Announcement{RawID: "r", Kinds: []schemas.Kind{schemas.KindUpdated}, Info: schemas.EventInfo{OccurredAt: time.Unix(0, 0), ProviderEventID: "r", ProviderEventType: "x"}},
	}
	_, err := st.announced()
	if !errors.Is(err, ErrSchemaViolation) || Class(err) != "schema_violation" {
		t.Fatalf("got %v", err)
	}
}
