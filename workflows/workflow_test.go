package workflows

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/temporal"

	"github.com/insuranceflow/insuranceflow/activities"
	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/top"
)

var (
	rejectedByTOP = top.Outcome{Class: top.ClassRejected, FailCode: "POLICY_NOT_FOUND", FailMessage: "no such policy"}
	permanent     = top.Outcome{Class: top.ClassPermanent, Code: 25, SubCode: "isv.invalid-signature", Msg: "Invalid signature"}
	serviceDown   = top.Outcome{Class: top.ClassRetryable, Code: 15, SubCode: "isp.remote-service-error", SubMsg: "service down"}
)

func banned(d time.Duration) top.Outcome {
	return top.Outcome{Class: top.ClassRateLimited, Code: 7, SubMsg: fmt.Sprintf("This ban will last for %d more seconds", int(d.Seconds())), RetryAfter: d}
}

func TestLifecycleDeliveredInOrder(t *testing.T) {
	h := newHarness(t)
	h.startAttributes(fsm.StatePreInsured)
	events := lifecycle()
	replies := make([]*reply, len(events))
	for i, e := range events {
		replies[i] = h.report(time.Duration(i)*time.Hour, e)
	}
	mid := h.query(2*time.Hour + time.Minute)
	h.run(PolicyInput{BizID: testBizID})

	wantStates := []fsm.State{fsm.StatePreInsured, fsm.StateUnderwritten, fsm.StateInsured, fsm.StateInsured, fsm.StateCancelled}
	for i, r := range replies {
		a := r.acceptance(t)
		want := Acceptance{BizID: testBizID, RequestID: events[i].WithRequestID().RequestID, Seq: int64(i + 1),
			Stage: events[i].Stage, Status: events[i].Status, State: wantStates[i]}
		if a != want {
			t.Errorf("acceptance %d = %+v, want %+v", i+1, a, want)
		}
	}

	if got, want := h.deliveries(), []string{"1/1", "2/1", "3/1", "4/1", "5/1"}; !slices.Equal(got, want) {
		t.Fatalf("deliveries = %v, want %v", got, want)
	}
	first := h.calls[0].Input
	if first.Event.BankAccountManagerName != testManagerName || first.StateAfter != fsm.StatePreInsured ||
		first.InsuranceType != insurance.TypeHomeProperty || first.PolicyNumber != "PN-001" || first.AttemptOffset != 0 {
		t.Errorf("first DeliverInput = %+v, want the full event, state pre_insured, the policy's type and number, offset 0", first)
	}
	if got := h.calls[3].Input.EndorsementsAfter; got != 1 {
		t.Errorf("endorse callback EndorsementsAfter = %d, want 1", got)
	}

	if mid.State != fsm.StateInsured || mid.LastSeq != 3 || len(mid.Events) != 3 || mid.CallbackState != CallbackIdle {
		t.Errorf("status after 3 events = %+v, want insured, last_seq 3, 3 events, idle", *mid)
	}
	for _, e := range mid.Events {
		if e.Callback != EventDelivered || e.Attempts != 1 || e.DeliveredAt == nil {
			t.Errorf("mid-run event %d = %+v, want delivered on attempt 1", e.Seq, e)
		}
	}

	final := h.result()
	if final.State != fsm.StateCancelled || final.Endorsements != 1 || final.LastSeq != 5 ||
		final.InsuranceType != insurance.TypeHomeProperty || final.PolicyNumber != "PN-001" || final.CallbackState != CallbackIdle {
		t.Errorf("final status = %+v, want cancelled with 1 endorsement, last_seq 5, idle", final)
	}
	if len(final.Events) != 5 {
		t.Fatalf("final status has %d events, want 5", len(final.Events))
	}
	if got := h.env.Now().Sub(h.start); got != 4*time.Hour {
		t.Errorf("completed after %s, want right after the cancel at 4h", got)
	}

	// The action budget: upserts only for PolicyState changes the starter
	// could not know, one timer (idle) for the whole run.
	wantUpserts := []map[string]string{
		{"PolicyState": "underwritten"},
		{"PolicyState": "insured"},
		{"PolicyState": "cancelled"},
	}
	if !reflect.DeepEqual(h.upserts, wantUpserts) {
		t.Errorf("upserts = %v, want %v", h.upserts, wantUpserts)
	}
	if len(h.timers) != 1 || h.timers[0] != DefaultIdleTimeout {
		t.Errorf("timers = %v, want one idle timer of %s", h.timers, DefaultIdleTimeout)
	}
	if len(h.records) != 0 {
		t.Errorf("RecordCallbacks ran %d times on the happy path, want 0", len(h.records))
	}
}

func TestSearchAttributesWithoutStartValues(t *testing.T) {
	// A workflow started without search attributes sets all four once.
	h := newHarness(t)
	h.report(0, lifecycle()[0])
	h.run(PolicyInput{BizID: testBizID, Settings: Settings{IdleTimeout: time.Hour}})
	want := []map[string]string{{
		"BizId": testBizID, "PolicyState": "pre_insured", "InsuranceType": "home_property", "CallbackState": "idle",
	}}
	if !reflect.DeepEqual(h.upserts, want) {
		t.Errorf("upserts = %v, want %v", h.upserts, want)
	}
}

