// Package ledger is the delivery ledger: one entry per attempt of every
// consumer (the normalizer and each sink), in the LEDGER stream under
// ledger.<stage>.<consumer>.<invoice>, so that an operator finds where an
// invoice is (`invoicehub trace`) and what each consumer did in the last
// hour (`invoicehub status`). The consume adapter writes it through its
// Observer (Writer); `invoicehub dlq replay` adds the replays.
//
// The stream is bounded (streams.Config: 7 days, 1 GiB by default, the
// oldest entries dropped first): the ledger is for finding out, not an
// archive. An entry is about 400 bytes; a webhook costs one normalizer
// entry plus one per sink per canonical event it delivers.
package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/invoicehub/invoicehub/internal/consume"
	"github.com/invoicehub/invoicehub/internal/streams"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

// ResultReplayed is the result of the entry `invoicehub dlq replay` writes
// when it sends a dead letter back to its consumer.
const ResultReplayed consume.Result = "replayed"

// Entry is one attempt of one delivery.
type Entry struct {
	Time     time.Time `json:"time"`
	Stage    string    `json:"stage"`    // normalizer, sink
	Consumer string    `json:"consumer"` // the consumer id: default, crm
	// Stream, StreamSeq and Subject locate the message delivered.
	Stream    string `json:"stream"`
	StreamSeq uint64 `json:"stream_seq"`
	Subject   string `json:"subject"`
	// EventID and Type are its CloudEvent id and type.
	EventID string `json:"event_id,omitempty"`
	Type    string `json:"type,omitempty"`
	// Invoice is the canonical invoice id, when known.
	Invoice   string         `json:"invoice,omitempty"`
	Attempt   uint64         `json:"attempt,omitempty"`
	Result    consume.Result `json:"result"`
	Class     string         `json:"class,omitempty"`
	Error     string         `json:"error,omitempty"`
	NextRetry *time.Time     `json:"next_retry,omitempty"`
	TookMS    float64        `json:"took_ms,omitempty"`
}

// Durable is the entry's consumer's durable name.
func (e Entry) Durable() string { return e.Stage + "-" + e.Consumer }

// Writer records every attempt it observes, publishing asynchronously: an
// attempt never waits on the ledger, and a ledger that cannot be written
// (LEDGER missing, NATS away) costs a count and a rate-limited log line,
// never a delivery.
type Writer struct {
	js         jetstream.JetStream
	log        *slog.Logger
	failed     prometheus.Counter
	lastLog    atomic.Int64
	lastFailed atomic.Int64 // when an entry last failed, Unix nanoseconds
}

// NewWriter returns a Writer publishing on nc. Its failures are counted in
// invoicehub_ledger_write_errors_total.
func NewWriter(nc *nats.Conn, reg prometheus.Registerer, log *slog.Logger) (*Writer, error) {
	w := &Writer{log: log, failed: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "invoicehub", Subsystem: "ledger", Name: "write_errors_total",
		Help: "Delivery ledger entries that could not be written.",
	})}
	if err := reg.Register(w.failed); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) { w.fail(err) }),
		jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	w.js = js
	return w, nil
}

// Observe records one attempt: Writer is a consume.Observer.
func (w *Writer) Observe(d *consume.Delivery, o consume.Outcome) {
	e := Entry{
		Time: time.Now().UTC(), Stage: d.Stage, Consumer: d.ConsumerID, Stream: d.Stream, StreamSeq: d.Sequence, Subject: d.Subject,
		EventID: d.Header.Get("ce-id"), Type: d.Header.Get("ce-type"), Invoice: d.Key,
		Attempt: o.Attempt, Result: o.Result, TookMS: float64(o.Took.Microseconds()) / 1000,
	}
	if o.Result != consume.ResultDelivered {
		e.Class = o.Class
	}
	if o.Err != nil {
		e.Error = truncate(o.Err.Error(), 512)
	}
	if o.Result == consume.ResultRetrying {
		next := e.Time.Add(o.NextRetry)
		e.NextRetry = &next
	}
	// With 4096 entries unacknowledged (LEDGER leaderless, say) the entry
	// is dropped after a millisecond, not waited for.
	if _, err := w.js.PublishMsgAsync(e.msg(), jetstream.WithStallWait(time.Millisecond)); err != nil {
		w.fail(err)
	}
}

