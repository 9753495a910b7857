package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// parkMarker in a biz_id makes the dev stack's TOP simulator refuse the
// callback permanently, so the policy's callback parks.
const parkMarker = "PARK"

// demoPolicy is one policy the demo leaves behind, and why.
type demoPolicy struct {
	label  string // end of the biz_id
	stages []insurance.Stage
	note   string
}

func demoPolicies() []demoPolicy {
	pre, under, insure := insurance.StagePreInsure, insurance.StageUnderwrite, insurance.StageInsure
	return []demoPolicy{
		{label: "preinsured", stages: []insurance.Stage{pre}},
		{label: "underwritten", stages: []insurance.Stage{pre, under}},
		{label: "insured", stages: []insurance.Stage{pre, under, insure}},
		{label: "endorsed", stages: []insurance.Stage{pre, under, insure, insurance.StageEndorse}, note: "insured, endorsed once"},
		{label: "cancelled", stages: []insurance.Stage{pre, under, insure, insurance.StageCancel}},
		{label: parkMarker, stages: []insurance.Stage{pre},
			note: "TOP refuses " + parkMarker + " biz_ids, so its callback parks"},
	}
}

type demoView struct {
	Policies []demoPolicyView `json:"policies"`
	Illegal  demoIllegalView  `json:"illegal_event"`
}

type demoPolicyView struct {
	BizID        string `json:"biz_id"`
	Events       int    `json:"events"`
	State        string `json:"state"`
	LastSeq      int64  `json:"last_seq"`
	Note         string `json:"note,omitempty"`
	CallbackPark bool   `json:"callback_parks"`
}

// demoIllegalView is the event sent to be refused, and the refusal.
type demoIllegalView struct {
	BizID   string   `json:"biz_id"`
	Stage   string   `json:"stage"`
	Status  string   `json:"status"`
	Outcome string   `json:"outcome"` // always "rejected" in a successful demo
	Reason  string   `json:"reason"`
	Message string   `json:"message"`
	Allowed []string `json:"allowed,omitempty"`
	line    string   // the rejection as `starter report` prints it
}

func (v demoView) write(w io.Writer) error {
	t := newTable(w, "BIZ_ID", "EVENTS", "STATE", "SEQ", "NOTE")
	for _, p := range v.Policies {
		t.row(p.BizID, strconv.Itoa(p.Events), p.State, strconv.FormatInt(p.LastSeq, 10), p.Note)
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nillegal event: %s %s on %s\n  %s\n",
		v.Illegal.Stage, v.Illegal.Status, v.Illegal.BizID, v.Illegal.line)
	for _, p := range v.Policies {
		if p.CallbackPark {
			fmt.Fprintf(w, "\nparked callback: once it parks, `starter status %[1]s` shows it; "+
				"`starter retry %[1]s` or `starter skip %[1]s` resolves it\n", p.BizID)
		}
	}
	return nil
}

// demoError says the stack did not answer the demo as a correct stack must.
type demoError struct {
	BizID  string
	Stage  insurance.Stage
	Status insurance.Status
	Want   string
}

func (e *demoError) Error() string {
	return fmt.Sprintf("demo: %s %s on %s was accepted, want %s", e.Stage, e.Status, e.BizID, e.Want)
}

// demo leaves a policy in every state, shows one rejection and starts one
// policy whose callback will park.
func (a *app) demo(ctx context.Context, ops policyOps, prefix string) error {
	end := a.now()
	var v demoView
	var preInsured plannedPolicy
	for _, d := range demoPolicies() {
		bizID := prefix + d.label
		p := plannedPolicy{bizID: bizID, events: planEvents(bizID, insurance.TypeHomeProperty, d.stages, 0, end)}
		var last workflows.Acceptance
		for _, ev := range p.events {
			acc, err := a.report(ctx, ops, ev)
			if err != nil {
				return fmt.Errorf("demo policy %s: %s %s: %w", bizID, ev.Stage, ev.Status, err)
			}
			last = acc
		}
		v.Policies = append(v.Policies, demoPolicyView{
			BizID: bizID, Events: len(p.events), State: string(last.State), LastSeq: last.Seq,
			Note: d.note, CallbackPark: d.label == parkMarker,
		})
		if d.label == "preinsured" {
			preInsured = p
		}
	}

	// Insure straight after pre-insure skips underwriting: illegal.
	illegal := preInsured.events[len(preInsured.events)-1]
	illegal.Stage, illegal.Status = insurance.StageInsure, insurance.StatusSuccess
	illegal.TimeOfOccurrence = end.Add(eventSpacing).In(insurance.Location()).Format(insurance.TimeLayout)
	_, err := a.report(ctx, ops, illegal)
	var rej *policyclient.Rejection
	switch {
	case err == nil:
		return &demoError{BizID: illegal.BizID, Stage: illegal.Stage, Status: illegal.Status, Want: "an illegal_transition rejection"}
	case !errors.As(err, &rej):
		return fmt.Errorf("demo illegal event on %s: %w", illegal.BizID, err)
	}
	v.Illegal = demoIllegalView{
		BizID: illegal.BizID, Stage: illegal.Stage.String(), Status: illegal.Status.String(),
		Outcome: "rejected", Reason: rej.Reason, Message: rej.Message, line: formatRejection(rej),
	}
	if rej.Details != nil {
		v.Illegal.Allowed = rej.Details.AllowedStages
	}
	return a.emit(v, v.write)
}

// report sends one event, bounded by --timeout.
func (a *app) report(ctx context.Context, ops policyOps, r insurance.Result) (workflows.Acceptance, error) {
	ctx, cancel := a.call(ctx)
	defer cancel()
	return ops.Report(ctx, r)
}