func TestReportRejections(t *testing.T) {
	preInsure := lifecycle()[0] // 2024-01-09 10:00:00, home property, PN-001
	tests := []struct {
		name     string
		event    func() insurance.Result
		errType  string
		message  string
		problems []insurance.FieldError // for invalid_request
		illegal  *IllegalTransitionDetails
	}{
		{
			name: "illegal transition",
			event: func() insurance.Result {
				return ev(insurance.StageCancel, insurance.StatusSuccess, "2024-01-10 10:00:00")
			},
			errType: ReasonIllegalTransition,
			message: "stage cancel is not allowed in state pre_insured (allowed: underwrite)",
			illegal: &IllegalTransitionDetails{State: fsm.StatePreInsured, Stage: "cancel", AllowedStages: []string{"underwrite"}},
		},
		{
			name: "insurance type mismatch",
			event: func() insurance.Result {
				e := ev(insurance.StageUnderwrite, insurance.StatusSuccess, "2024-01-10 10:00:00")
				e.InsuranceType = insurance.TypePerformanceBond
				return e
			},
			errType: ReasonInsuranceTypeMismatch,
			message: "insurance_type performance_bond does not match the policy's home_property",
		},
		{
			name: "policy number mismatch",
			event: func() insurance.Result {
				e := ev(insurance.StageUnderwrite, insurance.StatusSuccess, "2024-01-10 10:00:00")
				e.PolicyNumber = "PN-999"
				return e
			},
			errType: ReasonPolicyNumberMismatch,
			message: `policy_number "PN-999" does not match the policy's "PN-001"`,
		},
		{
			name: "time went backwards",
			event: func() insurance.Result {
				return ev(insurance.StageUnderwrite, insurance.StatusSuccess, "2024-01-09 09:59:59")
			},
			errType: ReasonTimeWentBackwards,
			message: "time_of_occurrence 2024-01-09 09:59:59 is earlier than the last accepted event's 2024-01-09 10:00:00",
		},
		{
			name: "invalid request",
			event: func() insurance.Result {
				e := ev(insurance.StageUnderwrite, insurance.StatusSuccess, "2024/01/10 10:00")
				e.Stage = 9
				return e
			},
			errType: ReasonInvalidRequest,
			problems: []insurance.FieldError{
				{Field: "stage", Message: "9 is not a stage"},
				{Field: "time_of_occurrence", Message: "must be yyyy-MM-dd HH:mm:ss"},
			},
		},
		{
			name: "another policy's event",
			event: func() insurance.Result {
				e := ev(insurance.StageUnderwrite, insurance.StatusSuccess, "2024-01-10 10:00:00")
				e.BizID = "OTHER0001"
				return e
			},
			errType: ReasonInvalidRequest,
			message: `biz_id "OTHER0001" does not belong to this workflow (policy "24010900100YSKSSG")`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			first := h.report(0, preInsure)
			bad := h.report(time.Minute, tt.event())
			after := h.query(2 * time.Minute)
			h.run(PolicyInput{BizID: testBizID, Settings: Settings{IdleTimeout: time.Hour}})

			first.acceptance(t)
			appErr := bad.rejected(t, tt.errType)
			if tt.message != "" && appErr.Message() != tt.message {
				t.Errorf("message = %q, want %q", appErr.Message(), tt.message)
			}
			if tt.illegal != nil {
				var got IllegalTransitionDetails
				if err := appErr.Details(&got); err != nil {
					t.Fatalf("details: %v", err)
				}
				if !reflect.DeepEqual(got, *tt.illegal) {
					t.Errorf("details = %+v, want %+v", got, *tt.illegal)
				}
			}
			if tt.problems != nil {
				var got []insurance.FieldError
				if err := appErr.Details(&got); err != nil {
					t.Fatalf("details: %v", err)
				}
				if len(got) != len(tt.problems) {
					t.Fatalf("problems = %+v, want %d", got, len(tt.problems))
				}
				for i, p := range tt.problems {
					if got[i].Field != p.Field || !strings.HasPrefix(got[i].Message, p.Message) {
						t.Errorf("problem %d = %+v, want %s: %s…", i, got[i], p.Field, p.Message)
					}
				}
			}
			if got := h.deliveries(); !slices.Equal(got, []string{"1/1"}) {
				t.Errorf("deliveries = %v, want only the accepted event's", got)
			}
			if after.LastSeq != 1 || after.State != fsm.StatePreInsured || len(after.Events) != 1 {
				t.Errorf("status after the rejection = %+v, want the policy unchanged", *after)
			}
		})
	}
}

func TestIllegalFirstEvent(t *testing.T) {
	h := newHarness(t)
	r := h.report(0, ev(insurance.StageUnderwrite, insurance.StatusSuccess, "2024-01-09 10:00:00"))
	h.run(PolicyInput{BizID: testBizID})
	appErr := r.rejected(t, ReasonIllegalTransition)
	if want := "stage underwrite is not allowed in state new (allowed: pre_insure)"; appErr.Message() != want {
		t.Errorf("message = %q, want %q", appErr.Message(), want)
	}
	var d IllegalTransitionDetails
	if err := appErr.Details(&d); err != nil {
		t.Fatal(err)
	}
	if want := (IllegalTransitionDetails{State: fsm.StateNew, Stage: "underwrite", AllowedStages: []string{"pre_insure"}}); !reflect.DeepEqual(d, want) {
		t.Errorf("details = %+v, want %+v", d, want)
	}
	if len(h.calls) != 0 || len(h.upserts) != 0 {
		t.Errorf("calls=%d upserts=%d after only a rejected event, want none", len(h.calls), len(h.upserts))
	}
	if st := h.result(); st.State != fsm.StateNew || st.LastSeq != 0 {
		t.Errorf("final status = %+v, want new with nothing accepted", st)
	}
	// The run that Update-with-Start created for the refused event does not
	// idle for 30 days: it completes after the grace, on its one timer.
	if got := h.env.Now().Sub(h.start); got != DefaultEmptyRunGrace {
		t.Errorf("completed after %s, want the empty-run grace %s", got, DefaultEmptyRunGrace)
	}
	if want := []time.Duration{DefaultEmptyRunGrace}; !slices.Equal(h.timers, want) {
		t.Errorf("timers = %v, want %v", h.timers, want)
	}
}

func TestDuplicates(t *testing.T) {
	t.Run("explicit request id", func(t *testing.T) {
		h := newHarness(t)
		e := lifecycle()[0]
		e.RequestID = "req-0001"
		resent := e
		resent.InsuranceDocument = "oss:changed" // same id, so the same event as far as the policy knows
		first := h.report(0, e)
		again := h.report(time.Minute, resent)
		h.run(PolicyInput{BizID: testBizID, Settings: Settings{IdleTimeout: time.Hour}})

		orig := first.acceptance(t)
		checkDuplicate(t, again, orig)
		if got := h.deliveries(); !slices.Equal(got, []string{"1/1"}) {
			t.Errorf("deliveries = %v, want one callback", got)
		}
	})
	t.Run("derived request id", func(t *testing.T) {
		h := newHarness(t)
		events := lifecycle()
		first := h.report(0, events[0])
		second := h.report(time.Minute, events[1])
		again := h.report(2*time.Minute, events[0]) // the policy moved on: still a duplicate, not illegal
		h.run(PolicyInput{BizID: testBizID, Settings: Settings{IdleTimeout: time.Hour}})

		orig := first.acceptance(t)
		second.acceptance(t)
		if orig.RequestID != insurance.DeriveRequestID(testBizID, insurance.StagePreInsure, insurance.StatusSuccess, "2024-01-09 10:00:00") {
			t.Errorf("request id = %q, want the derived one", orig.RequestID)
		}
		checkDuplicate(t, again, orig)
		if got := h.deliveries(); !slices.Equal(got, []string{"1/1", "2/1"}) {
			t.Errorf("deliveries = %v, want one per accepted event", got)
		}
	})
}

