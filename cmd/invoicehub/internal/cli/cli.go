// Package cli implements the invoicehub subcommands.
package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"

	"github.com/invoicehub/invoicehub/internal/stage"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Env gives a command its environment; Run is tested without touching the
// process's own.
type Env struct {
	Getenv func(string) string
	Stdout io.Writer
	Stderr io.Writer
}

type command struct {
	summary string
	run     func(ctx context.Context, args []string, env Env) error
}

var commands = map[string]command{
	"dev":    {"run the whole pipeline in one process with an embedded JetStream", runDev},
	"setup":  {"create or update the streams and consumers (an administrator's step)", runSetup},
	"send":   {"post a correctly signed sample webhook (send qonto)", runSend},
	"replay": {"re-normalize raw webhooks into canonical events, without duplicates", runReplay},
	"dlq":    {"list, show, replay or purge dead letters", runDLQ},
	"trace":  {"the journey of one invoice: webhooks, canonical events, every delivery attempt", runTrace},
	"status": {"streams, consumers' lag, sinks' last hour, dead letters, sources", runStatus},
	"tail":   {"print canonical events as they are published", runTail},
}

// Run runs the subcommand named by args[0] and returns the exit code.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	env := Env{Getenv: getenv, Stdout: stdout, Stderr: stderr}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "invoicehub: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	if err := cmd.run(ctx, args[1:], env); err != nil {
		fmt.Fprintf(stderr, "invoicehub %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: invoicehub <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-6s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun `invoicehub <command> -h` for its flags.")
}

// connect opens a connection for a one-shot tool; close it when done.
func connect(url, name string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url, nats.Name("invoicehub-"+name))
	if err != nil {
		return nil, nil, fmt.Errorf("connect %s: %w", stage.RedactURLs(url), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// logger returns the process logger: text on stderr, level from
// INVOICEHUB_LOG_LEVEL (debug, info, warn, error; default info).
func logger(env Env) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(strings.ToUpper(env.Getenv("INVOICEHUB_LOG_LEVEL")))); err != nil {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: level}))
}
