// Package policyclient owns the client side of the policy workflow: the
// operations that the HTTP ingress and the starter CLI share. It reports an
// insurance result (an Update on the policy's entity workflow, or
// Update-with-Start when it has no open run), answers a policy's status (a
// query, or the store once the workflow has closed), lists policies through
// Temporal visibility, and carries the operator's retry and skip actions on
// a parked callback. It turns every Temporal outcome into this package's
// answers and typed errors, so no caller needs to know an ApplicationError
// type or a gRPC status.
package policyclient

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// Client performs the policy operations against Temporal, falling back on
// the store (through Snapshots) where Temporal no longer knows a policy.
// Settings are handed to every run it starts, so that all runs of all
// policies follow the worker's configuration.
type Client struct {
	Temporal  client.Client
	Snapshots Snapshots
	// Audit is the store's operator audit trail, which OperatorActions
	// reads; nil makes OperatorActions an error.
	Audit AuditTrail
	// Policies lists the store's policies for List with IncludeClosed; nil
	// makes such a listing ErrNoPolicyStore.
	Policies  PolicyLister
	TaskQueue string // workflows.DefaultTaskQueue when empty
	Settings  workflows.Settings

	// Now is the clock an event's time_of_occurrence is checked against
	// (time.Now when nil), and MaxFutureSkew how far ahead of it an event
	// may be (DefaultMaxFutureSkew when zero). See checkClock.
	Now           func() time.Time
	MaxFutureSkew time.Duration
	// DataConverter decodes a pending callback's heartbeat for the status
	// view (see markRateLimited): the one the workers use, so that it can
	// read encrypted payloads. Nil is the SDK's default.
	DataConverter converter.DataConverter
}

// Report delivers one insurance result to its policy's workflow and returns
// the acceptance: the sequence number and the state the event leads to, or
// (Duplicate set) the original acceptance of an event with the same request
// id. An event the workflow refuses is a *Rejection; an invalid event is the
// *insurance.ValidationError from Validate, returned as is.
//
// Most events belong to a policy whose workflow is running, so Report first
// sends a plain Update to it: one call, no store read. Only when Temporal
// says no run is open (the policy is new, or its run closed when idle or
// terminal) does it look at the store. Two answers then come from the store
// alone: a re-sent event whose request id (explicit or derived) the store
// already holds gets its original acceptance, and an event for a policy
// whose store record is terminal with nothing left to deliver is refused.
// Neither starts a run that could only give the same answer. Everything
// else goes through Update-with-Start, which starts the run that handles
// the event.
//
// The store read never seeds the run: between the read and the start
// another report may start a run, have it accept events and close, and a
// run seeded from the older read would accept events after a cancel and
// re-use seqs. So a run for a policy the store knows loads its own
// snapshot when it starts (workflows.PolicyInput.LoadSnapshot), after
// Temporal has closed any previous run. A policy the store does not know
// starts with no load, but only if the workflow ID has never had a run
// (reuse policy REJECT_DUPLICATE); otherwise that run closed after our
// read, and the start is repeated with a load.
func (c *Client) Report(ctx context.Context, r insurance.Result) (workflows.Acceptance, error) {
	if err := r.Validate(); err != nil {
		return workflows.Acceptance{}, err
	}
	if err := c.checkClock(r); err != nil {
		return workflows.Acceptance{}, err
	}
	r = r.WithRequestID()
	// A plain Update rather than Update-with-Start for the common case: the
	// server handles a multi-operation at a higher cost than an Update, and
	// the Update-with-Start path also reads the policy from the store.
	acc, err := c.update(ctx, r)
	if err == nil || !runClosed(err) {
		return acc, err
	}
	// Two attempts: if the run we reached closes before it accepts the
	// update (another request started it and it closed in between), the
	// second attempt starts a new run, which loads what the old one left.
	for attempt := 1; ; attempt++ {
		snap, err := c.Snapshots.Snapshot(ctx, r.BizID)
		if err != nil {
			return workflows.Acceptance{}, fmt.Errorf("load policy %s: %w", r.BizID, err)
		}
		if snap != nil {
			// The store holds only accepted events, so a request id it
			// knows is a duplicate whatever the workflow holds now.
			if acc, ok := findAcceptance(snap, r.RequestID); ok {
				acc.Duplicate = true
				return acc, nil
			}
			// A terminal policy with callbacks still pending (its last run
			// was cancelled or terminated before delivering them) gets a
			// run all the same: it delivers them, and refuses the event.
			if snap.State.Terminal() && len(snap.PendingCallbacks) == 0 {
				return answerTerminal(r, snap)
			}
		}
		acc, err := c.start(ctx, r, snap)
		if err != nil && attempt == 1 && runClosed(err) {
			continue
		}
		return acc, err
	}
}

