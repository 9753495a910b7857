package activities

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/insuranceflow/insuranceflow/store"
)

// One callback of a policy at TOP at a time. Temporal runs one attempt of
// an activity at a time, and a run delivers one callback at a time, but a
// run stopped from Temporal (cancelled, terminated) leaves its attempt
// running in its worker, and the run the sweeper or the next report starts
// for the policy knows nothing of it. Its attempt of the same callback
// would reach TOP beside the stopped run's (TOP gets it twice), and once
// either is delivered its next callback could overtake the other (TOP gets
// seq 1 again after seq 2). So each granted attempt holds a lease in the
// store while it may call TOP (store.LeaseAttempt), and an attempt of the
// same callback, or of the next one, waits for it to end: the worker that
// runs both wakes it through Turns; otherwise it asks the store again,
// backing off up to leasePoll. A dead worker's lease lapses about when
// Temporal's heartbeat timeout retries its attempt anyway (see leaseFor).

// leasePoll bounds the backoff between two looks at the store while an
// attempt waits for another's lease.
const leasePoll = time.Second

// leaseFor is how long an attempt's lease lasts unless renewed: half its
// heartbeat timeout. The lease is renewed with each heartbeat tick (a
// quarter of that timeout), so a live attempt may miss one renewal, and a
// dead worker's lapses before Temporal gives up on its attempt (the SDK
// may have sent its last heartbeat up to 80% of the timeout before it
// died, so that can be as early as a fifth of the timeout after): the
// retry waits for it by a few seconds at most. An attempt without a
// heartbeat timeout holds its lease until its deadline.
func (a *Activities) leaseFor(ctx context.Context) time.Duration {
	info := activity.GetInfo(ctx)
	if info.HeartbeatTimeout > 0 {
		// Two ticks at least, should HeartbeatEvery be set slower.
		return max(info.HeartbeatTimeout/2, 2*heartbeatInterval(a.HeartbeatEvery, info.HeartbeatTimeout))
	}
	if !info.Deadline.IsZero() {
		return max(time.Until(info.Deadline), 0)
	}
	return 0
}

// begin is BeginDelivery, waiting while another attempt holds a lease that
// keeps this one from TOP (Grant.Busy). It returns the time the granted
// attempt started, and a Busy grant only when ctx ended during the wait.
// A wait is logged once and its length recorded (Metrics.CallbackLeaseWaited).
func (a *Activities) begin(ctx context.Context, p store.Policy, e store.Event, attempt int, began time.Time, lease time.Duration) (time.Time, store.Grant, error) {
	var waitedFrom time.Time
	for {
		started := a.now()
		sctx, end := a.span(ctx, "store.BeginDelivery")
		grant, err := a.Store.BeginDelivery(sctx, p, e, attempt, began, started, lease)
		end(err)
		if err != nil || grant.Busy == nil {
			return started, grant, err
		}
		if waitedFrom.IsZero() {
			waitedFrom = time.Now()
			defer func() { a.metrics().CallbackLeaseWaited(time.Since(waitedFrom)) }()
			busy := grant.Busy
			a.logger().InfoContext(ctx, "callback waits for another attempt to end",
				"biz_id", e.BizID, "seq", e.Seq, "waits_for_seq", busy.Seq, "waits_for_attempt", busy.Attempt,
				"lease_until", busy.Until)
		}
		if !a.awaitLeases(ctx, e, grant.Busy) {
			return started, grant, nil
		}
	}
}

// awaitLeases waits until no attempt holds a lease in e's way, starting
// from busy: woken by Turns the moment such an attempt in this process
// ends, and otherwise looking at the store (a read, store.LiveLease),
// backing off from 50ms up to leasePoll and never past the lease's end. It
// reports false when ctx ended first.
func (a *Activities) awaitLeases(ctx context.Context, e store.Event, busy *store.Busy) bool {
	backoff := 50 * time.Millisecond
	for {
		// Watch, then look, so an end between the two still wakes this one.
		woken, release := a.Turns.watch(e.BizID, busy.Seq)
		now, err := a.Store.LiveLease(ctx, e.BizID, e.Seq, a.now())
		switch {
		case err != nil && ctx.Err() == nil:
			// The transaction that follows reads the leases again; until
			// then, keep to the lease last seen.
			a.logger().WarnContext(ctx, "could not look at the leases of the attempts ahead", "biz_id", e.BizID, "seq", e.Seq, "error", err)
		case err == nil && now == nil:
			release()
			return true
		case err == nil && now.Seq != busy.Seq:
			// Another attempt is in the way now: wake on its end instead.
			release()
			woken, release = a.Turns.watch(e.BizID, now.Seq)
			busy = now
		case err == nil:
			busy = now
		}
		timer := time.NewTimer(min(backoff, max(time.Until(busy.Until), time.Millisecond)))
		backoff = min(2*backoff, leasePoll)
		select {
		case <-woken:
		case <-timer.C:
		case <-ctx.Done():
		}
		timer.Stop()
		release()
		if ctx.Err() != nil {
			return false
		}
	}
}

// heldLease is a granted attempt's lease while the attempt runs.
type heldLease struct {
	end      func() // stops renewing; ends the lease unless recorded
	recorded bool   // the attempt's outcome is on record: nothing to end
}

// hold keeps a granted attempt's lease (see store.LeaseAttempt) while it
// may call TOP: renewed with each heartbeat tick, and ended by end if the
// attempt stops without an outcome on record, so another attempt of this
// callback or the next one's need not wait for it to lapse. A zero lease
// (none was taken) holds nothing.
func (a *Activities) hold(ctx context.Context, hb *heartbeater, bizID string, seq int64, attempt int, lease time.Duration) *heldLease {
	h := &heldLease{end: func() {}}
	if lease <= 0 {
		return h
	}
	write := func(until time.Time, what string) {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), outcomeWriteTimeout)
		defer cancel()
		if err := a.Store.LeaseAttempt(wctx, bizID, seq, attempt, until); err != nil {
			a.logger().WarnContext(ctx, "could not "+what+" the attempt's lease", "biz_id", bizID, "seq", seq, "attempt", attempt, "error", err)
		}
	}
	hb.renew(func() { write(a.now().Add(lease), "renew") })
	h.end = func() {
		hb.renew(nil)
		if !h.recorded {
			write(time.Time{}, "end")
		}
	}
	return h
}
