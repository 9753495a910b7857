package policyclient

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/store"
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
	// IncludeClosed lists every policy the store has recorded, those whose
	// workflows have closed too, instead of the open runs only.
	IncludeClosed bool
}

// ListPage is one page of List. NextPageToken is empty on the last page.
type ListPage struct {
	Policies      []PolicySummary
	NextPageToken []byte
}

// PolicySummary is one policy: its open run as Temporal visibility shows
// it, or, for a policy with no open run (listed with IncludeClosed), its
// store record, with WorkflowStatus WorkflowClosed and no StartTime.
type PolicySummary struct {
	BizID          string    `json:"biz_id"`
	State          string    `json:"state"`
	InsuranceType  string    `json:"insurance_type"`
	CallbackState  string    `json:"callback_state"`
	WorkflowStatus string    `json:"workflow_status"`
	StartTime      time.Time `json:"start_time,omitzero"`
}

// WorkflowClosed is the WorkflowStatus of a policy that has no open run:
// its last run completed, was cancelled or terminated, and the store holds
// its view.
const WorkflowClosed = "Closed"

// PolicyLister lists the policies the store has recorded, one row each;
// *store.Store is one.
type PolicyLister interface {
	ListPolicies(ctx context.Context, f store.ListFilter) ([]store.Policy, error)
}

var _ PolicyLister = (*store.Store)(nil)

// ErrNoPolicyStore is returned by List with IncludeClosed on a Client
// without Policies.
var ErrNoPolicyStore = errors.New("policyclient: no policy store configured")

// storeTokenPrefix marks a page token of a store listing (IncludeClosed):
// the prefix and the last biz_id of the page, a keyset cursor.
const storeTokenPrefix = "store:"

// List returns a page of policies, each policy once.
//
// By default the page holds the policies with an open run, from Temporal
// visibility in its order, filtered on the PolicyState and CallbackState
// search attributes. A workflow ID has at most one open run, so each policy
// appears once; rows are deduplicated by biz_id all the same (keeping the
// latest start), because a run that continued as new and its successor can
// both show as running in the instant between them.
//
// With IncludeClosed the page comes from the store (Policies), ordered by
// biz_id and paged with a keyset cursor, filtered on the store's state and
// callback state: every policy ever recorded, whether or not its workflow
// is open. A policy with an open run shows that run's view (one visibility
// request per page, for the page's IDs); the others show the store's with
// WorkflowStatus WorkflowClosed.
//
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
	if f.IncludeClosed {
		return c.listAll(ctx, f, size)
	}
	resp, err := c.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		PageSize:      int32(size),
		NextPageToken: f.PageToken,
		Query:         query,
	})
	if err != nil {
		return ListPage{}, callError(ctx, "list policies", err)
	}
	return ListPage{Policies: latestRuns(summaries(resp)), NextPageToken: resp.GetNextPageToken()}, nil
}

// listAll is List with IncludeClosed: a page of the store's policies, each
// overlaid with its open run's view when it has one.
func (c *Client) listAll(ctx context.Context, f ListFilter, size int) (ListPage, error) {
	if c.Policies == nil {
		return ListPage{}, ErrNoPolicyStore
	}
	var after string
	if len(f.PageToken) > 0 {
		tok := string(f.PageToken)
		if !strings.HasPrefix(tok, storeTokenPrefix) {
			return ListPage{}, &ArgumentError{Field: "page_token", Message: "is not a token of a listing that includes closed policies"}
		}
		after = strings.TrimPrefix(tok, storeTokenPrefix)
	}
	// One more than the page, to know whether another page follows.
	rows, err := c.Policies.ListPolicies(ctx, store.ListFilter{
		State: f.State, CallbackState: f.CallbackState, AfterBizID: after, Limit: size + 1,
	})
	if err != nil {
		return ListPage{}, fmt.Errorf("list policies from the store: %w", err)
	}
	var page ListPage
	if len(rows) > size {
		rows = rows[:size]
		page.NextPageToken = []byte(storeTokenPrefix + rows[len(rows)-1].BizID)
	}
	open, err := c.openRuns(ctx, rows)
	if err != nil {
		return ListPage{}, err
	}
	page.Policies = make([]PolicySummary, 0, len(rows))
	for _, p := range rows {
		if run, ok := open[p.BizID]; ok {
			page.Policies = append(page.Policies, run)
			continue
		}
		page.Policies = append(page.Policies, PolicySummary{
			BizID:          p.BizID,
			State:          p.State,
			InsuranceType:  insurance.Type(p.InsuranceType).String(),
			CallbackState:  p.CallbackState,
			WorkflowStatus: WorkflowClosed,
		})
	}
	return page, nil
}