// start runs Update-with-Start for a policy with no open run: without a
// load when the store has never seen the policy and Temporal has never run
// it, else with one.
func (c *Client) start(ctx context.Context, r insurance.Result, snap *workflows.Snapshot) (workflows.Acceptance, error) {
	if snap == nil {
		acc, err := c.updateWithStart(ctx, r, snap, workflows.PolicyInput{}, enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE)
		if !alreadyStarted(err) {
			return acc, err
		}
		// The workflow ID had a run, closed by now: it may have recorded
		// events since our read, or refused everything it got.
	}
	prev, err := c.previousRun(ctx, r.BizID)
	if err != nil {
		return workflows.Acceptance{}, err
	}
	in := workflows.PolicyInput{LoadSnapshot: true, PreviousRunID: prev}
	return c.updateWithStart(ctx, r, snap, in, enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE)
}

// previousRun is the run ID of the policy's latest run when that run ended
// without completing (terminated, cancelled, failed, timed out): such a run
// may hold accepted events it never recorded, and the next run asks it for
// them. "" when the latest run completed, is running, or never existed.
func (c *Client) previousRun(ctx context.Context, bizID string) (string, error) {
	info, err := c.lastRun(ctx, bizID)
	if err != nil || info == nil {
		return "", err
	}
	switch info.GetStatus() {
	case enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED, enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED,
		enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:
		return info.GetExecution().GetRunId(), nil
	}
	return "", nil
}

// lastRun describes the policy's latest run; nil when it never had one.
func (c *Client) lastRun(ctx context.Context, bizID string) (*workflowpb.WorkflowExecutionInfo, error) {
	desc, err := c.Temporal.DescribeWorkflowExecution(ctx, workflows.WorkflowID(bizID), "")
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, callError(ctx, "describe the last run of policy "+bizID, err)
	}
	return desc.GetWorkflowExecutionInfo(), nil
}

// taskQueue is the queue policy runs start on.
func (c *Client) taskQueue() string {
	if c.TaskQueue == "" {
		return workflows.DefaultTaskQueue
	}
	return c.TaskQueue
}

// alreadyStarted reports whether an Update-with-Start was refused because
// the workflow ID has had a run and the reuse policy forbids another.
func alreadyStarted(err error) bool {
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	return err != nil && errors.As(err, &started)
}

// reportUpdate is the report update's options. An Update rather than a
// signal: the business system must learn in the same request whether its
// event was accepted, with which sequence number, or why not. WaitForStage
// Completed because the answer is the update's result, not merely its
// acceptance by the workflow.
func reportUpdate(r insurance.Result) client.UpdateWorkflowOptions {
	return client.UpdateWorkflowOptions{
		UpdateName:   workflows.UpdateReport,
		Args:         []any{r},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	}
}

// update sends the report to the policy's open run, if it has one. With no
// open run the error satisfies runClosed: Temporal answers NotFound both for
// a workflow id it has never seen and for one whose latest run has closed,
// and fails an update the run accepted but closed before completing as
// AcceptedUpdateCompletedWorkflow.
func (c *Client) update(ctx context.Context, r insurance.Result) (workflows.Acceptance, error) {
	opts := reportUpdate(r)
	// No run id: the update goes to the latest run, whichever it is now.
	opts.WorkflowID = workflows.WorkflowID(r.BizID)
	handle, err := c.Temporal.UpdateWorkflow(ctx, opts)
	return reportAnswer(ctx, r.BizID, handle, err)
}

// updateWithStart runs one Update-with-Start whose start, if it happens,
// begins a run with in (BizID and Settings filled here) under reuse.
func (c *Client) updateWithStart(ctx context.Context, r insurance.Result, snap *workflows.Snapshot,
	in workflows.PolicyInput, reuse enumspb.WorkflowIdReusePolicy) (workflows.Acceptance, error) {
	start := c.startOptions(r, snap)
	start.WorkflowIDReusePolicy = reuse
	in.BizID, in.Settings = r.BizID, c.Settings
	op := c.Temporal.NewWithStartWorkflowOperation(start, workflows.WorkflowName, in)
	handle, err := c.Temporal.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: op,
		UpdateOptions:          reportUpdate(r),
	})
	if alreadyStarted(err) {
		return workflows.Acceptance{}, err // the caller decides: see start
	}
	return reportAnswer(ctx, r.BizID, handle, err)
}

// reportAnswer waits for a report update's result and turns it into the
// caller's answer; err is the error of sending the update.
func reportAnswer(ctx context.Context, bizID string, handle client.WorkflowUpdateHandle, err error) (workflows.Acceptance, error) {
	if err != nil {
		return workflows.Acceptance{}, callError(ctx, "report event for policy "+bizID, err)
	}
	var acc workflows.Acceptance
	if err := handle.Get(ctx, &acc); err != nil {
		return updateAnswer(ctx, bizID, err)
	}
	return acc, nil
}

