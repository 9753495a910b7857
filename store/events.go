package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"
)

// Attempt is one try at delivering an event's callback to TOP: while it
// runs, or if it never got further, a ClassStarted or ClassLost row; once
// TOP answered (or the call failed), the TOP client's classification.
type Attempt struct {
	BizID        string
	Seq          int64
	Attempt      int // 1 for the first try
	StartedAt    time.Time
	Duration     time.Duration // stored with microsecond precision; 0 while started, and for a lost attempt
	Class        string        // one of the outcome classes (ClassDelivered on success), ClassStarted or ClassLost
	HTTPStatus   int
	Code         int
	SubCode      string
	Msg          string
	SubMsg       string
	FailCode     string
	FailMessage  string
	TOPRequestID string
	Detail       string
}

// The attempt classes the store writes itself, besides the outcome classes
// RecordAttempt takes.
const (
	// ClassStarted is an attempt StartAttempt recorded whose outcome never
	// followed: its call is in flight, or the worker running it died during
	// it (or its outcome could not be written).
	ClassStarted = "started"
	// ClassLost is an attempt number Temporal used that had no row when a
	// later attempt started: its worker died before recording it, or no
	// worker ever ran it. Its StartedAt is when the later attempt started,
	// since its own start is unknown.
	ClassLost = "lost"
)

// LostAttemptDetail is the Detail of a ClassLost row.
const LostAttemptDetail = "no outcome recorded: the worker running it stopped or never ran it"

// outcomeClasses are the TOP client's classifications (top.Class names),
// the classes RecordAttempt accepts; the store checks them so a typo cannot
// reach the audit trail. A new top.Class must be added here too (the
// activities tests record every one).
var outcomeClasses = []string{ClassDelivered, "rejected", "retryable", "rate_limited", "permanent"}

const eventColumns = `biz_id, seq, request_id, stage, status, time_of_occurrence, payload, accepted_at,
	state_after, endorsements_after, callback, attempts, last_class, last_error, delivered_at`

type eventRow struct {
	BizID             string        `db:"biz_id"`
	Seq               int64         `db:"seq"`
	RequestID         string        `db:"request_id"`
	Stage             int           `db:"stage"`
	Status            int           `db:"status"`
	TimeOfOccurrence  string        `db:"time_of_occurrence"`
	Payload           string        `db:"payload"`
	AcceptedAt        int64         `db:"accepted_at"`
	StateAfter        string        `db:"state_after"`
	EndorsementsAfter int           `db:"endorsements_after"`
	Callback          string        `db:"callback"`
	Attempts          int           `db:"attempts"`
	LastClass         string        `db:"last_class"`
	LastError         string        `db:"last_error"`
	DeliveredAt       sql.NullInt64 `db:"delivered_at"`
}

func (r eventRow) event() Event {
	e := Event{
		BizID:             r.BizID,
		Seq:               r.Seq,
		RequestID:         r.RequestID,
		Stage:             r.Stage,
		Status:            r.Status,
		TimeOfOccurrence:  r.TimeOfOccurrence,
		Payload:           r.Payload,
		AcceptedAt:        fromMicros(r.AcceptedAt),
		StateAfter:        r.StateAfter,
		EndorsementsAfter: r.EndorsementsAfter,
		Callback:          r.Callback,
		Attempts:          r.Attempts,
		LastClass:         r.LastClass,
		LastError:         r.LastError,
	}
	if r.DeliveredAt.Valid {
		t := fromMicros(r.DeliveredAt.Int64)
		e.DeliveredAt = &t
	}
	return e
}

const attemptColumns = `biz_id, seq, attempt, started_at, duration_us, class, http_status, code, sub_code,
	msg, sub_msg, fail_code, fail_message, top_request_id, detail`

