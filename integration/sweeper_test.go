package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/store"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// TestSweeperResumesStoppedRuns: a run cancelled or terminated from
// Temporal while its first callback is at TOP and a second waits behind
// it, with no event after it, still gets both callbacks to TOP, in order
// and once each, and both notified: the sweeper gives the policy a new
// run, which loads the store and asks the stopped run for what the store
// lacks (a terminated run never recorded its queued event). Before the
// sweeper the second callback waited for the policy's next event, which
// need never come.
//
// TOP takes 4 s over the stopped run's callback, longer than the sweeper
// takes to resume the policy (a sweep a second), so the new run's attempt
// of seq 1 always begins while the stopped run's is still at TOP. Before
// attempts held leases (store.LeaseAttempt) TOP got seq 1 from both runs,
// the second time after seq 2 (pre_insure, underwrite, pre_insure): with
// 1.5 s of latency, 3 of ~8 runs failed so once pipelined delivery made the
// new run faster, and with 4 s every run did, with or without it.
func TestSweeperResumesStoppedRuns(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const queue = "sweeper-it"
	url := extraWorker(ctx, t, "sweeper-worker", append([]string{
		"TASK_QUEUE=" + queue, "SWEEP_INTERVAL=1s", "EMPTY_RUN_GRACE=2s",
		// Longer than topsim's latency: the stopped run's call is answered,
		// not abandoned by its client (a request the client gave up on can
		// still be processed by TOP later; nothing a client does can order
		// that one).
		"TOP_CALL_TIMEOUT=10s",
	}, env.NotifyEnv()...))
	t.Cleanup(func() { clearFaults(t) })
	// Nothing else in the suite asks for eager workflow start.
	eagerBefore := serverCounter(t, "workflow_eager_execution") - serverCounter(t, "workflow_eager_execution_denied")
	for _, how := range []string{"cancel", "terminate"} {
		t.Run(how, func(t *testing.T) {
			bizID := newBizID("SWP")
			setFaults(t, `{"latency":"4s"}`)
			reportVia(t, url, event(bizID, 1, 1, 0))
			reportVia(t, url, event(bizID, 2, 1, 1)) // queued behind seq 1, which is at topsim
			desc, err := env.Temporal.DescribeWorkflowExecution(ctx, workflows.WorkflowID(bizID), "")
			if err != nil {
				t.Fatal(err)
			}
			stopped := desc.GetWorkflowExecutionInfo().GetExecution().GetRunId()
			if how == "cancel" {
				err = env.Temporal.CancelWorkflow(ctx, workflows.WorkflowID(bizID), stopped)
			} else {
				err = env.Temporal.TerminateWorkflow(ctx, workflows.WorkflowID(bizID), stopped, "integration test")
			}
			if err != nil {
				t.Fatalf("%s: %v", how, err)
			}
			clearFaults(t)
			eventually(t, 60*time.Second, bizID+" both callbacks at TOP without another event", func() (bool, string) {
				got := simCallbacks(t, bizID)
				return len(got) >= 2, fmt.Sprintf("%d callbacks at topsim", len(got))
			})
			waitNotifications(t, bizID, []string{"1:callback.delivered", "2:callback.delivered"})
			// The stopped run's request is answered 4 s after it arrived;
			// count once topsim has answered everything.
			eventually(t, 30*time.Second, "topsim answered every request", func() (bool, string) {
				st := getSimStats(t)
				return st.InFlight == 0, fmt.Sprintf("%d in flight", st.InFlight)
			})
			got := simCallbacks(t, bizID)
			if len(got) != 2 || got[0].StageName != "pre_insure" || got[1].StageName != "underwrite" {
				var seen []string
				for _, r := range got {
					seen = append(seen, r.StageName+" "+r.RequestID)
				}
				t.Fatalf("callbacks at topsim: %v; want pre_insure then underwrite, each once", seen)
			}
			// The resumed run completes once the policy is quiet (the empty
			// run grace), and the sweeper leaves a completed run alone.
			eventually(t, 30*time.Second, bizID+" resumed run completed", func() (bool, string) {
				d, err := env.Temporal.DescribeWorkflowExecution(ctx, workflows.WorkflowID(bizID), "")
				if err != nil {
					return false, err.Error()
				}
				info := d.GetWorkflowExecutionInfo()
				return info.GetExecution().GetRunId() != stopped && info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED,
					fmt.Sprintf("latest run %s is %s", info.GetExecution().GetRunId(), info.GetStatus())
			})
			if how == "terminate" {
				recordHistoryOf(t, "resumed-after-terminate", bizID)
			}
		})
	}
	// Each resumed run's first workflow task came back in the start's
	// answer to the sweeping worker (eager workflow start).
	if n := serverCounter(t, "workflow_eager_execution") - serverCounter(t, "workflow_eager_execution_denied") - eagerBefore; n < 2 {
		t.Errorf("eager workflow starts granted: %.0f, want one per resumed run (2)", n)
	}
	recordWorkflowHistory(t, "sweeper", workflows.SweeperWorkflowID(queue), "")
}

