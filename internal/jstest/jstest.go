// Package jstest runs an embedded JetStream server for tests, so the
// integration tests of every module run on any machine with Go.
package jstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	natstest "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Server is a running embedded JetStream server.
type Server struct {
	*server.Server
	opts server.Options
}

// Run starts a JetStream server on a free loopback port with its store in a
// temporary directory; it is shut down when the test ends.
func Run(t testing.TB) *Server { return RunWith(t, nil) }

// RunWith is Run with the server's options adjusted by adjust (nil: none).
func RunWith(t testing.TB, adjust func(*server.Options)) *Server {
	t.Helper()
	opts := natstest.DefaultTestOptions
	opts.Port = -1
	opts.JetStream = true
	opts.StoreDir = t.TempDir()
	if adjust != nil {
		adjust(&opts)
	}
	s := &Server{opts: opts}
	s.start(t)
	return s
}

func (s *Server) start(t testing.TB) {
	opts := s.opts
	s.Server = natstest.RunServer(&opts)
	s.opts.Port = s.Server.Addr().(*net.TCPAddr).Port // a restart keeps the port: clients reconnect
	t.Cleanup(s.Server.Shutdown)
}

// Restart stops the server and starts it again on the same port and store,
// as an operator restarting nats-server would.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Server.Shutdown()
	s.Server.WaitForShutdown()
	s.start(t)
}

// Connect opens a client connection closed when the test ends.
func (s *Server) Connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return ConnectURL(t, s.ClientURL())
}

// ConnectURL opens a client connection to url (a proxy in front of a
// Server), closed when the test ends.
func ConnectURL(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("jstest: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jstest: jetstream: %v", err)
	}
	return nc, js
}

// streamInfo returns a stream and its current state.
func streamInfo(t testing.TB, js jetstream.JetStream, name string) (jetstream.Stream, *jetstream.StreamInfo) {
	t.Helper()
	s, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatalf("jstest: stream %s: %v", name, err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatalf("jstest: stream %s: %v", name, err)
	}
	return s, info
}

// Messages returns every message a stream holds, in order.
func Messages(t testing.TB, js jetstream.JetStream, name string) []*jetstream.RawStreamMsg {
	t.Helper()
	out, err := ReadAll(context.Background(), js, name)
	if err != nil {
		t.Fatalf("jstest: %v", err)
	}
	return out
}

// ReadAll returns every message a stream holds, in order, as its leader
// has them, or the error that stopped it (a cluster electing a leader,
// say).
func ReadAll(ctx context.Context, js jetstream.JetStream, name string) ([]*jetstream.RawStreamMsg, error) {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	// Read from the stream leader, not by direct get: any replica answers
	// those, and one back from a stall answers "not found" for what it has
	// yet to catch up on, which a count would take for missing (nats.go's
	// GetMsg chooses by the cached AllowDirect).
	s.CachedInfo().Config.AllowDirect = false
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("stream %s at %d: %w", name, seq, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// Count returns how many messages a stream holds.
func Count(t testing.TB, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	_, info := streamInfo(t, js, name)
	return info.State.Msgs
}