func checkDuplicate(t *testing.T, r *reply, orig Acceptance) {
	t.Helper()
	appErr := r.rejected(t, ReasonDuplicate)
	var got Acceptance
	if err := appErr.Details(&got); err != nil {
		t.Fatalf("duplicate details: %v", err)
	}
	want := orig
	want.Duplicate = true
	if got != want {
		t.Errorf("duplicate details = %+v, want %+v", got, want)
	}
}

func TestOrderingUnderRetries(t *testing.T) {
	h := newHarness(t)
	h.startAttributes(fsm.StatePreInsured)
	h.fail(1, serviceDown, serviceDown) // attempt 1 (phase 1) and 2 (phase 2) fail, 3 succeeds
	events := lifecycle()
	h.report(0, events[0])
	h.report(500*time.Millisecond, events[1])
	h.report(1500*time.Millisecond, events[2])
	during := h.query(1200 * time.Millisecond)
	h.run(PolicyInput{BizID: testBizID, Settings: Settings{IdleTimeout: time.Hour}})

	// #3 is pipelined behind #2, so their calls may come in either order;
	// what reaches TOP may not.
	if got, want := h.deliveries(), []string{"1/1", "1/2", "1/3", "2/1", "3/1"}; !slices.Equal(sorted(got), want) {
		t.Fatalf("deliveries = %v, want %v", got, want)
	}
	if got, want := h.sent, []string{"1/1", "1/2", "1/3", "2/1", "3/1"}; !slices.Equal(got, want) {
		t.Fatalf("sent to TOP = %v, want %v", got, want)
	}
	// Phase 2 starts after the initial interval, continues the numbering and
	// lets Temporal back off between its attempts.
	c := h.calls
	slices.SortStableFunc(c, func(a, b deliverCall) int { return int(a.Seq - b.Seq) })
	if c[1].Offset != 1 || c[1].At != time.Second || c[2].At != 2*time.Second {
		t.Errorf("phase 2 calls = %+v / %+v, want offset 1 at 1s, then 2s", c[1], c[2])
	}
	for i, want := range [][2]string{{"idle", "idle"}, {"retrying", "idle"}, {"retrying", "idle"}, {"pending", "idle"}, {"idle", "idle"}} {
		if got := [2]string{c[i].Input.CallbackState, c[i].Input.CallbackStateAfter}; got != want {
			t.Errorf("call %d callback state before/after = %v, want %v", i, got, want)
		}
	}
	if during.CallbackState != CallbackRetrying || during.Events[0].Callback != EventRetrying ||
		during.Events[0].Attempts != 1 || !strings.Contains(during.Events[0].LastError, "service down") ||
		during.Events[1].Callback != EventQueued {
		t.Errorf("status while retrying = %+v, want head retrying after 1 attempt, event 2 queued", *during)
	}
	wantUpserts := []map[string]string{
		{"CallbackState": "retrying"},
		{"PolicyState": "insured", "CallbackState": "pending"},
		{"CallbackState": "idle"},
	}
	if !reflect.DeepEqual(h.upserts, wantUpserts) {
		t.Errorf("upserts = %v, want %v", h.upserts, wantUpserts)
	}
	final := h.result()
	if final.Events[0].Attempts != 3 || final.Events[0].Callback != EventDelivered {
		t.Errorf("event 1 = %+v, want delivered on attempt 3", final.Events[0])
	}
}

func TestRateLimitWaitsOutTheBan(t *testing.T) {
	h := newHarness(t)
	h.fail(1, banned(40*time.Second), banned(40*time.Second))
	h.report(0, lifecycle()[0])
	h.run(PolicyInput{BizID: testBizID, Settings: Settings{IdleTimeout: time.Hour}})

	if got, want := h.deliveries(), []string{"1/1", "1/2", "1/3"}; !slices.Equal(got, want) {
		t.Fatalf("deliveries = %v, want %v", got, want)
	}
	if gap := h.calls[1].At - h.calls[0].At; gap < 40*time.Second {
		t.Errorf("phase 2 started %s after the ban, want at least 40s", gap)
	}
	if gap := h.calls[2].At - h.calls[1].At; gap < 40*time.Second {
		t.Errorf("phase 2 retried %s after a second ban, want at least 40s (NextRetryDelay)", gap)
	}
	if final := h.result(); final.Events[0].Callback != EventDelivered {
		t.Errorf("event 1 = %+v, want delivered", final.Events[0])
	}
}

func TestRetryBudgetExhaustedParks(t *testing.T) {
	h := newHarness(t)
	always := make([]top.Outcome, 100)
	for i := range always {
		always[i] = serviceDown
	}
	h.fail(1, always...)
	h.report(0, lifecycle()[0])
	parked := h.query(10 * time.Minute)
	h.env.RegisterDelayedCallback(h.env.CancelWorkflow, 11*time.Minute)
	h.run(PolicyInput{BizID: testBizID, Settings: Settings{RetryBudget: time.Minute, RetryMaxInterval: 10 * time.Second}})

	n := len(h.calls)
	if n < 5 || h.calls[n-1].At > time.Minute {
		t.Fatalf("calls = %v, want several attempts, all within the 1m budget", h.deliveries())
	}
	head := parked.Events[0]
	if parked.CallbackState != CallbackParked || head.Callback != EventParked || head.Attempts != n ||
		!strings.HasPrefix(head.LastError, "retry budget exhausted: retryable") {
		t.Errorf("status = %+v, want parked after %d attempts with the budget named", *parked, n)
	}
	// The park, then what the cancellation at the end records.
	if len(h.records) != 2 || h.records[0].Callback == nil || h.records[0].Callback.Callback != "parked" ||
		h.records[1].Callback == nil || h.records[1].Callback.Callback != "parked" ||
		len(h.records[1].Events) != 1 || h.records[1].Events[0].Callback != "parked" {
		t.Errorf("records = %+v, want one parking record, then the cancelled run's record of its parked callback", h.records)
	}
}