// Flush waits, until ctx ends, for the entries published to be
// acknowledged: at shutdown, before the connection is drained.
func (w *Writer) Flush(ctx context.Context) error {
	select {
	case <-w.js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("ledger: %d entries unacknowledged: %w", w.js.PublishAsyncPending(), ctx.Err())
	}
}

// failingFor is how long after an entry failed Check reports it: a
// ledger that cannot be written keeps the stage unready, so it shows on
// /readyz and in orchestrators, not only in a counter.
const failingFor = time.Minute

// Check returns nil while the ledger is written, or an error naming the
// problem while an entry failed within the last minute: the stage's
// readiness includes it.
func (w *Writer) Check() error {
	last := w.lastFailed.Load()
	if last == 0 || time.Since(time.Unix(0, last)) > failingFor {
		return nil
	}
	return errors.New("delivery ledger: entries are not being written (LEDGER missing or unavailable: run `invoicehub setup`; invoicehub_ledger_write_errors_total counts them)")
}

func (w *Writer) fail(err error) {
	w.lastFailed.Store(time.Now().UnixNano())
	w.failed.Inc()
	if now := time.Now().Unix(); w.lastLog.Swap(now) != now { // at most one line a second
		w.log.Warn("delivery ledger: entry not written", "err", err)
	}
}

func (e Entry) msg() *nats.Msg {
	data, _ := json.Marshal(e) // an Entry always encodes
	return &nats.Msg{Subject: subject.Ledger(e.Stage, e.Consumer, e.Invoice), Data: data}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// Replayed records that a dead letter (h: its headers) was sent back to
// its consumer, stage-consumer.
func Replayed(ctx context.Context, js jetstream.JetStream, stage, consumer string, h nats.Header) error {
	seq, _ := strconv.ParseUint(h.Get(consume.HeaderStreamSeq), 10, 64)
	e := Entry{
		Time: time.Now().UTC(), Stage: stage, Consumer: consumer, Stream: h.Get(consume.HeaderStream), StreamSeq: seq,
		Subject: h.Get(consume.HeaderSubject), EventID: h.Get("ce-id"), Type: h.Get("ce-type"), Invoice: h.Get(consume.HeaderKey),
		Result: ResultReplayed, Class: h.Get(consume.HeaderErrorClass),
	}
	if _, err := js.PublishMsg(ctx, e.msg()); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}

// OfInvoice returns every entry of one invoice, oldest first.
func OfInvoice(ctx context.Context, js jetstream.JetStream, invoice string) ([]Entry, error) {
	return read(ctx, js, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject.LedgerOfInvoice(invoice)}})
}

// Each passes the entries of stage's consumers recorded since t ("" for
// every stage) to fn, oldest first, until fn returns false: for counting
// a window without holding it.
func Each(ctx context.Context, js jetstream.JetStream, stage string, t time.Time, fn func(Entry) bool) error {
	filter := subject.LedgerRoot + ".>"
	if stage != "" {
		filter = subject.LedgerRoot + "." + subject.Token(stage) + ".>"
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &t}
	return each(ctx, js, cfg, fn)
}

func read(ctx context.Context, js jetstream.JetStream, cfg jetstream.OrderedConsumerConfig) ([]Entry, error) {
	var out []Entry
	err := each(ctx, js, cfg, func(e Entry) bool { out = append(out, e); return true })
	return out, err
}

func each(ctx context.Context, js jetstream.JetStream, cfg jetstream.OrderedConsumerConfig, fn func(Entry) bool) error {
	return streams.Read(ctx, js, subject.LedgerStream, cfg, func(m jetstream.Msg, _ *jetstream.MsgMetadata) (bool, error) {
		var e Entry
		if err := json.Unmarshal(m.Data(), &e); err != nil {
			return false, fmt.Errorf("ledger: entry at %s: %w", m.Subject(), err)
		}
		return fn(e), nil
	})
}
