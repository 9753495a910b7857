// Package activities owns the side effects of the policy workflow: sending
// one event's callback to TOP and recording every attempt, and every
// callback decision the workflow or an operator makes, in the SQL audit
// trail. Everything here may run more than once for the same input, because
// Temporal retries activities; the store's idempotent writes keep the trail
// free of duplicate rows.
//
// The workflow never decides a retry from a Go error string: DeliverCallback
// fails with an ApplicationError whose type is one of the ErrorType
// constants and whose details are a DeliverFailure.
package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/store"
	"github.com/insuranceflow/insuranceflow/top"
)

// Caller sends one insurance result to TOP and classifies the answer; the
// real *top.Client satisfies it, tests pass a fake.
type Caller interface {
	Callback(ctx context.Context, r insurance.Result) top.Outcome
}

var _ Caller = (*top.Client)(nil)

// The ApplicationError types DeliverCallback fails with. The four TOP ones
// are spelled as top.Class names, so the type tells the workflow exactly what
// TOP's answer was classified as.
const (
	ErrorTypeRejected    = "rejected"       // TOP refused the result (call_success=false): non-retryable
	ErrorTypePermanent   = "permanent"      // the request can never succeed as sent: non-retryable
	ErrorTypeRetryable   = "retryable"      // a platform or transport fault: retry with backoff
	ErrorTypeRateLimited = "rate_limited"   // an app ban: retry after the ban (NextRetryDelay)
	ErrorTypeStore       = "store"          // the audit trail could not be written: retry
	ErrorTypeInvalid     = "invalid_record" // the store refuses the record (a bug or a clash): non-retryable
	ErrorTypeSuperseded  = "superseded"     // Temporal retried the attempt meanwhile: it did not call TOP
)

// NonRetryableErrorTypes are the error types no retry can cure; the workflow
// puts them in its retry policy and parks the callback when it sees one.
// ErrorTypeInvalid is not listed because it is always raised non-retryable.
func NonRetryableErrorTypes() []string {
	return []string{ErrorTypeRejected, ErrorTypePermanent}
}

// Activities holds what the activities need. The worker registers a
// *Activities; the workflow refers to the methods through a nil *Activities
// so that a rename is a compile error.
type Activities struct {
	TOP    Caller
	Store  *store.Store
	Logger *slog.Logger     // nil discards
	Now    func() time.Time // nil means time.Now
	// Tracer makes the spans of a delivery's steps (store calls, the TOP
	// call); nil makes none. The attempt's own span is the SDK tracing
	// interceptor's.
	Tracer trace.Tracer

	// Metrics records deliveries, retries, parks and each TOP call's
	// latency and error code; nil records nothing.
	Metrics Metrics

	// Limiter, when set, admits every TOP call (see ratelimit.go); nil
	// calls TOP unlimited. TOPCallTimeout is the TOP client's bound on one
	// call, which a wait for a slot leaves room for within the attempt.
	Limiter        *CallLimiter
	TOPCallTimeout time.Duration

	// Notifier sends notifications to the business system; nil on a
	// worker without NOTIFY_URL (see SendNotification). NotifyMetrics
	// counts their outcomes; nil counts nothing.
	Notifier      Notifier
	NotifyMetrics NotifyMetrics

	// HeartbeatEvery is how often DeliverCallback heartbeats while its
	// attempt runs. Zero means a quarter of the activity's heartbeat
	// timeout, and no heartbeats for an activity scheduled without one.
	HeartbeatEvery time.Duration

	// Turns wakes a pipelined callback (DeliverInput.After) the moment the
	// callback ahead of it ends on this worker; nil leaves it to look at the
	// store every 50 ms. AheadWait bounds its wait (zero: a minute), after
	// which it answers NotYet. See turns.go.
	Turns     *Turns
	AheadWait time.Duration
}

// outcomeWriteTimeout bounds the store writes after the TOP call, which run
// even if Temporal cancelled the attempt meanwhile: the call was made, and
// the audit trail must say how it ended.
const outcomeWriteTimeout = 10 * time.Second

