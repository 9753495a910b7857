package ingress

import (
	"context"
	"errors"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// Metrics receives the outcome of every reported event, for monitoring.
// Config.Metrics may be nil: nothing is recorded then. Calls happen on the
// request path, so an implementation must not block.
type Metrics interface {
	// EventAccepted counts an event a workflow accepted as new.
	EventAccepted(api string)
	// EventRejected counts an event that was not accepted; reason is one of
	// RejectionReasons.
	EventRejected(api, reason string)
}

// The APIs an event arrives through, as Metrics names them.
const (
	APIJSON = "json" // POST /v1/insurance-results
	APITOP  = "top"  // POST /router/rest, the TOP-compatible endpoint
)

// APIs returns every API name Metrics is called with.
func APIs() []string { return []string{APIJSON, APITOP} }

// Reasons an event is not accepted beyond the workflow's own: a duplicate
// (answered with the original acceptance, but nothing new was accepted),
// Temporal not answering, and anything else that went wrong on our side.
const (
	reasonUnavailable = codeUnavailable
	reasonInternal    = codeInternal
)

// RejectionReasons returns every reason Metrics.EventRejected is called
// with: the workflow's rejection reasons, duplicate, unavailable and
// internal. invalid_request covers every event refused before it reached a
// workflow (unreadable body, failed validation).
func RejectionReasons() []string {
	return []string{
		workflows.ReasonInvalidRequest,
		workflows.ReasonIllegalTransition,
		workflows.ReasonInsuranceTypeMismatch,
		workflows.ReasonPolicyNumberMismatch,
		workflows.ReasonTimeWentBackwards,
		workflows.ReasonDuplicate,
		reasonUnavailable,
		reasonInternal,
	}
}

// countReport records what one report came to: acc and err as the policy
// client returned them (or the decoding error, with a zero acc). A caller
// that went away before the answer is not counted: nothing was decided.
func (s *Server) countReport(ctx context.Context, api string, acc workflows.Acceptance, err error) {
	if s.metrics == nil {
		return
	}
	if err == nil {
		if acc.Duplicate {
			s.metrics.EventRejected(api, workflows.ReasonDuplicate)
			return
		}
		s.metrics.EventAccepted(api)
		return
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return
	}
	s.metrics.EventRejected(api, rejectionReason(err))
}

// rejectionReason is the metrics reason for a report's error.
func rejectionReason(err error) string {
	var (
		invalid   *insurance.ValidationError
		argument  *policyclient.ArgumentError
		rejection *policyclient.Rejection
	)
	switch {
	case errors.As(err, &invalid), errors.As(err, &argument):
		return workflows.ReasonInvalidRequest
	case errors.As(err, &rejection):
		return rejection.Reason
	case errors.Is(err, policyclient.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return reasonUnavailable
	default:
		return reasonInternal
	}
}

// countRejected counts an event refused before it reached a workflow.
func (s *Server) countRejected(api, reason string) {
	if s.metrics != nil {
		s.metrics.EventRejected(api, reason)
	}
}