func TestParkThenRetry(t *testing.T) {
	h := newHarness(t)
	h.startAttributes(fsm.StatePreInsured)
	h.fail(1, rejectedByTOP)
	events := lifecycle()
	h.report(0, events[0])
	early := h.operator(0, UpdateRetryCallback) // nothing parked yet: the first attempt is in flight
	h.report(time.Minute, events[1])
	parked := h.query(2 * time.Minute)
	retry := h.operator(3*time.Minute, UpdateRetryCallback)
	again := h.operator(4*time.Minute, UpdateRetryCallback) // nothing parked any more
	h.run(PolicyInput{BizID: testBizID, Settings: Settings{IdleTimeout: time.Hour}})

	early.rejected(t, ReasonNoParkedCallback)
	again.rejected(t, ReasonNoParkedCallback)
	if got := retry.operatorResult(t); got != (OperatorResult{Seq: 1, Callback: EventQueued}) {
		t.Errorf("retry result = %+v", got)
	}
	// Event 2 is pipelined behind the retried event 1, so their calls may
	// come in either order; what reaches TOP may not.
	if got, want := h.deliveries(), []string{"1/1", "1/2", "2/1"}; !slices.Equal(sorted(got), want) {
		t.Fatalf("deliveries = %v, want %v", got, want)
	}
	if got, want := h.sent, []string{"1/1", "1/2", "2/1"}; !slices.Equal(got, want) {
		t.Fatalf("sent to TOP = %v, want %v (event 2 waits for event 1)", got, want)
	}
	for _, c := range h.calls {
		if c.Seq == 1 && c.Attempt == 2 && c.At != 3*time.Minute {
			t.Errorf("retried attempt ran at %s, want 3m", c.At)
		}
	}

	head := parked.Events[0]
	if parked.CallbackState != CallbackParked || head.Callback != EventParked || head.Attempts != 1 ||
		head.LastClass != "rejected" || !strings.Contains(head.LastError, "POLICY_NOT_FOUND") ||
		parked.Events[1].Callback != EventQueued {
		t.Errorf("status while parked = %+v", *parked)
	}

	// Three store writes: the parking (event 1 was the only one pending),
	// event 2 accepted while parked, the operator's retry.
	if len(h.records) != 3 {
		t.Fatalf("records = %+v, want 3", h.records)
	}
	park, queued, retried := h.records[0], h.records[1], h.records[2]
	if park.Callback == nil || *park.Callback != (activities.CallbackChange{Seq: 1, Callback: "parked", PolicyCallbackState: "parked"}) ||
		len(park.Events) != 1 || park.Events[0].Callback != "parked" {
		t.Errorf("park record = %+v", park)
	}
	if queued.Callback != nil || len(queued.Events) != 1 || queued.Events[0].Seq != 2 || queued.Events[0].Callback != "queued" ||
		queued.Policy.CallbackState != "parked" || queued.Policy.LastSeq != 2 || queued.Policy.State != fsm.StateUnderwritten {
		t.Errorf("queued-while-parked record = %+v", queued)
	}
	if retried.Callback == nil || *retried.Callback != (activities.CallbackChange{Seq: 1, Callback: "queued", PolicyCallbackState: "pending"}) {
		t.Errorf("retry record = %+v", retried)
	}

	// Parking begins; the policy moves on while parked (shown before the
	// loop blocks again); parking ends with two callbacks queued; idle.
	wantUpserts := []map[string]string{
		{"CallbackState": "parked"},
		{"PolicyState": "underwritten"},
		{"CallbackState": "pending"},
		{"CallbackState": "idle"},
	}
	if !reflect.DeepEqual(h.upserts, wantUpserts) {
		t.Errorf("upserts = %v, want %v", h.upserts, wantUpserts)
	}
	final := h.result()
	if final.Events[0].Callback != EventDelivered || final.Events[0].Attempts != 2 || final.Events[1].Callback != EventDelivered {
		t.Errorf("final events = %+v", final.Events)
	}
}

func TestParkThenSkip(t *testing.T) {
	h := newHarness(t)
	h.fail(1, permanent)
	events := lifecycle()
	h.report(0, events[0])
	h.report(time.Minute, events[1])
	skip := h.operator(2*time.Minute, UpdateSkipCallback)
	h.run(PolicyInput{BizID: testBizID, Settings: Settings{IdleTimeout: time.Hour}})

	if got := skip.operatorResult(t); got != (OperatorResult{Seq: 1, Callback: EventSkipped}) {
		t.Errorf("skip result = %+v", got)
	}
	if got, want := h.deliveries(), []string{"1/1", "2/1"}; !slices.Equal(got, want) {
		t.Fatalf("deliveries = %v, want %v", got, want)
	}
	if h.calls[1].At != 2*time.Minute {
		t.Errorf("event 2 delivered at %s, want right after the skip at 2m", h.calls[1].At)
	}
	last := h.records[len(h.records)-1]
	if last.Callback == nil || *last.Callback != (activities.CallbackChange{Seq: 1, Callback: "skipped", PolicyCallbackState: "idle"}) {
		t.Errorf("skip record = %+v", last)
	}
	final := h.result()
	if final.Events[0].Callback != EventSkipped || final.Events[0].LastClass != "permanent" || final.Events[1].Callback != EventDelivered {
		t.Errorf("final events = %+v", final.Events)
	}
}

func TestSkipRefusedWhenStoreFails(t *testing.T) {
	h := newHarness(t)
	h.fail(1, rejectedByTOP)
	h.report(0, lifecycle()[0])
	h.env.RegisterDelayedCallback(func() {
		h.mu.Lock()
		h.recordFn = func(activities.RecordInput) error { return errors.New("database is locked") }
		h.mu.Unlock()
	}, time.Minute)
	skip := h.operator(2*time.Minute, UpdateSkipCallback)
	after := h.query(10 * time.Minute)
	h.env.RegisterDelayedCallback(h.env.CancelWorkflow, 11*time.Minute)
	h.run(PolicyInput{BizID: testBizID})

	var appErr *temporal.ApplicationError
	if !skip.completed || !errors.As(skip.err, &appErr) || appErr.Type() != ErrorStoreUnavailable ||
		appErr.Message() != "callback #1: the store did not record the skip; try again" {
		t.Errorf("skip = %+v, want it to fail with %s", skip, ErrorStoreUnavailable)
	}
	if after.CallbackState != CallbackParked || after.Events[0].Callback != EventParked {
		t.Errorf("status after the failed skip = %+v, want still parked", *after)
	}
}

