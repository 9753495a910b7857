package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/devstack"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/store"
)

// TestRaceInvariantsCatchTheirViolations plants each violation issue 8's
// checks exist for and expects exactly that invariant to fail.
func TestRaceInvariantsCatchTheirViolations(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name  string
		plant func(in *checkInput)
		fails string
	}{
		{"an event accepted after the cancel", func(in *checkInput) {
			in.Races = []*raceRun{{BizID: "R1", Answers: []raceAnswer{
				{Stage: insurance.StageCancel, Status: http.StatusAccepted, Seq: 4, RequestID: "c"},
				{Stage: insurance.StageEndorse, Status: http.StatusAccepted, Seq: 5, RequestID: "e"},
			}}}
		}, "events accepted after the policy's accepted cancel"},
		{"one seq for two events", func(in *checkInput) {
			in.Races = []*raceRun{{BizID: "R2", Answers: []raceAnswer{
				{Stage: insurance.StageEndorse, Status: http.StatusAccepted, Seq: 4, RequestID: "a"},
				{Stage: insurance.StageCancel, Status: http.StatusAccepted, Seq: 4, RequestID: "b"},
			}}}
		}, "seqs re-used for another event"},
		{"an action applied twice", func(in *checkInput) {
			in.Operator = []opAction{{BizID: "P1", Seq: 1, RequestID: "p1", Action: "retry", Reason: "r1",
				Answers: []opAnswer{{Status: 200, Seq: 1}, {Status: 200, Seq: 1}}}}
			in.Obs.OperatorActions = map[string][]store.OperatorAction{"P1": {
				{Seq: 1, Action: "retry", Reason: "r1", At: at}, {Seq: 1, Action: "retry", Reason: "r1", At: at.Add(time.Second)},
			}}
		}, "operator actions not applied exactly once"},
		{"an action answered only pending, then recorded twice (a handler run again after a lost workflow task)", func(in *checkInput) {
			pending := opAnswer{Status: 409, Code: "operator_action_pending"}
			in.Operator = []opAction{{BizID: "P4", Seq: 1, RequestID: "p4", Action: "retry", Reason: "r4",
				Answers: []opAnswer{pending, pending}}}
			in.Obs.OperatorActions = map[string][]store.OperatorAction{"P4": {
				{Seq: 1, Action: "retry", Reason: "r4", At: at}, {Seq: 1, Action: "retry", Reason: "r4", At: at.Add(6 * time.Second)},
			}}
		}, "operator actions not applied exactly once"},
		{"an answer for another seq", func(in *checkInput) {
			in.Operator = []opAction{{BizID: "P2", Seq: 1, RequestID: "p2", Action: "skip", Reason: "r2",
				Answers: []opAnswer{{Status: 200, Seq: 2, Callback: "skipped"}, {Status: 200, Seq: 2, Repeated: true}}}}
			in.Obs.OperatorActions = map[string][]store.OperatorAction{"P2": {{Seq: 1, Action: "skip", Reason: "r2", At: at}}}
		}, "operator actions answered for another seq"},
		{"a skipped callback delivered later", func(in *checkInput) {
			in.Operator = []opAction{{BizID: "P3", Seq: 1, RequestID: "p3", Action: "skip", Reason: "r3", Answered: at,
				Answers: []opAnswer{{Status: 200, Seq: 1, Callback: "skipped"}, {Status: 200, Seq: 1, Repeated: true}}}}
			in.Obs.OperatorActions = map[string][]store.OperatorAction{"P3": {{Seq: 1, Action: "skip", Reason: "r3", At: at}}}
			in.Obs.Receipts = append(in.Obs.Receipts, receiptFor("P3", "p3", at.Add(time.Minute)))
		}, "skipped callbacks delivered or parked again"},
		{"a scheduled class that never happened", func(in *checkInput) {
			in.Scheduled = scheduledClasses{StoreOutage: true}
		}, "fault classes the run did not exercise"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := fixture(t)
			tt.plant(&in)
			for _, f := range raceFigures(in) {
				if f.Want == nil {
					continue
				}
				if f.Name == tt.fails && f.OK {
					t.Errorf("%q passed, want it to fail", f.Name)
				}
				if f.Name != tt.fails && !f.OK {
					t.Errorf("%q failed too: %v", f.Name, f.Evidence)
				}
			}
		})
	}
}

func receiptFor(biz, requestID string, at time.Time) devstack.Receipt {
	return devstack.Receipt{Order: 99999, BizID: biz, RequestID: requestID, ReceivedAt: at}
}

// TestOperatorAction: the first policy acted on gets a skip whatever its
// place in the plan, and so does every next first action until one skip
// is applied; after that every third policy; second actions are retries.
func TestOperatorAction(t *testing.T) {
	for _, tt := range []struct {
		actedOn int
		first   bool
		skips   int
		want    string
	}{
		{0, true, 0, "skip"},
		{1, true, 0, "skip"}, // the first skip was not applied
		{1, true, 1, "retry"},
		{2, true, 1, "retry"},
		{3, true, 1, "skip"},
		{3, false, 1, "retry"},
		{0, false, 0, "retry"},
	} {
		if got := operatorAction(tt.actedOn, tt.first, tt.skips); got != tt.want {
			t.Errorf("operatorAction(%d, %v, %d)=%q, want %q", tt.actedOn, tt.first, tt.skips, got, tt.want)
		}
	}
}
