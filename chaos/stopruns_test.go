package main

import (
	"context"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	sdkpb "go.temporal.io/api/sdk/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// runs is a runReader over one policy's runs, listed newest first as
// visibility does, each with its static summary.
type runs []struct {
	id, summary string
	status      enumspb.WorkflowExecutionStatus
}

func (r runs) ListWorkflow(context.Context, *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	resp := &workflowservice.ListWorkflowExecutionsResponse{}
	for i := len(r) - 1; i >= 0; i-- {
		resp.Executions = append(resp.Executions, &workflowpb.WorkflowExecutionInfo{
			Execution: &commonpb.WorkflowExecution{WorkflowId: "policy-P", RunId: r[i].id},
			StartTime: timestamppb.New(t0.Add(time.Duration(i) * time.Second)),
			Status:    r[i].status,
		})
	}
	return resp, nil
}

func (r runs) DescribeWorkflowExecution(_ context.Context, _, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	for _, run := range r {
		if run.id == runID {
			p, err := converter.GetDefaultDataConverter().ToPayload(run.summary)
			if err != nil {
				return nil, err
			}
			return &workflowservice.DescribeWorkflowExecutionResponse{
				ExecutionConfig: &workflowpb.WorkflowExecutionConfig{UserMetadata: &sdkpb.UserMetadata{Summary: p}},
			}, nil
		}
	}
	return nil, nil
}

// TestCheckResumes: a run a sweep started is fine after a stopped run, and
// a violation after a completed one; a run a report started may follow
// anything.
func TestCheckResumes(t *testing.T) {
	const (
		report  = "Policy P · HOME_PROPERTY"
		resumed = "Policy P" + policyclient.ResumedSummary + "cancelled"
	)
	completed, cancelled := enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED
	v := violations{}
	if err := checkResumes(context.Background(), runs{
		{"r1", report, cancelled}, {"r2", resumed, completed}, {"r3", report, completed}, {"r4", report, cancelled},
		{"r5", resumed, completed},
	}, "P", v); err != nil || v.count() != 0 {
		t.Fatalf("resumes after stopped runs: %v, %v; want none", v.evidence(), err)
	}
	if err := checkResumes(context.Background(), runs{
		{"r1", report, cancelled}, {"r2", report, completed}, {"r3", resumed, completed},
	}, "P", v); err != nil || v.count() != 1 || !strings.Contains(v.evidence()[0], "run r3") || !strings.Contains(v.evidence()[0], "after run r2") {
		t.Fatalf("a resume after a completed run: %v, %v; want r3 after r2", v.evidence(), err)
	}
}

func TestHasQueuedBehind(t *testing.T) {
	st := func(cbs ...workflows.EventCallback) workflows.Status {
		var s workflows.Status
		for i, cb := range cbs {
			s.Events = append(s.Events, workflows.EventStatus{Seq: int64(i + 1), Callback: cb})
		}
		return s
	}
	for _, tt := range []struct {
		name string
		st   workflows.Status
		want bool
	}{
		{"none", st(), false},
		{"one sending", st(workflows.EventDelivered, workflows.EventSending), false},
		{"one queued behind the one sending", st(workflows.EventDelivered, workflows.EventSending, workflows.EventQueued), true},
		{"one queued behind a retry", st(workflows.EventRetrying, workflows.EventQueued), true},
		{"queued behind a parked one: nothing at TOP", st(workflows.EventParked, workflows.EventQueued), false},
	} {
		if got := hasQueuedBehind(tt.st); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestJustAtTOP(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	desc := func(state enumspb.PendingActivityState, started time.Time) *workflowservice.DescribeWorkflowExecutionResponse {
		a := &workflowpb.PendingActivityInfo{ActivityType: &commonpb.ActivityType{Name: "DeliverCallback"}, State: state}
		if !started.IsZero() {
			a.LastStartedTime = timestamppb.New(started)
		}
		return &workflowservice.DescribeWorkflowExecutionResponse{PendingActivities: []*workflowpb.PendingActivityInfo{a}}
	}
	for _, tt := range []struct {
		name        string
		d           *workflowservice.DescribeWorkflowExecutionResponse
		atTOP, just bool
	}{
		{"started 100 ms ago", desc(enumspb.PENDING_ACTIVITY_STATE_STARTED, now.Add(-100*time.Millisecond)), true, true},
		{"started 2 s ago", desc(enumspb.PENDING_ACTIVITY_STATE_STARTED, now.Add(-2*time.Second)), true, false},
		{"started, no time given", desc(enumspb.PENDING_ACTIVITY_STATE_STARTED, time.Time{}), true, false},
		{"scheduled only", desc(enumspb.PENDING_ACTIVITY_STATE_SCHEDULED, now), false, false},
		{"no activity", &workflowservice.DescribeWorkflowExecutionResponse{}, false, false},
	} {
		if got := atTOP(tt.d); got != tt.atTOP {
			t.Errorf("%s: atTOP %v, want %v", tt.name, got, tt.atTOP)
		}
		if got := justAtTOP(tt.d, now); got != tt.just {
			t.Errorf("%s: justAtTOP %v, want %v", tt.name, got, tt.just)
		}
	}
}
