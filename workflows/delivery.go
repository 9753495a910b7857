package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/insuranceflow/insuranceflow/activities"
	"github.com/insuranceflow/insuranceflow/notify"
	"github.com/insuranceflow/insuranceflow/tracing"
)

// acts is how workflow code names activities: method values of a nil
// *Activities, so that renaming a method breaks the build instead of a
// running workflow. The worker registers the real one.
var acts *activities.Activities

// Activity option values.
const (
	// deliverAttemptTimeout bounds one DeliverCallback attempt: a wait for
	// a TOP call slot when TOP_QPS is set (the activity waits only as long
	// as this leaves room for the call), the TOP call (bounded at 30 s) and
	// the store writes around it. A dead worker is noticed by the heartbeat
	// timeout long before this. Not part of what replay compares.
	deliverAttemptTimeout = 3 * time.Minute
	// deliverHeartbeatTimeout is how soon Temporal gives up on an attempt
	// whose worker stopped heartbeating (the activity heartbeats while it
	// runs), and retries it: a crashed worker costs this long, not the whole
	// attempt timeout. Activity options are not part of what replay
	// compares, so adding it needs no workflow.GetVersion.
	deliverHeartbeatTimeout = 10 * time.Second
	// recordAttemptTimeout and recordBudget bound the RecordCallbacks local
	// activity: one attempt, and all of its retries.
	recordAttemptTimeout = 10 * time.Second
	recordBudget         = 2 * time.Minute
)

