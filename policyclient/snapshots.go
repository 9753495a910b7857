package policyclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/store"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// Snapshots gives the recorded state of a policy, which a new run starts
// from and which answers for a policy with no running workflow.
type Snapshots interface {
	// Snapshot returns nil, nil when the policy has never been recorded.
	Snapshot(ctx context.Context, bizID string) (*workflows.Snapshot, error)
}

// StoreSnapshots reads snapshots from the SQL store.
type StoreSnapshots struct {
	Store *store.Store
}

var _ Snapshots = StoreSnapshots{}

// Snapshot converts the store's policy row and all its events into a
// workflows.Snapshot: the lifecycle (state, endorsements), the policy's
// fields, the dedupe data (every accepted request id with its original
// acceptance), every event for the status view, and the callbacks still
// waiting in the FIFO, oldest first, so a new run resumes sending them.
func (s StoreSnapshots) Snapshot(ctx context.Context, bizID string) (*workflows.Snapshot, error) {
	p, err := s.Store.Policy(ctx, bizID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	state, err := fsm.ParseState(p.State)
	if err != nil {
		return nil, fmt.Errorf("stored policy %s: %w", bizID, err)
	}
	events, err := s.Store.Events(ctx, bizID)
	if err != nil {
		return nil, err
	}
	snap := &workflows.Snapshot{
		State:          state,
		Endorsements:   p.Endorsements,
		InsuranceType:  insurance.Type(p.InsuranceType),
		PolicyNumber:   p.PolicyNumber,
		LastSeq:        p.LastSeq,
		LastOccurredAt: p.LastOccurredAt,
		Accepted:       make([]workflows.Acceptance, 0, len(events)),
		Events:         make([]workflows.EventStatus, 0, len(events)),
	}
	for _, e := range events {
		after, err := fsm.ParseState(e.StateAfter)
		if err != nil {
			return nil, fmt.Errorf("stored event %s seq %d: %w", bizID, e.Seq, err)
		}
		snap.Accepted = append(snap.Accepted, workflows.Acceptance{
			BizID:     bizID,
			RequestID: e.RequestID,
			Seq:       e.Seq,
			Stage:     insurance.Stage(e.Stage),
			Status:    insurance.Status(e.Status),
			State:     after,
		})
		snap.Events = append(snap.Events, workflows.EventStatus{
			Seq:              e.Seq,
			RequestID:        e.RequestID,
			Stage:            insurance.Stage(e.Stage),
			Status:           insurance.Status(e.Status),
			TimeOfOccurrence: e.TimeOfOccurrence,
			AcceptedAt:       e.AcceptedAt,
			Callback:         workflows.EventCallback(e.Callback),
			Attempts:         e.Attempts,
			LastError:        e.LastError,
			LastClass:        e.LastClass,
			DeliveredAt:      e.DeliveredAt,
		})
		if !waiting(workflows.EventCallback(e.Callback)) {
			continue
		}
		var event insurance.Result
		if err := json.Unmarshal([]byte(e.Payload), &event); err != nil {
			// The payload is not quoted: it holds the manager's name.
			return nil, fmt.Errorf("stored event %s seq %d: decode payload: %w", bizID, e.Seq, err)
		}
		if event.RequestID == "" {
			event.RequestID = e.RequestID
		}
		snap.PendingCallbacks = append(snap.PendingCallbacks, workflows.Callback{
			Seq:               e.Seq,
			Event:             event,
			AcceptedAt:        e.AcceptedAt,
			Attempts:          e.Attempts,
			State:             workflows.EventCallback(e.Callback),
			LastError:         e.LastError,
			LastClass:         e.LastClass,
			StateAfter:        after,
			EndorsementsAfter: e.EndorsementsAfter,
		})
	}
	if len(snap.PendingCallbacks) > 0 {
		if err := s.firstAttempts(ctx, bizID, snap.PendingCallbacks); err != nil {
			return nil, err
		}
	}
	actions, err := s.Store.OperatorActions(ctx, bizID)
	if err != nil {
		return nil, err
	}
	// Only retries and skips: the audit trail's import rows are no
	// operator action on a callback a repeat could be recognised by.
	actions = slices.DeleteFunc(actions, func(a store.OperatorAction) bool { return a.Action == store.ActionImport })
	for _, a := range actions[max(0, len(actions)-workflows.MaxOperatorActions):] {
		result := workflows.EventQueued
		if a.Action == workflows.ActionSkip {
			result = workflows.EventSkipped
		}
		// A row keyed by the park, not by a caller's request id, has none.
		requestID, ok := strings.CutPrefix(a.Key, workflows.OperatorKeyPrefix)
		if !ok {
			requestID = ""
		}
		snap.OperatorActions = append(snap.OperatorActions, workflows.OperatorAction{Seq: a.Seq, Action: a.Action, Result: result, At: a.At, RequestID: requestID})
	}
	return snap, nil
}

// firstAttempts sets each pending callback's FirstAttemptAt, and its
// BudgetStartedAt, from the attempt log. The store does not record when an
// operator re-armed a callback, so the budget is dated from the first
// attempt; that matters little, since a new run restarts the budget of a
// callback that was in flight and an operator's retry restarts a parked one's.
func (s StoreSnapshots) firstAttempts(ctx context.Context, bizID string, pending []workflows.Callback) error {
	attempts, err := s.Store.Attempts(ctx, bizID)
	if err != nil {
		return err
	}
	first := make(map[int64]time.Time, len(pending))
	for _, a := range attempts {
		if t, ok := first[a.Seq]; !ok || a.StartedAt.Before(t) {
			first[a.Seq] = a.StartedAt
		}
	}
	for i := range pending {
		pending[i].FirstAttemptAt = first[pending[i].Seq]
		pending[i].BudgetStartedAt = first[pending[i].Seq]
	}
	return nil
}

// waiting reports whether a callback in this state is still in the FIFO.
func waiting(cb workflows.EventCallback) bool {
	switch cb {
	case workflows.EventQueued, workflows.EventSending, workflows.EventRetrying, workflows.EventParked:
		return true
	}
	return false
}
