package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/insuranceflow/insuranceflow/activities"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/notify"
	"github.com/insuranceflow/insuranceflow/tracing"
)

// registerHandlers registers the updates (each with a validator, so a
// refused event or operator action is answered without touching the
// history) and the queries.
func (p *policy) registerHandlers(ctx workflow.Context) error {
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateReport, p.report,
		workflow.UpdateHandlerOptions{Validator: p.validateReport}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateImport, p.importEvents,
		workflow.UpdateHandlerOptions{Validator: p.validateImport}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateRetryCallback, p.retryCallback,
		workflow.UpdateHandlerOptions{Validator: p.validateOperator(ActionRetry)}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateSkipCallback, p.skipCallback,
		workflow.UpdateHandlerOptions{Validator: p.validateOperator(ActionSkip)}); err != nil {
		return err
	}
	if err := workflow.SetQueryHandler(ctx, QuerySnapshot, func() (Snapshot, error) {
		if !p.loaded {
			// A run that never loaded knows nothing: the asker must not
			// take its empty state for the policy's (see SnapshotNotLoaded).
			return Snapshot{}, temporal.NewApplicationError(SnapshotNotLoaded+": this run has not loaded its policy", SnapshotNotLoaded)
		}
		return p.snapshot(), nil
	}); err != nil {
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
//
// Until a reopening run has loaded its snapshot only the event itself can
// be checked; the handler judges the rest once the load is done.
func (p *policy) validateReport(_ workflow.Context, ev insurance.Result) error {
	ev = ev.WithRequestID()
	if err := p.checkEvent(ev); err != nil {
		return err
	}
	if !p.loaded {
		return nil
	}
	return p.judge(ev)
}

// checkEvent is what can be checked of an event without the policy.
func (p *policy) checkEvent(ev insurance.Result) error {
	if r := checkEventFor(p.bizID, ev); r != nil {
		return r.appError()
	}
	return nil
}

// judge checks an event against the policy: duplicate, lifecycle,
// consistency and time order (see policyView.judge).
func (p *policy) judge(ev insurance.Result) error {
	if r := p.view().judge(ev); r != nil {
		return r.appError()
	}
	return nil
}

// report accepts a validated event: it moves the lifecycle, numbers the
// event, queues its callback and answers at once. It never blocks, so an
// accepted event is answered in the workflow task that accepted it, and the
// main loop delivers the callback afterwards.
func (p *policy) report(ctx workflow.Context, ev insurance.Result) (Acceptance, error) {
	// A live event: from now on this run idles like any other.
	p.importOnly = false
	ev = ev.WithRequestID()
	if !p.loaded {
		// Admitted before the snapshot was loaded: judge it now, against the
		// policy as the store has it. A refusal here completes the update
		// with the same error the validator would have given.
		if err := workflow.Await(ctx, func() bool { return p.loaded }); err != nil {
			return Acceptance{}, err
		}
		if err := p.judge(ev); err != nil {
			return Acceptance{}, err
		}
	}
	acceptance, _, err := p.accept(ctx, ev, EventQueued)
	if err != nil {
		// Only reachable when the validator did not run, which Temporal
		// does only on replay of a history this code accepted before.
		return Acceptance{}, temporal.NewApplicationError(err.Error(), ReasonIllegalTransition)
	}
	return acceptance, nil
}

// accept applies a judged event: it moves the lifecycle, numbers the event,
// and either queues its callback (EventQueued) or keeps it as imported
// (EventImported: reported to TOP by the replaced system, never sent). It
// returns the acceptance and the event's callback; an event the lifecycle
// refuses changes nothing.
func (p *policy) accept(ctx workflow.Context, ev insurance.Result, callback EventCallback) (Acceptance, Callback, error) {
	state, err := p.lifecycle.Apply(ev.Stage, ev.Status)
	if err != nil {
		return Acceptance{}, Callback{}, err
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
		State:             callback,
		StateAfter:        state,
		EndorsementsAfter: p.lifecycle.Endorsements(),
		Trace:             tracing.HeaderTrace(ctx),
	}
	if callback == EventQueued {
		p.fifo = append(p.fifo, cb)
	}
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
		"status", ev.Status.String(), "state", state, "request_id", ev.RequestID, "callback", string(callback))
	p.setCurrentDetails(ctx)
	return acceptance, cb, nil
}

