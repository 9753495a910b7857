package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/insuranceflow/insuranceflow/activities"
	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
)

// This file is the import path: a policy's events from the system
// insuranceflow replaces arrive in one UpdateImport, are judged in order by
// the same checks as a live report (policyView.judge), and are accepted with
// the callback state EventImported (already reported to TOP by that system:
// recorded in the store with an audit row, never sent) or EventQueued (to be
// reported, through the FIFO like a live event).

// MaxImportEvents bounds the events of one import Update, so that its
// history event stays far below Temporal's payload limits (an event is a
// few hundred bytes). A longer policy is imported in several Updates.
const MaxImportEvents = 500

// Import-specific rejection reasons.
const (
	// ReasonImportOrder refuses an already-reported event that follows an
	// event insuranceflow has still to report: TOP would then receive the
	// earlier stage after the later one.
	ReasonImportOrder = "import_order"
	// ReasonNothingToImport is the validator's rejection of an import in
	// which every event is a duplicate or refused: such an import changes
	// nothing, so it leaves no history (which makes re-running an import
	// file free). Its details are the ImportResult; the policy client turns
	// it back into a normal answer.
	ReasonNothingToImport = "nothing_to_import"
)

// ImportEvent is one event of an import: the event as a live report would
// carry it, and whether the replaced system has already reported it to TOP.
type ImportEvent struct {
	Event           insurance.Result `json:"event"`
	AlreadyReported bool             `json:"already_reported"`
}

// ImportRequest is the argument of UpdateImport: one policy's events in the
// order they happened.
type ImportRequest struct {
	Events []ImportEvent `json:"events"`
	// By is who imports (the ingress caller's name or the CLI's OS user):
	// it goes to the audit trail, never to logs.
	By string `json:"by,omitempty"`
}

// ImportOutcome is what became of one event of an import.
type ImportOutcome struct {
	RequestID string `json:"request_id"`
	// Acceptance is set when the event is accepted now (Callback says how)
	// or was accepted before (Acceptance.Duplicate).
	Acceptance *Acceptance   `json:"acceptance,omitempty"`
	Callback   EventCallback `json:"callback,omitempty"` // EventImported or EventQueued, for an event accepted now
	Refusal    *Refusal      `json:"refusal,omitempty"`  // why the event was refused
}

// Refusal is why an event was refused: the same reasons (and the same
// details) a live report's rejection carries.
type Refusal struct {
	Reason     string                    `json:"reason"`
	Message    string                    `json:"message"`
	Transition *IllegalTransitionDetails `json:"transition,omitempty"` // ReasonIllegalTransition
	Fields     []insurance.FieldError    `json:"fields,omitempty"`     // ReasonInvalidRequest
	original   *Acceptance               // ReasonDuplicate
}

// appError is the refusal as a report validator answers it.
func (r *Refusal) appError() error {
	switch {
	case r.original != nil:
		return temporal.NewApplicationError(r.Message, r.Reason, *r.original)
	case r.Transition != nil:
		return temporal.NewApplicationError(r.Message, r.Reason, *r.Transition)
	case r.Fields != nil:
		return temporal.NewApplicationError(r.Message, r.Reason, r.Fields)
	}
	return temporal.NewApplicationError(r.Message, r.Reason)
}

// ImportResult is the answer to UpdateImport: one outcome per event, in the
// request's order.
type ImportResult struct {
	Outcomes []ImportOutcome `json:"outcomes"`
}

// policyView is what judging an event needs of a policy. A live report is
// judged against the policy as it is; an import against a copy that moves
// on with each event it accepts, so that every event is judged as if the
// ones before it had been reported live.
type policyView struct {
	bizID          string
	lifecycle      *fsm.Lifecycle
	insuranceType  insurance.Type
	policyNumber   string
	lastOccurredAt string
	lastSeq        int64
	known          func(requestID string) (Acceptance, bool)
	// unsent says a callback is still to be sent: an already-reported
	// event cannot come after it (ReasonImportOrder).
	unsent bool
}

// view is the policy as judging sees it, on a copy of the lifecycle.
func (p *policy) view() *policyView {
	lc, err := fsm.Restore(p.lifecycle.State(), p.lifecycle.Endorsements())
	if err != nil {
		// The lifecycle's own state and count always restore.
		panic(fmt.Sprintf("restore the policy's own lifecycle: %v", err))
	}
	return &policyView{
		bizID:          p.bizID,
		lifecycle:      lc,
		insuranceType:  p.insuranceType,
		policyNumber:   p.policyNumber,
		lastOccurredAt: p.lastOccurredAt,
		lastSeq:        p.lastSeq,
		known: func(id string) (Acceptance, bool) {
			i, ok := p.acceptedIdx[id]
			if !ok {
				return Acceptance{}, false
			}
			return p.accepted[i], true
		},
		unsent: len(p.fifo) > 0,
	}
}

