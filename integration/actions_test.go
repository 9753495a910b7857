package integration

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"

	"github.com/insuranceflow/insuranceflow/actions"
	"github.com/insuranceflow/insuranceflow/workflows"
)

var updateReadme = flag.Bool("update-readme", false, "write the measured actions table into README.md")

const (
	actionsStart = "<!-- actions-table:start -->"
	actionsEnd   = "<!-- actions-table:end -->"
	// maxHappyActions is the budget for a 5-event lifecycle.
	maxHappyActions = 16
)

// TestActionsPerLifecycle measures what a policy lifecycle spends in
// Temporal actions, from the real server's histories, and keeps the
// README's table honest (`make figures` rewrites it).
func TestActionsPerLifecycle(t *testing.T) {
	ctx := context.Background()

	// Five happy lifecycles, each event sent as soon as the previous one is
	// accepted (as a business system does); the worst one counts.
	var happy actions.Count
	for i := 0; i < 5; i++ {
		bizID := newBizID("AC")
		for j, step := range lifecycle {
			mustAccept(t, event(bizID, step.stage, step.status, j), int64(j+1), step.state)
		}
		c := countCompleted(ctx, t, bizID)
		if c.Total() > happy.Total() {
			happy = c
		}
	}
	if happy.Total() > maxHappyActions {
		t.Errorf("a 5-event lifecycle spent %d actions (%+v), budget %d", happy.Total(), happy, maxHappyActions)
	}
	if happy.Starts != 1 || happy.Updates != 5 || happy.Activities != 5 {
		t.Errorf("happy lifecycle = %+v, want exactly 1 start, 5 updates and 5 activities", happy)
	}

	// A lifecycle with a failed underwrite reported before the successful one.
	withFailure := newBizID("AF")
	steps := []struct{ stage, status int }{{1, 1}, {2, 2}, {2, 1}, {3, 1}, {5, 1}, {4, 1}}
	for j, s := range steps {
		code, _, e := report(t, event(withFailure, s.stage, s.status, j))
		if code != 202 {
			t.Fatalf("step %d: %d %+v", j, code, e.Error)
		}
	}
	failure := countCompleted(ctx, t, withFailure)

	// A lifecycle whose first callback is rejected, parks, and is retried.
	t.Cleanup(func() { clearFaults(t) })
	setFaults(t, `{"reject_biz_id_pattern":"^APK"}`)
	parked := newBizID("APK")
	mustAccept(t, event(parked, 1, 1, 0), 1, "pre_insured")
	waitParked(t, parked)
	clearFaults(t)
	if code := call(t, "POST", "/v1/policies/"+parked+"/callbacks/retry", map[string]any{"seq": 1}, nil); code != 200 {
		t.Fatalf("retry: %d", code)
	}
	for j, step := range lifecycle[1:] {
		mustAccept(t, event(parked, step.stage, step.status, j+1), int64(j+2), step.state)
	}
	parkRetry := countCompleted(ctx, t, parked)

	// A policy adopted mid-stream: its four events, already reported to
	// TOP by the replaced system, imported in one Update (POST /v1/imports).
	adopted := newBizID("AI")
	var body strings.Builder
	for j, step := range []struct{ stage, status int }{{1, 1}, {2, 1}, {3, 1}, {4, 1}} {
		body.WriteString(importLine(t, event(adopted, step.stage, step.status, j), true) + "\n")
	}
	if code, lines := postImport(t, operatorToken, "", body.String(), false); code != 200 || len(lines) != 5 {
		t.Fatalf("import: %d, %d answer lines", code, len(lines))
	}
	imported := countCompleted(ctx, t, adopted)
	if imported.Starts != 1 || imported.Updates != 1 || imported.LocalActivities != 1 || imported.Total() != 3 {
		t.Errorf("imported policy = %+v (%d actions), want 3: 1 start, 1 update, 1 local activity (the store write), no timer", imported, imported.Total())
	}

	table := actions.Markdown(
		[]string{"5 events, all delivered first time (worst of 5)", "6 events (a failed underwrite reported first)", "5 events, first callback parked then retried",
			"4 events imported as already reported (one Update)"},
		[]actions.Count{happy, failure, parkRetry, imported})
	t.Logf("Temporal actions per lifecycle:\n%s", table)
	if *updateReadme {
		writeReadmeSection(t, actionsStart, actionsEnd, "\n"+table+"\nMeasured by `make figures` ("+
			"`go test ./integration -run TestActionsPerLifecycle -update-readme`) against the pinned dev server.\n")
	}
}

// countCompleted waits for a policy's workflow to complete and counts its history.
func countCompleted(ctx context.Context, t *testing.T, bizID string) actions.Count {
	t.Helper()
	id := workflows.WorkflowID(bizID)
	eventually(t, 30*time.Second, bizID+" completed", func() (bool, string) {
		d, err := env.Temporal.DescribeWorkflowExecution(ctx, id, "")
		if err != nil {
			return false, err.Error()
		}
		s := d.GetWorkflowExecutionInfo().GetStatus()
		return s == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, s.String()
	})
	var events []*historypb.HistoryEvent
	it := env.Temporal.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", id, err)
		}
		events = append(events, e)
	}
	return actions.Of(events)
}

// writeReadmeSection replaces the text between two markers in README.md.
func writeReadmeSection(t *testing.T, start, end, body string) {
	t.Helper()
	const path = "../README.md"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i, j := strings.Index(s, start), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the markers %s … %s", start, end)
	}
	s = s[:i+len(start)] + body + s[j:]
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	fmt.Println("updated README.md")
}
