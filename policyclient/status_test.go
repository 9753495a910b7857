package policyclient

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	querypb "go.temporal.io/api/query/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/workflows"
)

func TestStatus(t *testing.T) {
	delivered := time.Date(2025, 4, 8, 2, 0, 0, 0, time.UTC)
	live := workflows.Status{
		BizID: bizID, State: fsm.StateInsured, InsuranceType: insurance.TypeHomeProperty, LastSeq: 3,
		CallbackState: workflows.CallbackRetrying,
		Events: []workflows.EventStatus{{Seq: 3, RequestID: "r-3", Stage: insurance.StageInsure, Status: insurance.StatusSuccess,
			Callback: workflows.EventRetrying, Attempts: 2, LastError: "isp.timeout", LastClass: "retryable"}},
	}
	stored := &workflows.Snapshot{
		State: fsm.StateCancelled, Endorsements: 1, InsuranceType: insurance.TypePerformanceBond, PolicyNumber: "P-1", LastSeq: 5,
		Events: []workflows.EventStatus{{Seq: 5, RequestID: "r-5", Stage: insurance.StageCancel, Status: insurance.StatusSuccess,
			Callback: workflows.EventDelivered, Attempts: 1, DeliveredAt: &delivered}},
	}
	fromStore := workflows.Status{
		BizID: bizID, State: fsm.StateCancelled, Endorsements: 1, InsuranceType: insurance.TypePerformanceBond, PolicyNumber: "P-1",
		LastSeq: 5, CallbackState: workflows.CallbackIdle, Events: stored.Events,
	}
	answer := func(st workflows.Status) func(*workflowservice.QueryWorkflowRequest) (*workflowservice.QueryWorkflowResponse, error) {
		return func(*workflowservice.QueryWorkflowRequest) (*workflowservice.QueryWorkflowResponse, error) {
			ps, err := converter.GetDefaultDataConverter().ToPayloads(st)
			if err != nil {
				return nil, err
			}
			return &workflowservice.QueryWorkflowResponse{QueryResult: ps}, nil
		}
	}
	closed := func(*workflowservice.QueryWorkflowRequest) (*workflowservice.QueryWorkflowResponse, error) {
		return &workflowservice.QueryWorkflowResponse{QueryRejected: &querypb.QueryRejected{Status: enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED}}, nil
	}
	missing := func(*workflowservice.QueryWorkflowRequest) (*workflowservice.QueryWorkflowResponse, error) {
		return nil, serviceerror.NewNotFound("workflow not found for ID: policy-" + bizID)
	}
	tests := []struct {
		name    string
		query   func(*workflowservice.QueryWorkflowRequest) (*workflowservice.QueryWorkflowResponse, error)
		snap    *workflows.Snapshot
		want    workflows.Status
		wantErr error
	}{
		{name: "running workflow answers its query", query: answer(live), snap: stored, want: live},
		{name: "closed workflow is answered by the store", query: closed, snap: stored, want: fromStore},
		{name: "workflow gone from temporal, store knows it", query: missing, snap: stored, want: fromStore},
		{name: "nobody knows it", query: missing, wantErr: ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &frontend{query: tt.query}
			c, _ := newClient(t, f, map[string]*workflows.Snapshot{bizID: tt.snap})
			if tt.snap == nil {
				c.Snapshots = &memSnapshots{}
			}
			got, err := c.Status(context.Background(), bizID)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err=%v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Status: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("status=%+v, want %+v", got, tt.want)
			}
			q := f.queries[0]
			if q.GetExecution().GetWorkflowId() != "policy-"+bizID || q.GetQuery().GetQueryType() != workflows.QueryStatus {
				t.Errorf("query went to %q type %q, want policy-%s type %q", q.GetExecution().GetWorkflowId(), q.GetQuery().GetQueryType(), bizID, workflows.QueryStatus)
			}
			if got, want := q.GetQueryRejectCondition(), enumspb.QUERY_REJECT_CONDITION_NOT_OPEN; got != want {
				t.Errorf("reject condition=%v, want %v", got, want)
			}
		})
	}
	t.Run("unreachable temporal", func(t *testing.T) {
		f := &frontend{query: func(*workflowservice.QueryWorkflowRequest) (*workflowservice.QueryWorkflowResponse, error) {
			return nil, serviceerror.NewUnavailable("down")
		}}
		c, _ := newClient(t, f, nil)
		if _, err := c.Status(shortContext(t, 300*time.Millisecond), bizID); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err=%v, want ErrUnavailable", err)
		}
	})
}

