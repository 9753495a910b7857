package metrics

import (
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/insuranceflow/insuranceflow/activities"
)

// The TOP call limiter's metric names (see activities.CallLimiter).
const (
	NameRateLimitWaiting   = Namespace + "_callbacks_waiting_rate_limit"
	NameRateLimitWait      = Namespace + "_rate_limit_wait_seconds"
	NameRateLimitGivenBack = Namespace + "_rate_limit_slots_given_back_total"
	NameTOPRateLimited     = Namespace + "_top_rate_limited_total"
)

// RateLimitBuckets are the wait histogram's buckets, in seconds: from an
// immediate admission to the longest wait an attempt allows.
func RateLimitBuckets() []float64 {
	return []float64{0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300}
}

// RateLimit records what the TOP call limiter sees. Create it with
// NewRateLimit; a nil *RateLimit records nothing.
type RateLimit struct {
	waiting   prometheus.Gauge
	wait      prometheus.Histogram
	givenBack prometheus.Counter
	banned    *prometheus.CounterVec
}

var _ activities.LimiterMetrics = (*RateLimit)(nil)

// NewRateLimit creates the limiter's metrics and registers them on reg.
func NewRateLimit(reg prometheus.Registerer) (*RateLimit, error) {
	m := &RateLimit{
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: NameRateLimitWaiting,
			Help: "Callbacks of this worker waiting now for a TOP call slot (TOP_QPS); sum over workers.",
		}),
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    NameRateLimitWait,
			Help:    "How long each admitted TOP call waited for its slot (TOP_QPS).",
			Buckets: RateLimitBuckets(),
		}),
		givenBack: prometheus.NewCounter(prometheus.CounterOpts{
			Name: NameRateLimitGivenBack,
			Help: "TOP call slots given back unused because the call would have left too long after its admission.",
		}),
		banned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameTOPRateLimited,
			Help: "Code-7 answers from TOP (App Call Limited), by sub_code: limited-by-api-access-count is the per-second limit insuranceflow should never reach.",
		}, []string{"sub_code"}),
	}
	for name, c := range map[string]prometheus.Collector{
		NameRateLimitWaiting: m.waiting, NameRateLimitWait: m.wait,
		NameRateLimitGivenBack: m.givenBack, NameTOPRateLimited: m.banned,
	} {
		if err := reg.Register(c); err != nil {
			return nil, &RegisterError{Metric: name, Err: err}
		}
	}
	for _, s := range []string{"accesscontrol.limited-by-api-access-count", "accesscontrol.limited-by-app-access-count"} {
		m.banned.WithLabelValues(s)
	}
	return m, nil
}

// WaitingForSlot moves the waiting gauge.
func (m *RateLimit) WaitingForSlot(delta int) {
	if m != nil {
		m.waiting.Add(float64(delta))
	}
}

// SlotTaken observes an admitted call's wait.
func (m *RateLimit) SlotTaken(waited time.Duration) {
	if m != nil {
		m.wait.Observe(waited.Seconds())
	}
}

// SlotGivenBack counts a slot returned unused.
func (m *RateLimit) SlotGivenBack() {
	if m != nil {
		m.givenBack.Inc()
	}
}

// banShape is a code-7 sub_code: "accesscontrol.limited-by-api-access-count".
var banShape = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,63}$`)

// TOPRateLimited counts a code-7 answer by its sub_code.
func (m *RateLimit) TOPRateLimited(subCode string) {
	if m == nil {
		return
	}
	switch {
	case subCode == "":
		subCode = labelNone
	case !banShape.MatchString(subCode):
		subCode = labelOther
	}
	m.banned.WithLabelValues(subCode).Inc()
}
