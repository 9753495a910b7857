package policyclient

import (
	"slices"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/insuranceflow/insuranceflow/workflows"
)

func TestResumeClosed(t *testing.T) {
	var closedAt map[string]time.Time
	closed := func(ids ...string) *workflowservice.ListWorkflowExecutionsResponse {
		resp := &workflowservice.ListWorkflowExecutionsResponse{}
		for _, id := range ids {
			resp.Executions = append(resp.Executions, &workflowpb.WorkflowExecutionInfo{
				Execution: &commonpb.WorkflowExecution{WorkflowId: id, RunId: "r-" + id},
				CloseTime: timestamppb.New(closedAt[id]),
			})
		}
		return resp
	}
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	closedAt = map[string]time.Time{
		"policy-A": now.Add(-5 * time.Minute), "policy-B": now.Add(-4 * time.Minute),
		"policy-C": now.Add(-3 * time.Minute), "policy-D": now.Add(-30 * time.Minute),
	}
	f := &frontend{
		// A was terminated twice (two listed runs), B was cancelled but has
		// had a later run since, which completed; C timed out; D was
		// cancelled, and its start is refused now.
		list: func(*workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
			return closed("policy-A", "policy-A", "policy-B", "policy-D", "policy-C"), nil
		},
		lastRunOf: map[string]enumspb.WorkflowExecutionStatus{
			"policy-A": enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED,
			"policy-B": enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED,
			"policy-C": enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT,
			"policy-D": enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED,
		},
		startRefused: map[string]bool{"policy-D": true},
	}
	tc := startFrontend(t, f)
	c := &Client{Temporal: tc, TaskQueue: "q", Now: func() time.Time { return now },
		Settings: workflows.Settings{IdleTimeout: time.Hour}}
	since := now.Add(-10 * time.Minute)
	var progress []workflows.ResumeClosedResult
	res, err := c.ResumeClosed(shortContext(t, 10*time.Second), workflows.ResumeClosedInput{TaskQueue: "q", ClosedSince: since},
		func(r workflows.ResumeClosedResult) { progress = append(progress, r) })
	if err != nil {
		t.Fatal(err)
	}
	// D's failure holds the watermark at its close, so the next sweep
	// tries it again; the others go on regardless.
	want := workflows.ResumeClosedResult{Closed: 5, Resumed: 2, Current: 1, Failed: 1, Next: closedAt["policy-D"]}
	if !res.Next.Equal(want.Next) {
		t.Fatalf("next watermark %s, want %s", res.Next, want.Next)
	}
	res.Next = want.Next
	if res != want {
		t.Fatalf("result %+v, want %+v", res, want)
	}
	if len(progress) != 4 {
		t.Errorf("progress called %d times, want once per policy (4)", len(progress))
	}
	q := f.lists[0].GetQuery()
	for _, part := range []string{"WorkflowType = 'Policy'", "TaskQueue = 'q'",
		"ExecutionStatus IN ('Canceled', 'Terminated', 'TimedOut')", "CloseTime >= '2026-12-04T11:50:00Z'"} {
		if !strings.Contains(q, part) {
			t.Errorf("query %q lacks %q", q, part)
		}
	}
	if len(f.starts) != 3 {
		t.Fatalf("%d starts, want 3 (A, D refused, C)", len(f.starts))
	}
	f.starts = slices.DeleteFunc(f.starts, func(s *workflowservice.StartWorkflowExecutionRequest) bool { return s.GetWorkflowId() == "policy-D" })
	for i, id := range []string{"policy-A", "policy-C"} {
		s := f.starts[i]
		if s.GetWorkflowId() != id || s.GetTaskQueue().GetName() != "q" || s.GetWorkflowType().GetName() != workflows.WorkflowName ||
			s.GetWorkflowIdReusePolicy() != enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY ||
			s.GetWorkflowIdConflictPolicy() != enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL {
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

// countResumed is a SweepMetrics that counts.
type countResumed struct{ n int }

func (c *countResumed) PolicyResumed() { c.n++ }

// The activity the worker registers counts each resumed policy once, and
// runs (heartbeating) in an activity context.
func TestSweepActivityCountsResumes(t *testing.T) {
	f := &frontend{
		list: func(*workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
			resp := &workflowservice.ListWorkflowExecutionsResponse{}
			for _, id := range []string{"policy-A", "policy-B", "policy-C"} {
				resp.Executions = append(resp.Executions, &workflowpb.WorkflowExecutionInfo{
					Execution: &commonpb.WorkflowExecution{WorkflowId: id, RunId: "r"}, CloseTime: timestamppb.Now()})
			}
			return resp, nil
		},
		lastRunOf: map[string]enumspb.WorkflowExecutionStatus{
			"policy-A": enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED,
			"policy-B": enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING,
			"policy-C": enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED,
		},
	}
	metrics := &countResumed{}
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivityWithOptions(Sweep{Policies: &Client{Temporal: startFrontend(t, f)}, Metrics: metrics}.ResumeClosed,
		activity.RegisterOptions{Name: workflows.ResumeClosedActivity})
	v, err := env.ExecuteActivity(workflows.ResumeClosedActivity, workflows.ResumeClosedInput{TaskQueue: "q", ClosedSince: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	var res workflows.ResumeClosedResult
	if err := v.Get(&res); err != nil {
		t.Fatal(err)
	}
	if res.Resumed != 2 || res.Current != 1 || metrics.n != 2 {
		t.Fatalf("result %+v, %d counted; want 2 resumed (A, C), 1 current (B), 2 counted", res, metrics.n)
	}
}

// TestResumeAfterARunOpenedMeanwhile is the race between a sweep and a
// report: the sweep's Describe sees the cancelled run; before its start a
// report opens a new run, which loads the store and asks the cancelled
// run for its leftovers. That run does the resume, whether it is still
// open or has completed by the start: the sweep starts nothing and counts
// nothing. Before, a completed one was followed by a further run asking
// the older cancelled run again (its notifications sent again), and an
// open one was joined and counted as resumed.
func TestResumeAfterARunOpenedMeanwhile(t *testing.T) {
	for _, tt := range []struct {
		name string
		f    *frontend
	}{
		{"completed", &frontend{completedSinceDescribe: map[string]bool{"policy-A": true}}},
		{"still open", &frontend{openSinceDescribe: map[string]bool{"policy-A": true}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.f.lastRun = enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED
			c := &Client{Temporal: startFrontend(t, tt.f)}
			resumed, err := c.Resume(shortContext(t, 10*time.Second), "A")
			if err != nil || resumed {
				t.Fatalf("Resume = %v, %v; want not resumed, no error (the report's run did it)", resumed, err)
			}
			if s := tt.f.starts; len(s) != 1 || s[0].GetWorkflowIdReusePolicy() != enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY ||
				s[0].GetWorkflowIdConflictPolicy() != enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL {
				t.Fatalf("starts = %v, want one that only follows a stopped run and joins none", s)
			}
		})
	}
}
