package policyclient

import (
	"context"

	"go.temporal.io/sdk/converter"

	"github.com/insuranceflow/insuranceflow/activities"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// Waiting on TOP's rate limit is not a state the workflow knows: its
// callback is "sending" while the activity waits for a TOP call slot
// (TOP_QPS), and "retrying" after TOP answered code 7. Both are throttling,
// not failure, and the status view says so.
const (
	// CallbackWaitingRateLimit is the status view's CallbackState, and the
	// head event's Callback, while the head callback waits for a TOP call
	// slot or waits out a TOP ban (code 7).
	CallbackWaitingRateLimit workflows.CallbackState = "waiting_rate_limit"
	EventWaitingRateLimit    workflows.EventCallback = "waiting_rate_limit"
)

// markRateLimited rewrites st when its head callback is waiting on TOP's
// rate limit: retrying after a rate_limited attempt (a code 7, or no call
// slot within the attempt), or in an attempt that heartbeats that it waits
// for its slot. Only the last needs a call to Temporal (the pending
// activity's heartbeat), made only when a callback is in flight; a failed
// call leaves st as it is: the mark is a refinement, not the status.
func (c *Client) markRateLimited(ctx context.Context, st *workflows.Status) {
	head := -1
	for i, e := range st.Events {
		if e.Callback == workflows.EventSending || e.Callback == workflows.EventRetrying {
			head = i
			break
		}
	}
	if head < 0 {
		return
	}
	e := &st.Events[head]
	waiting := e.Callback == workflows.EventRetrying && e.LastClass == activities.ErrorTypeRateLimited
	if !waiting {
		waiting = c.activityWaitsForSlot(ctx, st.BizID)
	}
	if waiting {
		e.Callback = EventWaitingRateLimit
		st.CallbackState = CallbackWaitingRateLimit
	}
}

// activityWaitsForSlot reports whether the policy's pending DeliverCallback
// last heartbeated activities.PhaseWaitingRateLimit.
func (c *Client) activityWaitsForSlot(ctx context.Context, bizID string) bool {
	resp, err := c.Temporal.DescribeWorkflowExecution(ctx, workflows.WorkflowID(bizID), "")
	if err != nil {
		return false
	}
	dc := c.DataConverter
	if dc == nil {
		dc = converter.GetDefaultDataConverter()
	}
	for _, a := range resp.GetPendingActivities() {
		if a.GetActivityType().GetName() != "DeliverCallback" || a.GetHeartbeatDetails() == nil {
			continue
		}
		var attempt int
		var phase string
		if dc.FromPayloads(a.GetHeartbeatDetails(), &attempt, &phase) == nil && phase == activities.PhaseWaitingRateLimit {
			return true
		}
	}
	return false
}
