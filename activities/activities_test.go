package activities

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/store"
	"github.com/insuranceflow/insuranceflow/top"
)

const (
	bizID       = "24010900100YSKSSG"
	managerName = "王小明" // personal data: must never reach a log line
)

// fakeTOP answers every call with the next scripted outcome and remembers
// what it was sent.
type fakeTOP struct {
	mu       sync.Mutex
	outcomes []top.Outcome
	sent     []insurance.Result
}

func (f *fakeTOP) Callback(_ context.Context, r insurance.Result) top.Outcome {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, r)
	out := f.outcomes[0]
	if len(f.outcomes) > 1 {
		f.outcomes = f.outcomes[1:]
	}
	return out
}

func (f *fakeTOP) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sent)
}

type fixture struct {
	t     *testing.T
	store *store.Store
	top   *fakeTOP
	logs  *bytes.Buffer
	acts  *Activities
	env   *testsuite.TestActivityEnvironment
}

func newFixture(t *testing.T, outcomes ...top.Outcome) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	logs := &bytes.Buffer{}
	clock := &tickingClock{at: time.Date(2024, 1, 9, 2, 0, 0, 0, time.UTC)}
	f := &fixture{t: t, store: st, top: &fakeTOP{outcomes: outcomes}, logs: logs}
	f.acts = &Activities{
		TOP:    f.top,
		Store:  st,
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Now:    clock.now,
	}
	var suite testsuite.WorkflowTestSuite
	f.env = suite.NewTestActivityEnvironment()
	f.env.RegisterActivity(f.acts)
	t.Cleanup(func() {
		if strings.Contains(logs.String(), managerName) {
			t.Errorf("logs contain the account manager's name:\n%s", logs)
		}
	})
	return f
}

// tickingClock moves 250ms per reading, so every timestamp the activities
// write is distinct. Pipelined and leased attempts read it from several
// goroutines at once, hence the lock.
type tickingClock struct {
	mu sync.Mutex
	at time.Time
}

func (c *tickingClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at = c.at.Add(250 * time.Millisecond)
	return c.at
}

// event is the test policy's event for stage, an hour apart per stage.
func event(stage insurance.Stage) insurance.Result {
	return insurance.Result{
		BizID:                  bizID,
		PolicyNumber:           "PN-001",
		Stage:                  stage,
		Status:                 insurance.StatusSuccess,
		TimeOfOccurrence:       time.Date(2024, 1, 9, 9+int(stage), 0, 0, 0, time.UTC).Format(insurance.TimeLayout),
		BankAccountManagerName: managerName,
		InsuranceType:          insurance.TypeHomeProperty,
	}.WithRequestID()
}

// input is the first event's callback after offset earlier attempts.
func input(offset int) DeliverInput {
	return DeliverInput{
		BizID:         bizID,
		Seq:           1,
		Event:         event(insurance.StagePreInsure),
		AcceptedAt:    time.Date(2024, 1, 9, 2, 0, 0, 0, time.UTC),
		StateAfter:    fsm.StatePreInsured,
		InsuranceType: insurance.TypeHomeProperty,
		PolicyNumber:  "PN-001",
		AttemptOffset: offset,
	}
}

func (f *fixture) deliver(in DeliverInput) (DeliverResult, error) {
	f.t.Helper()
	v, err := f.env.ExecuteActivity(f.acts.DeliverCallback, in)
	if err != nil {
		return DeliverResult{}, err
	}
	var res DeliverResult
	if err := v.Get(&res); err != nil {
		f.t.Fatalf("decode result: %v", err)
	}
	return res, nil
}

func (f *fixture) events() []store.Event {
	f.t.Helper()
	events, err := f.store.Events(context.Background(), bizID)
	if err != nil {
		f.t.Fatalf("read events: %v", err)
	}
	return events
}

func (f *fixture) attempts() []store.Attempt {
	f.t.Helper()
	attempts, err := f.store.Attempts(context.Background(), bizID)
	if err != nil {
		f.t.Fatalf("read attempts: %v", err)
	}
	return attempts
}

func (f *fixture) policy() store.Policy {
	f.t.Helper()
	p, err := f.store.Policy(context.Background(), bizID)
	if err != nil {
		f.t.Fatalf("read policy: %v", err)
	}
	return p
}

func TestErrorTypesAreTOPClassNames(t *testing.T) {
	for class, errType := range map[top.Class]string{
		top.ClassRejected:    ErrorTypeRejected,
		top.ClassPermanent:   ErrorTypePermanent,
		top.ClassRetryable:   ErrorTypeRetryable,
		top.ClassRateLimited: ErrorTypeRateLimited,
	} {
		if class.String() != errType {
			t.Errorf("error type %q differs from class name %q", errType, class)
		}
	}
}

