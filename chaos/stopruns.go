package main

// Runs cancelled and terminated from Temporal while the faults run, as an
// operator would from the UI or the CLI: a run stopped with a callback at
// TOP, or with callbacks queued and no event to come, must still get every
// accepted event to TOP and notified (the sweeper gives the policy a new
// run). The invariant that goes with it: no stopped policy is left with a
// stopped run as its latest when the stack has settled.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// startedPolicies is the biz_ids the driver has begun to play, for the
// run stopper to choose from.
type startedPolicies struct{ syncList[string] }

// runStopper cancels or terminates the open run of a policy the driver has
// started, chosen at random; every second stop is a terminate.
//
// Its first two stops are terminates of a run whose
// callback is at TOP: topsim answers slowly (atTOPLatency) while the
// stopper looks for a run with a DeliverCallback started, so the run that
// takes the policy over (the sweeper's, or the next report's) begins while
// the stopped run's call is still there. Each is logged as evStopAtTOP as
// well, and resumed at once (see resume); deliveryFigures holds those
// policies to every arrival in seq order: before attempts held leases, TOP got the stopped run's callback
// again after the next one (TestSweeperResumesStoppedRuns).
type runStopper struct {
	temporal client.Client
	started  *startedPolicies
	rng      *rand.Rand
	n        int

	// setLatency sets topsim's latency; nil makes no stop at TOP.
	setLatency func(ctx context.Context, d time.Duration) error
	// resume gives a policy stopped at TOP its new run at once, as the
	// sweeper does a sweep later (policyclient.Client.Resume): so the new
	// run begins while the stopped run's call is still at TOP.
	resume func(ctx context.Context, bizID string) (bool, error)
	log    *faultLog
}

// atTOPStops is how many of the first stops pick a run at TOP, and
// atTOPLatency how long topsim holds each call meanwhile: under the
// workers' TOP_CALL_TIMEOUT, so the stopped run's call is answered.
const (
	atTOPStops   = 2
	atTOPLatency = 1500 * time.Millisecond
)

// errNoOpenRun: no run was stopped. None of the policies tried had an
// open run, or Temporal refused (it is restarted during the window): the
// stop is tried again at the next turn, not counted as a failed fault.
var errNoOpenRun = errors.New("no started policy with an open run could be stopped")

// stop stops one run and returns what it did (evCancelRun or
// evTerminateRun) and the biz_id, which is the fault log's detail.
func (s *runStopper) stop(ctx context.Context) (what, bizID string, err error) {
	what = evCancelRun
	if s.n%2 == 1 {
		what = evTerminateRun
	}
	if s.setLatency != nil && s.n < atTOPStops {
		// Terminated: a cancelled run winds down in its own time (it records
		// its queue, and may go on retrying), a terminated one is gone at once.
		biz, err := s.stopAtTOP(ctx, evTerminateRun)
		if err == nil {
			s.n++
			s.log.add(evStopAtTOP, biz, nil)
			return evTerminateRun, biz, nil
		}
		if !errors.Is(err, errNoOpenRun) {
			return what, "", err
		}
		// None at TOP this time: a plain stop now, and another try next.
	}
	started := s.started.snapshot()
	// A few tries: the policy drawn may not have an open run (not yet
	// started, or closed by a terminal event).
	for range 5 {
		if len(started) == 0 {
			break
		}
		biz := started[s.rng.IntN(len(started))]
		if !s.stopIfOpen(ctx, what, biz, "chaos: an operator stops the run", nil) {
			continue
		}
		s.n++
		return what, biz, nil
	}
	return what, "", errNoOpenRun
}

// stopAtTOP slows topsim down, stops (what) the run of a started policy
// whose DeliverCallback has started, and puts topsim's speed back once the
// stopped run's call has been answered.
func (s *runStopper) stopAtTOP(ctx context.Context, what string) (string, error) {
	if err := s.setLatency(ctx, atTOPLatency); err != nil {
		return "", fmt.Errorf("slow topsim down: %w", err)
	}
	// Back to full speed once the run is stopped: its call keeps the
	// latency it arrived with, and the new run's is answered at once.
	defer func() { _ = s.setLatency(context.WithoutCancel(ctx), 0) }()
	deadline := time.Now().Add(3 * atTOPLatency)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		started := s.started.snapshot()
		for _, i := range s.rng.Perm(len(started)) {
			biz := started[i]
			if !s.stopIfOpen(ctx, what, biz, "chaos: an operator stops the run while its callback is at TOP", atTOP) {
				continue
			}
			_ = s.setLatency(ctx, 0)
			if s.resume != nil {
				// A cancelled run closes once its workflow task has run.
				resumed, err := false, error(nil)
				for range 40 {
					if resumed, err = s.resume(ctx, biz); resumed || err != nil {
						break
					}
					_ = sleepCtx(ctx, 25*time.Millisecond)
				}
				if !resumed {
					// Not a failed fault: the sweeper resumes it later.
					s.log.add(evStopAtTOP+": not resumed at once", biz, err)
				}
			}
			return biz, nil
		}
		_ = sleepCtx(ctx, 100*time.Millisecond)
	}
	return "", errNoOpenRun
}

