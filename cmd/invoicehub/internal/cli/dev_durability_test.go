package cli

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

// TestDevNATSFollowsTheDurabilityPolicy: the embedded server syncs as
// deploy/nats/durability.conf makes every deployed server sync.
func TestDevNATSFollowsTheDurabilityPolicy(t *testing.T) {
	policy, err := filepath.Abs("../../../../deploy/nats/durability.conf")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rel, err := filepath.Rel(dir, policy) // nats-server includes relative paths only
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, []byte("jetstream {\n  include \""+rel+"\"\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deployed, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if !deployed.SyncAlways {
		t.Fatalf("%s does not make JetStream sync before it acknowledges", policy)
	}
	dev := devNATSOptions(devConfig{dataDir: t.TempDir()})
	if dev.SyncAlways != deployed.SyncAlways {
		t.Fatalf("invoicehub dev: SyncAlways %v, deployed servers %v", dev.SyncAlways, deployed.SyncAlways)
	}
}
