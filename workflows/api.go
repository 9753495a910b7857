package workflows

// This file is the contract between the policy workflow and everything that
// talks to it (the ingress, the starter CLI, tests): names, IDs, inputs and
// outputs. Nobody else spells these strings.

import (
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
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
	// QueryStatus returns a Status.
	QueryStatus = "status"
)

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
)

// Settings tune one policy workflow. Zero values take the defaults below; the
// starter passes the worker's configuration so runs are deterministic.
type Settings struct {
	RetryInitialInterval time.Duration `json:"retry_initial_interval,omitempty"` // default 1s
	RetryBackoff         float64       `json:"retry_backoff,omitempty"`          // default 2.0
	RetryMaxInterval     time.Duration `json:"retry_max_interval,omitempty"`     // default 5m
	RetryBudget          time.Duration `json:"retry_budget,omitempty"`           // default 24h
	IdleTimeout          time.Duration `json:"idle_timeout,omitempty"`           // default 30 days
	ContinueAsNewAfter   int           `json:"continue_as_new_after,omitempty"`  // accepted events per run; default 500
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
}

// PolicyInput starts (or continues) a policy workflow.
type PolicyInput struct {
	BizID    string    `json:"biz_id"`
	Settings Settings  `json:"settings"`
	Snapshot *Snapshot `json:"snapshot,omitempty"` // nil for a policy the store has never seen
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
	Reason string `json:"reason,omitempty"`
}

// OperatorResult says which callback an operator action applied to.
type OperatorResult struct {
	Seq      int64         `json:"seq"`
	Callback EventCallback `json:"callback"`
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
)

// IllegalTransitionDetails is the detail payload of an illegal_transition
// rejection.
type IllegalTransitionDetails struct {
	State         fsm.State `json:"state"`
	Stage         string    `json:"stage"`
	AllowedStages []string  `json:"allowed_stages"`
}