type attemptRow struct {
	BizID        string `db:"biz_id"`
	Seq          int64  `db:"seq"`
	Attempt      int    `db:"attempt"`
	StartedAt    int64  `db:"started_at"`
	DurationUS   int64  `db:"duration_us"`
	Class        string `db:"class"`
	HTTPStatus   int    `db:"http_status"`
	Code         int    `db:"code"`
	SubCode      string `db:"sub_code"`
	Msg          string `db:"msg"`
	SubMsg       string `db:"sub_msg"`
	FailCode     string `db:"fail_code"`
	FailMessage  string `db:"fail_message"`
	TOPRequestID string `db:"top_request_id"`
	Detail       string `db:"detail"`
}

func (r attemptRow) attempt() Attempt {
	return Attempt{
		BizID:        r.BizID,
		Seq:          r.Seq,
		Attempt:      r.Attempt,
		StartedAt:    fromMicros(r.StartedAt),
		Duration:     time.Duration(r.DurationUS) * time.Microsecond,
		Class:        r.Class,
		HTTPStatus:   r.HTTPStatus,
		Code:         r.Code,
		SubCode:      r.SubCode,
		Msg:          r.Msg,
		SubMsg:       r.SubMsg,
		FailCode:     r.FailCode,
		FailMessage:  r.FailMessage,
		TOPRequestID: r.TOPRequestID,
		Detail:       r.Detail,
	}
}

// insertAttempt records an attempt's outcome. The outcome replaces a started
// or lost row of the same attempt (its call ended after all, on a worker
// that was slow rather than dead) but never another outcome: the first
// outcome recorded is the one kept, so a retried write changes nothing and a
// delivery, once recorded, stays recorded.
const insertAttempt = `INSERT INTO attempts (` + attemptColumns + `)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (biz_id, seq, attempt) DO UPDATE SET
	started_at = excluded.started_at, duration_us = excluded.duration_us, class = excluded.class,
	http_status = excluded.http_status, code = excluded.code, sub_code = excluded.sub_code,
	msg = excluded.msg, sub_msg = excluded.sub_msg, fail_code = excluded.fail_code,
	fail_message = excluded.fail_message, top_request_id = excluded.top_request_id, detail = excluded.detail
WHERE attempts.class IN ('` + ClassStarted + `', '` + ClassLost + `')`

// insertAttemptMarker records a started or lost row unless the attempt has a
// row already: a marker never replaces anything, least of all an outcome.
const insertAttemptMarker = `INSERT INTO attempts (biz_id, seq, attempt, started_at, duration_us, class, detail)
VALUES (?, ?, ?, ?, 0, ?, ?)
ON CONFLICT (biz_id, seq, attempt) DO NOTHING`

// A started or lost attempt only counts: the event's last class and error
// stay those of the latest outcome, and its callback state is the workflow's
// to move.
const updateEventAttemptCount = `UPDATE events SET
	attempts = CASE WHEN attempts < ? THEN ? ELSE attempts END
WHERE biz_id = ? AND seq = ?`

// Attempts can be recorded out of order (a slow activity retried after a
// later attempt finished), so the event's summary only takes an attempt's
// class and error if it is at least as recent as the ones already counted.
//
// A failed attempt moves a waiting or in-flight callback to "retrying" but
// leaves parked, skipped and delivered ones alone: those are decisions
// (the workflow's, an operator's, TOP's) that a late attempt must not undo.
const updateEventFailedAttempt = `UPDATE events SET
	attempts = CASE WHEN attempts < ? THEN ? ELSE attempts END,
	last_class = CASE WHEN attempts <= ? THEN ? ELSE last_class END,
	last_error = CASE WHEN attempts <= ? THEN ? ELSE last_error END,
	callback = CASE WHEN callback IN ('queued', 'sending', 'retrying') THEN 'retrying' ELSE callback END
WHERE biz_id = ? AND seq = ?`

