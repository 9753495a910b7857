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
// Its first two stops, and its first two once the code-7 ban is over, are
// terminates of a run whose callback is at TOP: topsim answers slowly
// (atTOPLatency) and surely while the stopper looks for a run whose
// DeliverCallback just started with a callback queued behind it, and the
// policy is resumed at once (see resume), so the run that takes it over
// begins while the stopped run's call is still at TOP. Each is logged as
// evStopAtTOP, and deliveryFigures holds those policies to every arrival
// in seq order. Before attempts held leases TOP got the stopped run's
// callback after the next one (TestSweeperResumesStoppedRuns); with the
// lease turned off, 2 of 8 chaos-short runs and the one full run tried
// failed on it.
type runStopper struct {
	temporal client.Client
	started  *startedPolicies
	rng      *rand.Rand
	n        int // stops so far
	// Stops at TOP so far: before atTOPFrom (during the code-7 ban,
	// which answers the stopped call, so they exercise the wait for it)
	// and after (when TOP accepts it, so they exercise the order).
	atTOP, atTOPLate int

	// slowTOP makes topsim answer slowly and surely (atTOPLatency, no
	// injected errors or hangs) while a stop at TOP is under way, or
	// puts the run's faults back; nil makes no stop at TOP.
	slowTOP func(ctx context.Context, slow bool) error
	// atTOPFrom is when stops at TOP may begin: after the code-7 ban,
	// which would answer the stopped run's call before TOP accepts it.
	atTOPFrom func() time.Time
	// resume gives a policy stopped at TOP its new run at once, as the
	// sweeper does a sweep later (policyclient.Client.Resume): so the new
	// run begins while the stopped run's call is still at TOP.
	resume func(ctx context.Context, bizID string) (bool, error)
	// queuedBehind reports whether a policy has a callback queued behind
	// the one in flight (its status query); nil asks nothing.
	queuedBehind func(ctx context.Context, bizID string) bool
	log          *faultLog
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
	if late, due := s.dueAtTOP(); due {
		// Terminated: a cancelled run winds down in its own time (it records
		// its queue, and may go on retrying), a terminated one is gone at once.
		biz, behind, err := s.stopAtTOP(ctx, evTerminateRun)
		if err == nil {
			s.n++
			if late {
				s.atTOPLate++
			} else {
				s.atTOP++
			}
			s.log.add(evStopAtTOP, biz, nil)
			if behind {
				s.log.add(evStopAtTOPQueued, biz, nil)
			}
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

// dueAtTOP reports whether the next stop should be one at TOP, and
// whether it falls after atTOPFrom: the first atTOPStops stops are, and
// the first atTOPStops after atTOPFrom.
func (s *runStopper) dueAtTOP() (late, due bool) {
	if s.slowTOP == nil {
		return false, false
	}
	if s.atTOPFrom != nil && !time.Now().Before(s.atTOPFrom()) {
		return true, s.atTOPLate < atTOPStops
	}
	return false, s.atTOP < atTOPStops
}

// stopAtTOP slows topsim down, stops (what) the run of a started policy
// whose DeliverCallback has started, and puts topsim's speed back once the
// stopped run's call has been answered. For the first two thirds of its
// search it takes only a run whose attempt just started (justAtTOP) with a
// callback queued behind it (behind reports it got one): the run that
// takes over then sends that one too while the stopped run's call still
// sleeps in topsim, which is what put a callback at TOP after the next one
// before attempts held leases. Then any run at TOP will do.
func (s *runStopper) stopAtTOP(ctx context.Context, what string) (biz string, behind bool, err error) {
	if err := s.slowTOP(ctx, true); err != nil {
		return "", false, fmt.Errorf("slow topsim down: %w", err)
	}
	// Back to the run's faults once the run is stopped: its call keeps
	// the latency it arrived with (and is accepted), and the new run's is
	// answered at once.
	defer func() { _ = s.slowTOP(context.WithoutCancel(ctx), false) }()
	begun := time.Now()
	deadline, picky := begun.Add(3*atTOPLatency), begun.Add(2*atTOPLatency)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		started := s.started.snapshot()
		needBehind := s.queuedBehind != nil && time.Now().Before(picky)
		for _, i := range s.rng.Perm(len(started)) {
			biz := started[i]
			want := atTOP
			if needBehind {
				want = func(d *workflowservice.DescribeWorkflowExecutionResponse) bool {
					return justAtTOP(d, time.Now()) && s.queuedBehind(ctx, biz)
				}
			}
			if !s.stopIfOpen(ctx, what, biz, "chaos: an operator stops the run while its callback is at TOP", want) {
				continue
			}
			_ = s.slowTOP(ctx, false)
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
			return biz, needBehind, nil
		}
		_ = sleepCtx(ctx, 100*time.Millisecond)
	}
	return "", false, errNoOpenRun
}

// justAtTOPWithin is how recently justAtTOP wants the attempt at TOP to
// have started: the stopped run's call then has most of atTOPLatency left
// at topsim, time enough for the run that takes over to deliver that
// callback and the one behind it before the stopped call is answered.
const justAtTOPWithin = 300 * time.Millisecond

// hasQueuedBehind reports whether st shows a callback queued behind one
// in flight.
func hasQueuedBehind(st workflows.Status) bool {
	inFlight := false
	for _, e := range st.Events {
		switch e.Callback {
		case workflows.EventSending, workflows.EventRetrying:
			inFlight = true
		case workflows.EventQueued:
			if inFlight {
				return true
			}
		}
	}
	return false
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
	_, ok := callbackStarted(d)
	return ok
}

// justAtTOP reports whether a run has a DeliverCallback attempt that
// started within justAtTOPWithin of now.
func justAtTOP(d *workflowservice.DescribeWorkflowExecutionResponse, now time.Time) bool {
	at, ok := callbackStarted(d)
	return ok && now.Sub(at) < justAtTOPWithin
}

// callbackStarted is when the run's running DeliverCallback attempt
// started (zero if Temporal did not say); ok is false when none runs.
func callbackStarted(d *workflowservice.DescribeWorkflowExecutionResponse) (at time.Time, ok bool) {
	for _, a := range d.GetPendingActivities() {
		if a.GetActivityType().GetName() == "DeliverCallback" && a.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED {
			if t := a.GetLastStartedTime(); t != nil {
				at = t.AsTime()
			}
			return at, true
		}
	}
	return time.Time{}, false
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
