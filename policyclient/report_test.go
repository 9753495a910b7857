package policyclient

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/workflows"
)

const bizID = "24010900100YSKSSG"

// memSnapshots is a Snapshots over a map that counts its loads.
type memSnapshots struct {
	mu    sync.Mutex
	snaps map[string]*workflows.Snapshot
	loads int
}

func (m *memSnapshots) Snapshot(_ context.Context, bizID string) (*workflows.Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.loads++
	return m.snaps[bizID], nil
}

func (m *memSnapshots) loadCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.loads
}

func newClient(t *testing.T, f *frontend, snaps map[string]*workflows.Snapshot) (*Client, *memSnapshots) {
	t.Helper()
	ms := &memSnapshots{snaps: snaps}
	return &Client{
		Temporal:  startFrontend(t, f),
		Snapshots: ms,
		TaskQueue: "test-queue",
		Settings:  workflows.Settings{RetryBudget: time.Hour, IdleTimeout: 24 * time.Hour},
	}, ms
}

func event(stage insurance.Stage, status insurance.Status) insurance.Result {
	return insurance.Result{
		BizID:                  bizID,
		PolicyNumber:           "12345678A",
		Stage:                  stage,
		Status:                 status,
		TimeOfOccurrence:       "2025-04-08 09:55:00",
		BankAccountManagerName: "王小丫",
		InsuranceType:          insurance.TypeHomeProperty,
	}
}

// acceptAll answers every report update with an acceptance of seq 1 in
// state pre_insured, echoing the event's request id.
func acceptAll(t *testing.T) func(*workflowservice.ExecuteMultiOperationRequest) (*workflowservice.ExecuteMultiOperationResponse, error) {
	return func(req *workflowservice.ExecuteMultiOperationRequest) (*workflowservice.ExecuteMultiOperationResponse, error) {
		upd := req.GetOperations()[1].GetUpdateWorkflow()
		var r insurance.Result
		if err := converter.GetDefaultDataConverter().FromPayloads(upd.GetRequest().GetInput().GetArgs(), &r); err != nil {
			t.Errorf("decode report argument: %v", err)
		}
		return multiOpAnswer(updateSuccess(t, upd.GetRequest().GetMeta().GetUpdateId(), workflows.Acceptance{
			BizID: r.BizID, RequestID: r.RequestID, Seq: 1, Stage: r.Stage, Status: r.Status, State: fsm.StatePreInsured,
		})), nil
	}
}

