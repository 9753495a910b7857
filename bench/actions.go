package main

import (
	"context"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"

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
func countActions(ctx context.Context, c client.Client, lcs []lifecycle, ours, base []lcRun, limit int) (actionFigures, error) {
	var fig actionFigures
	var sum5, sum6 actions.Count
	var n5, n6, nb int
	var sumBase int
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
		if len(l.Steps) == 5 {
			sum5, n5 = sum5.Add(cnt), n5+1
		} else {
			sum6, n6 = sum6.Add(cnt), n6+1
		}
		if base != nil && base[i].err == nil && len(l.Steps) == 5 && nb < limit {
			bevs, err := historyOf(ctx, c, baselineWorkflowID(l.BizID))
			if err != nil {
				return fig, err
			}
			sumBase += actions.Of(bevs).Total()
			nb++
		}
	}
	if n5 > 0 {
		fig.PerLifecycle5 = round2(float64(sum5.Total()) / float64(n5))
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
	return fig, nil
}