func TestDeliverCallbackOutcomes(t *testing.T) {
	tests := []struct {
		name         string
		outcome      top.Outcome
		errType      string // "" for delivered
		nonRetryable bool
		retryDelay   time.Duration
		summary      string
		callback     string // the event's callback state in the store afterwards
		lastError    string
	}{
		{
			name:     "delivered",
			outcome:  top.Outcome{Class: top.ClassDelivered, HTTPStatus: 200, RequestID: "top-req-1", Duration: 120 * time.Millisecond},
			callback: "delivered",
		},
		{
			name:         "rejected",
			outcome:      top.Outcome{Class: top.ClassRejected, HTTPStatus: 200, FailCode: "POLICY_NOT_FOUND", FailMessage: "no such policy", RequestID: "top-req-2"},
			errType:      ErrorTypeRejected,
			nonRetryable: true,
			summary:      "rejected: POLICY_NOT_FOUND: no such policy",
			callback:     "retrying",
			lastError:    "no such policy",
		},
		{
			name:         "permanent",
			outcome:      top.Outcome{Class: top.ClassPermanent, HTTPStatus: 200, Code: 25, Msg: "Invalid signature", SubCode: "isv.invalid-signature"},
			errType:      ErrorTypePermanent,
			nonRetryable: true,
			summary:      "permanent: code 25 isv.invalid-signature: Invalid signature",
			callback:     "retrying",
			lastError:    "Invalid signature",
		},
		{
			name:      "retryable",
			outcome:   top.Outcome{Class: top.ClassRetryable, Detail: "connection refused"},
			errType:   ErrorTypeRetryable,
			summary:   "retryable: connection refused",
			callback:  "retrying",
			lastError: "connection refused",
		},
		{
			name: "rate limited",
			outcome: top.Outcome{Class: top.ClassRateLimited, HTTPStatus: 200, Code: 7, Msg: "App Call Limited",
				SubMsg: "This ban will last for 40 more seconds", RetryAfter: 40 * time.Second},
			errType:    ErrorTypeRateLimited,
			retryDelay: 40 * time.Second,
			summary:    "rate_limited: code 7: This ban will last for 40 more seconds (retry after 40s)",
			callback:   "retrying",
			lastError:  "This ban will last for 40 more seconds",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.outcome)
			res, err := f.deliver(input(2)) // two earlier attempts: this is attempt 3

			if got := f.top.sent; len(got) != 1 || got[0] != input(0).Event {
				t.Fatalf("TOP was sent %v, want the event once", got)
			}
			if tt.errType == "" {
				if err != nil {
					t.Fatalf("DeliverCallback: %v", err)
				}
				if res.Attempt != 3 || res.TOPRequestID != "top-req-1" || res.Duration != 120*time.Millisecond || res.DeliveredAt.IsZero() {
					t.Errorf("result = %+v, want attempt 3, TOP request id, duration", res)
				}
			} else {
				var appErr *temporal.ApplicationError
				if !errors.As(err, &appErr) {
					t.Fatalf("error = %v, want an ApplicationError", err)
				}
				if appErr.Type() != tt.errType || appErr.NonRetryable() != tt.nonRetryable || appErr.NextRetryDelay() != tt.retryDelay {
					t.Errorf("error type=%q nonRetryable=%v nextRetryDelay=%s, want %q %v %s",
						appErr.Type(), appErr.NonRetryable(), appErr.NextRetryDelay(), tt.errType, tt.nonRetryable, tt.retryDelay)
				}
				if appErr.Message() != tt.summary {
					t.Errorf("message = %q, want %q", appErr.Message(), tt.summary)
				}
				var d DeliverFailure
				if err := appErr.Details(&d); err != nil {
					t.Fatalf("details: %v", err)
				}
				want := DeliverFailure{Attempt: 3, Class: tt.outcome.Class.String(), Summary: tt.summary, HTTPStatus: tt.outcome.HTTPStatus,
					Code: tt.outcome.Code, SubCode: tt.outcome.SubCode, FailCode: tt.outcome.FailCode, RetryAfter: tt.outcome.RetryAfter,
					FailMessage: tt.outcome.FailMessage, TOPRequestID: tt.outcome.RequestID}
				if d != want {
					t.Errorf("details = %+v, want %+v", d, want)
				}
			}

			events := f.events()
			if len(events) != 1 {
				t.Fatalf("events = %+v, want 1", events)
			}
			e := events[0]
			if e.Seq != 1 || e.RequestID != input(0).Event.RequestID || e.StateAfter != "pre_insured" || e.Callback != tt.callback ||
				e.Attempts != 3 || e.LastClass != tt.outcome.Class.String() || e.LastError != tt.lastError {
				t.Errorf("event row = %+v, want callback %s after attempt 3", e, tt.callback)
			}
			if (e.DeliveredAt != nil) != (tt.errType == "") {
				t.Errorf("delivered_at = %v for %s", e.DeliveredAt, tt.name)
			}
			if want, _ := input(0).Event.APIJSON(); e.Payload != want {
				t.Errorf("payload = %s, want the event's API JSON", e.Payload)
			}
			// Attempts 1 and 2 have no row of their own: attempt 3 records
			// them as lost.
			attempts := f.attempts()
			if len(attempts) != 3 {
				t.Fatalf("attempts = %+v, want 3", attempts)
			}
			for _, lost := range attempts[:2] {
				if lost.Class != store.ClassLost || lost.Detail != store.LostAttemptDetail {
					t.Errorf("attempt %d = %+v, want lost", lost.Attempt, lost)
				}
			}
			a := attempts[2]
			o := tt.outcome
			if a.Attempt != 3 || a.Class != o.Class.String() || a.HTTPStatus != o.HTTPStatus || a.Code != o.Code || a.SubCode != o.SubCode ||
				a.SubMsg != o.SubMsg || a.FailCode != o.FailCode || a.TOPRequestID != o.RequestID || a.Detail != o.Detail || a.Duration <= 0 {
				t.Errorf("attempt row = %+v, want outcome %+v as attempt 3", a, o)
			}
			if p := f.policy(); p.State != "pre_insured" || p.LastSeq != 1 || p.InsuranceType != 1 || p.PolicyNumber != "PN-001" {
				t.Errorf("policy row = %+v", p)
			}

			line := f.logs.String()
			for _, want := range []string{"msg=\"callback attempt\"", "biz_id=" + bizID, "seq=1", "attempt=3", "class=" + o.Class.String(), "duration="} {
				if !strings.Contains(line, want) {
					t.Errorf("log %q lacks %q", line, want)
				}
			}
			if n := strings.Count(line, "callback attempt"); n != 1 {
				t.Errorf("%d log lines, want 1 per attempt", n)
			}
		})
	}
}

