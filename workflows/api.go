package workflows

// This file is the contract between the policy workflow and everything that
// talks to it (the ingress, the starter CLI, tests): names, IDs, inputs and
// outputs. Nobody else spells these strings.

import (
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/notify"
)

const (
	// DefaultTaskQueue is the task queue the worker polls unless TASK_QUEUE says otherwise.
	DefaultTaskQueue = "insuranceflow"
	// WorkflowName is the registered name of the policy workflow.
	WorkflowName = "Policy"

	// UpdateReport delivers one insurance-result event. It is an Update, not a
	// signal, because the business system must learn synchronously whether its
	// event was accepted (and with which sequence number) or why not.
	UpdateReport = "report"
	// UpdateRetryCallback re-arms a parked callback with a fresh retry budget.
	UpdateRetryCallback = "retry-callback"
	// UpdateSkipCallback gives up on a parked callback so the FIFO moves on.
	UpdateSkipCallback = "skip-callback"
	// UpdateImport brings a policy's events from the system insuranceflow
	// replaces, all in one Update (see ImportRequest).
	UpdateImport = "import"
	// QueryStatus returns a Status.
	QueryStatus = "status"
	// QuerySnapshot returns the run's Snapshot: what a later run needs to go
	// on where this one stopped. A run that reopens a policy whose previous
	// run was terminated or cancelled asks that run for it (see
	// PolicyInput.PreviousRunID), because such a run may have accepted
	// events it never got to record.
	QuerySnapshot = "snapshot"
	// SnapshotNotLoaded is the ApplicationError type of the failure of a
	// snapshot query answered by a run that reopened the policy but never
	// loaded it (cancelled or terminated before its load completed): it
	// accepted nothing and knows nothing, and the asker goes on to the run
	// before it, which may hold accepted events no store row has.
	SnapshotNotLoaded = "policy_not_loaded"

	// LoadSnapshotActivity is the local activity, registered by the worker
	// under this name, that a run reopening a policy runs in its first
	// workflow task: it reads the policy's Snapshot from the store (and from
	// PolicyInput.PreviousRunID when set). Loading there, rather than in the
	// client before the start, is what makes the snapshot current: Temporal
	// starts a run only after the previous run of the same workflow ID has
	// closed, and a closed run has recorded everything it accepted (or is
	// asked for it). Its input is a LoadSnapshotInput, its result a
	// *Snapshot (nil for a policy the store has never seen).
	LoadSnapshotActivity = "LoadPolicySnapshot"
)

// LoadSnapshotInput is the input of LoadSnapshotActivity.
type LoadSnapshotInput struct {
	BizID         string `json:"biz_id"`
	PreviousRunID string `json:"previous_run_id,omitempty"`
}

// WorkflowID is the one workflow ID of a policy: "policy-<biz_id>". biz_id is
// an auction business number, never personal data.
func WorkflowID(bizID string) string { return "policy-" + bizID }

// Search attributes kept current by the workflow (and set at start), so the
// Temporal UI and `starter list` can filter policies. Register them with
// `temporal operator search-attribute create`.
var (
	SearchBizID         = temporal.NewSearchAttributeKeyKeyword("BizId")
	SearchPolicyState   = temporal.NewSearchAttributeKeyKeyword("PolicyState")
	SearchInsuranceType = temporal.NewSearchAttributeKeyKeyword("InsuranceType")
	SearchCallbackState = temporal.NewSearchAttributeKeyKeyword("CallbackState")
)

// SearchAttributeNames lists the custom search attributes (all Keyword) the
// worker requires, in a fixed order.
func SearchAttributeNames() []string {
	return []string{"BizId", "PolicyState", "InsuranceType", "CallbackState"}
}