func TestContinueAsNewCarriesFIFOAndDedupe(t *testing.T) {
	settings := Settings{ContinueAsNewAfter: 2, IdleTimeout: time.Hour}
	events := lifecycle()

	// Run 1: event 1 parks, event 2 queues behind it, and the second
	// acceptance ends the run.
	h := newHarness(t)
	h.startAttributes(fsm.StatePreInsured)
	h.fail(1, rejectedByTOP)
	a1 := h.report(0, events[0])
	a2 := h.report(time.Minute, events[1])
	h.env.ExecuteWorkflow(WorkflowName, PolicyInput{BizID: testBizID, Settings: settings})
	next := h.continuedWith()
	acc1, acc2 := a1.acceptance(t), a2.acceptance(t)

	if next.BizID != testBizID || next.Settings != settings || next.Snapshot == nil {
		t.Fatalf("next input = %+v, want the same biz_id and settings and a snapshot", next)
	}
	s := *next.Snapshot
	if s.State != fsm.StateUnderwritten || s.LastSeq != 2 || s.LastOccurredAt != "2024-01-09 11:00:00" ||
		s.InsuranceType != insurance.TypeHomeProperty || s.PolicyNumber != "PN-001" {
		t.Errorf("snapshot policy fields = %+v", s)
	}
	if !reflect.DeepEqual(s.Accepted, []Acceptance{acc1, acc2}) {
		t.Errorf("snapshot accepted = %+v, want %+v", s.Accepted, []Acceptance{acc1, acc2})
	}
	if len(s.PendingCallbacks) != 2 {
		t.Fatalf("pending callbacks = %+v, want 2", s.PendingCallbacks)
	}
	p1, p2 := s.PendingCallbacks[0], s.PendingCallbacks[1]
	if p1.Seq != 1 || p1.State != EventParked || p1.Attempts != 1 || p1.Event.BankAccountManagerName != testManagerName ||
		p1.StateAfter != fsm.StatePreInsured || p1.BudgetStartedAt.IsZero() {
		t.Errorf("pending head = %+v, want seq 1 parked after 1 attempt with its full event", p1)
	}
	if p2.Seq != 2 || p2.State != EventQueued || p2.Attempts != 0 || p2.StateAfter != fsm.StateUnderwritten {
		t.Errorf("pending second = %+v, want seq 2 queued", p2)
	}

	// Run 2 starts from that input: duplicates are still recognised, the
	// parked head still waits for an operator, and the FIFO order holds.
	h2 := newHarness(t)
	h2.env.SetContinuedExecutionRunID("run-1")
	h2.startAttributes(fsm.StateUnderwritten)
	dup := h2.report(time.Minute, events[0])
	retry := h2.operator(2*time.Minute, UpdateRetryCallback)
	a3 := h2.report(3*time.Minute, events[2])
	h2.run(next)

	checkDuplicate(t, dup, acc1)
	retry.operatorResult(t)
	if got := a3.acceptance(t); got.Seq != 3 || got.State != fsm.StateInsured {
		t.Errorf("third acceptance = %+v, want seq 3 insured", got)
	}
	if got, want := h2.sent, []string{"1/2", "2/1", "3/1"}; !slices.Equal(got, want) {
		t.Errorf("run 2 sent to TOP = %v, want %v", got, want)
	}
	// The restored parked head makes the new run record every pending event
	// once, since the old run may not have.
	if len(h2.records) < 1 || len(h2.records[0].Events) != 2 {
		t.Errorf("run 2 first record = %+v, want both pending events", h2.records)
	}
}

func TestContinueAsNewWhenSuggested(t *testing.T) {
	h := newHarness(t)
	h.env.SetContinueAsNewSuggested(true)
	r := h.report(0, lifecycle()[0])
	h.env.ExecuteWorkflow(WorkflowName, PolicyInput{BizID: testBizID})
	next := h.continuedWith()
	r.acceptance(t)
	if next.Snapshot == nil || next.Snapshot.LastSeq != 1 || len(next.Snapshot.PendingCallbacks) != 1 {
		t.Errorf("snapshot = %+v, want the accepted event pending", next.Snapshot)
	}
	if len(h.calls) != 0 {
		t.Errorf("deliveries = %v, want none before continuing (no activity in flight across runs)", h.deliveries())
	}
}

func TestRestartFromStoreSnapshot(t *testing.T) {
	events := lifecycle()
	accepted := make([]Acceptance, 3)
	states := []fsm.State{fsm.StatePreInsured, fsm.StateUnderwritten, fsm.StateInsured}
	for i := range accepted {
		e := events[i].WithRequestID()
		accepted[i] = Acceptance{BizID: testBizID, RequestID: e.RequestID, Seq: int64(i + 1), Stage: e.Stage, Status: e.Status, State: states[i]}
	}
	snapshot := &Snapshot{
		State: fsm.StateInsured, InsuranceType: insurance.TypeHomeProperty, PolicyNumber: "PN-001",
		LastSeq: 3, LastOccurredAt: events[2].TimeOfOccurrence, Accepted: accepted,
	}

	h := newHarness(t)
	h.startAttributes(fsm.StateInsured)
	dup := h.report(0, events[2])
	endorse := h.report(30*time.Second, events[3]) // within the empty-run grace
	cancel := h.report(2*time.Minute, events[4])
	h.run(PolicyInput{BizID: testBizID, Snapshot: snapshot})

	checkDuplicate(t, dup, accepted[2])
	if got := endorse.acceptance(t); got.Seq != 4 || got.State != fsm.StateInsured {
		t.Errorf("endorse acceptance = %+v", got)
	}
	if got := cancel.acceptance(t); got.Seq != 5 || got.State != fsm.StateCancelled {
		t.Errorf("cancel acceptance = %+v", got)
	}
	if got, want := h.deliveries(), []string{"4/1", "5/1"}; !slices.Equal(got, want) {
		t.Errorf("deliveries = %v, want %v", got, want)
	}
	if st := h.result(); st.State != fsm.StateCancelled || st.Endorsements != 1 || st.LastSeq != 5 {
		t.Errorf("final = %+v", st)
	}
}

