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
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/store"
)

// run is one visibility row of a policy run, for the fake frontend.
func runRow(t *testing.T, biz, state, cb string, status enumspb.WorkflowExecutionStatus, start time.Time) *workflowpb.WorkflowExecutionInfo {
	t.Helper()
	kw := func(v string) *commonpb.Payload {
		p, err := converter.GetDefaultDataConverter().ToPayload(v)
		if err != nil {
			t.Fatalf("encode keyword: %v", err)
		}
		return p
	}
	return &workflowpb.WorkflowExecutionInfo{
		Execution: &commonpb.WorkflowExecution{WorkflowId: "policy-" + biz, RunId: "run-" + start.Format("150405")},
		StartTime: timestamppb.New(start),
		Status:    status,
		SearchAttributes: &commonpb.SearchAttributes{IndexedFields: map[string]*commonpb.Payload{
			"BizId": kw(biz), "PolicyState": kw(state), "InsuranceType": kw("home_property"), "CallbackState": kw(cb),
		}},
	}
}

// TestListOnePerPolicy checks that the default listing keeps one row per
// biz_id, the run that started last, even when visibility answers with two
// runs of one policy (a run and its continue-as-new successor, both
// briefly shown as running).
func TestListOnePerPolicy(t *testing.T) {
	start := time.Date(2025, 4, 8, 1, 0, 0, 0, time.UTC)
	f := &frontend{list: func(*workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
		return &workflowservice.ListWorkflowExecutionsResponse{Executions: []*workflowpb.WorkflowExecutionInfo{
			runRow(t, "A1", "insured", "idle", enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, start),
			runRow(t, "B2", "pre_insured", "pending", enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, start.Add(time.Minute)),
			runRow(t, "A1", "cancelled", "pending", enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, start.Add(time.Hour)),
		}}, nil
	}}
	c, _ := newClient(t, f, nil)
	page, err := c.List(context.Background(), ListFilter{})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	want := []PolicySummary{
		{BizID: "A1", State: "cancelled", InsuranceType: "home_property", CallbackState: "pending", WorkflowStatus: "Running", StartTime: start.Add(time.Hour)},
		{BizID: "B2", State: "pre_insured", InsuranceType: "home_property", CallbackState: "pending", WorkflowStatus: "Running", StartTime: start.Add(time.Minute)},
	}
	if !reflect.DeepEqual(page.Policies, want) {
		t.Fatalf("policies=%+v\nwant %+v", page.Policies, want)
	}
}

// TestListIncludeClosed lists from a real store: every recorded policy once,
// in biz_id order, paged by a keyset token, the open ones with their run's
// view (asked of visibility in one request per page, for the page's IDs)
// and the closed ones from the store.
func TestListIncludeClosed(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	at := time.Date(2025, 4, 8, 1, 0, 0, 0, time.UTC)
	for _, biz := range []string{"A1", "B2", "C3"} {
		r := event(insurance.StagePreInsure, insurance.StatusSuccess)
		r.BizID = biz
		if err := st.RecordEvents(ctx, store.Policy{BizID: biz, InsuranceType: int(r.InsuranceType), CallbackState: "idle"},
			storedEvent(t, 1, r, fsm.StatePreInsured, 0, at)); err != nil {
			t.Fatalf("RecordEvents: %v", err)
		}
	}
	f := &frontend{list: func(req *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
		// B2 is open, and has moved on since the store's record.
		resp := &workflowservice.ListWorkflowExecutionsResponse{}
		if strings.Contains(req.GetQuery(), "'policy-B2'") {
			resp.Executions = append(resp.Executions, runRow(t, "B2", "underwritten", "pending", enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, at))
		}
		return resp, nil
	}}
	c, _ := newClient(t, f, nil)
	c.Policies = st

	page, err := c.List(ctx, ListFilter{IncludeClosed: true, PageSize: 2})
	if err != nil {
		t.Fatalf("List page 1: %v", err)
	}
	want := []PolicySummary{
		{BizID: "A1", State: "pre_insured", InsuranceType: "home_property", CallbackState: "idle", WorkflowStatus: WorkflowClosed},
		{BizID: "B2", State: "underwritten", InsuranceType: "home_property", CallbackState: "pending", WorkflowStatus: "Running", StartTime: at},
	}
	if !reflect.DeepEqual(page.Policies, want) {
		t.Fatalf("page 1=%+v\nwant %+v", page.Policies, want)
	}
	if got, want := string(page.NextPageToken), "store:B2"; got != want {
		t.Fatalf("next page token=%q, want %q", got, want)
	}
	if n := len(f.lists); n != 1 {
		t.Fatalf("visibility asked %d times for one page, want 1", n)
	}
	if q, want := f.lists[0].GetQuery(), "WorkflowType = 'Policy' AND ExecutionStatus = 'Running' AND WorkflowId IN ('policy-A1', 'policy-B2')"; q != want {
		t.Fatalf("query=%q, want %q", q, want)
	}

	page, err = c.List(ctx, ListFilter{IncludeClosed: true, PageSize: 2, PageToken: page.NextPageToken})
	if err != nil {
		t.Fatalf("List page 2: %v", err)
	}
	if len(page.Policies) != 1 || page.Policies[0].BizID != "C3" || page.Policies[0].WorkflowStatus != WorkflowClosed || len(page.NextPageToken) != 0 {
		t.Fatalf("page 2=%+v token %q, want C3 closed and no token", page.Policies, page.NextPageToken)
	}

	t.Run("filters apply to the store", func(t *testing.T) {
		page, err := c.List(ctx, ListFilter{IncludeClosed: true, State: "insured"})
		if err != nil || len(page.Policies) != 0 {
			t.Fatalf("List state=insured = %+v, %v; want none", page.Policies, err)
		}
	})
	t.Run("a visibility token is refused", func(t *testing.T) {
		_, err := c.List(ctx, ListFilter{IncludeClosed: true, PageToken: []byte("temporal-token")})
		var aerr *ArgumentError
		if !errors.As(err, &aerr) || aerr.Field != "page_token" {
			t.Fatalf("err=%v, want an ArgumentError on page_token", err)
		}
	})
	t.Run("no store", func(t *testing.T) {
		c2, _ := newClient(t, f, nil)
		if _, err := c2.List(ctx, ListFilter{IncludeClosed: true}); !errors.Is(err, ErrNoPolicyStore) {
			t.Fatalf("err=%v, want ErrNoPolicyStore", err)
		}
	})
}
