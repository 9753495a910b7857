package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"golang.org/x/sync/semaphore"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/store"
	"github.com/insuranceflow/insuranceflow/top"
)

// Why a limiter of our own, in the store, and not Temporal's task-queue
// rate limit (worker.Options.TaskQueueActivitiesPerSecond):
//
//   - it is a token bucket whose burst lets about twice the rate through in
//     one sliding second (measured: 12 callbacks within one second at
//     TOP_QPS=5), and TOP bans on any sliding second;
//   - it rations activity *starts*, not TOP calls: a retried attempt that
//     waits out a backoff, a slow store write before the call or a store-only
//     activity all shift or spend the budget;
//   - the SDK turns eager activity execution off whenever it is set, and
//     eager activities are wanted for latency.
//
// So every TOP call takes a slot from CallLimiter first: a strict sliding
// window kept in the store that all workers of a deployment share (see
// store.TakeCallSlot), which admits a call only while fewer than Limit were
// admitted in the last Window. Window is a second plus a margin, because
// admission is not arrival: two calls admitted exactly a second apart can
// reach TOP less than a second apart when the first was delayed more on its
// way. The margin is split: a call sent more than MaxLag after its admission
// gives its slot back and takes a new one (it cannot know how late it will
// arrive, only how late it is leaving), and the rest of the margin covers
// the network and the gateway.

// Heartbeat phases: the second heartbeat detail of DeliverCallback (the
// first is the attempt number), so that a status view can tell a callback
// waiting for a call slot from one on the wire.
const (
	PhaseWaitingRateLimit = "waiting_rate_limit" // waiting for a TOP call slot (TOP_QPS)
	PhaseCalling          = "calling"            // admitted: the TOP call and its records
)

// DefaultQPSMargin is what CallLimiter's window adds to a second by default.
const DefaultQPSMargin = 50 * time.Millisecond

// SlotStore is where the limiter keeps its slots; *store.Store is one.
type SlotStore interface {
	TakeCallSlot(ctx context.Context, key string, limit int, window time.Duration) (store.CallSlot, time.Duration, error)
	ReleaseCallSlot(ctx context.Context, slot store.CallSlot) error
}

var _ SlotStore = (*store.Store)(nil)

// LimiterMetrics receives what the limiter observes; calls must not block.
type LimiterMetrics interface {
	// WaitingForSlot moves the number of callbacks waiting for a slot now.
	WaitingForSlot(delta int)
	// SlotTaken is one admitted call and how long it waited for its slot.
	SlotTaken(waited time.Duration)
	// SlotGivenBack is an admission returned because the call would have
	// left more than MaxLag after it.
	SlotGivenBack()
	// TOPRateLimited is a code-7 answer from TOP (a ban), by sub_code.
	TOPRateLimited(subCode string)
}

// CallLimiter keeps every TOP call of a deployment within Limit per Window.
// Create it with NewCallLimiter; it is safe for concurrent use.
type CallLimiter struct {
	slots   SlotStore
	key     string
	limit   int
	window  time.Duration
	maxLag  time.Duration
	metrics LimiterMetrics
	// gate lets one goroutine of this process at a time ask the store, in
	// arrival order (semaphore.Weighted is FIFO): without it every waiting
	// callback would wake when a slot frees and all but one would find it
	// taken, a transaction each. With it the store sees at most one asker
	// per worker. A local token bucket (x/time/rate) would not help here:
	// it cannot know what the other workers spent, so it could only add
	// delay in front of the shared window, never replace it.
	gate *semaphore.Weighted
}

// LimiterConfig configures a CallLimiter.
type LimiterConfig struct {
	Slots SlotStore
	// Key names the limit: the TOP app key, since TOP counts per app, so
	// deployments calling with one app key share one limit.
	Key string
	// QPS is the most calls admitted in any Window; at least 1.
	QPS int
	// Margin is added to a second to make the window; 0 means
	// DefaultQPSMargin. MaxLag is half of it.
	Margin  time.Duration
	Metrics LimiterMetrics // nil records nothing
}

// NewCallLimiter checks cfg and returns its limiter.
func NewCallLimiter(cfg LimiterConfig) (*CallLimiter, error) {
	switch {
	case cfg.Slots == nil:
		return nil, errors.New("call limiter: no slot store")
	case cfg.Key == "":
		return nil, errors.New("call limiter: empty key")
	case cfg.QPS < 1:
		return nil, fmt.Errorf("call limiter: QPS %d, want at least 1", cfg.QPS)
	case cfg.Margin < 0:
		return nil, fmt.Errorf("call limiter: negative margin %v", cfg.Margin)
	}
	margin := cfg.Margin
	if margin == 0 {
		margin = DefaultQPSMargin
	}
	m := cfg.Metrics
	if m == nil {
		m = noLimiterMetrics{}
	}
	return &CallLimiter{
		slots:   cfg.Slots,
		key:     cfg.Key,
		limit:   cfg.QPS,
		window:  time.Second + margin,
		maxLag:  margin / 2,
		metrics: m,
		gate:    semaphore.NewWeighted(1),
	}, nil
}

