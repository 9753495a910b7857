package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/insuranceflow/insuranceflow/activities"
)

// load reads the policy's snapshot through LoadSnapshotActivity and restores
// the run from it. It runs first thing in a run that reopens a policy, in
// the run's first workflow task: Temporal has closed the previous run by
// then, and everything that run accepted is in the store (or, for a run
// that did not complete, in the answer of its snapshot query, which the
// activity merges). A snapshot read by the client before the start could
// be older than that: another report may have started, used and closed a
// run in between, and a run restored from it would re-use that run's seqs
// and accept events after its cancel.
//
// The load is retried until it succeeds, since nothing can be judged
// without it; reports wait meanwhile (see report). A snapshot that cannot
// be restored fails the run with ErrorTypeInvalidInput.
func (p *policy) load(ctx workflow.Context) error {
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: recordAttemptTimeout,
		// Without it the SDK bounds all retries by StartToCloseTimeout, and
		// a store outage of ten seconds would fail the run.
		ScheduleToCloseTimeout: loadBudget,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        30 * time.Second,
			NonRetryableErrorTypes: []string{ErrorTypeInvalidInput},
		},
		Summary: "load policy from the store",
	})
	var snap *Snapshot
	in := LoadSnapshotInput{BizID: p.bizID, PreviousRunID: p.input.PreviousRunID}
	if err := workflow.ExecuteLocalActivity(lctx, LoadSnapshotActivity, in).Get(ctx, &snap); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return temporal.NewNonRetryableApplicationError("load the policy: "+err.Error(), ErrorTypeInvalidInput, err)
	}
	if err := p.applySnapshot(snap); err != nil {
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrorTypeInvalidInput, err)
	}
	p.loaded = true
	if snap != nil {
		p.logger.Info("policy loaded", "state", p.lifecycle.State(), "last_seq", p.lastSeq, "pending_callbacks", len(p.fifo))
	}
	p.setCurrentDetails(ctx)
	return nil
}

// loadBudget bounds the snapshot load's retries: a store outage is waited
// out (reports wait with it), a day is an incident, not an outage.
const loadBudget = 24 * time.Hour

// changeRecordOnCancel versions recordOnCancel's local activity, which runs
// that recorded a cancellation before it existed did not schedule.
const changeRecordOnCancel = "record-on-cancel"

// recordOnCancel writes every callback still in the FIFO to the store when
// the run is cancelled, in a disconnected context (the run's own is
// cancelled), so that the next run finds every accepted event and delivers
// what is pending. A callback in flight is recorded as it stands; its
// attempt's own writes finish or are retried by the next run.
func (p *policy) recordOnCancel(ctx workflow.Context) {
	if len(p.fifo) == 0 || p.lastSeq == 0 {
		return
	}
	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	if workflow.GetVersion(dctx, changeRecordOnCancel, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return
	}
	records := make([]activities.EventRecord, len(p.fifo))
	for i, cb := range p.fifo {
		state := cb.State
		if state == EventSending {
			state = EventQueued
		}
		records[i] = eventRecord(cb, state)
	}
	in := activities.RecordInput{Policy: p.policyRecord(p.callbackState()), Events: records}
	if h := p.fifo[0]; h.State == EventParked {
		// The park's own write may have been cut off by the cancellation:
		// the store must not keep the head as sending, or the next run
		// would send a callback TOP refused.
		in.Callback = &activities.CallbackChange{Seq: h.Seq, Callback: string(EventParked), PolicyCallbackState: string(CallbackParked)}
	}
	err := p.recordCallbacks(dctx, fmt.Sprintf("record %d pending callbacks of a cancelled run", len(records)), in)
	if err != nil {
		p.logger.Error("pending callbacks of a cancelled run not recorded", "events", len(records), "error", err)
		return
	}
	p.logger.Warn("run cancelled; pending callbacks recorded for the next run", "pending_callbacks", len(records))
}