// TestDeliverCallbackNeverReusesAnAttemptNumber is issue 8's fifth risk: an
// attempt whose number is already recorded (a phase-2 run timed out before
// heartbeating its number, and an operator's retry started counting from
// the workflow's lower count) used to write its outcome over the earlier
// row's, so the audit trail lost an attempt. It now takes the next free
// number. This test failed before the fix: two rows, attempt 1 recorded once.
func TestDeliverCallbackNeverReusesAnAttemptNumber(t *testing.T) {
	retryable := top.Outcome{Class: top.ClassRetryable, Code: 15, SubCode: "isp.remote-service-error", SubMsg: "down"}
	f := newFixture(t, retryable, retryable, top.Outcome{Class: top.ClassDelivered, RequestID: "top-ok"})

	// Attempt number 1 asked for twice, then number 2, which is taken by then.
	for range 2 {
		if _, err := f.deliver(input(0)); err == nil {
			t.Fatal("attempt succeeded, want a retryable failure")
		}
	}
	res, err := f.deliver(input(1))
	if err != nil {
		t.Fatalf("third attempt: %v", err)
	}
	if res.Attempt != 3 || res.TOPRequestID != "top-ok" {
		t.Errorf("result = %+v, want attempt 3", res)
	}
	if n := f.top.calls(); n != 3 {
		t.Errorf("TOP called %d times, want 3", n)
	}
	if events := f.events(); len(events) != 1 || events[0].Callback != "delivered" || events[0].Attempts != 3 {
		t.Errorf("events = %+v, want one delivered after 3 attempts", events)
	}
	attempts := f.attempts()
	if len(attempts) != 3 || attempts[0].Class != "retryable" || attempts[1].Attempt != 2 || attempts[1].Class != "retryable" ||
		attempts[2].Attempt != 3 || attempts[2].Class != "delivered" {
		t.Errorf("attempts = %+v, want 1 and 2 retryable, 3 delivered", attempts)
	}
}