// PolicySearchAttributes are a policy's search attribute values: what the
// starter sets when it starts a workflow (the state after the first event,
// CallbackIdle) and what the workflow keeps current. Keyword values are the
// readable names: the fsm.State, insurance.Type.String() ("home_property")
// and the CallbackState.
func PolicySearchAttributes(bizID string, state fsm.State, t insurance.Type, cb CallbackState) temporal.SearchAttributes {
	values := searchAttributeValues(bizID, state, t, cb)
	updates := make([]temporal.SearchAttributeUpdate, len(values))
	for i, v := range values {
		updates[i] = v.key.ValueSet(v.value)
	}
	return temporal.NewSearchAttributes(updates...)
}

// searchAttributeKeys are the custom search attributes, in
// SearchAttributeNames order.
func searchAttributeKeys() []temporal.SearchAttributeKeyKeyword {
	return []temporal.SearchAttributeKeyKeyword{SearchBizID, SearchPolicyState, SearchInsuranceType, SearchCallbackState}
}

// searchValue is one search attribute and its value.
type searchValue struct {
	key   temporal.SearchAttributeKeyKeyword
	value string
}

// searchAttributeValues is the one place that turns a policy into search
// attribute values, in SearchAttributeNames order.
func searchAttributeValues(bizID string, state fsm.State, t insurance.Type, cb CallbackState) []searchValue {
	return []searchValue{
		{SearchBizID, bizID},
		{SearchPolicyState, string(state)},
		{SearchInsuranceType, t.String()},
		{SearchCallbackState, string(cb)},
	}
}

// CallbackState is the policy-level state of its callback FIFO, as shown in
// the CallbackState search attribute.
type CallbackState string

const (
	CallbackIdle     CallbackState = "idle"     // nothing waiting, or the head is on its first attempt
	CallbackPending  CallbackState = "pending"  // events queued behind the head
	CallbackRetrying CallbackState = "retrying" // the head's first attempt failed; Temporal is retrying it
	CallbackParked   CallbackState = "parked"   // the head needs an operator: retry or skip
)

// EventCallback is the state of one event's callback.
type EventCallback string

const (
	EventQueued    EventCallback = "queued"    // waiting for earlier events' callbacks
	EventSending   EventCallback = "sending"   // first attempt in flight
	EventRetrying  EventCallback = "retrying"  // failed at least once, being retried
	EventDelivered EventCallback = "delivered" // TOP answered call_success=true
	EventParked    EventCallback = "parked"    // rejected, permanent or out of retry budget
	EventSkipped   EventCallback = "skipped"   // an operator gave up on it
	// EventImported is an event imported as already reported to TOP by the
	// system insuranceflow replaced: accepted, never sent.
	EventImported EventCallback = "imported"
)

// Settings tune one policy workflow. Zero values take the defaults (see
// WithDefaults). They travel in the run's input, so a run keeps the settings
// it started with; every process that starts runs reads them with
// SettingsFromEnv, so runs behave alike whoever started them.
type Settings struct {
	RetryInitialInterval time.Duration `json:"retry_initial_interval,omitempty"` // default 1s
	RetryBackoff         float64       `json:"retry_backoff,omitempty"`          // default 2.0
	RetryMaxInterval     time.Duration `json:"retry_max_interval,omitempty"`     // default 5m
	RetryBudget          time.Duration `json:"retry_budget,omitempty"`           // default 24h
	IdleTimeout          time.Duration `json:"idle_timeout,omitempty"`           // default 30 days
	// EmptyRunGrace is how long a run that has accepted no event (and
	// holds no callback) stays open: one started by an event the workflow
	// refused, or by a re-sent duplicate. Default 1 minute; never longer
	// than IdleTimeout.
	EmptyRunGrace      time.Duration `json:"empty_run_grace,omitempty"`
	ContinueAsNewAfter int           `json:"continue_as_new_after,omitempty"` // accepted events per run; default 500

	// Notify makes the run notify the business system of its callbacks'
	// outcomes (set when NOTIFY_URL is, see SettingsFromEnv). It travels
	// in the input, so whether a run notifies is decided once, when it
	// starts, and replays the same whatever any worker's environment says
	// later; runs started before notifications existed never notify.
	Notify bool `json:"notify,omitempty"`
	// NotifyRetryBudget is how long one notification is retried before it
	// is recorded as lost; default 24h.
	NotifyRetryBudget time.Duration `json:"notify_retry_budget,omitempty"`
	// Pipeline makes the run pipeline its callbacks (see pipelineNext):
	// SettingsFromEnv sets it unless PIPELINE_DELIVERY=false. Like Notify
	// it travels in the input, so runs started before pipelining existed
	// never pipeline and replay as they were recorded, without the marker
	// and the TemporalChangeVersion upsert (an action) a GetVersion would
	// cost every run.
	Pipeline bool `json:"pipeline,omitempty"`
}

