package store

import (
	"context"
	"testing"
	"time"
)

func testLostNotifications(t *testing.T, b backend) {
	s := newStore(t, b)
	ctx := context.Background()
	at := clock.Add(time.Hour)
	second := LostNotification{WebhookID: "ntf_B1_2_callback.parked_3", BizID: "B1", Seq: 2, Type: "callback.parked",
		OccurredAt: clock.Add(time.Minute), LostAt: at, LastError: "receiver answered HTTP 503"}
	first := LostNotification{WebhookID: "ntf_B1_1_callback.delivered_1", BizID: "B1", Seq: 1, Type: "callback.delivered",
		OccurredAt: clock, LostAt: at}
	other := LostNotification{WebhookID: "ntf_B2_1_callback.delivered_1", BizID: "B2", Seq: 1, Type: "callback.delivered",
		OccurredAt: clock, LostAt: at}
	for _, n := range []LostNotification{second, first, second, other} { // second twice: kept once
		if err := s.RecordLostNotification(ctx, n); err != nil {
			t.Fatalf("RecordLostNotification(%s): %v", n.WebhookID, err)
		}
	}
	got, err := s.LostNotifications(ctx, "B1")
	if err != nil {
		t.Fatalf("LostNotifications: %v", err)
	}
	if len(got) != 2 || got[0] != first || got[1] != second {
		t.Fatalf("LostNotifications(B1) = %+v, want [%+v %+v]", got, first, second)
	}
	if n, err := s.CountLostNotifications(ctx); err != nil || n != 3 {
		t.Fatalf("CountLostNotifications = %d, %v; want 3", n, err)
	}
	if got, err := s.LostNotifications(ctx, "B3"); err != nil || len(got) != 0 {
		t.Fatalf("LostNotifications(B3) = %v, %v; want none", got, err)
	}
	if err := s.RecordLostNotification(ctx, LostNotification{BizID: "B1", Type: "callback.parked"}); err == nil {
		t.Fatal("RecordLostNotification without a webhook_id succeeded")
	}
}