// DeliverInput is one event's callback, as the workflow hands it over.
type DeliverInput struct {
	BizID             string           `json:"biz_id"`
	Seq               int64            `json:"seq"`
	Event             insurance.Result `json:"event"` // RequestID set
	AcceptedAt        time.Time        `json:"accepted_at"`
	StateAfter        fsm.State        `json:"state_after"`
	EndorsementsAfter int              `json:"endorsements_after"`
	InsuranceType     insurance.Type   `json:"insurance_type"`           // the policy's, for the policy row
	PolicyNumber      string           `json:"policy_number,omitempty"`  // the policy's, when known
	AttemptOffset     int              `json:"attempt_offset,omitempty"` // attempts made before this activity was scheduled

	// CallbackState is the policy's callback state (a workflows.CallbackState
	// value) while this callback is being delivered; it goes into the policy
	// row recorded with the event. CallbackStateAfter is the state once it
	// is delivered; it is written only when it can differ from what the
	// store holds (it differs from CallbackState, or the callback was
	// attempted before), so a plain first-attempt delivery costs no extra
	// write.
	CallbackState      string `json:"callback_state,omitempty"`
	CallbackStateAfter string `json:"callback_state_after,omitempty"`

	// After, when set, is the seq of the callback ahead of this one, still
	// in flight when the workflow scheduled this one (pipelined delivery).
	// This callback calls TOP only once the store shows that one delivered
	// or skipped; if it is not by the end of the wait, or it failed, the
	// answer is NotYet and nothing is recorded or sent.
	After int64 `json:"after,omitempty"`
}

// DeliverResult is a delivered callback.
type DeliverResult struct {
	Attempt int `json:"attempt"` // the attempt that succeeded, counted over the event's whole life
	// AlreadyDelivered is set when the store showed the callback delivered
	// by an earlier attempt, so this one did not call TOP.
	AlreadyDelivered bool `json:"already_delivered,omitempty"`
	// Skipped is set when the store showed the callback skipped by an
	// operator: it was not sent, and the workflow drops it as skipped.
	Skipped bool `json:"skipped,omitempty"`
	// NotYet is set when a pipelined callback (DeliverInput.After) did not
	// get its turn: nothing was recorded or sent, and the workflow
	// schedules it again once the callback ahead is settled.
	NotYet       bool          `json:"not_yet,omitempty"`
	TOPRequestID string        `json:"top_request_id,omitempty"`
	DeliveredAt  time.Time     `json:"delivered_at"`
	Duration     time.Duration `json:"duration"`
}

// DeliverFailure is the detail payload of every error DeliverCallback
// returns, so the workflow knows the exact attempt count and what TOP said
// without parsing messages.
type DeliverFailure struct {
	Attempt    int    `json:"attempt"`
	Class      string `json:"class"` // a top.Class name, or ErrorTypeStore / ErrorTypeInvalid
	Summary    string `json:"summary"`
	HTTPStatus int    `json:"http_status,omitempty"`
	Code       int    `json:"code,omitempty"`
	SubCode    string `json:"sub_code,omitempty"`
	FailCode   string `json:"fail_code,omitempty"`
	// FailMessage and TOPRequestID are TOP's, for the parked
	// notification; older workers did not set them.
	FailMessage  string        `json:"fail_message,omitempty"`
	TOPRequestID string        `json:"top_request_id,omitempty"`
	RetryAfter   time.Duration `json:"retry_after,omitempty"` // rate_limited: the ban to wait out
}