// Acceptance is the answer to an accepted event (and, with Duplicate set, to
// a re-sent one: the original acceptance).
type Acceptance struct {
	BizID     string           `json:"biz_id"`
	RequestID string           `json:"request_id"`
	Seq       int64            `json:"seq"`
	Stage     insurance.Stage  `json:"stage"`
	Status    insurance.Status `json:"status"`
	State     fsm.State        `json:"state"` // the policy state after the event
	Duplicate bool             `json:"duplicate"`
}

// Snapshot is what a run starts from: the store's record when a closed
// policy is reopened, or the previous run's state on continue-as-new.
type Snapshot struct {
	State            fsm.State      `json:"state"`
	Endorsements     int            `json:"endorsements"`
	InsuranceType    insurance.Type `json:"insurance_type"`
	PolicyNumber     string         `json:"policy_number,omitempty"`
	LastSeq          int64          `json:"last_seq"`
	LastOccurredAt   string         `json:"last_occurred_at,omitempty"` // time_of_occurrence of the last accepted event
	Accepted         []Acceptance   `json:"accepted,omitempty"`         // dedupe data: every accepted request id
	Events           []EventStatus  `json:"events,omitempty"`           // recent events for the status view
	PendingCallbacks []Callback     `json:"pending_callbacks,omitempty"`
	// OperatorActions are the policy's recent operator actions, so that a
	// repeated action is recognised after continue-as-new too.
	OperatorActions []OperatorAction `json:"operator_actions,omitempty"`
	// PendingNotifications are the notifications not yet acknowledged,
	// oldest first (the first may have been in flight): the next run sends
	// them, in order, before any newer one.
	PendingNotifications []PendingNotification `json:"pending_notifications,omitempty"`
}

// PendingNotification is one notification waiting in the run's
// notification queue.
type PendingNotification struct {
	Notification notify.Notification `json:"notification"`
	// QueuedAt starts its retry budget (Settings.NotifyRetryBudget).
	QueuedAt time.Time `json:"queued_at"`
}

// Callback is one queued callback in the FIFO.
type Callback struct {
	Seq            int64            `json:"seq"`
	Event          insurance.Result `json:"event"` // RequestID always set
	AcceptedAt     time.Time        `json:"accepted_at"`
	Attempts       int              `json:"attempts"`
	State          EventCallback    `json:"state"`
	LastError      string           `json:"last_error,omitempty"`
	LastClass      string           `json:"last_class,omitempty"`
	FirstAttemptAt time.Time        `json:"first_attempt_at,omitempty"`

	// StateAfter and EndorsementsAfter are the policy's state and
	// endorsement count right after this event was accepted, as the store
	// records them with the event. A snapshot built from the store must
	// fill them.
	StateAfter        fsm.State `json:"state_after"`
	EndorsementsAfter int       `json:"endorsements_after"`
	// BudgetStartedAt is when the current retry budget began: the first
	// attempt, or the first attempt after an operator's retry. Zero until
	// the callback is first attempted.
	BudgetStartedAt time.Time `json:"budget_started_at,omitzero"`
	// Trace is the W3C traceparent of the client call that reported the
	// event, from its Update header: the event's delivery and every retry
	// of it join that trace. Empty when the caller did not trace.
	Trace string `json:"trace,omitempty"`
}

