// Package observe connects a stage's consumers to what its operators see:
// readiness (/readyz), the consumer metrics and the delivery ledger
// (through the consume adapter's Observer), and each consumer's JetStream
// state as metrics, read at every scrape:
//
//	invoicehub_consumer_pending_messages{consumer}      not yet delivered: the lag
//	invoicehub_consumer_ack_pending_messages{consumer}  delivered, not yet settled
//	invoicehub_consumer_redelivered_messages{consumer}  delivered more than once, not yet settled
//	invoicehub_dlq_messages{consumer}                   dead letters waiting in the DLQ
//
// One Stage per process; the normalizer, the sinks binary and dev each
// make one.
package observe

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/invoicehub/invoicehub/internal/consume"
	"github.com/invoicehub/invoicehub/internal/ledger"
	"github.com/invoicehub/invoicehub/internal/stage"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

// Stage observes the consumers of one process.
type Stage struct {
	js      jetstream.JetStream
	ready   *stage.Readiness
	metrics *consume.Metrics
	ledger  *ledger.Writer
	log     *slog.Logger

	mu        sync.Mutex
	consumers []consume.Config
}

// New returns the observer of a process that runs consumers consumers on
// nc, registering its metrics with reg.
func New(nc *nats.Conn, js jetstream.JetStream, reg prometheus.Registerer, consumers int, log *slog.Logger) (*Stage, error) {
	m, err := consume.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	w, err := ledger.NewWriter(nc, reg, log)
	if err != nil {
		return nil, err
	}
	s := &Stage{js: js, ready: stage.NewReadiness(nc, consumers), metrics: m, ledger: w, log: log}
	if err := reg.Register(s); err != nil {
		return nil, err
	}
	return s, nil
}

// Hooks returns the hooks of the consumer cc: readiness once it is bound,
// its metrics and its ledger entries for every attempt. Call it once per
// consumer.
func (s *Stage) Hooks(cc consume.Config) consume.Hooks {
	s.mu.Lock()
	s.consumers = append(s.consumers, cc)
	s.mu.Unlock()
	return consume.Hooks{Bound: s.ready.Bound, Observer: consume.Observers(s.metrics, s.ledger)}
}

// Finish waits, at most stage.DrainTimeout, for the ledger entries
// written to be acknowledged (ledger.Writer.Flush): at shutdown, once the
// consumers have stopped and before the connection drains.
func (s *Stage) Finish() {
	ctx, cancel := context.WithTimeout(context.Background(), stage.DrainTimeout)
	defer cancel()
	if err := s.ledger.Flush(ctx); err != nil {
		s.log.Warn("shutdown", "err", err)
	}
}

// Ready is what /readyz reports: connected, every consumer bound, and
// the delivery ledger written.
func (s *Stage) Ready() error { return errors.Join(s.ready.Check(), s.ledger.Check()) }

var (
	pendingDesc = prometheus.NewDesc("invoicehub_consumer_pending_messages",
		"Messages of the consumer's stream not yet delivered to it (its lag).", []string{"consumer"}, nil)
	ackPendingDesc = prometheus.NewDesc("invoicehub_consumer_ack_pending_messages",
		"Messages delivered to the consumer and not yet settled.", []string{"consumer"}, nil)
	redeliveredDesc = prometheus.NewDesc("invoicehub_consumer_redelivered_messages",
		"Messages delivered to the consumer more than once and not yet settled.", []string{"consumer"}, nil)
	dlqDesc = prometheus.NewDesc("invoicehub_dlq_messages",
		"Dead letters of the consumer waiting in the DLQ.", []string{"consumer"}, nil)
)

// Describe implements prometheus.Collector.
func (s *Stage) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{pendingDesc, ackPendingDesc, redeliveredDesc, dlqDesc} {
		ch <- d
	}
}

// scrapeTimeout bounds the JetStream lookups of one scrape.
const scrapeTimeout = 2 * time.Second

// Collect reads each consumer's info and its DLQ subject's count. A
// lookup that fails leaves its series out of this scrape (and is logged
// at debug): a scrape never fails for it.
func (s *Stage) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	s.mu.Lock()
	ccs := append([]consume.Config(nil), s.consumers...)
	s.mu.Unlock()
	dlq := s.dlqCounts(ctx)
	for _, cc := range ccs {
		durable := cc.Durable()
		if info, err := s.consumerInfo(ctx, cc); err == nil {
			ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(info.NumPending), durable)
			ch <- prometheus.MustNewConstMetric(ackPendingDesc, prometheus.GaugeValue, float64(info.NumAckPending), durable)
			ch <- prometheus.MustNewConstMetric(redeliveredDesc, prometheus.GaugeValue, float64(info.NumRedelivered), durable)
		}
		if dlq != nil {
			ch <- prometheus.MustNewConstMetric(dlqDesc, prometheus.GaugeValue, float64(dlq[cc.DeadLetterSubject()]), durable)
		}
	}
}

func (s *Stage) consumerInfo(ctx context.Context, cc consume.Config) (*jetstream.ConsumerInfo, error) {
	c, err := s.js.Consumer(ctx, cc.Stream, cc.Durable())
	if err != nil {
		s.log.Debug("metrics: consumer info", "consumer", cc.Durable(), "err", err)
		return nil, err
	}
	return c.CachedInfo(), nil
}

// dlqCounts returns the DLQ's message count per subject, or nil.
func (s *Stage) dlqCounts(ctx context.Context) map[string]uint64 {
	st, err := s.js.Stream(ctx, subject.DLQStream)
	if err == nil {
		var info *jetstream.StreamInfo
		if info, err = st.Info(ctx, jetstream.WithSubjectFilter(subject.DLQRoot+".>")); err == nil {
			if info.State.Subjects == nil {
				return map[string]uint64{}
			}
			return info.State.Subjects
		}
	}
	s.log.Debug("metrics: DLQ info", "err", err)
	return nil
}
