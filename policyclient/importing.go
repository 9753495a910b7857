package policyclient

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// Import sends one policy's events from the system insuranceflow replaces
// to its workflow in one Update (workflows.UpdateImport), or one
// Update-with-Start when the policy has no open run, and returns one outcome
// per event. It reaches the workflow as Report does (see Report): a plain
// Update first; with no open run, the store's snapshot, and a start that
// loads it whenever the policy may have had a run before. An import whose
// events the store already holds, every one, is answered from the store
// without starting a run: that is a re-run of an import file.
//
// Events are not checked against the clock here; see CheckClock.
func (c *Client) Import(ctx context.Context, bizID string, req workflows.ImportRequest) (workflows.ImportResult, error) {
	if err := checkImport(bizID, req); err != nil {
		return workflows.ImportResult{}, err
	}
	res, err := c.importUpdate(ctx, bizID, req)
	if err == nil || !runClosed(err) {
		return res, err
	}
	for attempt := 1; ; attempt++ {
		snap, err := c.Snapshots.Snapshot(ctx, bizID)
		if err != nil {
			return workflows.ImportResult{}, fmt.Errorf("load policy %s: %w", bizID, err)
		}
		plan, err := workflows.PlanImport(bizID, snap, req.Events)
		if err != nil {
			return workflows.ImportResult{}, fmt.Errorf("plan the import of policy %s: %w", bizID, err)
		}
		if allDuplicates(plan.Result) {
			// The store holds only accepted events: a request id it knows
			// is a duplicate whatever a run would say.
			return plan.Result, nil
		}
		res, err := c.startImport(ctx, bizID, req, snap, plan)
		if err != nil && attempt == 1 && runClosed(err) {
			continue
		}
		return res, err
	}
}

// PolicySnapshot is the policy as an import would be judged against it now:
// its open run's snapshot, or the store's when no run is open (nil for a
// policy never seen). A dry run plans with it.
func (c *Client) PolicySnapshot(ctx context.Context, bizID string) (*workflows.Snapshot, error) {
	resp, err := c.Temporal.QueryWorkflowWithOptions(ctx, &client.QueryWorkflowWithOptionsRequest{
		WorkflowID:           workflows.WorkflowID(bizID),
		QueryType:            workflows.QuerySnapshot,
		QueryRejectCondition: enumspb.QUERY_REJECT_CONDITION_NOT_OPEN,
	})
	var notFound *serviceerror.NotFound
	switch {
	case errors.As(err, &notFound):
	case err != nil:
		return nil, callError(ctx, "read policy "+bizID, err)
	case resp.QueryRejected == nil:
		var snap workflows.Snapshot
		if err := resp.QueryResult.Get(&snap); err != nil {
			return nil, fmt.Errorf("decode the snapshot of policy %s: %w", bizID, err)
		}
		return &snap, nil
	}
	snap, err := c.Snapshots.Snapshot(ctx, bizID)
	if err != nil {
		return nil, fmt.Errorf("load policy %s: %w", bizID, err)
	}
	return snap, nil
}

// CheckClock refuses an event whose time_of_occurrence is further ahead of
// the clock than MaxFutureSkew, as Report does: accepted, it would make
// every later real event of its policy time_went_backwards.
func (c *Client) CheckClock(r insurance.Result) error { return c.checkClock(r) }

func checkImport(bizID string, req workflows.ImportRequest) error {
	if n := len(req.Events); n == 0 || n > workflows.MaxImportEvents {
		return &ArgumentError{Field: "events", Message: fmt.Sprintf("an import of policy %s carries 1 to %d events, not %d", bizID, workflows.MaxImportEvents, n)}
	}
	for i, ie := range req.Events {
		if ie.Event.BizID != bizID {
			return &ArgumentError{Field: "biz_id", Message: fmt.Sprintf("event %d of the import of policy %s has biz_id %q", i, bizID, ie.Event.BizID)}
		}
	}
	return nil
}

