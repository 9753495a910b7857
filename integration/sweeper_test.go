package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

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
func TestSweeperResumesStoppedRuns(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const queue = "sweeper-it"
	url := extraWorker(ctx, t, "sweeper-worker", append([]string{
		"TASK_QUEUE=" + queue, "SWEEP_INTERVAL=1s", "EMPTY_RUN_GRACE=2s",
	}, env.NotifyEnv()...))
	t.Cleanup(func() { clearFaults(t) })
	for _, how := range []string{"cancel", "terminate"} {
		t.Run(how, func(t *testing.T) {
			bizID := newBizID("SWP")
			setFaults(t, `{"latency":"1500ms"}`)
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
			got := simCallbacks(t, bizID)
			if len(got) != 2 {
				t.Fatalf("%d callbacks at topsim, want 2 (each once): %+v", len(got), got)
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
	recordWorkflowHistory(t, "sweeper", workflows.SweeperWorkflowID(queue), "")
}
