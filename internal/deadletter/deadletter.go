// Package deadletter reads and acts on the DLQ stream: list, show, replay
// a dead letter to the consumer that gave up on it, purge.
//
// Replay publishes the original message to replay.<stage>.<consumer>, a
// subject only that consumer reads, then removes the dead letter. If the
// consumer fails again, it dead-letters the message again. The original
// is read again from its own stream by the dead letter's reference
// (Dlq-Stream, Dlq-Stream-Seq, Dlq-Subject): the dead letter's copy is not
// trusted, since every user that may dead-letter may write one. A
// reference that does not resolve (another stream than the consumer's, a
// message gone, another subject) is refused, and listed as such.
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/internal/consume"
	"github.com/invoicehub/invoicehub/internal/ledger"
	"github.com/invoicehub/invoicehub/internal/streams"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

// Letter is one dead letter.
type Letter struct {
	Seq      uint64    // in the DLQ stream
	Time     time.Time // when it was dead-lettered
	Stage    string    // normalizer or sink
	Consumer string    // the consumer id within the stage
	Header   nats.Header
	Data     []byte
}

// Class, Reason, Attempts and Original describe why and from where.
func (l Letter) Class() string    { return l.Header.Get(consume.HeaderErrorClass) }
func (l Letter) Reason() string   { return l.Header.Get(consume.HeaderReason) }
func (l Letter) Attempts() string { return l.Header.Get(consume.HeaderAttempts) }
func (l Letter) Original() string {
	return l.Header.Get(consume.HeaderStream) + "/" + l.Header.Get(consume.HeaderStreamSeq) + " " + l.Header.Get(consume.HeaderSubject)
}

// Filter selects dead letters; empty fields match all.
type Filter struct{ Stage, Consumer string }

func (f Filter) subject() string {
	stage, consumer := "*", "*"
	if f.Stage != "" {
		stage = subject.Token(f.Stage)
	}
	if f.Consumer != "" {
		consumer = subject.Token(f.Consumer)
	}
	return subject.DLQRoot + "." + stage + "." + consumer
}

// ParseFilter reads "sink.http", "sink" or "" into a Filter.
func ParseFilter(s string) Filter {
	stage, consumer, _ := strings.Cut(s, ".")
	return Filter{Stage: stage, Consumer: consumer}
}

// ErrNotFound is returned for a sequence that holds no dead letter.
var ErrNotFound = errors.New("deadletter: no such dead letter")

// ErrGone is returned for a dead letter that was in the DLQ and is no
// longer: replayed or removed by someone else meanwhile (another `dlq
// replay` run at the same time), which is not a failure of this one.
var ErrGone = errors.New("deadletter: already replayed or removed")

// List returns the dead letters f selects, oldest first.
func List(ctx context.Context, js jetstream.JetStream, f Filter) ([]Letter, error) {
	var out []Letter
	err := streams.Read(ctx, js, subject.DLQStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{f.subject()}},
		func(m jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
			out = append(out, letter(m.Subject(), meta.Sequence.Stream, meta.Timestamp, m.Headers(), m.Data()))
			return true, nil
		})
	if err != nil {
		return nil, fmt.Errorf("deadletter: %w", err)
	}
	return out, nil
}

func letter(subj string, seq uint64, at time.Time, h nats.Header, data []byte) Letter {
	parts := strings.SplitN(subj, ".", 3)
	l := Letter{Seq: seq, Time: at, Header: h, Data: data}
	if len(parts) == 3 {
		l.Stage, l.Consumer = parts[1], parts[2]
	}
	return l
}

// Get returns the dead letter at seq.
func Get(ctx context.Context, js jetstream.JetStream, seq uint64) (Letter, error) {
	s, err := js.Stream(ctx, subject.DLQStream)
	if err != nil {
		return Letter{}, fmt.Errorf("deadletter: %w", err)
	}
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Letter{}, missing(s, seq)
	}
	if err != nil {
		return Letter{}, fmt.Errorf("deadletter: %w", err)
	}
	return letter(m.Subject, m.Sequence, m.Time, m.Header, m.Data), nil
}

// ErrUnresolved is returned for a dead letter whose reference does not
// name a message of its consumer's stream.
var ErrUnresolved = errors.New("deadletter: its original message does not resolve")

// consumedStream is the stream a stage's consumers read, the one its
// dead letters must refer to.
var consumedStream = map[string]string{"normalizer": subject.WebhooksStream, "sink": subject.InvoicesStream, "notify": subject.DLQStream}

// Original reads the message the dead letter refers to from its own
// stream, or fails with ErrUnresolved saying why.
func Original(ctx context.Context, js jetstream.JetStream, l Letter) (*jetstream.RawStreamMsg, error) {
	return NewOriginals(js).Of(ctx, l)
}

// Originals reads the originals of many dead letters (dlq ls), looking
// each stream up once.
type Originals struct {
	js      jetstream.JetStream
	streams map[string]jetstream.Stream
}

