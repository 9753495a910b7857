package integration

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/store"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// pausedSnapshots is a policyclient.Snapshots that, once armed, holds the
// next read's answer until released: the window in which another report
// can start, use and close a run.
type pausedSnapshots struct {
	inner   policyclient.Snapshots
	armed   chan struct{} // closed by the read that got paused
	release chan struct{}
}

func (p *pausedSnapshots) Snapshot(ctx context.Context, bizID string) (*workflows.Snapshot, error) {
	snap, err := p.inner.Snapshot(ctx, bizID)
	select {
	case <-p.armed:
	default:
		close(p.armed)
		select {
		case <-p.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return snap, err
}

// TestReportAfterARaceToCloseSeesTheClosedRun is issue 8's first race,
// reproduced end to end: report A (endorse) finds no open run and reads the
// store; meanwhile report B (cancel) starts a run, is accepted and
// delivered, and the run completes (the policy is terminal). A's
// Update-with-Start then starts a new run. That run used to be seeded with
// A's stale read, so it accepted the endorse after the cancel, under the
// cancel's seq, and its delivery conflicted in the store for good. Now the
// run loads its own snapshot and refuses the endorse as an illegal
// transition from cancelled. This test failed before the fix: A's endorse
// was accepted as seq 4, the seq of the accepted cancel.
func TestReportAfterARaceToCloseSeesTheClosedRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tc := dialStack(t, ctx) // mutual TLS under `make test-cluster`
	st := openStackStore(t, ctx)
	settings := workflows.Settings{IdleTimeout: 2 * time.Second, EmptyRunGrace: 2 * time.Second}
	plain := &policyclient.Client{Temporal: tc, Snapshots: policyclient.StoreSnapshots{Store: st}, Settings: settings}
	paused := &pausedSnapshots{inner: plain.Snapshots, armed: make(chan struct{}), release: make(chan struct{})}
	racing := &policyclient.Client{Temporal: tc, Snapshots: paused, Settings: settings}

	bizID := fmt.Sprintf("RACE%d", time.Now().UnixNano()%1e12)
	at := func(h int) string { return fmt.Sprintf("2025-04-08 %02d:00:00", h) }
	ev := func(stage insurance.Stage, h int) insurance.Result {
		return insurance.Result{BizID: bizID, Stage: stage, Status: insurance.StatusSuccess, TimeOfOccurrence: at(h),
			InsuranceType: insurance.TypeHomeProperty, PolicyNumber: "PN-RACE"}
	}
	for i, stage := range []insurance.Stage{insurance.StagePreInsure, insurance.StageUnderwrite, insurance.StageInsure} {
		if _, err := plain.Report(ctx, ev(stage, 9+i)); err != nil {
			t.Fatalf("report %s: %v", stage, err)
		}
	}
	waitClosed(t, ctx, tc, bizID) // delivered, then idle for 2 s

	type answer struct {
		acc workflows.Acceptance
		err error
	}
	endorse := make(chan answer, 1)
	go func() {
		acc, err := racing.Report(ctx, ev(insurance.StageEndorse, 13))
		endorse <- answer{acc, err}
	}()
	select {
	case <-paused.armed:
	case <-ctx.Done():
		t.Fatal("the endorse never read the store")
	}
	acc, err := plain.Report(ctx, ev(insurance.StageCancel, 14))
	if err != nil || acc.Seq != 4 || acc.State != "cancelled" {
		t.Fatalf("cancel = %+v, %v; want accepted as seq 4", acc, err)
	}
	waitClosed(t, ctx, tc, bizID) // terminal once the cancel is delivered
	close(paused.release)

	got := <-endorse
	var rej *policyclient.Rejection
	if !errors.As(got.err, &rej) || rej.Reason != workflows.ReasonIllegalTransition || rej.Details == nil || rej.Details.State != "cancelled" {
		t.Fatalf("endorse after the cancel = %+v, %v; want illegal_transition from cancelled", got.acc, got.err)
	}
	events, err := st.Events(ctx, bizID)
	if err != nil || len(events) != 4 || events[3].Stage != int(insurance.StageCancel) {
		t.Fatalf("stored events = %+v, %v; want the four accepted ones, the cancel last", events, err)
	}
	recordHistoryOf(t, "reopen-load", bizID) // a run that loads its snapshot and refuses an event after it
}

// waitClosed waits until the policy's latest run has closed.
func waitClosed(t *testing.T, ctx context.Context, tc client.Client, bizID string) {
	t.Helper()
	eventually(t, time.Minute, "the run of "+bizID+" closes", func() (bool, string) {
		d, err := tc.DescribeWorkflowExecution(ctx, workflows.WorkflowID(bizID), "")
		if err != nil {
			return false, err.Error()
		}
		s := d.GetWorkflowExecutionInfo().GetStatus()
		return s != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, s.String()
	})
}

// TestTerminatedRunLosesNoAcceptedEvent is issue 8's seventh risk: a run
// that is terminated while a callback is in flight and another queued used
// to take the queued event with it (only the delivery in flight had
// written its event to the store), so the next run re-used its seq. The
// next run now asks the terminated run for its state. This test failed
// without that query: the insure was refused as illegal from pre_insured,
// because the accepted underwrite was gone.
func TestTerminatedRunLosesNoAcceptedEvent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t.Cleanup(func() { clearFaults(t) })
	tc := dialStack(t, ctx)

	// Every TOP call hangs past the worker's TOP timeout: the first
	// callback stays in flight or retrying, the second queued behind it.
	setFaults(t, `{"hang_rate":1,"hang_duration":"10s"}`)
	bizID := newBizID("TRM")
	mustAccept(t, event(bizID, 1, 1, 0), 1, "pre_insured")
	mustAccept(t, event(bizID, 2, 1, 1), 2, "underwritten")
	if err := tc.TerminateWorkflow(ctx, workflows.WorkflowID(bizID), "", "issue 8: terminated with a callback queued"); err != nil {
		t.Fatal(err)
	}
	clearFaults(t)

	mustAccept(t, event(bizID, 3, 1, 2), 3, "insured")
	got := waitReceipts(t, bizID, 3, 60*time.Second)
	assertStages(t, got, "pre_insure", "underwrite", "insure")
	recordHistoryOf(t, "reopen-after-terminate", bizID)
}

