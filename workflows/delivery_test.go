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
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/top"
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

// TestPipelinedDelivery: an event accepted while the callback ahead of it is
// in flight has its callback scheduled at once, marked to wait for that one
// (After), and TOP still gets them in order.
func TestPipelinedDelivery(t *testing.T) {
	h := newHarness(t)
	h.startAttributes(fsm.StatePreInsured)
	h.holdUntilCalled(1, 2)
	events := lifecycle()
	h.report(0, events[0])
	h.report(0, events[1])
	h.report(time.Minute, events[2])
	h.run(PolicyInput{BizID: testBizID, Settings: Settings{IdleTimeout: time.Hour, Pipeline: true}})

	// #1 and #2 run at once, so their calls may come in either order;
	// what reaches TOP may not.
	if got, want := h.deliveries(), []string{"1/1", "2/1", "3/1"}; !slices.Equal(sorted(got), want) {
		t.Fatalf("deliveries = %v, want %v", got, want)
	}
	if got, want := h.sent, []string{"1/1", "2/1", "3/1"}; !slices.Equal(got, want) {
		t.Fatalf("sent to TOP = %v, want %v", got, want)
	}
	c := h.calls
	slices.SortStableFunc(c, func(a, b deliverCall) int { return int(a.Seq - b.Seq) })
	if c[0].Input.After != 0 || c[1].Input.After != 1 || c[2].Input.After != 0 {
		t.Errorf("after = %d, %d, %d; want 0, 1 (pipelined behind #1), 0", c[0].Input.After, c[1].Input.After, c[2].Input.After)
	}
	if c[1].At != 0 {
		t.Errorf("callback #2 scheduled at %v, want at once (while #1 was in flight)", c[1].At)
	}
	// #2 is delivered as if #1 were: its own state is the FIFO from #2 on.
	if got := [2]string{c[1].Input.CallbackState, c[1].Input.CallbackStateAfter}; got != [2]string{"idle", "idle"} {
		t.Errorf("callback #2 state before/after = %v, want idle/idle", got)
	}
	final := h.result()
	for _, e := range final.Events {
		if e.Callback != EventDelivered || e.Attempts != 1 {
			t.Errorf("event %d = %s after %d attempts, want delivered on the first", e.Seq, e.Callback, e.Attempts)
		}
	}
}

// TestNoPipeliningUnlessTheSettingsSayPipeline: a run started without
// Settings.Pipeline (as every run started before pipelining existed)
// schedules a callback only once the one ahead has completed, as its
// history says it did.
func TestNoPipeliningUnlessTheSettingsSayPipeline(t *testing.T) {
	h, _ := pipelinedHarness(t, serviceDown)
	h.holdFn = nil // nothing would be scheduled behind #1 to wait for
	h.run(PolicyInput{BizID: testBizID, Settings: Settings{IdleTimeout: time.Hour}})

	if got, want := h.deliveries(), []string{"1/1", "1/2", "2/1"}; !slices.Equal(got, want) {
		t.Fatalf("deliveries = %v, want %v", got, want)
	}
	for _, c := range h.calls {
		if c.Input.After != 0 {
			t.Errorf("call %d/%d pipelined behind #%d", c.Seq, c.Attempt, c.Input.After)
		}
	}
}

// TestPipelinedBehindAFailure: when the callback ahead fails, the pipelined
// one sends nothing (NotYet) and is scheduled again, with the same attempt
// number, once the one ahead is delivered.
func TestPipelinedBehindAFailure(t *testing.T) {
	h, _ := pipelinedHarness(t, serviceDown)
	h.run(PolicyInput{BizID: testBizID, Settings: Settings{IdleTimeout: time.Hour, Pipeline: true}})

	got := h.deliveries()
	if want := []string{"1/1", "2/1", "1/2", "2/1"}; len(got) != 4 || !slices.Equal(sorted(got[:2]), want[:2]) || !slices.Equal(got[2:], want[2:]) {
		t.Fatalf("deliveries = %v, want %v (the first two in either order)", got, want)
	}
	if got, want := h.sent, []string{"1/1", "1/2", "2/1"}; !slices.Equal(got, want) {
		t.Fatalf("sent to TOP = %v, want %v", got, want)
	}
	var second []deliverCall
	for _, c := range h.calls {
		if c.Seq == 2 {
			second = append(second, c)
		}
	}
	if len(second) != 2 || second[0].Input.After != 1 || second[1].Input.After != 0 || second[1].At != time.Second {
		t.Errorf("callback #2 calls = %+v, want pipelined behind #1, then scheduled after #1's retry at 1s", second)
	}
	final := h.result()
	if e := final.Events[1]; e.Callback != EventDelivered || e.Attempts != 1 {
		t.Errorf("event 2 = %s after %d attempts, want delivered on its first", e.Callback, e.Attempts)
	}
}

// pipelinedHarness reports the first two events at once, #1's first
// attempt ending in outcome once #2 has been scheduled behind it.
func pipelinedHarness(t *testing.T, outcome top.Outcome) (*harness, []insurance.Result) {
	h := newHarness(t)
	h.startAttributes(fsm.StatePreInsured)
	h.holdUntilCalled(1, 2)
	h.fail(1, outcome)
	events := lifecycle()
	h.report(0, events[0])
	h.report(0, events[1])
	return h, events
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestContinueAsNewBehindAPipelinedCallback: the head parks while the
// callback behind it is pipelined; the run continues as new only once that
// one has answered (NotYet), and hands both over, nothing sent twice or lost.
func TestContinueAsNewBehindAPipelinedCallback(t *testing.T) {
	h, events := pipelinedHarness(t, rejectedByTOP)
	h.report(time.Minute, events[2]) // the third acceptance makes the run continue as new
	h.run(PolicyInput{BizID: testBizID, Settings: Settings{ContinueAsNewAfter: 3, IdleTimeout: time.Hour, Pipeline: true}})

	next := h.continuedWith()
	if got := h.sent; !slices.Equal(got, []string{"1/1"}) {
		t.Fatalf("sent to TOP = %v, want only #1's attempt", got)
	}
	if got := h.deliveries(); !slices.Equal(sorted(got), []string{"1/1", "2/1"}) {
		t.Fatalf("deliveries = %v, want #1's attempt and #2 pipelined", got)
	}
	pending := next.Snapshot.PendingCallbacks
	if len(pending) != 3 || pending[0].Seq != 1 || pending[0].State != EventParked ||
		pending[1].Seq != 2 || pending[1].State != EventQueued || pending[1].Attempts != 0 || pending[2].Seq != 3 {
		t.Fatalf("handed over %+v, want #1 parked, #2 queued without attempts, #3", pending)
	}
}
