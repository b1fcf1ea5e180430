package e2e

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natstest "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/invoicehub/invoicehub/internal/consume"
	"github.com/invoicehub/invoicehub/internal/stage"
	"github.com/invoicehub/invoicehub/normalizer"
	"github.com/invoicehub/invoicehub/schemas/ce"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

var rolePasswords = map[string]string{"ingress": "ingress-pw", "normalizer": "normalizer-pw", "sinks": "sinks-pw", "admin": "admin-pw"}

// authServer runs a nats-server configured with deploy/nats/auth.conf, as
// deployed, and the setup step run by its administrator.
func authServer(t *testing.T) *server.Server {
	t.Helper()
	for user, pw := range rolePasswords {
		t.Setenv(strings.ToUpper(user)+"_PASSWORD", pw)
	}
	auth, err := os.ReadFile("../deploy/nats/auth.conf")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "auth.conf"), auth, 0o644) // included relative to the including file
	conf := filepath.Join(dir, "nats.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("listen: 127.0.0.1:-1\njetstream { store_dir: %q }\ninclude ./auth.conf\n", filepath.Join(dir, "js"))), 0o644)
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	srv := natstest.RunServer(opts)
	t.Cleanup(srv.Shutdown)
	pwFile := filepath.Join(dir, "admin-password")
	os.WriteFile(pwFile, []byte(rolePasswords["admin"]), 0o600)
	sinksFile := filepath.Join(dir, "sinks.yaml")
	os.WriteFile(sinksFile, []byte("sinks:\n  - {id: archive, type: file, options: {path: /tmp/x.jsonl}}\n  - {id: ledger, type: sql, options: {driver: sqlite, dsn: /tmp/x.db}}\n"), 0o644)
	setup := exec.Command(filepath.Join(binDir, "invoicehub"), "setup")
	setup.Env = append(os.Environ(), "INVOICEHUB_NATS_URL="+srv.ClientURL(), "INVOICEHUB_NATS_USER=admin",
		"INVOICEHUB_NATS_PASSWORD_FILE="+pwFile, "INVOICEHUB_SINKS_FILE="+sinksFile)
	if out, err := setup.CombinedOutput(); err != nil {
		t.Fatalf("setup as admin: %v\n%s", err, out)
	}
	return srv
}

// roleConn connects as a stage does (its inbox prefix) with the role's
// user; async permission violations are collected.
type roleConn struct {
	nc         *nats.Conn
	js         jetstream.JetStream
	violations chan error
}

