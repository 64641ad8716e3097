package dataplane

import (
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the data plane's request metrics, labelled by route, method
// and status class ("2xx", ...). The label values are few and fixed, so the
// series for each combination are resolved once and kept in a table: the hot
// path then costs no label hashing and no allocation.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	series   [numRoutes][numMethods][numClasses]atomic.Pointer[series]
}

type series struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

const (
	numMethods = 7 // GET HEAD PUT POST PATCH DELETE other
	numClasses = 6 // 1xx..5xx, other
)

var (
	methodLabels = [numMethods]string{"GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "other"}
	classLabels  = [numClasses]string{"1xx", "2xx", "3xx", "4xx", "5xx", "other"}
)

func methodIndex(m string) int {
	switch m {
	case http.MethodGet:
		return 0
	case http.MethodHead:
		return 1
	case http.MethodPut:
		return 2
	case http.MethodPost:
		return 3
	case http.MethodPatch:
		return 4
	case http.MethodDelete:
		return 5
	}
	return 6
}

func classIndex(status int) int {
	if status >= 100 && status < 600 {
		return status/100 - 1
	}
	return 5
}

// newMetrics creates the collectors and registers them with reg (if not
// nil). A second Handler on the same registerer shares the first one's
// collectors.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "moat",
		Subsystem: "dataplane",
		Name:      "requests_total",
		Help:      "Data-plane requests by route, method and status class.",
	}, []string{"route", "method", "status"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "moat",
		Subsystem: "dataplane",
		Name:      "request_duration_seconds",
		Help:      "Data-plane request latency by route, method and status class.",
		Buckets:   []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"route", "method", "status"})
	if reg != nil {
		var err error
		if requests, err = register(reg, requests); err != nil {
			return nil, err
		}
		if duration, err = register(reg, duration); err != nil {
			return nil, err
		}
	}
	return &metrics{requests: requests, duration: duration}, nil
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("dataplane: registering metrics: %w", err)
}

func (m *metrics) observe(route routeKind, method string, status int, d time.Duration) {
	if route >= numRoutes {
		route = routeUnknown
	}
	mi, ci := methodIndex(method), classIndex(status)
	slot := &m.series[route][mi][ci]
	s := slot.Load()
	if s == nil {
		labels := []string{route.String(), methodLabels[mi], classLabels[ci]}
		s = &series{
			requests: m.requests.WithLabelValues(labels...),
			duration: m.duration.WithLabelValues(labels...),
		}
		slot.Store(s) // a racing store holds the same children
	}
	s.requests.Inc()
	s.duration.Observe(d.Seconds())
}
