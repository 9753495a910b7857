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
		g, err := s.BeginAttempt(ctx, "F1", 1, 2, clock.Add(10*time.Second), clock.Add(10*time.Second), 0)
		if err != nil || g.Attempt != 2 {
			t.Fatalf("retry's BeginAttempt = %+v, %v; want attempt 2 granted", g, err)
		}
		g, err = s.BeginAttempt(ctx, "F1", 1, 1, stale, clock.Add(15*time.Second), 0)
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
		g, err = s.BeginAttempt(ctx, "F1", 2, 1, clock.Add(time.Minute), clock.Add(time.Minute), 0)
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
		g, err := s.BeginDelivery(ctx, policy("D1"), e, 1, clock, clock, 0)
		if err != nil || g.Attempt != 1 || g.Superseded || g.Skipped || g.Delivered != nil {
			t.Fatalf("first BeginDelivery = %+v, %v; want attempt 1 granted", g, err)
		}
		// The same event again (the next attempt) records nothing new and
		// never hands out a number twice.
		g, err = s.BeginDelivery(ctx, policy("D1"), e, 1, clock.Add(time.Second), clock.Add(time.Second), 0)
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
		g, err = s.BeginDelivery(ctx, policy("D1"), e, 3, clock.Add(time.Minute), clock.Add(time.Minute), 0)
		if err != nil || g.Delivered == nil || g.Delivered.Attempt != 2 || g.Delivered.TOPRequestID != "top-1" || g.Attempt != 0 {
			t.Fatalf("BeginDelivery after delivery = %+v, %v; want the delivery by attempt 2, nothing granted", g, err)
		}
		// Another request id under seq 1: a conflict, and no attempt row.
		other := e
		other.RequestID = "r-other"
		other.Seq = 1
		if _, err := s.BeginDelivery(ctx, policy("D1"), other, 1, clock, clock, 0); !errors.As(err, new(*EventConflictError)) {
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
		if _, err := s.BeginDelivery(ctx, policy("T1"), e, 1, clock, clock, 0); err != nil {
			t.Fatal(err)
		}
		turn(1, TurnWait) // in flight
		if err := s.RecordAttempt(ctx, Attempt{BizID: "T1", Seq: 1, Attempt: 1, StartedAt: clock,
			Duration: time.Millisecond, Class: "retryable", Detail: "HTTP 502"}); err != nil {
			t.Fatal(err)
		}
		turn(1, TurnBlocked)
		if _, err := s.BeginDelivery(ctx, policy("T1"), e, 2, clock.Add(time.Second), clock.Add(time.Second), 0); err != nil {
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

// TestBeginAttemptWaitsForALiveAttempt: an attempt granted and not yet
// answered holds a lease while it may be at TOP; no other attempt of its
// callback, nor of the next one, is granted until it ends or the lease
// lapses. This is the store's half of what TestSweeperResumesStoppedRuns
// found: a run stopped from Temporal leaves its attempt running, and the
// run that resumed the policy sent the same callback beside it and then
// the next one before it ended (TOP got seq 1 again after seq 2).
func TestBeginAttemptWaitsForALiveAttempt(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		s := newStore(t, b)
		mustRecord(t, s, policy("L1"), event("L1", 1, 1, "pre_insured"), event("L1", 2, 2, "underwritten"))
		const lease = 5 * time.Second
		at := func(d time.Duration) time.Time { return clock.Add(d) }
		begin := func(seq int64, requested int, now time.Duration) Grant {
			t.Helper()
			g, err := s.BeginAttempt(ctx, "L1", seq, requested, at(now), at(now), lease)
			if err != nil {
				t.Fatal(err)
			}
			return g
		}
		busy := func(g Grant, seq int64, attempt int, until time.Duration) {
			t.Helper()
			if g.Busy == nil || g.Busy.Seq != seq || g.Busy.Attempt != attempt || !g.Busy.Until.Equal(at(until)) || g.Attempt != 0 {
				t.Fatalf("grant = %+v (busy %+v); want busy with seq %d attempt %d until %v", g, g.Busy, seq, attempt, until)
			}
		}

		// LiveLease is the busy answer, read without a transaction.
		live := func(seq int64, now time.Duration, want *Busy) {
			t.Helper()
			got, err := s.LiveLease(ctx, "L1", seq, at(now))
			if err != nil {
				t.Fatal(err)
			}
			if (got == nil) != (want == nil) || got != nil && (got.Seq != want.Seq || got.Attempt != want.Attempt || !got.Until.Equal(want.Until)) {
				t.Fatalf("live lease for seq %d at %v = %+v, want %+v", seq, now, got, want)
			}
		}
		live(1, 0, nil)
		if g := begin(1, 1, 0); g.Attempt != 1 || g.Busy != nil {
			t.Fatalf("first attempt = %+v; want granted", g)
		}
		live(1, time.Second, &Busy{Seq: 1, Attempt: 1, Until: at(lease)})
		live(2, time.Second, &Busy{Seq: 1, Attempt: 1, Until: at(lease)})
		live(3, time.Second, nil) // two ahead: not in its way
		// The resumed run's attempt of seq 1, and its next callback: both
		// wait for attempt 1, which may still be at TOP.
		busy(begin(1, 2, time.Second), 1, 1, lease)
		busy(begin(2, 1, time.Second), 1, 1, lease)
		if got, err := s.Attempts(ctx, "L1"); err != nil || len(got) != 1 {
			t.Fatalf("attempts = %+v, %v; want only attempt 1: a busy answer writes nothing", got, err)
		}
		// A live attempt renews its lease while its TOP call runs.
		if err := s.LeaseAttempt(ctx, "L1", 1, 1, at(9*time.Second)); err != nil {
			t.Fatal(err)
		}
		busy(begin(1, 2, 6*time.Second), 1, 1, 9*time.Second)
		live(2, 6*time.Second, &Busy{Seq: 1, Attempt: 1, Until: at(9 * time.Second)})
		// It ends delivered: the other attempt finds it so, the next
		// callback goes.
		if err := s.RecordAttempt(ctx, Attempt{BizID: "L1", Seq: 1, Attempt: 1, StartedAt: clock,
			Duration: 7 * time.Second, Class: ClassDelivered, TOPRequestID: "top-1"}); err != nil {
			t.Fatal(err)
		}
		live(2, 8*time.Second, nil)
		if g := begin(1, 2, 8*time.Second); g.Delivered == nil || g.Delivered.Attempt != 1 {
			t.Fatalf("seq 1 after its delivery = %+v; want delivered by attempt 1", g)
		}
		if g := begin(2, 1, 8*time.Second); g.Attempt != 1 || g.Busy != nil {
			t.Fatalf("seq 2 after seq 1's delivery = %+v; want granted", g)
		}
		// A dead worker renews nothing: its lease lapses, and Temporal's
		// retry is granted.
		busy(begin(2, 2, 12*time.Second), 2, 1, 13*time.Second)
		live(3, 12*time.Second, &Busy{Seq: 2, Attempt: 1, Until: at(13 * time.Second)})
		live(2, 13*time.Second, nil)
		if g := begin(2, 2, 13*time.Second); g.Attempt != 2 || g.Busy != nil {
			t.Fatalf("seq 2 once attempt 1's lease lapsed = %+v; want attempt 2 granted", g)
		}
		// An attempt that stops without an outcome ends its lease.
		if err := s.LeaseAttempt(ctx, "L1", 2, 2, time.Time{}); err != nil {
			t.Fatal(err)
		}
		if g := begin(2, 3, 14*time.Second); g.Attempt != 3 || g.Busy != nil {
			t.Fatalf("seq 2 after attempt 2 ended its lease = %+v; want attempt 3 granted", g)
		}
		// An outcome is never leased again.
		if err := s.RecordAttempt(ctx, Attempt{BizID: "L1", Seq: 2, Attempt: 3, StartedAt: at(14 * time.Second),
			Duration: time.Millisecond, Class: "retryable", Detail: "HTTP 502"}); err != nil {
			t.Fatal(err)
		}
		if err := s.LeaseAttempt(ctx, "L1", 2, 3, at(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if g := begin(2, 4, 15*time.Second); g.Attempt != 4 || g.Busy != nil {
			t.Fatalf("seq 2 after attempt 3's outcome = %+v; want attempt 4 granted", g)
		}
	})
}