func allDuplicates(r workflows.ImportResult) bool {
	for _, o := range r.Outcomes {
		if o.Acceptance == nil || !o.Acceptance.Duplicate {
			return false
		}
	}
	return true
}

func importUpdateOptions(req workflows.ImportRequest) client.UpdateWorkflowOptions {
	return client.UpdateWorkflowOptions{
		UpdateName:   workflows.UpdateImport,
		Args:         []any{req},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	}
}

func (c *Client) importUpdate(ctx context.Context, bizID string, req workflows.ImportRequest) (workflows.ImportResult, error) {
	opts := importUpdateOptions(req)
	opts.WorkflowID = workflows.WorkflowID(bizID)
	handle, err := c.Temporal.UpdateWorkflow(ctx, opts)
	return importAnswer(ctx, bizID, handle, err)
}

// startImport is start for an import: without a load when the store has
// never seen the policy and Temporal has never run it, else with one.
func (c *Client) startImport(ctx context.Context, bizID string, req workflows.ImportRequest,
	snap *workflows.Snapshot, plan workflows.ImportPlan) (workflows.ImportResult, error) {
	if snap == nil {
		res, err := c.importWithStart(ctx, bizID, req, plan, workflows.PolicyInput{Import: true}, enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE)
		if !alreadyStarted(err) {
			return res, err
		}
	}
	prev, err := c.previousRun(ctx, bizID)
	if err != nil {
		return workflows.ImportResult{}, err
	}
	in := workflows.PolicyInput{LoadSnapshot: true, PreviousRunID: prev, Import: true}
	return c.importWithStart(ctx, bizID, req, plan, in, enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE)
}

// importWithStart is updateWithStart for an import. The run's search
// attributes are those the import leaves (plan), so a policy imported into
// a new run costs no upsert.
func (c *Client) importWithStart(ctx context.Context, bizID string, req workflows.ImportRequest, plan workflows.ImportPlan,
	in workflows.PolicyInput, reuse enumspb.WorkflowIdReusePolicy) (workflows.ImportResult, error) {
	typ := plan.InsuranceType
	if !typ.Valid() {
		typ = req.Events[0].Event.InsuranceType
	}
	cb := workflows.CallbackIdle
	if plan.Pending > 1 {
		cb = workflows.CallbackPending
	}
	if plan.HeadParked {
		cb = workflows.CallbackParked
	}
	start := client.StartWorkflowOptions{
		ID:                       workflows.WorkflowID(bizID),
		TaskQueue:                c.taskQueue(),
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    reuse,
		TypedSearchAttributes:    workflows.PolicySearchAttributes(bizID, plan.State, typ, cb),
		StaticSummary:            fmt.Sprintf("Policy %s · %s", bizID, typ),
	}
	in.BizID, in.Settings = bizID, c.Settings
	op := c.Temporal.NewWithStartWorkflowOperation(start, workflows.WorkflowName, in)
	handle, err := c.Temporal.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: op,
		UpdateOptions:          importUpdateOptions(req),
	})
	if alreadyStarted(err) {
		return workflows.ImportResult{}, err
	}
	return importAnswer(ctx, bizID, handle, err)
}

// importAnswer waits for an import's result. The validator's
// ReasonNothingToImport rejection carries the outcomes: to the caller it is
// a normal answer.
func importAnswer(ctx context.Context, bizID string, handle client.WorkflowUpdateHandle, err error) (workflows.ImportResult, error) {
	if err != nil {
		return workflows.ImportResult{}, callError(ctx, "import events of policy "+bizID, err)
	}
	var res workflows.ImportResult
	err = handle.Get(ctx, &res)
	if err == nil {
		return res, nil
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.Type() == workflows.ReasonNothingToImport {
		if derr := appErr.Details(&res); derr != nil {
			return workflows.ImportResult{}, fmt.Errorf("decode the outcomes of an import of policy %s: %w", bizID, derr)
		}
		return res, nil
	}
	if rej := asRejection(err); rej != nil {
		return workflows.ImportResult{}, rej
	}
	return workflows.ImportResult{}, callError(ctx, "import events of policy "+bizID, err)
}
