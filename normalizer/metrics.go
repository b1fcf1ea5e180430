package normalizer

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/invoicehub/invoicehub/internal/stage"
	"github.com/invoicehub/invoicehub/schemas"
)

type metrics struct {
	processed          *prometheus.CounterVec
	unknown            *prometheus.CounterVec
	arithmeticWarnings *prometheus.CounterVec
	flushed            prometheus.Counter
	publishedEvents    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "invoicehub", Subsystem: "normalizer", Name: "raw_events_total",
			Help: "Raw webhooks normalized, by provider and outcome: published, unchanged, stale, deleted_unknown, skipped (with the provider's event type: a genuine event not about an invoice) or an error class.",
		}, []string{"provider", "outcome", "event_type"}),
		unknown: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "invoicehub", Subsystem: "normalizer", Name: "unknown_status_total",
			Help: "Canonical events whose provider status has no mapping (status unknown).",
		}, []string{"provider"}),
		arithmeticWarnings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "invoicehub", Subsystem: "normalizer", Name: "arithmetic_warnings_total",
			Help: "EN 16931 arithmetic rules broken by a provider's figures (published as stated).",
		}, []string{"provider"}),
		flushed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "invoicehub", Subsystem: "normalizer", Name: "announcements_flushed_total",
			Help: "Announcements a reader found pending (a crash between a state write and its events) and published.",
		}),
		publishedEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "invoicehub", Subsystem: "normalizer", Name: "published_events_total",
			Help: "Canonical events published (PubAck received; a repeat inside the duplicate window included), by kind and provider.",
		}, []string{"kind", "provider"}),
	}
	if err := stage.Register(reg, m.processed, m.unknown, m.arithmeticWarnings, m.flushed, m.publishedEvents); err != nil {
		return nil, err
	}
	for _, p := range schemas.Providers { // exported at 0 from the start, so that rates and alerts see them
		m.unknown.WithLabelValues(p)
		m.arithmeticWarnings.WithLabelValues(p)
	}
	return m, nil
}

func (m *metrics) outcome(providerName, outcome string) {
	m.processed.WithLabelValues(providerName, outcome, "").Inc()
}

func (m *metrics) skipped(providerName, eventType string) {
	m.processed.WithLabelValues(providerName, string(OutcomeSkipped), eventType).Inc()
}

func (m *metrics) unknownStatus(providerName string) {
	m.unknown.WithLabelValues(providerName).Inc()
}

func (m *metrics) arithmetic(providerName string) {
	m.arithmeticWarnings.WithLabelValues(providerName).Inc()
}

func (m *metrics) published(kind schemas.Kind, providerName string) {
	m.publishedEvents.WithLabelValues(string(kind), providerName).Inc()
}
