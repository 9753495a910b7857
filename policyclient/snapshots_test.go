package policyclient

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/store"
	"github.com/insuranceflow/insuranceflow/workflows"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "insuranceflow.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// storedEvent builds a store.Event from an insurance result, as the
// activities record an accepted event.
func storedEvent(t *testing.T, seq int64, r insurance.Result, after fsm.State, endorsements int, accepted time.Time) store.Event {
	t.Helper()
	r = r.WithRequestID()
	payload, err := r.APIJSON()
	if err != nil {
		t.Fatalf("encode event: %v", err)
	}
	return store.Event{
		BizID: r.BizID, Seq: seq, RequestID: r.RequestID, Stage: int(r.Stage), Status: int(r.Status),
		TimeOfOccurrence: r.TimeOfOccurrence, Payload: payload, AcceptedAt: accepted,
		StateAfter: string(after), EndorsementsAfter: endorsements,
	}
}

func TestStoreSnapshots(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	snaps := StoreSnapshots{Store: s}

	t.Run("unknown policy is nil", func(t *testing.T) {
		snap, err := snaps.Snapshot(ctx, "NEVER-SEEN")
		if err != nil || snap != nil {
			t.Fatalf("Snapshot=%+v, %v; want nil, nil", snap, err)
		}
	})

	base := time.Date(2025, 4, 8, 1, 0, 0, 0, time.UTC)
	ev := func(stage insurance.Stage, at string) insurance.Result {
		r := event(stage, insurance.StatusSuccess)
		r.TimeOfOccurrence = at
		return r
	}
	events := []store.Event{
		storedEvent(t, 1, ev(insurance.StagePreInsure, "2025-04-08 09:00:00"), fsm.StatePreInsured, 0, base),
		storedEvent(t, 2, ev(insurance.StageUnderwrite, "2025-04-08 09:10:00"), fsm.StateUnderwritten, 0, base.Add(time.Minute)),
		storedEvent(t, 3, ev(insurance.StageInsure, "2025-04-08 09:20:00"), fsm.StateInsured, 0, base.Add(2*time.Minute)),
		storedEvent(t, 4, ev(insurance.StageEndorse, "2025-04-08 09:30:00"), fsm.StateInsured, 1, base.Add(3*time.Minute)),
	}
	if err := s.RecordEvents(ctx, store.Policy{BizID: bizID, InsuranceType: 1, PolicyNumber: "12345678A"}, events...); err != nil {
		t.Fatalf("RecordEvents: %v", err)
	}
	attempt := func(seq int64, n int, at time.Time, class, msg string) {
		t.Helper()
		if err := s.RecordAttempt(ctx, store.Attempt{BizID: bizID, Seq: seq, Attempt: n, StartedAt: at, Duration: time.Second, Class: class, SubMsg: msg}); err != nil {
			t.Fatalf("RecordAttempt: %v", err)
		}
	}
	attempt(1, 1, base.Add(time.Second), store.ClassDelivered, "")
	attempt(2, 1, base.Add(61*time.Second), store.ClassDelivered, "")
	attempt(3, 1, base.Add(121*time.Second), "retryable", "service unavailable")
	attempt(3, 2, base.Add(181*time.Second), "permanent", "invalid app key")
	if err := s.SetCallback(ctx, bizID, 3, "parked", "parked"); err != nil {
		t.Fatalf("SetCallback: %v", err)
	}

	snap, err := snaps.Snapshot(ctx, bizID)
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if snap.State != fsm.StateInsured || snap.Endorsements != 1 || snap.InsuranceType != insurance.TypeHomeProperty ||
		snap.PolicyNumber != "12345678A" || snap.LastSeq != 4 || snap.LastOccurredAt != "2025-04-08 09:30:00" {
		t.Errorf("policy fields=%+v, want insured, 1 endorsement, home_property, 12345678A, seq 4 at 2025-04-08 09:30:00", *snap)
	}
	wantAccepted := make([]workflows.Acceptance, len(events))
	for i, e := range events {
		wantAccepted[i] = workflows.Acceptance{BizID: bizID, RequestID: e.RequestID, Seq: e.Seq,
			Stage: insurance.Stage(e.Stage), Status: insurance.StatusSuccess, State: fsm.State(e.StateAfter)}
	}
	if !reflect.DeepEqual(snap.Accepted, wantAccepted) {
		t.Errorf("accepted=%+v, want %+v", snap.Accepted, wantAccepted)
	}

	if len(snap.Events) != 4 {
		t.Fatalf("events=%d, want 4", len(snap.Events))
	}
	first := snap.Events[0]
	if first.Callback != workflows.EventDelivered || first.Attempts != 1 || first.DeliveredAt == nil ||
		!first.DeliveredAt.Equal(base.Add(2*time.Second)) || !first.AcceptedAt.Equal(base) {
		t.Errorf("event 1=%+v, want delivered after 1 attempt at %v", first, base.Add(2*time.Second))
	}
	third := snap.Events[2]
	if third.Callback != workflows.EventParked || third.Attempts != 2 || third.LastError != "invalid app key" || third.LastClass != "permanent" {
		t.Errorf("event 3=%+v, want parked after 2 attempts, last error %q", third, "invalid app key")
	}

	if len(snap.PendingCallbacks) != 2 {
		t.Fatalf("pending callbacks=%+v, want seq 3 and 4", snap.PendingCallbacks)
	}
	head, next := snap.PendingCallbacks[0], snap.PendingCallbacks[1]
	if head.Seq != 3 || head.State != workflows.EventParked || head.Attempts != 2 || !head.FirstAttemptAt.Equal(base.Add(121*time.Second)) ||
		!head.BudgetStartedAt.Equal(head.FirstAttemptAt) || head.StateAfter != fsm.StateInsured || head.EndorsementsAfter != 0 {
		t.Errorf("head=%+v, want seq 3 parked, 2 attempts, first at %v, state after insured", head, base.Add(121*time.Second))
	}
	wantEvent := ev(insurance.StageInsure, "2025-04-08 09:20:00").WithRequestID()
	if head.Event != wantEvent {
		t.Errorf("head event=%v, want %v", head.Event, wantEvent)
	}
	if head.Event.BankAccountManagerName != "王小丫" {
		t.Errorf("head event lost the manager's name, which TOP must receive")
	}
	if next.Seq != 4 || next.State != workflows.EventQueued || !next.FirstAttemptAt.IsZero() || next.EndorsementsAfter != 1 {
		t.Errorf("next=%+v, want seq 4 queued, never attempted", next)
	}
	if got := callbackState(snap); got != workflows.CallbackParked {
		t.Errorf("derived callback state=%q, want parked", got)
	}
}

