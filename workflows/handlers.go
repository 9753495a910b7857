package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/insuranceflow/insuranceflow/activities"
	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
)

// registerHandlers registers the updates (each with a validator, so a
// refused event or operator action is answered without touching the
// history) and the status query.
func (p *policy) registerHandlers(ctx workflow.Context) error {
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateReport, p.report,
		workflow.UpdateHandlerOptions{Validator: p.validateReport}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateRetryCallback, p.retryCallback,
		workflow.UpdateHandlerOptions{Validator: p.validateOperator}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateSkipCallback, p.skipCallback,
		workflow.UpdateHandlerOptions{Validator: p.validateOperator}); err != nil {
		return err
	}
	return workflow.SetQueryHandler(ctx, QueryStatus, func() (Status, error) { return p.status(), nil })
}

// validateReport decides whether an event is accepted. Its rejections are
// ApplicationErrors whose type is a Reason constant; none of them is written
// to the history, which is what makes a duplicate free (see
// ReasonDuplicate). The checks run in this order, so a re-sent event is
// recognised as a duplicate even after the policy has moved on:
// well-formedness, duplicate, lifecycle, consistency with the policy, and
// time order. Messages name fields and values but never the account
// manager's name.
func (p *policy) validateReport(_ workflow.Context, ev insurance.Result) error {
	ev = ev.WithRequestID()
	if err := ev.Validate(); err != nil {
		var invalid *insurance.ValidationError
		if errors.As(err, &invalid) {
			return temporal.NewApplicationError(err.Error(), ReasonInvalidRequest, invalid.Problems)
		}
		return temporal.NewApplicationError(err.Error(), ReasonInvalidRequest)
	}
	if ev.BizID != p.bizID {
		return temporal.NewApplicationError(
			fmt.Sprintf("biz_id %q does not belong to this workflow (policy %q)", ev.BizID, p.bizID), ReasonInvalidRequest)
	}

	if i, ok := p.acceptedIdx[ev.RequestID]; ok {
		original := p.accepted[i]
		original.Duplicate = true
		return temporal.NewApplicationError(
			fmt.Sprintf("request_id %s was already accepted as seq %d", ev.RequestID, original.Seq), ReasonDuplicate, original)
	}

	if err := p.lifecycle.Check(ev.Stage, ev.Status); err != nil {
		var illegal *fsm.IllegalTransitionError
		if !errors.As(err, &illegal) {
			return temporal.NewApplicationError(err.Error(), ReasonInvalidRequest)
		}
		allowed := make([]string, len(illegal.Allowed))
		for i, s := range illegal.Allowed {
			allowed[i] = s.String()
		}
		return temporal.NewApplicationError(err.Error(), ReasonIllegalTransition, IllegalTransitionDetails{
			State: illegal.State, Stage: illegal.Stage.String(), AllowedStages: allowed,
		})
	}

	if p.insuranceType != 0 && ev.InsuranceType != p.insuranceType {
		return temporal.NewApplicationError(
			fmt.Sprintf("insurance_type %s does not match the policy's %s", ev.InsuranceType, p.insuranceType),
			ReasonInsuranceTypeMismatch)
	}
	if ev.PolicyNumber != "" && p.policyNumber != "" && ev.PolicyNumber != p.policyNumber {
		return temporal.NewApplicationError(
			fmt.Sprintf("policy_number %q does not match the policy's %q", ev.PolicyNumber, p.policyNumber),
			ReasonPolicyNumberMismatch)
	}

	if p.lastOccurredAt != "" {
		// Both parse: Validate checked this one, and the last one was
		// checked when it was accepted.
		occurred, _ := ev.OccurredAt()
		last, err := insurance.Result{TimeOfOccurrence: p.lastOccurredAt}.OccurredAt()
		if err == nil && occurred.Before(last) {
			return temporal.NewApplicationError(
				fmt.Sprintf("time_of_occurrence %s is earlier than the last accepted event's %s", ev.TimeOfOccurrence, p.lastOccurredAt),
				ReasonTimeWentBackwards)
		}
	}
	return nil
}

// report accepts a validated event: it moves the lifecycle, numbers the
// event, queues its callback and answers at once. It never blocks, so an
// accepted event is answered in the workflow task that accepted it, and the
// main loop delivers the callback afterwards.
func (p *policy) report(ctx workflow.Context, ev insurance.Result) (Acceptance, error) {
	ev = ev.WithRequestID()
	state, err := p.lifecycle.Apply(ev.Stage, ev.Status)
	if err != nil {
		// Only reachable when the validator did not run, which Temporal
		// does only on replay of a history this code accepted before.
		return Acceptance{}, temporal.NewApplicationError(err.Error(), ReasonIllegalTransition)
	}
	now := workflow.Now(ctx)
	p.lastSeq++
	acceptance := Acceptance{
		BizID:     p.bizID,
		RequestID: ev.RequestID,
		Seq:       p.lastSeq,
		Stage:     ev.Stage,
		Status:    ev.Status,
		State:     state,
	}
	p.accepted = append(p.accepted, acceptance)
	p.acceptedIdx[ev.RequestID] = len(p.accepted) - 1

	cb := Callback{
		Seq:               p.lastSeq,
		Event:             ev,
		AcceptedAt:        now,
		State:             EventQueued,
		StateAfter:        state,
		EndorsementsAfter: p.lifecycle.Endorsements(),
	}
	p.fifo = append(p.fifo, cb)
	p.events = append(p.events, eventStatusOf(cb))
	p.trimEvents()

	if p.insuranceType == 0 {
		p.insuranceType = ev.InsuranceType
	}
	if p.policyNumber == "" {
		p.policyNumber = ev.PolicyNumber
	}
	p.lastOccurredAt = ev.TimeOfOccurrence
	p.quietSince = now
	p.acceptedThisRun++

	p.logger.Info("event accepted", "seq", acceptance.Seq, "stage", ev.Stage.String(),
		"status", ev.Status.String(), "state", state, "request_id", ev.RequestID)
	p.setCurrentDetails(ctx)
	return acceptance, nil
}