// SnapshotView is the view of a policy as a snapshot records it (nil: a
// policy never seen), for judging an import outside a workflow: the client
// plans the search attributes of the run it starts, and a dry run judges a
// file without writing.
func snapshotView(bizID string, s *Snapshot) (*policyView, error) {
	v := &policyView{bizID: bizID, lifecycle: fsm.New(), known: func(string) (Acceptance, bool) { return Acceptance{}, false }}
	if s == nil {
		return v, nil
	}
	lc, err := fsm.Restore(s.State, s.Endorsements)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	idx := make(map[string]Acceptance, len(s.Accepted))
	for _, a := range s.Accepted {
		idx[a.RequestID] = a
	}
	v.lifecycle = lc
	v.insuranceType, v.policyNumber = s.InsuranceType, s.PolicyNumber
	v.lastOccurredAt, v.lastSeq = s.LastOccurredAt, s.LastSeq
	v.known = func(id string) (Acceptance, bool) { a, ok := idx[id]; return a, ok }
	v.unsent = len(s.PendingCallbacks) > 0
	return v, nil
}

// checkEventFor is what can be checked of an event without its policy.
func checkEventFor(bizID string, ev insurance.Result) *Refusal {
	if err := ev.Validate(); err != nil {
		var invalid *insurance.ValidationError
		if errors.As(err, &invalid) {
			return &Refusal{Reason: ReasonInvalidRequest, Message: err.Error(), Fields: invalid.Problems}
		}
		return &Refusal{Reason: ReasonInvalidRequest, Message: err.Error()}
	}
	if ev.BizID != bizID {
		return &Refusal{Reason: ReasonInvalidRequest,
			Message: fmt.Sprintf("biz_id %q does not belong to this workflow (policy %q)", ev.BizID, bizID)}
	}
	return nil
}

// judge checks an event against the policy: duplicate, lifecycle,
// consistency and time order, in that order (see validateReport).
func (v *policyView) judge(ev insurance.Result) *Refusal {
	if original, ok := v.known(ev.RequestID); ok {
		original.Duplicate = true
		return &Refusal{Reason: ReasonDuplicate, original: &original,
			Message: fmt.Sprintf("request_id %s was already accepted as seq %d", ev.RequestID, original.Seq)}
	}

	if err := v.lifecycle.Check(ev.Stage, ev.Status); err != nil {
		var illegal *fsm.IllegalTransitionError
		if !errors.As(err, &illegal) {
			return &Refusal{Reason: ReasonInvalidRequest, Message: err.Error()}
		}
		allowed := make([]string, len(illegal.Allowed))
		for i, s := range illegal.Allowed {
			allowed[i] = s.String()
		}
		return &Refusal{Reason: ReasonIllegalTransition, Message: err.Error(), Transition: &IllegalTransitionDetails{
			State: illegal.State, Stage: illegal.Stage.String(), AllowedStages: allowed,
		}}
	}

	if v.insuranceType != 0 && ev.InsuranceType != v.insuranceType {
		return &Refusal{Reason: ReasonInsuranceTypeMismatch,
			Message: fmt.Sprintf("insurance_type %s does not match the policy's %s", ev.InsuranceType, v.insuranceType)}
	}
	if ev.PolicyNumber != "" && v.policyNumber != "" && ev.PolicyNumber != v.policyNumber {
		return &Refusal{Reason: ReasonPolicyNumberMismatch,
			Message: fmt.Sprintf("policy_number %q does not match the policy's %q", ev.PolicyNumber, v.policyNumber)}
	}

	if v.lastOccurredAt != "" {
		// Both parse: Validate checked this one, and the last one was
		// checked when it was accepted.
		occurred, _ := ev.OccurredAt()
		last, err := insurance.Result{TimeOfOccurrence: v.lastOccurredAt}.OccurredAt()
		if err == nil && occurred.Before(last) {
			return &Refusal{Reason: ReasonTimeWentBackwards,
				Message: fmt.Sprintf("time_of_occurrence %s is earlier than the last accepted event's %s", ev.TimeOfOccurrence, v.lastOccurredAt)}
		}
	}
	return nil
}

// importStep is one event of a planned import.
type importStep struct {
	event   insurance.Result // with its request id
	accept  bool
	outcome ImportOutcome
}

