package policyclient

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/insuranceflow/insuranceflow/workflows"
)

// SnapshotLoader is workflows.LoadSnapshotActivity: the local activity with
// which a run that reopens a policy reads its snapshot when it starts,
// rather than trusting one a client read before the start (see
// workflows.PolicyInput.LoadSnapshot). The worker registers its Load.
type SnapshotLoader struct {
	Snapshots Snapshots
	// Temporal answers the previous run's snapshot query; nil never asks.
	Temporal client.Client
	// DataConverter decodes a run's input (the worker's, encryption
	// included); nil is the SDK's default.
	DataConverter converter.DataConverter
}

// maxRunsBack bounds how many runs that never loaded the policy (see
// previous) Load looks past to find the one that holds its state.
const maxRunsBack = 20

// Load returns the policy's snapshot: the store's, or, when the previous run
// ended without completing (in.PreviousRunID) and knew of later events than
// the store holds, that run's own final state. A run that was terminated
// never got to record the events it accepted last; its history still holds
// them, and the snapshot query replays it. A previous run that cannot be
// asked (its history gone, or recorded by code without the query) leaves
// the store's snapshot; an unreachable Temporal or store is an error, and
// the local activity is retried.
func (l SnapshotLoader) Load(ctx context.Context, in workflows.LoadSnapshotInput) (*workflows.Snapshot, error) {
	snap, err := l.Snapshots.Snapshot(ctx, in.BizID)
	if err != nil {
		return nil, fmt.Errorf("load policy %s from the store: %w", in.BizID, err)
	}
	if in.PreviousRunID == "" || l.Temporal == nil {
		return snap, nil
	}
	prev, err := l.previous(ctx, in)
	if err != nil {
		return nil, err
	}
	return mergePrevious(snap, prev), nil
}

// mergePrevious is the snapshot a reopening run starts from, given the
// store's and the previous run's (either may be nil).
func mergePrevious(stored, prev *workflows.Snapshot) *workflows.Snapshot {
	if prev == nil {
		return stored
	}
	if stored == nil || prev.LastSeq > stored.LastSeq {
		return prev
	}
	// The store keeps no notification queue: the previous run's unsent
	// notifications are taken over from it, so a cancelled or terminated
	// run loses none.
	stored.PendingNotifications = prev.PendingNotifications
	// Nor does it know which outcomes were notified. A callback the
	// previous run still held when it ended, but which the store has
	// finished, reached TOP (or was skipped) in an attempt that completed
	// after the run was cancelled or terminated: the run never handled
	// that outcome, so never notified it. It goes to the new run once
	// more, as queued: its next attempt finds it finished in the store and
	// does not call TOP, and the run notifies the outcome then.
	pending := make(map[int64]bool, len(stored.PendingCallbacks))
	for _, cb := range stored.PendingCallbacks {
		pending[cb.Seq] = true
	}
	added := false
	for _, cb := range prev.PendingCallbacks {
		if pending[cb.Seq] || cb.Seq > stored.LastSeq {
			continue
		}
		cb.State, cb.BudgetStartedAt = workflows.EventQueued, time.Time{}
		stored.PendingCallbacks = append(stored.PendingCallbacks, cb)
		added = true
	}
	if added {
		slices.SortFunc(stored.PendingCallbacks, func(a, b workflows.Callback) int { return cmp.Compare(a.Seq, b.Seq) })
	}
	return stored
}

// previous asks the previous run for its final snapshot; nil when it cannot
// answer. A run that closed before any worker started its first workflow
// task (terminated or cancelled while workers were down, or at once)
// cannot answer (Temporal: WorkflowNotReady), and need not: it accepted no
// event and took nothing over from the run before it, so what it would
// have loaded is that run's. The same holds for a run that started but
// closed before its own load completed (cancelled in its first workflow
// task, say): it answers workflows.SnapshotNotLoaded. So the question goes
// back along the runs' PreviousRunIDs to the first that loaded.
func (l SnapshotLoader) previous(ctx context.Context, in workflows.LoadSnapshotInput) (*workflows.Snapshot, error) {
	runID := in.PreviousRunID
	for back := 0; ; back++ {
		v, err := l.Temporal.QueryWorkflow(ctx, workflows.WorkflowID(in.BizID), runID, workflows.QuerySnapshot)
		if neverLoaded(err) && back < maxRunsBack {
			if runID, err = l.previousRunOf(ctx, in.BizID, runID); err != nil || runID == "" {
				return nil, err
			}
			continue
		}
		if err != nil {
			var notFound *serviceerror.NotFound
			var queryFailed *serviceerror.QueryFailed
			if errors.As(err, &notFound) || errors.As(err, &queryFailed) {
				return nil, nil
			}
			return nil, fmt.Errorf("ask the previous run of policy %s for its state: %w", in.BizID, err)
		}
		var snap workflows.Snapshot
		if err := v.Get(&snap); err != nil {
			return nil, fmt.Errorf("decode the previous run's state of policy %s: %w", in.BizID, err)
		}
		return &snap, nil
	}
}

// previousRunOf reads the PreviousRunID a run of the policy was started
// with, from its first history event; "" when it had none.
func (l SnapshotLoader) previousRunOf(ctx context.Context, bizID, runID string) (string, error) {
	it := l.Temporal.GetWorkflowHistory(ctx, workflows.WorkflowID(bizID), runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	if !it.HasNext() {
		return "", fmt.Errorf("read the start of run %s of policy %s: no history", runID, bizID)
	}
	ev, err := it.Next()
	if err != nil {
		return "", fmt.Errorf("read the start of run %s of policy %s: %w", runID, bizID, err)
	}
	attrs := ev.GetWorkflowExecutionStartedEventAttributes()
	if attrs == nil {
		return "", fmt.Errorf("read the start of run %s of policy %s: its first event is %s", runID, bizID, ev.GetEventType())
	}
	dc := l.DataConverter
	if dc == nil {
		dc = converter.GetDefaultDataConverter()
	}
	var started workflows.PolicyInput
	if err := dc.FromPayloads(attrs.GetInput(), &started); err != nil {
		return "", fmt.Errorf("decode the input of run %s of policy %s: %w", runID, bizID, err)
	}
	return started.PreviousRunID, nil
}

// neverLoaded reports whether a snapshot query's error says the run never
// loaded the policy: it never started a workflow task, or answered
// workflows.SnapshotNotLoaded (the query failure's type, which the server
// passes on).
func neverLoaded(err error) bool {
	var notReady *serviceerror.WorkflowNotReady
	if errors.As(err, &notReady) {
		return true
	}
	var failed *serviceerror.QueryFailed
	if !errors.As(err, &failed) {
		return false
	}
	return failed.Failure.GetApplicationFailureInfo().GetType() == workflows.SnapshotNotLoaded
}
