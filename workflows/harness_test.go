package workflows

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/insuranceflow/insuranceflow/activities"
	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/top"
)

const (
	testBizID       = "24010900100YSKSSG"
	testManagerName = "王小明" // personal data: must never show up in errors or details
)

// ev builds an event of the test policy, occurring at "yyyy-MM-dd HH:mm:ss".
func ev(stage insurance.Stage, status insurance.Status, at string) insurance.Result {
	return insurance.Result{
		BizID:                  testBizID,
		PolicyNumber:           "PN-001",
		InsuranceCompany:       insurance.CompanyCPIC,
		Stage:                  stage,
		Status:                 status,
		TimeOfOccurrence:       at,
		BankAccountManagerName: testManagerName,
		InsuranceType:          insurance.TypeHomeProperty,
	}
}

// lifecycle is the five events of a normal policy life, in order.
func lifecycle() []insurance.Result {
	return []insurance.Result{
		ev(insurance.StagePreInsure, insurance.StatusSuccess, "2024-01-09 10:00:00"),
		ev(insurance.StageUnderwrite, insurance.StatusSuccess, "2024-01-09 11:00:00"),
		ev(insurance.StageInsure, insurance.StatusSuccess, "2024-01-09 12:00:00"),
		ev(insurance.StageEndorse, insurance.StatusSuccess, "2024-02-01 09:00:00"),
		ev(insurance.StageCancel, insurance.StatusSuccess, "2024-03-01 09:00:00"),
	}
}

// deliverCall is one DeliverCallback attempt as the mock saw it.
type deliverCall struct {
	Seq     int64
	Attempt int
	Offset  int
	At      time.Duration // virtual time since the test started
	Input   activities.DeliverInput
}

// harness runs the Policy workflow in the SDK's test environment with both
// activities mocked on their real methods.
type harness struct {
	t     *testing.T
	env   *testsuite.TestWorkflowEnvironment
	start time.Time

	mu       sync.Mutex // activity mocks run on their own goroutines
	calls    []deliverCall
	records  []activities.RecordInput
	outcomes map[int64][]top.Outcome // per seq, the outcome of attempt 1, 2, …; delivered after that
	// failCall, if set, is asked first about every DeliverCallback call: a
	// non-nil error is the call's result (a timeout, say), whatever the
	// script says.
	failCall func(c deliverCall) error
	recordFn func(activities.RecordInput) error

	// sent is "seq/attempt" of each call that got as far as TOP, in the
	// order they did; settled says how each seq's last call ended
	// (delivered or not), which a pipelined call (In.After) waits for, as
	// the real activity waits for the store. holdFn, if set, runs before a
	// call's outcome (outside the lock), so a test can keep it in flight.
	sent    []string
	settled map[int64]bool
	holdFn  func(c deliverCall)

	upserts  []map[string]string // each UpsertTypedSearchAttributes call's values
	upsertAt []time.Duration     // when each upsert happened, since the start
	timers   []time.Duration
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	// The SDK's and the workflow's logs go to a buffer: shown when a test
	// fails, and checked for personal data always.
	logs := &syncBuffer{}
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))))
	t.Cleanup(func() {
		if strings.Contains(logs.String(), testManagerName) {
			t.Errorf("logs contain the account manager's name")
		}
		if t.Failed() {
			t.Logf("workflow logs:\n%s", logs)
		}
	})
	env := suite.NewTestWorkflowEnvironment()
	env.SetTestTimeout(20 * time.Second)
	h := &harness{t: t, env: env, start: env.Now(), outcomes: map[int64][]top.Outcome{}, settled: map[int64]bool{}}

	env.RegisterWorkflowWithOptions(Policy, workflow.RegisterOptions{Name: WorkflowName})
	env.RegisterActivity(&activities.Activities{})
	env.OnActivity(acts.DeliverCallback, mock.Anything, mock.Anything).Return(h.deliver)
	env.OnActivity(acts.RecordCallbacks, mock.Anything, mock.Anything).Return(h.record)
	env.OnUpsertTypedSearchAttributes(mock.Anything).Return(nil).Run(func(args mock.Arguments) {
		sa := args.Get(0).(temporal.SearchAttributes)
		got := map[string]string{}
		for _, key := range searchAttributeKeys() {
			if v, ok := sa.GetKeyword(key); ok {
				got[key.GetName()] = v
			}
		}
		h.upserts = append(h.upserts, got)
		h.upsertAt = append(h.upsertAt, env.Now().Sub(h.start))
	})
	env.SetOnTimerScheduledListener(func(_ string, d time.Duration) { h.timers = append(h.timers, d) })
	return h
}