func TestTerminalSnapshotCompletesAtOnce(t *testing.T) {
	h := newHarness(t)
	h.run(PolicyInput{BizID: testBizID, Snapshot: &Snapshot{
		State: fsm.StateCancelled, InsuranceType: insurance.TypeHomeProperty, LastSeq: 5, LastOccurredAt: "2024-03-01 09:00:00",
	}})
	if st := h.result(); st.State != fsm.StateCancelled || st.LastSeq != 5 {
		t.Errorf("final = %+v", st)
	}
	if h.env.Now() != h.start || len(h.calls) != 0 {
		t.Errorf("ran for %s with %d deliveries, want an immediate completion", h.env.Now().Sub(h.start), len(h.calls))
	}
}

func TestSnapshotPendingCallbacksDelivered(t *testing.T) {
	// A policy reopened from the store with an undelivered event (its run
	// was terminated mid-retry) delivers it first, with a fresh budget.
	// One parked behind it (a hand-edited store) is simply queued again.
	e1, e2 := lifecycle()[0].WithRequestID(), lifecycle()[1].WithRequestID()
	h := newHarness(t)
	h.run(PolicyInput{BizID: testBizID, Settings: Settings{IdleTimeout: time.Hour}, Snapshot: &Snapshot{
		State: fsm.StateUnderwritten, InsuranceType: insurance.TypeHomeProperty, LastSeq: 2, LastOccurredAt: e2.TimeOfOccurrence,
		Accepted: []Acceptance{
			{BizID: testBizID, RequestID: e1.RequestID, Seq: 1, Stage: e1.Stage, Status: e1.Status, State: fsm.StatePreInsured},
			{BizID: testBizID, RequestID: e2.RequestID, Seq: 2, Stage: e2.Stage, Status: e2.Status, State: fsm.StateUnderwritten},
		},
		PendingCallbacks: []Callback{
			{Seq: 1, Event: e1, State: EventRetrying, Attempts: 4, StateAfter: fsm.StatePreInsured},
			{Seq: 2, Event: e2, State: EventParked, Attempts: 1, StateAfter: fsm.StateUnderwritten},
		},
	}})
	if got := h.sent; !slices.Equal(got, []string{"1/5", "2/2"}) {
		t.Errorf("sent to TOP = %v, want attempt 5 of seq 1, then attempt 2 of seq 2", got)
	}
	if st := h.result(); len(st.Events) != 2 || st.Events[0].Callback != EventDelivered || st.Events[1].Callback != EventDelivered {
		t.Errorf("final events = %+v", st.Events)
	}
}

func TestStatusKeepsTheLast100Events(t *testing.T) {
	h := newHarness(t)
	events := lifecycle()[:3]
	start := time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)
	for i := range 117 {
		events = append(events, ev(insurance.StageEndorse, insurance.StatusSuccess, start.Add(time.Duration(i)*time.Hour).Format(insurance.TimeLayout)))
	}
	for i, e := range events {
		h.report(time.Duration(i)*time.Minute, e)
	}
	h.run(PolicyInput{BizID: testBizID, Settings: Settings{IdleTimeout: time.Hour}})

	st := h.result()
	if st.LastSeq != 120 || st.Endorsements != 117 || len(h.calls) != 120 {
		t.Fatalf("last_seq=%d endorsements=%d deliveries=%d, want 120, 117, 120", st.LastSeq, st.Endorsements, len(h.calls))
	}
	if len(st.Events) != maxStatusEvents || st.Events[0].Seq != 21 || st.Events[99].Seq != 120 {
		t.Errorf("status events = %d from seq %d, want the last 100 (21-120)", len(st.Events), st.Events[0].Seq)
	}
}

func TestIdleTimeout(t *testing.T) {
	h := newHarness(t)
	h.startAttributes(fsm.StatePreInsured)
	h.report(0, lifecycle()[0])
	h.report(10*24*time.Hour, lifecycle()[1])
	h.run(PolicyInput{BizID: testBizID})

	if got, want := h.env.Now().Sub(h.start), 40*24*time.Hour; got != want {
		t.Errorf("completed after %s, want %s (30 days after the last event)", got, want)
	}
	if st := h.result(); st.State != fsm.StateUnderwritten || st.LastSeq != 2 {
		t.Errorf("final = %+v", st)
	}
	// One timer for the whole timeout, re-armed once for the remainder.
	if want := []time.Duration{30 * 24 * time.Hour, 10 * 24 * time.Hour}; !slices.Equal(h.timers, want) {
		t.Errorf("timers = %v, want %v", h.timers, want)
	}
}

func TestInvalidInput(t *testing.T) {
	tests := []struct {
		name  string
		input PolicyInput
		want  string
	}{
		{"no biz_id", PolicyInput{}, "policy input has no biz_id"},
		{"bad settings", PolicyInput{BizID: testBizID, Settings: Settings{RetryBackoff: 0.5}}, "settings retry_backoff: 0.5 is below 1"},
		{"corrupt snapshot", PolicyInput{BizID: testBizID, Snapshot: &Snapshot{State: fsm.StateNew, Endorsements: 2}}, "snapshot: restore lifecycle"},
		{"unknown state", PolicyInput{BizID: testBizID, Snapshot: &Snapshot{State: "lost"}}, `unknown state "lost"`},
		{"delivered callback pending", PolicyInput{BizID: testBizID, Snapshot: &Snapshot{
			State: fsm.StatePreInsured, LastSeq: 1, PendingCallbacks: []Callback{{Seq: 1, State: EventDelivered, Event: insurance.Result{RequestID: "r"}}},
		}}, "pending callback seq 1 is delivered"},
		{"callback beyond last_seq", PolicyInput{BizID: testBizID, Snapshot: &Snapshot{
			State: fsm.StatePreInsured, LastSeq: 1, PendingCallbacks: []Callback{{Seq: 2, Event: insurance.Result{RequestID: "r"}}},
		}}, "pending callback seq 2 is out of order or beyond last_seq 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.run(tt.input)
			var appErr *temporal.ApplicationError
			if err := h.env.GetWorkflowError(); !errors.As(err, &appErr) || appErr.Type() != ErrorTypeInvalidInput ||
				!appErr.NonRetryable() || !strings.Contains(appErr.Message(), tt.want) {
				t.Fatalf("workflow error = %v, want a non-retryable %s containing %q", err, ErrorTypeInvalidInput, tt.want)
			}
		})
	}
}

