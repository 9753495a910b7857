package policyclient

import (
	"context"
	"fmt"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/insuranceflow/insuranceflow/workflows"
)

// visibilityLag is how far behind the close of a run its visibility record
// may appear, with the skew between this host's clock and the server's
// (CloseTime is the server's). A sweep's next watermark is set back by it,
// so a run closed just before a sweep listed is listed by the next one. It
// is generous because a run missed here is missed for good, while a run
// listed again costs one Describe (its policy has a newer run by then).
const visibilityLag = 10 * time.Minute

// ResumedSummary is in the static summary of every run a sweep starts
// ("Policy X · resumed after its run was cancelled"): the UI shows why the
// run exists, and chaos finds the runs sweeps started by it.
const ResumedSummary = " · resumed after its run was "

// stopped reports how a policy's latest run ended when that end leaves
// work behind that only a new run does: "Canceled", "Terminated" or
// "TimedOut", with the run's ID and search attributes. "" when the latest
// run is open, completed or continued (nothing to resume), failed (a run
// that fails has met a policy it cannot restore, which a new run would
// meet again: that is a bug to fix, and the failed-workflow alert's to
// report), or when the policy has never had a run.
func (c *Client) stopped(ctx context.Context, bizID string) (status, runID string, fields map[string]*commonpb.Payload, err error) {
	info, err := c.lastRun(ctx, bizID)
	if err != nil || info == nil {
		return "", "", nil, err
	}
	switch info.GetStatus() {
	case enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED, enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED,
		enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:
		return info.GetStatus().String(), info.GetExecution().GetRunId(), info.GetSearchAttributes().GetIndexedFields(), nil
	}
	return "", "", nil, nil
}

// Resume starts a new run for a policy whose latest run was cancelled,
// terminated or timed out, and reports whether it did. The new run loads
// the store and asks the stopped run for what the store lacks (its last
// accepted events, its unsent notifications), delivers what is pending,
// and completes once the policy is quiet, as a run reopened by an event
// would. Any other latest run is left alone, so resuming is idempotent.
//
// Between the Describe and the start a report may open a run, which loads
// the store and takes the stopped run's leftovers itself: the resume is
// then done, and the server refuses the start, whether that run is still
// open (conflict policy FAIL; USE_EXISTING would count a resume that did
// nothing) or has completed (reuse policy ALLOW_DUPLICATE_FAILED_ONLY; a
// run started after it would ask the older stopped run again, re-sending
// its notifications, for nothing). The policy then counts as current.
func (c *Client) Resume(ctx context.Context, bizID string) (bool, error) {
	status, runID, fields, err := c.stopped(ctx, bizID)
	if err != nil || runID == "" {
		return false, err
	}
	_, err = c.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       workflows.WorkflowID(bizID),
		TaskQueue:                c.taskQueue(),
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		// Else the SDK answers a refused start with the existing run.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		// A sweep runs in a worker of the queue it starts on, so the new
		// run's first workflow task can come back in the start's answer
		// (eager workflow start, on by default on the server) rather than
		// through matching. Reports cannot: Update-with-Start is never
		// started eagerly.
		EnableEagerStart: true,
		// The stopped run's, which the UI showed last; the new run upserts
		// what it loads in its first workflow task.
		TypedSearchAttributes: carriedSearchAttributes(bizID, fields),
		StaticSummary:         fmt.Sprintf("Policy %s%s%s", bizID, ResumedSummary, strings.ToLower(status)),
	}, workflows.WorkflowName, workflows.PolicyInput{
		BizID: bizID, Settings: c.Settings, LoadSnapshot: true, PreviousRunID: runID,
	})
	if alreadyStarted(err) {
		return false, nil
	}
	if err != nil {
		return false, callError(ctx, "resume policy "+bizID, err)
	}
	return true, nil
}

// carriedSearchAttributes are the policy attributes of a stopped run, for
// its successor's start; biz_id always, the others when the run had them.
func carriedSearchAttributes(bizID string, fields map[string]*commonpb.Payload) temporal.SearchAttributes {
	updates := []temporal.SearchAttributeUpdate{workflows.SearchBizID.ValueSet(bizID)}
	for _, key := range []temporal.SearchAttributeKeyKeyword{workflows.SearchPolicyState, workflows.SearchInsuranceType, workflows.SearchCallbackState} {
		if v := keyword(fields, key.GetName()); v != "" {
			updates = append(updates, key.ValueSet(v))
		}
	}
	return temporal.NewSearchAttributes(updates...)
}

// ResumeClosed is one sweep (workflows.ResumeClosedActivity): it lists the
// task queue's policy runs closed by a cancel, a terminate or a timeout at
// or after in.ClosedSince, and resumes each policy whose latest run is
// still a stopped one. progress, when not nil, is called after each page
// and each resumed policy (the activity heartbeats with it).
func (c *Client) ResumeClosed(ctx context.Context, in workflows.ResumeClosedInput, progress func(workflows.ResumeClosedResult)) (workflows.ResumeClosedResult, error) {
	began := c.now()
	res := workflows.ResumeClosedResult{}
	query := "WorkflowType = " + quote(workflows.WorkflowName) +
		" AND TaskQueue = " + quote(in.TaskQueue) +
		" AND ExecutionStatus IN ('Canceled', 'Terminated', 'TimedOut')" +
		" AND CloseTime >= " + quote(in.ClosedSince.UTC().Format(time.RFC3339Nano))
	res.Next = began.Add(-visibilityLag)
	seen := map[string]bool{}
	var token []byte
	for {
		resp, err := c.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			PageSize: 500, NextPageToken: token, Query: query,
		})
		if err != nil {
			return res, callError(ctx, "list stopped policy runs", err)
		}
		for _, exec := range resp.GetExecutions() {
			res.Closed++
			bizID, ok := strings.CutPrefix(exec.GetExecution().GetWorkflowId(), workflows.WorkflowID(""))
			if !ok || seen[bizID] {
				continue
			}
			seen[bizID] = true
			resumed, err := c.Resume(ctx, bizID)
			switch {
			case ctx.Err() != nil:
				return res, callError(ctx, "resume policy "+bizID, ctx.Err())
			case err != nil:
				// One policy that cannot be resumed now must not stop the
				// others: it is counted, and the watermark stays at or
				// before its close, so the next sweep tries it again.
				res.Failed++
				if closed := exec.GetCloseTime().AsTime(); closed.Before(res.Next) {
					res.Next = closed
				}
			case resumed:
				res.Resumed++
			default:
				res.Current++
			}
			if progress != nil {
				progress(res)
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	return res, nil
}

// now is the client's clock (Client.Now), the system's without one.
func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// SweepMetrics counts what sweeps do; *metrics.Metrics is one.
type SweepMetrics interface {
	PolicyResumed()
}

// Sweep is workflows.ResumeClosedActivity, registered by the worker under
// that name: ResumeClosed with a heartbeat per policy, so a long list is
// not mistaken for a stuck sweep, and a count of the policies resumed.
type Sweep struct {
	Policies *Client
	Metrics  SweepMetrics // nil: not counted
}

// ResumeClosed runs one sweep.
func (s Sweep) ResumeClosed(ctx context.Context, in workflows.ResumeClosedInput) (workflows.ResumeClosedResult, error) {
	resumed := 0
	return s.Policies.ResumeClosed(ctx, in, func(r workflows.ResumeClosedResult) {
		for ; s.Metrics != nil && resumed < r.Resumed; resumed++ {
			s.Metrics.PolicyResumed()
		}
		activity.RecordHeartbeat(ctx, r)
	})
}
