package workflows

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/insuranceflow/insuranceflow/activities"
	"github.com/insuranceflow/insuranceflow/fsm"
)

// TestDeliveryHeartbeatTimeout checks that both delivery phases schedule
// DeliverCallback with a heartbeat timeout, so that an attempt whose worker
// died is retried after it rather than after the 3 min attempt timeout
// (long enough for a wait for a TOP call slot, then the call).
func TestDeliveryHeartbeatTimeout(t *testing.T) {
	h := newHarness(t)
	h.startAttributes(fsm.StatePreInsured)
	h.fail(1, serviceDown) // phase 1 fails, phase 2 delivers
	type scheduled struct{ heartbeat, startToClose time.Duration }
	var mu sync.Mutex
	var got []scheduled
	h.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		if info.ActivityType.Name != "DeliverCallback" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		got = append(got, scheduled{info.HeartbeatTimeout, info.StartToCloseTimeout})
	})
	h.report(0, lifecycle()[0])
	h.run(PolicyInput{BizID: testBizID, Settings: Settings{IdleTimeout: time.Hour}})

	want := []scheduled{{10 * time.Second, 3 * time.Minute}, {10 * time.Second, 3 * time.Minute}}
	if !slices.Equal(got, want) {
		t.Fatalf("DeliverCallback scheduled with heartbeat/start-to-close timeouts %v, want %v (phase 1, phase 2)", got, want)
	}
}

// TestDeliveryRetriesAfterHeartbeatTimeout: an attempt that timed out on
// its heartbeat (its worker died) is retried, counted, and not parked, in
// either phase; the numbering carries on so that the store's rows line up.
func TestDeliveryRetriesAfterHeartbeatTimeout(t *testing.T) {
	h := newHarness(t)
	h.startAttributes(fsm.StatePreInsured)
	h.failCall = func(c deliverCall) error {
		if c.Attempt <= 2 { // phase 1's attempt and phase 2's first
			return temporal.NewHeartbeatTimeoutError()
		}
		return nil
	}
	h.report(0, lifecycle()[0])
	during := h.query(1500 * time.Millisecond)
	h.run(PolicyInput{BizID: testBizID, Settings: Settings{IdleTimeout: time.Hour}})

	if got, want := h.deliveries(), []string{"1/1", "1/2", "1/3"}; !slices.Equal(got, want) {
		t.Fatalf("deliveries = %v, want %v", got, want)
	}
	if h.calls[1].Offset != 1 {
		t.Errorf("phase 2 offset = %d, want 1: the timed-out attempt counts", h.calls[1].Offset)
	}
	head := during.Events[0]
	if head.Callback != EventRetrying || head.Attempts != 1 || head.LastClass != "timeout" ||
		!strings.Contains(head.LastError, "Heartbeat") {
		t.Errorf("status while retrying = %+v, want attempt 1 timed out on its heartbeat", head)
	}
	if final := h.result(); final.Events[0].Callback != EventDelivered || final.Events[0].Attempts != 3 {
		t.Errorf("event 1 = %+v, want delivered on attempt 3", final.Events[0])
	}
}

// TestTimedOutRetryRunCountsItsAttempts: a phase 2 run that ends in a
// timeout carries no DeliverFailure of its own, yet it may have made many
// attempts. The attempts it proves ran (its last heartbeat, the last
// attempt's DeliverFailure) count, so the operator's retry numbers its
// attempts after them instead of reusing numbers the store already holds.
func TestTimedOutRetryRunCountsItsAttempts(t *testing.T) {
	tests := []struct {
		name string
		// phase2 is the result of every phase 2 call.
		phase2 func(c deliverCall) error
		// want is the attempt the parked callback is at, and so the
		// operator retry's AttemptOffset; 0 means the last phase 2 call's.
		want int
	}{
		{
			name: "schedule-to-close with heartbeat details",
			phase2: func(deliverCall) error {
				return temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE, nil, 7)
			},
			want: 7,
		},
		{
			name: "heartbeat timeout on the last attempt",
			phase2: func(c deliverCall) error {
				return temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_HEARTBEAT, nil, c.Attempt)
			},
		},
		{
			name: "schedule-to-close with the last attempt's failure",
			phase2: func(deliverCall) error {
				return temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE, activities.OutcomeError(5, serviceDown))
			},
			want: 5,
		},
		{
			name: "failure after the last heartbeat",
			phase2: func(deliverCall) error {
				return temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE, activities.OutcomeError(9, serviceDown), 7)
			},
			want: 9,
		},
		{
			name: "timeout proving no attempt",
			phase2: func(deliverCall) error {
				return temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE, nil)
			},
			want: 2, // phase 2's first attempt
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.startAttributes(fsm.StatePreInsured)
			h.fail(1, serviceDown) // phase 1
			h.failCall = func(c deliverCall) error {
				if c.Offset == 1 { // phase 2, after phase 1's one attempt
					return tt.phase2(c)
				}
				return nil
			}
			h.report(0, lifecycle()[0])
			parked := h.query(9 * time.Minute)
			retry := h.operator(10*time.Minute, UpdateRetryCallback)
			h.run(PolicyInput{BizID: testBizID, Settings: Settings{RetryBudget: time.Minute, RetryMaxInterval: 10 * time.Second, IdleTimeout: time.Hour}})

			retry.operatorResult(t)
			n := len(h.calls)
			if n < 3 {
				t.Fatalf("deliveries = %v, want phase 1, phase 2 and the operator's retry", h.deliveries())
			}
			want := tt.want
			if want == 0 {
				want = h.calls[n-2].Attempt
				if want < 3 {
					t.Fatalf("deliveries = %v, want several phase 2 attempts before the budget ran out", h.deliveries())
				}
			}
			if head := parked.Events[0]; head.Callback != EventParked || head.Attempts != want {
				t.Errorf("status while parked = %+v, want parked at attempt %d", head, want)
			}
			last := h.calls[n-1]
			if last.At != 10*time.Minute || last.Offset != want || last.Attempt != want+1 {
				t.Errorf("operator retry's call = {at %s, offset %d, attempt %d}, want {at 10m, offset %d, attempt %d}",
					last.At, last.Offset, last.Attempt, want, want+1)
			}
			if final := h.result(); final.Events[0].Callback != EventDelivered || final.Events[0].Attempts != want+1 {
				t.Errorf("event 1 = %+v, want delivered on attempt %d", final.Events[0], want+1)
			}
		})
	}
}