// plan judges an import's events in order, moving the view on with each
// event it accepts. It changes nothing but the view.
func (v *policyView) plan(events []ImportEvent) []importStep {
	planned := make(map[string]Acceptance)
	prior := v.known
	v.known = func(id string) (Acceptance, bool) {
		if a, ok := planned[id]; ok {
			return a, true
		}
		return prior(id)
	}
	steps := make([]importStep, len(events))
	for i, ie := range events {
		ev := ie.Event.WithRequestID()
		step := importStep{event: ev, outcome: ImportOutcome{RequestID: ev.RequestID}}
		refusal := checkEventFor(v.bizID, ev)
		if refusal == nil {
			refusal = v.judge(ev)
		}
		if refusal == nil && ie.AlreadyReported && v.unsent {
			refusal = &Refusal{Reason: ReasonImportOrder,
				Message: fmt.Sprintf("%s/%s is marked already_reported but follows an event insuranceflow has still to report", ev.Stage, ev.Status)}
		}
		switch {
		case refusal != nil && refusal.original != nil:
			step.outcome.Acceptance = refusal.original
		case refusal != nil:
			step.outcome.Refusal = refusal
		default:
			state, _ := v.lifecycle.Apply(ev.Stage, ev.Status) // judge checked it
			v.lastSeq++
			acc := Acceptance{BizID: v.bizID, RequestID: ev.RequestID, Seq: v.lastSeq, Stage: ev.Stage, Status: ev.Status, State: state}
			planned[ev.RequestID] = acc
			if v.insuranceType == 0 {
				v.insuranceType = ev.InsuranceType
			}
			if v.policyNumber == "" {
				v.policyNumber = ev.PolicyNumber
			}
			v.lastOccurredAt = ev.TimeOfOccurrence
			step.accept = true
			step.outcome.Acceptance = &acc
			step.outcome.Callback = EventImported
			if !ie.AlreadyReported {
				step.outcome.Callback = EventQueued
				v.unsent = true
			}
		}
		steps[i] = step
	}
	return steps
}

func outcomesOf(steps []importStep) ImportResult {
	out := ImportResult{Outcomes: make([]ImportOutcome, len(steps))}
	for i, s := range steps {
		out.Outcomes[i] = s.outcome
	}
	return out
}

// ImportPlan is an import judged outside a workflow.
type ImportPlan struct {
	Result ImportResult
	// State, Endorsements and InsuranceType are the policy's after the
	// import: what a run started for it should show as search attributes.
	State         fsm.State
	Endorsements  int
	InsuranceType insurance.Type
	// Unsent says the import leaves callbacks to send; Pending is how
	// many, and HeadParked says the first of them is parked.
	Unsent     bool
	Pending    int
	HeadParked bool
}

// New counts the events the plan accepts now.
func (r ImportResult) New() int {
	n := 0
	for _, o := range r.Outcomes {
		if o.Callback != "" {
			n++
		}
	}
	return n
}

// PlanImport judges an import against a policy as snap records it (nil for
// a policy never seen) exactly as the workflow will, without changing
// anything: what a dry run reports, and what the client uses to start a
// run whose search attributes are right from the start.
func PlanImport(bizID string, snap *Snapshot, events []ImportEvent) (ImportPlan, error) {
	v, err := snapshotView(bizID, snap)
	if err != nil {
		return ImportPlan{}, err
	}
	steps := v.plan(events)
	pending := 0
	if snap != nil {
		pending = len(snap.PendingCallbacks)
	}
	for _, s := range steps {
		if s.outcome.Callback == EventQueued {
			pending++
		}
	}
	return ImportPlan{
		Pending:       pending,
		HeadParked:    snap != nil && len(snap.PendingCallbacks) > 0 && snap.PendingCallbacks[0].State == EventParked,
		Result:        outcomesOf(steps),
		State:         v.lifecycle.State(),
		Endorsements:  v.lifecycle.Endorsements(),
		InsuranceType: v.insuranceType,
		Unsent:        v.unsent,
	}, nil
}

// validateImport admits an import that brings at least one new event. One
// that brings none (all duplicates or refused) is answered with its
// outcomes as a ReasonNothingToImport rejection, which writes no history.
// Until a reopening run has loaded its snapshot only the events themselves
// can be checked; the handler judges the rest once the load is done.
func (p *policy) validateImport(_ workflow.Context, req ImportRequest) error {
	if p.importOnly && !p.importSettled {
		// The import that started this run: admitted whatever it holds and
		// judged by the handler, so that the run learns it was settled (a
		// rejected Update leaves no trace in the workflow) and can complete.
		return nil
	}
	return p.checkImport(req)
}

