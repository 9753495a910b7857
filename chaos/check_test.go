package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/devstack"
	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/store"
	"github.com/insuranceflow/insuranceflow/topsim/receiver"
)

// t0 is when the fixture's events are accepted.
var t0 = time.Date(2025, 4, 8, 10, 0, 0, 0, time.UTC)

// idealRun plays a plan as a faultless stack would answer it.
func idealRun(p policyPlan) *policyRun {
	run := &policyRun{Plan: p}
	for _, st := range p.Steps {
		o := outcome{HTTPStatus: st.Want.HTTPStatus, Tries: 1, Failures: map[string]int{}}
		if st.Want.accepted() {
			o.Answer = answer{BizID: p.BizID, Seq: st.Want.Seq, RequestID: st.Want.RequestID,
				State: string(st.Want.State), Duplicate: st.Want.HTTPStatus == 200}
		} else {
			o.Answer.Error = &struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			}{Code: st.Want.Code}
		}
		run.Outcomes = append(run.Outcomes, o)
	}
	return run
}

// idealInput is the checks' input for runs whose every callback was
// delivered once, in order, and recorded.
func idealInput(t *testing.T, runs []*policyRun) checkInput {
	t.Helper()
	obs := observation{
		Store: map[string]storeRecord{}, Status: map[string]policyStatus{}, StatusErr: map[string]string{},
		ParkedVisible: map[string]bool{}, ParkedListed: map[string]bool{}, RetryErr: map[string]string{},
		ParkedAfter: map[string]bool{},
	}
	var order int64
	for _, run := range runs {
		biz := run.Plan.BizID
		acc := run.accepted()
		state, endorsements, err := implied(acc)
		if err != nil {
			t.Fatalf("%s: the fixture's accepted events are illegal: %v", biz, err)
		}
		rec := storeRecord{Policy: &store.Policy{BizID: biz, State: string(state), Endorsements: endorsements}}
		for _, a := range acc {
			order++
			ev := run.Plan.Steps[a.Step].Event
			at := t0.Add(time.Duration(order) * time.Second)
			payload, _ := json.Marshal(map[string]string{"time_of_occurrence": ev.TimeOfOccurrence})
			obs.Receipts = append(obs.Receipts, devstack.Receipt{Order: order, BizID: biz, RequestID: a.RequestID,
				Stage: a.Stage, Status: a.Status, ReceivedAt: at, Payload: payload})
			delivered := at
			rec.Events = append(rec.Events, store.Event{BizID: biz, Seq: a.Seq, RequestID: a.RequestID, Callback: "delivered",
				Attempts: 1, AcceptedAt: at.Add(-time.Millisecond), DeliveredAt: &delivered})
			rec.Attempts = append(rec.Attempts, store.Attempt{BizID: biz, Seq: a.Seq, Attempt: 1, StartedAt: at, Class: store.ClassDelivered})
			obs.Notifications.Received = append(obs.Notifications.Received, receiver.Receipt{Order: order, BizID: biz, Seq: a.Seq,
				RequestID: a.RequestID, Type: "callback.delivered", WebhookID: fmt.Sprintf("ntf_%s_%d_callback.delivered_1", biz, a.Seq)})
		}
		obs.Store[biz] = rec
		obs.Status[biz] = policyStatus{BizID: biz, State: string(state), Endorsements: endorsements}
		if run.Plan.Park {
			obs.ParkedVisible[biz] = true
			obs.ParkedListed[biz] = true
		}
	}
	return checkInput{Runs: runs, Obs: obs}
}

func fixture(t *testing.T) checkInput {
	t.Helper()
	plans, err := plan(planConfig{Policies: 20, Seed: 3, RunTag: "fx", ParkEvery: 5})
	if err != nil {
		t.Fatal(err)
	}
	runs := make([]*policyRun, len(plans))
	for i, p := range plans {
		runs[i] = idealRun(p)
	}
	return idealInput(t, runs)
}

func figureNamed(t *testing.T, figs []figure, prefix string) figure {
	t.Helper()
	for _, f := range figs {
		if strings.HasPrefix(f.Name, prefix) {
			return f
		}
	}
	t.Fatalf("no figure named %q", prefix)
	return figure{}
}

