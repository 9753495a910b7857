// Package actions counts what a workflow history spent in Temporal actions,
// the unit Temporal Cloud bills and the figure the README quotes per policy
// lifecycle. It reads only history events, so the same count comes from a
// dev server, a cluster or a recorded JSON history.
package actions

import (
	"fmt"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
)

// Count is one history's (or several histories') actions by kind.
type Count struct {
	Starts          int `json:"starts"`           // workflow started (incl. update-with-start and continue-as-new runs)
	Updates         int `json:"updates"`          // updates accepted (validator rejections write nothing)
	Activities      int `json:"activities"`       // activities scheduled
	ActivityRetries int `json:"activity_retries"` // extra attempts of those activities
	LocalActivities int `json:"local_activities"` // local activity markers
	Timers          int `json:"timers"`           // timers started
	Upserts         int `json:"upserts"`          // search attribute upserts
	Signals         int `json:"signals"`          // signals received
}

// Total is the sum of every kind.
func (c Count) Total() int {
	return c.Starts + c.Updates + c.Activities + c.ActivityRetries + c.LocalActivities + c.Timers + c.Upserts + c.Signals
}

// Add returns c + o.
func (c Count) Add(o Count) Count {
	return Count{
		Starts:          c.Starts + o.Starts,
		Updates:         c.Updates + o.Updates,
		Activities:      c.Activities + o.Activities,
		ActivityRetries: c.ActivityRetries + o.ActivityRetries,
		LocalActivities: c.LocalActivities + o.LocalActivities,
		Timers:          c.Timers + o.Timers,
		Upserts:         c.Upserts + o.Upserts,
		Signals:         c.Signals + o.Signals,
	}
}

// Of counts the actions in a list of history events.
func Of(events []*historypb.HistoryEvent) Count {
	var c Count
	for _, e := range events {
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
			c.Starts++
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
			c.Updates++
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			c.Activities++
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			// The started event is written once, for the last attempt, and
			// carries how many attempts there were.
			if a := int(e.GetActivityTaskStartedEventAttributes().GetAttempt()); a > 1 {
				c.ActivityRetries += a - 1
			}
		case enumspb.EVENT_TYPE_MARKER_RECORDED:
			if e.GetMarkerRecordedEventAttributes().GetMarkerName() == "LocalActivity" {
				c.LocalActivities++
			}
		case enumspb.EVENT_TYPE_TIMER_STARTED:
			c.Timers++
		case enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
			c.Upserts++
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
			c.Signals++
		}
	}
	return c
}

// Markdown renders counts as a table, one column per labelled count.
func Markdown(labels []string, counts []Count) string {
	var b strings.Builder
	b.WriteString("| action |")
	for _, l := range labels {
		fmt.Fprintf(&b, " %s |", l)
	}
	b.WriteString("\n|---|")
	for range labels {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	rows := []struct {
		name string
		get  func(Count) int
	}{
		{"workflow start", func(c Count) int { return c.Starts }},
		{"updates accepted", func(c Count) int { return c.Updates }},
		{"activities", func(c Count) int { return c.Activities }},
		{"activity retries", func(c Count) int { return c.ActivityRetries }},
		{"local activities", func(c Count) int { return c.LocalActivities }},
		{"timers", func(c Count) int { return c.Timers }},
		{"search attribute upserts", func(c Count) int { return c.Upserts }},
		{"signals", func(c Count) int { return c.Signals }},
		{"**total**", func(c Count) int { return c.Total() }},
	}
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s |", r.name)
		for _, c := range counts {
			if r.name == "**total**" {
				fmt.Fprintf(&b, " **%d** |", r.get(c))
			} else {
				fmt.Fprintf(&b, " %d |", r.get(c))
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}
