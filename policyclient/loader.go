package policyclient

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

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
}

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
	if prev != nil && (snap == nil || prev.LastSeq > snap.LastSeq) {
		return prev, nil
	}
	if prev != nil && snap != nil {
		// The store keeps no notification queue: the previous run's
		// unsent notifications are taken over from it, so a cancelled or
		// terminated run loses none.
		snap.PendingNotifications = prev.PendingNotifications
	}
	return snap, nil
}

// previous asks the previous run for its final snapshot; nil when it cannot
// answer.
func (l SnapshotLoader) previous(ctx context.Context, in workflows.LoadSnapshotInput) (*workflows.Snapshot, error) {
	v, err := l.Temporal.QueryWorkflow(ctx, workflows.WorkflowID(in.BizID), in.PreviousRunID, workflows.QuerySnapshot)
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