func TestReportStartsThePolicyWorkflow(t *testing.T) {
	underwritten := &workflows.Snapshot{
		State: fsm.StateUnderwritten, InsuranceType: insurance.TypeHomeProperty, LastSeq: 2,
		Accepted: []workflows.Acceptance{{BizID: bizID, RequestID: "sent-before", Seq: 2, Stage: insurance.StageUnderwrite, Status: insurance.StatusSuccess, State: fsm.StateUnderwritten}},
	}
	parked := &workflows.Snapshot{
		State: fsm.StateInsured, InsuranceType: insurance.TypePerformanceBond, LastSeq: 3,
		PendingCallbacks: []workflows.Callback{{Seq: 3, State: workflows.EventParked}, {Seq: 4, State: workflows.EventQueued}},
	}
	tests := []struct {
		name          string
		snap          *workflows.Snapshot
		event         insurance.Result
		wantState     string
		wantType      string
		wantCallbacks string
	}{
		{"new policy, first stage", nil, event(insurance.StagePreInsure, insurance.StatusSuccess), "pre_insured", "home_property", "idle"},
		{"reopened policy, next stage succeeds", underwritten, event(insurance.StageInsure, insurance.StatusSuccess), "insured", "home_property", "idle"},
		{"reopened policy, next stage fails", underwritten, event(insurance.StageInsure, insurance.StatusFailure), "underwritten", "home_property", "idle"},
		{"illegal stage keeps the state", nil, event(insurance.StageCancel, insurance.StatusSuccess), "new", "home_property", "idle"},
		{"stored type and parked head win", parked, event(insurance.StageEndorse, insurance.StatusSuccess), "insured", "performance_bond", "parked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &frontend{multiOp: acceptAll(t)}
			c, _ := newClient(t, f, map[string]*workflows.Snapshot{bizID: tt.snap})
			if tt.snap == nil {
				c.Snapshots = &memSnapshots{}
			}
			if _, err := c.Report(context.Background(), tt.event); err != nil {
				t.Fatalf("Report: %v", err)
			}
			if len(f.multiOps) != 1 {
				t.Fatalf("update-with-start calls=%d, want 1", len(f.multiOps))
			}
			start := f.multiOps[0].GetOperations()[0].GetStartWorkflow()
			if got, want := start.GetWorkflowId(), "policy-"+bizID; got != want {
				t.Errorf("workflow id=%q, want %q", got, want)
			}
			if got, want := start.GetWorkflowType().GetName(), workflows.WorkflowName; got != want {
				t.Errorf("workflow type=%q, want %q", got, want)
			}
			if got, want := start.GetTaskQueue().GetName(), "test-queue"; got != want {
				t.Errorf("task queue=%q, want %q", got, want)
			}
			if got, want := start.GetWorkflowIdConflictPolicy(), enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING; got != want {
				t.Errorf("conflict policy=%v, want %v", got, want)
			}
			sa := start.GetSearchAttributes()
			for name, want := range map[string]string{
				"BizId": bizID, "PolicyState": tt.wantState, "InsuranceType": tt.wantType, "CallbackState": tt.wantCallbacks,
			} {
				if got := keywordAttr(t, sa, name); got != want {
					t.Errorf("search attribute %s=%q, want %q", name, got, want)
				}
			}
			var summary string
			if err := converter.GetDefaultDataConverter().FromPayload(start.GetUserMetadata().GetSummary(), &summary); err != nil {
				t.Fatalf("decode static summary: %v", err)
			}
			if want := "Policy " + bizID + " · " + tt.wantType; summary != want {
				t.Errorf("static summary=%q, want %q", summary, want)
			}
			var in workflows.PolicyInput
			decode(t, start.GetInput(), &in)
			if in.BizID != bizID || in.Settings != c.Settings {
				t.Errorf("input biz_id=%q settings=%+v, want %q %+v", in.BizID, in.Settings, bizID, c.Settings)
			}
			if !reflect.DeepEqual(in.Snapshot, tt.snap) {
				t.Errorf("input snapshot=%+v, want %+v", in.Snapshot, tt.snap)
			}

			upd := f.multiOps[0].GetOperations()[1].GetUpdateWorkflow()
			if got, want := upd.GetRequest().GetInput().GetName(), workflows.UpdateReport; got != want {
				t.Errorf("update name=%q, want %q", got, want)
			}
			if got, want := upd.GetWaitPolicy().GetLifecycleStage(), enumspb.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED; got != want {
				t.Errorf("wait stage=%v, want %v", got, want)
			}
			var sent insurance.Result
			decode(t, upd.GetRequest().GetInput().GetArgs(), &sent)
			want := tt.event.WithRequestID()
			if sent != want {
				t.Errorf("update argument=%v, want %v", sent, want)
			}
			if sent.RequestID == "" {
				t.Errorf("update argument has no request id")
			}
		})
	}
}