// deliverHead delivers the FIFO's head callback in two phases.
//
// Phase 1 is a single attempt (MaximumAttempts 1). It is how almost every
// callback is delivered, and it spends nothing beyond the activity: no
// search attribute upsert, no timer.
//
// Only when it fails retryably does the workflow say so (CallbackState
// retrying), wait out the initial interval or the rate-limit ban, and start
// phase 2: the same activity under Temporal's retry policy, bounded by what
// is left of the retry budget. A non-retryable failure in either phase, or
// phase 2 running out of budget, parks the callback for an operator.
func (p *policy) deliverHead(ctx workflow.Context) error {
	now := workflow.Now(ctx)
	h := &p.fifo[0]
	if h.FirstAttemptAt.IsZero() {
		h.FirstAttemptAt = now
	}
	if h.BudgetStartedAt.IsZero() {
		h.BudgetStartedAt = now
	}
	h.State = EventSending
	p.updateEventStatus(*h, nil)
	p.setCurrentDetails(ctx)

	in := p.deliverInput(0)
	// Pipelined: scheduled while the callback ahead was in flight (see
	// pipelineNext), and perhaps done by now.
	var fut workflow.Future
	if p.ahead != nil && p.ahead.seq == h.Seq {
		fut, p.ahead = p.ahead.fut, nil
	}
	var res activities.DeliverResult
	var err error
	for {
		if fut == nil {
			fut = workflow.ExecuteActivity(p.phase1Options(ctx, *h, ""), acts.DeliverCallback, in)
		}
		if err := p.awaitHead(ctx, fut); err != nil {
			return err
		}
		res = activities.DeliverResult{}
		err = fut.Get(ctx, &res)
		if err != nil || !res.NotYet {
			break
		}
		// The pipelined attempt did not get its turn (the callback ahead
		// failed first, or took too long): it sent and recorded nothing.
		// Its turn has come now; schedule it as any head.
		h = &p.fifo[0]
		in, fut = p.deliverInput(0), nil
	}
	if err == nil {
		p.delivered(ctx, res)
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	f := classifyFailure(err, in.AttemptOffset+1)
	if f.final {
		p.park(ctx, f)
		return nil
	}

	h = &p.fifo[0] // handlers may have grown (and moved) the FIFO meanwhile
	p.noteFailure(h, f, EventRetrying)
	p.notifyOf(ctx, notify.TypeRetrying, *h, failureFields(f))
	p.setCurrentDetails(ctx)
	p.syncSearchAttributes(ctx) // retrying begins
	wait := max(p.settings.RetryInitialInterval, f.retryAfter)
	backoff := workflow.NewTimerWithOptions(ctx, wait, workflow.TimerOptions{
		Summary: fmt.Sprintf("callback #%d backoff", h.Seq),
	})
	if err := backoff.Get(ctx, nil); err != nil {
		return err
	}

	h = &p.fifo[0]
	left := p.settings.RetryBudget - workflow.Now(ctx).Sub(h.BudgetStartedAt)
	if left <= 0 {
		p.park(ctx, failure{attempt: h.Attempts, class: f.class, summary: "retry budget exhausted: " + f.summary})
		return nil
	}
	in = p.deliverInput(0)
	phase2 := workflow.WithActivityOptions(tracing.WithEventTrace(ctx, h.Trace), workflow.ActivityOptions{
		StartToCloseTimeout:    deliverAttemptTimeout,
		HeartbeatTimeout:       deliverHeartbeatTimeout,
		ScheduleToCloseTimeout: left,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        p.settings.RetryInitialInterval,
			BackoffCoefficient:     p.settings.RetryBackoff,
			MaximumInterval:        p.settings.RetryMaxInterval,
			NonRetryableErrorTypes: activities.NonRetryableErrorTypes(),
		},
		Summary: deliverySummary(*h) + " (retrying)",
	})
	err = workflow.ExecuteActivity(phase2, acts.DeliverCallback, in).Get(ctx, &res)
	if err == nil {
		p.delivered(ctx, res)
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	f = classifyFailure(err, in.AttemptOffset+1)
	if !f.final {
		f.summary = "retry budget exhausted: " + f.summary
	}
	p.park(ctx, f)
	return nil
}

// deliverySummary names a callback in the Temporal UI without personal
// data: "callback #3 underwrite/success".
func deliverySummary(cb Callback) string {
	return fmt.Sprintf("callback #%d %s/%s", cb.Seq, cb.Event.Stage, cb.Event.Status)
}

// phase1Options are the options of a callback's first, single attempt;
// note, if not empty, is added to its summary.
func (p *policy) phase1Options(ctx workflow.Context, cb Callback, note string) workflow.Context {
	summary := deliverySummary(cb)
	if note != "" {
		summary += " " + note
	}
	// The delivery's spans descend from the request that reported the
	// event; adds no command.
	return workflow.WithActivityOptions(tracing.WithEventTrace(ctx, cb.Trace), workflow.ActivityOptions{
		StartToCloseTimeout: deliverAttemptTimeout,
		HeartbeatTimeout:    deliverHeartbeatTimeout,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
		Summary:             summary,
	})
}

// pipelined is the callback scheduled behind the head while the head's
// first attempt was in flight.
type pipelined struct {
	seq int64
	fut workflow.Future
}

// awaitHead waits for the head's attempt fut. Meanwhile, if a callback is
// queued behind the head, it schedules that one too (pipelineNext), once.
func (p *policy) awaitHead(ctx workflow.Context, fut workflow.Future) error {
	for {
		if err := workflow.Await(ctx, func() bool { return fut.IsReady() || p.canPipeline(ctx) }); err != nil {
			return err
		}
		if fut.IsReady() {
			return nil
		}
		p.pipelineNext(ctx)
	}
}

// canPipeline reports whether the callback behind the head may be scheduled
// now: the head's first attempt is in flight (its retries are not: a
// callback that failed once is likely to fail again, and the one behind
// would only wait), nothing is pipelined yet (the pipeline is two deep),
// and the run is not due to continue as new (it hands over between
// deliveries, and a steady stream of pipelined callbacks would leave it no
// such moment).
func (p *policy) canPipeline(ctx workflow.Context) bool {
	return p.settings.Pipeline && p.ahead == nil && len(p.fifo) >= 2 &&
		p.fifo[0].State == EventSending && p.fifo[1].State == EventQueued &&
		!p.continueAsNewDue(ctx)
}

// pipelineNext schedules the callback behind the head while the head's
// attempt is in flight. The activity waits in the worker until the store
// shows the head settled and only then calls TOP (see activities.Turns), so
// order does not depend on when it runs; what it saves is the workflow task
// and the activity dispatch between the head's completion and the next
// callback's start, which is most of a waiting event's delivery latency.
// If the head fails instead, it answers NotYet without sending anything,
// and the callback is scheduled again when its turn comes (deliverHead).
// It costs no action on the happy path (the callback needs its activity
// anyway) and one more activity per NotYet. Only runs whose settings say
// Pipeline do it (see Settings.Pipeline).
func (p *policy) pipelineNext(ctx workflow.Context) {
	next := p.fifo[1]
	in := p.deliverInput(1)
	in.After = p.fifo[0].Seq
	opts := p.phase1Options(ctx, next, fmt.Sprintf("(after #%d)", in.After))
	p.ahead = &pipelined{seq: next.Seq, fut: workflow.ExecuteActivity(opts, acts.DeliverCallback, in)}
}

// deliverInput is the activity input of the callback p.fifo[i], as if the
// ones ahead of it were delivered.
func (p *policy) deliverInput(i int) activities.DeliverInput {
	cb := p.fifo[i]
	return activities.DeliverInput{
		BizID:             p.bizID,
		Seq:               cb.Seq,
		Event:             cb.Event,
		AcceptedAt:        cb.AcceptedAt,
		StateAfter:        cb.StateAfter,
		EndorsementsAfter: cb.EndorsementsAfter,
		InsuranceType:     p.insuranceType,
		PolicyNumber:      p.policyNumber,
		AttemptOffset:     cb.Attempts,
		// The FIFO at scheduling time; events accepted during the call make
		// "after" stale by one, and the next delivery's record corrects it.
		CallbackState:      string(callbackStateOf(p.fifo[i:])),
		CallbackStateAfter: string(callbackStateOf(p.fifo[i+1:])),
	}
}

// failure is a failed delivery as the workflow understands it.
type failure struct {
	attempt    int // the attempt that failed, counted over the callback's life
	class      string
	summary    string
	retryAfter time.Duration
	final      bool // no retry can cure it: park

	// What TOP answered, when it did, for the notifications.
	code         int
	subCode      string
	failCode     string
	failMessage  string
	topRequestID string
}

// classifyFailure reads a DeliverCallback error. The activity reports the
// attempt number and TOP's classification in a DeliverFailure; an error
// without one (an attempt that timed out, a worker that crashed) is
// retryable, since retrying never loses an event. The attempt that failed
// is the highest one the error proves ran (see attemptsRan); only an error
// that proves none (an attempt whose worker crashed before it heartbeated,
// say) counts as fallbackAttempt.
func classifyFailure(err error, fallbackAttempt int) failure {
	f := failure{attempt: fallbackAttempt, class: activities.ErrorTypeRetryable, summary: err.Error()}
	if ran := attemptsRan(err); ran > 0 {
		f.attempt = ran
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		f.class, f.summary = appErr.Type(), appErr.Message()
		var d activities.DeliverFailure
		if appErr.HasDetails() && appErr.Details(&d) == nil {
			if d.Class != "" {
				f.class = d.Class
			}
			if d.Summary != "" {
				f.summary = d.Summary
			}
			f.retryAfter = d.RetryAfter
			f.code, f.subCode, f.failCode, f.failMessage, f.topRequestID = d.Code, d.SubCode, d.FailCode, d.FailMessage, d.TOPRequestID
		}
		if f.retryAfter == 0 {
			f.retryAfter = appErr.NextRetryDelay()
		}
		f.final = appErr.NonRetryable() || slices.Contains(activities.NonRetryableErrorTypes(), appErr.Type())
		return f
	}
	var timeout *temporal.TimeoutError
	if errors.As(err, &timeout) {
		f.class = "timeout"
		f.summary = "attempt timed out (" + timeout.TimeoutType().String() + ")"
	}
	return f
}

// attemptsRan is the highest attempt number a DeliverCallback error proves
// ran, or 0 if it proves none. A phase 2 run can make many attempts and
// still end in a timeout (its ScheduleToClose budget spent, or its last
// attempt's heartbeat lost), which carries no DeliverFailure of its own;
// counting it as one attempt would make an operator's retry reuse attempt
// numbers the store already holds, and the store keeps the first outcome
// per attempt, so a later delivery would be missing from the audit trail.
// Two places in the cause chain say more: a timeout's last heartbeat
// details (the activity heartbeats its attempt number), and a
// DeliverFailure (the server attaches the last attempt's failure to a
// ScheduleToClose timeout). Heartbeat details outlive the attempt that
// recorded them, so a later attempt that failed before heartbeating can
// carry the higher number in its DeliverFailure: take the highest of all.
func attemptsRan(err error) int {
	ran := 0
	for e := err; e != nil; e = errors.Unwrap(e) {
		switch x := e.(type) {
		case *temporal.TimeoutError:
			var n int
			if x.HasLastHeartbeatDetails() && x.LastHeartbeatDetails(&n) == nil {
				ran = max(ran, n)
			}
		case *temporal.ApplicationError:
			var d activities.DeliverFailure
			if x.HasDetails() && x.Details(&d) == nil {
				ran = max(ran, d.Attempt)
			}
		}
	}
	return ran
}

// noteFailure records a failed attempt on a callback and its status view.
func (p *policy) noteFailure(h *Callback, f failure, state EventCallback) {
	h.State = state
	h.Attempts = max(h.Attempts, f.attempt)
	h.LastClass = f.class
	h.LastError = f.summary
	p.updateEventStatus(*h, nil)
}

// delivered pops the head after TOP accepted it.
func (p *policy) delivered(ctx workflow.Context, res activities.DeliverResult) {
	h := p.fifo[0]
	if res.Skipped {
		h.State = EventSkipped
		p.updateEventStatus(h, nil)
		p.notifyOf(ctx, notify.TypeSkipped, h, nil)
		p.popHead(ctx)
		p.setCurrentDetails(ctx)
		p.syncSearchAttributes(ctx)
		return
	}
	h.State = EventDelivered
	h.Attempts = max(h.Attempts, res.Attempt)
	h.LastClass = "delivered"
	deliveredAt := res.DeliveredAt
	p.updateEventStatus(h, &deliveredAt)
	p.notifyOf(ctx, notify.TypeDelivered, h, func(n *notify.Notification) { n.TOPRequestID = res.TOPRequestID })
	p.popHead(ctx)
	p.setCurrentDetails(ctx)
	p.syncSearchAttributes(ctx) // a delivery completed
}

// popHead removes the head, which is delivered or skipped.
func (p *policy) popHead(ctx workflow.Context) {
	p.fifo = slices.Delete(p.fifo, 0, 1)
	if len(p.fifo) == 0 {
		p.quietSince = workflow.Now(ctx) // idleness counts from here
	}
}

// park stops delivery until an operator retries or skips the head. Every
// pending event is recorded in the store (the parked head as parked, the
// rest as queued), so the audit trail shows what waits; events accepted
// while parked are recorded as they come (recordAcceptedWhileParked).
func (p *policy) park(ctx workflow.Context, f failure) {
	h := &p.fifo[0]
	p.noteFailure(h, f, EventParked)
	head := *h
	p.notifyOf(ctx, notify.TypeParked, head, failureFields(f))
	p.parked = true
	p.logger.Warn("callback parked", "seq", head.Seq, "attempts", head.Attempts, "class", f.class)
	p.setCurrentDetails(ctx)
	p.syncSearchAttributes(ctx) // parking begins

	records := make([]activities.EventRecord, len(p.fifo))
	for i, cb := range p.fifo {
		records[i] = eventRecord(cb, cb.State)
	}
	through := p.lastSeq
	// Operator actions wait until this write is done (see beginOperator):
	// the head is parked in the workflow already, and a skip recorded now
	// would be overwritten by a retry of this write.
	p.parkRecording = true
	defer func() { p.parkRecording = false }()
	err := p.recordCallbacks(ctx, fmt.Sprintf("park callback #%d", head.Seq), activities.RecordInput{
		Policy:   p.policyRecord(CallbackParked),
		Events:   records,
		Callback: &activities.CallbackChange{Seq: head.Seq, Callback: string(EventParked), PolicyCallbackState: string(CallbackParked)},
	})
	if err != nil {
		// The workflow's state is the truth and the status query shows the
		// parked callback; each event still reaches the store with its
		// delivery. Retrying here could spin for as long as the store is
		// down, so give up loudly instead.
		p.logger.Error("parked callback not recorded in the store", "seq", head.Seq, "error", err)
	}
	p.storedThrough = through
}

// recordAcceptedWhileParked records the events accepted since the last
// recording while the head is parked, so the audit trail is complete even
// though no delivery will record them for a while.
func (p *policy) recordAcceptedWhileParked(ctx workflow.Context) {
	var records []activities.EventRecord
	for _, cb := range p.fifo {
		if cb.Seq > p.storedThrough {
			records = append(records, eventRecord(cb, cb.State))
		}
	}
	through := p.lastSeq
	err := p.recordCallbacks(ctx, fmt.Sprintf("record events #%d-#%d queued behind parked callback #%d",
		records[0].Seq, through, p.fifo[0].Seq),
		activities.RecordInput{Policy: p.policyRecord(CallbackParked), Events: records})
	if err != nil {
		p.logger.Error("queued events not recorded in the store", "events", len(records), "error", err)
	}
	p.storedThrough = through
}

// recordCallbacks runs the RecordCallbacks local activity: a store write
// too small and too frequent (per operator action) to deserve a scheduled
// activity and its history events.
func (p *policy) recordCallbacks(ctx workflow.Context, summary string, in activities.RecordInput) error {
	return p.recordCallbacksFor(ctx, recordBudget, summary, in)
}

// recordCallbacksFor is recordCallbacks with its retries bounded by budget.
func (p *policy) recordCallbacksFor(ctx workflow.Context, budget time.Duration, summary string, in activities.RecordInput) error {
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout:    recordAttemptTimeout,
		ScheduleToCloseTimeout: budget,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    30 * time.Second,
		},
		Summary: summary,
	})
	return workflow.ExecuteLocalActivity(lctx, acts.RecordCallbacks, in).Get(ctx, nil)
}