func TestSettings(t *testing.T) {
	d := Settings{}.WithDefaults()
	want := Settings{RetryInitialInterval: time.Second, RetryBackoff: 2, RetryMaxInterval: 5 * time.Minute,
		RetryBudget: 24 * time.Hour, IdleTimeout: 30 * 24 * time.Hour, EmptyRunGrace: time.Minute, ContinueAsNewAfter: 500,
		NotifyRetryBudget: 24 * time.Hour}
	if d != want {
		t.Errorf("defaults = %+v, want %+v", d, want)
	}
	tests := []struct {
		name  string
		s     Settings
		field string
	}{
		{"zero is fine", Settings{}, ""},
		{"negative budget", Settings{RetryBudget: -time.Second}, "retry_budget"},
		{"negative grace", Settings{EmptyRunGrace: -time.Second}, "empty_run_grace"},
		{"negative count", Settings{ContinueAsNewAfter: -1}, "continue_as_new_after"},
		{"max below initial", Settings{RetryInitialInterval: time.Minute, RetryMaxInterval: time.Second}, "retry_max_interval"},
		{"max below default initial", Settings{RetryMaxInterval: time.Millisecond}, "retry_max_interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.s.Validate()
			var se *SettingsError
			switch {
			case tt.field == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.field != "" && (!errors.As(err, &se) || se.Field != tt.field):
				t.Fatalf("Validate() = %v, want a SettingsError on %s", err, tt.field)
			}
		})
	}
}

func TestCurrentDetails(t *testing.T) {
	h := newHarness(t)
	h.fail(1, serviceDown)
	events := lifecycle()
	h.report(0, events[0])
	h.report(500*time.Millisecond, events[1])
	var details string
	h.env.RegisterDelayedCallback(func() {
		v, err := h.env.QueryWorkflow("__temporal_workflow_metadata")
		if err != nil {
			t.Errorf("metadata query: %v", err)
			return
		}
		var md sdkpb.WorkflowMetadata
		if err := v.Get(&md); err != nil {
			t.Errorf("decode metadata: %v", err)
			return
		}
		details = md.GetCurrentDetails()
	}, 800*time.Millisecond)
	h.run(PolicyInput{BizID: testBizID, Settings: Settings{IdleTimeout: time.Hour}})

	for _, want := range []string{
		"**underwritten** · callbacks retrying · 2 queued",
		"| # | stage | status | callback | attempts | last error |",
		"| 1 | pre_insure | success | retrying | 1 | retryable: code 15 isp.remote-service-error: service down |",
		"| 2 | underwrite | success | queued | 0 |  |",
	} {
		if !strings.Contains(details, want) {
			t.Errorf("current details lack %q:\n%s", want, details)
		}
	}
	if strings.Contains(details, testManagerName) {
		t.Errorf("current details leak the account manager's name:\n%s", details)
	}
}

