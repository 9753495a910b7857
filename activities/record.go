package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/store"
)

// RecordInput is what RecordCallbacks writes: the policy row, any events the
// store may not have yet, and optionally one callback decision.
type RecordInput struct {
	Policy   PolicyRecord    `json:"policy"`
	Events   []EventRecord   `json:"events,omitempty"`
	Callback *CallbackChange `json:"callback,omitempty"`
	// Operator, with Callback, is the operator action that made the
	// change: it goes to the audit trail in the same transaction.
	Operator *OperatorRecord `json:"operator,omitempty"`
	// Import says the Events were imported as already reported to TOP
	// (callback "imported"): each gets an audit row saying who imported it
	// and when, in the same transaction (store.RecordImported).
	Import *ImportRecord `json:"import,omitempty"`
}

// ImportRecord is who imported events, and when (the workflow's clock, so
// a retried write repeats it exactly).
type ImportRecord struct {
	By string    `json:"by,omitempty"`
	At time.Time `json:"at"`
	// Key is the audit rows' idempotency key: the same for every handler
	// run that imports the same events (see workflows' importAuditKey).
	Key string `json:"key,omitempty"`
}

// OperatorRecord is who changed a callback, how and why.
type OperatorRecord struct {
	Action string    `json:"action"` // workflows.ActionRetry or ActionSkip
	By     string    `json:"by,omitempty"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
	// Key is the action's idempotency key in the audit trail: the same for
	// every run of a handler that acts on the same park of the head (see
	// workflows' operatorActionKey), so one action keeps one row.
	Key string `json:"key,omitempty"`
}

// PolicyRecord is the policy as the workflow knows it.
type PolicyRecord struct {
	BizID          string         `json:"biz_id"`
	State          fsm.State      `json:"state"`
	InsuranceType  insurance.Type `json:"insurance_type"`
	PolicyNumber   string         `json:"policy_number,omitempty"`
	Endorsements   int            `json:"endorsements"`
	LastSeq        int64          `json:"last_seq"`
	LastOccurredAt string         `json:"last_occurred_at,omitempty"`
	CallbackState  string         `json:"callback_state,omitempty"` // a workflows.CallbackState value
}

// EventRecord is one accepted event and its callback state.
type EventRecord struct {
	Seq               int64            `json:"seq"`
	Event             insurance.Result `json:"event"`
	AcceptedAt        time.Time        `json:"accepted_at"`
	StateAfter        fsm.State        `json:"state_after"`
	EndorsementsAfter int              `json:"endorsements_after"`
	Callback          string           `json:"callback"` // a workflows.EventCallback value
}

// callbackParked is workflows.EventParked, which this package cannot import
// (workflows imports it): the CallbackChange that parks a callback.
const callbackParked = "parked"

// CallbackChange sets one event's callback state and its policy's.
type CallbackChange struct {
	Seq                 int64  `json:"seq"`
	Callback            string `json:"callback"`                        // a workflows.EventCallback value
	PolicyCallbackState string `json:"policy_callback_state,omitempty"` // a workflows.CallbackState value
}

// RecordCallbacks is the local activity behind parking, skipping and the
// recording of events accepted while a callback is parked: events are
// recorded idempotently first (so the change below always finds its event),
// then the callback change is applied. Both writes are idempotent, so the
// SDK may retry the whole call.
//
// A record the store refuses (an event conflicting with a stored one, an
// invalid field) fails non-retryably with ErrorTypeInvalid: retrying for
// the local activity's whole budget would only delay the same answer and
// make it look like an outage.
func (a *Activities) RecordCallbacks(ctx context.Context, in RecordInput) error {
	if err := a.recordCallbacks(ctx, in); err != nil {
		var invalid *store.InvalidError
		var conflict *store.EventConflictError
		if errors.As(err, &invalid) || errors.As(err, &conflict) {
			return temporal.NewNonRetryableApplicationError(err.Error(), ErrorTypeInvalid, err)
		}
		return err
	}
	return nil
}

func (a *Activities) recordCallbacks(ctx context.Context, in RecordInput) error {
	parks := a.parks(ctx, in)
	policy := store.Policy{
		BizID:          in.Policy.BizID,
		State:          string(in.Policy.State),
		InsuranceType:  int(in.Policy.InsuranceType),
		PolicyNumber:   in.Policy.PolicyNumber,
		Endorsements:   in.Policy.Endorsements,
		LastSeq:        in.Policy.LastSeq,
		LastOccurredAt: in.Policy.LastOccurredAt,
		CallbackState:  in.Policy.CallbackState,
	}
	events := make([]store.Event, 0, len(in.Events))
	for _, e := range in.Events {
		payload, err := e.Event.APIJSON()
		if err != nil {
			return fmt.Errorf("record callbacks of seq %d: %w", e.Seq, err)
		}
		events = append(events, store.Event{
			BizID:             in.Policy.BizID,
			Seq:               e.Seq,
			RequestID:         e.Event.RequestID,
			Stage:             int(e.Event.Stage),
			Status:            int(e.Event.Status),
			TimeOfOccurrence:  e.Event.TimeOfOccurrence,
			Payload:           payload,
			AcceptedAt:        e.AcceptedAt,
			StateAfter:        string(e.StateAfter),
			EndorsementsAfter: e.EndorsementsAfter,
			Callback:          e.Callback,
		})
	}
	if in.Import != nil {
		if err := a.Store.RecordImported(ctx, policy, events, in.Import.By, in.Import.At, in.Import.Key); err != nil {
			return err
		}
	} else if err := a.Store.RecordEvents(ctx, policy, events...); err != nil {
		return err
	}
	if c := in.Callback; c != nil {
		var err error
		if o := in.Operator; o != nil {
			err = a.Store.SetCallbackByOperator(ctx, in.Policy.BizID, c.Seq, c.Callback, c.PolicyCallbackState,
				store.OperatorAction{Action: o.Action, By: o.By, Reason: o.Reason, At: o.At, Key: o.Key})
		} else {
			err = a.Store.SetCallback(ctx, in.Policy.BizID, c.Seq, c.Callback, c.PolicyCallbackState)
		}
		if err != nil {
			return err
		}
		if parks {
			a.metrics().CallbackParked()
		}
	}
	a.logger().InfoContext(ctx, "callbacks recorded",
		"biz_id", in.Policy.BizID, "events", len(in.Events), "change", changeText(in.Callback))
	return nil
}

// parks reports whether in parks a callback the store does not hold as
// parked yet, so that the metric counts each park once even though the SDK
// may run this local activity again after it recorded. It reads before
// anything is written, and only when metrics are on; a failed read counts
// the park rather than lose it.
func (a *Activities) parks(ctx context.Context, in RecordInput) bool {
	if a.Metrics == nil || in.Callback == nil || in.Callback.Callback != callbackParked {
		return false
	}
	events, err := a.Store.Events(ctx, in.Policy.BizID)
	if err != nil {
		return true
	}
	for _, e := range events {
		if e.Seq == in.Callback.Seq {
			return e.Callback != callbackParked
		}
	}
	return true
}

func changeText(c *CallbackChange) string {
	if c == nil {
		return "none"
	}
	return fmt.Sprintf("seq %d %s", c.Seq, c.Callback)
}
