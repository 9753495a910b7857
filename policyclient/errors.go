package policyclient

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/grpc/codes"

	"github.com/insuranceflow/insuranceflow/workflows"
)

var (
	// ErrNotFound is returned (wrapped, with the biz_id) when neither
	// Temporal nor the store knows the policy.
	ErrNotFound = errors.New("policy not found")
	// ErrUnavailable is returned (wrapping the cause) when Temporal cannot
	// be reached or does not answer in time; the operation may succeed if
	// tried again later.
	ErrUnavailable = errors.New("temporal unavailable")
)

// acceptedUpdateCompletedWorkflow is the failure type the Temporal server
// gives an update that a run accepted but could not finish because the run
// closed.
const acceptedUpdateCompletedWorkflow = "AcceptedUpdateCompletedWorkflow"

// Rejection is returned when the workflow refuses an event or an operator
// action. Reason is one of the workflows.Reason* constants (and the HTTP
// error code of the same name); Details is set for an illegal_transition.
type Rejection struct {
	Reason  string
	Message string
	Details *workflows.IllegalTransitionDetails
	// SeqMismatch is set for a seq_mismatch: the seq named and the head.
	SeqMismatch *workflows.SeqMismatchDetails
}

func (e *Rejection) Error() string {
	return fmt.Sprintf("rejected (%s): %s", e.Reason, e.Message)
}

// ArgumentError is returned when an argument is unusable before anything is
// asked of Temporal: an unknown state in a list filter, an over-long reason.
type ArgumentError struct {
	Field   string // the argument's external name, e.g. "state"
	Message string
}

func (e *ArgumentError) Error() string {
	return fmt.Sprintf("invalid %s: %s", e.Field, e.Message)
}

// rejectionReasons are the ApplicationError types that mean "the workflow
// refused", as opposed to a failure of the workflow or of Temporal.
func isRejectionReason(t string) bool {
	switch t {
	case workflows.ReasonInvalidRequest,
		workflows.ReasonIllegalTransition,
		workflows.ReasonInsuranceTypeMismatch,
		workflows.ReasonPolicyNumberMismatch,
		workflows.ReasonTimeWentBackwards,
		workflows.ReasonNoParkedCallback,
		workflows.ReasonSeqMismatch,
		workflows.ReasonOperatorActionPending,
		workflows.ErrorStoreConflict:
		return true
	}
	return false
}

// asRejection returns the *Rejection that err carries, or nil when err is
// not a refusal by the workflow.
func asRejection(err error) *Rejection {
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || !isRejectionReason(appErr.Type()) {
		return nil
	}
	rej := &Rejection{Reason: appErr.Type(), Message: appErr.Message()}
	if rej.Reason == workflows.ReasonIllegalTransition && appErr.HasDetails() {
		var d workflows.IllegalTransitionDetails
		// The details only enrich the answer; a rejection without them is
		// still a rejection.
		if appErr.Details(&d) == nil {
			rej.Details = &d
		}
	}
	if rej.Reason == workflows.ReasonSeqMismatch && appErr.HasDetails() {
		var d workflows.SeqMismatchDetails
		if appErr.Details(&d) == nil {
			rej.SeqMismatch = &d
		}
	}
	return rej
}

// runClosed reports whether an update failed because the run it reached
// closed before handling it: either before accepting it (the server answers
// NotFound) or after (the server fails it as AcceptedUpdateCompletedWorkflow).
func runClosed(err error) bool {
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return true
	}
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.Type() == acceptedUpdateCompletedWorkflow
}

// isNotFound reports whether Temporal says the workflow does not exist (or
// has no open run, for an update).
func isNotFound(err error) bool {
	var notFound *serviceerror.NotFound
	return errors.As(err, &notFound)
}

// unavailable reports whether err means Temporal could not be reached or
// did not answer in time.
func unavailable(err error) bool {
	var timeout *client.WorkflowUpdateServiceTimeoutOrCanceledError
	if errors.As(err, &timeout) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	switch serviceerror.ToStatus(err).Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
		return true
	}
	return false
}
