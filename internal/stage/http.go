package stage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// HTTP limits of every stage's servers, chosen for webhook providers: a
// provider sends its headers at once (ReadHeaderTimeout), a body of at
// most a few MB within ReadTimeout, waits for the answer a second or two
// (Qonto: one) but never past WriteTimeout, and reuses idle connections
// for up to IdleTimeout. More headers than MaxHeaderBytes are answered 431.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 15 * time.Second
	WriteTimeout      = 20 * time.Second
	IdleTimeout       = 60 * time.Second
	MaxHeaderBytes    = 64 << 10
)

// NewHTTPServer returns an HTTP server with the limits above.
func NewHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler: h, ReadHeaderTimeout: ReadHeaderTimeout, ReadTimeout: ReadTimeout, WriteTimeout: WriteTimeout,
		IdleTimeout: IdleTimeout, MaxHeaderBytes: MaxHeaderBytes,
	}
}

// Listen opens a TCP listener on addr. With maxConns > 0 it serves at most
// that many connections at once: a connection beyond them is answered
// "503 Service Unavailable" with Retry-After and closed, at once, so a
// flood of idle connections cannot exhaust descriptors or memory.
func Listen(addr string, maxConns int, retryAfter time.Duration) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("stage: listen %s: %w", addr, err)
	}
	if maxConns <= 0 {
		return ln, nil
	}
	return &limitListener{Listener: ln, max: int64(maxConns), busy: busyAnswer(retryAfter)}, nil
}

// limitListener bounds the connections served at once.
type limitListener struct {
	net.Listener
	max    int64
	active atomic.Int64
	busy   []byte
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.active.Add(1) > l.max {
			l.active.Add(-1)
			go l.refuse(c)
			continue
		}
		return &countedConn{Conn: c, release: func() { l.active.Add(-1) }}, nil
	}
}

// refuse answers a connection over the limit without reading its request.
func (l *limitListener) refuse(c net.Conn) {
	c.SetWriteDeadline(time.Now().Add(time.Second))
	c.Write(l.busy)
	c.Close()
}

func busyAnswer(retryAfter time.Duration) []byte {
	body := `{"error":"too many connections, retry later"}` + "\n"
	return []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: " +
		strconv.Itoa(max(1, int(retryAfter.Seconds()+0.5))) + "\r\nContent-Length: " + strconv.Itoa(len(body)) +
		"\r\nConnection: close\r\n\r\n" + body)
}

// countedConn releases its slot once, when closed.
type countedConn struct {
	net.Conn
	released atomic.Bool
	release  func()
}

func (c *countedConn) Close() error {
	if c.released.CompareAndSwap(false, true) {
		c.release()
	}
	return c.Conn.Close()
}

// Serve serves h on ln until ctx ends, then shuts down gracefully within
// grace: requests in flight finish, new ones are refused.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, grace time.Duration, log *slog.Logger) error {
	srv := NewHTTPServer(h)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String())
	select {
	case err := <-done:
		return fmt.Errorf("stage: serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("stage: shutdown %s: %w", ln.Addr(), err)
	}
	return nil
}

// MetricsHandler serves a stage's operational endpoints: /metrics;
// /healthz, 200 while the process runs; /readyz, 200 while ready() is nil
// (connected and consuming), 503 with the reason otherwise.
func MetricsHandler(reg *prometheus.Registry, ready func() error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	return mux
}

// StartMetrics runs ServeMetrics in the background, logging its error;
// wait returns once it has stopped (ctx ended) and its port is free, so
// that a stage run again (Rerun) can bind it.
func (c Config) StartMetrics(ctx context.Context, reg *prometheus.Registry, ready func() error, log *slog.Logger) (wait func()) {
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := c.ServeMetrics(ctx, reg, ready, log); err != nil {
			log.Error("metrics", "err", err)
		}
	})
	return wg.Wait
}

// ServeMetrics serves MetricsHandler on c.MetricsAddr until ctx ends; it
// returns at once if metrics are off.
func (c Config) ServeMetrics(ctx context.Context, reg *prometheus.Registry, ready func() error, log *slog.Logger) error {
	if c.MetricsAddr == "off" {
		return nil
	}
	ln, err := Listen(c.MetricsAddr, 0, 0)
	if err != nil {
		return err
	}
	h := MetricsHandler(reg, ready)
	if c.Pprof {
		mux := http.NewServeMux()
		mux.Handle("/", h)
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		h = mux
	}
	return Serve(ctx, ln, h, 5*time.Second, log)
}
