package normalizer

import (
	"bytes"
	"slices"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/internal/jstest"
	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

func TestExistenceForgetsTheOldestWhenFull(t *testing.T) {
	e := newExistence(3)
	for _, k := range []string{"a", "b", "c", "a"} { // a again: still three keys
		e.saw(k)
	}
	e.saw("d") // forgets a, the oldest
	for k, want := range map[string]bool{"a": false, "b": true, "c": true, "d": true, "never": false} {
		if got := e.seen(k); got != want {
			t.Errorf("seen(%q) = %v, want %v", k, got, want)
		}
	}
}

// stateTraffic counts the state bucket's reads and writes (refused ones
// too) as nats-server receives them.
type stateTraffic struct {
	nc            *nats.Conn
	reads, writes *nats.Subscription
}

func watchState(t *testing.T, js jetstream.JetStream) *stateTraffic {
	t.Helper()
	nc := js.Conn()
	reads, err := nc.SubscribeSync("$JS.API.DIRECT.GET.KV_" + StateBucket + ".>")
	if err != nil {
		t.Fatal(err)
	}
	writes, err := nc.SubscribeSync("$KV." + StateBucket + ".>")
	if err != nil {
		t.Fatal(err)
	}
	return &stateTraffic{nc: nc, reads: reads, writes: writes}
}

// counts returns the reads and writes seen since the last call.
func (s *stateTraffic) counts(t *testing.T) (reads, writes int) {
	t.Helper()
	if err := s.nc.Flush(); err != nil { // every request sent before is queued here by now
		t.Fatal(err)
	}
	drain := func(sub *nats.Subscription) int {
		n, _, _ := sub.Pending()
		for range n {
			sub.NextMsg(0)
		}
		return n
	}
	return drain(s.reads), drain(s.writes)
}

// TestStateIsReadOnlyWhereTheInvoiceMayExist: a webhook about an invoice
// this normalizer never saw is first tried as a create (Qonto's documented
// example, which does not say created, as much as a created event): no
// state read; an invoice it wrote is read before it is updated; one
// another normalizer wrote costs a refused create, then the read, and its
// update announces what a read would have (updated, never created again).
// A repeated "created" of an invoice known here is read, not guessed.
func TestStateIsReadOnlyWhereTheInvoiceMayExist(t *testing.T) {
	js := newJetStream(t)
	traffic := watchState(t, js)
	settled := func(t *testing.T, what string, wantReads, wantWrites int) {
		t.Helper()
		drained(t, js)
		if reads, writes := traffic.counts(t); reads != wantReads || writes != wantWrites {
			t.Errorf("%s: %d state reads and %d writes, want %d and %d", what, reads, writes, wantReads, wantWrites)
		}
	}
	step := func(t *testing.T, fixture string, wantReads, wantWrites int) {
		t.Helper()
		publishFixture(t, js, fixture)
		settled(t, fixture, wantReads, wantWrites)
	}
	stop := runNormalizer(t, js, 4)
	step(t, "testdata/raw/qonto/created-minimal.json", 0, 2) // no data.event, a new invoice: create with its announcement, clear
	step(t, "testdata/raw/qonto/created-draft.json", 0, 2)   // "created", a new invoice
	step(t, "testdata/raw/qonto/updated-paid.json", 1, 2)    // the draft's invoice, written here: read, update, clear
	// created-draft delivered again under a new delivery id (JetStream
	// drops the same one): "created" of an invoice known here is read, and
	// older than its state.
	p, body, headers := fixture(t, "testdata/raw/qonto/created-draft.json")
	publishRaw(t, js, p, bytes.Replace(body, []byte("0b7c6f0e-7a61-4a8f-9a51-2f0e8d3c1a01"), []byte("0b7c6f0e-7a61-4a8f-9a51-2f0e8d3c1aff"), 1), headers)
	settled(t, "created-draft again", 1, 0)
	stop()

	before := len(eventIDs(t, js))
	runNormalizer(t, js, 4)                                            // a normalizer that never saw the invoice
	step(t, "testdata/raw/qonto/client-invoice-documented.json", 1, 3) // no data.event: refused create, read, update, clear
	msgs := jstest.Messages(t, js, subject.InvoicesStream)
	created := 0
	var types []string
	for i, m := range msgs {
		if m.Header.Get("ce-type") == schemas.KindCreated.EventType() {
			created++
		}
		if i >= before {
			types = append(types, m.Header.Get("ce-type"))
		}
	}
	if created != 2 {
		t.Errorf("%d created events, want 2 (one per invoice)", created)
	}
	if want := updateTypes(t); len(want) == 0 || !slices.Equal(types, want) {
		t.Errorf("the update announced %v, want %v", types, want)
	}
}

// updateTypes is what the documented example announces against the state
// of created-draft then updated-paid, by the pure functions.
func updateTypes(t *testing.T) []string {
	t.Helper()
	var known *State
	for _, path := range []string{"testdata/raw/qonto/created-draft.json", "testdata/raw/qonto/updated-paid.json", "testdata/raw/qonto/client-invoice-documented.json"} {
		p, body, headers := fixture(t, path)
		raw, h := rawEvent(t, p, body, headers)
		out, err := Normalize(raw, h, schemas.RawRef{Stream: subject.WebhooksStream, Sequence: 1}, known, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if out.State != nil {
			known = out.State
			known.Pending = nil
		}
		if path == "testdata/raw/qonto/client-invoice-documented.json" {
			var types []string
			for _, c := range out.Events {
				types = append(types, c.Msg.Header.Get("ce-type"))
			}
			return types
		}
	}
	return nil
}