func TestCallbackState(t *testing.T) {
	cb := func(states ...workflows.EventCallback) *workflows.Snapshot {
		s := &workflows.Snapshot{}
		for i, st := range states {
			s.PendingCallbacks = append(s.PendingCallbacks, workflows.Callback{Seq: int64(i + 1), State: st})
		}
		return s
	}
	tests := []struct {
		name string
		snap *workflows.Snapshot
		want workflows.CallbackState
	}{
		{"no snapshot", nil, workflows.CallbackIdle},
		{"empty fifo", cb(), workflows.CallbackIdle},
		{"head on its first attempt", cb(workflows.EventSending), workflows.CallbackIdle},
		{"events queued behind the head", cb(workflows.EventSending, workflows.EventQueued), workflows.CallbackPending},
		{"head retrying", cb(workflows.EventRetrying, workflows.EventQueued), workflows.CallbackRetrying},
		{"head parked", cb(workflows.EventParked, workflows.EventQueued), workflows.CallbackParked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := callbackState(tt.snap); got != tt.want {
				t.Fatalf("callbackState=%q, want %q", got, tt.want)
			}
		})
	}
}

func TestList(t *testing.T) {
	start := time.Date(2025, 4, 8, 1, 55, 0, 0, time.UTC)
	keyword := func(v string) *commonpb.Payload {
		p, err := converter.GetDefaultDataConverter().ToPayload(v)
		if err != nil {
			t.Fatalf("encode keyword: %v", err)
		}
		return p
	}
	f := &frontend{list: func(req *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
		return &workflowservice.ListWorkflowExecutionsResponse{
			NextPageToken: []byte("page-2"),
			Executions: []*workflowpb.WorkflowExecutionInfo{
				{
					Execution: &commonpb.WorkflowExecution{WorkflowId: "policy-" + bizID, RunId: "run-1"},
					Type:      &commonpb.WorkflowType{Name: workflows.WorkflowName},
					StartTime: timestamppb.New(start),
					Status:    enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING,
					SearchAttributes: &commonpb.SearchAttributes{IndexedFields: map[string]*commonpb.Payload{
						"BizId": keyword(bizID), "PolicyState": keyword("insured"),
						"InsuranceType": keyword("home_property"), "CallbackState": keyword("parked"),
					}},
				},
				{
					Execution: &commonpb.WorkflowExecution{WorkflowId: "policy-B2", RunId: "run-2"},
					StartTime: timestamppb.New(start.Add(-time.Hour)),
					Status:    enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED,
				},
			},
		}, nil
	}}
	c, _ := newClient(t, f, nil)

	t.Run("filters become a quoted query", func(t *testing.T) {
		page, err := c.List(context.Background(), ListFilter{State: "insured", CallbackState: "parked", PageToken: []byte("page-1")})
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		req := f.lists[len(f.lists)-1]
		wantQuery := "WorkflowType = 'Policy' AND ExecutionStatus = 'Running' AND PolicyState = 'insured' AND CallbackState = 'parked'"
		if req.GetQuery() != wantQuery {
			t.Errorf("query=%q, want %q", req.GetQuery(), wantQuery)
		}
		if string(req.GetNextPageToken()) != "page-1" || req.GetPageSize() != DefaultPageSize {
			t.Errorf("page token=%q size=%d, want page-1 and %d", req.GetNextPageToken(), req.GetPageSize(), DefaultPageSize)
		}
		want := []PolicySummary{
			{BizID: bizID, State: "insured", InsuranceType: "home_property", CallbackState: "parked", WorkflowStatus: "Running", StartTime: start},
			{WorkflowStatus: "Completed", StartTime: start.Add(-time.Hour)},
		}
		if !reflect.DeepEqual(page.Policies, want) {
			t.Errorf("policies=%+v, want %+v", page.Policies, want)
		}
		if string(page.NextPageToken) != "page-2" {
			t.Errorf("next page token=%q, want page-2", page.NextPageToken)
		}
	})
	t.Run("no filter", func(t *testing.T) {
		if _, err := c.List(context.Background(), ListFilter{PageSize: 7}); err != nil {
			t.Fatalf("List: %v", err)
		}
		req := f.lists[len(f.lists)-1]
		if want := "WorkflowType = 'Policy' AND ExecutionStatus = 'Running'"; req.GetQuery() != want || req.GetPageSize() != 7 {
			t.Errorf("query=%q size=%d, want %q and 7", req.GetQuery(), req.GetPageSize(), want)
		}
	})

	bad := []struct {
		name      string
		filter    ListFilter
		wantField string
		wantMsg   string
	}{
		{"unknown state", ListFilter{State: "insured' OR 'a'='a"}, "state", `unknown state "insured' OR 'a'='a"`},
		{"unknown callback state", ListFilter{CallbackState: "Parked"}, "callback_state", `unknown callback state "Parked" (want one of idle, pending, retrying, parked)`},
		{"page too large", ListFilter{PageSize: MaxPageSize + 1}, "page_size", "must be between 1 and 500, got 501"},
		{"negative page", ListFilter{PageSize: -1}, "page_size", "must be between 1 and 500, got -1"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			before := f.calls()
			_, err := c.List(context.Background(), tt.filter)
			var aerr *ArgumentError
			if !errors.As(err, &aerr) {
				t.Fatalf("err=%v, want *ArgumentError", err)
			}
			if aerr.Field != tt.wantField || !strings.Contains(aerr.Message, tt.wantMsg) {
				t.Errorf("error field=%q message=%q, want %q containing %q", aerr.Field, aerr.Message, tt.wantField, tt.wantMsg)
			}
			if f.calls() != before {
				t.Errorf("visibility was asked despite the bad filter")
			}
		})
	}
}

