package normalizer

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/internal/consume"

	"github.com/invoicehub/invoicehub/schemas"
)

// StateBucket is the JetStream KV bucket holding each invoice's State.
const StateBucket = "INVOICE_STATE"

// maxApplied bounds State.Applied: a repeat of an older raw event is
// recognised by its version instead (older than the state: stale).
const maxApplied = 32

// State is what the normalizer keeps of an invoice, the value of its key
// in the state bucket: the post-image of the last change, its version, the
// raw events it has applied, and, until their events are confirmed
// published, the announcement of the last change. A change of state and
// its announcement are written together in one compare-and-set; the events
// are published after, then the announcement is cleared. Whoever next
// reads a state with an announcement publishes it first, so no change is
// ever left unannounced, and none announced twice (see
// docs/ARCHITECTURE.md, "Normalizer state").
type State struct {
	Invoice schemas.Invoice `json:"invoice"`
	// Sequence is the version of Invoice (mapper.Result.Version).
	Sequence int64 `json:"sequence"`
	Deleted  bool  `json:"deleted,omitempty"`
	// Applied lists the ids of the raw events whose changes the state
	// holds, newest last: a repeat of one is never announced again.
	Applied []string `json:"applied,omitempty"`
	// Pending is the last change's announcement, while its events may not
	// all be published.
	Pending *Announcement `json:"pending,omitempty"`
	// LegacyRawID is the raw event of the last change in states written
	// before Applied existed; load moves it into Applied.
	LegacyRawID string `json:"raw_id,omitempty"`

	// invoiceJSON is Invoice's JSON once announced has encoded it for the
	// change's events, so that writing the state (encode) does not encode
	// it again. A copy of the state keeps it: a copy must keep its Invoice
	// too, or clear it.
	invoiceJSON []byte
}

// stateRest is State's members after the invoice, as State encodes them
// (TestStateRestIsStateButTheInvoice).
type stateRest struct {
	Sequence    int64         `json:"sequence"`
	Deleted     bool          `json:"deleted,omitempty"`
	Applied     []string      `json:"applied,omitempty"`
	Pending     *Announcement `json:"pending,omitempty"`
	LegacyRawID string        `json:"raw_id,omitempty"`
}

// encode is schemas.EncodeJSON(s), the invoice's JSON put in as announced
// encoded it, if it did (TestStateEncodesAsEncodeJSON): one encoding of
// the invoice per change instead of three (the events, the state with
// its announcement, the state cleared).
func (s *State) encode() ([]byte, error) {
	if s.invoiceJSON == nil {
		return schemas.EncodeJSON(s)
	}
	rest, err := schemas.EncodeJSON(stateRest{s.Sequence, s.Deleted, s.Applied, s.Pending, s.LegacyRawID})
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(`{"invoice":,`)+len(s.invoiceJSON)+len(rest))
	out = append(append(append(out, `{"invoice":`...), s.invoiceJSON...), ',')
	return append(out, rest[1:]...), nil // rest is an object with a sequence: never {}
}

// Announcement is what the events of a change are built from, with the
// state's post-image: the same announcement always builds the same
// events, ids included.
type Announcement struct {
	RawID       string            `json:"raw_id"`
	Kinds       []schemas.Kind    `json:"kinds"`
	Info        schemas.EventInfo `json:"info"`
	Payment     *schemas.Payment  `json:"payment,omitempty"`
	Traceparent string            `json:"traceparent,omitempty"`
	// WrittenAt is when the announcement was written (or last renewed):
	// its events were published, if at all, shortly after.
	WrittenAt time.Time `json:"written_at"`
}

// applied reports whether the state holds raw event id's change.
func (s *State) applied(id string) bool { return s != nil && slices.Contains(s.Applied, id) }

// withApplied returns the applied list with id appended, bounded.
func (s *State) withApplied(id string) []string {
	var out []string
	if s != nil {
		out = slices.Clone(s.Applied)
	}
	out = append(out, id)
	if len(out) > maxApplied {
		out = out[len(out)-maxApplied:]
	}
	return out
}

// errConflict means another writer changed the state first.
var errConflict = errors.New("state changed concurrently")

// stateStore keeps invoice states in a KV bucket, written with
// compare-and-set on the revision read. It remembers which keys it saw
// hold a state (unseen).
type stateStore struct {
	kv       jetstream.KeyValue
	existing *existence
}

// StateBucketConfig is the state bucket's configuration.
func StateBucketConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket: StateBucket, Description: "invoicehub normalizer: each invoice's state and pending announcement",
		History: 1, Storage: jetstream.FileStorage, Replicas: max(1, replicas),
	}
}

// EnsureStateBucket creates the state bucket or updates it: the setup
// step's work, with an administrator's rights.
func EnsureStateBucket(ctx context.Context, js jetstream.JetStream, replicas int) error {
	if _, err := js.CreateOrUpdateKeyValue(ctx, StateBucketConfig(replicas)); err != nil {
		return fmt.Errorf("normalizer: state bucket: %w", err)
	}
	return nil
}

