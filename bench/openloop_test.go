package main

import (
	"bufio"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/insuranceflow/insuranceflow/store"
)

// TestOpenLoopTimesFromTheScheduledStart: lifecycles start on the clock
// even while earlier ones wait for answers, and a first step's latency
// includes any delay behind its scheduled start (no coordinated omission).
func TestOpenLoopTimesFromTheScheduledStart(t *testing.T) {
	lcs := plan("BNO", 4, 0, 1)
	for i := range lcs {
		lcs[i].Steps = lcs[i].Steps[:2]
	}
	var mu sync.Mutex
	var firstSends []time.Time
	send := func(ctx context.Context, l lifecycle, k int) error {
		if k == 0 {
			mu.Lock()
			firstSends = append(firstSends, time.Now())
			mu.Unlock()
			time.Sleep(300 * time.Millisecond) // slower than the 100 ms interval
		}
		if l.BizID == lcs[3].BizID && k == 1 {
			return errors.New("refused")
		}
		return nil
	}
	t0 := time.Now()
	runs := openLoop(t.Context(), lcs, 10, send)
	if d := time.Since(t0); d > 900*time.Millisecond {
		t.Fatalf("4 lifecycles at 10/s, each 300 ms, took %v: the loop waited for answers", d)
	}
	if len(firstSends) != 4 || firstSends[3].Sub(firstSends[0]) > 450*time.Millisecond {
		t.Fatalf("first sends %v, want 4 about 100 ms apart", firstSends)
	}
	for i, r := range runs[:3] {
		if r.err != nil || len(r.accept) != 2 || r.accept[0] < 300*time.Millisecond || r.accept[1] > 100*time.Millisecond {
			t.Fatalf("run %d = %+v, want a ≥300 ms first step and a fast second", i, r)
		}
	}
	if runs[3].err == nil || !strings.Contains(runs[3].err.Error(), "step 2") {
		t.Fatalf("run 3 err = %v, want step 2 refused", runs[3].err)
	}
	o := openSummary("x", 1, 10, lcs, runs, nil)
	if o.Failed != 1 || o.Accept.Count != 7 || o.EventsPerS != 20 || o.EagerShare != -1 {
		t.Fatalf("summary %+v, want 1 failed, 7 accepts, 20 events/s offered, eager unknown", o)
	}
}

func TestBaselineDelivery(t *testing.T) {
	base := time.Date(2025, 4, 8, 10, 0, 0, 0, time.UTC)
	lcs := []lifecycle{{BizID: "BND1", Steps: happySteps()[:2]}}
	runs := []lcRun{{acceptedAt: []time.Time{base, base.Add(time.Second)}}}
	cl := newCallbackLog()
	id := baselineWorkflowID("BND1")
	cl.at[id] = []time.Time{base.Add(-time.Millisecond), base.Add(time.Second + 3*time.Millisecond)}
	got := baselineDelivery(t.Context(), cl, lcs, runs, time.Second)
	if len(got) != 2 || got[0] != -time.Millisecond || got[1] != 3*time.Millisecond || runs[0].err != nil {
		t.Fatalf("delivery %v err %v, want [-1ms 3ms]", got, runs[0].err)
	}
	cl.at[id] = cl.at[id][:1]
	if baselineDelivery(t.Context(), cl, lcs, runs, 100*time.Millisecond); runs[0].err == nil {
		t.Fatal("a callback that never started was not an error")
	}
}

func TestSumCounter(t *testing.T) {
	const text = `# HELP activity_eager_execution x
# TYPE activity_eager_execution counter
activity_eager_execution{namespace="default",taskqueue="a"} 3
activity_eager_execution_total{namespace="default",taskqueue="b"} 4.5
activity_eager_execution_other 100
other 7
`
	got, err := sumCounter(bufio.NewScanner(strings.NewReader(text)), "activity_eager_execution")
	if err != nil || got != 7.5 {
		t.Fatalf("sum = %v, %v; want 7.5", got, err)
	}
	if _, err := sumCounter(bufio.NewScanner(strings.NewReader("activity_eager_execution x\n")), "activity_eager_execution"); err == nil {
		t.Fatal("a non-number value was accepted")
	}
}

