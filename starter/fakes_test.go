package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// testNow is 2025-04-08 09:55:00 in GMT+8.
var testNow = time.Date(2025, 4, 8, 1, 55, 0, 0, time.UTC)

// fakePolicies stands in for policyclient.Client and the workflows behind
// it. It judges events with the real fsm package and the real validation,
// so a simulated lifecycle sent out of order is refused as the workflow
// would refuse it.
type fakePolicies struct {
	mu       sync.Mutex
	status   map[string]*workflows.Status
	accepted map[string]map[string]workflows.Acceptance // biz_id -> request_id -> acceptance
	lastTime map[string]string
	reports  []insurance.Result // every Report call, as received
	// fail, when set, answers a Report before the fake judges it.
	fail func(r insurance.Result) error
	// permissive accepts events the lifecycle forbids.
	permissive bool

	operator []string // "retry biz reason" per Retry/Skip call
	keys     []string // the idempotency key of each Retry/Skip call

	listFilters []policyclient.ListFilter
	listPages   []policyclient.ListPage
}

var _ policyOps = (*fakePolicies)(nil)

func newFakePolicies() *fakePolicies {
	return &fakePolicies{
		status:   map[string]*workflows.Status{},
		accepted: map[string]map[string]workflows.Acceptance{},
		lastTime: map[string]string{},
	}
}

func (f *fakePolicies) Report(ctx context.Context, r insurance.Result) (workflows.Acceptance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reports = append(f.reports, r)
	if err := ctx.Err(); err != nil {
		return workflows.Acceptance{}, err
	}
	if err := r.Validate(); err != nil {
		return workflows.Acceptance{}, err
	}
	if f.fail != nil {
		if err := f.fail(r); err != nil {
			return workflows.Acceptance{}, err
		}
	}
	r = r.WithRequestID()
	st, ok := f.status[r.BizID]
	if !ok {
		st = &workflows.Status{BizID: r.BizID, State: fsm.StateNew, CallbackState: workflows.CallbackIdle, Events: []workflows.EventStatus{}}
		f.status[r.BizID] = st
		f.accepted[r.BizID] = map[string]workflows.Acceptance{}
	}
	if acc, dup := f.accepted[r.BizID][r.RequestID]; dup {
		acc.Duplicate = true
		return acc, nil
	}
	if r.TimeOfOccurrence < f.lastTime[r.BizID] {
		return workflows.Acceptance{}, &policyclient.Rejection{
			Reason: workflows.ReasonTimeWentBackwards, Message: "time_of_occurrence is before the last event's",
		}
	}
	next, endorsements, err := fsm.Next(st.State, st.Endorsements, r.Stage, r.Status)
	var illegal *fsm.IllegalTransitionError
	switch {
	case errors.As(err, &illegal) && f.permissive:
		next, endorsements = st.State, st.Endorsements
	case errors.As(err, &illegal):
		allowed := make([]string, len(illegal.Allowed))
		for i, s := range illegal.Allowed {
			allowed[i] = s.String()
		}
		return workflows.Acceptance{}, &policyclient.Rejection{
			Reason:  workflows.ReasonIllegalTransition,
			Message: illegal.Error(),
			Details: &workflows.IllegalTransitionDetails{State: illegal.State, Stage: illegal.Stage.String(), AllowedStages: allowed},
		}
	case err != nil:
		return workflows.Acceptance{}, err
	}
	st.LastSeq++
	st.State, st.Endorsements, st.InsuranceType = next, endorsements, r.InsuranceType
	if r.PolicyNumber != "" {
		st.PolicyNumber = r.PolicyNumber
	}
	callback := workflows.EventQueued
	if strings.Contains(r.BizID, parkMarker) {
		callback = workflows.EventParked
		st.CallbackState = workflows.CallbackParked
	}
	st.Events = append(st.Events, workflows.EventStatus{
		Seq: st.LastSeq, RequestID: r.RequestID, Stage: r.Stage, Status: r.Status,
		TimeOfOccurrence: r.TimeOfOccurrence, AcceptedAt: testNow, Callback: callback,
	})
	f.lastTime[r.BizID] = r.TimeOfOccurrence
	acc := workflows.Acceptance{
		BizID: r.BizID, RequestID: r.RequestID, Seq: st.LastSeq, Stage: r.Stage, Status: r.Status, State: next,
	}
	f.accepted[r.BizID][r.RequestID] = acc
	return acc, nil
}

