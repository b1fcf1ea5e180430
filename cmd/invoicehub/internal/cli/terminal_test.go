package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/invoicehub/invoicehub/internal/consume"
	"github.com/invoicehub/invoicehub/internal/jstest"
	"github.com/invoicehub/invoicehub/internal/ledger"
	"github.com/invoicehub/invoicehub/internal/streams"
	"github.com/invoicehub/invoicehub/schemas"
)

func TestTerminalSafe(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "F-2026-0117 café", "F-2026-0117 café"},
		{"forged line", "F-1\nALL DLQ CLEAR", `F-1\nALL DLQ CLEAR`},
		{"title and clear screen", "x\x1b]0;pwned\x07\x1b[2J", `x\x1b]0;pwned\x07\x1b[2J`},
		{"carriage return", "ok\rFAIL", `ok\rFAIL`},
		{"tab", "a\tb", `a\tb`},
		{"bidi override", "invoice \u202eFDP.exe", `invoice \u202eFDP.exe`},
		{"isolate and zero width", "a\u2066b\u200bc", `a\u2066b\u200bc`},
		{"C1 CSI", "a\u009b2Jb", `a\u009b2Jb`},
		{"DEL and NUL", "a\x7f\x00b", `a\x7f\x00b`},
		{"invalid UTF-8", "a\xffb", `a\xffb`},
		{"line separator", "a\u2028b", `a\u2028b`},
	}
	for _, tt := range tests {
		if got := terminalSafe(tt.in); got != tt.want {
			t.Errorf("%s: terminalSafe = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// hostile is what a sender or a receiver can put in a string the CLI
// prints: a retitle, a screen clear, a bidi override, a forged line.
const hostile = "F-9\x1b]0;pwned\x07\x1b[2J\u202e\nALL DLQ CLEAR"

// controlFree fails t when out holds a control character or bidi
// control other than the lines' own newlines, or a line forged by s.
func controlFree(t *testing.T, what, out string) {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if terminalSafe(line) != line {
			t.Errorf("%s printed a control character: %q", what, line)
		}
		if strings.HasPrefix(line, "ALL DLQ CLEAR") {
			t.Errorf("%s printed a forged line: %q", what, line)
		}
	}
}

// TestTraceAndDeadLettersEscapeWhatTheyPrint: trace's text output, and
// dlq ls and show, print a hostile invoice number, event id, attempt
// error, dead-letter reason and body with their controls escaped.
func TestTraceAndDeadLettersEscapeWhatTheyPrint(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	j := journey{Invoice: "inv" + hostile, Number: hostile,
		Webhooks: []rawWebhook{{Seq: 1, Stored: at, Subject: "webhooks.qonto.acme", EventID: hostile, Type: hostile}},
		Events:   []canonicalRef{{Seq: 2, Stored: at, ID: "ev-1", Kind: schemas.KindCreated, Status: schemas.Status(hostile), RawSeq: 1}},
		Attempts: []ledger.Entry{{Time: at, Stage: "sink", Consumer: "crm", EventID: "ev-1", Attempt: 1, Result: consume.ResultRetrying, Error: hostile}}}
	var b bytes.Buffer
	j.print(&b)
	controlFree(t, "trace", b.String())

	srv := jstest.Run(t)
	_, js := srv.Connect(t)
	if err := streams.Ensure(t.Context(), js, streams.Config{}); err != nil {
		t.Fatal(err)
	}
	reason := strings.ReplaceAll(hostile, "\n", " ") // a header holds no newline
	h := nats.Header{consume.HeaderErrorClass: {"http_400"}, consume.HeaderReason: {reason}, consume.HeaderAttempts: {"1"}}
	if _, err := js.PublishMsg(t.Context(), &nats.Msg{Subject: "dlq.sink.crm", Header: h, Data: []byte(hostile)}); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"ls"}, {"show", "1"}} {
		out, code := run(t, append([]string{"dlq", "-nats", srv.ClientURL()}, args...)...)
		if code != 0 {
			t.Fatalf("dlq %v: exit %d\n%s", args, code, out)
		}
		controlFree(t, "dlq "+args[0], out)
		if !strings.Contains(out, `\x1b]0;pwned\x07`) || !strings.Contains(out, "not resolve") {
			t.Errorf("dlq %v does not show the escaped reason and that the reference does not resolve:\n%s", args, out)
		}
	}
}