// raceBeforeStart is a Temporal client whose next ExecuteWorkflow first runs
// before (the window between a sweep's Describe and its start).
type raceBeforeStart struct {
	client.Client
	before func()
}

func (r *raceBeforeStart) ExecuteWorkflow(ctx context.Context, opts client.StartWorkflowOptions, wf any, args ...any) (client.WorkflowRun, error) {
	if r.before != nil {
		r.before()
		r.before = nil
	}
	return r.Client.ExecuteWorkflow(ctx, opts, wf, args...)
}

// TestResumeAfterAReportOpenedARun is the race between a sweep and a
// report, on a real server: the sweep sees the policy's cancelled run; in
// the window before its start a report opens a run (which loads the store
// and asks the cancelled run for its leftovers) and is delivered. Whether
// that run has completed by the start or is still open, it did the resume:
// the sweep must start nothing and count nothing. This test failed before
// the resume's start refused both: after a completed run it started a
// third run (asking the older cancelled run again for nothing), and an
// open run it joined and counted as resumed.
func TestResumeAfterAReportOpenedARun(t *testing.T) {
	for _, tt := range []struct {
		name string
		idle time.Duration // the report's run completes when idle this long
	}{{"completed", time.Second}, {"still open", time.Hour}} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			tc := dialStack(t, ctx)
			st := openStackStore(t, ctx)
			settings := workflows.Settings{IdleTimeout: tt.idle, EmptyRunGrace: time.Second}
			reports := &policyclient.Client{Temporal: tc, Snapshots: policyclient.StoreSnapshots{Store: st}, Settings: settings}
			racing := &raceBeforeStart{Client: tc}
			sweep := &policyclient.Client{Temporal: racing, Snapshots: reports.Snapshots, Settings: settings}

			bizID := fmt.Sprintf("SWRACE%d", time.Now().UnixNano()%1e12)
			ev := func(stage insurance.Stage, h int) insurance.Result {
				return insurance.Result{BizID: bizID, Stage: stage, Status: insurance.StatusSuccess,
					TimeOfOccurrence: fmt.Sprintf("2025-04-08 %02d:00:00", h), InsuranceType: insurance.TypeHomeProperty}
			}
			if _, err := reports.Report(ctx, ev(insurance.StagePreInsure, 9)); err != nil {
				t.Fatal(err)
			}
			waitReceipts(t, bizID, 1, 30*time.Second)
			if err := tc.CancelWorkflow(ctx, workflows.WorkflowID(bizID), ""); err != nil {
				t.Fatal(err)
			}
			waitClosed(t, ctx, tc, bizID)

			var reportRun string
			racing.before = func() {
				if _, err := reports.Report(ctx, ev(insurance.StageUnderwrite, 10)); err != nil {
					t.Errorf("the racing report: %v", err)
					return
				}
				waitReceipts(t, bizID, 2, 30*time.Second)
				if tt.idle < time.Minute {
					waitClosed(t, ctx, tc, bizID) // idle for a second, then completed
				}
				d, err := tc.DescribeWorkflowExecution(ctx, workflows.WorkflowID(bizID), "")
				if err != nil {
					t.Errorf("describe: %v", err)
					return
				}
				reportRun = d.GetWorkflowExecutionInfo().GetExecution().GetRunId()
			}
			resumed, err := sweep.Resume(ctx, bizID)
			if err != nil || resumed {
				t.Fatalf("Resume = %v, %v; want not resumed (the report's run did it)", resumed, err)
			}
			d, err := tc.DescribeWorkflowExecution(ctx, workflows.WorkflowID(bizID), "")
			if err != nil {
				t.Fatal(err)
			}
			if info := d.GetWorkflowExecutionInfo(); info.GetExecution().GetRunId() != reportRun {
				t.Fatalf("latest run %s (%s); want the report's run %s, and no other", info.GetExecution().GetRunId(), info.GetStatus(), reportRun)
			}
		})
	}
}