// PolicyInput starts (or continues) a policy workflow.
type PolicyInput struct {
	BizID    string   `json:"biz_id"`
	Settings Settings `json:"settings"`
	// Snapshot is the previous run's state on continue-as-new. A client
	// never sets it: a snapshot read before the start can be stale by the
	// time the run starts (see LoadSnapshot). Runs started by earlier
	// versions carried the store's snapshot here; they still replay.
	Snapshot *Snapshot `json:"snapshot,omitempty"`
	// LoadSnapshot makes the run read its policy from the store in its
	// first workflow task (LoadSnapshotActivity) before it judges any
	// event. A client sets it whenever the workflow ID may have had a run
	// before; a run of a policy Temporal has never seen needs no load.
	LoadSnapshot bool `json:"load_snapshot,omitempty"`
	// PreviousRunID, with LoadSnapshot, is the policy's previous run when
	// it ended without completing (terminated, cancelled, failed, timed
	// out): the load also asks it for its final state, which holds events
	// the store may not have yet.
	PreviousRunID string `json:"previous_run_id,omitempty"`
	// Import says an import started the run (Update-with-Start of
	// UpdateImport). Such a run keeps no idle timer while only imports
	// arrive: once they are settled and nothing is left to deliver or to
	// notify, it completes at once, since the store holds everything a
	// later run needs. That keeps an imported policy at three actions
	// (start, update, the store write); a live event to the run starts
	// the usual idle watch. Never carried across continue-as-new.
	Import bool `json:"import,omitempty"`
}

// EventStatus is one event as the status view shows it.
type EventStatus struct {
	Seq              int64            `json:"seq"`
	RequestID        string           `json:"request_id"`
	Stage            insurance.Stage  `json:"stage"`
	Status           insurance.Status `json:"status"`
	TimeOfOccurrence string           `json:"time_of_occurrence"`
	AcceptedAt       time.Time        `json:"accepted_at"`
	Callback         EventCallback    `json:"callback"`
	Attempts         int              `json:"attempts"`
	LastError        string           `json:"last_error,omitempty"`
	LastClass        string           `json:"last_class,omitempty"`
	DeliveredAt      *time.Time       `json:"delivered_at,omitempty"`
}

// Status is the full state of a policy, answered by QueryStatus.
type Status struct {
	BizID         string         `json:"biz_id"`
	State         fsm.State      `json:"state"`
	Endorsements  int            `json:"endorsements"`
	InsuranceType insurance.Type `json:"insurance_type"`
	PolicyNumber  string         `json:"policy_number,omitempty"`
	LastSeq       int64          `json:"last_seq"`
	CallbackState CallbackState  `json:"callback_state"`
	Events        []EventStatus  `json:"events"`
}

// OperatorRequest is the argument of UpdateRetryCallback and UpdateSkipCallback.
type OperatorRequest struct {
	// Seq names the parked callback the action is meant for: the head the
	// operator looked at. A different head is refused (ReasonSeqMismatch),
	// so a repeated or proxy-retried skip can never skip the next parked
	// callback, which nobody looked at. Zero means "the parked head,
	// whichever it is", for callers that predate Seq.
	Seq    int64  `json:"seq,omitempty"`
	Reason string `json:"reason,omitempty"`
	// By is who acts: the ingress caller's name or the CLI's OS user. It
	// goes to the store's audit trail, never to logs.
	By string `json:"by,omitempty"`
	// RequestID is the caller's idempotency key (the HTTP Idempotency-Key
	// header), "" when it sent none. An action whose key was applied
	// before answers that outcome (Repeated) whatever the head is now: a
	// retry re-sent after its answer was lost must not retry the callback
	// again once it has parked again, which Seq alone cannot tell.
	RequestID string `json:"request_id,omitempty"`
}