// A delivered attempt is a fact from TOP and wins over anything recorded
// before it; delivered_at keeps the first delivery.
const updateEventDelivered = `UPDATE events SET
	attempts = CASE WHEN attempts < ? THEN ? ELSE attempts END,
	last_class = CASE WHEN attempts <= ? THEN ? ELSE last_class END,
	last_error = CASE WHEN attempts <= ? THEN ? ELSE last_error END,
	callback = 'delivered',
	delivered_at = COALESCE(delivered_at, ?)
WHERE biz_id = ? AND seq = ?`

// StartAttempt records that attempt number attempt of an event's callback
// starts now (at startedAt), before anything is sent: a ClassStarted row,
// which the attempt's outcome (RecordAttempt) replaces. Every lower attempt
// number with no row gets a ClassLost row, since an attempt that reaches
// here has outlived them: Temporal only starts attempt n after attempt n-1
// failed or timed out. The event's attempts count moves up to attempt.
//
// Nothing that is recorded is replaced, so repeating the call, or racing a
// worker that records one of these attempts, changes nothing; and a lost row
// still takes the attempt's outcome if it arrives after all. The event must
// have been recorded; otherwise the error wraps ErrNotFound.
func (s *Store) StartAttempt(ctx context.Context, bizID string, seq int64, attempt int, startedAt time.Time) error {
	a := Attempt{BizID: bizID, Seq: seq, Attempt: attempt, StartedAt: startedAt, Class: ClassStarted}
	if err := validateAttempt(a); err != nil {
		return fmt.Errorf("start attempt %d of biz_id %q seq %d: %w", attempt, bizID, seq, err)
	}
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := eventExists(ctx, tx, bizID, seq); err != nil {
			return err
		}
		var recorded []int
		if err := tx.SelectContext(ctx, &recorded, tx.Rebind(
			`SELECT attempt FROM attempts WHERE biz_id = ? AND seq = ? AND attempt < ? ORDER BY attempt`),
			bizID, seq, attempt); err != nil {
			return fmt.Errorf("read recorded attempts: %w", err)
		}
		// Rows are written in attempt order, as RecordAttempt's single row
		// is, so that concurrent writers on PostgreSQL take the rows' locks
		// in one order and cannot deadlock.
		inserted := false
		for n := 1; n <= attempt; n++ {
			class, detail := ClassLost, LostAttemptDetail
			if n == attempt {
				class, detail = ClassStarted, ""
			} else if _, found := slices.BinarySearch(recorded, n); found {
				continue
			}
			res, err := tx.ExecContext(ctx, tx.Rebind(insertAttemptMarker),
				bizID, seq, n, micros(startedAt), class, detail)
			if err != nil {
				return fmt.Errorf("insert %s attempt %d: %w", class, n, err)
			}
			affected, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("insert %s attempt %d: %w", class, n, err)
			}
			inserted = inserted || affected > 0
		}
		if !inserted {
			return nil // all recorded before, and the event counted them then
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(updateEventAttemptCount), attempt, attempt, bizID, seq); err != nil {
			return fmt.Errorf("update event: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("start attempt %d of biz_id %q seq %d: %w", attempt, bizID, seq, err)
	}
	return nil
}

