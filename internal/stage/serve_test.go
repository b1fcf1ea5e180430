package stage

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/invoicehub/invoicehub/internal/jstest"
)

// TestServeDrainsInFlight: on shutdown, a request in flight finishes with
// its answer, and new connections are refused.
func TestServeDrainsInFlight(t *testing.T) {
	ln, err := Listen("127.0.0.1:0", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	started, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release // the PubAck is slow to come
		w.Write([]byte("stored"))
	})
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, ln, h, 5*time.Second, slog.New(slog.DiscardHandler)) }()

	type result struct {
		status int
		body   string
		err    error
	}
	first := make(chan result, 1)
	go func() {
		var resp *http.Response
		var err error
		resp, err = http.Post("http://"+addr+"/", "application/json", nil) // the listener is up: no race for the port
		if err != nil {
			first <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		first <- result{status: resp.StatusCode, body: string(b)}
	}()
	<-started
	cancel()
	// New connections are refused while the first request is still in flight.
	refused := false
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			refused = true
			break
		}
		c.Close()
	}
	if !refused {
		t.Fatal("new connections still accepted during shutdown")
	}
	close(release)
	if r := <-first; r.err != nil || r.status != http.StatusOK || r.body != "stored" {
		t.Fatalf("in-flight request: %+v", r)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// TestListenLimitsConnections: past the limit a connection is answered
// 503 with Retry-After at once; closing one frees its place.
func TestListenLimitsConnections(t *testing.T) {
	ln, err := Listen("127.0.0.1:0", 2, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go Serve(ctx, ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }), time.Second, slog.New(slog.DiscardHandler))
	addr := ln.Addr().String()
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	get := func() (int, string) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	// The two held connections count once the server has accepted them.
	var after string
	jstest.Eventually(t, 5*time.Second, "a third connection refused", func() bool {
		var status int
		status, after = get()
		return status == http.StatusServiceUnavailable
	})
	if after != "3" {
		t.Fatalf("Retry-After %q", after)
	}
	held[0].Close()
	jstest.Eventually(t, 5*time.Second, "a place freed", func() bool { s, _ := get(); return s == http.StatusOK })
}
