package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/invoicehub/invoicehub/internal/consume"
	"github.com/invoicehub/invoicehub/internal/ledger"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

const statusUsage = `usage: invoicehub status [-nats URL] [-ingress-metrics URL] [-window 1h]

One screen: each stream's messages and bytes; each durable consumer's
lag (pending), deliveries not yet settled (ack pending) and redeliveries;
each consumer's delivered, retrying, dead-lettered and replayed attempts
in the window (from the delivery ledger); dead letters waiting per
consumer; each source's last webhook; and, given ingress's metrics URL,
each source's requests and 401s since ingress started.`

// runStatus prints the pipeline's state.
func runStatus(ctx context.Context, args []string, env Env) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() { fmt.Fprintln(env.Stderr, statusUsage) }
	url := fs.String("nats", "nats://127.0.0.1:4222", "NATS server URL (nats://user:password@host for an administrator)")
	metricsURL := fs.String("ingress-metrics", "", "ingress's /metrics URL, for the 401s per source")
	window := fs.Duration("window", time.Hour, "how far back the ledger's counts go")
	if err := fs.Parse(args); err != nil {
		return err
	}
	nc, js, err := connect(*url, "status")
	if err != nil {
		return err
	}
	defer nc.Close()
	w := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	defer w.Flush()
	var requests map[string][2]float64
	if *metricsURL != "" {
		if requests, err = sourceRequests(ctx, *metricsURL); err != nil {
			fmt.Fprintf(env.Stderr, "ingress metrics: %v\n", err)
		}
	}
	return errors.Join(
		statusStreams(ctx, js, w),
		statusConsumers(ctx, js, w),
		statusLedger(ctx, js, w, *window),
		statusDeadLetters(ctx, js, w),
		statusSources(ctx, js, w, requests),
	)
}

var statusStreamNames = []string{subject.WebhooksStream, subject.InvoicesStream, subject.DLQStream, subject.LedgerStream}

func statusStreams(ctx context.Context, js jetstream.JetStream, w io.Writer) error {
	fmt.Fprintln(w, "STREAM\tMESSAGES\tBYTES\tFIRST\tLAST")
	for _, name := range statusStreamNames {
		s, err := js.Stream(ctx, name)
		if err != nil {
			fmt.Fprintf(w, "%s\t-\t-\t-\t%v\n", name, err)
			continue
		}
		st := s.CachedInfo().State
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\n", name, st.Msgs, bytesText(st.Bytes), stamp(st.FirstTime), stamp(st.LastTime))
	}
	fmt.Fprintln(w)
	return nil
}

func statusConsumers(ctx context.Context, js jetstream.JetStream, w io.Writer) error {
	fmt.Fprintln(w, "CONSUMER\tSTREAM\tPENDING\tACK PENDING\tREDELIVERED\tLAST ACTIVE")
	var errs []error
	for _, name := range []string{subject.WebhooksStream, subject.InvoicesStream, subject.DLQStream} { // the notifiers read the DLQ
		s, err := js.Stream(ctx, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		lister := s.ListConsumers(ctx)
		for info := range lister.Info() {
			if info.Config.Durable == "" {
				continue // an ordered consumer of a tool (trace, tail), not a stage's
			}
			last := "-"
			if info.Delivered.Last != nil {
				last = stamp(*info.Delivered.Last)
			}
			fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%s\n", info.Name, name, info.NumPending, info.NumAckPending, info.NumRedelivered, last)
		}
		if err := lister.Err(); err != nil {
			errs = append(errs, err)
		}
	}
	fmt.Fprintln(w)
	return errors.Join(errs...)
}

func statusLedger(ctx context.Context, js jetstream.JetStream, w io.Writer, window time.Duration) error {
	counts := map[string]map[consume.Result]int{}
	err := ledger.Each(ctx, js, "", time.Now().Add(-window), func(e ledger.Entry) bool {
		if counts[e.Durable()] == nil {
			counts[e.Durable()] = map[consume.Result]int{}
		}
		counts[e.Durable()][e.Result]++
		return true
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "CONSUMER (last %s)\tDELIVERED\tRETRYING\tDEAD-LETTERED\tREPLAYED\n", window)
	for _, c := range slices.Sorted(maps.Keys(counts)) {
		n := counts[c]
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\n", c, n[consume.ResultDelivered], n[consume.ResultRetrying], n[consume.ResultDeadLettered], n[ledger.ResultReplayed])
	}
	fmt.Fprintln(w)
	return nil
}

func statusDeadLetters(ctx context.Context, js jetstream.JetStream, w io.Writer) error {
	s, err := js.Stream(ctx, subject.DLQStream)
	if err != nil {
		return err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject.DLQRoot+".>"))
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "DEAD LETTERS\tWAITING")
	for _, subj := range slices.Sorted(maps.Keys(info.State.Subjects)) {
		fmt.Fprintf(w, "%s\t%d\n", terminalSafe(subj), info.State.Subjects[subj])
	}
	if len(info.State.Subjects) == 0 {
		fmt.Fprintln(w, "none\t0")
	}
	fmt.Fprintln(w)
	return nil
}

// statusSources lists each source's last stored webhook, and its requests
// and 401s from ingress's metrics when given (keyed provider/source).
func statusSources(ctx context.Context, js jetstream.JetStream, w io.Writer, requests map[string][2]float64) error {
	s, err := js.Stream(ctx, subject.WebhooksStream)
	if err != nil {
		return err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject.WebhooksRoot+".>"))
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "SOURCE\tWEBHOOKS STORED\tLAST WEBHOOK\tREQUESTS\t401")
	for _, subj := range slices.Sorted(maps.Keys(info.State.Subjects)) {
		last := "-"
		if m, err := s.GetLastMsgForSubject(ctx, subj); err == nil {
			last = stamp(m.Time) + " (" + time.Since(m.Time).Round(time.Second).String() + " ago)"
		}
		source := strings.ReplaceAll(strings.TrimPrefix(subj, subject.WebhooksRoot+"."), ".", "/")
		total, denied := "-", "-"
		if r, ok := requests[source]; ok {
			total, denied = fmt.Sprint(r[0]), fmt.Sprintf("%v (%.0f%%)", r[1], 100*r[1]/max(r[0], 1))
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\n", terminalSafe(source), info.State.Subjects[subj], last, total, denied)
	}
	return nil
}

// sourceRequests scrapes ingress's invoicehub_ingress_requests_total:
// per provider/source, all requests and those answered unauthorized.
func sourceRequests(ctx context.Context, url string) (map[string][2]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string][2]float64{}
	if f, ok := families["invoicehub_ingress_requests_total"]; ok {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			key := labels["provider"] + "/" + labels["source"]
			v := out[key]
			v[0] += m.GetCounter().GetValue()
			if labels["outcome"] == "unauthorized" {
				v[1] += m.GetCounter().GetValue()
			}
			out[key] = v
		}
	}
	return out, nil
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func bytesText(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