// startAttributes sets the search attributes the starter sets for a policy
// whose first event leads to state.
func (h *harness) startAttributes(state fsm.State) {
	h.t.Helper()
	if err := h.env.SetTypedSearchAttributesOnStart(
		PolicySearchAttributes(testBizID, state, insurance.TypeHomeProperty, CallbackIdle)); err != nil {
		h.t.Fatalf("set search attributes: %v", err)
	}
}

// fail scripts seq's first attempts; attempts past the script are delivered.
func (h *harness) fail(seq int64, outcomes ...top.Outcome) {
	h.outcomes[seq] = outcomes
}

func (h *harness) deliver(ctx context.Context, in activities.DeliverInput) (activities.DeliverResult, error) {
	attempt := in.AttemptOffset + int(activity.GetInfo(ctx).Attempt)
	now := h.env.Now()
	h.mu.Lock()
	call := deliverCall{Seq: in.Seq, Attempt: attempt, Offset: in.AttemptOffset, At: now.Sub(h.start), Input: in}
	h.calls = append(h.calls, call)
	script := h.outcomes[in.Seq]
	failCall := h.failCall
	h.mu.Unlock()
	if failCall != nil {
		if err := failCall(call); err != nil {
			return activities.DeliverResult{}, err
		}
	}
	if in.After == 0 {
		h.settle(in.Seq, false, true) // in flight again
	}
	if in.After > 0 && !h.awaitSettled(in.After) {
		return activities.DeliverResult{NotYet: true}, nil
	}
	if hold := h.holdFn; hold != nil {
		hold(call)
	}
	h.mu.Lock()
	h.sent = append(h.sent, fmt.Sprintf("%d/%d", in.Seq, attempt))
	h.mu.Unlock()
	if attempt <= len(script) {
		h.settle(in.Seq, false, false)
		return activities.DeliverResult{}, activities.OutcomeError(attempt, script[attempt-1])
	}
	h.settle(in.Seq, true, false)
	return activities.DeliverResult{Attempt: attempt, TOPRequestID: fmt.Sprintf("top-%d-%d", in.Seq, attempt), DeliveredAt: now}, nil
}

// settle records how seq's last attempt ended, or with running that one
// is in flight, as the store's event row would say.
func (h *harness) settle(seq int64, delivered, running bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if running {
		delete(h.settled, seq)
		return
	}
	h.settled[seq] = delivered
}

// awaitSettled is the store's gate as the activity sees it: true once seq
// is delivered, false once its last attempt failed, waiting (in real time,
// as the activity mocks run on their own goroutines) while it runs.
func (h *harness) awaitSettled(seq int64) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		h.mu.Lock()
		delivered, ended := h.settled[seq]
		h.mu.Unlock()
		if ended {
			return delivered
		}
	}
	h.t.Errorf("pipelined call waited 5 s for seq %d", seq)
	return false
}

// calledFor reports whether a DeliverCallback call for seq has been made.
func (h *harness) calledFor(seq int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.calls {
		if c.Seq == seq {
			return true
		}
	}
	return false
}

// holdUntilCalled keeps seq's first attempt in flight until a call for
// next has been made (in real time, up to 5 s), so next is accepted and
// scheduled while seq is in flight.
func (h *harness) holdUntilCalled(seq, next int64) {
	h.holdFn = func(c deliverCall) {
		if c.Seq != seq || c.Attempt != 1 {
			return
		}
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if h.calledFor(next) {
				return
			}
		}
	}
}

func (h *harness) record(_ context.Context, in activities.RecordInput) error {
	h.mu.Lock()
	h.records = append(h.records, in)
	if c := in.Callback; c != nil {
		// An operator's retry puts the callback back in the queue, a skip
		// settles it: what a pipelined call behind it sees.
		switch c.Callback {
		case "queued":
			delete(h.settled, c.Seq)
		case "skipped":
			h.settled[c.Seq] = true
		}
	}
	fn := h.recordFn
	h.mu.Unlock()
	if fn != nil {
		return fn(in)
	}
	return nil
}

// deliveries returns "seq/attempt" of every DeliverCallback call, in order.
func (h *harness) deliveries() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, len(h.calls))
	for i, c := range h.calls {
		out[i] = fmt.Sprintf("%d/%d", c.Seq, c.Attempt)
	}
	return out
}

// reply collects the callbacks of one update.
type reply struct {
	accepted  bool
	rejection error
	result    any
	err       error
	completed bool
}

func (r *reply) callbacks() *testsuite.TestUpdateCallback {
	return &testsuite.TestUpdateCallback{
		OnAccept:   func() { r.accepted = true },
		OnReject:   func(err error) { r.rejection = err },
		OnComplete: func(v any, err error) { r.result, r.err, r.completed = v, err, true },
	}
}