func (f *fakePolicies) Status(_ context.Context, bizID string) (workflows.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.status[bizID]
	if !ok {
		return workflows.Status{}, fmt.Errorf("policy %s: %w", bizID, policyclient.ErrNotFound)
	}
	return *st, nil
}

func (f *fakePolicies) List(_ context.Context, filter policyclient.ListFilter) (policyclient.ListPage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listFilters = append(f.listFilters, filter)
	if len(f.listPages) == 0 {
		return policyclient.ListPage{}, nil
	}
	page := f.listPages[0]
	f.listPages = f.listPages[1:]
	return page, nil
}

func (f *fakePolicies) Retry(ctx context.Context, bizID string, req workflows.OperatorRequest) (workflows.OperatorResult, error) {
	return f.operate("retry", bizID, req, workflows.EventRetrying)
}

func (f *fakePolicies) Skip(ctx context.Context, bizID string, req workflows.OperatorRequest) (workflows.OperatorResult, error) {
	return f.operate("skip", bizID, req, workflows.EventSkipped)
}

func (f *fakePolicies) operate(action, bizID string, req workflows.OperatorRequest, to workflows.EventCallback) (workflows.OperatorResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.operator = append(f.operator, action+" "+bizID+" "+req.Reason)
	f.keys = append(f.keys, req.RequestID)
	st, ok := f.status[bizID]
	if !ok {
		return workflows.OperatorResult{}, fmt.Errorf("policy %s: %w", bizID, policyclient.ErrNotFound)
	}
	for i, e := range st.Events {
		if e.Callback == workflows.EventParked {
			st.Events[i].Callback = to
			return workflows.OperatorResult{Seq: e.Seq, Callback: to}, nil
		}
	}
	return workflows.OperatorResult{}, &policyclient.Rejection{
		Reason: workflows.ReasonNoParkedCallback, Message: "policy " + bizID + " has no parked callback",
	}
}

// reportsFor returns the events reported for bizID, in order.
func (f *fakePolicies) reportsFor(bizID string) []insurance.Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []insurance.Result
	for _, r := range f.reports {
		if r.BizID == bizID {
			out = append(out, r)
		}
	}
	return out
}

// fakeBackends hands out fakes and counts who connected to what.
type fakeBackends struct {
	ops        policyOps
	opsErr     error
	history    historyReader
	historyErr error

	policiesCalls, historyCalls, closeCalls int
	cfg                                     config
}

func (b *fakeBackends) Policies(_ context.Context, cfg config) (policyOps, error) {
	b.policiesCalls++
	b.cfg = cfg
	if b.opsErr != nil {
		return nil, b.opsErr
	}
	return b.ops, nil
}

func (b *fakeBackends) History(_ context.Context, cfg config) (historyReader, error) {
	b.historyCalls++
	b.cfg = cfg
	if b.historyErr != nil {
		return nil, b.historyErr
	}
	return b.history, nil
}

func (b *fakeBackends) Close() error {
	b.closeCalls++
	return nil
}

// cli runs the CLI in-process.
type cli struct {
	backends backends
	stdin    string
	env      map[string]string
	now      func() time.Time
	progress bool
}

type cliResult struct {
	code           exitCode
	stdout, stderr string
}

func (c cli) run(t *testing.T, args ...string) cliResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	now := c.now
	if now == nil {
		now = func() time.Time { return testNow }
	}
	d := deps{
		stdin:    strings.NewReader(c.stdin),
		stdout:   &stdout,
		stderr:   &stderr,
		getenv:   func(k string) string { return c.env[k] },
		now:      now,
		progress: c.progress,
		backends: c.backends,
	}
	code := execute(context.Background(), d, args)
	return cliResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// run is the common case: fake policies, no store.
func runWith(t *testing.T, ops policyOps, args ...string) cliResult {
	t.Helper()
	return cli{backends: &fakeBackends{ops: ops}}.run(t, args...)
}

func detailsAllowing(stages ...string) *workflows.IllegalTransitionDetails {
	return &workflows.IllegalTransitionDetails{State: fsm.StateInsured, Stage: "cancel", AllowedStages: stages}
}
