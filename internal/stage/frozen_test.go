package stage

import (
	"bufio"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// frozenServer accepts one NATS client on loopback, completes the
// handshake, and then never answers again: a server stopped with SIGSTOP,
// or cut off, as its clients see it.
func frozenServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		t.Cleanup(func() { conn.Close() })
		conn.Write([]byte(`INFO {"server_id":"frozen","version":"2.12.0","proto":1,"max_payload":1048576}` + "\r\n"))
		r := bufio.NewReader(conn)
		for { // CONNECT, then the first PING, answered: the client is connected
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if strings.HasPrefix(line, "PING") {
				conn.Write([]byte("PONG\r\n"))
				break
			}
		}
		for { // frozen: read what comes, answer nothing
			if _, err := r.ReadString('\n'); err != nil {
				return
			}
		}
	}()
	return "nats://" + ln.Addr().String()
}

// TestAStageLeavesAFrozenServerWithinSeconds: a stage's connection to a
// server that stops answering is declared lost within the ping bound, so
// the stage reconnects to another node instead of stalling.
func TestAStageLeavesAFrozenServerWithinSeconds(t *testing.T) {
	lost := make(chan time.Time, 1)
	opts := append(ConnectOptions("test", slog.New(slog.DiscardHandler)),
		nats.DisconnectErrHandler(func(*nats.Conn, error) {
			select {
			case lost <- time.Now():
			default:
			}
		}))
	nc, err := nats.Connect(frozenServer(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	connected := time.Now()
	bound := PingInterval * (MaxPingsOutstanding + 2)
	select {
	case at := <-lost:
		t.Logf("frozen server left after %v", at.Sub(connected))
	case <-time.After(bound):
		t.Fatalf("still connected to a frozen server after %v", bound)
	}
}