// report sends a report update at virtual time at.
func (h *harness) report(at time.Duration, e insurance.Result) *reply {
	r := &reply{}
	h.env.RegisterDelayedCallback(func() { h.env.UpdateWorkflow(UpdateReport, "", r.callbacks(), e) }, at)
	return r
}

// operator sends a retry-callback or skip-callback update at virtual time at.
func (h *harness) operator(at time.Duration, name string) *reply {
	r := &reply{}
	h.env.RegisterDelayedCallback(func() {
		h.env.UpdateWorkflow(name, "", r.callbacks(), OperatorRequest{Reason: "checked with TOP support"})
	}, at)
	return r
}

// query answers QueryStatus at virtual time at.
func (h *harness) query(at time.Duration) *Status {
	st := &Status{}
	h.env.RegisterDelayedCallback(func() {
		v, err := h.env.QueryWorkflow(QueryStatus)
		if err != nil {
			h.t.Errorf("query at %s: %v", at, err)
			return
		}
		if err := v.Get(st); err != nil {
			h.t.Errorf("decode status at %s: %v", at, err)
		}
	}, at)
	return st
}

// run executes the workflow to its end.
func (h *harness) run(in PolicyInput) {
	h.t.Helper()
	h.env.ExecuteWorkflow(WorkflowName, in)
	if !h.env.IsWorkflowCompleted() {
		h.t.Fatalf("workflow did not complete")
	}
}

// result is the completed workflow's Status.
func (h *harness) result() Status {
	h.t.Helper()
	if err := h.env.GetWorkflowError(); err != nil {
		h.t.Fatalf("workflow error: %v", err)
	}
	var st Status
	if err := h.env.GetWorkflowResult(&st); err != nil {
		h.t.Fatalf("workflow result: %v", err)
	}
	return st
}

// continuedWith is the input of the run the workflow continued as.
func (h *harness) continuedWith() PolicyInput {
	h.t.Helper()
	var can *workflow.ContinueAsNewError
	if err := h.env.GetWorkflowError(); !errors.As(err, &can) {
		h.t.Fatalf("workflow error = %v, want continue-as-new", err)
	}
	if can.WorkflowType.Name != WorkflowName {
		h.t.Fatalf("continued as %q, want %q", can.WorkflowType.Name, WorkflowName)
	}
	var next PolicyInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		h.t.Fatalf("decode continue-as-new input: %v", err)
	}
	return next
}

// acceptance checks that r was accepted and returns its Acceptance.
func (r *reply) acceptance(t *testing.T) Acceptance {
	t.Helper()
	if r.rejection != nil {
		t.Fatalf("update rejected: %v", r.rejection)
	}
	if !r.accepted || !r.completed {
		t.Fatalf("update accepted=%v completed=%v, want both", r.accepted, r.completed)
	}
	if r.err != nil {
		t.Fatalf("update failed: %v", r.err)
	}
	a, ok := r.result.(Acceptance)
	if !ok {
		t.Fatalf("update result is %T, want Acceptance", r.result)
	}
	return a
}

// rejected checks that r was rejected by the validator with errType and
// returns the ApplicationError.
func (r *reply) rejected(t *testing.T, errType string) *temporal.ApplicationError {
	t.Helper()
	if r.accepted || r.completed {
		t.Fatalf("update accepted=%v completed=%v (result %v, err %v), want a rejection of type %s",
			r.accepted, r.completed, r.result, r.err, errType)
	}
	var appErr *temporal.ApplicationError
	if !errors.As(r.rejection, &appErr) {
		t.Fatalf("rejection = %v, want an ApplicationError of type %s", r.rejection, errType)
	}
	if appErr.Type() != errType {
		t.Fatalf("rejection type = %q (%v), want %q", appErr.Type(), appErr, errType)
	}
	if strings.Contains(appErr.Error(), testManagerName) {
		t.Fatalf("rejection message leaks the account manager's name: %v", appErr)
	}
	return appErr
}

// operatorResult checks that an operator update was accepted and completed.
func (r *reply) operatorResult(t *testing.T) OperatorResult {
	t.Helper()
	if r.rejection != nil || r.err != nil || !r.completed {
		t.Fatalf("operator update: rejection=%v err=%v completed=%v", r.rejection, r.err, r.completed)
	}
	res, ok := r.result.(OperatorResult)
	if !ok {
		t.Fatalf("operator result is %T, want OperatorResult", r.result)
	}
	return res
}

// syncBuffer is a bytes.Buffer safe for the SDK's concurrent log writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