// firstWith returns the first run with at least n accepted events.
func firstWith(t *testing.T, in checkInput, n int) *policyRun {
	t.Helper()
	for _, r := range in.Runs {
		if len(r.accepted()) >= n && !r.Plan.Park {
			return r
		}
	}
	t.Fatalf("no run with %d accepted events", n)
	return nil
}

// A TOP delivery never notified, a notification recorded lost, a refused
// signature and a notification out of order each fail the run.
func TestNotificationChecks(t *testing.T) {
	run := func(edit func(*checkInput)) figure {
		in := fixture(t)
		edit(&in)
		return figureNamed(t, check(in), "notifications lost")
	}
	if f := run(func(*checkInput) {}); !f.OK || f.Value != 0 {
		t.Fatalf("faultless: %+v", f)
	}
	if f := run(func(in *checkInput) { in.Obs.Notifications.Received = in.Obs.Notifications.Received[1:] }); f.OK || f.Value != 1 {
		t.Fatalf("one delivery never notified: %+v, want 1 lost", f)
	}
	if f := run(func(in *checkInput) { in.Obs.Notifications.StoreLost = 2 }); f.OK || f.Value != 1 || !strings.Contains(f.Evidence[0], "2 notifications recorded lost") {
		t.Fatalf("recorded lost: %+v", f)
	}
	in := fixture(t)
	in.Obs.Notifications.Stats.Refused = map[string]int64{"bad_signature": 1}
	if f := figureNamed(t, check(in), "notifications whose signature"); f.OK {
		t.Fatalf("a refused signature passed: %+v", f)
	}
	in = fixture(t)
	r := in.Obs.Notifications.Received
	for i := 1; i < len(r); i++ {
		if r[i].BizID == r[i-1].BizID {
			r[i], r[i-1] = r[i-1], r[i]
			break
		}
	}
	if f := figureNamed(t, check(in), "delivered notifications out of order"); f.OK {
		t.Fatalf("notifications out of order passed: %+v", f)
	}
}

func TestChecksPassOnAFaultlessRun(t *testing.T) {
	in := fixture(t)
	figs := check(in)
	if f := failures(figs); len(f) > 0 {
		t.Fatalf("failures on a faultless run: %v", f)
	}
	if got := figureNamed(t, figs, "policies parked").Value; got != 4 {
		t.Errorf("policies parked = %d, want 4 (every 5th of 20)", got)
	}
	if got := figureNamed(t, figs, "callbacks received by topsim").Value; got != int64(len(in.Obs.Receipts)) {
		t.Errorf("callbacks received = %d, want %d", got, len(in.Obs.Receipts))
	}
}