// TestDeliverCallbackAlreadyDeliveredIsNotResent is issue 8's fourth risk:
// an attempt whose delivery TOP accepted but whose completion never reached
// the workflow (its worker died, or the answer was lost) was retried and
// called TOP again. The retry now finds the delivery in the store and
// answers with it. This test failed before the fix: TOP was called twice.
func TestDeliverCallbackAlreadyDeliveredIsNotResent(t *testing.T) {
	f := newFixture(t, top.Outcome{Class: top.ClassDelivered, RequestID: "top-first"})
	first, err := f.deliver(input(0))
	if err != nil {
		t.Fatalf("first attempt: %v", err)
	}
	again, err := f.deliver(input(1))
	if err != nil {
		t.Fatalf("retried attempt: %v", err)
	}
	if n := f.top.calls(); n != 1 {
		t.Fatalf("TOP called %d times, want 1", n)
	}
	if !again.AlreadyDelivered || again.Attempt != first.Attempt || again.TOPRequestID != "top-first" ||
		!again.DeliveredAt.Equal(first.DeliveredAt) {
		t.Fatalf("retried attempt = %+v, want the first delivery %+v, marked already delivered", again, first)
	}
	if attempts := f.attempts(); len(attempts) != 1 {
		t.Errorf("attempts = %+v, want only the delivered one", attempts)
	}
}

func TestDeliverCallbackPolicyCallbackState(t *testing.T) {
	retryable := top.Outcome{Class: top.ClassRetryable, Detail: "timeout"}
	delivered := top.Outcome{Class: top.ClassDelivered}
	tests := []struct {
		name          string
		outcome       top.Outcome
		offset        int
		before, after string
		want          string
	}{
		{"first attempt, nothing queued", delivered, 0, "idle", "idle", "idle"},
		{"first attempt, more queued", delivered, 0, "pending", "pending", "pending"},
		{"queue drains", delivered, 0, "pending", "idle", "idle"},
		{"failed attempt keeps the state", retryable, 0, "pending", "idle", "pending"},
		{"delivered after retrying", delivered, 1, "retrying", "idle", "idle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.outcome)
			in := input(tt.offset)
			in.CallbackState, in.CallbackStateAfter = tt.before, tt.after
			_, _ = f.deliver(in)
			if got := f.policy().CallbackState; got != tt.want {
				t.Errorf("policy callback_state = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDeliverCallbackStoreFailures(t *testing.T) {
	t.Run("store unavailable is retryable", func(t *testing.T) {
		f := newFixture(t, top.Outcome{Class: top.ClassDelivered})
		if err := f.store.Close(); err != nil {
			t.Fatal(err)
		}
		_, err := f.deliver(input(0))
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || appErr.Type() != ErrorTypeStore || appErr.NonRetryable() {
			t.Fatalf("error = %v, want a retryable %s error", err, ErrorTypeStore)
		}
		var d DeliverFailure
		if err := appErr.Details(&d); err != nil || d.Attempt != 1 || d.Class != ErrorTypeStore ||
			!strings.HasPrefix(d.Summary, "record event: ") {
			t.Errorf("details = %+v (%v), want attempt 1 of class store", d, err)
		}
		if n := f.top.calls(); n != 0 {
			t.Errorf("TOP called %d times, want 0: nothing is sent before the event is recorded", n)
		}
	})
	t.Run("conflicting record is non-retryable", func(t *testing.T) {
		f := newFixture(t, top.Outcome{Class: top.ClassDelivered})
		if _, err := f.deliver(input(0)); err != nil {
			t.Fatal(err)
		}
		other := input(0)
		other.Event = event(insurance.StageUnderwrite) // another request id under seq 1
		_, err := f.deliver(other)
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || appErr.Type() != ErrorTypeInvalid || !appErr.NonRetryable() ||
			!strings.Contains(appErr.Message(), "seq 1 already holds request_id") {
			t.Fatalf("error = %v, want a non-retryable %s error naming the clash", err, ErrorTypeInvalid)
		}
		if n := f.top.calls(); n != 1 {
			t.Errorf("TOP called %d times, want 1", n)
		}
	})
}

func TestRecordCallbacks(t *testing.T) {
	f := newFixture(t, top.Outcome{Class: top.ClassDelivered})
	first, second := event(insurance.StagePreInsure), event(insurance.StageUnderwrite)
	accepted := time.Date(2024, 1, 9, 2, 0, 0, 0, time.UTC)
	park := RecordInput{
		Policy: PolicyRecord{BizID: bizID, State: fsm.StateUnderwritten, InsuranceType: insurance.TypeHomeProperty,
			PolicyNumber: "PN-001", LastSeq: 2, LastOccurredAt: second.TimeOfOccurrence, CallbackState: "parked"},
		Events: []EventRecord{
			{Seq: 1, Event: first, AcceptedAt: accepted, StateAfter: fsm.StatePreInsured, Callback: "parked"},
			{Seq: 2, Event: second, AcceptedAt: accepted, StateAfter: fsm.StateUnderwritten, Callback: "queued"},
		},
		Callback: &CallbackChange{Seq: 1, Callback: "parked", PolicyCallbackState: "parked"},
	}
	run := func(in RecordInput) {
		t.Helper()
		if _, err := f.env.ExecuteLocalActivity(f.acts.RecordCallbacks, in); err != nil {
			t.Fatalf("RecordCallbacks: %v", err)
		}
	}
	run(park)
	run(park) // a retried local activity changes nothing

	events := f.events()
	if len(events) != 2 || events[0].Callback != "parked" || events[1].Callback != "queued" || events[1].StateAfter != "underwritten" {
		t.Fatalf("events = %+v, want seq 1 parked, seq 2 queued", events)
	}
	if p := f.policy(); p.State != "underwritten" || p.LastSeq != 2 || p.CallbackState != "parked" || p.PolicyNumber != "PN-001" {
		t.Errorf("policy = %+v, want underwritten, last seq 2, parked", p)
	}

	skip := RecordInput{Policy: park.Policy, Events: park.Events[:1],
		Callback: &CallbackChange{Seq: 1, Callback: "skipped", PolicyCallbackState: "idle"}}
	skip.Policy.CallbackState = "idle"
	run(skip)
	if events := f.events(); events[0].Callback != "skipped" || events[1].Callback != "queued" {
		t.Errorf("events after skip = %+v, want seq 1 skipped", events)
	}
	if p := f.policy(); p.CallbackState != "idle" {
		t.Errorf("policy callback state = %q, want idle", p.CallbackState)
	}

	bad := RecordInput{Policy: park.Policy, Callback: &CallbackChange{Seq: 1, Callback: "lost"}}
	if _, err := f.env.ExecuteLocalActivity(f.acts.RecordCallbacks, bad); err == nil || !strings.Contains(err.Error(), `"lost" is not one of`) {
		t.Errorf("RecordCallbacks with an unknown callback state: %v, want the store's refusal", err)
	}
}

// callTOP is a Caller whose answer is a function, so a test can act while
// the call is in flight.
type callTOP func(ctx context.Context, r insurance.Result) top.Outcome

func (c callTOP) Callback(ctx context.Context, r insurance.Result) top.Outcome { return c(ctx, r) }

// heartbeats records every heartbeat the activity makes, through the SDK's
// own interceptor chain (the test environment's listener only sees those it
// would send to a server, after throttling).
type heartbeats struct {
	interceptor.WorkerInterceptorBase
	mu      sync.Mutex
	details [][]any // one entry per heartbeat
}

func (h *heartbeats) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	in := &heartbeatInbound{h: h}
	in.Next = next
	return in
}

func (h *heartbeats) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.details)
}

func (h *heartbeats) all() [][]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.details)
}

