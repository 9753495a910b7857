package policyclient

import (
	"context"
	"errors"

	"go.temporal.io/sdk/temporal"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/store"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// ErrorKind is what an error of a policy operation means to whoever has to
// answer for it: the caller's mistake, the policy's refusal, an outage…
// Classify is the one place that decides it; the ingress, the TOP drop-in,
// the metrics and the CLI each map a kind to their own answer (HTTP status,
// TOP envelope, metric label, exit code) with one small table, so a new
// error type needs a decision here and nowhere else.
type ErrorKind int

const (
	// KindInvalid: the request or input is unusable; sending it again
	// cannot help (400, exit 2).
	KindInvalid ErrorKind = iota + 1
	// KindRejected: the policy refused given what it has recorded —
	// an illegal transition, a mismatch, nothing parked, another seq
	// parked (409, exit 3).
	KindRejected
	// KindConflict: the store holds something that contradicts the
	// operation (store_conflict). No retry cures it and the caller cannot
	// fix it: it needs a person to look at the store. Answered like a
	// refusal (409, exit 3, TOP call_success=false) so that no client
	// retries it in a loop, and logged, unlike a refusal, so that someone
	// does look.
	KindConflict
	// KindNotFound: neither Temporal nor the store knows the policy (404,
	// exit 5).
	KindNotFound
	// KindUnavailable: Temporal or the store could not be reached, or
	// could not record; the same request may succeed later (503, exit 4).
	KindUnavailable
	// KindTimeout: no answer within the call's deadline; like
	// KindUnavailable, but TOP callers are told it timed out.
	KindTimeout
	// KindCanceled: the caller went away before the answer.
	KindCanceled
	// KindInternal: anything else — a bug, or a failure that fits no other
	// kind. Its text is logged, never shown.
	KindInternal
)

func (k ErrorKind) String() string {
	switch k {
	case KindInvalid:
		return "invalid"
	case KindRejected:
		return "rejected"
	case KindConflict:
		return "conflict"
	case KindNotFound:
		return "not_found"
	case KindUnavailable:
		return "unavailable"
	case KindTimeout:
		return "timeout"
	case KindCanceled:
		return "canceled"
	case KindInternal:
		return "internal"
	}
	return "unknown"
}

// Kinds lists every ErrorKind, for tables that must cover them all.
func Kinds() []ErrorKind {
	return []ErrorKind{KindInvalid, KindRejected, KindConflict, KindNotFound, KindUnavailable, KindTimeout, KindCanceled, KindInternal}
}

// Classification is what Classify makes of an error.
type Classification struct {
	Kind ErrorKind
	// Reason is the workflow contract's error type when the error carries
	// one (illegal_transition, store_unavailable, …), invalid_request for
	// an event or argument refused before Temporal, and "" otherwise.
	Reason string
	// Message is safe to show the caller: the workflow's own message for a
	// contract error, the argument's problem for an ArgumentError. It is ""
	// when the error's text may name internals (then the answer says
	// something generic).
	Message string
}

// Kind is Classify(err).Kind.
func Kind(err error) ErrorKind { return Classify(err).Kind }

// Classify returns the kind of an error returned by this package (or by
// insurance.Decode and Validate, which the callers run first). A workflow
// refusal (*Rejection) and any ApplicationError whose type is one of
// workflows.ContractErrorTypes are classified by their type, so an error
// type of the contract that this package passes on unconverted (the store
// being unavailable during an operator action, say) still gets its kind.
// err must not be nil.
func Classify(err error) Classification {
	var (
		invalid   *insurance.ValidationError
		argument  *ArgumentError
		rejection *Rejection
		appErr    *temporal.ApplicationError
	)
	switch {
	case errors.As(err, &invalid):
		return Classification{Kind: KindInvalid, Reason: workflows.ReasonInvalidRequest, Message: "the insurance result is invalid"}
	case errors.As(err, &argument):
		return Classification{Kind: KindInvalid, Reason: workflows.ReasonInvalidRequest, Message: argument.Error()}
	case errors.As(err, &rejection):
		if k, ok := contractKind(rejection.Reason); ok {
			return Classification{Kind: k, Reason: rejection.Reason, Message: rejection.Message}
		}
		// A Rejection is only ever made from a contract reason; one that
		// is not is a bug, and its text is not vouched for.
		return Classification{Kind: KindInternal}
	case errors.As(err, &appErr) && isContractType(appErr.Type()):
		k, _ := contractKind(appErr.Type())
		return Classification{Kind: k, Reason: appErr.Type(), Message: appErr.Message()}
	case errors.Is(err, ErrNotFound), errors.Is(err, store.ErrNotFound):
		return Classification{Kind: KindNotFound}
	// Before ErrUnavailable, which wraps a deadline too: a TOP caller is
	// told its request timed out rather than that the service is down.
	case errors.Is(err, context.DeadlineExceeded):
		return Classification{Kind: KindTimeout}
	case errors.Is(err, ErrUnavailable):
		return Classification{Kind: KindUnavailable}
	case errors.Is(err, context.Canceled):
		return Classification{Kind: KindCanceled}
	default:
		return Classification{Kind: KindInternal}
	}
}

func isContractType(t string) bool {
	_, ok := contractKind(t)
	return ok
}

// contractKind is the kind of each ApplicationError type of the workflow
// contract; TestEveryContractErrorTypeHasAKind checks that it knows every
// one in workflows.ContractErrorTypes.
func contractKind(t string) (ErrorKind, bool) {
	switch t {
	case workflows.ReasonInvalidRequest,
		// The run refused its input: the settings the client's process
		// passed (from its environment) are unusable. The caller's side,
		// not a bug in the workflow, and sending it again cannot help.
		workflows.ErrorTypeInvalidInput:
		return KindInvalid, true
	case workflows.ReasonIllegalTransition,
		workflows.ReasonInsuranceTypeMismatch,
		workflows.ReasonPolicyNumberMismatch,
		workflows.ReasonTimeWentBackwards,
		workflows.ReasonNoParkedCallback,
		workflows.ReasonSeqMismatch,
		workflows.ReasonOperatorActionPending,
		// Like a duplicate, the client turns a repeated operator action
		// into its original answer; if one ever reached a caller as an
		// error, it would be a refusal to act a second time.
		workflows.ReasonOperatorRepeated,
		// The client turns a duplicate into the original acceptance; if
		// one ever reached a caller as an error, it would be a refusal to
		// accept the event a second time.
		workflows.ReasonDuplicate,
		// An already-reported event after one still to report.
		workflows.ReasonImportOrder,
		// The client turns it into the import's outcomes; as an error it
		// would be a refusal of every event.
		workflows.ReasonNothingToImport:
		return KindRejected, true
	case workflows.ErrorStoreUnavailable:
		return KindUnavailable, true
	case workflows.ErrorStoreConflict:
		return KindConflict, true
	}
	return 0, false
}
