package ingress

import (
	"context"
	"fmt"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// Gate knows whether the workflow service is down, so a call can be
// answered at once rather than after its timeout; *policyclient.Health is
// one.
type Gate interface {
	// Err is non-nil (wrapping policyclient.ErrUnavailable) while the
	// service is known to be down. It must not block.
	Err() error
	// Observe is told the outcome of every call.
	Observe(err error)
}

var _ Gate = (*policyclient.Health)(nil)

// gatedPolicies asks the gate before every call and tells it the outcome.
type gatedPolicies struct {
	next Policies
	gate Gate
}

var _ Policies = gatedPolicies{}

// gated runs call unless the gate says the service is down.
func gated[T any](g Gate, ctx context.Context, call func(context.Context) (T, error)) (T, error) {
	if err := g.Err(); err != nil {
		var zero T
		return zero, fmt.Errorf("not calling the workflow service: %w", err)
	}
	v, err := call(ctx)
	g.Observe(err)
	return v, err
}

func (p gatedPolicies) Report(ctx context.Context, r insurance.Result) (workflows.Acceptance, error) {
	return gated(p.gate, ctx, func(ctx context.Context) (workflows.Acceptance, error) { return p.next.Report(ctx, r) })
}

func (p gatedPolicies) Status(ctx context.Context, bizID string) (workflows.Status, error) {
	return gated(p.gate, ctx, func(ctx context.Context) (workflows.Status, error) { return p.next.Status(ctx, bizID) })
}

func (p gatedPolicies) List(ctx context.Context, f policyclient.ListFilter) (policyclient.ListPage, error) {
	return gated(p.gate, ctx, func(ctx context.Context) (policyclient.ListPage, error) { return p.next.List(ctx, f) })
}

func (p gatedPolicies) Retry(ctx context.Context, bizID string, req workflows.OperatorRequest) (workflows.OperatorResult, error) {
	return gated(p.gate, ctx, func(ctx context.Context) (workflows.OperatorResult, error) { return p.next.Retry(ctx, bizID, req) })
}

func (p gatedPolicies) Skip(ctx context.Context, bizID string, req workflows.OperatorRequest) (workflows.OperatorResult, error) {
	return gated(p.gate, ctx, func(ctx context.Context) (workflows.OperatorResult, error) { return p.next.Skip(ctx, bizID, req) })
}

// OperatorActions reads the store's audit trail, not Temporal, so the
// gate neither holds it back nor learns from it.
func (p gatedPolicies) OperatorActions(ctx context.Context, bizID string) ([]policyclient.OperatorActionView, error) {
	return p.next.OperatorActions(ctx, bizID)
}

// LostNotifications reads the store, not Temporal, like OperatorActions.
func (p gatedPolicies) LostNotifications(ctx context.Context, bizID string) ([]policyclient.LostNotificationView, error) {
	return p.next.LostNotifications(ctx, bizID)
}