func TestReportKnownRequestIDIsAnsweredFromTheStore(t *testing.T) {
	preInsure := event(insurance.StagePreInsure, insurance.StatusSuccess).WithRequestID()
	// The policy has moved on since pre_insure, and its workflow has
	// closed: a run started for the re-sent event could only answer
	// "duplicate" and then idle.
	underwritten := &workflows.Snapshot{
		State: fsm.StateUnderwritten, InsuranceType: insurance.TypeHomeProperty, LastSeq: 2,
		Accepted: []workflows.Acceptance{
			{BizID: bizID, RequestID: preInsure.RequestID, Seq: 1, Stage: insurance.StagePreInsure, Status: insurance.StatusSuccess, State: fsm.StatePreInsured},
			{BizID: bizID, RequestID: "erp-0002", Seq: 2, Stage: insurance.StageUnderwrite, Status: insurance.StatusSuccess, State: fsm.StateUnderwritten},
		},
	}
	explicit := event(insurance.StageUnderwrite, insurance.StatusSuccess)
	explicit.RequestID = "erp-0002"
	explicit.TimeOfOccurrence = "2025-04-08 10:30:00" // the same request id names the same event, whatever else differs

	tests := []struct {
		name  string
		event insurance.Result
		want  workflows.Acceptance
	}{
		{"derived request id", event(insurance.StagePreInsure, insurance.StatusSuccess), underwritten.Accepted[0]},
		{"explicit request id", explicit, underwritten.Accepted[1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &frontend{multiOp: acceptAll(t)}
			c, snaps := newClient(t, f, map[string]*workflows.Snapshot{bizID: underwritten})
			got, err := c.Report(context.Background(), tt.event)
			if err != nil {
				t.Fatalf("Report: %v", err)
			}
			want := tt.want
			want.Duplicate = true
			if got != want {
				t.Fatalf("acceptance=%+v, want %+v", got, want)
			}
			if f.calls() != 0 || snaps.loadCount() != 1 {
				t.Fatalf("temporal calls=%d snapshot loads=%d, want 0 and 1", f.calls(), snaps.loadCount())
			}
		})
	}

	t.Run("unknown request id goes to the workflow", func(t *testing.T) {
		f := &frontend{multiOp: acceptAll(t)}
		c, _ := newClient(t, f, map[string]*workflows.Snapshot{bizID: underwritten})
		insure := event(insurance.StageInsure, insurance.StatusSuccess)
		got, err := c.Report(context.Background(), insure)
		if err != nil {
			t.Fatalf("Report: %v", err)
		}
		if got.Duplicate || got.RequestID != insure.WithRequestID().RequestID {
			t.Fatalf("acceptance=%+v, want the workflow's answer for the new event", got)
		}
		if len(f.multiOps) != 1 {
			t.Fatalf("update-with-start calls=%d, want 1", len(f.multiOps))
		}
	})
}

func TestReportAnswers(t *testing.T) {
	original := workflows.Acceptance{BizID: bizID, RequestID: "r-1", Seq: 1, Stage: insurance.StagePreInsure, Status: insurance.StatusSuccess, State: fsm.StatePreInsured}
	illegal := workflows.IllegalTransitionDetails{State: fsm.StateNew, Stage: "insure", AllowedStages: []string{"pre_insure"}}
	tests := []struct {
		name    string
		outcome func(updateID string) *workflowservice.UpdateWorkflowExecutionResponse
		want    workflows.Acceptance
		wantRej *Rejection
	}{
		{
			name: "accepted",
			outcome: func(id string) *workflowservice.UpdateWorkflowExecutionResponse {
				return updateSuccess(t, id, original)
			},
			want: original,
		},
		{
			name: "duplicate answers the original acceptance",
			outcome: func(id string) *workflowservice.UpdateWorkflowExecutionResponse {
				return updateFailure(id, rejection(workflows.ReasonDuplicate, "request id r-1 was accepted as seq 1", original))
			},
			want: func() workflows.Acceptance { a := original; a.Duplicate = true; return a }(),
		},
		{
			name: "illegal transition carries its details",
			outcome: func(id string) *workflowservice.UpdateWorkflowExecutionResponse {
				return updateFailure(id, rejection(workflows.ReasonIllegalTransition, "stage insure is not allowed in state new", illegal))
			},
			wantRej: &Rejection{Reason: "illegal_transition", Message: "stage insure is not allowed in state new", Details: &illegal},
		},
		{
			name: "mismatch",
			outcome: func(id string) *workflowservice.UpdateWorkflowExecutionResponse {
				return updateFailure(id, rejection(workflows.ReasonPolicyNumberMismatch, "policy_number differs from the policy's"))
			},
			wantRej: &Rejection{Reason: "policy_number_mismatch", Message: "policy_number differs from the policy's"},
		},
		{
			name: "time went backwards",
			outcome: func(id string) *workflowservice.UpdateWorkflowExecutionResponse {
				return updateFailure(id, rejection(workflows.ReasonTimeWentBackwards, "time_of_occurrence is before the last event's"))
			},
			wantRej: &Rejection{Reason: "time_went_backwards", Message: "time_of_occurrence is before the last event's"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &frontend{multiOp: func(req *workflowservice.ExecuteMultiOperationRequest) (*workflowservice.ExecuteMultiOperationResponse, error) {
				return multiOpAnswer(tt.outcome(req.GetOperations()[1].GetUpdateWorkflow().GetRequest().GetMeta().GetUpdateId())), nil
			}}
			c, _ := newClient(t, f, nil)
			got, err := c.Report(context.Background(), event(insurance.StagePreInsure, insurance.StatusSuccess))
			if tt.wantRej != nil {
				var rej *Rejection
				if !errors.As(err, &rej) {
					t.Fatalf("err=%v, want a *Rejection", err)
				}
				if !reflect.DeepEqual(rej, tt.wantRej) {
					t.Fatalf("rejection=%+v (details %+v), want %+v (details %+v)", rej, rej.Details, tt.wantRej, tt.wantRej.Details)
				}
				return
			}
			if err != nil {
				t.Fatalf("Report: %v", err)
			}
			if got != tt.want {
				t.Fatalf("acceptance=%+v, want %+v", got, tt.want)
			}
		})
	}

	t.Run("workflow failure is an error, not a rejection", func(t *testing.T) {
		f := &frontend{multiOp: func(req *workflowservice.ExecuteMultiOperationRequest) (*workflowservice.ExecuteMultiOperationResponse, error) {
			id := req.GetOperations()[1].GetUpdateWorkflow().GetRequest().GetMeta().GetUpdateId()
			return multiOpAnswer(updateFailure(id, rejection("PanicError", "nil map"))), nil
		}}
		c, _ := newClient(t, f, nil)
		_, err := c.Report(context.Background(), event(insurance.StagePreInsure, insurance.StatusSuccess))
		var rej *Rejection
		if err == nil || errors.As(err, &rej) || errors.Is(err, ErrUnavailable) {
			t.Fatalf("err=%v, want a plain error", err)
		}
	})
}

