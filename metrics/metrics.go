// Package metrics owns insuranceflow's Prometheus metrics: the project's own
// (events accepted and rejected, callbacks delivered, retried and parked,
// the TOP call latency, TOP's error codes, the parked callbacks still open)
// and the Temporal SDK's, bridged through the SDK's OpenTelemetry contrib.
//
// Every metric is registered on the prometheus.Registerer passed to New and
// NewSDKHandler; the package keeps no metric in a global, so tests build a
// fresh registry each and the worker serves exactly one. *Metrics is what
// the ingress and the activities record through (their Metrics interfaces);
// a nil *Metrics records nothing, so "metrics off" needs no special case.
//
// Label values are bounded sets: the callers' vocabularies (API names,
// rejection reasons, outcome classes) and TOP's numeric codes, with anything
// outside a conservative shape counted as "other", so a misbehaving gateway
// cannot grow the number of series without limit.
package metrics

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/insuranceflow/insuranceflow/activities"
	"github.com/insuranceflow/insuranceflow/ingress"
	"github.com/insuranceflow/insuranceflow/notify"
	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/top"
)

// Namespace prefixes every project metric.
const Namespace = "insuranceflow"

// The project's metric names, as exported (Namespace included).
const (
	NameEventsAccepted      = Namespace + "_events_accepted_total"
	NameEventsRejected      = Namespace + "_events_rejected_total"
	NameCallbacksDelivered  = Namespace + "_callbacks_delivered_total"
	NameCallbacksRetried    = Namespace + "_callbacks_retried_total"
	NameCallbacksParked     = Namespace + "_callbacks_parked_total"
	NameCallbacksPipelined  = Namespace + "_callbacks_pipelined_total"
	NameCallbackDuration    = Namespace + "_callback_duration_seconds"
	NameCallbackLeaseWait   = Namespace + "_callback_lease_wait_seconds"
	NameTOPErrors           = Namespace + "_top_errors_total"
	NameTOPRejections       = Namespace + "_top_rejections_total"
	NameParkedCallbacks     = Namespace + "_parked_callbacks"
	NameParkedCallbacksTime = Namespace + "_parked_callbacks_checked_timestamp_seconds"
	NameNotifications       = Namespace + "_notifications_total"
	NameNotificationsLost   = Namespace + "_notifications_lost_total"
	NamePoliciesResumed     = Namespace + "_policies_resumed_total"
)

// labelOther replaces a label value outside its expected shape.
const labelOther = "other"

// labelNone is the sub_code family of an error_response without a sub_code.
const labelNone = "none"

// CallbackBuckets are the callback latency histogram's buckets, in seconds:
// from a fast local gateway to the SDKs' 30 s read timeout and beyond.
func CallbackBuckets() []float64 {
	return []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60}
}

// Metrics records the project's metrics. Create it with New; a nil *Metrics
// is valid and records nothing. It is safe for concurrent use.
type Metrics struct {
	eventsAccepted     *prometheus.CounterVec
	eventsRejected     *prometheus.CounterVec
	callbacksDelivered prometheus.Counter
	callbacksRetried   *prometheus.CounterVec
	callbacksParked    prometheus.Counter
	callbacksPipelined *prometheus.CounterVec
	callbackDuration   *prometheus.HistogramVec
	callbackLeaseWait  prometheus.Histogram
	topErrors          *prometheus.CounterVec
	topRejections      *prometheus.CounterVec
	parked             prometheus.Gauge
	parkedCheckedAt    prometheus.Gauge
	notifications      *prometheus.CounterVec
	notificationsLost  *prometheus.CounterVec
	policiesResumed    prometheus.Counter
}

// The interfaces *Metrics is handed to.
var (
	_ ingress.Metrics    = (*Metrics)(nil)
	_ activities.Metrics = (*Metrics)(nil)

	_ activities.NotifyMetrics  = (*Metrics)(nil)
	_ policyclient.SweepMetrics = (*Metrics)(nil)
)

// RegisterError is returned by New and NewSDKHandler when a metric cannot be
// registered, typically because the registry already has one of that name.
type RegisterError struct {
	Metric string
	Err    error
}

func (e *RegisterError) Error() string { return "register metric " + e.Metric + ": " + e.Err.Error() }

func (e *RegisterError) Unwrap() error { return e.Err }