// NewOriginals reads originals with js.
func NewOriginals(js jetstream.JetStream) *Originals {
	return &Originals{js: js, streams: map[string]jetstream.Stream{}}
}

// Of is Original for l.
func (o *Originals) Of(ctx context.Context, l Letter) (*jetstream.RawStreamMsg, error) {
	name, subj := l.Header.Get(consume.HeaderStream), l.Header.Get(consume.HeaderSubject)
	seq, err := strconv.ParseUint(l.Header.Get(consume.HeaderStreamSeq), 10, 64)
	switch {
	case err != nil || seq == 0:
		return nil, fmt.Errorf("%w: no stream sequence", ErrUnresolved)
	case name == "" || name != consumedStream[l.Stage]:
		return nil, fmt.Errorf("%w: stream %q is not what %s reads", ErrUnresolved, name, l.Stage)
	}
	s := o.streams[name]
	if s == nil {
		var err error
		if s, err = o.js.Stream(ctx, name); err != nil {
			return nil, fmt.Errorf("deadletter: %w", err)
		}
		o.streams[name] = s
	}
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("%w: %s/%d is gone", ErrUnresolved, name, seq)
	}
	if err != nil {
		return nil, fmt.Errorf("deadletter: %w", err)
	}
	if m.Subject != subj {
		return nil, fmt.Errorf("%w: %s/%d is on another subject", ErrUnresolved, name, seq)
	}
	return m, nil
}

// Replay records in the delivery ledger that the dead letter at seq goes
// back to its consumer, sends its original back, and removes it from the
// DLQ. The republished message has the original's headers (the ce-*
// attributes) and body; its dedup id is unique to this dead letter.
func Replay(ctx context.Context, js jetstream.JetStream, seq uint64) error {
	l, err := Get(ctx, js, seq)
	if err != nil {
		return err
	}
	if l.Stage == "" || l.Consumer == "" {
		return fmt.Errorf("deadletter: %d has no consumer to go back to", seq)
	}
	original, err := Original(ctx, js, l)
	if err != nil {
		return fmt.Errorf("deadletter: replay %d: %w", seq, err)
	}
	h := nats.Header{}
	for k, v := range original.Header {
		if !strings.HasPrefix(k, "Dlq-") && !strings.HasPrefix(k, "Nats-") {
			h[k] = v
		}
	}
	h.Set(jetstream.MsgIDHeader, "replay:"+strconv.FormatUint(seq, 10)+":"+l.Header.Get(consume.HeaderStreamSeq))
	// The ledger's entry is stored first, so that it precedes the
	// attempts of the replay in the ledger (and in `invoicehub trace`);
	// written after the publish, the consumer's first attempt could come
	// before it. If the publish then fails, the dead letter stays, to be
	// replayed again, and the entry tells of a replay that was tried.
	if err := ledger.Replayed(ctx, js, l.Stage, l.Consumer, l.Header); err != nil {
		return fmt.Errorf("deadletter: replay %d: %w", seq, err)
	}
	msg := &nats.Msg{Subject: subject.Replay(l.Stage, l.Consumer), Header: h, Data: original.Data}
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("deadletter: replay %d: %w", seq, err)
	}
	return remove(ctx, js, seq)
}

// Purge removes the dead letters f selects (all of them with an empty
// filter) and returns how many.
func Purge(ctx context.Context, js jetstream.JetStream, f Filter) (uint64, error) {
	s, err := js.Stream(ctx, subject.DLQStream)
	if err != nil {
		return 0, fmt.Errorf("deadletter: %w", err)
	}
	before, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("deadletter: %w", err)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(f.subject())); err != nil {
		return 0, fmt.Errorf("deadletter: purge: %w", err)
	}
	after, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("deadletter: %w", err)
	}
	return before.State.Msgs - after.State.Msgs, nil
}

// Remove deletes the dead letter at seq.
func Remove(ctx context.Context, js jetstream.JetStream, seq uint64) error {
	return remove(ctx, js, seq)
}

func remove(ctx context.Context, js jetstream.JetStream, seq uint64) error {
	s, err := js.Stream(ctx, subject.DLQStream)
	if err != nil {
		return fmt.Errorf("deadletter: %w", err)
	}
	if err := s.DeleteMsg(ctx, seq); err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) || strings.Contains(err.Error(), noMessageFound) {
			return missing(s, seq)
		}
		return fmt.Errorf("deadletter: remove %d: %w", seq, err)
	}
	return nil
}

// noMessageFound is JetStream's answer to deleting a message that is not
// there (nats.go's DeleteMsg keeps only its text).
const noMessageFound = "err_code=10057"

// missing tells a dead letter that is gone (at or below the DLQ's last
// sequence: it was there) from one that never was.
func missing(s jetstream.Stream, seq uint64) error {
	if seq <= s.CachedInfo().State.LastSeq {
		return fmt.Errorf("%w: %d", ErrGone, seq)
	}
	return fmt.Errorf("%w: %d", ErrNotFound, seq)
}
