package cli

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/invoicehub/invoicehub/schemas/subject"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/internal/consume"
	"github.com/invoicehub/invoicehub/internal/jstest"
	"github.com/invoicehub/invoicehub/internal/streams"
)

func run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Run(t.Context(), args, func(string) string { return "" }, &out, &errOut)
	return out.String() + errOut.String(), code
}

// sinkDeadLetter stores body in INVOICES, then a dead letter of it by
// sink consumer, as the consume adapter writes one (header adds to its
// headers).
func sinkDeadLetter(t *testing.T, js jetstream.JetStream, consumer, body string, header nats.Header) {
	t.Helper()
	const subj = "invoices.v1.created.qonto.acme"
	ack, err := js.PublishMsg(t.Context(), &nats.Msg{Subject: subj, Data: []byte(body)})
	if err != nil {
		t.Fatal(err)
	}
	h := nats.Header{consume.HeaderStream: {subject.InvoicesStream}, consume.HeaderStreamSeq: {strconv.FormatUint(ack.Sequence, 10)}, consume.HeaderSubject: {subj}}
	for k, v := range header {
		h[k] = v
	}
	if _, err := js.PublishMsg(t.Context(), &nats.Msg{Subject: "dlq.sink." + consumer, Header: h, Data: []byte(body)}); err != nil {
		t.Fatal(err)
	}
}

func TestDLQCommands(t *testing.T) {
	srv := jstest.Run(t)
	_, js := srv.Connect(t)
	if err := streams.Ensure(t.Context(), js, streams.Config{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"crm", "crm", "archive"} {
		sinkDeadLetter(t, js, c, `{"to":"`+c+`"}`, nats.Header{consume.HeaderErrorClass: {"http_400"}, consume.HeaderReason: {"400 from " + c}, consume.HeaderAttempts: {"1"}})
	}
	url := srv.ClientURL()
	steps := []struct {
		args []string
		want []string
		code int
	}{
		{[]string{"dlq", "-nats", url, "ls"}, []string{"3 dead letters", "sink.crm", "http_400", "400 from archive"}, 0},
		{[]string{"dlq", "-nats", url, "ls", "sink.crm"}, []string{"2 dead letters"}, 0},
		{[]string{"dlq", "-nats", url, "show", "3"}, []string{"dead letter 3 of sink.archive", "its original: INVOICES/3 invoices.v1.created.qonto.acme, what replay sends back", "Dlq-Reason: 400 from archive", `{"to":"archive"}`}, 0},
		{[]string{"dlq", "-nats", url, "show", "9"}, []string{"no such dead letter"}, 1},
		{[]string{"dlq", "-nats", url, "replay", "1"}, []string{"replayed 1 dead letters"}, 0},
		{[]string{"dlq", "-nats", url, "replay", "1"}, []string{"replayed 0 dead letters", "1 already replayed or removed"}, 0},
		{[]string{"dlq", "-nats", url, "replay", "99"}, []string{"no such dead letter"}, 1},
		{[]string{"dlq", "-nats", url, "purge", "-all", "sink.crm"}, []string{"purged 1 dead letters"}, 0},
		{[]string{"dlq", "-nats", url, "ls"}, []string{"1 dead letters", "sink.archive"}, 0},
		{[]string{"dlq", "-nats", url, "replay", "x"}, []string{"not a dead letter sequence"}, 1},
		{[]string{"dlq", "-nats", url, "frobnicate"}, []string{"unknown dlq command"}, 1},
	}
	for _, s := range steps {
		out, code := run(t, s.args...)
		if code != s.code {
			t.Errorf("%v: exit %d, want %d\n%s", s.args, code, s.code, out)
		}
		for _, w := range s.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: output lacks %q:\n%s", s.args, w, out)
			}
		}
	}
	inv, _ := js.Stream(t.Context(), subject.InvoicesStream)
	if m, err := inv.GetLastMsgForSubject(t.Context(), "replay.sink.crm"); err != nil || string(m.Data) != `{"to":"crm"}` {
		t.Fatalf("replayed message: %v %v", m, err)
	}
}

func TestUnknownCommand(t *testing.T) {
	if out, code := run(t, "frobnicate"); code != 2 || !strings.Contains(out, "unknown command") {
		t.Fatalf("%d %s", code, out)
	}
	if out, code := run(t, "help"); code != 0 || !strings.Contains(out, "dlq") || !strings.Contains(out, "replay") {
		t.Fatalf("%d %s", code, out)
	}
}

// TestTwoReplaysAtOnce: two `dlq replay -all` run at the same time; each
// dead letter is replayed once (its replay stored once), both exit 0, and
// between them they report every dead letter.
func TestTwoReplaysAtOnce(t *testing.T) {
	srv := jstest.Run(t)
	_, js := srv.Connect(t)
	if err := streams.Ensure(t.Context(), js, streams.Config{}); err != nil {
		t.Fatal(err)
	}
	const letters = 40
	for range letters {
		sinkDeadLetter(t, js, "crm", "{}", nats.Header{consume.HeaderErrorClass: {"http_503"}})
	}
	outs := make([]string, 2)
	codes := make([]int, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() { outs[i], codes[i] = run(t, "dlq", "-nats", srv.ClientURL(), "replay", "-all") })
	}
	wg.Wait()
	reported := 0
	for i := range 2 {
		if codes[i] != 0 {
			t.Errorf("run %d: exit %d\n%s", i, codes[i], outs[i])
		}
		var replayed, gone int
		fmt.Sscanf(outs[i], "replayed %d dead letters\n%d already", &replayed, &gone)
		reported += replayed
	}
	if reported < letters {
		t.Errorf("%d replays reported for %d dead letters:\n%s\n%s", reported, letters, outs[0], outs[1])
	}
	replays := 0
	for _, m := range jstest.Messages(t, js, subject.InvoicesStream) {
		if m.Subject == subject.Replay("sink", "crm") {
			replays++
		}
	}
	if replays != letters || jstest.Count(t, js, subject.DLQStream) != 0 {
		t.Fatalf("%d replays stored and %d dead letters left, want %d and 0", replays, jstest.Count(t, js, subject.DLQStream), letters)
	}
}
