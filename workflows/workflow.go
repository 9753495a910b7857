// Package workflows owns the policy workflow: one long-lived Temporal entity
// workflow per policy (ID "policy-<biz_id>") that accepts insurance-result
// events through the "report" update, enforces the lifecycle with the fsm
// package, and delivers each accepted event's callback to TOP exactly in
// acceptance order, one TOP call at a time (the next callback's activity
// may already be waiting in the worker for its turn: see pipelineNext),
// retrying durably and parking a callback for an operator when no retry
// can help. api.go is its contract with the
// rest of the project; this file holds the workflow's shape (setup, main
// loop, lifetime), handlers.go the updates and the query, delivery.go the
// callback FIFO, and visibility.go what the Temporal UI shows.
//
// Temporal actions of a normal five-event lifecycle (pre_insure, underwrite,
// insure, endorse, cancel, each delivered before the next arrives): one
// start (update-with-start carries the first event), five updates, five
// DeliverCallback activities, three search attribute upserts (PolicyState
// underwritten, insured, cancelled; the starter already set pre_insured and
// CallbackState idle, and an upsert only ever carries values that differ),
// and one timer (the idle timer, armed once per run). A burst of events adds
// at most one upsert (CallbackState pending, then idle again). Nothing else
// is spent on the happy path: the first attempt of a callback runs without a
// backoff timer and without a search attribute change.
//
// A run that accepts nothing (Update-with-Start brought an event the
// validator refused, or a re-sent duplicate) costs its start and that same
// one timer, armed for Settings.EmptyRunGrace instead of IdleTimeout, and
// then completes: no policy lingers in the UI for a month in state "new".
package workflows

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
)

// ErrorTypeInvalidInput is the ApplicationError type a run fails with when
// its PolicyInput cannot be used (no biz_id, bad settings, a corrupt
// snapshot). It is non-retryable: the same input fails the same way.
const ErrorTypeInvalidInput = "invalid_input"

// maxStatusEvents bounds the events a Status and a Snapshot carry, so both
// stay small however long a policy lives; the store keeps every event.
const maxStatusEvents = 100

// Policy is the policy workflow, registered as WorkflowName. It returns the
// final Status when the policy is finished (cancelled, every callback
// delivered or skipped) or has been idle for Settings.IdleTimeout; it
// continues as new with a Snapshot when its history grows long.
func Policy(ctx workflow.Context, in PolicyInput) (Status, error) {
	p := &policy{}
	if err := p.setup(ctx, in); err != nil {
		return Status{}, err
	}
	return p.run(ctx)
}

// policy is one run's state. Handlers and the main loop run as coroutines of
// one workflow, never in parallel, so no locking is needed; but anything the
// main loop holds across a blocking call (a pointer into fifo, say) may be
// changed by a handler meanwhile, so it re-reads p.fifo[0] after each one.
type policy struct {
	bizID    string
	input    PolicyInput // kept as given: its Settings go on unchanged at continue-as-new
	settings Settings    // with defaults
	logger   log.Logger

	lifecycle      *fsm.Lifecycle
	insuranceType  insurance.Type // zero until the first event
	policyNumber   string
	lastSeq        int64
	lastOccurredAt string

	// accepted is every accepted request id of the policy's life, carried
	// from run to run; acceptedIdx indexes it by request id. Only the slice
	// is ever iterated, so map order never matters.
	accepted    []Acceptance
	acceptedIdx map[string]int

	events []EventStatus // the last maxStatusEvents events, by seq
	fifo   []Callback    // callbacks not yet delivered or skipped, by seq; the head is fifo[0]

	acceptedThisRun int
	quietSince      time.Time // the last acceptance, or when the FIFO last emptied
	idleExpired     bool      // set by the idle watcher

	// startedAt is when this run began. graceAllowed says whether the run
	// may complete after EmptyRunGrace while it has accepted nothing: not
	// when it continues a run (that policy was busy, and its idle clock
	// runs on), nor when replaying a history recorded before the grace
	// existed (see checkGraceVersion). graceVersioned is set once that
	// version has been decided.
	startedAt      time.Time
	graceAllowed   bool
	graceVersioned bool

	parked         bool  // the head is parked and the search attributes say so
	unparked       bool  // an operator ended parking: wake the main loop to sync
	storedThrough  int64 // while parked: events up to this seq are in the store
	operatorActive bool  // a retry or skip is writing to the store
	// parkRecording is set while park() records the parked head in the
	// store. An operator action waits for it: a skip recorded before a
	// late retry of the park's write would be overwritten by "parked".
	parkRecording bool

	// loaded is false until a run that must load its snapshot from the
	// store (PolicyInput.LoadSnapshot) has done so. Until then the report
	// validator checks only the event itself, and the handler waits for
	// the load and judges the event then.
	loaded bool

	operatorActions []OperatorAction // the most recent applied operator actions, oldest first

	// notifications wait to be sent to the business system, oldest first;
	// drainNotifications sends the head (see notifications.go).
	notifications []PendingNotification

	// importRecording is set while an import's events are being recorded
	// in the store; another import of the policy waits for it.
	// importedUnsynced says an import changed the policy: the main loop
	// brings the search attributes up to date (a live report wakes it
	// through the FIFO, an import of reported events does not).
	importRecording  bool
	importedUnsynced bool
	// importOnly is true while a run started by an import (PolicyInput.
	// Import) has had no live event; importSettled once its first import
	// Update has been handled. Together they let such a run complete
	// without an idle timer (see done).
	importOnly    bool
	importSettled bool

	searchAttrs map[string]string // the values the workflow's search attributes hold now

	// ahead is the callback scheduled behind the head while the head was
	// in flight (see pipelineNext), until deliverHead takes it over.
	ahead *pipelined
}

