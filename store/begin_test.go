package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestBeginAttemptFences is issue 8's third risk at the store: an attempt
// that began before another attempt of the same event was recorded has
// been given up on by Temporal (its heartbeat timed out and it was
// retried); it must not call TOP, or it could deliver a late duplicate
// after the next event. Skipped is final, like delivered: a park's write
// retried after a skip leaves the skip.
func TestBeginAttemptFences(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		s := newStore(t, b)
		mustRecord(t, s, policy("F1"), event("F1", 1, 1, "pre_insured"), event("F1", 2, 2, "underwritten"))

		stale := clock // the stale attempt began here, then its store writes stalled
		g, err := s.BeginAttempt(ctx, "F1", 1, 2, clock.Add(10*time.Second), clock.Add(10*time.Second))
		if err != nil || g.Attempt != 2 {
			t.Fatalf("retry's BeginAttempt = %+v, %v; want attempt 2 granted", g, err)
		}
		g, err = s.BeginAttempt(ctx, "F1", 1, 1, stale, clock.Add(15*time.Second))
		if err != nil || !g.Superseded || g.Attempt != 0 {
			t.Fatalf("stale attempt's BeginAttempt = %+v, %v; want superseded", g, err)
		}
		if got, err := s.Attempts(ctx, "F1"); err != nil || len(got) != 2 || got[0].Class != ClassLost || got[1].Class != ClassStarted {
			t.Fatalf("attempts = %+v, %v; want attempt 1 lost and 2 started, nothing from the stale attempt", got, err)
		}
		// The second look, right before a TOP call.
		if ok, why, err := s.StillCurrent(ctx, "F1", 1, 1); err != nil || ok || why != "attempt 2 has started since" {
			t.Fatalf("StillCurrent(attempt 1) = %v %q %v; want refused, attempt 2 named", ok, why, err)
		}
		if ok, _, err := s.StillCurrent(ctx, "F1", 1, 2); err != nil || !ok {
			t.Fatalf("StillCurrent(attempt 2) = %v %v; want current", ok, err)
		}

		if err := s.SetCallback(ctx, "F1", 2, "skipped", "idle"); err != nil {
			t.Fatal(err)
		}
		if err := s.SetCallback(ctx, "F1", 2, "parked", "parked"); err != nil {
			t.Fatal(err)
		}
		events, err := s.Events(ctx, "F1")
		if err != nil || events[1].Callback != "skipped" {
			t.Fatalf("seq 2 after skip then park = %+v, %v; want skipped kept", events[1], err)
		}
		g, err = s.BeginAttempt(ctx, "F1", 2, 1, clock.Add(time.Minute), clock.Add(time.Minute))
		if err != nil || !g.Skipped || g.Attempt != 0 {
			t.Fatalf("BeginAttempt on a skipped callback = %+v, %v; want skipped, no attempt", g, err)
		}
		if ok, why, err := s.StillCurrent(ctx, "F1", 2, 1); err != nil || ok || why != "the callback is skipped" {
			t.Fatalf("StillCurrent on a skipped callback = %v %q %v; want refused", ok, why, err)
		}
	})
}

// TestOperatorActionsAreAudited checks that an operator's decision is kept
// with who made it and why, once however often it is written.
func TestOperatorActionsAreAudited(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		s := newStore(t, b)
		mustRecord(t, s, policy("A1"), event("A1", 1, 1, "pre_insured"))
		op := OperatorAction{Action: "skip", By: "ops-alice", Reason: "TOP says duplicate", At: clock.Add(time.Hour)}
		for range 2 {
			if err := s.SetCallbackByOperator(ctx, "A1", 1, "skipped", "idle", op); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.OperatorActions(ctx, "A1")
		if err != nil || len(got) != 1 || got[0].By != "ops-alice" || got[0].Reason != "TOP says duplicate" ||
			got[0].Seq != 1 || got[0].Action != "skip" || !got[0].At.Equal(op.At) {
			t.Fatalf("operator actions = %+v, %v; want the one skip with its operator and reason", got, err)
		}
		if err := s.SetCallbackByOperator(ctx, "A1", 1, "skipped", "idle", OperatorAction{Action: "delete", At: clock}); err == nil {
			t.Fatal("an unknown action was recorded")
		}
	})
}

// TestOperatorActionRecordedOnceAcrossWorkflowTasks: the handler of an
// operator's Update runs again, at a later workflow time, when the worker
// that ran it first was killed before completing its workflow task; the
// audit trail keeps one row per Update. (Chaos found two rows for one
// retry: the key was the time alone.)
func TestOperatorActionRecordedOnceAcrossWorkflowTasks(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		s := newStore(t, b)
		mustRecord(t, s, policy("A2"), event("A2", 1, 1, "pre_insured"))
		first := OperatorAction{Action: "retry", By: "ops-bob", Reason: "fixed", At: clock.Add(time.Hour), Key: "upd-1"}
		again := first
		again.At = first.At.Add(6 * time.Second) // the handler's second run
		for _, op := range []OperatorAction{first, again} {
			if err := s.SetCallbackByOperator(ctx, "A2", 1, "queued", "pending", op); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.OperatorActions(ctx, "A2")
		if err != nil || len(got) != 1 || !got[0].At.Equal(first.At) {
			t.Fatalf("operator actions = %+v, %v; want the one retry, at its first time", got, err)
		}
		// Another Update (a later retry of the same seq) is another row.
		later := OperatorAction{Action: "retry", By: "ops-bob", Reason: "again", At: clock.Add(2 * time.Hour), Key: "upd-2"}
		if err := s.SetCallbackByOperator(ctx, "A2", 1, "queued", "pending", later); err != nil {
			t.Fatal(err)
		}
		if got, err := s.OperatorActions(ctx, "A2"); err != nil || len(got) != 2 {
			t.Fatalf("after a second Update: %d rows, %v; want 2", len(got), err)
		}
	})
}