func TestChecksCatchEachViolation(t *testing.T) {
	cases := []struct {
		name   string
		figure string
		break_ func(t *testing.T, in *checkInput) string // returns the biz_id it breaks
	}{
		{"a lost callback", "lost:", func(t *testing.T, in *checkInput) string {
			r := firstWith(t, *in, 2)
			req := r.accepted()[1].RequestID
			in.Obs.Receipts = slices.DeleteFunc(in.Obs.Receipts, func(x devstack.Receipt) bool { return x.RequestID == req })
			return r.Plan.BizID
		}},
		{"callbacks out of order", "out of order", func(t *testing.T, in *checkInput) string {
			r := firstWith(t, *in, 2)
			for i := range in.Obs.Receipts {
				if in.Obs.Receipts[i].BizID == r.Plan.BizID {
					in.Obs.Receipts[i], in.Obs.Receipts[i+1] = in.Obs.Receipts[i+1], in.Obs.Receipts[i]
					break
				}
			}
			return r.Plan.BizID
		}},
		{"a repeat under another request_id", "repeated deliveries under a different", func(t *testing.T, in *checkInput) string {
			r := firstWith(t, *in, 1)
			for _, x := range in.Obs.Receipts {
				if x.BizID == r.Plan.BizID {
					x.RequestID = "r-other"
					x.Order = 9999
					in.Obs.Receipts = append(in.Obs.Receipts, x)
					break
				}
			}
			return r.Plan.BizID
		}},
		{"a callback for a rejected event", "callbacks for rejected", func(t *testing.T, in *checkInput) string {
			for _, r := range in.Runs {
				for i, o := range r.Outcomes {
					ev := r.Plan.Steps[i].Event
					if o.HTTPStatus == 409 {
						in.Obs.Receipts = append(in.Obs.Receipts, devstack.Receipt{Order: 9999, BizID: r.Plan.BizID,
							RequestID: ev.WithRequestID().RequestID, Stage: ev.Stage, Status: ev.Status})
						return r.Plan.BizID
					}
				}
			}
			t.Fatal("the fixture has no rejected event")
			return ""
		}},
		{"an event given up on", "events given up on", func(t *testing.T, in *checkInput) string {
			r := firstWith(t, *in, 1)
			r.Outcomes[len(r.Outcomes)-1] = outcome{Unresolved: true, Tries: 9, LastError: "connection refused"}
			return r.Plan.BizID
		}},
		{"an answer against the rules", "answers that differ", func(t *testing.T, in *checkInput) string {
			r := firstWith(t, *in, 1)
			r.Mismatches = append(r.Mismatches, "step 0: HTTP 409, want 202")
			return r.Plan.BizID
		}},
		{"a parked policy missing from visibility", "parked, not visible", func(t *testing.T, in *checkInput) string {
			for _, r := range in.Runs {
				if r.Plan.Park {
					delete(in.Obs.ParkedVisible, r.Plan.BizID)
					return r.Plan.BizID
				}
			}
			return ""
		}},
		{"a parked policy missing from starter list", "parked, not listed", func(t *testing.T, in *checkInput) string {
			for _, r := range in.Runs {
				if r.Plan.Park {
					delete(in.Obs.ParkedListed, r.Plan.BizID)
					return r.Plan.BizID
				}
			}
			return ""
		}},
		{"a policy parked without a rejection", "parked without a rejection", func(t *testing.T, in *checkInput) string {
			r := firstWith(t, *in, 1)
			in.Obs.ParkedVisible[r.Plan.BizID] = true
			return r.Plan.BizID
		}},
		{"a store state the events do not imply", "store state differs", func(t *testing.T, in *checkInput) string {
			r := firstWith(t, *in, 1)
			rec := in.Obs.Store[r.Plan.BizID]
			p := *rec.Policy
			p.State = string(fsm.StateCancelled)
			if r.accepted()[len(r.accepted())-1].Stage == insurance.StageCancel {
				p.State = string(fsm.StateNew)
			}
			rec.Policy = &p
			in.Obs.Store[r.Plan.BizID] = rec
			return r.Plan.BizID
		}},
		{"a status state the events do not imply", "status (workflow) state differs", func(t *testing.T, in *checkInput) string {
			r := firstWith(t, *in, 1)
			st := in.Obs.Status[r.Plan.BizID]
			st.Endorsements += 3
			in.Obs.Status[r.Plan.BizID] = st
			return r.Plan.BizID
		}},
		{"a delivered event without its delivered row", "delivered events without", func(t *testing.T, in *checkInput) string {
			r := firstWith(t, *in, 1)
			rec := in.Obs.Store[r.Plan.BizID]
			rec.Attempts = rec.Attempts[1:]
			rec.Events[0].Attempts = 0
			in.Obs.Store[r.Plan.BizID] = rec
			return r.Plan.BizID
		}},
		{"an attempt number without a row", "events whose attempts count differs", func(t *testing.T, in *checkInput) string {
			r := firstWith(t, *in, 1)
			rec := in.Obs.Store[r.Plan.BizID]
			rec.Events[0].Attempts = 2
			rec.Attempts[0].Attempt = 2
			in.Obs.Store[r.Plan.BizID] = rec
			return r.Plan.BizID
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := fixture(t)
			biz := tc.break_(t, &in)
			f := figureNamed(t, check(in), tc.figure)
			if f.OK || f.Value == 0 {
				t.Fatalf("%q = %d ok=%v, want a violation", f.Name, f.Value, f.OK)
			}
			if !slices.Contains(f.BizIDs, biz) {
				t.Fatalf("%q names %v, want %s among them", f.Name, f.BizIDs, biz)
			}
			if len(f.Evidence) == 0 {
				t.Errorf("%q has no evidence", f.Name)
			}
		})
	}
}