func connectAs(t *testing.T, srv *server.Server, role string) *roleConn {
	t.Helper()
	rc := &roleConn{violations: make(chan error, 16)}
	opts := append(stage.ConnectOptions(role, slog.New(slog.DiscardHandler)), nats.UserInfo(role, rolePasswords[role]),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { rc.violations <- err }))
	nc, err := nats.Connect(srv.ClientURL(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	rc.nc = nc
	rc.js, _ = jetstream.New(nc)
	return rc
}

// consumeThrough shows rc may bind its durable, and pull and ack through it.
func consumeThrough(t *testing.T, rc *roleConn, stream, durable string) {
	t.Helper()
	var c jetstream.Consumer
	allowed(t, "bind its durable", func() (err error) {
		c, err = rc.js.Consumer(short(t), stream, durable)
		return err
	})
	allowed(t, "pull and ack through it", func() error {
		batch, err := c.Fetch(1, jetstream.FetchMaxWait(2*time.Second), jetstream.FetchPriorityGroup(consume.PriorityGroup))
		if err != nil {
			return err
		}
		for m := range batch.Messages() {
			return m.DoubleAck(short(t))
		}
		return errors.New("no message")
	})
	allowed(t, "unpin its durable", func() error {
		resp, err := rc.nc.RequestWithContext(short(t), "$JS.API.CONSUMER.UNPIN."+stream+"."+durable, []byte(`{"group":"`+consume.PriorityGroup+`"}`))
		if err != nil {
			return err
		}
		if strings.Contains(string(resp.Data), `"error"`) {
			return fmt.Errorf("unpin: %s", resp.Data)
		}
		return nil
	})
	allowed(t, "ask its stream's leader for a message (the order fence)", func() error {
		resp, err := rc.nc.RequestWithContext(short(t), "$JS.API.STREAM.MSG.GET."+stream, []byte(`{"seq":1,"next_by_subj":">"}`))
		if err != nil {
			return err
		}
		if strings.Contains(string(resp.Data), `"error"`) && !strings.Contains(string(resp.Data), "10037") {
			return fmt.Errorf("message get: %s", resp.Data)
		}
		return nil
	})
	allowed(t, "read its stream with direct gets (the order fence)", func() error {
		msgs, err := jetstreamext.GetBatch(short(t), rc.js, stream, 1)
		if err != nil {
			return err
		}
		for _, err := range msgs {
			return err
		}
		return nil
	})
}

func short(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// refused is the context of an operation expected to be refused: the
// server drops a forbidden request at once, so its reply never comes.
func refused(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	t.Cleanup(cancel)
	return ctx
}

// denied runs op and expects the server to refuse it: op fails, and the
// server reports a permissions violation (not a mere timeout).
func (rc *roleConn) denied(t *testing.T, what string, op func() error) {
	t.Helper()
	for len(rc.violations) > 0 {
		<-rc.violations
	}
	err := op()
	if err == nil {
		t.Errorf("%s: allowed, want refused", what)
		return
	}
	if isViolation(err) {
		return
	}
	select {
	case v := <-rc.violations:
		if !isViolation(v) {
			t.Errorf("%s: %v, then %v; want a permissions violation", what, err, v)
		}
	case <-time.After(time.Second):
		t.Errorf("%s: %v, but no permissions violation", what, err)
	}
}

func isViolation(err error) bool {
	return strings.Contains(strings.ToLower(err.Error()), "permissions violation")
}

// allowed runs op and expects it to work.
func allowed(t *testing.T, what string, op func() error) {
	t.Helper()
	if err := op(); err != nil {
		t.Errorf("%s: %v, want allowed", what, err)
	}
}

// deniedSubscribe expects the server to refuse a subscription.
func (rc *roleConn) deniedSubscribe(t *testing.T, subj string) {
	t.Helper()
	sub, err := rc.nc.SubscribeSync(subj)
	if err == nil {
		rc.nc.Flush()
		select {
		case err = <-rc.violations:
		case <-time.After(2 * time.Second):
		}
		sub.Unsubscribe()
	}
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
		t.Errorf("subscribe %s: %v, want a permissions violation", subj, err)
	}
}

// management is what no stage may do to JetStream.
// operable shows rc may do what its stage's operators see: write its
// delivery ledger entries and read the DLQ's counts.
func operable(t *testing.T, rc *roleConn, stageName, consumer string) {
	t.Helper()
	allowed(t, "write its delivery ledger entry", func() error {
		_, err := rc.js.Publish(short(t), subject.Ledger(stageName, consumer, "qonto:acme:inv-1"), []byte("{}"))
		return err
	})
	allowed(t, "read the DLQ's counts", func() error {
		s, err := rc.js.Stream(short(t), subject.DLQStream)
		if err != nil {
			return err
		}
		_, err = s.Info(short(t), jetstream.WithSubjectFilter("dlq.>"))
		return err
	})
}

func management(t *testing.T, rc *roleConn, role string) {
	t.Helper()
	rc.denied(t, role+": create a stream", func() error {
		_, err := rc.js.CreateStream(refused(t), jetstream.StreamConfig{Name: "EVIL", Subjects: []string{"evil.>"}})
		return err
	})
	rc.denied(t, role+": update INVOICES (a subject transform forging canonical events)", func() error {
		_, err := rc.js.UpdateStream(refused(t), jetstream.StreamConfig{Name: subject.InvoicesStream, Subjects: []string{"invoices.v1.>", "forged.>"}})
		return err
	})
	rc.denied(t, role+": delete WEBHOOKS", func() error { return rc.js.DeleteStream(refused(t), subject.WebhooksStream) })
	rc.denied(t, role+": purge the DLQ", func() error {
		_, err := rc.nc.RequestWithContext(refused(t), "$JS.API.STREAM.PURGE.DLQ", nil)
		return err
	})
	rc.denied(t, role+": create a consumer", func() error {
		_, err := rc.js.CreateOrUpdateConsumer(refused(t), subject.InvoicesStream, jetstream.ConsumerConfig{Durable: "thief"})
		return err
	})
}

// TestRolesHaveExactlyTheirRights connects with each role's credentials
// from deploy/nats/auth.conf to a nats-server started with it, shows every
// forbidden operation refused and the stage's own work allowed.
func TestRolesHaveExactlyTheirRights(t *testing.T) {
	srv := authServer(t)
	raw, err := ce.NewRaw(ce.Raw{Provider: "qonto", Source: "acme", Type: "com.qonto.v1/client-invoices", ID: "perm-1", Time: time.Now(), Body: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("ingress", func(t *testing.T) {
		rc := connectAs(t, srv, "ingress")
		allowed(t, "publish a raw webhook and read its PubAck", func() error {
			_, err := ce.Publish(short(t), rc.js, subject.Webhook("qonto", "acme"), raw)
			return err
		})
		management(t, rc, "ingress")
		rc.denied(t, "read the state bucket", func() error { _, err := rc.js.KeyValue(refused(t), normalizer.StateBucket); return err })
		rc.denied(t, "read INVOICES", func() error { _, err := rc.js.Stream(refused(t), subject.InvoicesStream); return err })
		rc.denied(t, "publish a canonical event", func() error {
			_, err := rc.js.Publish(refused(t), "invoices.v1.paid.qonto.acme", []byte("forged"))
			return err
		})
		rc.denied(t, "write a delivery ledger entry", func() error {
			_, err := rc.js.Publish(refused(t), subject.Ledger("sink", "archive", "qonto:acme:inv-1"), []byte("{}"))
			return err
		})
		rc.deniedSubscribe(t, "_INBOX.>")
		rc.deniedSubscribe(t, stage.InboxPrefix("sinks")+".>")
		rc.deniedSubscribe(t, "invoices.v1.>")
	})

	t.Run("normalizer", func(t *testing.T) {
		rc := connectAs(t, srv, "normalizer")
		consumeThrough(t, rc, subject.WebhooksStream, "normalizer-default")
		var kv jetstream.KeyValue
		allowed(t, "bind its state bucket", func() (err error) { kv, err = rc.js.KeyValue(short(t), normalizer.StateBucket); return err })
		allowed(t, "write and read a state", func() error {
			if _, err := kv.Put(short(t), "key", []byte("{}")); err != nil {
				return err
			}
			_, err := kv.Get(short(t), "key")
			return err
		})
		allowed(t, "publish a canonical event", func() error {
			_, err := rc.js.Publish(short(t), "invoices.v1.updated.qonto.acme", []byte("{}"), jetstream.WithMsgID("perm-canonical"))
			return err
		})
		allowed(t, "read INVOICES with direct gets", func() error {
			msgs, err := jetstreamext.GetBatch(short(t), rc.js, subject.InvoicesStream, 10, jetstreamext.GetBatchSubject("invoices.v1.*.qonto.acme"))
			if err != nil {
				return err
			}
			for _, err := range msgs {
				return err
			}
			return nil
		})
		allowed(t, "publish its dead letter", func() error {
			_, err := rc.js.Publish(short(t), subject.DeadLetter("normalizer", "default"), []byte("x"))
			return err
		})
		operable(t, rc, "normalizer", "default")
		management(t, rc, "normalizer")
		rc.denied(t, "consume a sink's durable", func() error {
			c, err := rc.js.Consumer(refused(t), subject.InvoicesStream, "sink-archive")
			if err != nil {
				return err
			}
			_, err = c.Fetch(1, jetstream.FetchMaxWait(time.Second))
			return err
		})
		rc.denied(t, "publish a raw webhook", func() error {
			_, err := ce.Publish(refused(t), rc.js, subject.Webhook("qonto", "acme"), raw)
			return err
		})
		rc.deniedSubscribe(t, stage.InboxPrefix("ingress")+".>")
	})

	t.Run("sinks", func(t *testing.T) {
		rc := connectAs(t, srv, "sinks")
		consumeThrough(t, rc, subject.InvoicesStream, "sink-archive")
		allowed(t, "publish its dead letter", func() error {
			_, err := rc.js.Publish(short(t), subject.DeadLetter("sink", "archive"), []byte("x"))
			return err
		})
		operable(t, rc, "sink", "archive")
		management(t, rc, "sinks")
		rc.denied(t, "read the state bucket", func() error { _, err := rc.js.KeyValue(refused(t), normalizer.StateBucket); return err })
		rc.denied(t, "consume the normalizer's durable", func() error {
			_, err := rc.js.Consumer(refused(t), subject.WebhooksStream, "normalizer-default")
			return err
		})
		rc.denied(t, "publish a canonical event", func() error {
			_, err := rc.js.Publish(refused(t), "invoices.v1.paid.qonto.acme", []byte("forged"))
			return err
		})
		rc.denied(t, "publish another consumer's dead letter", func() error {
			_, err := rc.js.Publish(refused(t), subject.DeadLetter("normalizer", "default"), []byte("x"))
			return err
		})
		rc.deniedSubscribe(t, "_INBOX.>")
	})

	// Nothing any stage tried changed the streams.
	admin := connectAs(t, srv, "admin")
	for _, name := range []string{subject.WebhooksStream, subject.InvoicesStream, subject.DLQStream} {
		s, err := admin.js.Stream(short(t), name)
		if err != nil {
			t.Fatalf("%s after the roles' attempts: %v", name, err)
		}
		if name == subject.InvoicesStream && len(s.CachedInfo().Config.Subjects) != 2 {
			t.Errorf("INVOICES subjects changed: %v", s.CachedInfo().Config.Subjects)
		}
	}
	if _, err := admin.js.Stream(short(t), "EVIL"); err == nil {
		t.Error("a stage created a stream")
	}
}
