package policyclient

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/store"
)

// TestOperatorActionsFromStore checks that the client reads who acted, and
// why, from a real store, oldest first, and that a policy nobody acted on
// has an empty (not nil) trail.
func TestOperatorActionsFromStore(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	c := &Client{Audit: s}
	at := time.Date(2025, 4, 8, 1, 0, 0, 0, time.UTC)
	r := event(insurance.StagePreInsure, insurance.StatusSuccess)
	if err := s.RecordEvents(ctx, store.Policy{BizID: r.BizID, InsuranceType: int(r.InsuranceType)},
		storedEvent(t, 1, r, fsm.StatePreInsured, 0, at)); err != nil {
		t.Fatalf("RecordEvents: %v", err)
	}

	got, err := c.OperatorActions(ctx, r.BizID)
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("OperatorActions before any = %#v, %v; want an empty list", got, err)
	}

	for _, op := range []store.OperatorAction{
		{Action: "retry", By: "ops-alice", Reason: "app key renewed", At: at.Add(time.Hour)},
		{Action: "skip", By: "bob", Reason: "TOP support: ignore", At: at.Add(2 * time.Hour)},
	} {
		callback := map[string]string{"retry": "queued", "skip": "skipped"}[op.Action]
		if err := s.SetCallbackByOperator(ctx, r.BizID, 1, callback, "idle", op); err != nil {
			t.Fatalf("SetCallbackByOperator: %v", err)
		}
	}
	got, err = c.OperatorActions(ctx, r.BizID)
	want := []OperatorActionView{
		{Seq: 1, Action: "retry", By: "ops-alice", Reason: "app key renewed", At: at.Add(time.Hour)},
		{Seq: 1, Action: "skip", By: "bob", Reason: "TOP support: ignore", At: at.Add(2 * time.Hour)},
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("OperatorActions = %+v, %v\nwant %+v", got, err, want)
	}

	t.Run("no audit trail configured", func(t *testing.T) {
		if _, err := (&Client{}).OperatorActions(ctx, r.BizID); !errors.Is(err, ErrNoAuditTrail) {
			t.Fatalf("err = %v, want ErrNoAuditTrail", err)
		}
	})
}