func TestQuote(t *testing.T) {
	tests := map[string]string{
		"insured":   `'insured'`,
		`it's`:      `'it\'s'`,
		`back\'`:    `'back\\\''`,
		"":          `''`,
		"a' OR '1'": `'a\' OR \'1\''`,
	}
	for in, want := range tests {
		if got := quote(in); got != want {
			t.Errorf("quote(%q)=%s, want %s", in, got, want)
		}
	}
}

func TestOperatorActions(t *testing.T) {
	stored := &workflows.Snapshot{State: fsm.StateInsured, LastSeq: 3}
	tests := []struct {
		name     string
		skip     bool
		reason   string
		update   func(t *testing.T, req *workflowservice.UpdateWorkflowExecutionRequest) (*workflowservice.UpdateWorkflowExecutionResponse, error)
		snap     *workflows.Snapshot
		want     workflows.OperatorResult
		wantErr  error
		wantRej  string
		wantCall string
	}{
		{
			name: "retry re-arms the parked callback", reason: "TOP fixed the app key",
			update: func(t *testing.T, req *workflowservice.UpdateWorkflowExecutionRequest) (*workflowservice.UpdateWorkflowExecutionResponse, error) {
				return updateSuccess(t, req.GetRequest().GetMeta().GetUpdateId(), workflows.OperatorResult{Seq: 3, Callback: workflows.EventRetrying}), nil
			},
			want: workflows.OperatorResult{Seq: 3, Callback: workflows.EventRetrying}, wantCall: workflows.UpdateRetryCallback,
		},
		{
			name: "skip gives up on it", skip: true,
			update: func(t *testing.T, req *workflowservice.UpdateWorkflowExecutionRequest) (*workflowservice.UpdateWorkflowExecutionResponse, error) {
				return updateSuccess(t, req.GetRequest().GetMeta().GetUpdateId(), workflows.OperatorResult{Seq: 3, Callback: workflows.EventSkipped}), nil
			},
			want: workflows.OperatorResult{Seq: 3, Callback: workflows.EventSkipped}, wantCall: workflows.UpdateSkipCallback,
		},
		{
			name: "nothing parked", skip: true,
			update: func(_ *testing.T, req *workflowservice.UpdateWorkflowExecutionRequest) (*workflowservice.UpdateWorkflowExecutionResponse, error) {
				return updateFailure(req.GetRequest().GetMeta().GetUpdateId(), rejection(workflows.ReasonNoParkedCallback, "no callback is parked")), nil
			},
			wantRej: workflows.ReasonNoParkedCallback, wantCall: workflows.UpdateSkipCallback,
		},
		{
			name: "closed workflow has nothing parked", snap: stored,
			update: func(*testing.T, *workflowservice.UpdateWorkflowExecutionRequest) (*workflowservice.UpdateWorkflowExecutionResponse, error) {
				return nil, serviceerror.NewNotFound("workflow execution already completed")
			},
			wantRej: workflows.ReasonNoParkedCallback, wantCall: workflows.UpdateRetryCallback,
		},
		{
			name: "unknown policy",
			update: func(*testing.T, *workflowservice.UpdateWorkflowExecutionRequest) (*workflowservice.UpdateWorkflowExecutionResponse, error) {
				return nil, serviceerror.NewNotFound("workflow not found")
			},
			wantErr: ErrNotFound, wantCall: workflows.UpdateRetryCallback,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &frontend{}
			f.update = func(req *workflowservice.UpdateWorkflowExecutionRequest) (*workflowservice.UpdateWorkflowExecutionResponse, error) {
				return tt.update(t, req)
			}
			c, _ := newClient(t, f, map[string]*workflows.Snapshot{bizID: tt.snap})
			if tt.snap == nil {
				c.Snapshots = &memSnapshots{}
			}
			act := c.Retry
			if tt.skip {
				act = c.Skip
			}
			got, err := act(context.Background(), bizID, workflows.OperatorRequest{Reason: tt.reason})
			if len(f.updates) != 1 {
				t.Fatalf("updates=%d, want 1", len(f.updates))
			}
			req := f.updates[0]
			if req.GetWorkflowExecution().GetWorkflowId() != "policy-"+bizID || req.GetRequest().GetInput().GetName() != tt.wantCall {
				t.Errorf("update %q on %q, want %q on policy-%s", req.GetRequest().GetInput().GetName(), req.GetWorkflowExecution().GetWorkflowId(), tt.wantCall, bizID)
			}
			var arg workflows.OperatorRequest
			decode(t, req.GetRequest().GetInput().GetArgs(), &arg)
			if arg.Reason != tt.reason {
				t.Errorf("reason=%q, want %q", arg.Reason, tt.reason)
			}
			switch {
			case tt.wantRej != "":
				var rej *Rejection
				if !errors.As(err, &rej) || rej.Reason != tt.wantRej {
					t.Fatalf("err=%v, want a %s rejection", err, tt.wantRej)
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err=%v, want %v", err, tt.wantErr)
				}
			default:
				if err != nil {
					t.Fatalf("operator action: %v", err)
				}
				if got != tt.want {
					t.Fatalf("result=%+v, want %+v", got, tt.want)
				}
			}
		})
	}

	t.Run("bad reasons are refused before temporal", func(t *testing.T) {
		f := &frontend{}
		c, _ := newClient(t, f, nil)
		for reason, want := range map[string]string{
			strings.Repeat("x", maxReasonLength+1): "must be at most 500 characters, got 501",
			"line one\nline two":                   "must not contain control characters",
		} {
			_, err := c.Retry(context.Background(), bizID, workflows.OperatorRequest{Reason: reason})
			var aerr *ArgumentError
			if !errors.As(err, &aerr) || aerr.Field != "reason" || aerr.Message != want {
				t.Errorf("err=%v, want reason error %q", err, want)
			}
		}
		if f.calls() != 0 {
			t.Fatalf("temporal calls=%d, want 0", f.calls())
		}
	})
}
