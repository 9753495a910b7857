package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/insuranceflow/insuranceflow/devstack"
	"github.com/insuranceflow/insuranceflow/store"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// observer reads the stack's state the way an auditor would: topsim's
// receipt log, the store (read only), Temporal visibility, the ingress's
// status view and the starter CLI as a real process.
type observer struct {
	stack   *devstack.Stack
	store   *store.Store
	ingress *ingressClient
	http    *http.Client
	out     io.Writer
	// operator is what chaos's operator did: skipped callbacks are never
	// delivered, and a park policy with nothing but skipped ones left does
	// not park.
	operator *operatorLog
}

// storeRecord is one policy as the store has it.
type storeRecord struct {
	Policy   *store.Policy
	Events   []store.Event
	Attempts []store.Attempt
	Err      string
}

func (o *observer) record(ctx context.Context, bizID string) storeRecord {
	var r storeRecord
	p, err := o.store.Policy(ctx, bizID)
	if err == nil {
		r.Policy = &p
	} else if !errors.Is(err, store.ErrNotFound) {
		r.Err = err.Error()
	}
	if r.Events, err = o.store.Events(ctx, bizID); err != nil {
		r.Err = err.Error()
	}
	if r.Attempts, err = o.store.Attempts(ctx, bizID); err != nil {
		r.Err = err.Error()
	}
	return r
}

// visibility lists the running policy workflows matching a query on the
// CallbackState search attribute, by biz_id.
func (o *observer) visibility(ctx context.Context, callbackStates ...string) (map[string]bool, error) {
	conds := make([]string, len(callbackStates))
	for i, s := range callbackStates {
		conds[i] = fmt.Sprintf("%s = %q", workflows.SearchCallbackState.GetName(), s)
	}
	query := fmt.Sprintf(`ExecutionStatus = "Running" AND (%s)`, strings.Join(conds, " OR "))
	return listBizIDs(ctx, o.stack.Temporal, query)
}

func listBizIDs(ctx context.Context, c client.Client, query string) (map[string]bool, error) {
	out := map[string]bool{}
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			PageSize: 1000, NextPageToken: token, Query: query,
		})
		if err != nil {
			return nil, fmt.Errorf("list workflows %q: %w", query, err)
		}
		for _, ex := range resp.GetExecutions() {
			p, ok := ex.GetSearchAttributes().GetIndexedFields()[workflows.SearchBizID.GetName()]
			if !ok {
				continue
			}
			var biz string
			if err := converter.GetDefaultDataConverter().FromPayload(p, &biz); err == nil && biz != "" {
				out[biz] = true
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return out, nil
		}
	}
}

// starterParked runs `starter --json list --callback-state parked` as a
// real process and returns the biz_ids it lists.
func (o *observer) starterParked(ctx context.Context) (map[string]bool, error) {
	cmd := o.stack.Starter(ctx, "--json", "list", "--callback-state", "parked", "--limit", "100000")
	raw, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("starter list --callback-state parked: %w%s", err, stderrOf(err))
	}
	var page struct {
		Policies []struct {
			BizID          string `json:"biz_id"`
			CallbackState  string `json:"callback_state"`
			WorkflowStatus string `json:"workflow_status"`
		} `json:"policies"`
	}
	if err := json.Unmarshal(raw, &page); err != nil {
		return nil, fmt.Errorf("starter list --json: decode: %w", err)
	}
	out := map[string]bool{}
	for _, p := range page.Policies {
		if p.CallbackState == string(workflows.CallbackParked) && p.WorkflowStatus == "Running" {
			out[p.BizID] = true
		}
	}
	return out, nil
}

// starterRetry runs `starter retry` as a real process: the operator's step.
func (o *observer) starterRetry(ctx context.Context, bizID string) error {
	cmd := o.stack.Starter(ctx, "--json", "retry", bizID, "--reason", "chaos: the reject pattern was removed")
	if _, err := cmd.Output(); err != nil {
		return fmt.Errorf("starter retry %s: %w%s", bizID, err, stderrOf(err))
	}
	return nil
}

func stderrOf(err error) string {
	var exit *exec.ExitError
	if errors.As(err, &exit) && len(exit.Stderr) > 0 {
		return ": " + strings.TrimSpace(string(exit.Stderr))
	}
	return ""
}

// settlePhase says what "settled" means.
type settlePhase int

const (
	// settleParked: every callback delivered except the park policies',
	// which are parked.
	settleParked settlePhase = iota + 1
	// settleAll: every callback delivered, nothing parked.
	settleAll
)