// validateOperator admits a retry or skip of the parked head the request
// names. A request naming a seq the same action was already applied to is
// answered with that original outcome (ReasonOperatorRepeated, which the
// client turns back into a normal answer), and changes nothing; one naming
// any other seq than the parked head's is a ReasonSeqMismatch.
func (p *policy) validateOperator(action string) func(workflow.Context, OperatorRequest) error {
	return func(_ workflow.Context, req OperatorRequest) error {
		if prior, ok := p.actionWithKey(action, req.RequestID); ok {
			return temporal.NewApplicationError(
				fmt.Sprintf("callback #%d was already %s by this request", prior.Seq, prior.Result), ReasonOperatorRepeated,
				OperatorResult{Seq: prior.Seq, Callback: prior.Result, Repeated: true})
		}
		headParked := len(p.fifo) > 0 && p.fifo[0].State == EventParked
		if req.Seq != 0 && !(headParked && p.fifo[0].Seq == req.Seq) {
			if prior, ok := p.priorAction(action, req.Seq); ok {
				return temporal.NewApplicationError(
					fmt.Sprintf("callback #%d was already %s", req.Seq, prior.Result), ReasonOperatorRepeated,
					OperatorResult{Seq: prior.Seq, Callback: prior.Result, Repeated: true})
			}
		}
		switch {
		case req.Seq < 0:
			return temporal.NewApplicationError(fmt.Sprintf("seq %d is not a callback's seq", req.Seq), ReasonInvalidRequest)
		case p.operatorActive:
			return temporal.NewApplicationError(
				fmt.Sprintf("an operator action on callback #%d is still being recorded", p.fifo[0].Seq), ReasonOperatorActionPending)
		case !headParked:
			if len(p.fifo) == 0 {
				return temporal.NewApplicationError("no parked callback: every callback is delivered or skipped", ReasonNoParkedCallback)
			}
			return temporal.NewApplicationError(
				fmt.Sprintf("no parked callback: callback #%d is %s", p.fifo[0].Seq, p.fifo[0].State), ReasonNoParkedCallback)
		case req.Seq != 0 && p.fifo[0].Seq != req.Seq:
			head := p.fifo[0]
			return temporal.NewApplicationError(
				fmt.Sprintf("callback #%d is not the parked callback: the parked one is callback #%d", req.Seq, head.Seq),
				ReasonSeqMismatch, SeqMismatchDetails{Seq: req.Seq, HeadSeq: head.Seq, Head: head.State})
		}
		return nil
	}
}

// actionWithKey finds the action applied under the request id key (never
// for "").
func (p *policy) actionWithKey(action, key string) (OperatorAction, bool) {
	if key == "" {
		return OperatorAction{}, false
	}
	for _, a := range p.operatorActions {
		if a.RequestID == key && a.Action == action {
			return a, true
		}
	}
	return OperatorAction{}, false
}

// priorAction finds the latest time action was applied to seq.
func (p *policy) priorAction(action string, seq int64) (OperatorAction, bool) {
	for i := len(p.operatorActions) - 1; i >= 0; i-- {
		if a := p.operatorActions[i]; a.Seq == seq && a.Action == action {
			return a, true
		}
	}
	return OperatorAction{}, false
}

// changeOperatorWaitsPark versions beginOperator's wait for the park record.
const changeOperatorWaitsPark = "operator-waits-park"

// beginOperator waits for an in-flight park record to finish (an operator
// action recorded before the park's write would be overwritten by it), then
// checks again what the validator checked, since the head may have changed
// meanwhile, and claims the head for this action.
func (p *policy) beginOperator(ctx workflow.Context, action string, req OperatorRequest) (Callback, error) {
	// Histories recorded before the wait existed ran the operator's write
	// at once; GetVersion keeps them replaying.
	if workflow.GetVersion(ctx, changeOperatorWaitsPark, workflow.DefaultVersion, 1) == 1 {
		if err := workflow.Await(ctx, func() bool { return !p.parkRecording }); err != nil {
			return Callback{}, err
		}
	}
	if err := p.validateOperator(action)(ctx, req); err != nil {
		return Callback{}, err
	}
	p.operatorActive = true
	return p.fifo[0], nil
}

// retryCallback re-queues the parked head with a fresh retry budget; its
// attempt numbering continues. The store learns of it first, so that the
// audit trail never shows a callback being retried while still "parked".
// The request's Reason is not logged (it is free text); it stays in the
// update's history event and the audit trail.
func (p *policy) retryCallback(ctx workflow.Context, req OperatorRequest) (OperatorResult, error) {
	head, err := p.beginOperator(ctx, ActionRetry, req)
	if err != nil {
		return OperatorResult{}, err
	}
	queued := slices.Clone(p.fifo)
	queued[0].State = EventQueued
	if err := p.recordOperatorAction(ctx, head, ActionRetry, req, EventQueued, callbackStateOf(queued)); err != nil {
		return OperatorResult{}, err
	}
	// The head cannot have changed meanwhile: operatorActive kept other
	// operator actions out, and the main loop does not touch a parked head.
	h := &p.fifo[0]
	h.State = EventQueued
	h.BudgetStartedAt = time.Time{}
	p.updateEventStatus(*h, nil)
	p.rememberAction(ctx, h.Seq, ActionRetry, EventQueued, req.RequestID)
	p.notifyOf(ctx, notify.TypeRetried, *h, operatorFields(req))
	p.logger.Info("operator retried callback", "seq", h.Seq, "attempts", h.Attempts)
	p.setCurrentDetails(ctx)
	return OperatorResult{Seq: h.Seq, Callback: EventQueued}, nil
}