// setup restores the policy from in.Snapshot (or starts it new), sets the
// logger and registers the handlers. An unusable input fails the run with a
// non-retryable ErrorTypeInvalidInput error.
func (p *policy) setup(ctx workflow.Context, in PolicyInput) error {
	if err := p.restore(ctx, in); err != nil {
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrorTypeInvalidInput, err)
	}
	p.logger = log.With(workflow.GetLogger(ctx), "biz_id", p.bizID)
	p.importOnly = in.Import

	p.searchAttrs = make(map[string]string, len(SearchAttributeNames()))
	current := workflow.GetTypedSearchAttributes(ctx)
	for _, key := range searchAttributeKeys() {
		if v, ok := current.GetKeyword(key); ok {
			p.searchAttrs[key.GetName()] = v
		}
	}

	if err := p.registerHandlers(ctx); err != nil {
		return fmt.Errorf("register handlers: %w", err)
	}
	p.setCurrentDetails(ctx)
	return nil
}

// restore fills p from the input.
func (p *policy) restore(ctx workflow.Context, in PolicyInput) error {
	if in.BizID == "" {
		return errors.New("policy input has no biz_id")
	}
	if err := in.Settings.Validate(); err != nil {
		return err
	}
	p.bizID = in.BizID
	p.input = in
	p.settings = in.Settings.WithDefaults()
	p.acceptedIdx = make(map[string]int)
	p.startedAt = workflow.Now(ctx)
	p.quietSince = p.startedAt
	p.graceAllowed = workflow.GetInfo(ctx).ContinuedExecutionRunID == ""
	p.lifecycle = fsm.New()
	p.loaded = !p.mustLoad(ctx)
	return p.applySnapshot(in.Snapshot)
}

// mustLoad reports whether this run reads its snapshot from the store
// before judging events: asked for by the client, and not a continuation
// (a continued run has its predecessor's state in its input).
func (p *policy) mustLoad(ctx workflow.Context) bool {
	return p.input.LoadSnapshot && workflow.GetInfo(ctx).ContinuedExecutionRunID == ""
}

