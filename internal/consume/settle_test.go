package consume

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/invoicehub/invoicehub/internal/jstest"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

// TestNextOfAnInvoiceWaitsForTheAckToBeConfirmed: the adapter's bytes
// reach the server 300 ms late (a slow link, or an ack still in the
// client's buffer when the process is killed). An invoice's second
// message must not be handled before the server has the first one's ack:
// were the process to die then, the first would come back after the
// second was delivered, an older state after a newer one.
func TestNextOfAnInvoiceWaitsForTheAckToBeConfirmed(t *testing.T) {
	f := newFixture(t)
	_, js := jstest.ConnectURL(t, "nats://"+delayedProxy(t, f.srv.Addr().String(), 300*time.Millisecond))
	cfg := testConfig("confirmed")
	cfg.Key = byPartitionKey
	first := f.publishKeyed(t, "inv-1-a", "inv-1")
	f.publishKeyed(t, "inv-1-b", "inv-1")
	floorAtSecond := make(chan uint64, 1)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, js, cfg, func(_ context.Context, d *Delivery) error {
			if d.Sequence != first {
				floorAtSecond <- f.ackFloor(t, cfg.Durable())
			}
			return nil
		}, testLog)
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case floor := <-floorAtSecond:
		if floor < first {
			t.Fatalf("the second message was handled while the server's ack floor was %d: the first (seq %d) had no confirmed ack", floor, first)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second message was never handled")
	}
}

// ackFloor is the stream sequence below which the server holds every
// message of durable acked.
func (f *fixture) ackFloor(t *testing.T, durable string) uint64 {
	c, err := f.js.Consumer(context.Background(), subject.InvoicesStream, durable)
	if err != nil {
		t.Error(err)
		return 0
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Error(err)
		return 0
	}
	return info.AckFloor.Stream
}

// delayedProxy listens on 127.0.0.1 and forwards to target, holding what
// a client sends for delay before the server gets it (in order); what the
// server sends goes straight back. It stops when the test ends.
func delayedProxy(t *testing.T, target string, delay time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				return
			}
			t.Cleanup(func() { client.Close(); server.Close() })
			wg.Go(func() { io.Copy(client, server) })
			wg.Go(func() { forwardLate(server, client, delay) })
		}
	})
	return ln.Addr().String()
}

// forwardLate copies src to dst, each chunk delay after it was read.
func forwardLate(dst io.Writer, src io.Reader, delay time.Duration) {
	type chunk struct {
		due  time.Time
		data []byte
	}
	chunks := make(chan chunk, 1024)
	go func() {
		defer close(chunks)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				chunks <- chunk{time.Now().Add(delay), buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range chunks {
		<-time.After(time.Until(c.due))
		if _, err := dst.Write(c.data); err != nil {
			return
		}
	}
}
