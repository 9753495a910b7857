package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"

	"github.com/insuranceflow/insuranceflow/metrics"
)

// openRun is one system driven at one fixed arrival rate: lifecycles start
// on a clock whether or not earlier ones were answered (an open loop), as
// an insurer's business systems send events whether or not insuranceflow
// is slow today.
type openRun struct {
	System         string      `json:"system"`
	Round          int         `json:"round"`
	LifecyclesPerS float64     `json:"offered_lifecycles_per_sec"`
	EventsPerS     float64     `json:"offered_events_per_sec"`
	Lifecycles     int         `json:"lifecycles"`
	Failed         int         `json:"failed"`
	Accept         Percentiles `json:"accept_latency"`
	Delivery       Percentiles `json:"delivery_latency"`
	// History is read from up to completionTaskHistories of the run's
	// histories: how long each workflow task the server created on an
	// activity's completion (the one that schedules a queued callback)
	// waited to be dispatched to the worker, how long callbacks stayed
	// open, and how many events waited for the one before them.
	History historyFigures `json:"history"`
	// EagerShare is the share of this run's callbacks the server handed
	// to the worker eagerly (in the answer to the workflow task that
	// scheduled them, with no trip through matching); -1 = unknown (no
	// server metrics).
	EagerShare float64 `json:"eager_share"`
	// ActivityMeanMS and TOPCallMeanMS are the main worker's mean
	// DeliverCallback activity and TOP call during the run (insuranceflow
	// on the main worker only; 0 = not measured).
	ActivityMeanMS float64  `json:"activity_mean_ms,omitempty"`
	TOPCallMeanMS  float64  `json:"top_call_mean_ms,omitempty"`
	Errors         []string `json:"errors,omitempty"`
}

// openLoop starts lcs[i] at start + i/rate, each lifecycle in its own
// goroutine sending its steps in order. The first step's latency is taken
// from the scheduled start, so a start delayed by a slow system is counted
// against it (no coordinated omission).
func openLoop(ctx context.Context, lcs []lifecycle, rate float64, send driver) []lcRun {
	runs := make([]lcRun, len(lcs))
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now().Add(20 * time.Millisecond)
	var wg sync.WaitGroup
	for i := range lcs {
		at := start.Add(time.Duration(i) * interval)
		if d := time.Until(at); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			runSteps(ctx, lcs[i], &runs[i], at, send)
		}()
	}
	wg.Wait()
	return runs
}

// openSummary fills an openRun from runs and the delivery samples.
func openSummary(system string, round int, rate float64, lcs []lifecycle, runs []lcRun, delivery []time.Duration) openRun {
	events := 0
	for _, l := range lcs {
		events += len(l.Steps)
	}
	o := openRun{System: system, Round: round, LifecyclesPerS: round2(rate),
		EventsPerS: round2(rate * float64(events) / float64(max(len(lcs), 1))), Lifecycles: len(lcs), EagerShare: -1}
	var accept []time.Duration
	for _, r := range runs {
		accept = append(accept, r.accept...)
		if r.err != nil {
			o.Failed++
			if len(o.Errors) < 3 {
				o.Errors = append(o.Errors, r.err.Error())
			}
		}
	}
	o.Accept = percentiles(accept)
	o.Delivery = percentiles(delivery)
	return o
}

// completionTaskHistories bounds the histories an open-loop run reads for
// CompletionTaskWait, so reading them stays a few seconds.
const completionTaskHistories = 100

// completionTaskWaits returns, for each workflow task in a history that the
// server scheduled right after an activity completed, its schedule-to-start
// time: how long it waited to reach a worker.
func completionTaskWaits(evs []*historypb.HistoryEvent) []time.Duration {
	scheduled := map[int64]time.Time{} // event id → when, of such tasks only
	var waits []time.Duration
	for i, e := range evs {
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
			if i > 0 && evs[i-1].GetEventType() == enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED {
				scheduled[e.GetEventId()] = e.GetEventTime().AsTime()
			}
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED:
			if at, ok := scheduled[e.GetWorkflowTaskStartedEventAttributes().GetScheduledEventId()]; ok {
				waits = append(waits, e.GetEventTime().AsTime().Sub(at))
			}
		}
	}
	return waits
}