// applySnapshot restores the policy from s (nothing for nil).
func (p *policy) applySnapshot(s *Snapshot) error {
	if s == nil {
		return nil
	}
	lc, err := fsm.Restore(s.State, s.Endorsements)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if s.InsuranceType != 0 && !s.InsuranceType.Valid() {
		return fmt.Errorf("snapshot: %s is not an insurance type", s.InsuranceType)
	}
	if s.LastSeq < 0 {
		return fmt.Errorf("snapshot: last_seq %d is negative", s.LastSeq)
	}
	p.lifecycle = lc
	p.insuranceType = s.InsuranceType
	p.policyNumber = s.PolicyNumber
	p.lastSeq = s.LastSeq
	p.lastOccurredAt = s.LastOccurredAt
	p.operatorActions = slices.Clone(s.OperatorActions)
	p.notifications = slices.Clone(s.PendingNotifications)

	p.accepted = slices.Clone(s.Accepted)
	clear(p.acceptedIdx)
	for i, a := range p.accepted {
		if a.RequestID == "" {
			return fmt.Errorf("snapshot: accepted seq %d has no request_id", a.Seq)
		}
		p.acceptedIdx[a.RequestID] = i
	}

	p.events = slices.Clone(s.Events)
	p.fifo = slices.Clone(s.PendingCallbacks)
	for i := range p.fifo {
		cb := &p.fifo[i]
		if cb.Seq < 1 || cb.Seq > p.lastSeq || (i > 0 && cb.Seq <= p.fifo[i-1].Seq) {
			return fmt.Errorf("snapshot: pending callback seq %d is out of order or beyond last_seq %d", cb.Seq, p.lastSeq)
		}
		if cb.Event.RequestID == "" {
			return fmt.Errorf("snapshot: pending callback seq %d has no request_id", cb.Seq)
		}
		switch {
		case cb.State == EventQueued, i == 0 && cb.State == EventParked:
		case cb.State == EventSending, cb.State == EventRetrying, cb.State == EventParked, cb.State == "":
			// In flight when its run ended (a store snapshot of a
			// terminated run), or parked behind another callback, which
			// only a store edited by hand can say: it starts over, with a
			// fresh budget, in its place in the FIFO.
			cb.State = EventQueued
			cb.BudgetStartedAt = time.Time{}
		default:
			return fmt.Errorf("snapshot: pending callback seq %d is %s", cb.Seq, cb.State)
		}
		if p.eventIndex(cb.Seq) < 0 {
			p.events = append(p.events, eventStatusOf(*cb))
		} else {
			p.updateEventStatus(*cb, nil)
		}
	}
	slices.SortStableFunc(p.events, func(a, b EventStatus) int { return cmp.Compare(a.Seq, b.Seq) })
	p.trimEvents()
	if len(p.fifo) > 0 && p.fifo[0].State == EventParked {
		// storedThrough 0 makes the first wait record every pending event:
		// the previous run may have accepted some without recording them.
		p.parked = true
	}
	return nil
}

// run loads the policy if it must, then runs the main loop; a cancelled run
// records what it holds before it ends.
func (p *policy) run(ctx workflow.Context) (Status, error) {
	if !p.loaded {
		if err := p.load(ctx); err != nil {
			return p.status(), err
		}
	}
	if p.importOnly {
		// No idle timer for an imported policy: it completes when its
		// import is settled (done). A live event ends importOnly and the
		// usual idle watch begins.
		workflow.Go(ctx, func(ctx workflow.Context) {
			if workflow.Await(ctx, func() bool { return !p.importOnly }) == nil {
				p.watchIdleness(ctx)
			}
		})
	} else {
		workflow.Go(ctx, p.watchIdleness)
	}
	p.startNotifier(ctx)
	st, err := p.loop(ctx)
	if err != nil && temporal.IsCanceledError(err) {
		p.recordOnCancel(ctx)
	}
	return st, err
}

// loop is the main loop: wait for something to do, then do one step.
func (p *policy) loop(ctx workflow.Context) (Status, error) {
	for {
		if p.parked && !p.headIs(EventParked) {
			p.parked, p.unparked = false, false
			p.syncSearchAttributes(ctx) // parking ended: an operator retried or skipped
		}
		if !p.ready(ctx) {
			p.syncSearchAttributes(ctx) // about to block
			if err := workflow.Await(ctx, func() bool { return p.ready(ctx) }); err != nil {
				return p.status(), err // cancelled
			}
			continue // re-check from the top: the head may have left parking
		}

		switch {
		case p.done(ctx):
			if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
				return p.status(), err
			}
			if !p.done(ctx) {
				continue // a handler accepted an event while we waited
			}
			p.syncSearchAttributes(ctx)
			p.logger.Info("policy workflow completing", "state", p.lifecycle.State(), "last_seq", p.lastSeq)
			return p.status(), nil
		case p.continueAsNewDue(ctx) && !p.aheadIsHead():
			// A pipelined head is delivered first (below): its attempt is
			// under way. Nothing is pipelined once continue-as-new is due.
			return p.continueAsNew(ctx)
		case p.parked && p.lastSeq > p.storedThrough:
			p.recordAcceptedWhileParked(ctx)
		case p.headIs(EventQueued):
			if err := p.deliverHead(ctx); err != nil {
				return p.status(), err
			}
		case p.importedUnsynced:
			p.importedUnsynced = false
			p.syncSearchAttributes(ctx)
		}
	}
}

