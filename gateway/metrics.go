package gateway

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the gateway's Prometheus metrics.
type Metrics struct {
	requests       *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	upstreamErrors prometheus.Counter
	auditErrors    prometheus.Counter
	holds          *prometheus.CounterVec
	holdWait       prometheus.Histogram
	limitRefusals  *prometheus.CounterVec

	// observed caches the request series by their labels: looking a
	// series up by label values hashes them and takes the vector's lock on
	// every request. Bounded by maxObservedSeries; past it, lookups go to
	// the vectors as before.
	observed     sync.Map // observedKey -> observedSeries
	observedSize atomic.Int32
}

// maxObservedSeries bounds Metrics.observed. Verbs, decisions and codes
// are few, so the bound is a guard, not a working size.
const maxObservedSeries = 1024

type observedKey struct {
	verb, decision string
	code           int
}

type observedSeries struct {
	requests prometheus.Counter
	latency  prometheus.Observer
}

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered anywhere).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kubegate_requests_total", Help: "API requests by verb, decision and response code.",
		}, []string{"verb", "decision", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kubegate_request_duration_seconds", Help: "Time from receiving a request to completing its response, by verb and decision.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"verb", "decision"}),
		upstreamErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kubegate_upstream_errors_total", Help: "Requests that failed to reach the apiserver.",
		}),
		auditErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kubegate_audit_errors_total", Help: "Audit events that could not be written.",
		}),
		holds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kubegate_held_requests_total", Help: "Requests held for approval, by outcome (created, approved, denied, expired).",
		}, []string{"outcome"}),
		holdWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kubegate_hold_wait_seconds", Help: "How long held requests waited for a decision.",
			Buckets: []float64{.1, .5, 1, 5, 15, 30, 60, 120, 300, 600, 1800},
		}),
		limitRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kubegate_limit_refusals_total", Help: "Requests refused by a limit: rate, streams, body-size or body-timeout.",
		}, []string{"limit"}),
	}
	for _, l := range []string{"rate", "streams", "body-size", "body-timeout"} {
		m.limitRefusals.WithLabelValues(l) // export zeros, so rate() works from the first refusal
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.latency, m.upstreamErrors, m.auditErrors, m.holds, m.holdWait, m.limitRefusals)
	}
	return m
}

func (m *Metrics) observe(verb, decision string, code int, d time.Duration) {
	k := observedKey{verb, decision, code}
	s, ok := m.observed.Load(k)
	if !ok {
		series := observedSeries{
			requests: m.requests.WithLabelValues(verb, decision, strconv.Itoa(code)),
			latency:  m.latency.WithLabelValues(verb, decision),
		}
		if m.observedSize.Load() < maxObservedSeries {
			if _, loaded := m.observed.LoadOrStore(k, series); !loaded {
				m.observedSize.Add(1)
			}
		}
		s = series
	}
	series := s.(observedSeries)
	series.requests.Inc()
	series.latency.Observe(d.Seconds())
}

// limitRefused counts err if a limit refused the request.
func (m *Metrics) limitRefused(err error) {
	var l string
	switch {
	case errors.Is(err, ErrRateLimited):
		l = "rate"
	case errors.Is(err, ErrTooManyStreams):
		l = "streams"
	case errors.Is(err, ErrBodyTooLarge):
		l = "body-size"
	case errors.Is(err, ErrBodyTimeout):
		l = "body-timeout"
	default:
		return
	}
	m.limitRefusals.WithLabelValues(l).Inc()
}