// TestReportAgainstAStoredCancelledPolicy runs Report with the real store:
// once Temporal says the cancelled policy has no open run, the store answers
// without starting one.
func TestReportAgainstAStoredCancelledPolicy(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	base := time.Date(2025, 4, 8, 1, 0, 0, 0, time.UTC)
	ins := event(insurance.StageInsure, insurance.StatusSuccess)
	cancel := event(insurance.StageCancel, insurance.StatusSuccess)
	cancel.TimeOfOccurrence = "2025-04-09 10:00:00"
	if err := s.RecordEvents(ctx, store.Policy{BizID: bizID, InsuranceType: 1},
		storedEvent(t, 3, ins, fsm.StateInsured, 0, base),
		storedEvent(t, 4, cancel, fsm.StateCancelled, 0, base.Add(time.Hour)),
	); err != nil {
		t.Fatalf("RecordEvents: %v", err)
	}
	f := &frontend{update: noOpenRun(alreadyClosed)}
	c := &Client{Temporal: startFrontend(t, f), Snapshots: StoreSnapshots{Store: s}}

	got, err := c.Report(ctx, cancel)
	if err != nil {
		t.Fatalf("Report re-sent cancel: %v", err)
	}
	want := workflows.Acceptance{BizID: bizID, RequestID: cancel.WithRequestID().RequestID, Seq: 4,
		Stage: insurance.StageCancel, Status: insurance.StatusSuccess, State: fsm.StateCancelled, Duplicate: true}
	if got != want {
		t.Fatalf("acceptance=%+v, want %+v", got, want)
	}
	if len(f.updates) != 1 || f.calls() != 1 {
		t.Fatalf("updates=%d temporal calls=%d, want 1 and 1 (no update-with-start)", len(f.updates), f.calls())
	}
}

// An operator action recorded with the caller's request id comes back with
// it in the snapshot, so a run that loads the policy still answers a
// re-send as repeated; one keyed by its park comes back without.
func TestSnapshotOperatorRequestIDs(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	at := time.Date(2025, 4, 8, 1, 0, 0, 0, time.UTC)
	e1 := storedEvent(t, 1, event(insurance.StagePreInsure, insurance.StatusSuccess), fsm.StatePreInsured, 0, at)
	e1.Callback = "parked"
	if err := s.RecordEvents(ctx, store.Policy{BizID: bizID, InsuranceType: 1, PolicyNumber: "12345678A"}, e1); err != nil {
		t.Fatal(err)
	}
	for i, key := range []string{workflows.OperatorKeyPrefix + "op-7", "park-after-attempt-2-action-2"} {
		op := store.OperatorAction{Action: workflows.ActionRetry, By: "ops-bob", Reason: "checked", At: at.Add(time.Duration(i+1) * time.Minute), Key: key}
		if err := s.SetCallbackByOperator(ctx, bizID, 1, "queued", "idle", op); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := StoreSnapshots{Store: s}.Snapshot(ctx, bizID)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.OperatorActions) != 2 || snap.OperatorActions[0].RequestID != "op-7" || snap.OperatorActions[1].RequestID != "" {
		t.Fatalf("operator actions = %+v, want op-7 then none", snap.OperatorActions)
	}
	res, ok := repeatedFromStore(snap, workflows.UpdateRetryCallback, workflows.OperatorRequest{RequestID: "op-7"})
	if !ok || res != (workflows.OperatorResult{Seq: 1, Callback: workflows.EventQueued, Repeated: true}) {
		t.Fatalf("repeatedFromStore by request id = %+v, %v", res, ok)
	}
}
