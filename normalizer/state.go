package normalizer

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// StateBucket is the JetStream KV bucket holding each invoice's State.
const StateBucket = "INVOICE_STATE"

// errConflict means another writer changed the state first.
var errConflict = errors.New("state changed concurrently")

// stateStore keeps invoice states in a KV bucket, written with
// compare-and-set on the revision read.
type stateStore struct{ kv jetstream.KeyValue }

func openStateStore(ctx context.Context, js jetstream.JetStream, replicas int) (*stateStore, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: StateBucket, Description: "invoicehub normalizer: last published state per invoice",
		History: 1, Storage: jetstream.FileStorage, Replicas: max(1, replicas),
	})
	if err != nil {
		return nil, fmt.Errorf("normalizer: state bucket: %w", err)
	}
	return &stateStore{kv: kv}, nil
}

// stateKey is the KV key of an invoice id: base64url keeps any id within
// the key alphabet.
func stateKey(invoiceID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(invoiceID))
}

// load returns the state and its revision; (nil, 0) when there is none.
func (s *stateStore) load(ctx context.Context, key string) (*State, uint64, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("normalizer: load state: %w", err)
	}
	var st State
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return nil, 0, fmt.Errorf("normalizer: state %s is corrupt: %w", key, err)
	}
	return &st, e.Revision(), nil
}

// store writes st if the key is still at revision (0: absent); it returns
// errConflict when another writer got there first.
func (s *stateStore) store(ctx context.Context, key string, st *State, revision uint64) error {
	value, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("normalizer: encode state: %w", err)
	}
	if revision == 0 {
		_, err = s.kv.Create(ctx, key, value)
	} else {
		_, err = s.kv.Update(ctx, key, value, revision)
	}
	switch {
	case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		return errConflict
	case err != nil:
		return fmt.Errorf("normalizer: store state: %w", err)
	}
	return nil
}