// openStateStore binds the state bucket setup created, or creates it
// where this process may (dev mode, tests).
// It waits for JetStream as the consumers do (consume.UntilReady).
func openStateStore(ctx context.Context, js jetstream.JetStream, replicas int, log *slog.Logger) (*stateStore, error) {
	var kv jetstream.KeyValue
	err := consume.UntilReady(ctx, log, "state bucket", func() (err error) {
		kv, err = js.KeyValue(ctx, StateBucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			kv, err = js.CreateKeyValue(ctx, StateBucketConfig(replicas))
		}
		if err != nil {
			return fmt.Errorf("normalizer: state bucket %s (run `invoicehub setup`): %w", StateBucket, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &stateStore{kv: kv, existing: newExistence(existenceCapacity)}, nil
}

// stateKey is the KV key of an invoice id: base64url keeps any id within
// the key alphabet. An id of more than maxKeyedID bytes (prepare refuses
// them first) becomes "=" and the hex SHA-256 of its bytes, which base64url
// never writes: no id makes a key the server refuses.
func stateKey(invoiceID string) string {
	if len(invoiceID) > maxKeyedID {
		sum := sha256.Sum256([]byte(invoiceID))
		return "=" + hex.EncodeToString(sum[:])
	}
	return base64.RawURLEncoding.EncodeToString([]byte(invoiceID))
}

// maxKeyedID is the longest invoice id whose state key is its base64url
// (384 bytes: 512 characters).
const maxKeyedID = 384

// load returns the state and its revision; (nil, 0) when there is none.
func (s *stateStore) load(ctx context.Context, key string) (*State, uint64, error) {
	ctx, cancel := roundTrip(ctx)
	defer cancel()
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("normalizer: load state: %w", err)
	}
	st, err := decodeState(key, e.Value())
	if err != nil {
		return nil, 0, consume.PermanentClass("corrupt_state", fmt.Errorf("normalizer: state %s: %w", key, err))
	}
	if len(st.Applied) == 0 && st.LegacyRawID != "" {
		st.Applied, st.LegacyRawID = []string{st.LegacyRawID}, ""
	}
	s.existing.saw(key)
	return &st, e.Revision(), nil
}

// stateMembers are the members a state may have: State's JSON names, read
// from its tags.
var stateMembers = func() map[string]bool {
	members := map[string]bool{}
	t := reflect.TypeFor[State]()
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" {
			members[name] = true
		}
	}
	return members
}()

// decodeState reads the value at key as a state, failing closed: a value
// with a member no state has, or whose invoice is not the key's, is
// refused, never read as "no state". Anything able to write the key (an
// acknowledgement stored there, a state copied from another invoice)
// would otherwise make an older change look new. The caller dead-letters
// the raw event: an operator repairs the key, then replays it.
func decodeState(key string, value []byte) (State, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(value, &members); err != nil {
		return State{}, fmt.Errorf("not a state: %w", err)
	}
	for name := range members {
		if !stateMembers[name] {
			return State{}, fmt.Errorf("not a state: it has %.40q", name)
		}
	}
	var st State
	if err := json.Unmarshal(value, &st); err != nil {
		return State{}, fmt.Errorf("not a state: %w", err)
	}
	if st.Invoice.ID == "" || stateKey(st.Invoice.ID) != key {
		return State{}, fmt.Errorf("not this key's state: it holds invoice %.80q", st.Invoice.ID)
	}
	return st, nil
}

// unseen reports whether key was never seen holding a state here: the
// caller may try storeNew before reading it.
func (s *stateStore) unseen(key string) bool { return !s.existing.seen(key) }

// store writes st if the key is still at revision (0: absent, or deleted)
// and returns the new revision; errConflict when another writer got there
// first.
func (s *stateStore) store(ctx context.Context, key string, st *State, revision uint64) (uint64, error) {
	return s.write(ctx, key, st, func(ctx context.Context, value []byte) (uint64, error) {
		if revision == 0 {
			return s.kv.Create(ctx, key, value)
		}
		return s.kv.Update(ctx, key, value, revision)
	})
}

// storeNew writes st as the key's first value, in one round trip whatever
// the answer: errConflict when the key has any value already (a deletion
// marker too), and it must be read. KeyValue.Create would read it itself
// on a refusal, a second round trip.
func (s *stateStore) storeNew(ctx context.Context, key string, st *State) (uint64, error) {
	return s.write(ctx, key, st, func(ctx context.Context, value []byte) (uint64, error) { return s.kv.Update(ctx, key, value, 0) })
}

// write encodes st, writes it with put and classifies the answer.
func (s *stateStore) write(ctx context.Context, key string, st *State, put func(ctx context.Context, value []byte) (uint64, error)) (uint64, error) {
	value, err := st.encode()
	if err != nil {
		return 0, fmt.Errorf("normalizer: encode state: %w", err)
	}
	ctx, cancel := roundTrip(ctx)
	defer cancel()
	rev, err := put(ctx, value)
	switch {
	case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		return 0, errConflict
	case errors.Is(err, nats.ErrMaxPayload):
		return 0, consume.PermanentClass("payload_too_large", fmt.Errorf("normalizer: store state: %w", err))
	case err != nil:
		return 0, fmt.Errorf("normalizer: store state: %w", err)
	}
	s.existing.saw(key)
	return rev, nil
}