// skipCallback gives up on the parked head, records that in the store and
// lets the FIFO move on.
func (p *policy) skipCallback(ctx workflow.Context, req OperatorRequest) (OperatorResult, error) {
	head, err := p.beginOperator(ctx, ActionSkip, req)
	if err != nil {
		return OperatorResult{}, err
	}
	if err := p.recordOperatorAction(ctx, head, ActionSkip, req, EventSkipped, callbackStateOf(p.fifo[1:])); err != nil {
		return OperatorResult{}, err
	}
	head.State = EventSkipped
	p.updateEventStatus(head, nil)
	p.popHead(ctx)
	p.rememberAction(ctx, head.Seq, ActionSkip, EventSkipped, req.RequestID)
	p.notifyOf(ctx, notify.TypeSkipped, head, operatorFields(req))
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

// operatorFields puts who acted and why into a notification.
func operatorFields(req OperatorRequest) func(*notify.Notification) {
	return func(n *notify.Notification) { n.By, n.Reason = req.By, req.Reason }
}

// rememberAction keeps an applied action for recognising repeats.
func (p *policy) rememberAction(ctx workflow.Context, seq int64, action string, result EventCallback, requestID string) {
	p.operatorActions = append(p.operatorActions, OperatorAction{Seq: seq, Action: action, Result: result, At: workflow.Now(ctx), RequestID: requestID})
	if n := len(p.operatorActions); n > MaxOperatorActions {
		p.operatorActions = slices.Clone(p.operatorActions[n-MaxOperatorActions:])
	}
}

// recordOperatorAction writes an operator's decision on the head, with who
// made it and why, through the RecordCallbacks local activity. A failure
// (the store unreachable for the local activity's whole budget, or a record
// the store refuses) refuses the action: the head stays parked and the
// operator can try again. It ends the claim beginOperator made.
func (p *policy) recordOperatorAction(ctx workflow.Context, head Callback, action string, req OperatorRequest, to EventCallback, after CallbackState) error {
	defer func() { p.operatorActive = false }()
	err := p.recordCallbacks(ctx, fmt.Sprintf("callback #%d %s by operator", head.Seq, to), activities.RecordInput{
		Policy:   p.policyRecord(after),
		Events:   []activities.EventRecord{eventRecord(head, EventParked)},
		Callback: &activities.CallbackChange{Seq: head.Seq, Callback: string(to), PolicyCallbackState: string(after)},
		Operator: &activities.OperatorRecord{Action: action, By: req.By, Reason: req.Reason, At: workflow.Now(ctx),
			Key: p.operatorActionKey(head, req.RequestID)},
	})
	if err != nil {
		p.logger.Error("operator action not recorded", "seq", head.Seq, "callback", to, "error", err)
		if isStoreConflict(err) {
			return temporal.NewApplicationError(
				fmt.Sprintf("callback #%d: the store refused the %s: %s", head.Seq, action, appMessage(err)), ErrorStoreConflict)
		}
		return temporal.NewApplicationError(
			fmt.Sprintf("callback #%d: the store did not record the %s; try again", head.Seq, action), ErrorStoreUnavailable)
	}
	return nil
}

// operatorActionKey is the audit row's idempotency key of an action on the
// parked head: the caller's request id when it sent one, else it names
// that park of the callback, by the attempts the head
// had when it parked and by how many actions on its seq the run knows of.
// Not the Update's ID: when the server loses an Update whose handler had
// already written its row (a Temporal restart during the workflow task),
// the head stays parked, the caller re-sends, and the new Update, with a
// new ID, applies the same action; keyed by Update the audit trail showed
// it twice (found by chaos). Every handler run on the same park computes
// the same key. A later park follows at least one more attempt and one
// more applied action; the second counts even where the first does not (a
// run reloaded from a store whose attempts lag behind the workflow's).
func (p *policy) operatorActionKey(head Callback, requestID string) string {
	if requestID != "" {
		// The caller's own key names the action, whichever park it met.
		return OperatorKeyPrefix + requestID
	}
	prior := 0
	for _, a := range p.operatorActions {
		if a.Seq == head.Seq {
			prior++
		}
	}
	return fmt.Sprintf("park-after-attempt-%d-action-%d", head.Attempts, prior+1)
}

// isStoreConflict reports whether a RecordCallbacks error is the store
// refusing the record (a conflict or an invalid record), which no retry
// cures.
func isStoreConflict(err error) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.Type() == activities.ErrorTypeInvalid
}

// appMessage is an error's ApplicationError message, or its text.
func appMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	return err.Error()
}
