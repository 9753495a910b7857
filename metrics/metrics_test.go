package metrics

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/insuranceflow/insuranceflow/activities"
	"github.com/insuranceflow/insuranceflow/ingress"
	"github.com/insuranceflow/insuranceflow/top"
)

func newMetrics(t *testing.T) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := New(reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m, reg
}

// family returns the gathered family of name, failing when it is absent.
func family(t *testing.T, reg prometheus.Gatherer, name string) *dto.MetricFamily {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f
		}
	}
	t.Fatalf("metric %s not exported", name)
	return nil
}

// series returns the metric of f whose labels are exactly labels.
func series(t *testing.T, f *dto.MetricFamily, labels map[string]string) *dto.Metric {
	t.Helper()
next:
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		for _, l := range m.GetLabel() {
			if labels[l.GetName()] != l.GetValue() {
				continue next
			}
		}
		return m
	}
	t.Fatalf("%s has no series %v", f.GetName(), labels)
	return nil
}

func TestNewRegistersEveryMetricWithKnownSeriesAtZero(t *testing.T) {
	_, reg := newMetrics(t)
	wantSeries := map[string]int{
		NameEventsAccepted:      len(ingress.APIs()),
		NameEventsRejected:      len(ingress.APIs()) * len(ingress.RejectionReasons()),
		NameCallbacksDelivered:  1,
		NameCallbacksRetried:    len(activities.RetriedClasses()),
		NameCallbacksParked:     1,
		NameCallbackDuration:    len(top.Classes()),
		NameCallbackLeaseWait:   1,
		NameParkedCallbacks:     1,
		NameParkedCallbacksTime: 1,
		NamePoliciesResumed:     1,
		// No TOP error seen yet: no series.
		NameTOPErrors:     0,
		NameTOPRejections: 0,
	}
	for name, want := range wantSeries {
		t.Run(name, func(t *testing.T) {
			if got := testutil.CollectAndCount(reg, name); got != want {
				t.Fatalf("%s series = %d, want %d", name, got, want)
			}
		})
	}
	if v := series(t, family(t, reg, NameEventsRejected), map[string]string{"api": "top", "reason": "time_went_backwards"}).GetCounter().GetValue(); v != 0 {
		t.Errorf("pre-created rejected series = %v, want 0", v)
	}
}

func TestCallbackLeaseWaitedObservesSeconds(t *testing.T) {
	m, reg := newMetrics(t)
	m.CallbackLeaseWaited(1500 * time.Millisecond)
	m.CallbackLeaseWaited(20 * time.Millisecond)
	h := family(t, reg, NameCallbackLeaseWait).GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != 2 || h.GetSampleSum() != 1.52 {
		t.Fatalf("lease waits: count %d sum %v, want 2 and 1.52", h.GetSampleCount(), h.GetSampleSum())
	}
}

func TestNewRefusesARegistryThatHasTheMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(reg); err != nil {
		t.Fatal(err)
	}
	_, err := New(reg)
	var rerr *RegisterError
	var already prometheus.AlreadyRegisteredError
	if !errors.As(err, &rerr) || rerr.Metric != NameEventsAccepted || !errors.As(err, &already) {
		t.Fatalf("second New = %v, want a *RegisterError for %s wrapping AlreadyRegisteredError", err, NameEventsAccepted)
	}
	if _, err := New(nil); !errors.As(err, &rerr) {
		t.Fatalf("New(nil) = %v, want a *RegisterError", err)
	}
}

func TestEvents(t *testing.T) {
	m, reg := newMetrics(t)
	m.EventAccepted(ingress.APIJSON)
	m.EventAccepted(ingress.APIJSON)
	m.EventAccepted(ingress.APITOP)
	m.EventRejected(ingress.APIJSON, "illegal_transition")
	m.EventRejected(ingress.APITOP, "duplicate")
	m.EventRejected(ingress.APITOP, "duplicate")
	m.EventRejected(ingress.APIJSON, "Not A Reason!")

	tests := []struct {
		name   string
		metric string
		labels map[string]string
		want   float64
	}{
		{"accepted json", NameEventsAccepted, map[string]string{"api": "json"}, 2},
		{"accepted top", NameEventsAccepted, map[string]string{"api": "top"}, 1},
		{"illegal transition", NameEventsRejected, map[string]string{"api": "json", "reason": "illegal_transition"}, 1},
		{"duplicate", NameEventsRejected, map[string]string{"api": "top", "reason": "duplicate"}, 2},
		{"untouched", NameEventsRejected, map[string]string{"api": "json", "reason": "duplicate"}, 0},
		// A label value outside the expected shape cannot make a series of its own.
		{"odd reason", NameEventsRejected, map[string]string{"api": "json", "reason": "other"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := series(t, family(t, reg, tt.metric), tt.labels).GetCounter().GetValue()
			if got != tt.want {
				t.Fatalf("%s%v = %v, want %v", tt.metric, tt.labels, got, tt.want)
			}
		})
	}
}