func TestReportInvalidEventIsRefusedBeforeTemporal(t *testing.T) {
	f := &frontend{}
	c, snaps := newClient(t, f, nil)
	bad := event(insurance.StagePreInsure, insurance.StatusSuccess)
	bad.TimeOfOccurrence = "2025-04-08T09:55:00Z"
	_, err := c.Report(context.Background(), bad)
	var verr *insurance.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("err=%v, want *insurance.ValidationError", err)
	}
	if len(verr.Problems) != 1 || verr.Problems[0].Field != "time_of_occurrence" {
		t.Fatalf("problems=%+v, want one for time_of_occurrence", verr.Problems)
	}
	if f.calls() != 0 || snaps.loadCount() != 0 {
		t.Fatalf("temporal calls=%d snapshot loads=%d, want 0 and 0", f.calls(), snaps.loadCount())
	}
}

func TestReportTerminalPolicyIsAnsweredFromTheStore(t *testing.T) {
	cancelled := &workflows.Snapshot{
		State: fsm.StateCancelled, Endorsements: 1, InsuranceType: insurance.TypeHomeProperty, LastSeq: 5,
		Accepted: []workflows.Acceptance{
			{BizID: bizID, RequestID: "cancel-1", Seq: 5, Stage: insurance.StageCancel, Status: insurance.StatusSuccess, State: fsm.StateCancelled},
		},
	}
	t.Run("known request id is a duplicate", func(t *testing.T) {
		f := &frontend{}
		c, _ := newClient(t, f, map[string]*workflows.Snapshot{bizID: cancelled})
		ev := event(insurance.StageCancel, insurance.StatusSuccess)
		ev.RequestID = "cancel-1"
		got, err := c.Report(context.Background(), ev)
		if err != nil {
			t.Fatalf("Report: %v", err)
		}
		want := cancelled.Accepted[0]
		want.Duplicate = true
		if got != want {
			t.Fatalf("acceptance=%+v, want %+v", got, want)
		}
		if f.calls() != 0 {
			t.Fatalf("temporal calls=%d, want 0", f.calls())
		}
	})
	t.Run("new event is an illegal transition", func(t *testing.T) {
		f := &frontend{}
		c, _ := newClient(t, f, map[string]*workflows.Snapshot{bizID: cancelled})
		_, err := c.Report(context.Background(), event(insurance.StageEndorse, insurance.StatusSuccess))
		var rej *Rejection
		if !errors.As(err, &rej) {
			t.Fatalf("err=%v, want *Rejection", err)
		}
		if rej.Reason != workflows.ReasonIllegalTransition {
			t.Errorf("reason=%q, want %q", rej.Reason, workflows.ReasonIllegalTransition)
		}
		wantDetails := &workflows.IllegalTransitionDetails{State: fsm.StateCancelled, Stage: "endorse", AllowedStages: []string{}}
		if !reflect.DeepEqual(rej.Details, wantDetails) {
			t.Errorf("details=%+v, want %+v", rej.Details, wantDetails)
		}
		if want := "stage endorse is not allowed in state cancelled (allowed: none; the policy is cancelled)"; rej.Message != want {
			t.Errorf("message=%q, want %q", rej.Message, want)
		}
		if f.calls() != 0 {
			t.Fatalf("temporal calls=%d, want 0", f.calls())
		}
	})
}