func TestAttemptGapsAreClassifiedByCrashes(t *testing.T) {
	in := fixture(t)
	r := firstWith(t, in, 1)
	rec := in.Obs.Store[r.Plan.BizID]
	first := rec.Attempts[0].StartedAt
	rec.Events[0].Attempts = 3
	rec.Attempts[0].Attempt = 3
	rec.Attempts = append([]store.Attempt{{BizID: r.Plan.BizID, Seq: 1, Attempt: 1, StartedAt: first.Add(-time.Minute), Class: "retryable"}}, rec.Attempts...)
	in.Obs.Store[r.Plan.BizID] = rec

	t.Run("a kill between the neighbours", func(t *testing.T) {
		in.Faults = []faultEvent{{At: first.Add(-30 * time.Second), What: evKill}}
		figs := check(in)
		if f := figureNamed(t, figs, "attempt numbers with no row: worker SIGKILLed"); f.Value != 1 {
			t.Fatalf("%q = %d, want 1", f.Name, f.Value)
		}
		if f := figureNamed(t, figs, "attempt numbers with no row: no crash"); f.Value != 0 {
			t.Fatalf("%q = %d, want 0", f.Name, f.Value)
		}
	})
	t.Run("no crash between", func(t *testing.T) {
		in.Faults = []faultEvent{{At: first.Add(time.Second), What: evKill}}
		f := figureNamed(t, check(in), "attempt numbers with no row: no crash")
		if f.Value != 1 || !slices.Contains(f.BizIDs, r.Plan.BizID) {
			t.Fatalf("%q = %d %v, want 1 naming %s", f.Name, f.Value, f.BizIDs, r.Plan.BizID)
		}
	})
	t.Run("strict by default, informational when tolerated", func(t *testing.T) {
		if f := figureNamed(t, check(in), "events whose attempts count differs"); f.OK {
			t.Fatalf("%q ok by default, want a violation", f.Name)
		}
		in.TolerateAttemptGaps = true
		f := figureNamed(t, check(in), "events whose attempts count differs")
		if !f.OK || f.Want != nil || f.Value != 1 || !strings.HasSuffix(f.Name, "(tolerated)") {
			t.Fatalf("tolerated figure = %+v, want value 1, ok, no Want, named tolerated", f)
		}
	})
}

func TestRepeatsAreCountedNotFailed(t *testing.T) {
	in := fixture(t)
	r := firstWith(t, in, 1)
	// A repeat of the policy's last callback: at-least-once, not late.
	var last devstack.Receipt
	for _, x := range in.Obs.Receipts {
		if x.BizID == r.Plan.BizID {
			last = x
		}
	}
	last.Order = 9999
	last.ReceivedAt = last.ReceivedAt.Add(time.Minute)
	in.Obs.Receipts = append(in.Obs.Receipts, last)
	figs := check(in)
	if f := figureNamed(t, figs, "repeated deliveries (at-least-once)"); f.Value != 1 || !f.OK {
		t.Fatalf("%q = %d ok=%v, want 1 and ok", f.Name, f.Value, f.OK)
	}
	if f := figureNamed(t, figs, "repeated deliveries with no crash"); f.Value != 1 {
		t.Errorf("%q = %d, want 1 (no fault in the fixture)", f.Name, f.Value)
	}
	if f := failures(figs); len(f) > 0 {
		t.Fatalf("a repeat under the same request_id failed the run: %v", f)
	}
}

// TestLateRepeatFails: a repeat of seq N after seq N+1 arrived is what a
// stale attempt does; issue 8 makes it a failure.
func TestLateRepeatFails(t *testing.T) {
	in := fixture(t)
	r := firstWith(t, in, 1)
	for _, x := range in.Obs.Receipts {
		if x.BizID == r.Plan.BizID {
			x.Order = 9999
			x.ReceivedAt = x.ReceivedAt.Add(time.Minute)
			in.Obs.Receipts = append(in.Obs.Receipts, x)
			break
		}
	}
	figs := check(in)
	if f := figureNamed(t, figs, "repeated deliveries after a later seq"); f.Value != 1 {
		t.Errorf("%q = %d, want 1 (the repeat came after the later seqs)", f.Name, f.Value)
	}
	if f := figureNamed(t, figs, "deliveries of seq N after seq N+1 arrived"); f.OK || f.Value != 1 {
		t.Fatalf("%q = %d ok=%v, want 1 violation", f.Name, f.Value, f.OK)
	}
}
