package activities

import (
	"context"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/top"
)

// TestLeaseIsRenewedWhileTheCallRuns: a granted attempt's lease moves on
// with the heartbeat ticks while its TOP call runs, so an attempt of its
// callback that asks meanwhile is told to wait longer each time; once the
// outcome is recorded nothing waits.
func TestLeaseIsRenewedWhileTheCallRuns(t *testing.T) {
	f := newFixture(t)
	f.acts.Now = time.Now // the lease is compared with the asker's clock
	f.acts.HeartbeatEvery = 2 * time.Millisecond
	g := newGatedTOP()
	f.acts.TOP = g
	done := f.run(input(0))
	<-g.reached
	ctx := context.Background()
	busyUntil := func() time.Time {
		t.Helper()
		now := time.Now()
		grant, err := f.store.BeginAttempt(ctx, bizID, 1, 2, now, now, 0)
		if err != nil || grant.Busy == nil || grant.Busy.Attempt != 1 {
			t.Fatalf("another attempt during the call = %+v, %v; want busy with attempt 1", grant, err)
		}
		return grant.Busy.Until
	}
	first := busyUntil()
	time.Sleep(50 * time.Millisecond)
	if later := busyUntil(); !later.After(first) {
		t.Fatalf("lease until %v, then %v 50 ms on: not renewed", first, later)
	}
	g.release <- top.Outcome{Class: top.ClassDelivered, RequestID: "top-1"}
	if err := wait(t, done); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if grant, err := f.store.BeginAttempt(ctx, bizID, 1, 2, now, now, 0); err != nil || grant.Delivered == nil {
		t.Fatalf("after the delivery = %+v, %v; want delivered", grant, err)
	}
}

// TestLeaseEndsWithoutAnOutcome: an attempt that stops without TOP's
// answer on record (here its call panics) ends its lease, so the next
// attempt is granted at once rather than when the lease would lapse (the
// test environment's lease runs to the attempt's deadline, 10 min on).
func TestLeaseEndsWithoutAnOutcome(t *testing.T) {
	f := newFixture(t)
	f.acts.Now = time.Now
	f.acts.TOP = callTOP(func(context.Context, insurance.Result) top.Outcome { panic("call failed") })
	if _, err := f.deliver(input(0)); err == nil {
		t.Fatal("DeliverCallback succeeded, want the panic")
	}
	now := time.Now()
	grant, err := f.store.BeginAttempt(context.Background(), bizID, 1, 2, now, now, 0)
	if err != nil || grant.Busy != nil || grant.Attempt != 2 {
		t.Fatalf("the next attempt = %+v (busy %+v), %v; want attempt 2 granted", grant, grant.Busy, err)
	}
}