func TestReportRetriesOnceWhenTheRunCloses(t *testing.T) {
	accepted := workflows.Acceptance{BizID: bizID, RequestID: "r-9", Seq: 4, Stage: insurance.StageEndorse, Status: insurance.StatusSuccess, State: fsm.StateInsured}
	closedAfterAccept := func(id string) (*workflowservice.ExecuteMultiOperationResponse, error) {
		return multiOpAnswer(serverFailure(id, acceptedUpdateCompletedWorkflow)), nil
	}
	closedBeforeAccept := func(string) (*workflowservice.ExecuteMultiOperationResponse, error) {
		return nil, serviceerror.NewMultiOperationExecution("update failed", []error{
			serviceerror.NewMultiOperationAborted("aborted"),
			serviceerror.NewNotFound("workflow execution already completed"),
		})
	}
	tests := []struct {
		name      string
		first     func(id string) (*workflowservice.ExecuteMultiOperationResponse, error)
		closeBoth bool
	}{
		{"closed after accepting", closedAfterAccept, false},
		{"closed before accepting", closedBeforeAccept, false},
		{"closed twice gives up", closedAfterAccept, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			f := &frontend{}
			f.multiOp = func(req *workflowservice.ExecuteMultiOperationRequest) (*workflowservice.ExecuteMultiOperationResponse, error) {
				calls++
				id := req.GetOperations()[1].GetUpdateWorkflow().GetRequest().GetMeta().GetUpdateId()
				if calls == 1 || tt.closeBoth {
					return tt.first(id)
				}
				return multiOpAnswer(updateSuccess(t, id, accepted)), nil
			}
			c, snaps := newClient(t, f, nil)
			got, err := c.Report(context.Background(), event(insurance.StageEndorse, insurance.StatusSuccess))
			if len(f.multiOps) != 2 || snaps.loadCount() != 2 {
				t.Fatalf("update-with-start calls=%d snapshot loads=%d, want 2 and 2", len(f.multiOps), snaps.loadCount())
			}
			if tt.closeBoth {
				if err == nil {
					t.Fatalf("err=nil, want the second closure's error")
				}
				return
			}
			if err != nil {
				t.Fatalf("Report: %v", err)
			}
			if got != accepted {
				t.Fatalf("acceptance=%+v, want %+v", got, accepted)
			}
		})
	}
}

func TestReportUnavailable(t *testing.T) {
	t.Run("frontend unavailable", func(t *testing.T) {
		f := &frontend{multiOp: func(*workflowservice.ExecuteMultiOperationRequest) (*workflowservice.ExecuteMultiOperationResponse, error) {
			return nil, serviceerror.NewUnavailable("history service is down")
		}}
		c, _ := newClient(t, f, nil)
		_, err := c.Report(shortContext(t, 500*time.Millisecond), event(insurance.StagePreInsure, insurance.StatusSuccess))
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err=%v, want ErrUnavailable", err)
		}
	})
	t.Run("no server listening", func(t *testing.T) {
		f := &frontend{}
		c, _ := newClient(t, f, nil)
		f.stop()
		_, err := c.Report(shortContext(t, 500*time.Millisecond), event(insurance.StagePreInsure, insurance.StatusSuccess))
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err=%v, want ErrUnavailable", err)
		}
	})
}