// DeliverCallback records the event (idempotently, so the first attempt is
// also what writes the accepted event to the audit trail), records the
// attempt as started (and any earlier attempt number without a row as
// lost: its worker died, or no worker ran it), sends the event to TOP once,
// records the attempt's outcome over its started row and maps TOP's answer:
//
//   - delivered → DeliverResult;
//   - rejected, permanent → a non-retryable ApplicationError of that type;
//   - retryable → a retryable ApplicationError;
//   - rate_limited → a retryable ApplicationError with NextRetryDelay set to
//     the ban, so Temporal's own retry waits it out.
//
// A store failure is a retryable ErrorTypeStore error: the whole attempt is
// repeated, and the store's idempotency keeps its rows single. If TOP had
// already accepted the event, the repeat re-sends it with the same
// request_id, which is what TOP's idempotency relies on.
//
// While the attempt runs it heartbeats (see HeartbeatEvery), so that when
// its worker dies Temporal retries it after the heartbeat timeout rather
// than the much longer start-to-close timeout. The heartbeat details are
// the attempt number.
//
// A pipelined callback (After set) first waits for its turn (see
// awaitTurn). Every attempt, when it ends, wakes the pipelined callback
// waiting behind it on this worker.
func (a *Activities) DeliverCallback(ctx context.Context, in DeliverInput) (res DeliverResult, err error) {
	defer func() {
		if !res.NotYet {
			a.countDelivery(err)
		}
	}()
	// Deferred after the count, so it runs first: the store writes are
	// done by now, and the next callback need not wait for the metrics.
	defer a.Turns.ended(in.BizID, in.Seq)
	// began is the fence's reference: an attempt row started after it
	// means Temporal gave up on this attempt and retried it meanwhile.
	began := a.now()
	attempt := in.AttemptOffset + int(activity.GetInfo(ctx).Attempt)
	// Heartbeating starts before anything else, so slow store writes below
	// cannot outlast the heartbeat timeout unnoticed; the heartbeats say
	// which attempt number this is, once the store has granted it.
	hb := a.heartbeat(ctx, attempt)
	defer hb.stop()
	payload, err := in.Event.APIJSON()
	if err != nil {
		return DeliverResult{}, a.invalid(attempt, err)
	}
	policy := store.Policy{
		BizID:          in.BizID,
		State:          string(in.StateAfter),
		InsuranceType:  int(in.InsuranceType),
		PolicyNumber:   in.PolicyNumber,
		Endorsements:   in.EndorsementsAfter,
		LastSeq:        in.Seq,
		LastOccurredAt: in.Event.TimeOfOccurrence,
		CallbackState:  in.CallbackState,
	}
	event := store.Event{
		BizID:             in.BizID,
		Seq:               in.Seq,
		RequestID:         in.Event.RequestID,
		Stage:             int(in.Event.Stage),
		Status:            int(in.Event.Status),
		TimeOfOccurrence:  in.Event.TimeOfOccurrence,
		Payload:           payload,
		AcceptedAt:        in.AcceptedAt,
		StateAfter:        string(in.StateAfter),
		EndorsementsAfter: in.EndorsementsAfter,
		Callback:          "sending",
	}
	ok, turn := a.awaitTurn(ctx, in)
	if in.After > 0 {
		if ok {
			a.metrics().CallbackPipelined(TurnGo)
		} else {
			a.metrics().CallbackPipelined(TurnNotYet)
		}
	}
	if !ok {
		a.logger().DebugContext(ctx, "pipelined callback not sent: the one ahead is not settled",
			"biz_id", in.BizID, "seq", in.Seq, "after", in.After, "turn", turn.String())
		return DeliverResult{NotYet: true}, nil
	}
	lease := a.leaseFor(ctx)
	started, grant, err := a.begin(ctx, policy, event, attempt, began, lease)
	if err != nil {
		return DeliverResult{}, a.storeFailure(attempt, "record event", err)
	}
	if grant.Busy != nil {
		return DeliverResult{}, superseded(attempt, "Temporal gave up on this attempt while it waited for attempt "+
			fmt.Sprint(grant.Busy.Attempt)+" of seq "+fmt.Sprint(grant.Busy.Seq)+" to end")
	}
	switch {
	case grant.Delivered != nil:
		// Delivered by an earlier attempt whose answer the workflow never
		// got (its recording or its completion failed): TOP has the event,
		// and calling it again could only repeat it.
		a.logger().InfoContext(ctx, "callback already delivered", "biz_id", in.BizID, "seq", in.Seq, "attempt", grant.Delivered.Attempt)
		return DeliverResult{
			Attempt:          max(grant.Delivered.Attempt, in.AttemptOffset),
			TOPRequestID:     grant.Delivered.TOPRequestID,
			DeliveredAt:      grant.Delivered.DeliveredAt,
			AlreadyDelivered: true,
		}, nil
	case grant.Skipped:
		// An operator's skip the workflow did not know of (a run rebuilt
		// from a terminated one's state): never sent, and not parked again.
		a.logger().InfoContext(ctx, "callback skipped by an operator; not sent", "biz_id", in.BizID, "seq", in.Seq)
		return DeliverResult{Attempt: in.AttemptOffset, Skipped: true}, nil
	case grant.Superseded:
		return DeliverResult{}, superseded(attempt, "a later attempt has started")
	}
	attempt = grant.Attempt
	hb.set(attempt)
	held := a.hold(ctx, hb, in.BizID, in.Seq, attempt, lease)
	defer held.end()
	if ctx.Err() != nil {
		return DeliverResult{}, superseded(attempt, "Temporal gave up on this attempt before it called TOP")
	}
	// The last look before TOP, right before the call (after a wait for a
	// TOP call slot, if there was one). An attempt that is still fresh
	// (see fresh) cannot have been given up on, so no later attempt can
	// have begun or delivered the event, and an operator acts only on a
	// parked callback, never on one in flight: BeginDelivery's answer
	// still stands, and looking again would only add round trips to the
	// callback's latency. Otherwise the worker may have been frozen, or
	// the wait for a slot long: a heartbeat reaches Temporal (unless the
	// SDK batches it: it sends one per 80% of the timeout) and is answered
	// by cancelling ctx, and the store knows whether a later attempt began
	// meanwhile.
	fence := func() error {
		if a.fresh(ctx) {
			return nil
		}
		if hb.on {
			activity.RecordHeartbeat(ctx, hb.details()...)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("attempt %d superseded: Temporal gave up on it", attempt)
		}
		sctx, end := a.span(ctx, "store.StillCurrent")
		ok, why, err := a.Store.StillCurrent(sctx, in.BizID, in.Seq, attempt)
		end(err)
		if err != nil {
			return fmt.Errorf("attempt %d: the fence could not read the store: %w", attempt, err)
		}
		if !ok {
			return fmt.Errorf("attempt %d superseded: %s", attempt, why)
		}
		return nil
	}
	cctx, end := a.span(ctx, "TOP "+top.APIMethod,
		attribute.String("biz_id", in.BizID), attribute.Int64("seq", in.Seq), attribute.Int("attempt", attempt))
	out, sent := a.call(cctx, in.Event, hb, fence)
	trace.SpanFromContext(cctx).SetAttributes(attribute.String("top.class", out.Class.String()),
		attribute.String("top.request_id", out.RequestID), attribute.Bool("top.sent", sent))
	if out.Class != top.ClassDelivered {
		end(fmt.Errorf("%s", out.Class))
	} else {
		end(nil)
	}
	if out.Duration <= 0 {
		out.Duration = a.now().Sub(started)
	}
	if sent {
		a.metrics().CallbackAttempt(out)
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), outcomeWriteTimeout)
	defer cancel()
	wctx, endRecord := a.span(wctx, "store.RecordAttempt")
	err = a.recordOutcome(wctx, store.Attempt{
		BizID:        in.BizID,
		Seq:          in.Seq,
		Attempt:      attempt,
		StartedAt:    started,
		Duration:     out.Duration,
		Class:        out.Class.String(),
		HTTPStatus:   out.HTTPStatus,
		Code:         out.Code,
		SubCode:      out.SubCode,
		Msg:          out.Msg,
		SubMsg:       out.SubMsg,
		FailCode:     out.FailCode,
		FailMessage:  out.FailMessage,
		TOPRequestID: out.RequestID,
		Detail:       out.Detail,
	})
	endRecord(err)
	if err != nil {
		return DeliverResult{}, a.storeFailure(attempt, "record attempt", err)
	}
	held.recorded = true

	level := slog.LevelInfo
	if out.Class != top.ClassDelivered {
		level = slog.LevelWarn
	}
	// One line per attempt. Only identifiers and TOP's classification: the
	// event itself (and its account manager's name) is never logged.
	a.logger().LogAttrs(ctx, level, "callback attempt",
		slog.String("biz_id", in.BizID),
		slog.Int64("seq", in.Seq),
		slog.Int("attempt", attempt),
		slog.String("class", out.Class.String()),
		slog.Duration("duration", out.Duration),
		slog.String("top_request_id", out.RequestID),
	)

	if out.Class == top.ClassDelivered {
		// A pipelined callback's write is skipped like any other: the one
		// ahead may have written its own state after this one's
		// BeginDelivery only if this one began between the two commits of
		// that one's record (its wake-up comes after both), and that state
		// is the one this callback was scheduled with but for events
		// accepted in between: stale by those, as "after" always may be,
		// until the next delivery's record.
		if after := in.CallbackStateAfter; after != "" && (after != in.CallbackState || in.AttemptOffset > 0) {
			if err := a.Store.SetCallback(wctx, in.BizID, in.Seq, "delivered", after); err != nil {
				return DeliverResult{}, a.storeFailure(attempt, "record callback state", err)
			}
		}
		return DeliverResult{
			Attempt:      attempt,
			TOPRequestID: out.RequestID,
			DeliveredAt:  started.Add(out.Duration),
			Duration:     out.Duration,
		}, nil
	}
	return DeliverResult{}, OutcomeError(attempt, out)
}