// checkImport is what the validator refuses: a malformed import, and one
// with nothing new in it.
func (p *policy) checkImport(req ImportRequest) error {
	if n := len(req.Events); n == 0 || n > MaxImportEvents {
		return temporal.NewApplicationError(
			fmt.Sprintf("an import carries 1 to %d events, not %d", MaxImportEvents, n), ReasonInvalidRequest)
	}
	for i, ie := range req.Events {
		if ie.Event.BizID != p.bizID {
			return temporal.NewApplicationError(
				fmt.Sprintf("event %d: biz_id %q does not belong to this workflow (policy %q)", i, ie.Event.BizID, p.bizID), ReasonInvalidRequest)
		}
	}
	if !p.loaded {
		return nil
	}
	steps := p.view().plan(req.Events)
	if result := outcomesOf(steps); result.New() == 0 {
		return temporal.NewApplicationError("nothing new to import", ReasonNothingToImport, result)
	}
	return nil
}

// importEvents accepts an import's events in order: already-reported ones
// as EventImported (recorded in the store with who imported them, never
// sent), the others queued for delivery like live reports. It answers once
// the imported events are in the store.
func (p *policy) importEvents(ctx workflow.Context, req ImportRequest) (ImportResult, error) {
	defer func() { p.importSettled = true }()
	// Admitted before the snapshot was loaded, or while another import of
	// this policy is being recorded: judge it once that is over.
	if err := workflow.Await(ctx, func() bool { return p.loaded && !p.importRecording }); err != nil {
		return ImportResult{}, err
	}
	if p.importOnly && !p.importSettled {
		// Admitted unjudged by the validator (see validateImport).
		if err := p.checkImport(req); err != nil {
			var appErr *temporal.ApplicationError
			if errors.As(err, &appErr) && appErr.Type() == ReasonNothingToImport {
				return outcomesOf(p.view().plan(req.Events)), nil
			}
			return ImportResult{}, err
		}
	}
	steps := p.view().plan(req.Events)
	result := outcomesOf(steps)
	if result.New() == 0 {
		return result, nil
	}
	var imported []activities.EventRecord
	for _, s := range steps {
		if !s.accept {
			continue
		}
		_, cb, err := p.accept(ctx, s.event, s.outcome.Callback)
		if err != nil {
			// The plan judged it legal against this very state.
			return ImportResult{}, temporal.NewApplicationError(err.Error(), ReasonIllegalTransition)
		}
		if cb.State == EventImported {
			imported = append(imported, eventRecord(cb, EventImported))
		}
	}
	p.importedUnsynced = true
	if len(imported) == 0 {
		return result, nil
	}
	p.importRecording = true
	defer func() { p.importRecording = false }()
	err := p.recordCallbacksFor(ctx, importRecordBudget, fmt.Sprintf("record %d imported events", len(imported)), activities.RecordInput{
		Policy: p.policyRecord(p.callbackState()),
		Events: imported,
		Import: &activities.ImportRecord{By: req.By, At: workflow.Now(ctx), Key: importAuditKey},
	})
	if err != nil {
		// The events are the policy's now (a repeated import answers them
		// as duplicates); only their store rows are missing, which a
		// person must look at.
		p.logger.Error("imported events not recorded in the store", "events", len(imported), "error", err)
		if isStoreConflict(err) {
			return ImportResult{}, temporal.NewApplicationError(
				"the store refused the imported events: "+appMessage(err), ErrorStoreConflict)
		}
		return ImportResult{}, temporal.NewApplicationError(
			"the imported events were accepted but the store did not record them", ErrorStoreUnavailable)
	}
	p.logger.Info("events imported", "imported", len(imported), "accepted", result.New(), "last_seq", p.lastSeq)
	return result, nil
}

// importAuditKey is the idempotency key of an imported event's audit row
// (one row per seq and key): an event is imported once, so the key need
// only be the same for every handler run that imports it. Not the Update's
// ID: when the server loses an import's Update after its handler wrote the
// rows (a Temporal restart during the workflow task), the caller's re-send
// is a new Update that imports the same events under the same seqs, and
// keyed by Update the audit trail showed each import twice.
const importAuditKey = "imported"

// importRecordBudget bounds the retries of an import's store write: like
// the snapshot load, a store outage is waited out rather than leave
// accepted events without their rows.
const importRecordBudget = 24 * time.Hour
