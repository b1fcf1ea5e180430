// Command bare is the end-to-end benchmark's baseline (make bench-e2e):
// the least each hop of a webhook pipeline on JetStream can do, one
// message per hop, no verification, no CloudEvent, no dedup id, no
// state, no limits. A measure of what HTTP and JetStream round trips cost
// on the machine, not a program to run in front of anything. One mode per
// process:
//
//   - forward (ingress's place): reads each request's body, publishes it
//     as is to -subject with a synchronous JetStream publish, answers 200
//     after the PubAck (503 on error);
//   - relay (the normalizer's place): a durable pull consumer (-durable)
//     of -stream filtered to -from, new messages only, that publishes each
//     message's body to -subject and acks it after the PubAck;
//   - deliver (a sink's place): a durable pull consumer of -stream
//     filtered to -from, new messages only, that POSTs each message's body
//     to -url and acks it after a 2xx (naks it otherwise).
package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"log"
	"net/http"
	_ "net/http/pprof" // on http.DefaultServeMux, served only with -pprof
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func main() {
	mode := flag.String("mode", "forward", "forward, relay or deliver")
	addr := flag.String("addr", "127.0.0.1:8081", "forward: listen address")
	url := flag.String("nats", nats.DefaultURL, "NATS URL")
	subj := flag.String("subject", "webhooks.qonto.acme", "forward, relay: subject to publish to (a stream must capture it)")
	stream := flag.String("stream", "WEBHOOKS", "relay, deliver: stream to consume")
	from := flag.String("from", "webhooks.>", "relay, deliver: the consumer's filter subject")
	durable := flag.String("durable", "bare", "relay, deliver: the consumer's durable name")
	target := flag.String("url", "", "deliver: where to POST each message")
	timeout := flag.Duration("timeout", 750*time.Millisecond, "publish deadline")
	pprofAddr := flag.String("pprof", "", "serve Go's profiler on this address (off when empty)")
	flag.Parse()
	if *pprofAddr != "" {
		go func() { log.Print(http.ListenAndServe(*pprofAddr, nil)) }() // net/http/pprof's handlers
	}

	nc, err := nats.Connect(*url)
	if err != nil {
		log.Fatalf("bare: connect %s: %v", *url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatalf("bare: %v", err)
	}
	switch *mode {
	case "forward":
		forward(js, *addr, *subj, *timeout)
	case "relay":
		consume(js, *stream, *from, *durable, func(m jetstream.Msg) { relay(js, m, *subj, *timeout) })
	case "deliver":
		client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1024}}
		consume(js, *stream, *from, *durable, func(m jetstream.Msg) { deliver(client, m, *target) })
	default:
		log.Fatalf("bare: unknown mode %q", *mode)
	}
}

// forward serves POST / until the process is stopped.
func forward(js jetstream.JetStream, addr, subj string, timeout time.Duration) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {})
	mux.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), timeout) // as ingress waits
		defer cancel()
		if _, err := js.Publish(ctx, subj, body); err != nil {
			http.Error(w, "not stored", http.StatusServiceUnavailable)
			return
		}
	})
	log.Printf("bare forward: %s -> %s", addr, subj)
	log.Fatal(http.ListenAndServe(addr, mux))
}

// consume runs handle, each message in its own goroutine, until SIGTERM
// or SIGINT.
func consume(js jetstream.JetStream, stream, from, durable string, handle func(jetstream.Msg)) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable: durable, FilterSubject: from, AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		log.Fatalf("bare: consumer %s on %s: %v", durable, stream, err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { go handle(m) })
	if err != nil {
		log.Fatalf("bare: consume %s: %v", durable, err)
	}
	log.Printf("bare: %s consuming %s (%s)", durable, stream, from)
	<-ctx.Done()
	cc.Drain()
	<-cc.Closed()
}

// relay publishes m's body to subj and acks m after the PubAck.
func relay(js jetstream.JetStream, m jetstream.Msg, subj string, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if _, err := js.Publish(ctx, subj, m.Data()); err != nil {
		m.Nak()
		return
	}
	m.Ack()
}

// deliver POSTs m's body to url and acks m after a 2xx.
func deliver(client *http.Client, m jetstream.Msg, url string) {
	resp, err := client.Post(url, "application/json", bytes.NewReader(m.Data()))
	if err != nil {
		m.Nak()
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		m.Nak()
		return
	}
	m.Ack()
}
