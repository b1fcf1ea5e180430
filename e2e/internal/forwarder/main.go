// Command forwarder is the end-to-end benchmark's baseline (make
// bench-e2e): the least a webhook receiver in front of JetStream can do.
// It reads each request's body, publishes it as is to one subject with a
// synchronous JetStream publish, and answers 200 after the PubAck (503 on
// error). No verification, no CloudEvent, no dedup id, no limits: a
// measure of what HTTP plus a JetStream round trip cost, not a program to
// run in front of anything.
package main

import (
	"context"
	"flag"
	"io"
	"log"
	"net/http"
	_ "net/http/pprof" // on http.DefaultServeMux, served only with -pprof
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "listen address")
	url := flag.String("nats", nats.DefaultURL, "NATS URL")
	subj := flag.String("subject", "webhooks.qonto.acme", "subject to publish to (a stream must capture it)")
	timeout := flag.Duration("timeout", 750*time.Millisecond, "publish deadline")
	pprofAddr := flag.String("pprof", "", "serve Go's profiler on this address (off when empty)")
	flag.Parse()
	if *pprofAddr != "" {
		go func() { log.Print(http.ListenAndServe(*pprofAddr, nil)) }() // net/http/pprof's handlers
	}

	nc, err := nats.Connect(*url)
	if err != nil {
		log.Fatalf("forwarder: connect %s: %v", *url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatalf("forwarder: %v", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {})
	mux.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), *timeout) // as ingress waits
		defer cancel()
		if _, err := js.Publish(ctx, *subj, body); err != nil {
			http.Error(w, "not stored", http.StatusServiceUnavailable)
			return
		}
	})
	log.Printf("forwarder: %s -> %s on %s", *addr, *subj, *url)
	log.Fatal(http.ListenAndServe(*addr, mux))
}