// openRuns asks visibility, in one request, which of the policies have an
// open run, and returns those runs' views by biz_id.
func (c *Client) openRuns(ctx context.Context, policies []store.Policy) (map[string]PolicySummary, error) {
	open := make(map[string]PolicySummary, len(policies))
	if len(policies) == 0 {
		return open, nil
	}
	ids := make([]string, len(policies))
	for i, p := range policies {
		ids[i] = quote(workflows.WorkflowID(p.BizID))
	}
	query := "WorkflowType = " + quote(workflows.WorkflowName) +
		" AND ExecutionStatus = 'Running' AND WorkflowId IN (" + strings.Join(ids, ", ") + ")"
	var token []byte
	for {
		resp, err := c.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			PageSize: int32(len(policies)), NextPageToken: token, Query: query,
		})
		if err != nil {
			return nil, callError(ctx, "list open policy runs", err)
		}
		for _, s := range latestRuns(summaries(resp)) {
			if prev, ok := open[s.BizID]; !ok || s.StartTime.After(prev.StartTime) {
				open[s.BizID] = s
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return open, nil
		}
	}
}

// summaries turns a visibility answer into one summary per run.
func summaries(resp *workflowservice.ListWorkflowExecutionsResponse) []PolicySummary {
	out := make([]PolicySummary, 0, len(resp.GetExecutions()))
	for _, exec := range resp.GetExecutions() {
		fields := exec.GetSearchAttributes().GetIndexedFields()
		out = append(out, PolicySummary{
			BizID:          keyword(fields, workflows.SearchBizID.GetName()),
			State:          keyword(fields, workflows.SearchPolicyState.GetName()),
			InsuranceType:  keyword(fields, workflows.SearchInsuranceType.GetName()),
			CallbackState:  keyword(fields, workflows.SearchCallbackState.GetName()),
			WorkflowStatus: exec.GetStatus().String(),
			StartTime:      exec.GetStartTime().AsTime(),
		})
	}
	return out
}

// latestRuns keeps one summary per biz_id, the run that started last, in
// the order the first row of each biz_id came. Rows without a biz_id (a
// run started by hand, without the search attributes) are kept as they are.
func latestRuns(runs []PolicySummary) []PolicySummary {
	out := make([]PolicySummary, 0, len(runs))
	at := make(map[string]int, len(runs))
	for _, r := range runs {
		if r.BizID == "" {
			out = append(out, r)
			continue
		}
		i, seen := at[r.BizID]
		switch {
		case !seen:
			at[r.BizID] = len(out)
			out = append(out, r)
		case r.StartTime.After(out[i].StartTime):
			out[i] = r
		}
	}
	return out
}

// listQuery builds the visibility query for f. Values are checked against
// their closed sets before they go into the query, and quoted besides, so a
// filter can never change the query's shape.
func listQuery(f ListFilter) (string, error) {
	clauses := []string{
		"WorkflowType = " + quote(workflows.WorkflowName),
	}
	if !f.IncludeClosed {
		// A workflow ID has one open run at most: one row per policy.
		// Closed policies come from the store (IncludeClosed).
		clauses = append(clauses, "ExecutionStatus = 'Running'")
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