// RecordAttempt records one callback attempt's outcome and updates its
// event's summary (attempts, last class and error, callback state), in one
// transaction. Class must be one of the TOP client's classes (a top.Class
// name). When Class is ClassDelivered the event becomes delivered, with
// DeliveredAt = StartedAt + Duration.
//
// The outcome replaces the attempt's started or lost row, if it has one.
// Recording an attempt that already has an outcome changes nothing, so a
// retried activity is harmless. The event must have been recorded; otherwise
// the error wraps ErrNotFound.
func (s *Store) RecordAttempt(ctx context.Context, a Attempt) error {
	if err := validateAttempt(a); err != nil {
		return fmt.Errorf("record attempt %d of biz_id %q seq %d: %w", a.Attempt, a.BizID, a.Seq, err)
	}
	if !slices.Contains(outcomeClasses, a.Class) {
		return fmt.Errorf("record attempt %d of biz_id %q seq %d: %w", a.Attempt, a.BizID, a.Seq,
			&InvalidError{Field: "attempt class", Problem: unknownValue(a.Class, outcomeClasses)})
	}
	a = cleanAttempt(a)
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		// The foreign key would refuse the insert too, but each driver words
		// that differently; asking first gives one clear error. Events are
		// never deleted, so the answer cannot go stale within the transaction.
		if err := eventExists(ctx, tx, a.BizID, a.Seq); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, tx.Rebind(insertAttempt),
			a.BizID, a.Seq, a.Attempt, micros(a.StartedAt), a.Duration.Microseconds(), a.Class,
			a.HTTPStatus, a.Code, a.SubCode, a.Msg, a.SubMsg, a.FailCode, a.FailMessage, a.TOPRequestID, a.Detail,
		)
		if err != nil {
			return fmt.Errorf("insert attempt: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("insert attempt: %w", err)
		} else if n == 0 {
			return nil // its outcome is already recorded, and the event updated with it then
		}
		lastError := attemptError(a)
		args := []any{a.Attempt, a.Attempt, a.Attempt, a.Class, a.Attempt, lastError}
		query := updateEventFailedAttempt
		if a.Class == ClassDelivered {
			query = updateEventDelivered
			args = append(args, micros(a.StartedAt.Add(a.Duration)))
		}
		args = append(args, a.BizID, a.Seq)
		if _, err := tx.ExecContext(ctx, tx.Rebind(query), args...); err != nil {
			return fmt.Errorf("update event: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record attempt %d of biz_id %q seq %d: %w", a.Attempt, a.BizID, a.Seq, err)
	}
	return nil
}

func validateAttempt(a Attempt) error {
	switch {
	case a.BizID == "":
		return &InvalidError{Field: "attempt biz_id", Problem: "empty"}
	case a.Seq < 1:
		return &InvalidError{Field: "attempt seq", Problem: fmt.Sprintf("%d is not positive", a.Seq)}
	case a.Attempt < 1:
		return &InvalidError{Field: "attempt number", Problem: fmt.Sprintf("%d is not positive", a.Attempt)}
	case a.Class == "":
		return &InvalidError{Field: "attempt class", Problem: "empty"}
	case a.StartedAt.IsZero():
		return &InvalidError{Field: "attempt started_at", Problem: "zero"}
	case a.Duration < 0:
		return &InvalidError{Field: "attempt duration", Problem: fmt.Sprintf("%v is negative", a.Duration)}
	}
	if err := checkTexts(field{"attempt biz_id", a.BizID}, field{"attempt class", a.Class}); err != nil {
		return err
	}
	return checkInts(
		intField{"attempt number", a.Attempt},
		intField{"attempt http_status", a.HTTPStatus},
		intField{"attempt code", a.Code},
	)
}

// cleanAttempt makes an attempt's diagnostic text storable (see cleanText).
func cleanAttempt(a Attempt) Attempt {
	for _, s := range []*string{&a.SubCode, &a.Msg, &a.SubMsg, &a.FailCode, &a.FailMessage, &a.TOPRequestID, &a.Detail} {
		*s = cleanText(*s)
	}
	return a
}

// attemptError is the one-line summary of a failed attempt kept on its event:
// the most specific message TOP gave, else the client's own detail.
func attemptError(a Attempt) string {
	if a.Class == ClassDelivered {
		return ""
	}
	for _, msg := range []string{a.FailMessage, a.SubMsg, a.Msg, a.Detail} {
		if msg != "" {
			return msg
		}
	}
	if a.HTTPStatus != 0 {
		return fmt.Sprintf("HTTP %d", a.HTTPStatus)
	}
	return a.Class
}

