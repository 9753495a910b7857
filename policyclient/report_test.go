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

// acceptAll answers every Update-with-Start of a report with an acceptance
// of seq 1 in state pre_insured, echoing the event's request id.
func acceptAll(t *testing.T) func(*workflowservice.ExecuteMultiOperationRequest) (*workflowservice.ExecuteMultiOperationResponse, error) {
	return func(req *workflowservice.ExecuteMultiOperationRequest) (*workflowservice.ExecuteMultiOperationResponse, error) {
		return multiOpAnswer(accept(t, req.GetOperations()[1].GetUpdateWorkflow())), nil
	}
}

// acceptUpdates answers every plain report Update as acceptAll does, as a
// running workflow would.
func acceptUpdates(t *testing.T) func(*workflowservice.UpdateWorkflowExecutionRequest) (*workflowservice.UpdateWorkflowExecutionResponse, error) {
	return func(req *workflowservice.UpdateWorkflowExecutionRequest) (*workflowservice.UpdateWorkflowExecutionResponse, error) {
		return accept(t, req), nil
	}
}

func accept(t *testing.T, upd *workflowservice.UpdateWorkflowExecutionRequest) *workflowservice.UpdateWorkflowExecutionResponse {
	var r insurance.Result
	if err := converter.GetDefaultDataConverter().FromPayloads(upd.GetRequest().GetInput().GetArgs(), &r); err != nil {
		t.Errorf("decode report argument: %v", err)
	}
	return updateSuccess(t, upd.GetRequest().GetMeta().GetUpdateId(), acceptanceOf(r))
}

// acceptanceOf is the acceptance the fake workflow gives r.
func acceptanceOf(r insurance.Result) workflows.Acceptance {
	return workflows.Acceptance{BizID: r.BizID, RequestID: r.RequestID, Seq: 1, Stage: r.Stage, Status: r.Status, State: fsm.StatePreInsured}
}

func TestReportToARunningWorkflowIsOnePlainUpdate(t *testing.T) {
	f := &frontend{update: acceptUpdates(t), multiOp: acceptAll(t)}
	c, snaps := newClient(t, f, nil)
	ev := event(insurance.StageUnderwrite, insurance.StatusSuccess)
	got, err := c.Report(context.Background(), ev)
	if err != nil {
		t.Fatalf("Report: %v", err)
	}
	if want := acceptanceOf(ev.WithRequestID()); got != want {
		t.Fatalf("acceptance=%+v, want %+v", got, want)
	}
	if len(f.updates) != 1 || len(f.multiOps) != 0 || f.calls() != 1 || snaps.loadCount() != 0 {
		t.Fatalf("updates=%d update-with-starts=%d temporal calls=%d snapshot loads=%d, want 1, 0, 1 and 0",
			len(f.updates), len(f.multiOps), f.calls(), snaps.loadCount())
	}
	req := f.updates[0]
	if got, want := req.GetWorkflowExecution().GetWorkflowId(), "policy-"+bizID; got != want {
		t.Errorf("workflow id=%q, want %q", got, want)
	}
	if got := req.GetWorkflowExecution().GetRunId(); got != "" {
		t.Errorf("run id=%q, want none (the latest run)", got)
	}
	if got, want := req.GetRequest().GetInput().GetName(), workflows.UpdateReport; got != want {
		t.Errorf("update name=%q, want %q", got, want)
	}
	if got, want := req.GetWaitPolicy().GetLifecycleStage(), enumspb.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED; got != want {
		t.Errorf("wait stage=%v, want %v", got, want)
	}
	var sent insurance.Result
	decode(t, req.GetRequest().GetInput().GetArgs(), &sent)
	if want := ev.WithRequestID(); sent != want || sent.RequestID == "" {
		t.Errorf("update argument=%v, want %v with a request id", sent, want)
	}
}