// TestBeginDeliveryIsRecordAndBegin: BeginDelivery records the event and
// begins its attempt in one transaction, with the answers and rows of
// RecordEvents then BeginAttempt; a conflicting event begins nothing.
func TestBeginDeliveryIsRecordAndBegin(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		s := newStore(t, b)
		e := event("D1", 1, 1, "pre_insured")
		e.Callback = "sending"
		g, err := s.BeginDelivery(ctx, policy("D1"), e, 1, clock, clock)
		if err != nil || g.Attempt != 1 || g.Superseded || g.Skipped || g.Delivered != nil {
			t.Fatalf("first BeginDelivery = %+v, %v; want attempt 1 granted", g, err)
		}
		// The same event again (the next attempt) records nothing new and
		// never hands out a number twice.
		g, err = s.BeginDelivery(ctx, policy("D1"), e, 1, clock.Add(time.Second), clock.Add(time.Second))
		if err != nil || g.Attempt != 2 {
			t.Fatalf("second BeginDelivery = %+v, %v; want attempt 2", g, err)
		}
		events, err := s.Events(ctx, "D1")
		if err != nil || len(events) != 1 || events[0].Attempts != 2 || events[0].Callback != "sending" {
			t.Fatalf("events = %+v, %v; want the one event, 2 attempts", events, err)
		}
		if err := s.RecordAttempt(ctx, Attempt{BizID: "D1", Seq: 1, Attempt: 2, StartedAt: clock.Add(time.Second),
			Duration: time.Millisecond, Class: ClassDelivered, TOPRequestID: "top-1"}); err != nil {
			t.Fatal(err)
		}
		g, err = s.BeginDelivery(ctx, policy("D1"), e, 3, clock.Add(time.Minute), clock.Add(time.Minute))
		if err != nil || g.Delivered == nil || g.Delivered.Attempt != 2 || g.Delivered.TOPRequestID != "top-1" || g.Attempt != 0 {
			t.Fatalf("BeginDelivery after delivery = %+v, %v; want the delivery by attempt 2, nothing granted", g, err)
		}
		// Another request id under seq 1: a conflict, and no attempt row.
		other := e
		other.RequestID = "r-other"
		other.Seq = 1
		if _, err := s.BeginDelivery(ctx, policy("D1"), other, 1, clock, clock); !errors.As(err, new(*EventConflictError)) {
			t.Fatalf("conflicting BeginDelivery: %v, want an EventConflictError", err)
		}
		if got, err := s.Attempts(ctx, "D1"); err != nil || len(got) != 2 {
			t.Fatalf("attempts = %+v, %v; want the two of before", got, err)
		}
	})
}

// TestTurnAfter: the gate of a pipelined callback opens only once the one
// ahead is settled, and says "blocked" once that one's attempt failed.
func TestTurnAfter(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		s := newStore(t, b)
		turn := func(seq int64, want Turn) {
			t.Helper()
			if got, err := s.TurnAfter(ctx, "T1", seq); err != nil || got != want {
				t.Fatalf("TurnAfter(seq %d) = %v, %v; want %v", seq, got, err, want)
			}
		}
		turn(1, TurnWait) // not recorded yet: its attempt has not begun
		e := event("T1", 1, 1, "pre_insured")
		e.Callback = "sending"
		if _, err := s.BeginDelivery(ctx, policy("T1"), e, 1, clock, clock); err != nil {
			t.Fatal(err)
		}
		turn(1, TurnWait) // in flight
		if err := s.RecordAttempt(ctx, Attempt{BizID: "T1", Seq: 1, Attempt: 1, StartedAt: clock,
			Duration: time.Millisecond, Class: "retryable", Detail: "HTTP 502"}); err != nil {
			t.Fatal(err)
		}
		turn(1, TurnBlocked)
		if _, err := s.BeginDelivery(ctx, policy("T1"), e, 2, clock.Add(time.Second), clock.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		turn(1, TurnBlocked) // retrying until an attempt settles it
		if err := s.RecordAttempt(ctx, Attempt{BizID: "T1", Seq: 1, Attempt: 2, StartedAt: clock.Add(time.Second),
			Duration: time.Millisecond, Class: ClassDelivered, TOPRequestID: "top-1"}); err != nil {
			t.Fatal(err)
		}
		turn(1, TurnGo)

		// Parked blocks; skipped lets the next one go.
		e2 := event("T1", 2, 1, "underwritten")
		if err := s.RecordEvents(ctx, policy("T1"), e2); err != nil {
			t.Fatal(err)
		}
		turn(2, TurnWait) // queued
		if err := s.SetCallback(ctx, "T1", 2, "parked", "parked"); err != nil {
			t.Fatal(err)
		}
		turn(2, TurnBlocked)
		if err := s.SetCallback(ctx, "T1", 2, "skipped", "idle"); err != nil {
			t.Fatal(err)
		}
		turn(2, TurnGo)
	})
}
