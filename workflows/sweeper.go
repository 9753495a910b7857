package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// The sweeper: one long-running workflow per task queue that gives every
// policy whose run was cancelled or terminated (from the Temporal UI, the
// CLI, a batch job) a new run, so what that run held is delivered without
// waiting for the policy's next event, which may never come.
//
// A cancelled run records its pending callbacks in the store; a terminated
// one cannot, and neither keeps its unsent notifications anywhere but in
// its own state. Either way the next run loads the store and asks the
// closed run for the rest (PolicyInput.PreviousRunID), and before the
// sweeper that next run started only with the policy's next event. A
// Temporal cancel or terminate is how an operator stops a stuck or unwanted
// run, not how a callback is given up (that is skip-callback, which keeps
// the audit trail), so a stopped run's work must go on.
//
// It is a workflow with a timer rather than a Temporal Schedule because it
// carries a watermark from one sweep to the next: each sweep lists only the
// runs closed since the previous one, however long the worker was away in
// between, instead of re-reading a fixed look-back window every time.

const (
	// SweeperWorkflowName is the registered name of the sweeper workflow.
	SweeperWorkflowName = "Sweeper"
	// ResumeClosedActivity is the activity, registered by the worker under
	// this name (the workflow package cannot import policyclient, which
	// does the work), that lists the policy runs of a task queue closed by a
	// cancel, a terminate or a timeout since a time and starts a new run for
	// each policy whose latest run is still that closed one. Its input is a
	// ResumeClosedInput, its result a ResumeClosedResult.
	ResumeClosedActivity = "ResumeClosedPolicies"
	// SignalSweepInterval changes a running sweeper's interval: a worker
	// started with another SWEEP_INTERVAL sends it (signal-with-start), so
	// the setting of the latest deploy holds without restarting the sweeper
	// and losing its watermark. A signal, not an update: the worker has
	// nothing to learn back, and it must work while no worker polls yet.
	SignalSweepInterval = "sweep-interval"
)

// SweeperWorkflowID is the sweeper's one workflow ID on a task queue: every
// worker of the queue starts it with conflict policy USE_EXISTING, so there
// is one sweeper however many workers run.
func SweeperWorkflowID(taskQueue string) string { return "sweeper-" + taskQueue }

// SweeperInput is the sweeper's input, and what it carries across
// continue-as-new.
type SweeperInput struct {
	// TaskQueue is the queue whose policies it resumes.
	TaskQueue string `json:"task_queue"`
	// Interval is the time between sweeps.
	Interval time.Duration `json:"interval"`
	// Since is the watermark: runs closed at or after it are looked at.
	// Zero on the first start: the first sweep looks back FirstLookBack.
	Since time.Time `json:"since,omitzero"`
	// FirstLookBack is how far the first sweep of a new sweeper looks
	// back, so that runs stopped before the sweeper existed (or while no
	// sweeper ran) are resumed too.
	FirstLookBack time.Duration `json:"first_look_back"`
}

// ResumeClosedInput is the input of ResumeClosedActivity.
type ResumeClosedInput struct {
	TaskQueue   string    `json:"task_queue"`
	ClosedSince time.Time `json:"closed_since"`
}

// ResumeClosedResult is what one sweep did. Counts only: a history of a
// year of sweeps must stay small.
type ResumeClosedResult struct {
	// Closed is how many runs closed by a cancel, terminate or timeout
	// the listing found; Resumed how many policies got a new run; Current
	// how many needed none (a later event or sweep gave them one, or
	// their latest run failed); Failed how many could not be resumed now.
	Closed  int `json:"closed"`
	Resumed int `json:"resumed"`
	Current int `json:"current"`
	Failed  int `json:"failed,omitempty"`
	// Next is the watermark for the next sweep: when this one began
	// listing, less the visibility store's lag, so a run whose close was
	// not yet visible is listed next time; no later than the close of a
	// run whose policy could not be resumed, so it is tried again.
	Next time.Time `json:"next"`
}

// DefaultSweepInterval is the worker's SWEEP_INTERVAL unless set, and
// DefaultSweepFirstLookBack how far a new sweeper looks back.
const (
	DefaultSweepInterval      = time.Minute
	DefaultSweepFirstLookBack = 7 * 24 * time.Hour
)

// sweepsPerRun bounds a sweeper run's history (about ten events a sweep)
// before it continues as new.
const sweepsPerRun = 500

// Sweeper resumes the task queue's stopped policies every Interval until
// it is cancelled.
func Sweeper(ctx workflow.Context, in SweeperInput) error {
	logger := workflow.GetLogger(ctx)
	interval := validInterval(in.Interval, DefaultSweepInterval)
	since := in.Since
	if since.IsZero() {
		since = workflow.Now(ctx).Add(-in.FirstLookBack)
	}
	signals := workflow.GetSignalChannel(ctx, SignalSweepInterval)
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		// A sweep lists and starts runs; its heartbeat (one per policy)
		// shows it is alive on a long list, such as the first sweep after a
		// batch terminate.
		StartToCloseTimeout: time.Hour,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Minute,
			// Bounded, so a sweep that keeps failing does not stop the
			// sweeps after it; the watermark stays, so the next one
			// covers what this one missed.
			MaximumAttempts: 5,
		},
		Summary: "resume stopped policies",
	})
	for range sweepsPerRun {
		var res ResumeClosedResult
		err := workflow.ExecuteActivity(actx, ResumeClosedActivity, ResumeClosedInput{TaskQueue: in.TaskQueue, ClosedSince: since}).Get(ctx, &res)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			logger.Warn("sweep failed; the next one starts from the same watermark", "since", since, "error", err)
		default:
			if res.Next.After(since) {
				since = res.Next
			}
			if res.Resumed > 0 || res.Failed > 0 {
				logger.Info("stopped policies resumed", "resumed", res.Resumed, "failed", res.Failed, "closed_runs", res.Closed)
			}
		}
		interval = awaitSweep(ctx, signals, interval)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			break
		}
	}
	// Signals are not carried over: take the interval any pending one sets.
	for {
		var d time.Duration
		if !signals.ReceiveAsync(&d) {
			break
		}
		interval = validInterval(d, interval)
	}
	return workflow.NewContinueAsNewError(ctx, SweeperWorkflowName, SweeperInput{
		TaskQueue: in.TaskQueue, Interval: interval, Since: since, FirstLookBack: in.FirstLookBack,
	})
}

// awaitSweep waits one interval, taking a new interval from a signal
// meanwhile (which restarts the wait with it), and returns the interval
// in force.
func awaitSweep(ctx workflow.Context, signals workflow.ReceiveChannel, interval time.Duration) time.Duration {
	tctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	timer := workflow.NewTimerWithOptions(tctx, interval, workflow.TimerOptions{Summary: "next sweep"})
	for {
		done := false
		sel := workflow.NewSelector(ctx)
		sel.AddFuture(timer, func(workflow.Future) { done = true })
		sel.AddReceive(signals, func(c workflow.ReceiveChannel, _ bool) {
			var d time.Duration
			c.Receive(ctx, &d)
			if next := validInterval(d, interval); next != interval {
				interval = next
				cancel()
				done = true // sweep now, then wait the new interval
			}
		})
		sel.Select(ctx)
		if done || ctx.Err() != nil {
			return interval
		}
	}
}

// validInterval is d, or old when d is not a usable interval (a signal
// sent by hand with a bad value must not stop the sweeper).
func validInterval(d, old time.Duration) time.Duration {
	if d <= 0 {
		return old
	}
	return d
}
