package consume

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what every consumer of a process does, labelled by
// consumer (the durable name: normalizer-default, sink-crm):
//
//	invoicehub_consumer_attempts_total{consumer,result,class}
//	    attempts by result (delivered, retrying, dead_lettered) and error
//	    class (transient, permanent, exhausted, http_410, ...; "" when
//	    delivered): retries and dead letters by class are slices of it
//	invoicehub_consumer_delivery_latency_seconds{consumer}
//	    from the stream storing a message to the consumer settling it as
//	    delivered: a sink's end-to-end delay
type Metrics struct {
	attempts *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// NewMetrics registers the consumer metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "invoicehub", Subsystem: "consumer", Name: "attempts_total",
			Help: "Delivery attempts by consumer, result (delivered, retrying, dead_lettered) and error class.",
		}, []string{"consumer", "result", "class"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "invoicehub", Subsystem: "consumer", Name: "delivery_latency_seconds",
			Help:    "From the stream storing a message to its delivery, by consumer.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"consumer"}),
	}
	for _, c := range []prometheus.Collector{m.attempts, m.latency} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Observe counts one attempt: Metrics is an Observer.
func (m *Metrics) Observe(d *Delivery, o Outcome) {
	consumer := d.Stage + "-" + d.ConsumerID
	class := o.Class
	if o.Result == ResultDelivered {
		class = ""
		if !d.Stored.IsZero() {
			m.latency.WithLabelValues(consumer).Observe(time.Since(d.Stored).Seconds())
		}
	}
	m.attempts.WithLabelValues(consumer, string(o.Result), class).Inc()
}
