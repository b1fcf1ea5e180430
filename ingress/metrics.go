package ingress

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/invoicehub/invoicehub/internal/stage"
)

// metrics counts webhook outcomes per provider and source and times them.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	lastSeen *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "invoicehub", Subsystem: "ingress", Name: "requests_total",
			Help: "Webhook requests by provider, source and outcome.",
		}, []string{"provider", "source", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "invoicehub", Subsystem: "ingress", Name: "request_duration_seconds",
			Help:    "Webhook request latency, publish included, by provider and outcome.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, .75, 1, 2.5},
		}, []string{"provider", "outcome"}),
		lastSeen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "invoicehub", Subsystem: "ingress", Name: "source_last_seen_timestamp_seconds",
			Help: "When the source's last genuine webhook was stored (accepted or duplicate), Unix seconds.",
		}, []string{"provider", "source"}),
	}
	if err := stage.Register(reg, m.requests, m.duration, m.lastSeen); err != nil {
		return nil, err
	}
	return m, nil
}

// observe counts a request; an unknown provider or source is labelled
// "unknown" by the caller, so that a scan of random URLs cannot blow up
// the label space.
func (m *metrics) observe(providerName, source string, outcome string, d time.Duration) {
	m.requests.WithLabelValues(providerName, source, outcome).Inc()
	m.duration.WithLabelValues(providerName, outcome).Observe(d.Seconds())
	if outcome == "accepted" || outcome == "duplicate" {
		m.lastSeen.WithLabelValues(providerName, source).SetToCurrentTime()
	}
}