func TestReportWithoutAnOpenRunFallsBackOnUpdateWithStart(t *testing.T) {
	underwritten := &workflows.Snapshot{State: fsm.StateUnderwritten, InsuranceType: insurance.TypeHomeProperty, LastSeq: 2}
	closedAfterAccepting := func(req *workflowservice.UpdateWorkflowExecutionRequest) (*workflowservice.UpdateWorkflowExecutionResponse, error) {
		return serverFailure(req.GetRequest().GetMeta().GetUpdateId(), acceptedUpdateCompletedWorkflow), nil
	}
	tests := []struct {
		name   string
		update func(*workflowservice.UpdateWorkflowExecutionRequest) (*workflowservice.UpdateWorkflowExecutionResponse, error)
		snap   *workflows.Snapshot
		event  insurance.Result
	}{
		{"new policy", noOpenRun(neverStarted), nil, event(insurance.StagePreInsure, insurance.StatusSuccess)},
		{"run closed when idle", noOpenRun(alreadyClosed), underwritten, event(insurance.StageInsure, insurance.StatusSuccess)},
		{"run closed after accepting the update", closedAfterAccepting, underwritten, event(insurance.StageInsure, insurance.StatusSuccess)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &frontend{update: tt.update, multiOp: acceptAll(t)}
			c, snaps := newClient(t, f, map[string]*workflows.Snapshot{bizID: tt.snap})
			got, err := c.Report(context.Background(), tt.event)
			if err != nil {
				t.Fatalf("Report: %v", err)
			}
			if want := acceptanceOf(tt.event.WithRequestID()); got != want {
				t.Fatalf("acceptance=%+v, want %+v", got, want)
			}
			// A policy the store knows: one describe (how did its last run
			// end?) before the start, which loads the snapshot in the run.
			wantCalls := 2
			if tt.snap != nil {
				wantCalls = 3
			}
			if len(f.updates) != 1 || snaps.loadCount() != 1 || len(f.multiOps) != 1 || f.calls() != wantCalls {
				t.Fatalf("updates=%d snapshot loads=%d update-with-starts=%d temporal calls=%d, want 1, 1, 1 and %d",
					len(f.updates), snaps.loadCount(), len(f.multiOps), f.calls(), wantCalls)
			}
			var in workflows.PolicyInput
			decode(t, f.multiOps[0].GetOperations()[0].GetStartWorkflow().GetInput(), &in)
			if in.Snapshot != nil || in.LoadSnapshot != (tt.snap != nil) {
				t.Errorf("new run's snapshot=%+v load=%v, want none and load=%v", in.Snapshot, in.LoadSnapshot, tt.snap != nil)
			}
			var first, second insurance.Result
			decode(t, f.updates[0].GetRequest().GetInput().GetArgs(), &first)
			decode(t, f.multiOps[0].GetOperations()[1].GetUpdateWorkflow().GetRequest().GetInput().GetArgs(), &second)
			if first != second {
				t.Errorf("update-with-start sent %v, want the event the update sent, %v", second, first)
			}
		})
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
			f := &frontend{update: noOpenRun(alreadyClosed), multiOp: acceptAll(t)}
			if tt.snap == nil {
				f.update = noOpenRun(neverStarted)
			}
			c, _ := newClient(t, f, map[string]*workflows.Snapshot{bizID: tt.snap})
			if tt.snap == nil {
				c.Snapshots = &memSnapshots{}
			}
			if _, err := c.Report(context.Background(), tt.event); err != nil {
				t.Fatalf("Report: %v", err)
			}
			if len(f.updates) != 1 || len(f.multiOps) != 1 {
				t.Fatalf("updates=%d update-with-starts=%d, want 1 and 1", len(f.updates), len(f.multiOps))
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
			// The run loads its own snapshot from the store when the
			// policy has one; the client never hands it a possibly stale copy.
			if in.Snapshot != nil || in.LoadSnapshot != (tt.snap != nil) || in.PreviousRunID != "" {
				t.Errorf("input snapshot=%+v load=%v previous=%q, want no snapshot, load=%v, no previous run",
					in.Snapshot, in.LoadSnapshot, in.PreviousRunID, tt.snap != nil)
			}
			wantReuse := enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE
			if tt.snap == nil {
				wantReuse = enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE
			}
			if got := start.GetWorkflowIdReusePolicy(); got != wantReuse {
				t.Errorf("reuse policy=%v, want %v", got, wantReuse)
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
	// closed (the update finds no open run): a run started for the re-sent
	// event could only answer "duplicate" and then idle.
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
			f := &frontend{update: noOpenRun(alreadyClosed), multiOp: acceptAll(t)}
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
			if len(f.updates) != 1 || f.calls() != 1 || snaps.loadCount() != 1 {
				t.Fatalf("updates=%d temporal calls=%d snapshot loads=%d, want 1, 1 and 1 (no update-with-start)",
					len(f.updates), f.calls(), snaps.loadCount())
			}
		})
	}

	t.Run("unknown request id goes to the workflow", func(t *testing.T) {
		f := &frontend{update: noOpenRun(alreadyClosed), multiOp: acceptAll(t)}
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
	// The same outcome gets the same answer whether the running workflow
	// gives it to the plain Update or a new run to Update-with-Start; the
	// running workflow's answer is final, with no fall back on the store.
	type outcome func(updateID string) *workflowservice.UpdateWorkflowExecutionResponse
	paths := []struct {
		name      string
		frontend  func(outcome) *frontend
		wantLoads int
	}{
		{"running workflow", func(o outcome) *frontend {
			return &frontend{update: func(req *workflowservice.UpdateWorkflowExecutionRequest) (*workflowservice.UpdateWorkflowExecutionResponse, error) {
				return o(req.GetRequest().GetMeta().GetUpdateId()), nil
			}}
		}, 0},
		{"new run", func(o outcome) *frontend {
			return &frontend{update: noOpenRun(neverStarted), multiOp: func(req *workflowservice.ExecuteMultiOperationRequest) (*workflowservice.ExecuteMultiOperationResponse, error) {
				return multiOpAnswer(o(req.GetOperations()[1].GetUpdateWorkflow().GetRequest().GetMeta().GetUpdateId())), nil
			}}
		}, 1},
	}
	for _, path := range paths {
		for _, tt := range tests {
			t.Run(path.name+"/"+tt.name, func(t *testing.T) {
				f := path.frontend(tt.outcome)
				c, snaps := newClient(t, f, nil)
				got, err := c.Report(context.Background(), event(insurance.StagePreInsure, insurance.StatusSuccess))
				if len(f.updates) != 1 || snaps.loadCount() != path.wantLoads || len(f.multiOps) != path.wantLoads {
					t.Fatalf("updates=%d snapshot loads=%d update-with-starts=%d, want 1, %d and %d",
						len(f.updates), snaps.loadCount(), len(f.multiOps), path.wantLoads, path.wantLoads)
				}
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
	}

	for _, path := range paths {
		t.Run(path.name+"/workflow failure is an error, not a rejection", func(t *testing.T) {
			f := path.frontend(func(id string) *workflowservice.UpdateWorkflowExecutionResponse {
				return updateFailure(id, rejection("PanicError", "nil map"))
			})
			c, snaps := newClient(t, f, nil)
			_, err := c.Report(context.Background(), event(insurance.StagePreInsure, insurance.StatusSuccess))
			var rej *Rejection
			if err == nil || errors.As(err, &rej) || errors.Is(err, ErrUnavailable) {
				t.Fatalf("err=%v, want a plain error", err)
			}
			if snaps.loadCount() != path.wantLoads || len(f.multiOps) != path.wantLoads {
				t.Fatalf("snapshot loads=%d update-with-starts=%d, want %d and %d", snaps.loadCount(), len(f.multiOps), path.wantLoads, path.wantLoads)
			}
		})
	}
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
	// Its workflow has closed, as a cancelled policy's does once its
	// callbacks are delivered.
	t.Run("known request id is a duplicate", func(t *testing.T) {
		f := &frontend{update: noOpenRun(alreadyClosed)}
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
		if len(f.updates) != 1 || f.calls() != 1 {
			t.Fatalf("updates=%d temporal calls=%d, want 1 and 1 (no update-with-start)", len(f.updates), f.calls())
		}
	})
	t.Run("new event is an illegal transition", func(t *testing.T) {
		f := &frontend{update: noOpenRun(alreadyClosed)}
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
		if len(f.updates) != 1 || f.calls() != 1 {
			t.Fatalf("updates=%d temporal calls=%d, want 1 and 1 (no update-with-start)", len(f.updates), f.calls())
		}
	})
}

// TestReportRetriesOnceWhenTheRunCloses covers a run that closes between
// the Update-with-Start reaching it and handling the event: the update found
// no open run, but by the Update-with-Start another request had started one.
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
			f := &frontend{update: noOpenRun(neverStarted)}
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
			if len(f.updates) != 1 || len(f.multiOps) != 2 || snaps.loadCount() != 2 {
				t.Fatalf("updates=%d update-with-start calls=%d snapshot loads=%d, want 1, 2 and 2", len(f.updates), len(f.multiOps), snaps.loadCount())
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
	down := func() error { return serviceerror.NewUnavailable("history service is down") }
	t.Run("frontend unavailable for the update", func(t *testing.T) {
		f := &frontend{update: func(*workflowservice.UpdateWorkflowExecutionRequest) (*workflowservice.UpdateWorkflowExecutionResponse, error) {
			return nil, down()
		}}
		c, snaps := newClient(t, f, nil)
		_, err := c.Report(shortContext(t, 500*time.Millisecond), event(insurance.StagePreInsure, insurance.StatusSuccess))
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err=%v, want ErrUnavailable", err)
		}
		// Unavailable says nothing about whether a run is open, so it must
		// not lead to the store or to a start.
		if snaps.loadCount() != 0 || len(f.multiOps) != 0 {
			t.Fatalf("snapshot loads=%d update-with-starts=%d, want 0 and 0", snaps.loadCount(), len(f.multiOps))
		}
	})
	t.Run("frontend unavailable for the update-with-start", func(t *testing.T) {
		f := &frontend{update: noOpenRun(neverStarted), multiOp: func(*workflowservice.ExecuteMultiOperationRequest) (*workflowservice.ExecuteMultiOperationResponse, error) {
			return nil, down()
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
