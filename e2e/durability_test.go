package e2e

import (
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

// TestDeployedServersSyncBeforeTheyAcknowledge: every nats-server
// configuration the project ships fsyncs a write before acknowledging it
// (deploy/nats/durability.conf), the acknowledgement ingress's 2xx waits for.
func TestDeployedServersSyncBeforeTheyAcknowledge(t *testing.T) {
	for _, v := range []string{"INGRESS_PASSWORD", "NORMALIZER_PASSWORD", "SINKS_PASSWORD", "ADMIN_PASSWORD"} {
		t.Setenv(v, "a-password-for-parsing")
	}
	t.Setenv("NATS_SERVER_NAME", "nats-1")
	for _, conf := range []string{"../deploy/nats/single.conf", "../deploy/nats/node.conf"} {
		opts, err := server.ProcessConfigFile(conf)
		if err != nil {
			t.Fatalf("%s: %v", conf, err)
		}
		if !opts.JetStream || !opts.SyncAlways {
			t.Errorf("%s: JetStream %v, sync always %v: a power cut would lose acknowledged webhooks", conf, opts.JetStream, opts.SyncAlways)
		}
	}
}