// TestHeartbeatSamples: only the frontend's heartbeat requests outside
// the server's own namespace count.
func TestHeartbeatSamples(t *testing.T) {
	const text = `service_requests{namespace="default",operation="RecordActivityTaskHeartbeat",service_name="frontend"} 4
service_requests{namespace="default",operation="RecordActivityTaskHeartbeat",service_name="history"} 4
service_requests{namespace="temporal_system",operation="RecordActivityTaskHeartbeat",service_name="frontend"} 9
service_requests{namespace="default",operation="PollActivityTaskQueue",service_name="frontend"} 50
service_requests{namespace="other",operation="RecordActivityTaskHeartbeat",service_name="frontend"} 1
`
	got, err := sumSamples(bufio.NewScanner(strings.NewReader(text)), "service_requests", isHeartbeatRequest)
	if err != nil || got != 5 {
		t.Fatalf("heartbeats = %v, %v; want 5", got, err)
	}
}

func TestSpreadOf(t *testing.T) {
	s := spreadOf([]float64{3, 1, 2})
	if s.Median != 2 || s.Min != 1 || s.Max != 3 || s.String() != "2.00 (1.00–3.00)" || s.Rounds[0] != 3 {
		t.Fatalf("spread %+v", s)
	}
	if s := spreadOf([]float64{1, 2, 4, 10}); s.Median != 3 {
		t.Fatalf("even count median %v, want 3", s.Median)
	}
	if s := spreadOf(nil); s.Median != 0 {
		t.Fatalf("empty spread %+v", s)
	}
}

// TestDispatchOf reads a history in which the second callback was queued
// when the first completed and was scheduled by the next workflow task,
// and the third was queued but scheduled one task later.
func TestDispatchOf(t *testing.T) {
	var evs []*historypb.HistoryEvent
	add := func(typ enumspb.EventType, wftCompleted int64) {
		e := &historypb.HistoryEvent{EventId: int64(len(evs) + 1), EventType: typ}
		if typ == enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED {
			e.Attributes = &historypb.HistoryEvent_ActivityTaskScheduledEventAttributes{
				ActivityTaskScheduledEventAttributes: &historypb.ActivityTaskScheduledEventAttributes{WorkflowTaskCompletedEventId: wftCompleted}}
		}
		evs = append(evs, e)
	}
	const (
		acc  = enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
		sch  = enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
		done = enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
		wftC = enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
	)
	add(wftC, 0) // 1
	add(acc, 0)  // 2
	add(sch, 1)  // 3
	add(acc, 0)  // 4: the second event, queued
	add(acc, 0)  // 5: the third
	add(done, 0) // 6
	add(wftC, 0) // 7
	add(sch, 7)  // 8: scheduled by the completion's task
	add(done, 0) // 9
	add(wftC, 0) // 10
	add(wftC, 0) // 11
	add(sch, 11) // 12: one task too late
	add(done, 0) // 13: nothing queued
	d := dispatchOf(evs)
	if d.Queued != 2 || d.SameTask != 1 {
		t.Fatalf("dispatch %+v, want 2 queued, 1 in the completion task", d)
	}
	if historySize(evs) <= 0 {
		t.Fatal("history size is 0")
	}
}

