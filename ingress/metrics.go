package ingress

import (
	"sync"
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

// refused counts a request not stored (a webhook stored is counted by its
// source's sourceMetrics); an unknown provider or source is labelled
// "unknown" by the caller, so that a scan of random URLs cannot blow up
// the label space.
func (m *metrics) refused(providerName, source string, outcome string, d time.Duration) {
	m.requests.WithLabelValues(providerName, source, outcome).Inc()
	m.duration.WithLabelValues(providerName, outcome).Observe(d.Seconds())
}

// sourceMetrics are one source's series of a webhook stored, bound once:
// looking them up by label values took a hash and a lock per webhook. The
// last-seen gauge is bound at the first webhook stored, so that a source
// never seen has no series (rather than one at 0 that looks silent since
// 1970).
type sourceMetrics struct {
	accepted, duplicate     prometheus.Counter
	acceptedIn, duplicateIn prometheus.Observer
	lastSeen                func() prometheus.Gauge
}

func (m *metrics) forSource(providerName, source string) *sourceMetrics {
	return &sourceMetrics{
		accepted:    m.requests.WithLabelValues(providerName, source, "accepted"),
		duplicate:   m.requests.WithLabelValues(providerName, source, "duplicate"),
		acceptedIn:  m.duration.WithLabelValues(providerName, "accepted"),
		duplicateIn: m.duration.WithLabelValues(providerName, "duplicate"),
		lastSeen:    sync.OnceValue(func() prometheus.Gauge { return m.lastSeen.WithLabelValues(providerName, source) }),
	}
}

// stored counts a webhook of the source stored: outcome "accepted" or
// "duplicate".
func (sm *sourceMetrics) stored(duplicate bool, d time.Duration) {
	if duplicate {
		sm.duplicate.Inc()
		sm.duplicateIn.Observe(d.Seconds())
	} else {
		sm.accepted.Inc()
		sm.acceptedIn.Observe(d.Seconds())
	}
	sm.lastSeen().SetToCurrentTime()
}