// openStackStore opens the stack's store, as the worker has it.
func openStackStore(t *testing.T, ctx context.Context) *store.Store {
	t.Helper()
	st, err := store.Open(ctx, env.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// dialStack dials the stack's Temporal server quietly, as its processes do
// (over mutual TLS under `make test-cluster`).
func dialStack(t *testing.T, ctx context.Context) client.Client {
	t.Helper()
	opts, err := env.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	opts.Logger = log.NewStructuredLogger(slog.New(slog.DiscardHandler))
	tc, err := client.DialContext(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	return tc
}

// TestCancelledRunRecordsItsCallbacks is issue 8's seventh risk for a
// cancelled run: it used to end without recording its FIFO, so the event
// queued behind the callback in flight was lost to the next run. It now
// records what it holds before it ends, and the next run delivers it. This
// test failed before the fix: the store had one event of two.
func TestCancelledRunRecordsItsCallbacks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t.Cleanup(func() { clearFaults(t) })
	tc := dialStack(t, ctx)
	st := openStackStore(t, ctx)

	setFaults(t, `{"hang_rate":1,"hang_duration":"10s"}`)
	bizID := newBizID("CXL")
	mustAccept(t, event(bizID, 1, 1, 0), 1, "pre_insured")
	mustAccept(t, event(bizID, 2, 1, 1), 2, "underwritten")
	if err := tc.CancelWorkflow(ctx, workflows.WorkflowID(bizID), ""); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, ctx, tc, bizID)
	events, err := st.Events(ctx, bizID)
	if err != nil || len(events) != 2 || events[1].Callback != "queued" {
		t.Fatalf("stored events after the cancel = %+v, %v; want both, the second queued", events, err)
	}
	recordHistoryOf(t, "cancelled-run", bizID)
	clearFaults(t)

	mustAccept(t, event(bizID, 3, 1, 2), 3, "insured")
	got := waitReceipts(t, bizID, 3, 60*time.Second)
	assertStages(t, got, "pre_insure", "underwrite", "insure")
}

// TestContinueAsNewCarriesThePolicy runs a policy across continue-as-new
// (every two accepted events) and checks nothing is lost or reordered; its
// first run's history, which ends in continue-as-new, is in the replay
// corpus.
func TestContinueAsNewCarriesThePolicy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tc := dialStack(t, ctx)
	st := openStackStore(t, ctx)
	pc := &policyclient.Client{Temporal: tc, Snapshots: policyclient.StoreSnapshots{Store: st},
		Settings: workflows.Settings{ContinueAsNewAfter: 2}}
	bizID := newBizID("CAN")
	at := func(h int) string { return fmt.Sprintf("2025-04-08 %02d:00:00", h) }
	stages := []insurance.Stage{insurance.StagePreInsure, insurance.StageUnderwrite, insurance.StageInsure, insurance.StageEndorse, insurance.StageCancel}
	for i, stage := range stages {
		acc, err := pc.Report(ctx, insurance.Result{BizID: bizID, Stage: stage, Status: insurance.StatusSuccess,
			TimeOfOccurrence: at(9 + i), InsuranceType: insurance.TypeHomeProperty, PolicyNumber: "PN-" + bizID})
		if err != nil || acc.Seq != int64(i+1) {
			t.Fatalf("report %s = %+v, %v; want seq %d", stage, acc, err, i+1)
		}
	}
	got := waitReceipts(t, bizID, len(stages), 60*time.Second)
	assertStages(t, got, "pre_insure", "underwrite", "insure", "endorse", "cancel")
	first := ""
	eventually(t, 30*time.Second, "the first run is found", func() (bool, string) {
		resp, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("WorkflowId = %q AND ExecutionStatus = 'ContinuedAsNew'", workflows.WorkflowID(bizID))})
		if err != nil {
			return false, err.Error()
		}
		for _, e := range resp.GetExecutions() {
			if e.GetExecution().GetRunId() == e.GetFirstRunId() || first == "" {
				first = e.GetExecution().GetRunId()
			}
		}
		return first != "", fmt.Sprintf("%d continued runs", len(resp.GetExecutions()))
	})
	recordRunHistoryOf(t, "continue-as-new", bizID, first)
}