// TestResumeOverARunThatNeverRan: a policy's run is terminated with events
// the store lacks; the run that resumes it is itself terminated before any
// worker started its first workflow task (workers down, or an operator
// quick on the trigger); the next run must still find those events. It
// asks the run before it for its state, and that run can answer nothing
// (Temporal: "closed before WorkflowTaskStarted"): it accepted nothing and
// took nothing over, so what it would have loaded is its own previous
// run's. Chaos found this: before the loader followed the chain, the third
// run retried its snapshot load forever and the policy's callbacks never
// reached TOP.
func TestResumeOverARunThatNeverRan(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fx := newResumeFixture(ctx, t, "never-ran", "NVR")
	// The run that takes over goes to a queue no worker polls: it never
	// starts a workflow task before it is terminated in turn.
	if resumed, err := fx.resumer("nobody-polls-"+fx.bizID).Resume(ctx, fx.bizID); err != nil || !resumed {
		t.Fatalf("resume onto an unpolled queue = %v, %v", resumed, err)
	}
	never := fx.latest()
	if never == fx.first {
		t.Fatal("the resume started no run")
	}
	if err := fx.tc.TerminateWorkflow(ctx, workflows.WorkflowID(fx.bizID), never, "integration test"); err != nil {
		t.Fatal(err)
	}
	if resumed, err := fx.resumer(fx.queue).Resume(ctx, fx.bizID); err != nil || !resumed {
		t.Fatalf("resume = %v, %v", resumed, err)
	}
	fx.expectBothCallbacks()
}

// TestResumeOverARunCancelledBeforeItLoaded: the run between the one that
// accepted the events and the resume starts its first workflow task with a
// cancel already requested (chaos: the worker was killed, the run cancelled
// meanwhile), so it is cancelled before its load completes. Asked for its
// snapshot it knows nothing; the resumed run must go on to the run before
// it, which accepted seq 2 while seq 1 was at TOP and recorded neither.
// Before policyclient.neverLoaded the resumed run took the store's
// snapshot alone, and seq 2 never reached TOP (found by make chaos-short).
func TestResumeOverARunCancelledBeforeItLoaded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fx := newResumeFixture(ctx, t, "cancelled-load", "CBL")
	// The next run goes to a queue no worker polls yet, and is cancelled
	// there; a worker started on that queue then runs its first workflow
	// task with the cancel in it.
	late := "late-" + fx.bizID
	if resumed, err := fx.resumer(late).Resume(ctx, fx.bizID); err != nil || !resumed {
		t.Fatalf("resume onto an unpolled queue = %v, %v", resumed, err)
	}
	middle := fx.latest()
	if middle == fx.first {
		t.Fatal("the resume started no run")
	}
	if err := fx.tc.CancelWorkflow(ctx, workflows.WorkflowID(fx.bizID), middle); err != nil {
		t.Fatal(err)
	}
	extraWorker(ctx, t, "late-worker", []string{"TASK_QUEUE=" + late, "SWEEP_INTERVAL=1h"})
	eventually(t, 30*time.Second, "the middle run cancelled", func() (bool, string) {
		d, err := fx.tc.DescribeWorkflowExecution(ctx, workflows.WorkflowID(fx.bizID), middle)
		if err != nil {
			return false, err.Error()
		}
		s := d.GetWorkflowExecutionInfo().GetStatus()
		return s == enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED, s.String()
	})
	// The late worker's first sweep may resume the policy before we do;
	// either way a run that loads over the cancelled one takes over.
	if resumed, err := fx.resumer(fx.queue).Resume(ctx, fx.bizID); err != nil || (!resumed && fx.latest() == middle) {
		t.Fatalf("resume = %v, %v, and no other run took over", resumed, err)
	}
	fx.expectBothCallbacks()
}

