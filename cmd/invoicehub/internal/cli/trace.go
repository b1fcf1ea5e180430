package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/internal/ledger"
	"github.com/invoicehub/invoicehub/internal/streams"
	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/ce"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

const traceUsage = `usage: invoicehub trace [-nats URL] [-o text|json] <invoice id | number>

The journey of an invoice: each raw webhook (when, the provider's event
id, which secret verified it, its WEBHOOKS sequence) and the normalizer's
attempts on it; each canonical event (kind, id, version); and, per sink,
every delivery attempt with its outcome, dead letters and replays
included. An invoice id is <provider>:<source>:<remote id>; anything else
is looked up as the provider's invoice number or remote id.`

// runTrace prints the journeys of the invoices the argument names.
func runTrace(ctx context.Context, args []string, env Env) error {
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() { fmt.Fprintln(env.Stderr, traceUsage) }
	url := fs.String("nats", "nats://127.0.0.1:4222", "NATS server URL (nats://user:password@host for an administrator)")
	format := fs.String("o", "text", "output: text or json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || (*format != "text" && *format != "json") {
		fs.Usage()
		return errors.New("give one invoice id or number, and -o text or json")
	}
	nc, js, err := connect(*url, "trace")
	if err != nil {
		return err
	}
	defer nc.Close()
	ids, err := findInvoices(ctx, js, fs.Arg(0))
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return fmt.Errorf("no invoice %q in INVOICES", fs.Arg(0))
	}
	journeys := make([]journey, 0, len(ids))
	for _, id := range ids {
		j, err := trace(ctx, js, id)
		if err != nil {
			return err
		}
		journeys = append(journeys, j)
	}
	if *format == "json" {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(journeys)
	}
	for i, j := range journeys {
		if i > 0 {
			fmt.Fprintln(env.Stdout)
		}
		j.print(env.Stdout)
	}
	return nil
}

// journey is what trace found of one invoice.
type journey struct {
	Invoice  string         `json:"invoice"`
	Number   string         `json:"number,omitempty"`
	Webhooks []rawWebhook   `json:"webhooks"`
	Events   []canonicalRef `json:"events"`
	// Attempts are the ledger's entries of the invoice, oldest first.
	Attempts []ledger.Entry `json:"attempts"`
}

type rawWebhook struct {
	Seq         uint64    `json:"seq"`
	Stored      time.Time `json:"stored"`
	Subject     string    `json:"subject"`
	EventID     string    `json:"event_id"`
	Type        string    `json:"type"`
	VerifiedKey string    `json:"verified_key,omitempty"`
	ClockSkewMS string    `json:"clock_skew_ms,omitempty"`
}

type canonicalRef struct {
	Seq     uint64         `json:"seq"`
	Stored  time.Time      `json:"stored"`
	ID      string         `json:"id"`
	Kind    schemas.Kind   `json:"kind"`
	Version int64          `json:"version"`
	Status  schemas.Status `json:"status"`
	RawSeq  uint64         `json:"raw_seq"`
}

// findInvoices resolves an invoice id, or looks a number or remote id up
// in INVOICES (headers only).
func findInvoices(ctx context.Context, js jetstream.JetStream, arg string) ([]string, error) {
	if parts := strings.SplitN(arg, ":", 3); len(parts) == 3 {
		return []string{arg}, nil
	}
	var ids []string
	err := streams.Read(ctx, js, subject.InvoicesStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject.InvoicesRoot + ".>"}, HeadersOnly: true,
	}, func(m jetstream.Msg, _ *jetstream.MsgMetadata) (bool, error) {
		h := m.Headers()
		id := h.Get("ce-subject")
		if (h.Get("ce-"+ce.ExtInvoiceNumber) == arg || strings.HasSuffix(id, ":"+arg)) && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
		return true, nil
	})
	return ids, err
}

// trace gathers one invoice's journey: its canonical events (by subject,
// then matched on the invoice id), the raw webhooks they and the ledger
// name, and the ledger's entries.
func trace(ctx context.Context, js jetstream.JetStream, invoice string) (journey, error) {
	j := journey{Invoice: invoice}
	parts := strings.SplitN(invoice, ":", 3)
	filter := subject.InvoiceFilter("", parts[0], parts[1])
	var seqs []uint64
	err := streams.Read(ctx, js, subject.InvoicesStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}, HeadersOnly: true},
		func(m jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
			if m.Headers().Get("ce-subject") == invoice {
				seqs = append(seqs, meta.Sequence.Stream)
			}
			return true, nil
		})
	if err != nil {
		return j, err
	}
	invoices, err := js.Stream(ctx, subject.InvoicesStream)
	if err != nil {
		return j, err
	}
	rawSeqs := map[uint64]bool{}
	for _, seq := range seqs {
		m, err := invoices.GetMsg(ctx, seq)
		if err != nil {
			return j, fmt.Errorf("INVOICES %d: %w", seq, err)
		}
		c, err := ce.DecodeCanonical(ctx, &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
		if err != nil {
			return j, fmt.Errorf("INVOICES %d: %w", seq, err)
		}
		j.Number = c.Data.Invoice.Number
		ref := canonicalRef{Seq: seq, Stored: m.Time.UTC(), ID: c.Event.ID(), Kind: c.Data.Event.Kind, Version: c.Version,
			Status: c.Data.Invoice.Status, RawSeq: c.Data.Invoice.RawRef.Sequence}
		j.Events = append(j.Events, ref)
		rawSeqs[ref.RawSeq] = true
	}
	if j.Attempts, err = ledger.OfInvoice(ctx, js, invoice); err != nil {
		return j, err
	}
	for _, e := range j.Attempts {
		if e.Stream == subject.WebhooksStream && !strings.HasPrefix(e.Subject, subject.ReplayRoot+".") {
			rawSeqs[e.StreamSeq] = true
		}
	}
	j.Webhooks, err = rawWebhooks(ctx, js, rawSeqs)
	return j, err
}