// OperatorResult says which callback an operator action applied to.
type OperatorResult struct {
	Seq      int64         `json:"seq"`
	Callback EventCallback `json:"callback"`
	// Repeated is set when the same action had already been applied to
	// Seq: the answer is that original outcome, and nothing changed.
	Repeated bool `json:"repeated,omitempty"`
}

// Operator action names, as OperatorAction.Action and the audit trail spell them.
const (
	ActionRetry = "retry"
	ActionSkip  = "skip"
)

// OperatorAction is one applied operator action, as the workflow remembers
// it to answer repeats.
type OperatorAction struct {
	Seq    int64         `json:"seq"`
	Action string        `json:"action"` // ActionRetry or ActionSkip
	Result EventCallback `json:"result"` // the callback state it left: queued or skipped
	At     time.Time     `json:"at"`
	// RequestID is the request's idempotency key, if it had one.
	RequestID string `json:"request_id,omitempty"`
}

// OperatorKeyPrefix starts the audit-trail key of an operator action sent
// with a request id; the rest is that id. policyclient reads it back when
// it loads a policy, so a new run still recognises a re-sent action.
const OperatorKeyPrefix = "request:"

// MaxOperatorActions bounds the operator actions a run remembers (and a
// snapshot carries).
const MaxOperatorActions = 50

// SeqMismatchDetails is the detail payload of a ReasonSeqMismatch rejection.
type SeqMismatchDetails struct {
	Seq     int64         `json:"seq"`      // the seq the request named
	HeadSeq int64         `json:"head_seq"` // the FIFO's head now (0 when empty)
	Head    EventCallback `json:"head_callback,omitempty"`
}

// Rejection reasons: the ApplicationError type of a rejected update. The
// ingress maps each to its HTTP error code of the same name.
const (
	ReasonInvalidRequest        = "invalid_request"
	ReasonIllegalTransition     = "illegal_transition"
	ReasonInsuranceTypeMismatch = "insurance_type_mismatch"
	ReasonPolicyNumberMismatch  = "policy_number_mismatch"
	ReasonTimeWentBackwards     = "time_went_backwards"
	ReasonNoParkedCallback      = "no_parked_callback"
	// ReasonSeqMismatch refuses an operator action that names a seq other
	// than the parked head's; details are SeqMismatchDetails.
	ReasonSeqMismatch = "seq_mismatch"
	// ReasonOperatorActionPending refuses an operator action while another
	// one on the same callback is still being recorded.
	ReasonOperatorActionPending = "operator_action_pending"

	// ReasonOperatorRepeated answers an operator action that was already
	// applied to its seq; details are the original OperatorResult with
	// Repeated set. Like ReasonDuplicate it is a rejection only inside
	// Temporal, so a repeat leaves no history; the policy client turns it
	// back into the original answer.
	ReasonOperatorRepeated = "operator_action_repeated"

	// ReasonDuplicate rejects a report whose request id was already
	// accepted; its details hold the original Acceptance with Duplicate
	// set. It is a rejection rather than a successful answer because a
	// rejected update leaves no trace in the workflow history, so a client
	// that retries a lost response cannot grow the history. The policy
	// client turns it back into a normal duplicate answer.
	ReasonDuplicate = "duplicate"
)

// ErrorStoreUnavailable is the ApplicationError type of a retry-callback or
// skip-callback update that was admitted but failed because the store could
// not record the decision; nothing changed and the operator may try again.
const ErrorStoreUnavailable = "store_unavailable"

// ErrorStoreConflict is the ApplicationError type of a store write that no
// retry can cure: the store holds another event under the same seq or
// request id. It names itself so that an operator sees a conflict, not an
// outage; it needs a person to look at the store.
const ErrorStoreConflict = "store_conflict"

// IllegalTransitionDetails is the detail payload of an illegal_transition
// rejection.
type IllegalTransitionDetails struct {
	State         fsm.State `json:"state"`
	Stage         string    `json:"stage"`
	AllowedStages []string  `json:"allowed_stages"`
}