func TestModelCapacity(t *testing.T) {
	in := capacityInputs{ActionsPerLifecycle: 16, HistoryEvents: 50, HistoryBytes: 10 << 10, StoreRows: 11, StoreBytes: 4 << 10,
		CPUSecondsPerLifecyle: 0.04, WorkerRSSMiB: 180, WorkerLifecyclesPerSec: 8, ShardActionsPerSec: 100, ServerShards: 1,
		PricePerMillion: 50, PeakFactor: 10}
	m := modelCapacity(in, []int{1_000, 1_000_000})
	small, big := m.Rows[0], m.Rows[1]
	if small.ActionsPerDay != 16_000 || small.Workers != minWorkers || small.Shards != minShards {
		t.Fatalf("1,000/day: %+v", small)
	}
	// 1e6/day × 10 / 86400 = 115.7 lifecycles/s at the peak; ÷ (0.5 × 8) →
	// 29 workers; × 16 = 1852 actions/s ÷ 50 → 38 → 64 shards.
	if big.Workers != 29 || big.Shards != 64 || big.WorkerMemMiB != 29*180 {
		t.Fatalf("1,000,000/day: %+v", big)
	}
	if got := big.PricePerMonthUSD; got < 23_999 || got > 24_001 { // 16e6 × 30 / 1e6 × $50
		t.Fatalf("price %v, want 24000", got)
	}
	md := m.markdown()
	for _, s := range []string{"| per day | 1,000 policies | 1,000,000 policies | from |", "| Temporal actions | 16,000 | 16,000,000 |", pricingURL, "Extrapolated:"} {
		if !strings.Contains(md, s) {
			t.Fatalf("capacity markdown lacks %q:\n%s", s, md)
		}
	}
	if thousands(-1234567.4) != "-1,234,567" || thousands(999) != "999" {
		t.Fatalf("thousands: %q %q", thousands(-1234567.4), thousands(999))
	}
}

func TestStoreFiguresOf(t *testing.T) {
	before := storeSample{Bytes: 1000, Rows: map[string]int{"policies": 0, "events": 0, "attempts": 0}}
	after := storeSample{Bytes: 41000, Rows: map[string]int{"policies": 10, "events": 50, "attempts": 52}}
	f := storeFiguresOf(before, after, 10)
	if f.RowsPerLifecycle != 11.2 || f.BytesPerLifecycle != 4000 || f.RowsByTablePer1000["attempts"] != 5200 {
		t.Fatalf("store figures %+v", f)
	}
}

// TestSampleStore reads a real SQLite store the store package created.
func TestSampleStore(t *testing.T) {
	url := "sqlite://" + t.TempDir() + "/s.db"
	st, err := store.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := sampleStore(t.Context(), url, "BNZ")
	if err != nil {
		t.Fatal(err)
	}
	if s.Bytes <= 0 || len(s.Rows) != len(storeTables) || s.Rows["events"] != 0 {
		t.Fatalf("sample %+v, want a size and zero rows in each table", s)
	}
	if _, err := sampleStore(t.Context(), "mysql://x", "BNZ"); err == nil || !strings.Contains(err.Error(), "scheme") {
		t.Fatalf("err = %v, want an unknown-scheme error", err)
	}
}

func TestWorkerTiming(t *testing.T) {
	before := []float64{1.0, 100, 0.5, 100}
	after := []float64{1.2, 110, 0.52, 110} // 10 activities, 0.2 s; 10 calls, 0.02 s
	act, call := workerTiming(before, after)
	if act != 20 || call != 2 {
		t.Fatalf("timing = %v, %v ms; want 20 and 2", act, call)
	}
	if act, call := workerTiming(before, before); act != 0 || call != 0 {
		t.Fatalf("no samples gave %v, %v; want 0", act, call)
	}
}

// TestCompletionTaskWaits: only a workflow task scheduled right after an
// activity completed is timed, from its scheduled to its started event;
// the task an update or a start brought is not.
func TestCompletionTaskWaits(t *testing.T) {
	base := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	id := int64(0)
	ev := func(ms int, typ enumspb.EventType, scheduled int64) *historypb.HistoryEvent {
		id++
		e := &historypb.HistoryEvent{EventId: id, EventType: typ, EventTime: timestamppb.New(base.Add(time.Duration(ms) * time.Millisecond))}
		if typ == enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED {
			e.Attributes = &historypb.HistoryEvent_WorkflowTaskStartedEventAttributes{
				WorkflowTaskStartedEventAttributes: &historypb.WorkflowTaskStartedEventAttributes{ScheduledEventId: scheduled},
			}
		}
		return e
	}
	evs := []*historypb.HistoryEvent{
		ev(0, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, 0),
		ev(1, enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, 0), // 2: the start's
		ev(30, enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED, 2),
		ev(32, enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, 0),
		ev(33, enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, 0),
		ev(33, enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED, 0),
		ev(36, enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, 0),
		ev(36, enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, 0), // 8: the completion's
		ev(61, enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED, 8),
	}
	got := completionTaskWaits(evs)
	if want := []time.Duration{25 * time.Millisecond}; !slices.Equal(got, want) {
		t.Fatalf("waits %v, want %v", got, want)
	}
}