// stopIfOpen cancels or terminates (what) bizID's run if it is open and,
// when want is set, want says so of it; it reports whether it did.
func (s *runStopper) stopIfOpen(ctx context.Context, what, bizID, reason string, want func(*workflowservice.DescribeWorkflowExecutionResponse) bool) bool {
	d, err := s.temporal.DescribeWorkflowExecution(ctx, workflows.WorkflowID(bizID), "")
	if err != nil || d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING || (want != nil && !want(d)) {
		return false
	}
	run := d.GetWorkflowExecutionInfo().GetExecution().GetRunId()
	if what == evCancelRun {
		err = s.temporal.CancelWorkflow(ctx, workflows.WorkflowID(bizID), run)
	} else {
		err = s.temporal.TerminateWorkflow(ctx, workflows.WorkflowID(bizID), run, reason)
	}
	return err == nil
}

// atTOP reports whether a run has a DeliverCallback attempt running.
func atTOP(d *workflowservice.DescribeWorkflowExecutionResponse) bool {
	for _, a := range d.GetPendingActivities() {
		if a.GetActivityType().GetName() == "DeliverCallback" && a.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED {
			return true
		}
	}
	return false
}

// stoppedRuns checks the policies a run was stopped for, once everything
// settled. left: the latest run is still a cancelled or terminated one (the
// sweeper never resumed it), or a failed one (the run that took over could
// not go on). resumedAfterCompleted: a run the sweeper started follows a
// run that completed, i.e. the sweep raced a report that reopened the
// policy and completed, and started a run asking the older stopped run
// again for its leftovers.
func stoppedRuns(ctx context.Context, tc client.Client, faults []faultEvent) (left, resumedAfterCompleted violations) {
	left, resumedAfterCompleted = violations{}, violations{}
	seen := map[string]bool{}
	for _, e := range faults {
		if (e.What != evCancelRun && e.What != evTerminateRun) || e.Error != "" || seen[e.Detail] {
			continue
		}
		seen[e.Detail] = true
		d, err := tc.DescribeWorkflowExecution(ctx, workflows.WorkflowID(e.Detail), "")
		if err != nil {
			left.add(e.Detail, "describe: %v", err)
			continue
		}
		switch st := d.GetWorkflowExecutionInfo().GetStatus(); st {
		case enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED, enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED:
			left.add(e.Detail, "%s at t+%s; its latest run is still %s", e.What, e.Offset, st)
		case enumspb.WORKFLOW_EXECUTION_STATUS_FAILED:
			left.add(e.Detail, "%s at t+%s; the run that took over failed", e.What, e.Offset)
		}
		if err := checkResumes(ctx, tc, e.Detail, resumedAfterCompleted); err != nil {
			resumedAfterCompleted.add(e.Detail, "runs: %v", err)
		}
	}
	return left, resumedAfterCompleted
}

// runReader is the part of the Temporal client checkResumes reads runs with.
type runReader interface {
	ListWorkflow(context.Context, *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error)
	DescribeWorkflowExecution(ctx context.Context, workflowID, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error)
}

// checkResumes adds to v each run of bizID that a sweep started (its
// summary says so) right after a run that completed.
func checkResumes(ctx context.Context, tc runReader, bizID string, v violations) error {
	var runs []*workflowpb.WorkflowExecutionInfo
	var token []byte
	for {
		resp, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: "WorkflowId = '" + workflows.WorkflowID(bizID) + "'", NextPageToken: token,
		})
		if err != nil {
			return err
		}
		runs = append(runs, resp.GetExecutions()...)
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	slices.SortFunc(runs, func(a, b *workflowpb.WorkflowExecutionInfo) int {
		return a.GetStartTime().AsTime().Compare(b.GetStartTime().AsTime())
	})
	for i := 1; i < len(runs); i++ {
		if runs[i-1].GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
			continue
		}
		run := runs[i].GetExecution().GetRunId()
		d, err := tc.DescribeWorkflowExecution(ctx, workflows.WorkflowID(bizID), run)
		if err != nil {
			return err
		}
		var summary string
		if p := d.GetExecutionConfig().GetUserMetadata().GetSummary(); p != nil {
			if err := converter.GetDefaultDataConverter().FromPayload(p, &summary); err != nil {
				return fmt.Errorf("run %s's summary: %w", run, err)
			}
		}
		if strings.Contains(summary, policyclient.ResumedSummary) {
			v.add(bizID, "run %s (%q) was started by a sweep after run %s had completed", run, summary, runs[i-1].GetExecution().GetRunId())
		}
	}
	return nil
}
