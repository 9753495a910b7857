package policyclient

import (
	"context"
	"fmt"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// Page sizes of List: the default when the filter gives none, and the most
// one page may hold.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// ListFilter selects policies. Empty fields select everything; PageToken is
// the NextPageToken of the previous page.
type ListFilter struct {
	State         string // a fsm.State name, e.g. "insured"
	CallbackState string // a workflows.CallbackState, e.g. "parked"
	PageSize      int    // DefaultPageSize when zero
	PageToken     []byte
}

// ListPage is one page of List. NextPageToken is empty on the last page.
type ListPage struct {
	Policies      []PolicySummary
	NextPageToken []byte
}

// PolicySummary is one policy workflow run as Temporal visibility shows it.
// A policy whose workflow closed when idle and was later reopened has a row
// for each run; WorkflowStatus tells them apart ("Running", "Completed", ...).
type PolicySummary struct {
	BizID          string    `json:"biz_id"`
	State          string    `json:"state"`
	InsuranceType  string    `json:"insurance_type"`
	CallbackState  string    `json:"callback_state"`
	WorkflowStatus string    `json:"workflow_status"`
	StartTime      time.Time `json:"start_time"`
}

// List returns a page of policy workflows from Temporal visibility, in its
// order (open runs first, then the most recently closed), filtered on the
// PolicyState and CallbackState search attributes.
// An unknown state or callback state is an *ArgumentError. Visibility is
// eventually consistent: a change made a moment ago may not show yet.
func (c *Client) List(ctx context.Context, f ListFilter) (ListPage, error) {
	query, err := listQuery(f)
	if err != nil {
		return ListPage{}, err
	}
	size := f.PageSize
	switch {
	case size < 0 || size > MaxPageSize:
		return ListPage{}, &ArgumentError{Field: "page_size", Message: fmt.Sprintf("must be between 1 and %d, got %d", MaxPageSize, size)}
	case size == 0:
		size = DefaultPageSize
	}
	resp, err := c.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		PageSize:      int32(size),
		NextPageToken: f.PageToken,
		Query:         query,
	})
	if err != nil {
		return ListPage{}, callError(ctx, "list policies", err)
	}
	page := ListPage{Policies: make([]PolicySummary, 0, len(resp.GetExecutions())), NextPageToken: resp.GetNextPageToken()}
	for _, exec := range resp.GetExecutions() {
		fields := exec.GetSearchAttributes().GetIndexedFields()
		page.Policies = append(page.Policies, PolicySummary{
			BizID:          keyword(fields, workflows.SearchBizID.GetName()),
			State:          keyword(fields, workflows.SearchPolicyState.GetName()),
			InsuranceType:  keyword(fields, workflows.SearchInsuranceType.GetName()),
			CallbackState:  keyword(fields, workflows.SearchCallbackState.GetName()),
			WorkflowStatus: exec.GetStatus().String(),
			StartTime:      exec.GetStartTime().AsTime(),
		})
	}
	return page, nil
}

// listQuery builds the visibility query for f. Values are checked against
// their closed sets before they go into the query, and quoted besides, so a
// filter can never change the query's shape.
func listQuery(f ListFilter) (string, error) {
	clauses := []string{
		"WorkflowType = " + quote(workflows.WorkflowName),
		// A run that continued as new is the same policy as its successor.
		"ExecutionStatus != 'ContinuedAsNew'",
	}
	if f.State != "" {
		state, err := fsm.ParseState(f.State)
		if err != nil {
			return "", &ArgumentError{Field: "state", Message: err.Error()}
		}
		clauses = append(clauses, workflows.SearchPolicyState.GetName()+" = "+quote(string(state)))
	}
	if f.CallbackState != "" {
		cs, ok := parseCallbackState(f.CallbackState)
		if !ok {
			return "", &ArgumentError{Field: "callback_state", Message: fmt.Sprintf(
				"unknown callback state %q (want one of %s)", f.CallbackState, strings.Join(callbackStateNames(), ", "))}
		}
		clauses = append(clauses, workflows.SearchCallbackState.GetName()+" = "+quote(string(cs)))
	}
	return strings.Join(clauses, " AND "), nil
}

func callbackStates() []workflows.CallbackState {
	return []workflows.CallbackState{workflows.CallbackIdle, workflows.CallbackPending, workflows.CallbackRetrying, workflows.CallbackParked}
}

func callbackStateNames() []string {
	names := make([]string, 0, len(callbackStates()))
	for _, cs := range callbackStates() {
		names = append(names, string(cs))
	}
	return names
}

func parseCallbackState(v string) (workflows.CallbackState, bool) {
	for _, cs := range callbackStates() {
		if string(cs) == v {
			return cs, true
		}
	}
	return "", false
}

// quote renders v as a visibility-query string literal, escaping the
// backslash and the single quote.
func quote(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// keyword decodes one Keyword search attribute, "" when absent or not a
// string (a run started by hand, without the attributes).
func keyword(fields map[string]*commonpb.Payload, name string) string {
	p, ok := fields[name]
	if !ok {
		return ""
	}
	var s string
	if err := converter.GetDefaultDataConverter().FromPayload(p, &s); err != nil {
		return ""
	}
	return s
}
