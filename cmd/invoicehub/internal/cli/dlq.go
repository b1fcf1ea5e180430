package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sort"
	"strconv"
	"text/tabwriter"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/internal/deadletter"
)

const dlqUsage = `usage: invoicehub dlq [-nats URL] <command>

  ls [consumer]        list dead letters (consumer: sink.crm, sink, normalizer.default)
  show <seq>           one dead letter: why, from where, headers and body
  replay <seq>...      send dead letters back to the consumer that gave up on them
  replay -all [consumer]
  purge <seq>...       delete dead letters
  purge -all [consumer]`

// runDLQ inspects and acts on dead letters.
func runDLQ(ctx context.Context, args []string, env Env) error {
	fs := flag.NewFlagSet("dlq", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() { fmt.Fprintln(env.Stderr, dlqUsage) }
	url := fs.String("nats", "nats://127.0.0.1:4222", "NATS server URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("which command?")
	}
	nc, js, err := connect(*url, "dlq")
	if err != nil {
		return err
	}
	defer nc.Close()
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	switch cmd {
	case "ls":
		return dlqList(ctx, js, rest, env)
	case "show":
		return dlqShow(ctx, js, rest, env)
	case "replay":
		return dlqEach(ctx, js, rest, env, "replayed", deadletter.Replay)
	case "purge":
		if len(rest) > 0 && (rest[0] == "-all" || rest[0] == "--all") {
			n, err := deadletter.Purge(ctx, js, deadletter.ParseFilter(first(rest[1:])))
			fmt.Fprintf(env.Stdout, "purged %d dead letters\n", n)
			return err
		}
		return dlqEach(ctx, js, rest, env, "purged", deadletter.Remove)
	}
	fs.Usage()
	return fmt.Errorf("unknown dlq command %q", cmd)
}

func dlqList(ctx context.Context, js jetstream.JetStream, args []string, env Env) error {
	letters, err := deadletter.List(ctx, js, deadletter.ParseFilter(first(args)))
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SEQ\tTIME\tCONSUMER\tCLASS\tATTEMPTS\tORIGINAL\tREASON")
	originals := deadletter.NewOriginals(js)
	for _, l := range letters {
		reason := l.Reason()
		if len(reason) > 80 {
			reason = reason[:80] + "…"
		}
		original := terminalSafe(l.Original())
		if _, err := originals.Of(ctx, l); errors.Is(err, deadletter.ErrUnresolved) {
			original += " (does not resolve)"
		}
		fmt.Fprintf(w, "%d\t%s\t%s.%s\t%s\t%s\t%s\t%s\n", l.Seq, l.Time.UTC().Format("2006-01-02 15:04:05"), terminalSafe(l.Stage), terminalSafe(l.Consumer),
			terminalSafe(l.Class()), terminalSafe(l.Attempts()), original, terminalSafe(reason))
	}
	fmt.Fprintf(w, "%d dead letters\n", len(letters))
	return w.Flush()
}

func dlqShow(ctx context.Context, js jetstream.JetStream, args []string, env Env) error {
	seqs, err := sequences(args)
	if err != nil || len(seqs) != 1 {
		return errors.Join(err, errors.New("usage: invoicehub dlq show <seq>"))
	}
	l, err := deadletter.Get(ctx, js, seqs[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "dead letter %d of %s.%s, %s\n", l.Seq, terminalSafe(l.Stage), terminalSafe(l.Consumer), l.Time.UTC().Format("2006-01-02 15:04:05Z"))
	if _, err := deadletter.Original(ctx, js, l); err != nil {
		fmt.Fprintf(env.Stdout, "its original: %s (replay refuses it)\n", terminalSafe(err.Error()))
	} else {
		fmt.Fprintf(env.Stdout, "its original: %s, what replay sends back\n", terminalSafe(l.Original()))
	}
	fmt.Fprintln(env.Stdout)
	names := make([]string, 0, len(l.Header))
	for k := range l.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(env.Stdout, "%s: %s\n", terminalSafe(k), terminalSafe(l.Header.Get(k)))
	}
	fmt.Fprintf(env.Stdout, "\n%s\n", terminalSafe(string(l.Data)))
	return nil
}

// dlqEach applies act to the dead letters named by sequence, or to all
// those a filter selects with -all.
func dlqEach(ctx context.Context, js jetstream.JetStream, args []string, env Env, done string, act func(context.Context, jetstream.JetStream, uint64) error) error {
	var seqs []uint64
	if len(args) > 0 && (args[0] == "-all" || args[0] == "--all") {
		letters, err := deadletter.List(ctx, js, deadletter.ParseFilter(first(args[1:])))
		if err != nil {
			return err
		}
		for _, l := range letters {
			seqs = append(seqs, l.Seq)
		}
	} else {
		var err error
		if seqs, err = sequences(args); err != nil || len(seqs) == 0 {
			return errors.Join(err, errors.New("give dead letter sequences, or -all [consumer]"))
		}
	}
	var errs []error
	n, gone := 0, 0
	for _, seq := range seqs {
		err := act(ctx, js, seq)
		switch {
		case errors.Is(err, deadletter.ErrGone):
			gone++
		case err != nil:
			errs = append(errs, err)
		default:
			n++
		}
	}
	fmt.Fprintf(env.Stdout, "%s %d dead letters\n", done, n)
	if gone > 0 {
		fmt.Fprintf(env.Stdout, "%d already replayed or removed meanwhile (another run)\n", gone)
	}
	return errors.Join(errs...)
}

func sequences(args []string) ([]uint64, error) {
	var out []uint64
	for _, a := range args {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("%q is not a dead letter sequence", a)
		}
		out = append(out, n)
	}
	return out, nil
}

func first(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}