// eventExists returns an error wrapping ErrNotFound if the event was never
// recorded.
func eventExists(ctx context.Context, tx *sqlx.Tx, bizID string, seq int64) error {
	var one int
	err := tx.GetContext(ctx, &one, tx.Rebind(`SELECT 1 FROM events WHERE biz_id = ? AND seq = ?`), bizID, seq)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("event %w", ErrNotFound) // the caller's wrapping names biz_id and seq
	}
	if err != nil {
		return fmt.Errorf("look up event: %w", err)
	}
	return nil
}

// SetCallback sets one event's callback state and, unless policyCallbackState
// is empty, its policy's CallbackState, in one transaction. Setting the same
// values again changes nothing. A delivered or skipped event stays so:
// TOP's acceptance is a fact, and an operator's skip a decision, that later
// bookkeeping (a park's write retried after the skip, say) must not erase.
// The error wraps ErrNotFound if the event was never recorded.
func (s *Store) SetCallback(ctx context.Context, bizID string, seq int64, callback string, policyCallbackState string) error {
	return s.setCallback(ctx, bizID, seq, callback, policyCallbackState, nil)
}

// OperatorAction is one operator action in the audit trail: who retried or
// skipped which callback, when and why.
type OperatorAction struct {
	BizID  string
	Seq    int64
	Action string // "retry", "skip", or "import" (an event imported as already reported, see RecordImported)
	By     string // the ingress caller's name or the CLI's OS user; "" when unknown
	Reason string
	At     time.Time
	// Key is the action's idempotency key (column update_id): with it, a
	// repeated write (the handler run again after a lost workflow task, at
	// a later At, or the action re-sent after its Update was lost) keeps
	// one row. An import's is its Update's ID; an operator action's names
	// the park of the callback it acts on.
	Key string
}

// operatorActions are the actions SetCallbackByOperator takes; the audit
// trail also holds ActionImport rows, written by RecordImported.
var operatorActions = []string{"retry", "skip"}

// ActionImport is the audit trail's action for an event imported as
// already reported to TOP.
const ActionImport = "import"

// SetCallbackByOperator is SetCallback for an operator's decision: the
// action is added to the audit trail in the same transaction. Recording the
// same action (same seq, action and time) again changes nothing.
func (s *Store) SetCallbackByOperator(ctx context.Context, bizID string, seq int64, callback, policyCallbackState string, op OperatorAction) error {
	op.BizID, op.Seq = bizID, seq
	return s.setCallback(ctx, bizID, seq, callback, policyCallbackState, &op)
}

