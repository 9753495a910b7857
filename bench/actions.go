package main

import (
	"context"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/proto"

	"github.com/insuranceflow/insuranceflow/actions"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// actionFigures is the Temporal cost of the measured lifecycles.
type actionFigures struct {
	Histories int `json:"histories"` // lifecycles whose history was read
	// PerLifecycle5 and PerLifecycle6 are the mean total for 5-event and
	// 6-event (failure-then-retry) lifecycles.
	PerLifecycle5 float64 `json:"per_5_event_lifecycle"`
	PerLifecycle6 float64 `json:"per_6_event_lifecycle,omitempty"`
	// Kinds5 is the mean breakdown of a 5-event lifecycle.
	Kinds5 map[string]float64 `json:"kinds_5_event"`
	// Baseline5 is the baseline workflow's mean for 5 events.
	Baseline5 float64 `json:"baseline_per_5_event_lifecycle"`
	// VisibleBaseline5 is the visible baseline's: insuranceflow's count by
	// construction, which this checks.
	VisibleBaseline5 float64 `json:"visible_baseline_per_5_event_lifecycle"`
	// HistoryEvents5 and HistoryBytes5 are a 5-event lifecycle's mean
	// history length and size (the events' protobuf encoding, as the
	// server stores them, before compression).
	HistoryEvents5 float64 `json:"history_events_per_5_event_lifecycle"`
	HistoryBytes5  float64 `json:"history_bytes_per_5_event_lifecycle"`
	// Dispatch is how the next callback of a policy was scheduled when its
	// event was already queued as the previous callback completed.
	Dispatch dispatchFigures `json:"dispatch"`
}

// dispatchFigures answers whether delivering a queued callback costs a
// dispatch of its own: Queued callbacks were waiting in the FIFO when the
// previous one completed; SameTask of them were scheduled by the very
// workflow task that handled that completion (so, with eager activities,
// they started with no further trip through the server's matching).
type dispatchFigures struct {
	Queued   int `json:"queued"`
	SameTask int `json:"scheduled_in_the_completion_task"`
}

// dispatchOf walks one history: at each activity completion, if more
// updates were accepted than activities scheduled, the next callback was
// queued, and it should be scheduled by the first workflow task completed
// after the completion.
func dispatchOf(evs []*historypb.HistoryEvent) dispatchFigures {
	var d dispatchFigures
	accepted, scheduled := 0, 0
	for i, e := range evs {
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
			accepted++
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			scheduled++
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			if accepted <= scheduled {
				continue
			}
			d.Queued++
			var firstWFT int64
			for _, n := range evs[i+1:] {
				if firstWFT == 0 && n.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED {
					firstWFT = n.GetEventId()
				}
				if n.GetEventType() == enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED {
					if n.GetActivityTaskScheduledEventAttributes().GetWorkflowTaskCompletedEventId() == firstWFT {
						d.SameTask++
					}
					break
				}
			}
		}
	}
	return d
}

// historySize is the encoded size of a history's events.
func historySize(evs []*historypb.HistoryEvent) int {
	n := 0
	for _, e := range evs {
		n += proto.Size(e)
	}
	return n
}

// historyOf reads a closed workflow's whole history (latest run).
func historyOf(ctx context.Context, c client.Client, workflowID string) ([]*historypb.HistoryEvent, error) {
	it := c.GetWorkflowHistory(ctx, workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var evs []*historypb.HistoryEvent
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("history of %s: %w", workflowID, err)
		}
		evs = append(evs, e)
	}
	return evs, nil
}

// countActions reads up to limit completed lifecycles' histories of each
// system. A policy workflow closes shortly after its cancel is delivered,
// so each is awaited first: an open history could still grow.
func countActions(ctx context.Context, c client.Client, lcs []lifecycle, ours, base, visible []lcRun, limit int) (actionFigures, error) {
	var fig actionFigures
	var sum5, sum6 actions.Count
	var n5, n6, nb, nv, evs5, bytes5 int
	var sumBase, sumVisible int
	for i, l := range lcs {
		if fig.Histories >= limit {
			break
		}
		if ours[i].err != nil {
			continue
		}
		id := workflows.WorkflowID(l.BizID)
		// Closed, whatever its result: the history is final then.
		_ = c.GetWorkflow(ctx, id, "").Get(ctx, nil)
		evs, err := historyOf(ctx, c, id)
		if err != nil {
			return fig, err
		}
		cnt := actions.Of(evs)
		fig.Histories++
		d := dispatchOf(evs)
		fig.Dispatch.Queued += d.Queued
		fig.Dispatch.SameTask += d.SameTask
		if len(l.Steps) == 5 {
			sum5, n5 = sum5.Add(cnt), n5+1
			evs5 += len(evs)
			bytes5 += historySize(evs)
		} else {
			sum6, n6 = sum6.Add(cnt), n6+1
		}
		if len(l.Steps) != 5 {
			continue
		}
		// The baselines' 5-event runs that completed, up to limit each.
		for _, b := range []struct {
			runs   []lcRun
			id     string
			sum, n *int
		}{
			{base, baselineWorkflowID(l.BizID), &sumBase, &nb},
			{visible, visibleBaselineWorkflowID(l.BizID), &sumVisible, &nv},
		} {
			if b.runs == nil || b.runs[i].err != nil || *b.n >= limit {
				continue
			}
			evs, err := historyOf(ctx, c, b.id)
			if err != nil {
				return fig, err
			}
			*b.sum += actions.Of(evs).Total()
			*b.n++
		}
	}
	if n5 > 0 {
		fig.PerLifecycle5 = round2(float64(sum5.Total()) / float64(n5))
		fig.HistoryEvents5 = round2(float64(evs5) / float64(n5))
		fig.HistoryBytes5 = round2(float64(bytes5) / float64(n5))
		f := func(v int) float64 { return round2(float64(v) / float64(n5)) }
		fig.Kinds5 = map[string]float64{
			"starts": f(sum5.Starts), "updates": f(sum5.Updates), "activities": f(sum5.Activities),
			"activity_retries": f(sum5.ActivityRetries), "local_activities": f(sum5.LocalActivities),
			"timers": f(sum5.Timers), "upserts": f(sum5.Upserts), "signals": f(sum5.Signals),
		}
	}
	if n6 > 0 {
		fig.PerLifecycle6 = round2(float64(sum6.Total()) / float64(n6))
	}
	if nb > 0 {
		fig.Baseline5 = round2(float64(sumBase) / float64(nb))
	}
	if nv > 0 {
		fig.VisibleBaseline5 = round2(float64(sumVisible) / float64(nv))
	}
	return fig, nil
}
