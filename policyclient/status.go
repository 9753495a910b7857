package policyclient

import (
	"context"
	"fmt"
	"unicode"
	"unicode/utf8"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/insuranceflow/insuranceflow/workflows"
)

// maxReasonLength bounds an operator's reason: it is stored in workflow
// history and shown in the UI, so it should be a sentence, not a document.
const maxReasonLength = 500

// Status returns the policy's full status. A running workflow answers its
// status query; a policy whose workflow has closed (or whose history Temporal
// no longer keeps) is answered from the store. A policy neither knows is
// ErrNotFound.
func (c *Client) Status(ctx context.Context, bizID string) (workflows.Status, error) {
	resp, err := c.Temporal.QueryWorkflowWithOptions(ctx, &client.QueryWorkflowWithOptionsRequest{
		WorkflowID: workflows.WorkflowID(bizID),
		QueryType:  workflows.QueryStatus,
		// A closed run's status is the store's: querying it would replay its
		// whole history on a worker just to learn what the store holds.
		QueryRejectCondition: enumspb.QUERY_REJECT_CONDITION_NOT_OPEN,
	})
	switch {
	case err == nil && resp.QueryRejected == nil:
		var st workflows.Status
		if err := resp.QueryResult.Get(&st); err != nil {
			return workflows.Status{}, fmt.Errorf("decode status of policy %s: %w", bizID, err)
		}
		return st, nil
	case err == nil, isNotFound(err):
		// Closed or unknown to Temporal: the store decides.
	default:
		return workflows.Status{}, callError(ctx, "query policy "+bizID, err)
	}
	snap, err := c.Snapshots.Snapshot(ctx, bizID)
	if err != nil {
		return workflows.Status{}, fmt.Errorf("load policy %s: %w", bizID, err)
	}
	if snap == nil {
		return workflows.Status{}, fmt.Errorf("policy %s: %w", bizID, ErrNotFound)
	}
	return statusFromSnapshot(bizID, snap), nil
}

// statusFromSnapshot is the status view of a policy with no running
// workflow.
func statusFromSnapshot(bizID string, snap *workflows.Snapshot) workflows.Status {
	events := snap.Events
	if events == nil {
		events = []workflows.EventStatus{}
	}
	return workflows.Status{
		BizID:         bizID,
		State:         snap.State,
		Endorsements:  snap.Endorsements,
		InsuranceType: snap.InsuranceType,
		PolicyNumber:  snap.PolicyNumber,
		LastSeq:       snap.LastSeq,
		CallbackState: callbackState(snap),
		Events:        events,
	}
}

// callbackState derives the policy-level callback state from the FIFO, by
// the definitions beside workflows.CallbackState: the head's trouble first,
// then whether anything waits behind it.
func callbackState(snap *workflows.Snapshot) workflows.CallbackState {
	if snap == nil || len(snap.PendingCallbacks) == 0 {
		return workflows.CallbackIdle
	}
	switch snap.PendingCallbacks[0].State {
	case workflows.EventParked:
		return workflows.CallbackParked
	case workflows.EventRetrying:
		return workflows.CallbackRetrying
	}
	if len(snap.PendingCallbacks) > 1 {
		return workflows.CallbackPending
	}
	return workflows.CallbackIdle
}

// Retry re-arms the policy's parked callback with a fresh retry budget.
// With nothing parked it is a *Rejection with reason no_parked_callback.
func (c *Client) Retry(ctx context.Context, bizID, reason string) (workflows.OperatorResult, error) {
	return c.operate(ctx, bizID, workflows.UpdateRetryCallback, reason)
}

// Skip gives up on the policy's parked callback so the callbacks queued
// behind it are sent. With nothing parked it is a *Rejection with reason
// no_parked_callback.
func (c *Client) Skip(ctx context.Context, bizID, reason string) (workflows.OperatorResult, error) {
	return c.operate(ctx, bizID, workflows.UpdateSkipCallback, reason)
}

func (c *Client) operate(ctx context.Context, bizID, update, reason string) (workflows.OperatorResult, error) {
	if err := checkReason(reason); err != nil {
		return workflows.OperatorResult{}, err
	}
	what := update + " on policy " + bizID
	// A plain Update, never Update-with-Start: an operator action must not
	// resurrect a closed policy, and only a running workflow can hold a
	// parked callback.
	handle, err := c.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   workflows.WorkflowID(bizID),
		UpdateName:   update,
		Args:         []any{workflows.OperatorRequest{Reason: reason}},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		var res workflows.OperatorResult
		if err = handle.Get(ctx, &res); err == nil {
			return res, nil
		}
	}
	if rej := asRejection(err); rej != nil {
		return workflows.OperatorResult{}, rej
	}
	if !runClosed(err) {
		return workflows.OperatorResult{}, callError(ctx, what, err)
	}
	snap, serr := c.Snapshots.Snapshot(ctx, bizID)
	if serr != nil {
		return workflows.OperatorResult{}, fmt.Errorf("load policy %s: %w", bizID, serr)
	}
	if snap == nil {
		return workflows.OperatorResult{}, fmt.Errorf("policy %s: %w", bizID, ErrNotFound)
	}
	return workflows.OperatorResult{}, &Rejection{
		Reason:  workflows.ReasonNoParkedCallback,
		Message: fmt.Sprintf("policy %s has no running workflow, so no callback is parked", bizID),
	}
}

// checkReason refuses a reason too long or with control characters (which
// would forge lines in logs and the UI).
func checkReason(reason string) error {
	if !utf8.ValidString(reason) {
		return &ArgumentError{Field: "reason", Message: "is not valid UTF-8"}
	}
	if n := utf8.RuneCountInString(reason); n > maxReasonLength {
		return &ArgumentError{Field: "reason", Message: fmt.Sprintf("must be at most %d characters, got %d", maxReasonLength, n)}
	}
	for _, r := range reason {
		if unicode.IsControl(r) {
			return &ArgumentError{Field: "reason", Message: "must not contain control characters"}
		}
	}
	return nil
}
