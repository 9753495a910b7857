package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// The baseline: the least a Temporal workflow can do for the same
// lifecycle — one Update per event (Update-with-Start for the first), one
// no-op "callback" activity per event, sequentially, FIFO — with no FSM, no
// store, no HTTP and no search attributes. Its worker runs in this process
// on its own task queue, against the same server as the real stack. The
// same workflow with baselineInput.Visible is the "visible baseline": the
// baseline plus insuranceflow's search attributes and idle timer.
const (
	baselineQueue    = "bench-baseline"
	baselineWorkflow = "BenchBaselinePolicy"
	baselineUpdate   = "report"
	baselineActivity = "BenchBaselineCallback"
)

// baselineInput tells a baseline run how many events make its lifecycle;
// it completes once that many callbacks ran, as a policy completes once
// its cancel is delivered.
type baselineInput struct {
	Events int `json:"events"`
	// Visible makes the run keep what insuranceflow's keeps in Temporal
	// besides its updates and callbacks: the search attributes (set at
	// start, PolicyState upserted when a delivered event changed it) and one
	// idle timer, so the same Temporal actions per lifecycle (15 for five
	// events). The "visible baseline" tells what that visibility costs the
	// server apart from what insuranceflow's own work (FSM, store, signed
	// HTTP, ingress) costs.
	Visible bool `json:"visible,omitempty"`
}

// idleTimer stands in for insuranceflow's idle timer (Settings.IdleTimeout's
// default): armed once, never fired within a run.
const idleTimer = 30 * 24 * time.Hour

// baselineEvent is the update's argument.
type baselineEvent struct {
	Stage  int `json:"stage"`
	Status int `json:"status"`
	Seq    int `json:"seq"` // set by the workflow, so the callback knows which it is
}

// baselinePolicy is the baseline workflow: accept, enqueue, answer the
// sequence number; deliver one callback at a time.
func baselinePolicy(ctx workflow.Context, in baselineInput) (int, error) {
	var queue []baselineEvent
	seq := 0
	if err := workflow.SetUpdateHandler(ctx, baselineUpdate, func(ctx workflow.Context, ev baselineEvent) (int, error) {
		seq++
		ev.Seq = seq
		queue = append(queue, ev)
		return seq, nil
	}); err != nil {
		return 0, err
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 30 * time.Second})
	shown := fsm.StatePreInsured // what the driver's start set
	if in.Visible {
		workflow.NewTimer(ctx, idleTimer)
	}
	delivered := 0
	for delivered < in.Events {
		if err := workflow.Await(ctx, func() bool { return len(queue) > 0 }); err != nil {
			return delivered, err
		}
		ev := queue[0]
		queue = queue[1:]
		if err := workflow.ExecuteActivity(actx, baselineActivity, ev).Get(ctx, nil); err != nil {
			return delivered, err
		}
		delivered++
		// As insuranceflow does: an upsert once a delivery moved the state.
		if next := stateAfter(shown, ev); in.Visible && next != shown {
			if err := workflow.UpsertTypedSearchAttributes(ctx, workflows.SearchPolicyState.ValueSet(string(next))); err != nil {
				return delivered, err
			}
			shown = next
		}
	}
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return delivered, err
	}
	return delivered, nil
}

// stateAfter is the policy state after ev, for the bench's lifecycles
// (always legal): a failure keeps the state, a success moves it to its
// stage's. A switch, not the fsm package's machine: the baseline spends
// nothing on the rules insuranceflow enforces.
func stateAfter(current fsm.State, ev baselineEvent) fsm.State {
	if insurance.Status(ev.Status) != insurance.StatusSuccess {
		return current
	}
	switch insurance.Stage(ev.Stage) {
	case insurance.StagePreInsure:
		return fsm.StatePreInsured
	case insurance.StageUnderwrite:
		return fsm.StateUnderwritten
	case insurance.StageInsure, insurance.StageEndorse:
		return fsm.StateInsured
	case insurance.StageCancel:
		return fsm.StateCancelled
	}
	return current
}

// callbackLog stands in for the TOP call and for topsim's receipt log: the
// baseline's callback does nothing but note when it started, which is the
// baseline's "delivery" (accept of the event → its callback started).
type callbackLog struct {
	mu sync.Mutex
	at map[string][]time.Time // workflow ID → start of callback seq (index seq-1)
}

func newCallbackLog() *callbackLog { return &callbackLog{at: map[string][]time.Time{}} }

// Callback is the baseline's no-op callback activity.
func (cl *callbackLog) Callback(ctx context.Context, ev baselineEvent) error {
	now := time.Now()
	id := activity.GetInfo(ctx).WorkflowExecution.ID
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if ev.Seq == len(cl.at[id])+1 { // a retried start is not a new one
		cl.at[id] = append(cl.at[id], now)
	}
	return nil
}

