package workflows

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/insuranceflow/insuranceflow/fsm"
)

// TestDeliveryHeartbeatTimeout checks that both delivery phases schedule
// DeliverCallback with a heartbeat timeout, so that an attempt whose worker
// died is retried after it rather than after the 60 s attempt timeout.
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

	want := []scheduled{{10 * time.Second, time.Minute}, {10 * time.Second, time.Minute}}
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