type heartbeatInbound struct {
	interceptor.ActivityInboundInterceptorBase
	h *heartbeats
}

func (i *heartbeatInbound) Init(outbound interceptor.ActivityOutboundInterceptor) error {
	out := &heartbeatOutbound{h: i.h}
	out.Next = outbound
	return i.Next.Init(out)
}

type heartbeatOutbound struct {
	interceptor.ActivityOutboundInterceptorBase
	h *heartbeats
}

func (o *heartbeatOutbound) RecordHeartbeat(ctx context.Context, details ...any) {
	o.h.mu.Lock()
	o.h.details = append(o.h.details, details)
	o.h.mu.Unlock()
	o.Next.RecordHeartbeat(ctx, details...)
}

// withHeartbeats makes the fixture's activity heartbeat every 2 ms and
// records its heartbeats.
func (f *fixture) withHeartbeats(opts worker.Options) *heartbeats {
	h := &heartbeats{}
	opts.Interceptors = append(opts.Interceptors, h)
	f.env.SetWorkerOptions(opts)
	f.acts.HeartbeatEvery = 2 * time.Millisecond
	return h
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestDeliverCallbackRecordsTheAttemptBeforeCalling checks that an attempt
// has its row while TOP is being called, so that a worker killed during the
// call leaves the attempt recorded as started, and that the next attempt
// accounts for the numbers in between that have no row.
func TestDeliverCallbackRecordsTheAttemptBeforeCalling(t *testing.T) {
	f := newFixture(t)
	killed := errors.New("worker killed mid-call")
	var during []store.Attempt
	var duringEvent store.Event
	f.acts.TOP = callTOP(func(context.Context, insurance.Result) top.Outcome {
		during, duringEvent = f.attempts(), f.events()[0]
		// Nothing after the call runs, as when the worker process dies.
		panic(killed)
	})
	if _, err := f.deliver(input(0)); err == nil || !strings.Contains(err.Error(), killed.Error()) {
		t.Fatalf("DeliverCallback = %v, want the panic", err)
	}
	if len(during) != 1 || during[0].Attempt != 1 || during[0].Class != store.ClassStarted || during[0].StartedAt.IsZero() {
		t.Fatalf("attempts during the call = %+v, want attempt 1 started", during)
	}
	if duringEvent.Attempts != 1 {
		t.Errorf("event during the call = %+v, want attempt 1 counted", duringEvent)
	}
	startedAt := during[0].StartedAt

	// Attempt 2 was started by Temporal but no worker ran it; attempt 3
	// delivers.
	f.acts.TOP = &fakeTOP{outcomes: []top.Outcome{{Class: top.ClassDelivered, RequestID: "top-ok", Duration: 80 * time.Millisecond}}}
	in := input(0)
	in.AttemptOffset = 2
	res, err := f.deliver(in)
	if err != nil || res.Attempt != 3 {
		t.Fatalf("attempt 3 = %+v, %v; want delivered", res, err)
	}
	attempts := f.attempts()
	if len(attempts) != 3 {
		t.Fatalf("attempts = %+v, want 3 rows", attempts)
	}
	want := []struct {
		class, detail, topRequestID string
	}{
		{store.ClassStarted, "", ""},
		{store.ClassLost, store.LostAttemptDetail, ""},
		{store.ClassDelivered, "", "top-ok"},
	}
	for i, w := range want {
		a := attempts[i]
		if a.Attempt != i+1 || a.Class != w.class || a.Detail != w.detail || a.TOPRequestID != w.topRequestID {
			t.Errorf("attempt row %d = %+v, want class %s", i+1, a, w.class)
		}
	}
	if !attempts[0].StartedAt.Equal(startedAt) || attempts[0].Duration != 0 {
		t.Errorf("started row = %+v, want it untouched since the call began at %v", attempts[0], startedAt)
	}
	if attempts[2].Duration != 80*time.Millisecond || !attempts[2].StartedAt.After(startedAt) {
		t.Errorf("delivered row = %+v, want the call's start and duration", attempts[2])
	}
	if e := f.events()[0]; e.Attempts != len(attempts) || e.Callback != "delivered" || e.LastClass != store.ClassDelivered {
		t.Errorf("event = %+v, want delivered with its attempts count equal to its %d rows", e, len(attempts))
	}
}

// TestDeliverCallbackOutcomeReplacesStartedRow checks that, once TOP
// answers, the attempt's row holds the outcome and nothing of the started
// marker is left, for every outcome class the TOP client has (which also
// keeps the store's list of classes in step with top's).
func TestDeliverCallbackOutcomeReplacesStartedRow(t *testing.T) {
	for _, class := range top.Classes() {
		t.Run(class.String(), func(t *testing.T) {
			out := top.Outcome{Class: class, HTTPStatus: 200, Code: 15, SubCode: "isp.x", FailCode: "F", RequestID: "top-r", Duration: time.Second}
			f := newFixture(t, out)
			_, _ = f.deliver(input(0))
			attempts := f.attempts()
			if len(attempts) != 1 {
				t.Fatalf("attempts = %+v, want 1", attempts)
			}
			a := attempts[0]
			if a.Attempt != 1 || a.Class != class.String() || a.Duration != time.Second || a.HTTPStatus != 200 ||
				a.Code != 15 || a.SubCode != "isp.x" || a.FailCode != "F" || a.TOPRequestID != "top-r" {
				t.Errorf("attempt row = %+v, want the %s outcome", a, class)
			}
		})
	}
}

// TestDeliverCallbackRecordsOutcomeOfCancelledAttempt: when Temporal
// cancels an attempt during the call (its heartbeat found it timed out, or
// the workflow went away), the request is at TOP already: the call is
// carried to TOP's answer, which is recorded, so the next attempt finds the
// callback delivered. An abandoned call left the row "retrying" while TOP
// still acted on the request, and the next attempt (a resumed run's) sent
// it again, after the callback behind it (TestSweeperResumesStoppedRuns).
func TestDeliverCallbackRecordsOutcomeOfCancelledAttempt(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.env.SetWorkerOptions(worker.Options{BackgroundActivityContext: ctx})
	f.acts.TOP = callTOP(func(ctx context.Context, _ insurance.Result) top.Outcome {
		cancel()
		select {
		case <-ctx.Done():
			return top.Outcome{Class: top.ClassRetryable, Detail: "abandoned by caller: " + context.Cause(ctx).Error()}
		case <-time.After(100 * time.Millisecond): // TOP answers
			return top.Outcome{Class: top.ClassDelivered, RequestID: "top-1"}
		}
	})
	if _, err := f.deliver(input(0)); err != nil {
		t.Fatalf("DeliverCallback: %v, want TOP's answer", err)
	}
	attempts := f.attempts()
	if len(attempts) != 1 || attempts[0].Class != "delivered" || attempts[0].TOPRequestID != "top-1" {
		t.Fatalf("attempts = %+v, want attempt 1 recorded as delivered", attempts)
	}
	if e := f.events()[0]; e.Callback != "delivered" {
		t.Errorf("event = %+v, want delivered", e)
	}
}

// TestDeliverCallbackHeartbeatsDuringTheCall checks that the activity
// heartbeats its attempt number while TOP has not answered, so that Temporal
// notices a dead worker within the heartbeat timeout, and that heartbeating
// stops when the activity returns, whether the call returned or panicked.
func TestDeliverCallbackHeartbeatsDuringTheCall(t *testing.T) {
	t.Run("while the call is in flight", func(t *testing.T) {
		f := newFixture(t)
		hb := f.withHeartbeats(worker.Options{})
		var before int
		f.acts.TOP = callTOP(func(context.Context, insurance.Result) top.Outcome {
			before = hb.count()
			waitFor(t, "three heartbeats during the call", func() bool { return hb.count() >= before+3 })
			return top.Outcome{Class: top.ClassDelivered}
		})
		res, err := f.deliver(input(2))
		if err != nil || res.Attempt != 3 {
			t.Fatalf("DeliverCallback = %+v, %v", res, err)
		}
		// One when the attempt starts, one right before the call (the
		// fence), and perhaps the ticker's first.
		if before > 3 {
			t.Errorf("%d heartbeats before the call, want at most 3", before)
		}
		after := hb.count()
		time.Sleep(20 * f.acts.HeartbeatEvery)
		if n := hb.count(); n != after {
			t.Errorf("%d heartbeats after the activity returned, want none", n-after)
		}
		for _, d := range hb.all() {
			if len(d) != 2 || d[0] != 3 || d[1] != PhaseCalling {
				t.Fatalf("heartbeat details %v, want the attempt number 3 and phase %s in each", hb.all(), PhaseCalling)
			}
		}
	})
	t.Run("stops when the call panics", func(t *testing.T) {
		f := newFixture(t)
		hb := f.withHeartbeats(worker.Options{})
		f.acts.TOP = callTOP(func(context.Context, insurance.Result) top.Outcome {
			waitFor(t, "a heartbeat during the call", func() bool { return hb.count() >= 1 })
			panic("worker gone")
		})
		if _, err := f.deliver(input(0)); err == nil {
			t.Fatal("DeliverCallback succeeded, want the panic")
		}
		after := hb.count()
		time.Sleep(20 * f.acts.HeartbeatEvery)
		if n := hb.count(); n != after {
			t.Errorf("%d heartbeats after the activity panicked, want none", n-after)
		}
	})
	t.Run("none without a heartbeat timeout", func(t *testing.T) {
		f := newFixture(t)
		hb := f.withHeartbeats(worker.Options{})
		f.acts.HeartbeatEvery = 0 // the test environment schedules without a heartbeat timeout
		f.acts.TOP = callTOP(func(context.Context, insurance.Result) top.Outcome {
			time.Sleep(20 * time.Millisecond)
			return top.Outcome{Class: top.ClassDelivered}
		})
		if _, err := f.deliver(input(0)); err != nil {
			t.Fatal(err)
		}
		if n := hb.count(); n != 0 {
			t.Errorf("%d heartbeats, want none", n)
		}
	})
}

func TestHeartbeatInterval(t *testing.T) {
	tests := []struct {
		name                string
		configured, timeout time.Duration
		want                time.Duration
	}{
		{"a quarter of the heartbeat timeout", 0, 10 * time.Second, 2500 * time.Millisecond},
		{"configured wins", time.Second, 10 * time.Second, time.Second},
		{"configured without a timeout", time.Second, 0, time.Second},
		{"neither: no heartbeats", 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := heartbeatInterval(tt.configured, tt.timeout); got != tt.want {
				t.Errorf("heartbeatInterval(%v, %v) = %v, want %v", tt.configured, tt.timeout, got, tt.want)
			}
		})
	}
}