func TestCallbacks(t *testing.T) {
	m, reg := newMetrics(t)
	outcomes := []top.Outcome{
		{Class: top.ClassDelivered, Duration: 80 * time.Millisecond},
		{Class: top.ClassDelivered, Duration: 3 * time.Second},
		{Class: top.ClassRetryable, Code: 15, SubCode: "isp.remote-service-error", Duration: 200 * time.Millisecond},
		{Class: top.ClassRetryable, Code: 15, SubCode: "ISP.remote-service-timeout", Duration: 30 * time.Second},
		{Class: top.ClassRateLimited, Code: 7, SubCode: "accesscontrol.limited-by-app-access-count", Duration: time.Millisecond},
		{Class: top.ClassPermanent, Code: 25, Duration: time.Millisecond},
		{Class: top.ClassPermanent, Code: 41, SubCode: "weird sub code!", Duration: time.Millisecond},
		{Class: top.ClassRejected, FailCode: "POLICY_NOT_FOUND", Duration: 10 * time.Millisecond},
		{Class: top.ClassRejected, FailCode: "请勿重复", Duration: 10 * time.Millisecond},
		{Class: top.ClassRetryable, HTTPStatus: 502, Duration: 50 * time.Millisecond},
	}
	for _, o := range outcomes {
		m.CallbackAttempt(o)
	}
	m.CallbackDelivered()
	m.CallbackDelivered()
	m.CallbackRetried(activities.ErrorTypeRetryable)
	m.CallbackRetried(activities.ErrorTypeRateLimited)
	m.CallbackRetried(activities.ErrorTypeRetryable)
	m.CallbackParked()

	t.Run("duration by class", func(t *testing.T) {
		f := family(t, reg, NameCallbackDuration)
		for class, want := range map[string]struct {
			count uint64
			sum   float64
		}{
			"delivered":    {2, 3.08},
			"retryable":    {3, 30.25},
			"rate_limited": {1, 0.001},
			"permanent":    {2, 0.002},
			"rejected":     {2, 0.02},
		} {
			h := series(t, f, map[string]string{"class": class}).GetHistogram()
			if h.GetSampleCount() != want.count || math.Abs(h.GetSampleSum()-want.sum) > 1e-9 {
				t.Errorf("%s{class=%s} count=%d sum=%v, want %d and %v", NameCallbackDuration, class,
					h.GetSampleCount(), h.GetSampleSum(), want.count, want.sum)
			}
		}
		// 80ms lands in the 0.1 bucket, 3s in the 5 bucket.
		h := series(t, f, map[string]string{"class": "delivered"}).GetHistogram()
		for _, b := range h.GetBucket() {
			var want uint64
			switch {
			case b.GetUpperBound() >= 5:
				want = 2
			case b.GetUpperBound() >= 0.1:
				want = 1
			}
			if b.GetCumulativeCount() != want {
				t.Errorf("delivered bucket le=%v = %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
			}
		}
	})
	t.Run("TOP error codes by sub_code family", func(t *testing.T) {
		f := family(t, reg, NameTOPErrors)
		for _, tt := range []struct {
			code, family string
			want         float64
		}{
			{"15", "isp", 2}, {"7", "accesscontrol", 1}, {"25", "none", 1}, {"41", "other", 1},
		} {
			got := series(t, f, map[string]string{"code": tt.code, "sub_code_family": tt.family}).GetCounter().GetValue()
			if got != tt.want {
				t.Errorf("%s{code=%s,sub_code_family=%s} = %v, want %v", NameTOPErrors, tt.code, tt.family, got, tt.want)
			}
		}
		if n := len(f.GetMetric()); n != 4 {
			t.Errorf("%s has %d series, want 4 (a 502 has no TOP code)", NameTOPErrors, n)
		}
	})
	t.Run("TOP rejections by fail_code", func(t *testing.T) {
		f := family(t, reg, NameTOPRejections)
		for code, want := range map[string]float64{"POLICY_NOT_FOUND": 1, "other": 1} {
			if got := series(t, f, map[string]string{"fail_code": code}).GetCounter().GetValue(); got != want {
				t.Errorf("%s{fail_code=%s} = %v, want %v", NameTOPRejections, code, got, want)
			}
		}
	})
	t.Run("delivered retried parked", func(t *testing.T) {
		if got := testutil.ToFloat64(m.callbacksDelivered); got != 2 {
			t.Errorf("delivered = %v, want 2", got)
		}
		if got := testutil.ToFloat64(m.callbacksRetried.WithLabelValues("retryable")); got != 2 {
			t.Errorf("retried{retryable} = %v, want 2", got)
		}
		if got := testutil.ToFloat64(m.callbacksRetried.WithLabelValues("rate_limited")); got != 1 {
			t.Errorf("retried{rate_limited} = %v, want 1", got)
		}
		if got := testutil.ToFloat64(m.callbacksRetried.WithLabelValues("store")); got != 0 {
			t.Errorf("retried{store} = %v, want 0", got)
		}
		if got := testutil.ToFloat64(m.callbacksParked); got != 1 {
			t.Errorf("parked = %v, want 1", got)
		}
	})
}

func TestNilMetricsRecordNothing(t *testing.T) {
	var m *Metrics
	// Each must return without touching the nil receiver.
	m.EventAccepted(ingress.APIJSON)
	m.EventRejected(ingress.APITOP, "duplicate")
	m.CallbackAttempt(top.Outcome{Class: top.ClassDelivered})
	m.CallbackDelivered()
	m.CallbackRetried("retryable")
	m.CallbackParked()
	m.SetParkedCallbacks(3, time.Now())
	// Handed over as the interfaces, a nil *Metrics is a usable value.
	var im ingress.Metrics = m
	var am activities.Metrics = m
	im.EventAccepted(ingress.APITOP)
	am.CallbackParked()
}

func TestLabelShapes(t *testing.T) {
	tests := []struct {
		fn       func(string) string
		in, want string
	}{
		{subCodeFamily, "isp.remote-service-error", "isp"},
		{subCodeFamily, "isv.missing-parameter:insurance_result_a_p_i_request", "isv"},
		{subCodeFamily, "", "none"},
		{subCodeFamily, "no-dot-at-all", "no-dot-at-all"},
		{subCodeFamily, strings.Repeat("x", 40) + ".y", "other"},
		{subCodeFamily, "空.y", "other"},
		{failCode, "ILLEGAL_TRANSITION", "ILLEGAL_TRANSITION"},
		{failCode, "", "none"},
		{failCode, "illegal", "other"},
		{failCode, strings.Repeat("A", 65), "other"},
		{word, "rate_limited", "rate_limited"},
		{word, "Rate-Limited", "other"},
		{word, "", "other"},
	}
	for _, tt := range tests {
		if got := tt.fn(tt.in); got != tt.want {
			t.Errorf("label of %q = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRateLimitMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := NewRateLimit(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.WaitingForSlot(1)
	m.WaitingForSlot(1)
	m.WaitingForSlot(-1)
	m.SlotTaken(300 * time.Millisecond)
	m.SlotGivenBack()
	m.TOPRateLimited("accesscontrol.limited-by-api-access-count")
	m.TOPRateLimited("Weird Sub Code!")
	if got := testutil.ToFloat64(m.waiting); got != 1 {
		t.Errorf("%s = %v, want 1", NameRateLimitWaiting, got)
	}
	if got := testutil.ToFloat64(m.givenBack); got != 1 {
		t.Errorf("%s = %v, want 1", NameRateLimitGivenBack, got)
	}
	if got := testutil.ToFloat64(m.banned.WithLabelValues("accesscontrol.limited-by-api-access-count")); got != 1 {
		t.Errorf("%s{api} = %v, want 1", NameTOPRateLimited, got)
	}
	if got := testutil.ToFloat64(m.banned.WithLabelValues(labelOther)); got != 1 {
		t.Errorf("%s{other} = %v, want 1", NameTOPRateLimited, got)
	}
	if n := testutil.CollectAndCount(m.wait); n != 1 {
		t.Errorf("%s series = %d, want 1", NameRateLimitWait, n)
	}
	var nilM *RateLimit
	nilM.WaitingForSlot(1) // a nil *RateLimit records nothing, and does not panic
	nilM.TOPRateLimited("x")
}