// New creates the project's metrics and registers them on reg. Series whose
// label values are known in advance (each API, rejection reason and outcome
// class) are created at zero, so rate() and increase() see the first event
// and a dashboard shows 0 rather than "no data".
func New(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, &RegisterError{Metric: Namespace, Err: errors.New("no registerer given")}
	}
	m := &Metrics{
		eventsAccepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameEventsAccepted,
			Help: "Insurance-result events the policy workflows accepted as new, by API (json: /v1/insurance-results, top: /router/rest).",
		}, []string{"api"}),
		eventsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameEventsRejected,
			Help: "Insurance-result events not accepted, by API and reason (a workflow rejection reason, duplicate, invalid_request, unavailable or internal).",
		}, []string{"api", "reason"}),
		callbacksDelivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: NameCallbacksDelivered,
			Help: "Callbacks TOP accepted (call_success=true) and the audit trail recorded.",
		}),
		callbacksRetried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameCallbacksRetried,
			Help: "Callback attempts that failed retryably and are retried, by class (retryable, rate_limited, store).",
		}, []string{"class"}),
		callbacksParked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: NameCallbacksParked,
			Help: "Callbacks parked for an operator: rejected by TOP, permanently failing, or out of retry budget.",
		}),
		callbacksPipelined: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameCallbacksPipelined,
			Help: "Callbacks scheduled while the one ahead of them was in flight (pipelined), by how their wait for it ended: go (it was delivered or skipped, so this one went on to TOP) or not_yet (it failed first, or the wait ran out: this one is scheduled again in its turn).",
		}, []string{"turn"}),
		callbackDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    NameCallbackDuration,
			Help:    "Duration of each TOP callback call, by outcome class.",
			Buckets: CallbackBuckets(),
		}, []string{"class"}),
		callbackLeaseWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    NameCallbackLeaseWait,
			Help:    "How long a callback attempt waited for another attempt of the same policy to leave TOP before it could begin: a run stopped from Temporal whose call was still at TOP, or a dead worker's lease lapsing. Rare; a steady rate means runs are being stopped or workers are dying mid-call.",
			Buckets: CallbackBuckets(),
		}),
		topErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameTOPErrors,
			Help: "TOP error_response answers to callbacks, by code and sub_code family (the sub_code's prefix: isp, isv, ...).",
		}, []string{"code", "sub_code_family"}),
		topRejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameTOPRejections,
			Help: "Callbacks TOP refused with call_success=false, by fail_code.",
		}, []string{"fail_code"}),
		parked: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: NameParkedCallbacks,
			Help: "Policies whose callback is parked now (running policy workflows with CallbackState=parked in Temporal visibility).",
		}),
		parkedCheckedAt: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: NameParkedCallbacksTime,
			Help: "Unix time of the last successful count behind " + NameParkedCallbacks + "; 0 until the first.",
		}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameNotifications,
			Help: "Notification sends to the business system (NOTIFY_URL), by type and outcome (sent: a 2xx; failed: retried within NOTIFY_RETRY_BUDGET).",
		}, []string{"type", "outcome"}),
		notificationsLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameNotificationsLost,
			Help: "Notifications whose retry budget (NOTIFY_RETRY_BUDGET) ran out: recorded in the store, never acknowledged by the receiver.",
		}, []string{"type"}),
		policiesResumed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: NamePoliciesResumed,
			Help: "Policies the sweeper gave a new run because their latest run was cancelled, terminated or timed out.",
		}),
	}
	collectors := []struct {
		name string
		c    prometheus.Collector
	}{
		{NameEventsAccepted, m.eventsAccepted},
		{NameEventsRejected, m.eventsRejected},
		{NameCallbacksDelivered, m.callbacksDelivered},
		{NameCallbacksRetried, m.callbacksRetried},
		{NameCallbacksParked, m.callbacksParked},
		{NameCallbacksPipelined, m.callbacksPipelined},
		{NameCallbackDuration, m.callbackDuration},
		{NameCallbackLeaseWait, m.callbackLeaseWait},
		{NameTOPErrors, m.topErrors},
		{NameTOPRejections, m.topRejections},
		{NameParkedCallbacks, m.parked},
		{NameParkedCallbacksTime, m.parkedCheckedAt},
		{NameNotifications, m.notifications},
		{NameNotificationsLost, m.notificationsLost},
		{NamePoliciesResumed, m.policiesResumed},
	}
	for _, c := range collectors {
		if err := reg.Register(c.c); err != nil {
			return nil, &RegisterError{Metric: c.name, Err: err}
		}
	}
	for _, api := range ingress.APIs() {
		m.eventsAccepted.WithLabelValues(api)
		for _, reason := range ingress.RejectionReasons() {
			m.eventsRejected.WithLabelValues(api, reason)
		}
	}
	for _, class := range activities.RetriedClasses() {
		m.callbacksRetried.WithLabelValues(class)
	}
	for _, turn := range activities.PipelinedTurns() {
		m.callbacksPipelined.WithLabelValues(turn)
	}
	for _, class := range top.Classes() {
		m.callbackDuration.WithLabelValues(class.String())
	}
	for _, t := range notify.Types() {
		m.notifications.WithLabelValues(string(t), outcomeSent)
		m.notifications.WithLabelValues(string(t), outcomeFailed)
		m.notificationsLost.WithLabelValues(string(t))
	}
	return m, nil
}

// Notification outcomes, the notifications counter's outcome label.
const (
	outcomeSent   = "sent"
	outcomeFailed = "failed"
)