func rawWebhooks(ctx context.Context, js jetstream.JetStream, seqs map[uint64]bool) ([]rawWebhook, error) {
	s, err := js.Stream(ctx, subject.WebhooksStream)
	if err != nil {
		return nil, err
	}
	var out []rawWebhook
	for _, seq := range slices.Sorted(maps.Keys(seqs)) {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // aged out of WEBHOOKS
		}
		if err != nil {
			return nil, fmt.Errorf("WEBHOOKS %d: %w", seq, err)
		}
		out = append(out, rawWebhook{Seq: seq, Stored: m.Time.UTC(), Subject: m.Subject, EventID: m.Header.Get("ce-id"), Type: m.Header.Get("ce-type"),
			VerifiedKey: m.Header.Get("ce-" + ce.ExtVerifiedKey), ClockSkewMS: m.Header.Get("ce-" + ce.ExtClockSkewMS)})
	}
	return out, nil
}

const timeFormat = "2006-01-02T15:04:05.000Z"

// print writes the journey for people: webhooks with the normalizer's
// attempts under each, then events with every sink's attempts under each.
func (j journey) print(w io.Writer) {
	fmt.Fprintf(w, "invoice %s", terminalSafe(j.Invoice))
	if j.Number != "" {
		fmt.Fprintf(w, " (number %s)", terminalSafe(j.Number))
	}
	fmt.Fprintf(w, "\n\nraw webhooks (WEBHOOKS)\n")
	if len(j.Webhooks) == 0 {
		fmt.Fprintln(w, "  none left in WEBHOOKS")
	}
	for _, r := range j.Webhooks {
		fmt.Fprintf(w, "  #%d  %s  %s  id %s  %s\n", r.Seq, r.Stored.Format(timeFormat), terminalSafe(r.Subject), terminalSafe(r.EventID), terminalSafe(r.Type))
		if r.VerifiedKey != "" {
			fmt.Fprintf(w, "       verified with secret %s, clock skew %s ms\n", terminalSafe(r.VerifiedKey), terminalSafe(r.ClockSkewMS))
		}
		j.printAttempts(w, func(e ledger.Entry) bool { return e.Stage == "normalizer" && e.EventID == r.EventID })
	}
	fmt.Fprintf(w, "\ncanonical events (INVOICES)\n")
	if len(j.Events) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, c := range j.Events {
		fmt.Fprintf(w, "  #%d  %s  %-16s %s  version %d  status %s  from raw #%d\n", c.Seq, c.Stored.Format(timeFormat), terminalSafe(string(c.Kind)), terminalSafe(c.ID), c.Version, terminalSafe(string(c.Status)), c.RawSeq)
		j.printAttempts(w, func(e ledger.Entry) bool { return e.Stage != "normalizer" && e.EventID == c.ID })
	}
}

// printAttempts writes the attempts match selects, consumer by consumer,
// each consumer's in time order.
func (j journey) printAttempts(w io.Writer, match func(ledger.Entry) bool) {
	entries := slices.Clone(j.Attempts)
	slices.SortStableFunc(entries, func(a, b ledger.Entry) int { return strings.Compare(a.Durable(), b.Durable()) })
	for _, e := range entries {
		if !match(e) {
			continue
		}
		line := fmt.Sprintf("       %s  %-20s", e.Time.Format(timeFormat), e.Durable())
		if e.Result != ledger.ResultReplayed {
			line += "  attempt " + strconv.FormatUint(e.Attempt, 10)
		}
		if strings.HasPrefix(e.Subject, subject.ReplayRoot+".") {
			line += " of the replay"
		}
		line += "  " + string(e.Result)
		if e.Class != "" {
			line += " (" + e.Class + ")"
		}
		if e.NextRetry != nil {
			line += "  next " + e.NextRetry.Format(timeFormat)
		}
		if e.Error != "" {
			line += "  " + e.Error
		}
		fmt.Fprintln(w, terminalSafe(line))
	}
}

// natsMsg is a pulled message as a plain NATS message, for decoding.
func natsMsg(m jetstream.Msg) *nats.Msg {
	return &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()}
}