// validateOperator admits a retry or skip only when the FIFO's head is
// parked and no other operator action on it is still being recorded.
func (p *policy) validateOperator(_ workflow.Context, _ OperatorRequest) error {
	switch {
	case p.operatorActive:
		return temporal.NewApplicationError(
			fmt.Sprintf("an operator action on callback #%d is still being recorded", p.fifo[0].Seq), ReasonNoParkedCallback)
	case len(p.fifo) == 0:
		return temporal.NewApplicationError("no parked callback: every callback is delivered or skipped", ReasonNoParkedCallback)
	case p.fifo[0].State != EventParked:
		return temporal.NewApplicationError(
			fmt.Sprintf("no parked callback: callback #%d is %s", p.fifo[0].Seq, p.fifo[0].State), ReasonNoParkedCallback)
	}
	return nil
}

// retryCallback re-queues the parked head with a fresh retry budget; its
// attempt numbering continues. The store learns of it first, so that the
// audit trail never shows a callback being retried while still "parked".
// The request's Reason is not logged (it is free text); it stays in the
// update's history event.
func (p *policy) retryCallback(ctx workflow.Context, _ OperatorRequest) (OperatorResult, error) {
	head := p.fifo[0]
	queued := slices.Clone(p.fifo)
	queued[0].State = EventQueued
	if err := p.recordOperatorAction(ctx, head, EventQueued, callbackStateOf(queued)); err != nil {
		return OperatorResult{}, err
	}
	// The head cannot have changed meanwhile: operatorActive kept other
	// operator actions out, and the main loop does not touch a parked head.
	h := &p.fifo[0]
	h.State = EventQueued
	h.BudgetStartedAt = time.Time{}
	p.updateEventStatus(*h, nil)
	p.logger.Info("operator retried callback", "seq", h.Seq, "attempts", h.Attempts)
	p.setCurrentDetails(ctx)
	return OperatorResult{Seq: h.Seq, Callback: EventQueued}, nil
}

// skipCallback gives up on the parked head, records that in the store and
// lets the FIFO move on.
func (p *policy) skipCallback(ctx workflow.Context, _ OperatorRequest) (OperatorResult, error) {
	head := p.fifo[0]
	if err := p.recordOperatorAction(ctx, head, EventSkipped, callbackStateOf(p.fifo[1:])); err != nil {
		return OperatorResult{}, err
	}
	head.State = EventSkipped
	p.updateEventStatus(head, nil)
	p.popHead(ctx)
	// A skip that empties the FIFO gave the main loop nothing to do, so the
	// CallbackState search attribute stayed "parked". Runs recorded before
	// this fix never woke here; GetVersion keeps their histories replaying.
	if workflow.GetVersion(ctx, "skip-wakes-main-loop", workflow.DefaultVersion, 1) == 1 {
		p.unparked = true
	}
	p.logger.Warn("operator skipped callback", "seq", head.Seq, "attempts", head.Attempts)
	p.setCurrentDetails(ctx)
	return OperatorResult{Seq: head.Seq, Callback: EventSkipped}, nil
}

// recordOperatorAction writes an operator's decision on the head through the
// RecordCallbacks local activity. A failure (the store unreachable for the
// local activity's whole budget) refuses the action: the head stays parked
// and the operator can try again.
func (p *policy) recordOperatorAction(ctx workflow.Context, head Callback, to EventCallback, after CallbackState) error {
	p.operatorActive = true
	defer func() { p.operatorActive = false }()
	err := p.recordCallbacks(ctx, fmt.Sprintf("callback #%d %s by operator", head.Seq, to), activities.RecordInput{
		Policy:   p.policyRecord(after),
		Events:   []activities.EventRecord{eventRecord(head, EventParked)},
		Callback: &activities.CallbackChange{Seq: head.Seq, Callback: string(to), PolicyCallbackState: string(after)},
	})
	if err != nil {
		p.logger.Error("operator action not recorded", "seq", head.Seq, "callback", to, "error", err)
		return temporal.NewApplicationError(
			fmt.Sprintf("callback #%d: the store did not record the %s; try again", head.Seq, to), ErrorStoreUnavailable)
	}
	return nil
}