// TestDeliverCallbackSkippedIsNeitherSentNorParked: a callback the store
// shows skipped by an operator (a run rebuilt from a terminated run's state
// may still hold it) is answered as skipped, so the workflow drops it,
// rather than failed, which would park it again.
func TestDeliverCallbackSkippedIsNeitherSentNorParked(t *testing.T) {
	f := newFixture(t, top.Outcome{Class: top.ClassRejected, FailCode: "X"})
	if _, err := f.deliver(input(0)); err == nil {
		t.Fatal("first attempt succeeded, want the rejection")
	}
	if err := f.store.SetCallback(context.Background(), bizID, 1, "skipped", "idle"); err != nil {
		t.Fatal(err)
	}
	res, err := f.deliver(input(1))
	if err != nil || !res.Skipped {
		t.Fatalf("attempt after the skip = %+v, %v; want skipped, no error", res, err)
	}
	if n := f.top.calls(); n != 1 {
		t.Fatalf("TOP called %d times, want only the first attempt", n)
	}
}

// TestFreshAttempts: an attempt skips its first heartbeat and the store's
// second look only while Temporal cannot have given up on it.
func TestFreshAttempts(t *testing.T) {
	start := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		now     time.Time
		started time.Time
		timeout time.Duration
		want    bool
	}{
		{"just started", start.Add(3 * time.Millisecond), start, 10 * time.Second, true},
		{"worker clock a little behind the server's", start.Add(-time.Second), start, 10 * time.Second, true},
		{"half the heartbeat timeout gone (a frozen worker, a slow store)", start.Add(5 * time.Second), start, 10 * time.Second, false},
		{"past the heartbeat timeout", start.Add(11 * time.Second), start, 10 * time.Second, false},
		{"no heartbeat timeout", start, start, 0, false},
		{"start unknown", start, time.Time{}, 10 * time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := freshAt(tt.now, tt.started, tt.timeout); got != tt.want {
				t.Errorf("freshAt = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestDeliverCallbackFreshAttemptSkipsTheSecondLook drives DeliverCallback
// as Temporal does, from a workflow whose activity options carry a heartbeat
// timeout: the attempt has just started, so it is fresh, and it neither
// heartbeats before the call nor asks the store a second time
// (store.StillCurrent), though it delivers and records as ever. Scheduled
// without a heartbeat timeout (the activity environment), the same attempt
// is never fresh and takes the second look.
func TestDeliverCallbackFreshAttemptSkipsTheSecondLook(t *testing.T) {
	spanNames := func(rec *tracetest.SpanRecorder) []string {
		var names []string
		for _, s := range rec.Ended() {
			names = append(names, s.Name())
		}
		return names
	}
	t.Run("fresh: scheduled with a heartbeat timeout", func(t *testing.T) {
		f := newFixture(t, top.Outcome{Class: top.ClassDelivered, RequestID: "top-req-1"})
		rec := tracetest.NewSpanRecorder()
		f.acts.Tracer = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test")
		var suite testsuite.WorkflowTestSuite
		env := suite.NewTestWorkflowEnvironment()
		hb := &heartbeats{}
		env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{hb}})
		env.RegisterActivity(f.acts)
		env.RegisterWorkflowWithOptions(func(ctx workflow.Context, in DeliverInput) (DeliverResult, error) {
			ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
				StartToCloseTimeout: time.Minute,
				HeartbeatTimeout:    10 * time.Second,
			})
			var res DeliverResult
			err := workflow.ExecuteActivity(ctx, f.acts.DeliverCallback, in).Get(ctx, &res)
			return res, err
		}, workflow.RegisterOptions{Name: "deliver"})
		env.ExecuteWorkflow("deliver", input(0))
		var res DeliverResult
		if err := env.GetWorkflowResult(&res); err != nil || res.Attempt != 1 || res.TOPRequestID != "top-req-1" {
			t.Fatalf("DeliverCallback = %+v, %v; want attempt 1 delivered", res, err)
		}
		if n := hb.count(); n != 0 {
			t.Errorf("%d heartbeats from a fresh attempt that took milliseconds, want none", n)
		}
		names := spanNames(rec)
		if slices.Contains(names, "store.StillCurrent") || !slices.Contains(names, "store.BeginDelivery") || !slices.Contains(names, "store.RecordAttempt") {
			t.Errorf("spans %v: want store.BeginDelivery and store.RecordAttempt, and no store.StillCurrent", names)
		}
		if a := f.attempts(); len(a) != 1 || a[0].Class != top.ClassDelivered.String() {
			t.Errorf("attempt rows %+v, want one delivered", a)
		}
	})
	t.Run("not fresh: no heartbeat timeout", func(t *testing.T) {
		f := newFixture(t, top.Outcome{Class: top.ClassDelivered, RequestID: "top-req-1"})
		rec := tracetest.NewSpanRecorder()
		f.acts.Tracer = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test")
		if _, err := f.deliver(input(0)); err != nil {
			t.Fatal(err)
		}
		if names := spanNames(rec); !slices.Contains(names, "store.StillCurrent") {
			t.Errorf("spans %v: want the second look, store.StillCurrent", names)
		}
	})
}