// startOptions describes the run Update-with-Start creates when the policy
// has none running. The conflict policy is USE_EXISTING because a policy is
// one entity: a running workflow must receive the event, never be replaced
// or refused as "already started". When a run exists these options are
// ignored, search attributes included.
func (c *Client) startOptions(r insurance.Result, snap *workflows.Snapshot) client.StartWorkflowOptions {
	typ := r.InsuranceType
	if snap != nil && snap.InsuranceType.Valid() {
		typ = snap.InsuranceType
	}
	return client.StartWorkflowOptions{
		ID:                       workflows.WorkflowID(r.BizID),
		TaskQueue:                c.taskQueue(),
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		// A new run's attributes are right from its first moment in the UI,
		// so the workflow need not upsert them before handling its event.
		TypedSearchAttributes: workflows.PolicySearchAttributes(r.BizID, stateAfter(r, snap), typ, callbackState(snap)),
		StaticSummary:         fmt.Sprintf("Policy %s · %s", r.BizID, typ),
	}
}

// stateAfter is the state a new run will be in once it has handled r: the
// state the event leads to when it is legal, the snapshot's state when the
// workflow will refuse it. (A duplicate the store knows never gets here; one
// it does not know yet belongs to a running workflow, which ignores these
// start options.)
func stateAfter(r insurance.Result, snap *workflows.Snapshot) fsm.State {
	state, endorsements := fsm.StateNew, 0
	if snap != nil {
		state, endorsements = snap.State, snap.Endorsements
	}
	next, _, err := fsm.Next(state, endorsements, r.Stage, r.Status)
	if err != nil {
		return state
	}
	return next
}

// answerTerminal answers a new event (Report has answered re-sent ones) for
// a policy whose recorded state is terminal: an illegal transition, exactly
// as the workflow would answer.
func answerTerminal(r insurance.Result, snap *workflows.Snapshot) (workflows.Acceptance, error) {
	lc, err := fsm.Restore(snap.State, snap.Endorsements)
	if err != nil {
		return workflows.Acceptance{}, fmt.Errorf("restore policy %s from the store: %w", r.BizID, err)
	}
	checkErr := lc.Check(r.Stage, r.Status)
	var illegal *fsm.IllegalTransitionError
	if !errors.As(checkErr, &illegal) {
		// A terminal state allows no stage, and r is valid, so Check can
		// only refuse with an IllegalTransitionError.
		return workflows.Acceptance{}, fmt.Errorf("check event for terminal policy %s: unexpected answer %v", r.BizID, checkErr)
	}
	return workflows.Acceptance{}, &Rejection{
		Reason:  workflows.ReasonIllegalTransition,
		Message: illegal.Error(),
		Details: illegalDetails(illegal),
	}
}

func findAcceptance(snap *workflows.Snapshot, requestID string) (workflows.Acceptance, bool) {
	for _, acc := range snap.Accepted {
		if acc.RequestID == requestID {
			return acc, true
		}
	}
	return workflows.Acceptance{}, false
}

func illegalDetails(e *fsm.IllegalTransitionError) *workflows.IllegalTransitionDetails {
	allowed := make([]string, len(e.Allowed))
	for i, s := range e.Allowed {
		allowed[i] = s.String()
	}
	return &workflows.IllegalTransitionDetails{State: e.State, Stage: e.Stage.String(), AllowedStages: allowed}
}

// updateAnswer turns the failure of a report update into the caller's
// answer: a duplicate becomes the original acceptance, a rejection a
// *Rejection, anything else an error.
func updateAnswer(ctx context.Context, bizID string, err error) (workflows.Acceptance, error) {
	var appErr *temporal.ApplicationError
	// A duplicate is a rejection only inside Temporal (a rejected update
	// leaves no history); to the caller it is the original acceptance.
	if errors.As(err, &appErr) && appErr.Type() == workflows.ReasonDuplicate {
		var acc workflows.Acceptance
		if derr := appErr.Details(&acc); derr != nil {
			return workflows.Acceptance{}, fmt.Errorf("decode the original acceptance of a duplicate for policy %s: %w", bizID, derr)
		}
		acc.Duplicate = true
		return acc, nil
	}
	if rej := asRejection(err); rej != nil {
		return workflows.Acceptance{}, rej
	}
	return workflows.Acceptance{}, callError(ctx, "report event for policy "+bizID, err)
}

// callError wraps a failed Temporal call: connectivity failures become
// ErrUnavailable so callers can answer "try again later"; the caller's own
// cancellation stays a context error.
func callError(ctx context.Context, what string, err error) error {
	if ctxErr := ctx.Err(); errors.Is(ctxErr, context.Canceled) {
		return fmt.Errorf("%s: %w", what, ctxErr)
	}
	if unavailable(err) {
		return fmt.Errorf("%s: %w: %w", what, ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