// aheadIsHead reports whether the head is queued and its attempt was
// pipelined behind the callback delivered before it.
func (p *policy) aheadIsHead() bool {
	return p.ahead != nil && p.headIs(EventQueued) && p.fifo[0].Seq == p.ahead.seq
}

// ready reports whether the main loop has a step to take.
func (p *policy) ready(ctx workflow.Context) bool {
	return p.done(ctx) || p.continueAsNewDue(ctx) ||
		(p.parked && p.lastSeq > p.storedThrough) ||
		p.headIs(EventQueued) || p.unparked || p.importedUnsynced
}

// done reports whether the run may complete: nothing left to deliver, and
// the policy is terminal or has been quiet for quietLimit. The idle check
// reads the clock itself rather than trusting the watcher's flag alone, so
// an event accepted in the same workflow task always keeps the run alive.
func (p *policy) done(ctx workflow.Context) bool {
	if len(p.fifo) > 0 || len(p.notifications) > 0 {
		return false
	}
	if p.importOnly {
		return p.importSettled
	}
	if p.lifecycle.State().Terminal() {
		return true
	}
	return p.idleExpired && workflow.Now(ctx).Sub(p.quietSince) >= p.quietLimit()
}

// quietLimit is how long the policy must stay quiet before the run may
// complete: EmptyRunGrace while the run has accepted nothing (it exists
// only because Update-with-Start brought an event it refused or already
// knew, and the store has everything a later run needs), IdleTimeout once
// it has accepted an event.
func (p *policy) quietLimit() time.Duration {
	if p.graceAllowed && p.acceptedThisRun == 0 {
		return min(p.settings.EmptyRunGrace, p.settings.IdleTimeout)
	}
	return p.settings.IdleTimeout
}

// changeEmptyRunGrace versions the one decision where the grace changes the
// commands of a history recorded before it existed (see checkGraceVersion).
const changeEmptyRunGrace = "empty-run-grace"

// checkGraceVersion keeps histories recorded before EmptyRunGrace existed
// replaying. In those, an empty run armed its one timer for IdleTimeout; the
// grace arms it shorter, which replay does not notice (a timer is matched by
// its ID, not its duration), and when it fires an empty run that never had
// a callback completes either way. The commands differ only for a run that
// accepted nothing but restored callbacks from the store and has delivered
// them since: the old code then armed a new timer for the rest of
// IdleTimeout, the grace completes the run. So that case, and only that
// case, asks GetVersion, and a normal lifecycle (its event accepted before
// the watcher first looks) never records a version marker.
func (p *policy) checkGraceVersion(ctx workflow.Context) {
	if p.graceVersioned || !p.graceAllowed || p.acceptedThisRun > 0 || !p.quietSince.After(p.startedAt) {
		return
	}
	p.graceVersioned = true
	if workflow.GetVersion(ctx, changeEmptyRunGrace, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		p.graceAllowed = false
	}
}

// watchIdleness sets idleExpired once the policy has been quiet (no accepted
// event, empty FIFO) for quietLimit. It arms one timer for the whole limit
// and, when that fires early because events came meanwhile, re-arms it for
// the remainder only: a busy policy costs one timer per timeout, not one per
// event or loop iteration. A run whose first event was refused arms it for
// the grace; if an event is accepted within the grace, the timer is re-armed
// for the rest of IdleTimeout when it fires.
func (p *policy) watchIdleness(ctx workflow.Context) {
	for {
		p.checkGraceVersion(ctx)
		limit := p.quietLimit()
		wait := p.quietSince.Add(limit).Sub(workflow.Now(ctx))
		switch {
		case wait > 0:
			summary := "idle timeout"
			if limit < p.settings.IdleTimeout {
				summary = "empty run grace"
			}
			timer := workflow.NewTimerWithOptions(ctx, wait, workflow.TimerOptions{Summary: summary})
			if err := timer.Get(ctx, nil); err != nil {
				return // cancelled
			}
		case len(p.fifo) > 0:
			// Not idle while callbacks wait (a parked one can wait for
			// weeks); quietSince moves when the FIFO empties.
			if err := workflow.Await(ctx, func() bool { return len(p.fifo) == 0 }); err != nil {
				return
			}
		default:
			p.idleExpired = true
			since := p.quietSince
			if err := workflow.Await(ctx, func() bool { return !p.quietSince.Equal(since) }); err != nil {
				return
			}
			p.idleExpired = false
		}
	}
}