// policyRecord is the policy row as the workflow knows it now.
func (p *policy) policyRecord(cb CallbackState) activities.PolicyRecord {
	return activities.PolicyRecord{
		BizID:          p.bizID,
		State:          p.lifecycle.State(),
		InsuranceType:  p.insuranceType,
		PolicyNumber:   p.policyNumber,
		Endorsements:   p.lifecycle.Endorsements(),
		LastSeq:        p.lastSeq,
		LastOccurredAt: p.lastOccurredAt,
		CallbackState:  string(cb),
	}
}

func eventRecord(cb Callback, state EventCallback) activities.EventRecord {
	return activities.EventRecord{
		Seq:               cb.Seq,
		Event:             cb.Event,
		AcceptedAt:        cb.AcceptedAt,
		StateAfter:        cb.StateAfter,
		EndorsementsAfter: cb.EndorsementsAfter,
		Callback:          string(state),
	}
}

// updateEventStatus copies a callback's state into its status view entry,
// if that is still among the recent events.
func (p *policy) updateEventStatus(cb Callback, deliveredAt *time.Time) {
	i := p.eventIndex(cb.Seq)
	if i < 0 {
		return
	}
	e := &p.events[i]
	e.Callback = cb.State
	e.Attempts = cb.Attempts
	e.LastError = cb.LastError
	e.LastClass = cb.LastClass
	if deliveredAt != nil {
		e.DeliveredAt = deliveredAt
	}
}
