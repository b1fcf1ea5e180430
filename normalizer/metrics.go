package normalizer

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/invoicehub/invoicehub/schemas/stage"
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
	if err := stage.Register(reg, m.processed, m.unknown); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *metrics) outcome(providerName, outcome string) {
	m.processed.WithLabelValues(providerName, outcome).Inc()
}

func (m *metrics) unknownStatus(providerName string) {
	m.unknown.WithLabelValues(providerName).Inc()
}