// TestCallbackWindows: a callback is open from its activity's started to
// its completed event; an event counts as deferred when its callback was
// scheduled by a later workflow task than the one that accepted it, and
// activities of other types are neither.
func TestCallbackWindows(t *testing.T) {
	base := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	id := int64(0)
	ev := func(ms int, typ enumspb.EventType, attrs func(*historypb.HistoryEvent)) *historypb.HistoryEvent {
		id++
		e := &historypb.HistoryEvent{EventId: id, EventType: typ, EventTime: timestamppb.New(base.Add(time.Duration(ms) * time.Millisecond))}
		if attrs != nil {
			attrs(e)
		}
		return e
	}
	scheduled := func(activityType string) func(*historypb.HistoryEvent) {
		return func(e *historypb.HistoryEvent) {
			e.Attributes = &historypb.HistoryEvent_ActivityTaskScheduledEventAttributes{ActivityTaskScheduledEventAttributes: &historypb.ActivityTaskScheduledEventAttributes{
				ActivityType: &commonpb.ActivityType{Name: activityType}}}
		}
	}
	started := func(sched int64) func(*historypb.HistoryEvent) {
		return func(e *historypb.HistoryEvent) {
			e.Attributes = &historypb.HistoryEvent_ActivityTaskStartedEventAttributes{ActivityTaskStartedEventAttributes: &historypb.ActivityTaskStartedEventAttributes{ScheduledEventId: sched}}
		}
	}
	completed := func(sched int64) func(*historypb.HistoryEvent) {
		return func(e *historypb.HistoryEvent) {
			e.Attributes = &historypb.HistoryEvent_ActivityTaskCompletedEventAttributes{ActivityTaskCompletedEventAttributes: &historypb.ActivityTaskCompletedEventAttributes{ScheduledEventId: sched}}
		}
	}
	const (
		wtCompleted = enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
		accepted    = enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
		actSched    = enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
		actStarted  = enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED
		actDone     = enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
	)
	evs := []*historypb.HistoryEvent{
		ev(0, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, nil),
		ev(9, wtCompleted, nil),                 // 2: task 1
		ev(9, accepted, nil),                    // event 1, accepted in task 1
		ev(9, actSched, scheduled("Callback")),  // 4: its callback, in task 1
		ev(9, actStarted, started(4)),           // 5
		ev(14, actDone, completed(4)),           // open 5 ms
		ev(20, wtCompleted, nil),                // task 2
		ev(20, accepted, nil),                   // event 2, accepted in task 2
		ev(20, actSched, scheduled("Callback")), // 9: in task 2
		ev(21, actSched, scheduled("Notify")),   // 10: not a callback
		ev(21, actStarted, started(9)),
		ev(22, actStarted, started(10)),
		ev(30, wtCompleted, nil),                // 13: task 3: callback 9 still open
		ev(30, accepted, nil),                   // event 3: waited
		ev(30, actSched, scheduled("Callback")), // 15: pipelined behind 9
		ev(30, actStarted, started(15)),
		ev(31, actDone, completed(10)), // not a callback: no window
		ev(33, actDone, completed(9)),  // open 12 ms
		ev(35, actDone, completed(15)), // pipelined: its window holds its wait, left out
		ev(40, wtCompleted, nil),
		ev(40, accepted, nil), // event 4: nothing open
	}
	open, deferred := callbackWindows(evs, "Callback")
	if want := []time.Duration{5 * time.Millisecond, 12 * time.Millisecond}; !slices.Equal(open, want) {
		t.Errorf("open %v, want %v", open, want)
	}
	if want := []bool{false, false, true, false}; !slices.Equal(deferred, want) {
		t.Errorf("deferred %v, want %v", deferred, want)
	}
}
