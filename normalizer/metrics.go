package normalizer

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	processed *prometheus.CounterVec
	unknown   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "invoicehub", Subsystem: "normalizer", Name: "raw_events_total",
			Help: "Raw webhooks normalized, by provider and outcome (published or an error class).",
		}, []string{"provider", "outcome"}),
		unknown: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "invoicehub", Subsystem: "normalizer", Name: "unknown_status_total",
			Help: "Canonical events whose provider status has no mapping (status unknown).",
		}, []string{"provider"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.processed, m.unknown} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("normalizer: register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) outcome(providerName, outcome string) {
	m.processed.WithLabelValues(providerName, outcome).Inc()
}

func (m *metrics) unknownStatus(providerName string) {
	m.unknown.WithLabelValues(providerName).Inc()
}