// resumeFixture is a policy whose first run accepted seq 2 while seq 1 was
// at topsim (slowed to 3 s), and was terminated then: the store holds
// neither, only that run's history does.
type resumeFixture struct {
	t     *testing.T
	ctx   context.Context
	tc    client.Client
	st    *store.Store
	queue string // the fixture's worker's task queue
	bizID string
	first string // the terminated run
}

func newResumeFixture(ctx context.Context, t *testing.T, name, prefix string) *resumeFixture {
	t.Helper()
	fx := &resumeFixture{t: t, ctx: ctx, queue: name + "-it", bizID: newBizID(prefix)}
	url := extraWorker(ctx, t, name+"-worker", []string{
		"TASK_QUEUE=" + fx.queue, "SWEEP_INTERVAL=1h", "EMPTY_RUN_GRACE=2s", "TOP_CALL_TIMEOUT=10s",
	})
	t.Cleanup(func() { clearFaults(t) })
	fx.tc = dialStack(t, ctx)
	fx.st = openStackStore(t, ctx)
	setFaults(t, `{"latency":"3s"}`)
	reportVia(t, url, event(fx.bizID, 1, 1, 0))
	reportVia(t, url, event(fx.bizID, 2, 1, 1)) // behind seq 1, at topsim: in no store row yet
	fx.first = fx.latest()
	if err := fx.tc.TerminateWorkflow(ctx, workflows.WorkflowID(fx.bizID), fx.first, "integration test"); err != nil {
		t.Fatal(err)
	}
	clearFaults(t)
	return fx
}

// resumer resumes policies onto queue.
func (fx *resumeFixture) resumer(queue string) *policyclient.Client {
	settings := workflows.Settings{RetryInitialInterval: 200 * time.Millisecond, RetryMaxInterval: time.Second,
		EmptyRunGrace: 2 * time.Second, Pipeline: true}
	return &policyclient.Client{Temporal: fx.tc, Snapshots: policyclient.StoreSnapshots{Store: fx.st}, Settings: settings, TaskQueue: queue}
}

// latest is the policy's latest run.
func (fx *resumeFixture) latest() string {
	fx.t.Helper()
	d, err := fx.tc.DescribeWorkflowExecution(fx.ctx, workflows.WorkflowID(fx.bizID), "")
	if err != nil {
		fx.t.Fatal(err)
	}
	return d.GetWorkflowExecutionInfo().GetExecution().GetRunId()
}

// expectBothCallbacks waits for pre_insure then underwrite at topsim, each
// once.
func (fx *resumeFixture) expectBothCallbacks() {
	t := fx.t
	t.Helper()
	eventually(t, 60*time.Second, fx.bizID+" both callbacks at TOP", func() (bool, string) {
		got := simCallbacks(t, fx.bizID)
		return len(got) >= 2, fmt.Sprintf("%d callbacks at topsim", len(got))
	})
	eventually(t, 30*time.Second, "topsim answered every request", func() (bool, string) {
		s := getSimStats(t)
		return s.InFlight == 0, fmt.Sprintf("%d in flight", s.InFlight)
	})
	if got := simCallbacks(t, fx.bizID); len(got) != 2 || got[0].StageName != "pre_insure" || got[1].StageName != "underwrite" {
		t.Fatalf("callbacks at topsim: %+v; want pre_insure then underwrite, each once", got)
	}
}
