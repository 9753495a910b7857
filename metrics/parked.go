package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/insuranceflow/insuranceflow/workflows"
)

// DefaultParkedInterval is how often PollParked counts parked callbacks when
// no interval is given: a parked callback waits for a person, so a minute's
// delay in the gauge costs nothing, and a count is one visibility query.
const DefaultParkedInterval = 30 * time.Second

// maxCountTimeout bounds one count, so a slow visibility store delays the
// gauge rather than piling up queries.
const maxCountTimeout = 10 * time.Second

// ParkedCounter counts the callbacks parked now.
type ParkedCounter func(ctx context.Context) (int64, error)

// VisibilityCounter is the part of the Temporal client that counts
// workflows; client.Client satisfies it.
type VisibilityCounter interface {
	CountWorkflow(ctx context.Context, req *workflowservice.CountWorkflowExecutionsRequest) (*workflowservice.CountWorkflowExecutionsResponse, error)
}

// ParkedQuery is the visibility query matching the policies whose callback
// is parked now: running policy workflows whose CallbackState search
// attribute says parked. A run that was terminated while parked is not
// open, so it is left out.
func ParkedQuery() string {
	return fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running' AND %s = '%s'",
		workflows.WorkflowName, workflows.SearchCallbackState.GetName(), workflows.CallbackParked)
}

// CountParked counts parked callbacks in Temporal visibility. Visibility is
// the source because the CallbackState search attribute is the workflow's
// own state, upserted the moment it parks and again when an operator retries
// or skips; the store's copy is written by a local activity that a workflow
// gives up on when the database is down, and would then undercount. A
// policy parks at most one callback (its FIFO head), so counting workflows
// counts callbacks.
func CountParked(c VisibilityCounter) ParkedCounter {
	return func(ctx context.Context) (int64, error) {
		resp, err := c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: ParkedQuery()})
		if err != nil {
			return 0, fmt.Errorf("count parked callbacks in Temporal visibility: %w", err)
		}
		return resp.GetCount(), nil
	}
}

// PollParked sets the open parked callbacks gauge from count now and then
// every interval (DefaultParkedInterval when zero or negative) until ctx
// ends, when it returns nil. A failed count is logged and leaves the gauge
// at its last value; NameParkedCallbacksTime says how old that value is, so
// an alert can tell "none parked" from "not counted lately".
func (m *Metrics) PollParked(ctx context.Context, count ParkedCounter, interval time.Duration, logger *slog.Logger) error {
	if m == nil || count == nil {
		<-ctx.Done()
		return nil
	}
	if interval <= 0 {
		interval = DefaultParkedInterval
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		m.countParked(ctx, count, min(interval, maxCountTimeout), logger)
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

func (m *Metrics) countParked(ctx context.Context, count ParkedCounter, timeout time.Duration, logger *slog.Logger) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	n, err := count(cctx)
	if err != nil {
		if ctx.Err() == nil {
			logger.Warn("parked callbacks not counted", "error", err)
		}
		return
	}
	m.SetParkedCallbacks(n, time.Now())
}
