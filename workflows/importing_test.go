package workflows

import (
	"slices"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/activities"
	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
)

// importUpdate sends an import update at virtual time at.
func (h *harness) importUpdate(at time.Duration, req ImportRequest) *reply {
	r := &reply{}
	h.env.RegisterDelayedCallback(func() { h.env.UpdateWorkflow(UpdateImport, "", r.callbacks(), req) }, at)
	return r
}

// importResult checks that an import was accepted and completed.
func (r *reply) importResult(t *testing.T) ImportResult {
	t.Helper()
	if r.rejection != nil || r.err != nil || !r.completed {
		t.Fatalf("import: rejection=%v err=%v completed=%v", r.rejection, r.err, r.completed)
	}
	res, ok := r.result.(ImportResult)
	if !ok {
		t.Fatalf("import result is %T, want ImportResult", r.result)
	}
	return res
}

func imported(events []insurance.Result, reported ...bool) []ImportEvent {
	out := make([]ImportEvent, len(events))
	for i, e := range events {
		out[i] = ImportEvent{Event: e, AlreadyReported: reported[i]}
	}
	return out
}

// outcomeText is "seq/callback", "dup seq" or "refused reason" per outcome.
func outcomeText(res ImportResult) []string {
	out := make([]string, len(res.Outcomes))
	for i, o := range res.Outcomes {
		switch {
		case o.Refusal != nil:
			out[i] = "refused " + o.Refusal.Reason
		case o.Acceptance != nil && o.Acceptance.Duplicate:
			out[i] = "dup " + string(rune('0'+o.Acceptance.Seq))
		case o.Acceptance != nil:
			out[i] = string(rune('0'+o.Acceptance.Seq)) + "/" + string(o.Callback)
		}
	}
	return out
}

// TestImportInOneUpdate: three already-reported events and one to report
// arrive in one Update. Only the fourth is sent; the three are recorded in
// one store write with who imported them; the policy is insured, and a
// live cancel then gets the next seq and is delivered.
func TestImportInOneUpdate(t *testing.T) {
	h := newHarness(t)
	h.startAttributes(fsm.StateInsured)
	events := lifecycle()
	imp := h.importUpdate(0, ImportRequest{By: "ops-alice", Events: imported(events[:4], true, true, true, false)})
	status := h.query(time.Minute)
	cancel := h.report(time.Hour, events[4])
	h.run(PolicyInput{BizID: testBizID, Settings: Settings{IdleTimeout: 2 * time.Hour}})

	res := imp.importResult(t)
	if got, want := outcomeText(res), []string{"1/imported", "2/imported", "3/imported", "4/queued"}; !slices.Equal(got, want) {
		t.Fatalf("outcomes = %v, want %v", got, want)
	}
	if acc := cancel.acceptance(t); acc.Seq != 5 || acc.State != fsm.StateCancelled {
		t.Fatalf("live cancel = %+v, want seq 5, cancelled", acc)
	}
	if got := h.deliveries(); !slices.Equal(got, []string{"4/1", "5/1"}) {
		t.Fatalf("deliveries = %v, want only the events to report (4, 5)", got)
	}
	var imports []activities.RecordInput
	for _, r := range h.records {
		if r.Import != nil {
			imports = append(imports, r)
		}
	}
	if len(imports) != 1 || len(imports[0].Events) != 3 || imports[0].Import.By != "ops-alice" || imports[0].Import.At.IsZero() {
		t.Fatalf("import records = %+v, want one write of 3 events by ops-alice", imports)
	}
	for i, e := range imports[0].Events {
		if e.Seq != int64(i+1) || e.Callback != string(EventImported) {
			t.Errorf("recorded event %d = seq %d %s, want seq %d imported", i, e.Seq, e.Callback, i+1)
		}
	}
	if imports[0].Policy.State != fsm.StateInsured || imports[0].Policy.LastSeq != 4 {
		t.Errorf("recorded policy = %+v, want insured with last_seq 4", imports[0].Policy)
	}
	if status.State != fsm.StateInsured || len(status.Events) != 4 || status.Events[0].Callback != EventImported {
		t.Errorf("status after import = %+v", status)
	}
	if len(h.upserts) != 1 || h.upserts[0]["PolicyState"] != string(fsm.StateCancelled) {
		t.Errorf("upserts = %v, want only the cancel's (the start attributes were the import's state)", h.upserts)
	}
}