func (s *Store) setCallback(ctx context.Context, bizID string, seq int64, callback, policyCallbackState string, op *OperatorAction) error {
	wrap := func(err error) error {
		return fmt.Errorf("set callback of biz_id %q seq %d to %q: %w", bizID, seq, callback, err)
	}
	if !slices.Contains(eventCallbacks, callback) {
		return wrap(&InvalidError{Field: "event callback", Problem: unknownValue(callback, eventCallbacks)})
	}
	if policyCallbackState != "" && !slices.Contains(policyCallbackStates, policyCallbackState) {
		return wrap(&InvalidError{Field: "policy callback_state", Problem: unknownValue(policyCallbackState, policyCallbackStates)})
	}
	if err := checkTexts(field{"biz_id", bizID}); err != nil {
		return wrap(err)
	}
	if op != nil {
		if !slices.Contains(operatorActions, op.Action) {
			return wrap(&InvalidError{Field: "operator action", Problem: unknownValue(op.Action, operatorActions)})
		}
		if op.At.IsZero() {
			return wrap(&InvalidError{Field: "operator action time", Problem: "zero"})
		}
		if err := checkTexts(field{"operator", op.By}, field{"operator reason", op.Reason}); err != nil {
			return wrap(err)
		}
	}
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		// The policy row first: RecordEvents locks it before the event rows,
		// and taking the two in the other order here would let the two
		// deadlock on PostgreSQL. If the event turns out not to exist, the
		// rollback undoes this update.
		if policyCallbackState != "" {
			// updated_at only moves when the state does, so a repeat is a no-op.
			if _, err := tx.ExecContext(ctx, tx.Rebind(
				`UPDATE policies SET
					updated_at = CASE WHEN callback_state = ? THEN updated_at ELSE ? END,
					callback_state = ?
				WHERE biz_id = ?`), policyCallbackState, micros(s.now()), policyCallbackState, bizID); err != nil {
				return fmt.Errorf("update policy: %w", err)
			}
		}
		res, err := tx.ExecContext(ctx, tx.Rebind(
			`UPDATE events SET callback = CASE WHEN callback IN ('delivered', 'skipped', 'imported') THEN callback ELSE ? END
			WHERE biz_id = ? AND seq = ?`), callback, bizID, seq)
		if err != nil {
			return fmt.Errorf("update event: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("update event: %w", err)
		} else if n == 0 {
			return fmt.Errorf("event %w", ErrNotFound)
		}
		if op != nil {
			if _, err := tx.ExecContext(ctx, tx.Rebind(
				`INSERT INTO operator_actions (biz_id, seq, action, at, by_whom, reason, update_id) VALUES (?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT DO NOTHING`), bizID, seq, op.Action, micros(op.At), cleanText(op.By), cleanText(op.Reason), op.Key); err != nil {
				return fmt.Errorf("record operator action: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return wrap(err)
	}
	return nil
}

// OperatorActions returns a policy's operator actions, oldest first.
func (s *Store) OperatorActions(ctx context.Context, bizID string) ([]OperatorAction, error) {
	if err := checkTexts(field{"biz_id", bizID}); err != nil {
		return nil, fmt.Errorf("read operator actions: %w", err)
	}
	var rows []struct {
		Seq    int64  `db:"seq"`
		Action string `db:"action"`
		At     int64  `db:"at"`
		By     string `db:"by_whom"`
		Reason string `db:"reason"`
		Key    string `db:"update_id"`
	}
	if err := s.db.SelectContext(ctx, &rows, s.db.Rebind(
		`SELECT seq, action, at, by_whom, reason, update_id FROM operator_actions WHERE biz_id = ? ORDER BY at, seq, action`), bizID); err != nil {
		return nil, fmt.Errorf("read operator actions of biz_id %q: %w", bizID, err)
	}
	out := make([]OperatorAction, len(rows))
	for i, r := range rows {
		out[i] = OperatorAction{BizID: bizID, Seq: r.Seq, Action: r.Action, By: r.By, Reason: r.Reason, At: fromMicros(r.At), Key: r.Key}
	}
	return out, nil
}

// Events returns a policy's recorded events ordered by seq (none for a policy
// never recorded).
func (s *Store) Events(ctx context.Context, bizID string) ([]Event, error) {
	if err := checkTexts(field{"biz_id", bizID}); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	var rows []eventRow
	if err := s.db.SelectContext(ctx, &rows, s.db.Rebind(
		`SELECT `+eventColumns+` FROM events WHERE biz_id = ? ORDER BY seq`), bizID); err != nil {
		return nil, fmt.Errorf("read events of biz_id %q: %w", bizID, err)
	}
	out := make([]Event, len(rows))
	for i, r := range rows {
		out[i] = r.event()
	}
	return out, nil
}

// Attempts returns a policy's recorded callback attempts ordered by seq, then
// attempt number.
func (s *Store) Attempts(ctx context.Context, bizID string) ([]Attempt, error) {
	if err := checkTexts(field{"biz_id", bizID}); err != nil {
		return nil, fmt.Errorf("read attempts: %w", err)
	}
	var rows []attemptRow
	if err := s.db.SelectContext(ctx, &rows, s.db.Rebind(
		`SELECT `+attemptColumns+` FROM attempts WHERE biz_id = ? ORDER BY seq, attempt`), bizID); err != nil {
		return nil, fmt.Errorf("read attempts of biz_id %q: %w", bizID, err)
	}
	out := make([]Attempt, len(rows))
	for i, r := range rows {
		out[i] = r.attempt()
	}
	return out, nil
}