// TestCancelledPolicyStillDeliversItsCallbacks is the other half of issue
// 8's seventh risk: a policy whose accepted cancel (the stage) was still
// waiting to be delivered when its run was cancelled is terminal in the
// store with callbacks pending, and a later report used to be refused
// from the store without starting a run, so they were never delivered.
// Now the report starts a run that delivers them (and refuses the event).
// This test failed before the fix: no callback after the first.
func TestCancelledPolicyStillDeliversItsCallbacks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t.Cleanup(func() { clearFaults(t) })
	tc := dialStack(t, ctx)

	bizID := newBizID("CXP")
	mustAccept(t, event(bizID, 1, 1, 0), 1, "pre_insured")
	waitReceipts(t, bizID, 1, 30*time.Second)
	setFaults(t, `{"hang_rate":1,"hang_duration":"10s"}`)
	mustAccept(t, event(bizID, 2, 1, 1), 2, "underwritten")
	mustAccept(t, event(bizID, 3, 1, 2), 3, "insured")
	mustAccept(t, event(bizID, 4, 1, 3), 4, "cancelled")
	if err := tc.CancelWorkflow(ctx, workflows.WorkflowID(bizID), ""); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, ctx, tc, bizID)
	clearFaults(t)

	var e apiError
	if code := call(t, http.MethodPost, "/v1/insurance-results", event(bizID, 5, 1, 4), &e); code != http.StatusConflict || e.Error.Code != "illegal_transition" {
		t.Fatalf("endorse after the cancel: %d %+v, want 409 illegal_transition", code, e.Error)
	}
	got := waitReceipts(t, bizID, 4, 60*time.Second)
	assertStages(t, got, "pre_insure", "underwrite", "insure", "cancel")
	recordHistoryOf(t, "terminal-pending-delivered", bizID)
}