// started returns the callback start times of a baseline workflow.
func (cl *callbackLog) started(workflowID string) []time.Time {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return slices.Clone(cl.at[workflowID])
}

// startBaselineWorker runs the baseline's worker in this process.
func startBaselineWorker(c client.Client, cl *callbackLog) (worker.Worker, error) {
	// The same poller behaviour as insuranceflow's worker: the comparison
	// is of the workflows, not of the SDK's poller defaults.
	w := worker.New(c, baselineQueue, worker.Options{
		WorkflowTaskPollerBehavior: worker.NewPollerBehaviorAutoscaling(worker.PollerBehaviorAutoscalingOptions{}),
		ActivityTaskPollerBehavior: worker.NewPollerBehaviorAutoscaling(worker.PollerBehaviorAutoscalingOptions{}),
	})
	w.RegisterWorkflowWithOptions(baselinePolicy, workflow.RegisterOptions{Name: baselineWorkflow})
	w.RegisterActivityWithOptions(cl.Callback, activityOptions())
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("start the baseline worker: %w", err)
	}
	return w, nil
}

func activityOptions() activity.RegisterOptions {
	return activity.RegisterOptions{Name: baselineActivity}
}

func baselineWorkflowID(bizID string) string { return "bench-baseline-" + bizID }

func visibleBaselineWorkflowID(bizID string) string { return "bench-visible-" + bizID }

// baselineIDs is the workflow ID scheme of the baseline, or of the
// visible baseline.
func baselineIDs(visible bool) func(bizID string) string {
	if visible {
		return visibleBaselineWorkflowID
	}
	return baselineWorkflowID
}

// baselineDriver sends step k straight through the SDK client and waits
// for the update's result, as the ingress does; visible drives the visible
// baseline, whose start sets the search attributes insuranceflow's starter
// sets.
func baselineDriver(c client.Client, visible bool) driver {
	id := baselineIDs(visible)
	return func(ctx context.Context, l lifecycle, k int) error {
		st := l.Steps[k]
		upd := client.UpdateWorkflowOptions{
			WorkflowID:   id(l.BizID),
			UpdateName:   baselineUpdate,
			Args:         []any{baselineEvent{Stage: int(st.Stage), Status: int(st.Status)}},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		}
		var h client.WorkflowUpdateHandle
		var err error
		if k == 0 {
			start := client.StartWorkflowOptions{
				ID:                       id(l.BizID),
				TaskQueue:                baselineQueue,
				WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
			}
			if visible {
				start.TypedSearchAttributes = workflows.PolicySearchAttributes(l.BizID, fsm.StatePreInsured, insurance.TypeHomeProperty, workflows.CallbackIdle)
			}
			op := c.NewWithStartWorkflowOperation(start, baselineWorkflow, baselineInput{Events: len(l.Steps), Visible: visible})
			upd.WorkflowID = ""
			h, err = c.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{StartWorkflowOperation: op, UpdateOptions: upd})
		} else {
			h, err = c.UpdateWorkflow(ctx, upd)
		}
		if err != nil {
			return err
		}
		var seq int
		if err := h.Get(ctx, &seq); err != nil {
			return err
		}
		if seq != k+1 {
			return fmt.Errorf("update answered seq %d, want %d", seq, k+1)
		}
		return nil
	}
}

// completions waits for baseline workflows to close and records when.
type completions struct {
	c    client.Client
	id   func(bizID string) string
	wg   sync.WaitGroup
	mu   sync.Mutex
	at   map[int]time.Time
	errs map[int]error
}

func newCompletions(c client.Client, id func(bizID string) string) *completions {
	return &completions{c: c, id: id, at: map[int]time.Time{}, errs: map[int]error{}}
}

func (cs *completions) watch(ctx context.Context, i int, bizID string) {
	cs.wg.Add(1)
	go func() {
		defer cs.wg.Done()
		var n int
		err := cs.c.GetWorkflow(ctx, cs.id(bizID), "").Get(ctx, &n)
		now := time.Now()
		cs.mu.Lock()
		defer cs.mu.Unlock()
		if err != nil {
			cs.errs[i] = err
			return
		}
		cs.at[i] = now
	}()
}

// apply waits for every watch and fills the runs' completion times.
func (cs *completions) apply(runs []lcRun) {
	cs.wg.Wait()
	for i := range runs {
		if runs[i].err != nil {
			continue
		}
		if err := cs.errs[i]; err != nil {
			runs[i].err = fmt.Errorf("baseline workflow: %w", err)
			continue
		}
		runs[i].completeAt = cs.at[i]
	}
}
