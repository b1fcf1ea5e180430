package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/schemas/ce"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

const tailUsage = `usage: invoicehub tail [-nats URL] [-kind K] [-provider P] [-source S] [-since D] [-n N] [-o text|json]

Canonical events as they are published (or from -since ago), until
Ctrl-C or N events: one line each, or one CloudEvent (JSON) per line.`

// runTail follows INVOICES with an ordered consumer, which leaves nothing
// behind on the server.
func runTail(ctx context.Context, args []string, env Env) error {
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() { fmt.Fprintln(env.Stderr, tailUsage) }
	url := fs.String("nats", "nats://127.0.0.1:4222", "NATS server URL")
	kind := fs.String("kind", "", "only this kind (created, paid...)")
	prov := fs.String("provider", "", "only this provider")
	source := fs.String("source", "", "only this source")
	since := fs.Duration("since", 0, "start this long ago instead of now")
	count := fs.Int("n", 0, "stop after this many events (0: never)")
	format := fs.String("o", "text", "output: text or json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 || (*format != "text" && *format != "json") {
		fs.Usage()
		return errors.New("bad arguments")
	}
	nc, js, err := connect(*url, "tail")
	if err != nil {
		return err
	}
	defer nc.Close()
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject.InvoiceFilter(*kind, *prov, *source)}, DeliverPolicy: jetstream.DeliverNewPolicy}
	if *since > 0 {
		start := time.Now().Add(-*since)
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	}
	c, err := js.OrderedConsumer(ctx, subject.InvoicesStream, cfg)
	if err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	it, err := c.Messages()
	if err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	go func() { <-ctx.Done(); it.Stop() }()
	for n := 0; *count == 0 || n < *count; {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("tail: %w", err)
		}
		line, err := tailLine(ctx, m, *format)
		if err != nil {
			fmt.Fprintf(env.Stderr, "tail: %s: %v\n", m.Subject(), err)
			continue
		}
		fmt.Fprintln(env.Stdout, line)
		n++
	}
	it.Stop()
	return nil
}

// tailLine renders one canonical event.
func tailLine(ctx context.Context, m jetstream.Msg, format string) (string, error) {
	c, err := ce.DecodeCanonical(ctx, natsMsg(m))
	if err != nil {
		return "", err
	}
	if format == "json" {
		b, err := json.Marshal(c.Event)
		return string(b), err
	}
	inv := c.Data.Invoice
	fields := []string{c.Data.Event.OccurredAt.UTC().Format(time.RFC3339), string(c.Data.Event.Kind), inv.ID}
	if inv.Number != "" {
		fields = append(fields, "number "+inv.Number)
	}
	fields = append(fields, "status "+string(inv.Status), "total "+inv.Totals.Total.String()+" "+inv.Currency, "due "+inv.Totals.Due.String())
	return terminalSafe(strings.Join(fields, "  ")), nil
}
