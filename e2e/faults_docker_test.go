//go:build faults && docker

package e2e

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/internal/jstest"
	"github.com/invoicehub/invoicehub/schemas"
)

// TestFaultsCluster is the fault suite's cluster scenario, on the
// project's own images: three NATS nodes, streams with three replicas, the
// stages in containers; a node is killed (SIGKILL) while webhooks keep
// coming. Its row joins the fault suite's table.
func TestFaultsCluster(t *testing.T) {
	nw := newNetwork(t)
	nodes := startCluster(t, nw)
	poster, sinkFile, _ := stages(t, nw, "nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222", "3")
	natsURL, err := nodes[0].PortEndpoint(t.Context(), "4222/tcp", "nats")
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(natsURL, nats.UserInfo("admin", passwords["ADMIN_PASSWORD"]))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)

	ws := distinctWebhooks("cluster", faultWebhooks/4)
	d := newDriver(poster.endpoint, poster.secret, 3*time.Minute)
	sent := make(chan struct{})
	go func() { d.send(ws, faultRate/4); close(sent) }()
	waitProgress(t, func() int { return len(d.acceptedIDs()) }, len(ws)/3)
	zero := time.Duration(0)
	if err := nodes[1].Stop(t.Context(), &zero); err != nil { // SIGKILL nats-2
		t.Fatal(err)
	}
	killed := time.Now()
	<-sent
	want := map[schemas.Kind]bool{schemas.KindCreated: true, schemas.KindUpdated: true, schemas.KindSent: true}
	count := func() (lost, duplicated, extra int) {
		accepted := d.acceptedIDs()
		byID := map[string]int{}
		have := map[string]int{}
		events, err := readInvoices(js)
		if err != nil { // the cluster is electing: count again
			return len(accepted), 0, 0
		}
		for _, e := range events {
			byID[e.ID]++
			if !accepted[e.RawID] || !want[e.Kind] {
				extra++
				continue
			}
			have[e.RawID]++
		}
		files := map[string]int{}
		for _, e := range sinkLines(t, sinkFile) {
			files[e.Data.Event.ProviderEventID]++
		}
		for _, n := range byID {
			duplicated += n - 1
		}
		for _, n := range fileSinkIDs(t, sinkFile) {
			duplicated += n - 1
		}
		for raw := range accepted {
			if have[raw] != len(want) || files[raw] != len(want) {
				lost++
			}
		}
		return lost, duplicated, extra
	}
	r := faultRow{scenario: "3-node cluster, a node SIGKILLed (containers)", sent: len(ws), accepted: len(d.acceptedIDs())}
	jstest.Eventually(t, 3*time.Minute, "every accepted webhook delivered with a node dead", func() bool {
		r.lost, _, _ = count()
		return r.lost == 0
	})
	r.recovery = time.Since(killed)
	r.lost, r.duplicated, r.extra = count()
	finish(t, r)
}