func TestMarkdownCell(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"a|b\nc", `a\|b c`},
		{strings.Repeat("x", 100), strings.Repeat("x", 80) + "…"},
	}
	for _, tt := range tests {
		if got := markdownCell(tt.in); got != tt.want {
			t.Errorf("markdownCell(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestPolicySearchAttributes(t *testing.T) {
	sa := PolicySearchAttributes(testBizID, fsm.StateUnderwritten, insurance.TypePerformanceBond, CallbackParked)
	want := map[string]string{"BizId": testBizID, "PolicyState": "underwritten", "InsuranceType": "performance_bond", "CallbackState": "parked"}
	if sa.Size() != len(want) {
		t.Errorf("%d search attributes, want %d", sa.Size(), len(want))
	}
	for i, key := range searchAttributeKeys() {
		if key.GetName() != SearchAttributeNames()[i] {
			t.Errorf("key %d = %s, want %s", i, key.GetName(), SearchAttributeNames()[i])
		}
		if got, _ := sa.GetKeyword(key); got != want[key.GetName()] {
			t.Errorf("%s = %q, want %q", key.GetName(), got, want[key.GetName()])
		}
	}
	if got := WorkflowID(testBizID); got != "policy-24010900100YSKSSG" {
		t.Errorf("WorkflowID = %q", got)
	}
}

// A skip that empties the FIFO must still clear the parked search attribute
// (operators and the parked-callbacks gauge read it).
func TestSkipOfLastCallbackClearsParked(t *testing.T) {
	h := newHarness(t)
	h.startAttributes(fsm.StatePreInsured)
	h.fail(1, permanent)
	h.report(0, lifecycle()[0])
	h.operator(time.Minute, UpdateSkipCallback)
	h.run(PolicyInput{BizID: testBizID, Settings: Settings{IdleTimeout: time.Hour}})

	var states []string
	for i, u := range h.upserts {
		if cs, ok := u["CallbackState"]; ok {
			states = append(states, fmt.Sprintf("%s@%s", cs, h.upsertAt[i]))
		}
	}
	// idle right at the skip, not only when the run completes an hour later.
	if want := []string{"parked@0s", "idle@1m0s"}; !slices.Equal(states, want) {
		t.Fatalf("CallbackState upserts = %v, want %v", states, want)
	}
}

// TestSkipDuringParkRecordIsNotOverwritten is issue 8's second race: park()
// marks the head parked before its RecordCallbacks write has succeeded, so a
// skip arriving while that write is being retried used to be recorded first
// and then overwritten by the park's late retry ("parked" after "skipped"),
// and the next run resurrected the skipped callback. The skip now waits for
// the park's write. This test failed before the fix: the records ended
// with the park.
func TestSkipDuringParkRecordIsNotOverwritten(t *testing.T) {
	h := newHarness(t)
	h.fail(1, rejectedByTOP)
	failedOnce := false
	h.recordFn = func(in activities.RecordInput) error {
		if in.Callback != nil && in.Callback.Callback == string(EventParked) && !failedOnce {
			failedOnce = true
			return errors.New("database is locked")
		}
		return nil
	}
	h.report(0, lifecycle()[0])
	// The park's first write fails at once; its retry comes a second later.
	skip := h.operator(300*time.Millisecond, UpdateSkipCallback)
	after := h.query(time.Minute)
	h.env.RegisterDelayedCallback(h.env.CancelWorkflow, 2*time.Minute)
	h.run(PolicyInput{BizID: testBizID})

	if res := skip.operatorResult(t); res.Seq != 1 || res.Callback != EventSkipped {
		t.Fatalf("skip = %+v, want seq 1 skipped", res)
	}
	var changes []string
	for _, r := range h.records {
		if r.Callback != nil {
			changes = append(changes, fmt.Sprintf("%d:%s", r.Callback.Seq, r.Callback.Callback))
		}
	}
	want := []string{"1:parked", "1:parked", "1:skipped"} // the failed write, its retry, then the skip
	if !slices.Equal(changes, want) {
		t.Fatalf("callback changes recorded = %v, want %v: a skip must be recorded after the park's write", changes, want)
	}
	if after.CallbackState != CallbackIdle || after.Events[0].Callback != EventSkipped {
		t.Errorf("status after the skip = %+v, want seq 1 skipped and nothing pending", *after)
	}
}

// TestOperatorActionKeySurvivesALostUpdate is the race chaos found when a
// Temporal restart met an operator's retry: the retry's handler wrote its
// audit row (the RecordCallbacks local activity), then its workflow task
// was lost with the server's in-memory Update, so the head stayed parked
// and the caller's re-send, a new Update with a new ID, applied the retry
// and wrote a second row. The store keeps one row per (seq, action, key),
// so the key must be the same for every handler run that acts on the same
// park of the head, whichever Update carries it; a later park of the same
// seq (after more attempts) is another action with another key. Here the
// first handler run's write "lands" but the handler fails (as its lost task
// would leave the workflow: nothing applied), and the re-send applies.
// This test failed before the fix: the two records had the Updates' IDs.
func TestOperatorActionKeySurvivesALostUpdate(t *testing.T) {
	h := newHarness(t)
	h.fail(1, rejectedByTOP, rejectedByTOP)
	h.report(0, lifecycle()[0])
	lost := true
	h.recordFn = func(in activities.RecordInput) error {
		if in.Operator != nil && lost {
			// Not retried: the handler ends without applying anything.
			lost = false
			return temporal.NewNonRetryableApplicationError("workflow task lost after the write", activities.ErrorTypeInvalid, nil)
		}
		return nil
	}
	first := h.operator(time.Minute, UpdateRetryCallback)
	resent := h.operator(2*time.Minute, UpdateRetryCallback)
	again := h.operator(3*time.Minute, UpdateRetryCallback) // after the retry parked it again
	h.env.RegisterDelayedCallback(h.env.CancelWorkflow, 10*time.Minute)
	h.run(PolicyInput{BizID: testBizID})

	if !first.completed || first.err == nil || !resent.completed || resent.err != nil || !again.completed || again.err != nil {
		t.Fatalf("first %+v, re-sent %+v, again %+v (%v): want the first to fail and the others to apply", first, resent, again, again.rejection)
	}
	var keys []string
	for _, r := range h.records {
		if r.Operator != nil {
			keys = append(keys, r.Operator.Key)
		}
	}
	if len(keys) != 3 || keys[0] == "" || keys[0] != keys[1] || keys[2] == keys[1] {
		t.Fatalf("operator record keys = %q, want the lost one's and the re-send's equal, the later park's different", keys)
	}
}

// A run reloaded from a store whose attempts count lags the workflow's
// (an attempt that failed inside its first store write) sees the same
// attempts at the next park as at the one already acted on; the applied
// action it loaded with the snapshot still gives the new action its own key.
func TestOperatorActionKeyCountsAppliedActions(t *testing.T) {
	head := Callback{Seq: 1, Attempts: 3, State: EventParked}
	fresh := &policy{}
	reloaded := &policy{operatorActions: []OperatorAction{{Seq: 1, Action: ActionRetry, Result: EventQueued}, {Seq: 2, Action: ActionSkip}}}
	if a, b := fresh.operatorActionKey(head, ""), reloaded.operatorActionKey(head, ""); a == b {
		t.Fatalf("keys %q and %q: an action after an applied one must not share its key", a, b)
	}
	if got := reloaded.operatorActionKey(head, ""); got != "park-after-attempt-3-action-2" {
		t.Fatalf("key = %q, want park-after-attempt-3-action-2 (one earlier action on seq 1)", got)
	}
}

// TestOperatorRequestIDRecognisesAResend is the race chaos found next: a
// retry sent twice at once, whose first answer was lost (the ingress
// killed), is re-sent by the caller after the retried callback has parked
// again. By seq alone the re-send is a new retry of the new park, and was
// applied a second time (two audit rows, one more TOP attempt). With the
// caller's request id it answers the first one's outcome, Repeated, and
// changes nothing; another request id retries the new park.
func TestOperatorRequestIDRecognisesAResend(t *testing.T) {
	h := newHarness(t)
	h.fail(1, rejectedByTOP, rejectedByTOP)
	h.report(0, lifecycle()[0])
	send := func(at time.Duration, key string) *reply {
		r := &reply{}
		h.env.RegisterDelayedCallback(func() {
			h.env.UpdateWorkflow(UpdateRetryCallback, "", r.callbacks(), OperatorRequest{Seq: 1, Reason: "checked with TOP support", RequestID: key})
		}, at)
		return r
	}
	first := send(time.Minute, "op-1")
	resent := send(2*time.Minute, "op-1") // after the retry parked again
	next := send(3*time.Minute, "op-2")
	h.env.RegisterDelayedCallback(h.env.CancelWorkflow, 10*time.Minute)
	h.run(PolicyInput{BizID: testBizID})

	if got := first.operatorResult(t); got != (OperatorResult{Seq: 1, Callback: EventQueued}) {
		t.Fatalf("first = %+v", got)
	}
	var appErr *temporal.ApplicationError
	var res OperatorResult
	if resent.rejection == nil || !errors.As(resent.rejection, &appErr) || appErr.Type() != ReasonOperatorRepeated ||
		appErr.Details(&res) != nil || res != (OperatorResult{Seq: 1, Callback: EventQueued, Repeated: true}) {
		t.Fatalf("re-send = %+v (%v), want it refused as repeated with the first outcome", resent, resent.rejection)
	}
	if got := next.operatorResult(t); got != (OperatorResult{Seq: 1, Callback: EventQueued}) {
		t.Fatalf("a new request = %+v, want it applied", got)
	}
	var keys []string
	for _, r := range h.records {
		if r.Operator != nil {
			keys = append(keys, r.Operator.Key)
		}
	}
	if want := []string{OperatorKeyPrefix + "op-1", OperatorKeyPrefix + "op-2"}; !slices.Equal(keys, want) {
		t.Fatalf("operator records = %q, want %q", keys, want)
	}
	if got, want := h.deliveries(), []string{"1/1", "1/2", "1/3"}; !slices.Equal(got, want) {
		t.Fatalf("deliveries = %v, want %v: the re-send must not retry", got, want)
	}
}
