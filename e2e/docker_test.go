//go:build docker

package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/nats-io/nats.go"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/invoicehub/invoicehub/ingress/provider"
	"github.com/invoicehub/invoicehub/internal/jstest"
)

// The docker tier runs the project's own FROM scratch images (built by
// deploy/build-images.sh; make test-docker does both) as containers on a
// private network: NATS with per-service users, ingress, normalizer, sinks.

const imageTag = "dev"

var passwords = map[string]string{
	"INGRESS_PASSWORD": "ingress-pw", "NORMALIZER_PASSWORD": "normalizer-pw",
	"SINKS_PASSWORD": "sinks-pw", "ADMIN_PASSWORD": "admin-pw",
}

func init() {
	os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true") // no reaper image to pull
	// Mapped ports are reached on loopback, never on a guessed gateway address.
	os.Setenv("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
}

// binds mounts host paths into a container.
func binds(b ...string) testcontainers.CustomizeRequestOption {
	return testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) { hc.Binds = append(hc.Binds, b...) })
}

// secretFile writes a password file a stage reads as INVOICEHUB_NATS_PASSWORD_FILE.
func secretFile(t *testing.T, pw string) string {
	p := filepath.Join(t.TempDir(), "nats-password")
	if err := os.WriteFile(p, []byte(pw), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func start(t *testing.T, image string, opts ...testcontainers.ContainerCustomizer) *testcontainers.DockerContainer {
	t.Helper()
	c, err := testcontainers.Run(t.Context(), "invoicehub/"+image+":"+imageTag, opts...)
	testcontainers.CleanupContainer(t, c)
	if err != nil {
		t.Fatalf("%s: %v", image, err)
	}
	return c
}

func stageEnv(user string, extra map[string]string) map[string]string {
	env := map[string]string{
		"INVOICEHUB_NATS_URL": "nats://nats:4222", "INVOICEHUB_NATS_USER": user,
		"INVOICEHUB_NATS_PASSWORD_FILE": "/run/secrets/nats-password", "INVOICEHUB_METRICS_ADDR": "off",
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

func TestContainers(t *testing.T) {
	t.Run("single node", testSingleNode)
	t.Run("cluster survives a node's death", testClusterNodeLoss)
}

// webhookPoster posts signed Qonto webhooks to an ingress container.
type webhookPoster struct {
	t        *testing.T
	endpoint string
	secret   string
	refused  *int // answers other than 200 that deliver retried
}

func (p webhookPoster) post(eventID, invoiceID, secret string) int {
	body := qontoWebhook(eventID, invoiceID, time.Now())
	qonto, _ := provider.Lookup("qonto")
	req, _ := http.NewRequest(http.MethodPost, p.endpoint+"/webhooks/qonto/acme", bytes.NewReader(body))
	req.Header = qonto.Sign(provider.Credentials{Secrets: []provider.Secret{provider.NewSecret([]byte(secret))}}, provider.Message{Body: body, At: time.Now()})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0 // connection refused or reset: the provider retries
	}
	resp.Body.Close()
	return resp.StatusCode
}

// deliver posts until ingress answers 200, as a provider retries a 503.
func (p webhookPoster) deliver(eventID, invoiceID string) {
	p.t.Helper()
	jstest.Eventually(p.t, 90*time.Second, "webhook "+eventID+" accepted", func() bool {
		if p.post(eventID, invoiceID, p.secret) == http.StatusOK {
			return true
		}
		*p.refused++
		return false
	})
}

// stages starts ingress, normalizer and sinks on nw against natsURL and
// returns the poster, the sink file and the normalizer container.
func stages(t *testing.T, nw *testcontainers.DockerNetwork, natsURL string, replicas string) (webhookPoster, string, *testcontainers.DockerContainer) {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "sources.yaml"), []byte("sources:\n  - {provider: qonto, id: acme, secrets: [{env: QONTO_ACME_SECRET}]}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "sinks.yaml"), []byte("sinks:\n  - {id: archive, type: file, options: {path: /out/invoices.jsonl}}\n"), 0o644)
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o777)
	os.Chmod(out, 0o777) // the stages run as nobody
	const qontoSecret = pipelineSecret
	common := map[string]string{"INVOICEHUB_NATS_URL": natsURL, "INVOICEHUB_STREAM_REPLICAS": replicas}
	with := func(m map[string]string) map[string]string {
		for k, v := range common {
			m[k] = v
		}
		return m
	}
	// The setup step, as compose runs it: streams and consumers, by the administrator.
	start(t, "invoicehub", testcontainers.WithCmd("setup"),
		testcontainers.WithEnv(stageEnv("admin", with(map[string]string{"INVOICEHUB_SINKS_FILE": "/etc/invoicehub/sinks.yaml"}))),
		binds(secretFile(t, passwords["ADMIN_PASSWORD"])+":/run/secrets/nats-password:ro", filepath.Join(dir, "sinks.yaml")+":/etc/invoicehub/sinks.yaml:ro"),
		network.WithNetwork([]string{"setup"}, nw), testcontainers.WithWaitStrategy(wait.ForExit().WithExitTimeout(2*time.Minute)))
	ingressC := start(t, "ingress",
		testcontainers.WithEnv(stageEnv("ingress", with(map[string]string{"INVOICEHUB_SOURCES_FILE": "/etc/invoicehub/sources.yaml", "QONTO_ACME_SECRET": qontoSecret}))),
		binds(secretFile(t, passwords["INGRESS_PASSWORD"])+":/run/secrets/nats-password:ro", filepath.Join(dir, "sources.yaml")+":/etc/invoicehub/sources.yaml:ro"),
		network.WithNetwork([]string{"ingress"}, nw), testcontainers.WithExposedPorts("8080/tcp"),
		testcontainers.WithWaitStrategy(wait.ForLog("listening"))) // a scratch image has no shell for port probes
	normalizerC := start(t, "normalizer",
		testcontainers.WithEnv(stageEnv("normalizer", with(map[string]string{}))),
		binds(secretFile(t, passwords["NORMALIZER_PASSWORD"])+":/run/secrets/nats-password:ro"),
		network.WithNetwork([]string{"normalizer"}, nw), testcontainers.WithWaitStrategy(wait.ForLog("normalizer started")))
	start(t, "sinks",
		testcontainers.WithEnv(stageEnv("sinks", with(map[string]string{"INVOICEHUB_SINKS_FILE": "/etc/invoicehub/sinks.yaml"}))),
		binds(secretFile(t, passwords["SINKS_PASSWORD"])+":/run/secrets/nats-password:ro", filepath.Join(dir, "sinks.yaml")+":/etc/invoicehub/sinks.yaml:ro", out+":/out"),
		network.WithNetwork([]string{"sinks"}, nw), testcontainers.WithWaitStrategy(wait.ForLog("sinks started")))
	endpoint, err := ingressC.PortEndpoint(ctx, "8080/tcp", "http")
	if err != nil {
		t.Fatal(err)
	}
	return webhookPoster{t: t, endpoint: endpoint, secret: qontoSecret, refused: new(int)}, filepath.Join(out, "invoices.jsonl"), normalizerC
}

func newNetwork(t *testing.T) *testcontainers.DockerNetwork {
	nw, err := network.New(t.Context())
	testcontainers.CleanupNetwork(t, nw)
	if err != nil {
		t.Fatal(err)
	}
	return nw
}

// testClusterNodeLoss: three NATS nodes, streams with three replicas; one
// node is killed while webhooks keep coming. Every webhook ingress
// accepted reaches the sink.
func testClusterNodeLoss(t *testing.T) {
	ctx := t.Context()
	nw := newNetwork(t)
	nodes := startCluster(t, nw)
	poster, sinkFile, _ := stages(t, nw, "nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222", "3")
	poster.deliver("evt-cluster-0", "inv-cluster-0")
	jstest.Eventually(t, 60*time.Second, "the first webhook through the cluster", func() bool {
		return len(sinkEvents(t, sinkFile)) == 2
	})
	zero := time.Duration(0)
	if err := nodes[1].Stop(ctx, &zero); err != nil { // SIGKILL nats-2
		t.Fatal(err)
	}
	const more = 10
	for i := 1; i <= more; i++ {
		poster.deliver(fmt.Sprintf("evt-cluster-%d", i), fmt.Sprintf("inv-cluster-%d", i))
	}
	jstest.Eventually(t, 180*time.Second, "every accepted webhook delivered with a node dead", func() bool {
		return len(sinkEvents(t, sinkFile)) == 2*(more+1)
	})
	t.Logf("%d webhooks accepted across the node's death, %d refused meanwhile (503 or reset) and retried", more+1, *poster.refused)
}

func testSingleNode(t *testing.T) {
	ctx := t.Context()
	nw := newNetwork(t)
	conf, _ := filepath.Abs("../deploy/nats")
	natsC := start(t, "nats-server",
		testcontainers.WithCmd("-c", "/etc/nats/single.conf"), testcontainers.WithEnv(passwords),
		binds(conf+":/etc/nats:ro"), // the image's /data belongs to nobody
		network.WithNetwork([]string{"nats"}, nw), testcontainers.WithExposedPorts("4222/tcp"),
		testcontainers.WithWaitStrategy(wait.ForLog("Server is ready")))
	poster, sinkFile, normalizerC := stages(t, nw, "nats://nats:4222", "1")

	if code := poster.post("evt-docker-1", "inv-docker-1", poster.secret); code != http.StatusOK {
		t.Fatalf("signed webhook: %d", code)
	}
	jstest.Eventually(t, 20*time.Second, "canonical events in the sinks container's file", func() bool {
		return len(sinkEvents(t, sinkFile)) == 2
	})
	if code := poster.post("evt-docker-forged", "inv-docker-2", "wrong"); code != http.StatusUnauthorized {
		t.Fatalf("forged webhook: %d", code)
	}

	// Each stage's NATS user may publish only its own subjects.
	natsURL, _ := natsC.PortEndpoint(ctx, "4222/tcp", "nats")
	denied := make(chan error, 1)
	nc, err := nats.Connect(natsURL, nats.UserInfo("ingress", passwords["INGRESS_PASSWORD"]),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { denied <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Publish("invoices.v1.paid.qonto.acme", []byte("forged canonical event"))
	nc.Flush()
	select {
	case err := <-denied:
		if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Fatalf("ingress publishing a canonical subject: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ingress's user published a canonical subject without a permissions violation")
	}

	// The normalizer is stopped; webhooks are still accepted and wait in
	// WEBHOOKS; once it is back, they are normalized.
	stop := 10 * time.Second
	if err := normalizerC.Stop(ctx, &stop); err != nil {
		t.Fatal(err)
	}
	if code := poster.post("evt-docker-3", "inv-docker-3", poster.secret); code != http.StatusOK {
		t.Fatalf("webhook while the normalizer is down: %d", code)
	}
	if err := normalizerC.Start(ctx); err != nil {
		t.Fatal(err)
	}
	jstest.Eventually(t, 30*time.Second, "the webhook accepted while the normalizer was down is delivered", func() bool {
		return len(sinkEvents(t, sinkFile)) == 4
	})

	// NATS itself stops: ingress answers 503 fast and stores nothing; after
	// the restart (file storage), everything accepted before and after is
	// delivered.
	if err := natsC.Stop(ctx, &stop); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if code := poster.post("evt-docker-4", "inv-docker-4", poster.secret); code != http.StatusServiceUnavailable {
		t.Fatalf("webhook while NATS is down: %d, want 503", code)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Fatalf("the 503 took %v", took)
	}
	if err := natsC.Start(ctx); err != nil {
		t.Fatal(err)
	}
	poster.deliver("evt-docker-4", "inv-docker-4") // the provider retries
	jstest.Eventually(t, 60*time.Second, "everything delivered after the NATS restart", func() bool {
		return len(sinkEvents(t, sinkFile)) == 6
	})
}

// startCluster starts three NATS nodes (nats-1..3) with deploy/nats's
// configuration and users.
func startCluster(t *testing.T, nw *testcontainers.DockerNetwork) []*testcontainers.DockerContainer {
	conf, _ := filepath.Abs("../deploy/nats")
	var nodes []*testcontainers.DockerContainer
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("nats-%d", i)
		env := map[string]string{"NATS_SERVER_NAME": name}
		for k, v := range passwords {
			env[k] = v
		}
		nodes = append(nodes, start(t, "nats-server",
			testcontainers.WithCmd("-c", "/etc/nats/node.conf"), testcontainers.WithEnv(env),
			binds(conf+":/etc/nats:ro"), // the image's /data belongs to nobody
			network.WithNetwork([]string{name}, nw), testcontainers.WithExposedPorts("4222/tcp"),
			testcontainers.WithWaitStrategy(wait.ForLog("Server is ready"))))
	}
	return nodes
}