// unsettled lists what keeps the stack from being settled, one line per
// biz_id (empty when settled).
func (o *observer) unsettled(ctx context.Context, runs []*policyRun, phase settlePhase) ([]string, error) {
	receipts, err := o.stack.Callbacks(ctx, "")
	if err != nil {
		return nil, err
	}
	got := map[string]bool{}
	for _, r := range receipts {
		got[r.RequestID] = true
	}
	busy, err := o.visibility(ctx, string(workflows.CallbackPending), string(workflows.CallbackRetrying))
	if err != nil {
		return nil, err
	}
	parked, err := o.visibility(ctx, string(workflows.CallbackParked))
	if err != nil {
		return nil, err
	}
	stats, err := topsimStats(ctx, o.http, o.stack.TopsimURL)
	if err != nil {
		return nil, err
	}
	var out []string
	if stats.InFlight > 0 {
		out = append(out, fmt.Sprintf("topsim: %d requests in flight", stats.InFlight))
	}
	skipped := o.operator.skipped()
	for _, run := range runs {
		biz := run.Plan.BizID
		acc := run.accepted()
		holdParked := phase == settleParked && run.Plan.Park && waitsAfterSkips(run, skipped)
		switch {
		case holdParked && !parked[biz]:
			out = append(out, biz+": not parked yet")
			continue
		case holdParked:
			continue
		case parked[biz]:
			out = append(out, biz+": parked")
			continue
		case busy[biz]:
			out = append(out, biz+": callbacks pending or retrying")
			continue
		}
		var missing []int64
		for _, a := range acc {
			if !got[a.RequestID] && !skipped[a.RequestID] {
				missing = append(missing, a.Seq)
			}
		}
		if len(missing) > 0 {
			out = append(out, fmt.Sprintf("%s: seq %v not at topsim", biz, missing))
			continue
		}
		if len(acc) == 0 {
			continue
		}
		rec := o.record(ctx, biz)
		delivered := map[int64]bool{}
		for _, e := range rec.Events {
			delivered[e.Seq] = e.Callback == string(workflows.EventDelivered)
		}
		for _, a := range acc {
			if !delivered[a.Seq] && !skipped[a.RequestID] {
				out = append(out, fmt.Sprintf("%s: seq %d not delivered in the store", biz, a.Seq))
				break
			}
		}
	}
	return out, nil
}

// waitSettled polls until the stack has been settled for two polls in a
// row, or timeout passes; it returns what was still unsettled then.
func (o *observer) waitSettled(ctx context.Context, runs []*policyRun, phase settlePhase, timeout time.Duration) []string {
	deadline := time.Now().Add(timeout)
	calm := 0
	var last []string
	lastPrint := time.Now()
	for {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		left, err := o.unsettled(pctx, runs, phase)
		cancel()
		switch {
		case err != nil:
			calm = 0
			last = []string{"observing: " + err.Error()}
		case len(left) == 0:
			calm++
			last = nil
			if calm >= 2 {
				return nil
			}
		default:
			calm = 0
			last = left
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return last
		}
		if time.Since(lastPrint) >= 10*time.Second && len(last) > 0 {
			lastPrint = time.Now()
			fmt.Fprintf(o.out, "chaos: waiting: %d unsettled, e.g. %s\n", len(last), last[0])
		}
		_ = sleepCtx(ctx, time.Second)
	}
}

// observation is the final state every check reads.
type observation struct {
	Receipts []devstack.Receipt
	Stats    simStats
	Store    map[string]storeRecord
	Status   map[string]policyStatus
	// StatusErr holds the status view's error for a biz_id it could not show.
	StatusErr map[string]string

	// Parking, as seen before the operator's retry.
	ParkedVisible map[string]bool // the CallbackState search attribute
	ParkedListed  map[string]bool // `starter list --callback-state parked`
	ListErr       string
	RetryErr      map[string]string
	// ParkedAfter is what visibility shows parked once everything settled.
	ParkedAfter map[string]bool
	// OperatorActions is the audit trail's operator actions of the
	// policies chaos's operator acted on.
	OperatorActions map[string][]store.OperatorAction

	Unsettled []string // what the last settle left undone
	// StoppedLeft is the policies whose run chaos stopped and whose latest
	// run is still the stopped one once everything settled.
	StoppedLeft violations
	// ResumedAfterCompleted is the runs a sweep started right after a run
	// of the same policy that completed (a sweep that raced a report).
	ResumedAfterCompleted violations

	// Notifications are what topsim's receiver got and the store recorded
	// as lost.
	Notifications notificationState
}

// collect reads the final state.
func (o *observer) collect(ctx context.Context, runs []*policyRun, races []*raceRun, obs *observation) error {
	var err error
	if obs.Receipts, err = o.stack.Callbacks(ctx, ""); err != nil {
		return err
	}
	slices.SortFunc(obs.Receipts, func(a, b devstack.Receipt) int { return int(a.Order - b.Order) })
	if obs.Stats, err = topsimStats(ctx, o.http, o.stack.TopsimURL); err != nil {
		return err
	}
	if obs.ParkedAfter, err = o.visibility(ctx, string(workflows.CallbackParked)); err != nil {
		return err
	}
	obs.Store = map[string]storeRecord{}
	obs.Status = map[string]policyStatus{}
	obs.StatusErr = map[string]string{}
	for _, run := range runs {
		biz := run.Plan.BizID
		obs.Store[biz] = o.record(ctx, biz)
		if len(run.accepted()) == 0 {
			continue
		}
		st, err := o.ingress.status(ctx, biz)
		if err != nil {
			obs.StatusErr[biz] = err.Error()
			continue
		}
		obs.Status[biz] = st
	}
	for _, r := range races {
		obs.Store[r.BizID] = o.record(ctx, r.BizID)
	}
	obs.OperatorActions, err = operatorActionsOf(ctx, o.store, o.operator.snapshot())
	return err
}