// Window is the sliding window the limiter counts Limit calls in.
func (l *CallLimiter) Window() time.Duration { return l.window }

// errNoSlot is a wait for a slot that reached its deadline.
var errNoSlot = errors.New("no TOP call slot")

// admit waits until a call may be sent now, or until deadline. It returns
// how long it waited.
func (l *CallLimiter) admit(ctx context.Context, deadline time.Time, waiting func()) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	announced := false
	announce := func() {
		if !announced {
			announced = true
			l.metrics.WaitingForSlot(1)
			waiting()
		}
	}
	defer func() {
		if announced {
			l.metrics.WaitingForSlot(-1)
		}
	}()
	if !l.gate.TryAcquire(1) {
		announce()
		if err := l.gate.Acquire(ctx, 1); err != nil {
			return time.Since(start), noSlotError(ctx, err)
		}
	}
	defer l.gate.Release(1)
	for {
		slot, wait, err := l.slots.TakeCallSlot(ctx, l.key, l.limit, l.window)
		if err != nil {
			return time.Since(start), noSlotError(ctx, err)
		}
		if wait == 0 {
			if time.Since(slot.NotBefore) <= l.maxLag {
				l.metrics.SlotTaken(time.Since(start))
				return time.Since(start), nil
			}
			// Too late to keep the promise the slot made: give it back
			// and take a fresh one (no call was made under it).
			l.metrics.SlotGivenBack()
			rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			err := l.slots.ReleaseCallSlot(rctx, slot)
			rcancel()
			if err != nil {
				return time.Since(start), err
			}
			continue
		}
		announce()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return time.Since(start), noSlotError(ctx, ctx.Err())
		case <-t.C:
		}
	}
}

// noSlotError is errNoSlot when the wait ran into its deadline, and err
// otherwise.
func noSlotError(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return errNoSlot
	}
	return err
}

// callReserve is the part of an attempt's StartToClose timeout that a wait
// for a slot leaves for the TOP call and the records after it.
func callReserve(callTimeout time.Duration) time.Duration {
	return callTimeout + outcomeWriteTimeout + 5*time.Second
}

// call sends the event to TOP once, through the limiter when there is one:
// it waits for a slot for as long as the attempt's deadline allows (saying
// so in the heartbeats), and answers an attempt that found no slot in time
// as rate_limited without calling TOP (sent false), so the workflow tries
// again later and the audit trail shows why nothing was sent.
func (a *Activities) call(ctx context.Context, r insurance.Result, hb *heartbeater, fence func() error) (out top.Outcome, sent bool) {
	if a.Limiter != nil {
		deadline := activity.GetInfo(ctx).Deadline
		if deadline.IsZero() {
			deadline = time.Now().Add(time.Minute)
		}
		deadline = deadline.Add(-callReserve(a.TOPCallTimeout))
		waited, err := a.Limiter.admit(ctx, deadline, func() {
			hb.phase.Store(PhaseWaitingRateLimit)
			if hb.on {
				activity.RecordHeartbeat(ctx, hb.details()...)
			}
		})
		hb.phase.Store(PhaseCalling)
		if err != nil {
			out := top.Outcome{Class: top.ClassRetryable, Duration: waited,
				Detail: fmt.Sprintf("not sent: the TOP call limiter failed: %v", err)}
			if errors.Is(err, errNoSlot) {
				out = top.Outcome{Class: top.ClassRateLimited, Duration: waited,
					Detail: fmt.Sprintf("not sent: no TOP call slot within %v (TOP_QPS %d per %v)",
						waited.Round(time.Millisecond), a.Limiter.limit, a.Limiter.window)}
			}
			return out, false
		}
	}
	if err := fence(); err != nil {
		return top.Outcome{Class: top.ClassRetryable, Detail: "not sent: " + err.Error()}, false
	}
	// Once sent, the request is TOP's: cancelling ctx (Temporal gave up on
	// the attempt, or its run was stopped) would only stop listening, and
	// TOP may still act on it. So the call is carried to its answer,
	// bounded by the client's own call timeout, and the answer recorded:
	// an attempt of the same callback, or the next one's, waits for it
	// (see lease.go) and finds the truth in the store, rather than
	// reaching TOP while this one is still there.
	out = a.TOP.Callback(context.WithoutCancel(ctx), r)
	if out.Class == top.ClassRateLimited && a.Limiter != nil {
		a.Limiter.metrics.TOPRateLimited(out.SubCode)
	}
	return out, true
}

type noLimiterMetrics struct{}

func (noLimiterMetrics) WaitingForSlot(int)      {}
func (noLimiterMetrics) SlotTaken(time.Duration) {}
func (noLimiterMetrics) SlotGivenBack()          {}
func (noLimiterMetrics) TOPRateLimited(string)   {}
