package policyclient

import (
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/insuranceflow/insuranceflow/workflows"
)

func TestResumeClosed(t *testing.T) {
	closed := func(ids ...string) *workflowservice.ListWorkflowExecutionsResponse {
		resp := &workflowservice.ListWorkflowExecutionsResponse{}
		for _, id := range ids {
			resp.Executions = append(resp.Executions, &workflowpb.WorkflowExecutionInfo{
				Execution: &commonpb.WorkflowExecution{WorkflowId: id, RunId: "r-" + id},
			})
		}
		return resp
	}
	f := &frontend{
		// A was terminated twice (two listed runs), B was cancelled but has
		// had a later run since, which completed; C timed out.
		list: func(*workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
			return closed("policy-A", "policy-A", "policy-B", "policy-C"), nil
		},
		lastRunOf: map[string]enumspb.WorkflowExecutionStatus{
			"policy-A": enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED,
			"policy-B": enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED,
			"policy-C": enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT,
		},
	}
	tc := startFrontend(t, f)
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	c := &Client{Temporal: tc, TaskQueue: "q", Now: func() time.Time { return now },
		Settings: workflows.Settings{IdleTimeout: time.Hour}}
	since := now.Add(-10 * time.Minute)
	var progress []workflows.ResumeClosedResult
	res, err := c.ResumeClosed(shortContext(t, 10*time.Second), workflows.ResumeClosedInput{TaskQueue: "q", ClosedSince: since},
		func(r workflows.ResumeClosedResult) { progress = append(progress, r) })
	if err != nil {
		t.Fatal(err)
	}
	want := workflows.ResumeClosedResult{Closed: 4, Resumed: 2, Current: 1, Next: now.Add(-visibilityLag)}
	if res != want {
		t.Fatalf("result %+v, want %+v", res, want)
	}
	if len(progress) != 3 {
		t.Errorf("progress called %d times, want once per policy (3)", len(progress))
	}
	q := f.lists[0].GetQuery()
	for _, part := range []string{"WorkflowType = 'Policy'", "TaskQueue = 'q'",
		"ExecutionStatus IN ('Canceled', 'Terminated', 'TimedOut')", "CloseTime >= '2026-12-04T11:50:00Z'"} {
		if !strings.Contains(q, part) {
			t.Errorf("query %q lacks %q", q, part)
		}
	}
	if len(f.starts) != 2 {
		t.Fatalf("%d runs started, want 2 (A and C)", len(f.starts))
	}
	for i, id := range []string{"policy-A", "policy-C"} {
		s := f.starts[i]
		if s.GetWorkflowId() != id || s.GetTaskQueue().GetName() != "q" || s.GetWorkflowType().GetName() != workflows.WorkflowName ||
			s.GetWorkflowIdReusePolicy() != enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE ||
			s.GetWorkflowIdConflictPolicy() != enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING {
			t.Fatalf("start %d = %v", i, s)
		}
		var in workflows.PolicyInput
		decode(t, s.GetInput(), &in)
		if in.BizID != strings.TrimPrefix(id, "policy-") || !in.LoadSnapshot || in.PreviousRunID != "last-run" || in.Settings.IdleTimeout != time.Hour {
			t.Fatalf("start %d input = %+v, want a load asking the stopped run last-run", i, in)
		}
		if got := keywordAttr(t, s.GetSearchAttributes(), workflows.SearchBizID.GetName()); got != in.BizID {
			t.Errorf("start %d BizId attribute = %q", i, got)
		}
	}
}

// A failed run is not resumed: it failed on a policy it could not restore.
func TestResumeLeavesAFailedRun(t *testing.T) {
	f := &frontend{lastRun: enumspb.WORKFLOW_EXECUTION_STATUS_FAILED}
	c := &Client{Temporal: startFrontend(t, f)}
	resumed, err := c.Resume(shortContext(t, 10*time.Second), "A")
	if err != nil || resumed || len(f.starts) != 0 {
		t.Fatalf("Resume = %v, %v with %d starts; want nothing started", resumed, err, len(f.starts))
	}
}