// continueAsNewDue reports whether this run's history should end here.
func (p *policy) continueAsNewDue(ctx workflow.Context) bool {
	return p.acceptedThisRun >= p.settings.ContinueAsNewAfter || workflow.GetInfo(ctx).GetContinueAsNewSuggested()
}

// continueAsNew hands the policy to a new run. It is only called between
// deliveries, so the FIFO holds only queued callbacks and perhaps a parked
// head, and no activity is in flight but perhaps a pipelined one behind a
// parked head, which the run waits for: it sends nothing while the head is
// not settled, and the next run schedules that callback again. The SDK
// copies the run's current search attributes (upserts included) into the
// continue-as-new command, so the next run starts with them and only
// upserts what it changes.
func (p *policy) continueAsNew(ctx workflow.Context) (Status, error) {
	if err := workflow.Await(ctx, func() bool {
		return workflow.AllHandlersFinished(ctx) && (p.ahead == nil || p.ahead.fut.IsReady())
	}); err != nil {
		return p.status(), err
	}
	snapshot := p.snapshot()
	p.logger.Info("continuing as new", "last_seq", p.lastSeq, "pending_callbacks", len(snapshot.PendingCallbacks))
	return Status{}, workflow.NewContinueAsNewError(ctx, WorkflowName, PolicyInput{
		BizID:    p.bizID,
		Settings: p.input.Settings,
		Snapshot: &snapshot,
	})
}

// snapshot is everything the next run needs.
func (p *policy) snapshot() Snapshot {
	return Snapshot{
		State:            p.lifecycle.State(),
		Endorsements:     p.lifecycle.Endorsements(),
		InsuranceType:    p.insuranceType,
		PolicyNumber:     p.policyNumber,
		LastSeq:          p.lastSeq,
		LastOccurredAt:   p.lastOccurredAt,
		Accepted:         slices.Clone(p.accepted),
		Events:           slices.Clone(p.events),
		PendingCallbacks: slices.Clone(p.fifo),
		OperatorActions:  slices.Clone(p.operatorActions),

		PendingNotifications: slices.Clone(p.notifications),
	}
}

// status is the QueryStatus answer.
func (p *policy) status() Status {
	events := slices.Clone(p.events)
	if events == nil {
		events = []EventStatus{}
	}
	return Status{
		BizID:         p.bizID,
		State:         p.lifecycle.State(),
		Endorsements:  p.lifecycle.Endorsements(),
		InsuranceType: p.insuranceType,
		PolicyNumber:  p.policyNumber,
		LastSeq:       p.lastSeq,
		CallbackState: p.callbackState(),
		Events:        events,
	}
}

// callbackState summarises the FIFO for the CallbackState search attribute.
// The head's first attempt counts as idle so that the happy path never
// changes the attribute: most callbacks go through on that attempt.
func (p *policy) callbackState() CallbackState { return callbackStateOf(p.fifo) }

func callbackStateOf(fifo []Callback) CallbackState {
	if len(fifo) == 0 {
		return CallbackIdle
	}
	switch fifo[0].State {
	case EventParked:
		return CallbackParked
	case EventRetrying:
		return CallbackRetrying
	}
	if len(fifo) > 1 {
		return CallbackPending
	}
	return CallbackIdle
}

func (p *policy) headIs(state EventCallback) bool {
	return len(p.fifo) > 0 && p.fifo[0].State == state
}

// eventIndex is the index of seq in p.events, or -1 when it has been
// trimmed away. Recent events are the ones looked up, so search from the end.
func (p *policy) eventIndex(seq int64) int {
	for i := len(p.events) - 1; i >= 0; i-- {
		if p.events[i].Seq == seq {
			return i
		}
	}
	return -1
}

// trimEvents keeps the last maxStatusEvents events, copying so that the
// dropped ones do not stay reachable through the slice's backing array.
func (p *policy) trimEvents() {
	if len(p.events) > maxStatusEvents {
		p.events = slices.Clone(p.events[len(p.events)-maxStatusEvents:])
	}
}

// eventStatusOf is the status view of a callback.
func eventStatusOf(cb Callback) EventStatus {
	return EventStatus{
		Seq:              cb.Seq,
		RequestID:        cb.Event.RequestID,
		Stage:            cb.Event.Stage,
		Status:           cb.Event.Status,
		TimeOfOccurrence: cb.Event.TimeOfOccurrence,
		AcceptedAt:       cb.AcceptedAt,
		Callback:         cb.State,
		Attempts:         cb.Attempts,
		LastError:        cb.LastError,
		LastClass:        cb.LastClass,
	}
}