// callbackWindows reads, in one history, how long each callback stayed
// open as the workflow sees it (its activity's started → completed events,
// by the server's clock: the callback itself, its answer to Temporal and
// the server recording it) and, for each accepted update in order, whether
// the callback before it was still open when it was accepted (waited): such
// an event's callback could go to TOP only after that one. A callback
// scheduled while another was open (insuranceflow's pipelined callback,
// which waits in the worker for the one ahead) is left out of open: its
// window holds that wait, not its own work.
func callbackWindows(evs []*historypb.HistoryEvent, callbackType string) (open []time.Duration, waited []bool) {
	started := map[int64]time.Time{} // callback's scheduled event id → started
	running := map[int64]bool{}      // callbacks scheduled and not yet closed
	pipelined := map[int64]bool{}    // callbacks scheduled while another was running
	for _, e := range evs {
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
			waited = append(waited, len(running) > 0)
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			if e.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == callbackType {
				pipelined[e.GetEventId()] = len(running) > 0
				running[e.GetEventId()] = true
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			if id := e.GetActivityTaskStartedEventAttributes().GetScheduledEventId(); running[id] {
				started[id] = e.GetEventTime().AsTime()
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			id := e.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()
			if at, ok := started[id]; ok && !pipelined[id] {
				open = append(open, e.GetEventTime().AsTime().Sub(at))
			}
			delete(running, id)
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED:
			delete(running, e.GetActivityTaskFailedEventAttributes().GetScheduledEventId())
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
			delete(running, e.GetActivityTaskTimedOutEventAttributes().GetScheduledEventId())
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_CANCELED:
			delete(running, e.GetActivityTaskCanceledEventAttributes().GetScheduledEventId())
		}
	}
	return open, waited
}

// callbackActivity is the registered name of insuranceflow's callback
// activity (activities.Activities.DeliverCallback, registered by method
// name).
const callbackActivity = "DeliverCallback"

// historyFigures is what an open-loop run's histories say.
type historyFigures struct {
	// CompletionTaskWait: see completionTaskWaits.
	CompletionTaskWait Percentiles `json:"completion_task_wait"`
	// CallbackOpen: see callbackWindows.
	CallbackOpen Percentiles `json:"callback_open"`
	// Prompt and Deferred split the delivery latency of the events whose
	// histories were read: callbacks scheduled by the workflow task that
	// accepted their event, and those that waited for the callback before
	// them (see callbackWindows).
	Prompt   Percentiles `json:"delivery_latency_prompt"`
	Deferred Percentiles `json:"delivery_latency_deferred"`
}

// DeferredShare is the share of events, in %, whose callback waited for
// the one before it.
func (h historyFigures) DeferredShare() float64 {
	n := h.Prompt.Count + h.Deferred.Count
	if n == 0 {
		return 0
	}
	return float64(h.Deferred.Count) * 100 / float64(n)
}

// readHistories reads up to completionTaskHistories histories of the run's
// lifecycles (workflow IDs by id) and summarises them; runs must hold each
// event's accept and delivery times.
func readHistories(ctx context.Context, c client.Client, lcs []lifecycle, runs []lcRun, id func(bizID string) string, callbackType string) historyFigures {
	var waits, open, prompt, deferred []time.Duration
	read := 0
	for i, l := range lcs {
		if read == completionTaskHistories {
			break
		}
		if runs[i].err != nil {
			continue
		}
		evs, err := historyOf(ctx, c, id(l.BizID))
		if err != nil {
			continue // a history that cannot be read is left out
		}
		read++
		waits = append(waits, completionTaskWaits(evs)...)
		o, late := callbackWindows(evs, callbackType)
		open = append(open, o...)
		r := runs[i]
		for k := range min(len(late), len(r.acceptedAt), len(r.deliveredAt)) {
			d := r.deliveredAt[k].Sub(r.acceptedAt[k])
			if late[k] {
				deferred = append(deferred, d)
			} else {
				prompt = append(prompt, d)
			}
		}
	}
	return historyFigures{CompletionTaskWait: percentiles(waits), CallbackOpen: percentiles(open),
		Prompt: percentiles(prompt), Deferred: percentiles(deferred)}
}

// baselineDelivery waits (up to timeout) until every accepted baseline
// event's callback has started, and returns accept → callback start.
func baselineDelivery(ctx context.Context, cl *callbackLog, lcs []lifecycle, runs []lcRun, timeout time.Duration) []time.Duration {
	deadline := time.Now().Add(timeout)
	for {
		missing := 0
		for i, l := range lcs {
			if len(cl.started(baselineWorkflowID(l.BizID))) < len(runs[i].acceptedAt) {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	var out []time.Duration
	for i, l := range lcs {
		st := cl.started(baselineWorkflowID(l.BizID))
		runs[i].deliveredAt = nil
		for k, acc := range runs[i].acceptedAt {
			if k >= len(st) {
				runs[i].err = fmt.Errorf("%s: callback %d never started", l.BizID, k+1)
				break
			}
			out = append(out, st[k].Sub(acc))
			runs[i].deliveredAt = append(runs[i].deliveredAt, st[k])
		}
	}
	return out
}

// eagerCounter reads the Temporal server's count of activities it
// dispatched eagerly (the activity_eager_execution counter of its
// Prometheus endpoint), summed over its label sets.
func eagerCounter(ctx context.Context, metricsURL string) (float64, error) {
	v, err := scrapeSums(ctx, metricsURL, "activity_eager_execution")
	if err != nil {
		return 0, fmt.Errorf("the Temporal server's metrics: %w", err)
	}
	return v[0], nil
}

// heartbeatCounter reads how many activity heartbeats the Temporal
// server's frontend has received (its service_requests counter for
// RecordActivityTaskHeartbeat), outside the server's own namespace.
func heartbeatCounter(ctx context.Context, metricsURL string) (float64, error) {
	body, err := scrape(ctx, metricsURL)
	if err != nil {
		return 0, err
	}
	return sumSamples(bufio.NewScanner(bytes.NewReader(body)), "service_requests", isHeartbeatRequest)
}

// isHeartbeatRequest keeps the frontend's RecordActivityTaskHeartbeat
// samples of any namespace but temporal_system.
func isHeartbeatRequest(labels string) bool {
	return strings.Contains(labels, `operation="RecordActivityTaskHeartbeat"`) &&
		strings.Contains(labels, `service_name="frontend"`) && !strings.Contains(labels, `namespace="temporal_system"`)
}

// The worker's histograms that say where a callback's time goes: the
// whole DeliverCallback activity (the SDK's) and the TOP call in it.
var workerTimingSeries = []string{
	"temporal_activity_execution_latency_seconds_sum", "temporal_activity_execution_latency_seconds_count",
	metrics.NameCallbackDuration + "_sum", metrics.NameCallbackDuration + "_count",
}

// workerTiming is the mean callback activity and TOP call between two
// scrapes of the worker's metrics, in ms.
func workerTiming(before, after []float64) (activityMS, topCallMS float64) {
	mean := func(sum, count int) float64 {
		n := after[count] - before[count]
		if n <= 0 {
			return 0
		}
		return round2((after[sum] - before[sum]) / n * 1000)
	}
	return mean(0, 1), mean(2, 3)
}

// scrapeSums reads a Prometheus endpoint once and returns, for each name,
// the sum of its samples.
func scrapeSums(ctx context.Context, url string, names ...string) ([]float64, error) {
	body, err := scrape(ctx, url)
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(names))
	for i, n := range names {
		if out[i], err = sumCounter(bufio.NewScanner(bytes.NewReader(body)), n); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// scrape reads a Prometheus endpoint once.
func scrape(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: HTTP %d", url, resp.StatusCode)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	return body, nil
}

// sumCounter adds the samples of the counter name (with or without the
// _total suffix) in a Prometheus text exposition.
func sumCounter(sc *bufio.Scanner, name string) (float64, error) {
	return sumSamples(sc, name, nil)
}

// sumSamples is sumCounter for the samples whose label set ("{...}", or
// "" without labels) keep accepts; a nil keep accepts every one.
func sumSamples(sc *bufio.Scanner, name string, keep func(labels string) bool) (float64, error) {
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	sum := 0.0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		metric, rest, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		base, labels, _ := strings.Cut(metric, "{")
		if base != name && base != name+"_total" || keep != nil && !keep(labels) {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil || math.IsNaN(v) {
			return 0, fmt.Errorf("metric %s: value %q is not a number", name, fields[0])
		}
		sum += v
	}
	return sum, sc.Err()
}