// recordOutcome writes an attempt's outcome, trying again while the store
// refuses for a reason that may pass (locked, unreachable) until ctx ends.
// TOP has answered by now: if it accepted and the write is lost, the next
// attempt finds no delivery in the store and calls TOP again, so the write
// is worth the wait.
func (a *Activities) recordOutcome(ctx context.Context, at store.Attempt) error {
	wait := 100 * time.Millisecond
	for {
		err := a.Store.RecordAttempt(ctx, at)
		var invalid *store.InvalidError
		if err == nil || errors.As(err, &invalid) || errors.Is(err, store.ErrNotFound) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// superseded is the error of an attempt that must not call TOP because
// Temporal has moved on without it. Nobody reads it (the server has failed
// the attempt already); it is retryable so that, should the server still
// be waiting for it after all, the next attempt decides afresh.
func superseded(attempt int, why string) error {
	msg := "attempt superseded: " + why
	return temporal.NewApplicationError(msg, ErrorTypeSuperseded,
		DeliverFailure{Attempt: attempt, Class: ErrorTypeSuperseded, Summary: msg})
}

// heartbeater heartbeats an attempt's number until stopped.
type heartbeater struct {
	attempt atomic.Int64
	phase   atomic.Value // string: PhaseCalling or PhaseWaitingRateLimit
	on      bool         // heartbeats are sent: the activity has a heartbeat timeout
	stop    func()
	// renewal, when set, runs with each tick: it renews the attempt's lease.
	renewal atomic.Pointer[func()]
}

func (h *heartbeater) set(attempt int) { h.attempt.Store(int64(attempt)) }

// renew has f run with each tick from now on; nil stops it.
func (h *heartbeater) renew(f func()) {
	if f == nil {
		h.renewal.Store(nil)
		return
	}
	h.renewal.Store(&f)
}

// details are what each heartbeat carries: the attempt number (which the
// workflow reads back after a timeout) and the phase (which the status
// view reads to tell a callback waiting for a TOP call slot).
func (h *heartbeater) details() []any {
	return []any{int(h.attempt.Load()), h.phase.Load()}
}

// heartbeat heartbeats the attempt's number every interval until stop is
// called; stop returns once the heartbeating goroutine has ended, so
// nothing heartbeats after the activity returned.
//
// An attempt that is not fresh (see fresh) heartbeats at once, before it
// writes anything: the SDK sends a first heartbeat straight away (it
// batches only later ones), so an attempt that Temporal already gave up on
// learns so here, the SDK cancelling ctx. A fresh one does not: its first
// heartbeat is due one interval on (a quarter of the heartbeat timeout),
// and a callback delivered before then costs Temporal no heartbeat at all,
// and its latency no round trip.
func (a *Activities) heartbeat(ctx context.Context, attempt int) *heartbeater {
	h := &heartbeater{stop: func() {}}
	h.set(attempt)
	h.phase.Store(PhaseCalling)
	every := heartbeatInterval(a.HeartbeatEvery, activity.GetInfo(ctx).HeartbeatTimeout)
	if every <= 0 {
		return h
	}
	h.on = true
	if !a.fresh(ctx) {
		activity.RecordHeartbeat(ctx, h.details()...)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		ticker := time.NewTicker(every)
		defer ticker.Stop()
		for {
			select {
			case <-done:
				return
			case <-ticker.C:
				// The SDK batches these and sends at most one per 80% of the
				// heartbeat timeout, so ticking faster costs no RPCs.
				activity.RecordHeartbeat(ctx, h.details()...)
				if f := h.renewal.Load(); f != nil {
					(*f)()
				}
			}
		}
	})
	h.stop = func() {
		close(done)
		wg.Wait()
	}
	return h
}

// fresh reports whether Temporal cannot have given up on this attempt: it
// started (by the server's clock) less than half its heartbeat timeout ago,
// so neither that timeout nor the longer start-to-close one can have
// passed, and the workflow never cancels a delivery. The half leaves room
// for the clocks of worker and server to differ; the SDK relies on them
// agreeing anyway, as it sets ctx's deadline from the server's times. An
// attempt without a heartbeat timeout, or whose start is unknown, is never
// fresh.
func (a *Activities) fresh(ctx context.Context) bool {
	info := activity.GetInfo(ctx)
	return freshAt(time.Now(), info.StartedTime, info.HeartbeatTimeout)
}

// freshAt is fresh's rule: now is the worker's clock, started the server's.
func freshAt(now, started time.Time, heartbeatTimeout time.Duration) bool {
	if heartbeatTimeout <= 0 || started.IsZero() {
		return false
	}
	return now.Sub(started) < heartbeatTimeout/2
}

// heartbeatInterval is how often to heartbeat: configured if set, else a
// quarter of the heartbeat timeout, so that a heartbeat reaches Temporal
// well within it; zero (none) without either.
func heartbeatInterval(configured, timeout time.Duration) time.Duration {
	if configured > 0 {
		return configured
	}
	return timeout / 4
}

// OutcomeError is the error DeliverCallback returns for an outcome that is
// not delivered (nil for a delivered one). It is exported so workflow tests
// can fail a mocked delivery exactly as the real activity would.
func OutcomeError(attempt int, out top.Outcome) error {
	summary := out.Summary()
	failure := DeliverFailure{
		Attempt:    attempt,
		Class:      out.Class.String(),
		Summary:    summary,
		HTTPStatus: out.HTTPStatus,
		Code:       out.Code,
		SubCode:    out.SubCode,
		FailCode:   out.FailCode,
		RetryAfter: out.RetryAfter,

		FailMessage:  out.FailMessage,
		TOPRequestID: out.RequestID,
	}
	switch out.Class {
	case top.ClassDelivered:
		return nil
	case top.ClassRejected:
		return temporal.NewNonRetryableApplicationError(summary, ErrorTypeRejected, nil, failure)
	case top.ClassPermanent:
		return temporal.NewNonRetryableApplicationError(summary, ErrorTypePermanent, nil, failure)
	case top.ClassRateLimited:
		return temporal.NewApplicationErrorWithOptions(summary, ErrorTypeRateLimited, temporal.ApplicationErrorOptions{
			NextRetryDelay: out.RetryAfter,
			Details:        []any{failure},
		})
	default:
		// ClassRetryable, and anything a future top version adds: retrying
		// is the choice that never loses an event.
		return temporal.NewApplicationError(summary, ErrorTypeRetryable, failure)
	}
}

// storeFailure classifies a store error: a record the store refuses (bad
// field, request id clash) will be refused again, so it is non-retryable and
// the workflow parks the callback for an operator; anything else (a locked or
// unreachable database) is retried.
func (a *Activities) storeFailure(attempt int, what string, err error) error {
	var invalid *store.InvalidError
	var conflict *store.EventConflictError
	if errors.As(err, &invalid) || errors.As(err, &conflict) {
		return a.invalid(attempt, fmt.Errorf("%s: %w", what, err))
	}
	msg := fmt.Sprintf("%s: %v", what, err)
	return temporal.NewApplicationErrorWithCause(msg, ErrorTypeStore, err,
		DeliverFailure{Attempt: attempt, Class: ErrorTypeStore, Summary: msg})
}

func (a *Activities) invalid(attempt int, err error) error {
	return temporal.NewNonRetryableApplicationError(err.Error(), ErrorTypeInvalid, err,
		DeliverFailure{Attempt: attempt, Class: ErrorTypeInvalid, Summary: err.Error()})
}

func (a *Activities) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// Metrics receives what the activities observe, for monitoring. Calls
// happen on the delivery path, so an implementation must not block.
type Metrics interface {
	// CallbackAttempt is one TOP call and its classified outcome.
	CallbackAttempt(out top.Outcome)
	// CallbackDelivered is a callback TOP accepted and the store recorded.
	CallbackDelivered()
	// CallbackRetried is a DeliverCallback attempt that failed retryably;
	// class is its error type, one of RetriedClasses. The workflow retries
	// it unless the retry budget ran out meanwhile, in which case it is
	// also counted as parked.
	CallbackRetried(class string)
	// CallbackParked is a callback the workflow parked for an operator:
	// counted when RecordCallbacks records the park, which every park
	// (rejected, permanent, invalid record, retry budget exhausted) goes
	// through. A RecordCallbacks retried after it recorded (its completion
	// lost with a crashed worker) counts the park again.
	CallbackParked()
	// CallbackPipelined is a pipelined callback's wait for the one ahead
	// (DeliverInput.After), by how it ended: one of PipelinedTurns.
	CallbackPipelined(turn string)
	// CallbackLeaseWaited is how long an attempt waited for another
	// attempt's lease before it could begin (see begin): a stopped run's
	// call still at TOP, or a dead worker's lease lapsing.
	CallbackLeaseWaited(d time.Duration)
}

// The ways a pipelined callback's wait ends, Metrics.CallbackPipelined's
// turn.
const (
	TurnGo     = "go"      // the one ahead was delivered or skipped: this one went on to TOP
	TurnNotYet = "not_yet" // it failed first, or the wait ran out: NotYet
)

// PipelinedTurns are the values Metrics.CallbackPipelined is called with.
func PipelinedTurns() []string { return []string{TurnGo, TurnNotYet} }

// RetriedClasses are the classes Metrics.CallbackRetried is called with.
func RetriedClasses() []string {
	return []string{ErrorTypeRetryable, ErrorTypeRateLimited, ErrorTypeStore}
}

// countDelivery counts what a DeliverCallback attempt came to. Failures
// that cannot be retried are counted when the workflow parks them.
func (a *Activities) countDelivery(err error) {
	if err == nil {
		a.metrics().CallbackDelivered()
		return
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && !appErr.NonRetryable() {
		a.metrics().CallbackRetried(appErr.Type())
	}
}

func (a *Activities) metrics() Metrics {
	if a.Metrics != nil {
		return a.Metrics
	}
	return noMetrics{}
}

// noMetrics records nothing.
type noMetrics struct{}

func (noMetrics) CallbackAttempt(top.Outcome)       {}
func (noMetrics) CallbackDelivered()                {}
func (noMetrics) CallbackRetried(string)            {}
func (noMetrics) CallbackParked()                   {}
func (noMetrics) CallbackPipelined(string)          {}
func (noMetrics) CallbackLeaseWaited(time.Duration) {}

func (a *Activities) logger() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.New(slog.DiscardHandler)
}
