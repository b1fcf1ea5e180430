package ce

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

// Raw describes a verified webhook to be archived as a raw CloudEvent.
type Raw struct {
	Provider string
	Source   string
	// Type is the CloudEvent type, e.g. com.qonto.v1/client-invoices.
	Type string
	// ID is the provider's event id, or a hash of the delivery where the
	// provider has none; it is also the JetStream dedup id.
	ID string
	// Time is when the provider says the event happened, or when it arrived.
	Time time.Time
	// Body is the request body, byte-for-byte.
	Body []byte
	// ContentType is the request's media type; default application/json.
	ContentType string
	// VerifiedKey is the index of the secret that verified the webhook.
	VerifiedKey int
	// ClockSkew is signed timestamp minus arrival time (zero if unsigned).
	ClockSkew time.Duration
	// Traceparent is the W3C trace context of the webhook's span, if any.
	Traceparent string
}

// DottedName turns a provider's CamelCase event name into the dotted lower
// case raw CloudEvent types use: InvoiceSent → invoice.sent (so Moxie's
// InvoiceSent is com.moxie.invoice.sent).
func DottedName(camel string) string {
	var b strings.Builder
	for i, r := range camel {
		if unicode.IsUpper(r) && i > 0 {
			b.WriteByte('.')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// RawSource returns the CloudEvent source of a provider's raw events:
// /webhooks/<provider>/<source>.
func RawSource(provider, source string) string {
	return "/webhooks/" + provider + "/" + source
}

// NewRaw builds the raw CloudEvent for r; the body is carried unchanged.
// ToMsg validates it. Ingress writes the message with RawMsg.
func NewRaw(r Raw) (event.Event, error) {
	e := event.New()
	e.SetID(r.ID)
	e.SetSource(RawSource(r.Provider, r.Source))
	e.SetType(r.Type)
	e.SetTime(r.Time.UTC())
	e.SetExtension(ExtProvider, r.Provider)
	e.SetExtension(ExtSource, r.Source)
	e.SetExtension(ExtVerifiedKey, strconv.Itoa(r.VerifiedKey))
	e.SetExtension(ExtClockSkewMS, strconv.FormatInt(r.ClockSkew.Milliseconds(), 10))
	if r.Traceparent != "" {
		e.SetExtension(ExtTraceParent, r.Traceparent)
	}
	ct := r.ContentType
	if ct == "" {
		ct = event.ApplicationJSON
	}
	// []byte data is stored as is: no re-encoding of the provider's body.
	if err := e.SetData(ct, r.Body); err != nil {
		return event.Event{}, fmt.Errorf("ce: raw data: %w", err)
	}
	return e, nil // validated by ToMsg, before anything is published
}

// RawMsg is the message ToMsg writes for NewRaw(r), written directly
// (TestRawMsgIsToMsgOfNewRaw and FuzzRawMsg hold the two equal, the SDK's
// trimming and URI escaping included): ingress writes one per
// webhook, and building the SDK's event first and validating it took
// about three times as long. It refuses what the SDK's validation refuses of a
// raw event (a blank id or type, a content type that is not an RFC 2046
// media type, a source that is not a URI reference), and a blank
// provider or source.
func RawMsg(subj string, r Raw) (*nats.Msg, error) {
	// The SDK's setters trim the id, the type and the content type (a blank
	// content type is then left out), not the source.
	id, typ := strings.TrimSpace(r.ID), strings.TrimSpace(r.Type)
	for _, required := range [...][2]string{{"id", id}, {"type", typ}, {"provider", strings.TrimSpace(r.Provider)}, {"source", strings.TrimSpace(r.Source)}} {
		if required[1] == "" {
			return nil, fmt.Errorf("ce: invalid event: raw event without %s", required[0])
		}
	}
	ct := r.ContentType
	if ct == "" {
		ct = event.ApplicationJSON
	}
	ct = strings.TrimSpace(ct)
	if _, _, err := mime.ParseMediaType(ct); ct != "" && err != nil {
		return nil, fmt.Errorf("ce: invalid event: datacontenttype %q: %w", ct, err)
	}
	source, err := uriRef(RawSource(r.Provider, r.Source))
	if err != nil {
		return nil, fmt.Errorf("ce: invalid event: source: %w", err)
	}
	attrs := [...][2]string{
		{"specversion", event.CloudEventsVersionV1}, {"id", id}, {"source", source}, {"type", typ},
		{"time", rawTime(r.Time)}, {"datacontenttype", ct},
		{ExtProvider, r.Provider}, {ExtSource, r.Source}, {ExtVerifiedKey, strconv.Itoa(r.VerifiedKey)},
		{ExtClockSkewMS, strconv.FormatInt(r.ClockSkew.Milliseconds(), 10)}, {ExtTraceParent, r.Traceparent},
	}
	h := make(nats.Header, len(attrs)+1)
	values := make([]string, 0, len(attrs)+1) // one backing array for every header's value
	set := func(name, v string) {
		values = append(values, v)
		h[name] = values[len(values)-1 : len(values) : len(values)]
	}
	for _, kv := range attrs {
		if kv[1] != "" {
			set(headerName(kv[0]), kv[1])
		}
	}
	set(jetstream.MsgIDHeader, id)
	return &nats.Msg{Subject: subj, Header: h, Data: r.Body}, nil
}

// uriRef is s as the SDK writes a URI reference: parsed and written
// again, which escapes what needs it. A path of unreserved characters, as
// every source of ingress's configuration is, reads back as it is and is
// not parsed.
func uriRef(s string) (string, error) {
	if !strings.ContainsFunc(s, func(c rune) bool {
		return !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.ContainsRune("/-._~", c))
	}) {
		return s, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

// rawTime is the ce-time of a raw event: none for a zero time, as the SDK
// leaves it.
func rawTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// CanonicalSource is the CloudEvent source of canonical events.
func CanonicalSource(provider, source string) string {
	return "/invoicehub/normalizer/" + provider + "/" + source
}

// idNamespace scopes canonical event ids (UUIDv5) to invoicehub.
var idNamespace = uuid.MustParse("8e3f3a4c-5d1b-4c2e-9a7f-3b6d2c1e0f90")

// CanonicalID returns the deterministic id of the canonical event of kind
// derived from raw event rawID: reprocessing the same raw event yields the
// same ids, so JetStream drops the repeats.
func CanonicalID(provider, source, rawID string, kind schemas.Kind) string {
	return uuid.NewSHA1(idNamespace, []byte(provider+"\x00"+source+"\x00"+rawID+"\x00"+string(kind))).String()
}

// NewCanonical builds the canonical CloudEvent for d, which must be valid
// against the schema. rawID is the id of the raw event it was derived from;
// version orders the invoice's states (see InvoiceVersion).
func NewCanonical(d schemas.EventData, rawID string, version int64, traceparent string) (event.Event, error) {
	data, err := schemas.Marshal(d)
	if err != nil {
		return event.Event{}, err
	}
	return newCanonical(d, data, rawID, version, traceparent)
}

// CanonicalMsgs builds the messages of one change's events, ds, each on
// its subject (subject.Invoice of its kind, provider and source): what
// ToMsg writes for NewCanonical of each (TestCanonicalMsgsAreToMsgOfNewCanonical
// and FuzzCanonicalMsgs hold them equal), written directly, without the
// SDK's event, once per change in the normalizer. ds share the invoice
// and the event information and differ only in the kind (an enum value)
// and the payment (set on payment_received), so the schema and scale
// checks of one of them, the one with a payment if any, cover them all:
// the set is validated once instead of once per kind, and the invoice,
// most of each event's data, is encoded once for all of them. invoice is
// that encoding, schemas.EncodeJSON(ds[0].Invoice), when the caller has it
// already (the normalizer keeps it for the invoice's state); nil, it is
// encoded here.
func CanonicalMsgs(ds []schemas.EventData, invoice []byte, rawID string, version int64, traceparent string) ([]*nats.Msg, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	if invoice == nil {
		var err error
		if invoice, err = schemas.EncodeJSON(ds[0].Invoice); err != nil {
			return nil, fmt.Errorf("ce: canonical data: %w", err)
		}
	}
	rep := 0
	for i, d := range ds {
		if d.Payment != nil {
			rep = i
		}
	}
	msgs := make([]*nats.Msg, len(ds))
	var heads headCache
	for i, d := range ds {
		data, err := encodeWithInvoice(d, invoice, &heads)
		if err != nil {
			return nil, err
		}
		if i == rep {
			if err := errors.Join(schemas.Validate(data), d.Check()); err != nil {
				return nil, err
			}
		}
		if msgs[i], err = canonicalMsg(d, data, rawID, version, traceparent); err != nil {
			return nil, err
		}
	}
	return msgs, nil
}

// canonicalMsg writes the message of one canonical event whose data is
// already encoded and validated: the headers newCanonical's event gets
// from ToMsg, trimmed and refused as the SDK's setters and validation
// trim and refuse them.
func canonicalMsg(d schemas.EventData, data []byte, rawID string, version int64, traceparent string) (*nats.Msg, error) {
	inv := d.Invoice
	source, err := uriRef(CanonicalSource(inv.Provider, inv.Source))
	if err != nil {
		return nil, fmt.Errorf("ce: canonical event: source: %w", err)
	}
	id, v := CanonicalID(inv.Provider, inv.Source, rawID, d.Event.Kind), strconv.FormatInt(version, 10)
	h := make(nats.Header, 16)
	values := make([]string, 0, 16) // one backing array for every header's value
	set := func(name, v string) {
		values = append(values, v)
		h[name] = values[len(values)-1 : len(values) : len(values)]
	}
	// The attributes the SDK's setters keep: a subject or a time left
	// empty is absent.
	for _, kv := range [...][2]string{
		{"specversion", event.CloudEventsVersionV1}, {"id", id}, {"source", source}, {"type", d.Event.Kind.EventType()},
		{"subject", strings.TrimSpace(inv.ID)}, {"time", rawTime(d.Event.OccurredAt)}, {"dataschema", schemaURL},
		{"datacontenttype", event.ApplicationJSON},
	} {
		if kv[1] != "" {
			set(headerName(kv[0]), kv[1])
		}
	}
	// The extensions, empty or not; the number only where a header can
	// carry it, the trace context only when there is one.
	for _, kv := range [...][2]string{
		{ExtProvider, inv.Provider}, {ExtSource, inv.Source}, {ExtPartitionKey, inv.ID}, {ExtInvoiceVersion, v}, {ExtSequenceDeprecated, v},
	} {
		set(headerName(kv[0]), kv[1])
	}
	if headerSafe(inv.Number) {
		set(headerName(ExtInvoiceNumber), inv.Number)
	}
	if traceparent != "" {
		set(headerName(ExtTraceParent), traceparent)
	}
	set(jetstream.MsgIDHeader, id)
	return &nats.Msg{Subject: subject.Invoice(string(d.Event.Kind), inv.Provider, inv.Source), Header: h, Data: data}, nil
}

// schemaURL is the dataschema attribute as the SDK writes it: SchemaURL
// parsed and written again.
var schemaURL = func() string {
	u, err := url.Parse(schemas.SchemaURL)
	if err != nil {
		panic(err)
	}
	return u.String()
}()

// encodeWithInvoice encodes d as json.Marshal does, its invoice given
// already encoded: the members before and after the invoice are encoded
// as they are and the invoice's bytes put between them
// (TestSetEncodesAsEventData holds the two equal). heads keeps the
// members before the invoice from one event of a set to the next.
func encodeWithInvoice(d schemas.EventData, invoice []byte, heads *headCache) ([]byte, error) {
	head, err := heads.head(d)
	if err != nil {
		return nil, fmt.Errorf("ce: canonical data: %w", err)
	}
	data := make([]byte, 0, len(head)+len(invoice)+64)
	data = append(append(data, head[:len(head)-1]...), `,"invoice":`...)
	data = append(data, invoice...)
	if d.Payment != nil {
		payment, err := schemas.EncodeJSON(d.Payment)
		if err != nil {
			return nil, fmt.Errorf("ce: canonical data: %w", err)
		}
		data = append(append(data, `,"payment":`...), payment...)
	}
	return append(data, '}'), nil
}

// eventHead is what precedes the invoice in canonical data.
type eventHead struct {
	SchemaVersion string            `json:"schema_version"`
	Event         schemas.EventInfo `json:"event"`
}

// headCache encodes the heads of a set's events, which differ in their
// kind only: the first is encoded, the next ones are it with another
// kind, where their schema version and event information are the same
// and the encoding starts as expected (else they are encoded too).
type headCache struct {
	first    eventHead
	enc      []byte // first's encoding
	kindFrom int    // where first's kind starts in enc (its JSON string), 0 when the layout is not the one expected
	kindTo   int
}

func (c *headCache) head(d schemas.EventData) ([]byte, error) {
	h := eventHead{d.SchemaVersion, d.Event}
	if c.kindFrom > 0 && sameButKind(c.first, h) {
		kind, err := json.Marshal(h.Event.Kind)
		if err != nil {
			return nil, err
		}
		return slices.Concat(c.enc[:c.kindFrom], kind, c.enc[c.kindTo:]), nil
	}
	enc, err := schemas.EncodeJSON(h)
	if err != nil || c.enc != nil {
		return enc, err
	}
	c.first, c.enc = h, enc
	sv, err1 := json.Marshal(h.SchemaVersion)
	kind, err2 := json.Marshal(h.Event.Kind)
	prefix := slices.Concat([]byte(`{"schema_version":`), sv, []byte(`,"event":{"kind":`))
	if err1 == nil && err2 == nil && bytes.HasPrefix(enc, slices.Concat(prefix, kind)) {
		c.kindFrom, c.kindTo = len(prefix), len(prefix)+len(kind)
	}
	return enc, nil
}

// sameButKind reports whether a and b encode alike but for the kind.
func sameButKind(a, b eventHead) bool {
	x, y := a.Event, b.Event
	return a.SchemaVersion == b.SchemaVersion && x.OccurredAt == y.OccurredAt && x.ProviderEventID == y.ProviderEventID &&
		x.ProviderEventType == y.ProviderEventType && x.PreviousStatus == y.PreviousStatus && slices.Equal(x.ChangedFields, y.ChangedFields)
}

func newCanonical(d schemas.EventData, data []byte, rawID string, version int64, traceparent string) (event.Event, error) {
	inv := d.Invoice
	e := event.New()
	e.SetID(CanonicalID(inv.Provider, inv.Source, rawID, d.Event.Kind))
	e.SetSource(CanonicalSource(inv.Provider, inv.Source))
	e.SetType(d.Event.Kind.EventType())
	e.SetSubject(inv.ID)
	e.SetTime(d.Event.OccurredAt.UTC())
	e.SetDataSchema(schemas.SchemaURL)
	e.SetExtension(ExtProvider, inv.Provider)
	e.SetExtension(ExtSource, inv.Source)
	e.SetExtension(ExtPartitionKey, inv.ID)
	e.SetExtension(ExtInvoiceVersion, strconv.FormatInt(version, 10))
	e.SetExtension(ExtSequenceDeprecated, strconv.FormatInt(version, 10))
	if headerSafe(inv.Number) {
		e.SetExtension(ExtInvoiceNumber, inv.Number)
	}
	if traceparent != "" {
		e.SetExtension(ExtTraceParent, traceparent)
	}
	// The data is already JSON: set as it is, not through SetData, which
	// would encode it again (and scan it) for nothing.
	e.SetDataContentType(event.ApplicationJSON)
	e.DataEncoded = data
	if err := e.Validate(); err != nil {
		return event.Event{}, fmt.Errorf("ce: canonical event: %w", err)
	}
	return e, nil
}

// InvoiceVersion returns the orderable version of an invoice state: the
// provider's update time in microseconds since the Unix epoch. Sinks keep
// the state with the highest version.
func InvoiceVersion(updatedAt time.Time) int64 { return updatedAt.UnixMicro() }

// ParseInvoiceVersion reads the invoice version of a canonical event:
// invoiceversion, or, on an event published before it existed, sequence.
func ParseInvoiceVersion(e *event.Event) (int64, error) {
	name := ExtInvoiceVersion
	s := StringExtension(e, name)
	if s == "" {
		name = ExtSequenceDeprecated
		s = StringExtension(e, name)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("ce: %s %q: %w", name, s, err)
	}
	return n, nil
}

// headerSafe reports whether s can be an extension carried in a NATS
// header as it is: not empty, at most 128 bytes, no control character.
func headerSafe(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}
