package policyclient

import (
	"context"
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/insuranceflow/insuranceflow/store"
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
		c.markRateLimited(ctx, &st)
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

// Retry re-arms the policy's parked callback req.Seq with a fresh retry
// budget. With nothing parked it is a *Rejection with reason
// no_parked_callback; with another callback parked, seq_mismatch. A retry
// of req.Seq that already happened answers its original outcome with
// Repeated set.
func (c *Client) Retry(ctx context.Context, bizID string, req workflows.OperatorRequest) (workflows.OperatorResult, error) {
	return c.operate(ctx, bizID, workflows.UpdateRetryCallback, req)
}

// Skip gives up on the policy's parked callback req.Seq so the callbacks
// queued behind it are sent; its answers are Retry's.
func (c *Client) Skip(ctx context.Context, bizID string, req workflows.OperatorRequest) (workflows.OperatorResult, error) {
	return c.operate(ctx, bizID, workflows.UpdateSkipCallback, req)
}

func (c *Client) operate(ctx context.Context, bizID, update string, req workflows.OperatorRequest) (workflows.OperatorResult, error) {
	if err := checkReason(req.Reason); err != nil {
		return workflows.OperatorResult{}, err
	}
	if req.Seq < 0 {
		return workflows.OperatorResult{}, &ArgumentError{Field: "seq", Message: fmt.Sprintf("must be a callback's seq (1 or more), got %d", req.Seq)}
	}
	what := update + " on policy " + bizID
	// A plain Update, never Update-with-Start: an operator action must not
	// resurrect a closed policy, and only a running workflow can hold a
	// parked callback.
	handle, err := c.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   workflows.WorkflowID(bizID),
		UpdateName:   update,
		Args:         []any{req},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		var res workflows.OperatorResult
		if err = handle.Get(ctx, &res); err == nil {
			return res, nil
		}
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.Type() == workflows.ReasonOperatorRepeated {
		var res workflows.OperatorResult
		if derr := appErr.Details(&res); derr != nil {
			return workflows.OperatorResult{}, fmt.Errorf("decode the original outcome of a repeated %s: %w", what, derr)
		}
		res.Repeated = true
		return res, nil
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
	if res, ok := repeatedFromStore(snap, update, req); ok {
		return res, nil
	}
	return workflows.OperatorResult{}, &Rejection{
		Reason:  workflows.ReasonNoParkedCallback,
		Message: fmt.Sprintf("policy %s has no running workflow, so no callback is parked", bizID),
	}
}

// repeatedFromStore answers an operator action on a closed policy that was
// already applied, from the store's record of it: the action with the
// request's id, or the latest of that action on the seq it names.
func repeatedFromStore(snap *workflows.Snapshot, update string, req workflows.OperatorRequest) (workflows.OperatorResult, bool) {
	action := workflows.ActionRetry
	if update == workflows.UpdateSkipCallback {
		action = workflows.ActionSkip
	}
	for i := len(snap.OperatorActions) - 1; i >= 0; i-- {
		a := snap.OperatorActions[i]
		if a.Action != action {
			continue
		}
		if (req.RequestID != "" && a.RequestID == req.RequestID) || (req.Seq != 0 && a.Seq == req.Seq) {
			return workflows.OperatorResult{Seq: a.Seq, Callback: a.Result, Repeated: true}, true
		}
	}
	return workflows.OperatorResult{}, false
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

// AuditTrail reads the operator actions recorded for a policy;
// *store.Store is one.
type AuditTrail interface {
	OperatorActions(ctx context.Context, bizID string) ([]store.OperatorAction, error)
	LostNotifications(ctx context.Context, bizID string) ([]store.LostNotification, error)
}

var _ AuditTrail = (*store.Store)(nil)

// ErrNoAuditTrail is returned by OperatorActions on a Client without Audit.
var ErrNoAuditTrail = errors.New("policyclient: no audit trail configured")

// OperatorActions returns who retried or skipped the policy's callbacks,
// oldest first, from the store. It is read from the store even while the
// workflow runs: the workflow remembers only what an action did (to answer
// a repeat), not who took it or why, which the audit trail alone keeps.
// A policy with no actions has an empty, non-nil list.
func (c *Client) OperatorActions(ctx context.Context, bizID string) ([]OperatorActionView, error) {
	if c.Audit == nil {
		return nil, ErrNoAuditTrail
	}
	actions, err := c.Audit.OperatorActions(ctx, bizID)
	if err != nil {
		return nil, fmt.Errorf("operator actions of policy %s: %w", bizID, err)
	}
	return NewOperatorActionViews(actions), nil
}

// LostNotifications returns the policy's notifications that ran out of
// their retry budget (NOTIFY_RETRY_BUDGET) without the business system
// acknowledging them, oldest first, from the store; an empty, non-nil list
// when there are none.
func (c *Client) LostNotifications(ctx context.Context, bizID string) ([]LostNotificationView, error) {
	if c.Audit == nil {
		return nil, ErrNoAuditTrail
	}
	lost, err := c.Audit.LostNotifications(ctx, bizID)
	if err != nil {
		return nil, fmt.Errorf("lost notifications of policy %s: %w", bizID, err)
	}
	return NewLostNotificationViews(lost), nil
}
