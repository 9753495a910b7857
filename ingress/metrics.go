package ingress

import (
	"context"
	"errors"
	"slices"

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
// with: invalid_request (every event refused as unusable, before or by a
// workflow), each refusal and conflict type of the workflow contract
// (duplicate among them), unavailable and internal.
func RejectionReasons() []string {
	reasons := []string{workflows.ReasonInvalidRequest}
	for _, typ := range workflows.ContractErrorTypes() {
		if r := metricsReason(policyclient.Classify(contractTypeError(typ))); r == typ && !slices.Contains(reasons, r) {
			reasons = append(reasons, r)
		}
	}
	return append(reasons, reasonUnavailable, reasonInternal)
}

// contractTypeError is an error of one contract type, to classify it.
func contractTypeError(typ string) error { return &policyclient.Rejection{Reason: typ} }

// metricsReason is the one table from an error's kind to its metrics
// reason. A refusal keeps the contract's type as its reason so that
// dashboards can tell illegal transitions from mismatches; outages share
// one reason.
func metricsReason(c policyclient.Classification) string {
	switch c.Kind {
	case policyclient.KindInvalid:
		return workflows.ReasonInvalidRequest
	case policyclient.KindRejected, policyclient.KindConflict:
		return c.Reason
	case policyclient.KindUnavailable, policyclient.KindTimeout, policyclient.KindCanceled:
		return reasonUnavailable
	default:
		// A report is never not_found: a new biz_id starts a policy.
		return reasonInternal
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
func rejectionReason(err error) string { return metricsReason(policyclient.Classify(err)) }

// countRejected counts an event refused before it reached a workflow.
func (s *Server) countRejected(api, reason string) {
	if s.metrics != nil {
		s.metrics.EventRejected(api, reason)
	}
}