// TestImportRefusesLikeALiveReport: events are judged in order against the
// policy as the earlier ones leave it; a repeated import is rejected by the
// validator (no history) with every outcome a duplicate.
func TestImportRefusesLikeALiveReport(t *testing.T) {
	h := newHarness(t)
	events := lifecycle()
	backwards := ev(insurance.StageEndorse, insurance.StatusSuccess, "2024-01-01 00:00:00")
	otherType := events[3]
	otherType.InsuranceType = insurance.TypePerformanceBond
	otherType.TimeOfOccurrence = "2024-02-02 09:00:00"
	req := ImportRequest{Events: []ImportEvent{
		{Event: events[1], AlreadyReported: true}, // underwrite in state new
		{Event: events[0], AlreadyReported: true},
		{Event: events[1], AlreadyReported: false},
		{Event: events[2], AlreadyReported: true}, // after one still to report
		{Event: events[2], AlreadyReported: false},
		{Event: backwards, AlreadyReported: false},
		{Event: otherType, AlreadyReported: false},
		{Event: events[0], AlreadyReported: true}, // the same request id again
	}}
	first := h.importUpdate(0, req)
	again := h.importUpdate(time.Minute, req)
	h.run(PolicyInput{BizID: testBizID, Settings: Settings{IdleTimeout: time.Hour}})

	want := []string{"refused illegal_transition", "1/imported", "2/queued", "refused import_order", "3/queued",
		"refused time_went_backwards", "refused insurance_type_mismatch", "dup 1"}
	if got := outcomeText(first.importResult(t)); !slices.Equal(got, want) {
		t.Fatalf("outcomes = %v, want %v", got, want)
	}
	appErr := again.rejected(t, ReasonNothingToImport)
	var res ImportResult
	if err := appErr.Details(&res); err != nil {
		t.Fatalf("details: %v", err)
	}
	// Request ids are derived from biz_id, stage, status and time, so the
	// underwrite refused at first is now the accepted seq 2.
	want = []string{"dup 2", "dup 1", "dup 2", "dup 3", "dup 3",
		"refused time_went_backwards", "refused insurance_type_mismatch", "dup 1"}
	if got := outcomeText(res); !slices.Equal(got, want) {
		t.Fatalf("repeated import outcomes = %v, want %v", got, want)
	}
	if o := first.importResult(t).Outcomes[0].Refusal; o.Transition == nil || o.Transition.State != fsm.StateNew {
		t.Errorf("illegal transition details = %+v", o)
	}
	if got := h.sent; !slices.Equal(got, []string{"2/1", "3/1"}) {
		t.Fatalf("sent to TOP = %v, want the two queued events", got)
	}
}

// TestImportedSurvivesContinueAsNew: imported events are carried as
// accepted (duplicates stay duplicates) but not as pending callbacks.
func TestImportedSurvivesContinueAsNew(t *testing.T) {
	h := newHarness(t)
	events := lifecycle()
	h.importUpdate(0, ImportRequest{Events: imported(events[:3], true, true, true)})
	h.run(PolicyInput{BizID: testBizID, Settings: Settings{ContinueAsNewAfter: 3}})
	next := h.continuedWith()
	s := next.Snapshot
	if s == nil || s.State != fsm.StateInsured || s.LastSeq != 3 || len(s.Accepted) != 3 || len(s.PendingCallbacks) != 0 {
		t.Fatalf("snapshot = %+v, want insured, 3 accepted, none pending", s)
	}
	if s.Events[2].Callback != EventImported {
		t.Errorf("event 3 callback = %s, want imported", s.Events[2].Callback)
	}
	plan, err := PlanImport(testBizID, s, imported(events[:4], true, true, true, false))
	if err != nil {
		t.Fatal(err)
	}
	if got := outcomeText(plan.Result); !slices.Equal(got, []string{"dup 1", "dup 2", "dup 3", "4/queued"}) {
		t.Fatalf("plan against the snapshot = %v", got)
	}
	if plan.State != fsm.StateInsured || !plan.Unsent {
		t.Errorf("plan = %+v", plan)
	}
}

// TestImportAuditKeyIsTheEvents: an import whose workflow task the server
// lost (a Temporal restart) after its handler had written the events and
// their audit rows is re-sent by its caller as a new Update, and its
// handler, starting from the same state, imports the same events under the
// same seqs again. Keyed by the Update's ID, the store kept a second
// "import" row per event; the key names the import of the event instead
// (an event is imported once), so both handler runs write the same rows.
// Here the two runs are two environments that receive the same import
// under two Update IDs. This test failed before the fix (the records
// carried "first" and "re-sent").
func TestImportAuditKeyIsTheEvents(t *testing.T) {
	keys := make([]string, 2)
	for i, updateID := range []string{"first", "re-sent"} {
		h := newHarness(t)
		h.startAttributes(fsm.StateInsured)
		r := &reply{}
		req := ImportRequest{By: "ops-alice", Events: imported(lifecycle()[:3], true, true, true)}
		h.env.RegisterDelayedCallback(func() { h.env.UpdateWorkflow(UpdateImport, updateID, r.callbacks(), req) }, 0)
		h.env.RegisterDelayedCallback(h.env.CancelWorkflow, time.Hour)
		h.run(PolicyInput{BizID: testBizID, Settings: Settings{IdleTimeout: 2 * time.Hour}})
		r.importResult(t)
		for _, rec := range h.records {
			if rec.Import != nil {
				keys[i] = rec.Import.Key
			}
		}
	}
	if keys[0] == "" || keys[0] != keys[1] {
		t.Fatalf("import audit keys %q, want one non-empty key whichever Update carried the import", keys)
	}
}