// notifyType is t as a label: one of notify.Types, or "other".
func notifyType(t notify.Type) string {
	for _, known := range notify.Types() {
		if t == known {
			return string(t)
		}
	}
	return labelOther
}

// NotificationSent counts a notification the receiver acknowledged.
func (m *Metrics) NotificationSent(t notify.Type) {
	if m == nil {
		return
	}
	m.notifications.WithLabelValues(notifyType(t), outcomeSent).Inc()
}

// NotificationFailed counts a send the receiver did not acknowledge.
func (m *Metrics) NotificationFailed(t notify.Type) {
	if m == nil {
		return
	}
	m.notifications.WithLabelValues(notifyType(t), outcomeFailed).Inc()
}

// NotificationLost counts a notification whose retry budget ran out.
func (m *Metrics) NotificationLost(t notify.Type) {
	if m == nil {
		return
	}
	m.notificationsLost.WithLabelValues(notifyType(t)).Inc()
}

// EventAccepted counts an event a workflow accepted as new.
func (m *Metrics) EventAccepted(api string) {
	if m == nil {
		return
	}
	m.eventsAccepted.WithLabelValues(word(api)).Inc()
}

// EventRejected counts an event that was not accepted, and why.
func (m *Metrics) EventRejected(api, reason string) {
	if m == nil {
		return
	}
	m.eventsRejected.WithLabelValues(word(api), word(reason)).Inc()
}

// CallbackAttempt records one TOP call: its duration by class, and TOP's
// error code or fail_code when it answered with one.
func (m *Metrics) CallbackAttempt(out top.Outcome) {
	if m == nil {
		return
	}
	class := out.Class.String()
	if !out.Class.Valid() {
		class = labelOther
	}
	m.callbackDuration.WithLabelValues(class).Observe(max(out.Duration, 0).Seconds())
	switch {
	case out.Code != 0:
		m.topErrors.WithLabelValues(strconv.Itoa(out.Code), subCodeFamily(out.SubCode)).Inc()
	case out.Class == top.ClassRejected:
		m.topRejections.WithLabelValues(failCode(out.FailCode)).Inc()
	}
}

// CallbackDelivered counts a delivered callback.
func (m *Metrics) CallbackDelivered() {
	if m == nil {
		return
	}
	m.callbacksDelivered.Inc()
}

// CallbackRetried counts a failed attempt that will be retried; class is the
// activity's error type.
func (m *Metrics) CallbackRetried(class string) {
	if m == nil {
		return
	}
	m.callbacksRetried.WithLabelValues(word(class)).Inc()
}

// CallbackParked counts a callback parked for an operator.
func (m *Metrics) CallbackParked() {
	if m == nil {
		return
	}
	m.callbacksParked.Inc()
}

// CallbackPipelined counts a pipelined callback's wait for the one ahead;
// turn is one of activities.PipelinedTurns.
func (m *Metrics) CallbackPipelined(turn string) {
	if m == nil {
		return
	}
	m.callbacksPipelined.WithLabelValues(word(turn)).Inc()
}

// CallbackLeaseWaited records an attempt's wait for another attempt's lease.
func (m *Metrics) CallbackLeaseWaited(d time.Duration) {
	if m == nil {
		return
	}
	m.callbackLeaseWait.Observe(d.Seconds())
}

// PolicyResumed counts a policy the sweeper gave a new run.
func (m *Metrics) PolicyResumed() {
	if m == nil {
		return
	}
	m.policiesResumed.Inc()
}

// SetParkedCallbacks sets the open parked callbacks gauge to n, counted at at.
func (m *Metrics) SetParkedCallbacks(n int64, at time.Time) {
	if m == nil {
		return
	}
	m.parked.Set(float64(n))
	m.parkedCheckedAt.Set(float64(at.UnixNano()) / float64(time.Second))
}

// wordShape is what a label value chosen by this project looks like:
// "json", "illegal_transition", "rate_limited".
var wordShape = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)

func word(v string) string {
	if wordShape.MatchString(v) {
		return v
	}
	return labelOther
}

// familyShape is a sub_code prefix: "isp", "isv", "accesscontrol".
var familyShape = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

// subCodeFamily is the part of a sub_code before its first dot, which is
// what decides a retry ("isp.remote-service-error" → "isp"); the rest names
// the exact fault and would make one series per message.
func subCodeFamily(subCode string) string {
	if subCode == "" {
		return labelNone
	}
	family, _, _ := strings.Cut(strings.ToLower(subCode), ".")
	if familyShape.MatchString(family) {
		return family
	}
	return labelOther
}

// failShape is a fail_code: "ILLEGAL_TRANSITION", "POLICY_NOT_FOUND".
var failShape = regexp.MustCompile(`^[A-Z][A-Z0-9_.-]{0,63}$`)

func failCode(v string) string {
	switch {
	case v == "":
		return labelNone
	case failShape.MatchString(v):
		return v
	default:
		return labelOther
	}
}
