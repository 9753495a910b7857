package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// Policy is one policy as last recorded: what a reopened workflow resumes
// from and what `starter list` shows.
type Policy struct {
	BizID          string
	State          string
	InsuranceType  int
	PolicyNumber   string
	Endorsements   int
	LastSeq        int64
	LastOccurredAt string // time_of_occurrence of the event with seq LastSeq
	CallbackState  string // idle, pending, retrying or parked
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Event is one accepted insurance-result event and the state of its callback.
type Event struct {
	BizID             string
	Seq               int64
	RequestID         string
	Stage             int
	Status            int
	TimeOfOccurrence  string
	Payload           string // the event's JSON, as accepted; may hold personal data, so never quoted in errors
	AcceptedAt        time.Time
	StateAfter        string
	EndorsementsAfter int
	Callback          string // queued|sending|retrying|delivered|parked|skipped
	Attempts          int
	LastClass         string
	LastError         string
	DeliveredAt       *time.Time
}

// ListFilter selects policies for ListPolicies. Empty fields do not filter.
type ListFilter struct {
	State         string
	CallbackState string
	AfterBizID    string // keyset pagination: only policies whose biz_id sorts after this
	Limit         int    // default 50, at most 500 (larger values are lowered to 500)
}

// List limits.
const (
	DefaultListLimit = 50
	MaxListLimit     = 500
)

// Callback states of one event, as the workflow names them
// (workflows.EventCallback); the store checks values against them so a typo
// cannot reach the audit trail.
//
// "imported" is an event imported with already_reported: the system
// insuranceflow replaced reported it to TOP, so it is never sent; like
// "delivered" and "skipped" it is final.
var eventCallbacks = []string{"queued", "sending", "retrying", "delivered", "parked", "skipped", "imported"}

// Callback states of a policy's FIFO (workflows.CallbackState).
var policyCallbackStates = []string{"idle", "pending", "retrying", "parked"}

const (
	// CallbackImported is the callback state of an event imported as
	// already reported to TOP (workflows.EventImported).
	CallbackImported  = "imported"
	callbackQueued    = "queued"
	callbackDelivered = "delivered"
	// ClassDelivered is the attempt class that means TOP accepted the callback.
	ClassDelivered = "delivered"
)

const policyColumns = `biz_id, state, insurance_type, policy_number, endorsements, last_seq,
	last_occurred_at, callback_state, created_at, updated_at`

// policyRow is a policies row as stored.
type policyRow struct {
	BizID          string `db:"biz_id"`
	State          string `db:"state"`
	InsuranceType  int    `db:"insurance_type"`
	PolicyNumber   string `db:"policy_number"`
	Endorsements   int    `db:"endorsements"`
	LastSeq        int64  `db:"last_seq"`
	LastOccurredAt string `db:"last_occurred_at"`
	CallbackState  string `db:"callback_state"`
	CreatedAt      int64  `db:"created_at"`
	UpdatedAt      int64  `db:"updated_at"`
}

func (r policyRow) policy() Policy {
	return Policy{
		BizID:          r.BizID,
		State:          r.State,
		InsuranceType:  r.InsuranceType,
		PolicyNumber:   r.PolicyNumber,
		Endorsements:   r.Endorsements,
		LastSeq:        r.LastSeq,
		LastOccurredAt: r.LastOccurredAt,
		CallbackState:  r.CallbackState,
		CreatedAt:      fromMicros(r.CreatedAt),
		UpdatedAt:      fromMicros(r.UpdatedAt),
	}
}

// upsertPolicy inserts the policy, or moves an existing one forward. A row
// only takes the new values when they come from a higher seq, so a late or
// repeated write can never roll a policy back; the comparison happens inside
// the statement so that concurrent writers cannot interleave a read and a
// write. Every right-hand side sees the row as it was before the update.
const upsertPolicy = `INSERT INTO policies (` + policyColumns + `)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (biz_id) DO UPDATE SET
	state = CASE WHEN excluded.last_seq > policies.last_seq THEN excluded.state ELSE policies.state END,
	insurance_type = CASE WHEN excluded.last_seq > policies.last_seq AND excluded.insurance_type <> 0
		THEN excluded.insurance_type ELSE policies.insurance_type END,
	policy_number = CASE WHEN excluded.last_seq > policies.last_seq AND excluded.policy_number <> ''
		THEN excluded.policy_number ELSE policies.policy_number END,
	endorsements = CASE WHEN excluded.last_seq > policies.last_seq THEN excluded.endorsements ELSE policies.endorsements END,
	last_occurred_at = CASE WHEN excluded.last_seq > policies.last_seq
		THEN excluded.last_occurred_at ELSE policies.last_occurred_at END,
	callback_state = CASE WHEN excluded.last_seq > policies.last_seq AND excluded.callback_state <> ''
		THEN excluded.callback_state ELSE policies.callback_state END,
	updated_at = CASE WHEN excluded.last_seq > policies.last_seq THEN excluded.updated_at ELSE policies.updated_at END,
	last_seq = CASE WHEN excluded.last_seq > policies.last_seq THEN excluded.last_seq ELSE policies.last_seq END`

// insertEvent does nothing on a clash with either unique key, (biz_id, seq)
// or (biz_id, request_id); RecordEvents then looks at what is there.
const insertEvent = `INSERT INTO events (biz_id, seq, request_id, stage, status, time_of_occurrence, payload,
	accepted_at, state_after, endorsements_after, callback, attempts, last_class, last_error, delivered_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING`

// RecordEvents records accepted events of one policy, in one transaction.
//
// The policy row is inserted or moved forward: its State, Endorsements,
// LastOccurredAt and LastSeq are those of the highest-seq event given (unless
// p.LastSeq is higher still, in which case p's own fields are used), and they
// replace the stored ones only if that seq is higher than the stored
// LastSeq. PolicyNumber, InsuranceType and CallbackState move forward the same
// way but only when non-empty; change CallbackState with SetCallback.
//
// Each event is inserted unless its (biz_id, seq) is already recorded with the
// same request id, so the same call twice records once. An event whose
// request id is recorded under another seq, or whose seq holds another request
// id, is an *EventConflictError and nothing of the call is recorded. Events
// with an empty BizID take p.BizID; an empty Callback is "queued"; a zero
// AcceptedAt, CreatedAt or UpdatedAt is the current time.
func (s *Store) RecordEvents(ctx context.Context, p Policy, events ...Event) error {
	return s.recordEvents(ctx, p, events, nil)
}

// RecordImported is RecordEvents for events imported from the system
// insuranceflow replaced: each event must have the callback "imported", and
// gets an "import" row in the audit trail (operator_actions) saying who
// imported it and when, in the same transaction. Recording the same call
// again changes nothing: the audit row's idempotency key is key, or its
// time when key is "".
func (s *Store) RecordImported(ctx context.Context, p Policy, events []Event, by string, at time.Time, key string) error {
	for _, e := range events {
		if e.Callback != CallbackImported {
			return fmt.Errorf("record imported events for biz_id %q: %w", p.BizID,
				&InvalidError{Field: fmt.Sprintf("event seq %d callback", e.Seq), Problem: fmt.Sprintf("%q is not %q", e.Callback, CallbackImported)})
		}
	}
	if at.IsZero() {
		return fmt.Errorf("record imported events for biz_id %q: %w", p.BizID, &InvalidError{Field: "import time", Problem: "zero"})
	}
	if err := checkTexts(field{"importer", by}); err != nil {
		return fmt.Errorf("record imported events for biz_id %q: %w", p.BizID, err)
	}
	return s.recordEvents(ctx, p, events, &OperatorAction{Action: ActionImport, By: by, At: at, Key: key})
}

func (s *Store) recordEvents(ctx context.Context, p Policy, events []Event, audit *OperatorAction) error {
	p, events, err := s.prepareRecord(p, events)
	if err != nil {
		return fmt.Errorf("record events for biz_id %q: %w", p.BizID, err)
	}
	err = s.inTx(ctx, func(tx *sqlx.Tx) error { return recordEventsTx(ctx, tx, p, events, audit) })
	if err != nil {
		return fmt.Errorf("record events for biz_id %q: %w", p.BizID, err)
	}
	return nil
}

// recordEventsTx is recordEvents' writes, in tx, for a prepared call.
func recordEventsTx(ctx context.Context, tx *sqlx.Tx, p Policy, events []Event, audit *OperatorAction) error {
	if _, err := tx.ExecContext(ctx, tx.Rebind(upsertPolicy),
		p.BizID, p.State, p.InsuranceType, p.PolicyNumber, p.Endorsements, p.LastSeq,
		p.LastOccurredAt, p.CallbackState, micros(p.CreatedAt), micros(p.UpdatedAt),
	); err != nil {
		return fmt.Errorf("upsert policy: %w", err)
	}
	for _, e := range events {
		if err := insertEventTx(ctx, tx, e); err != nil {
			return err
		}
		if audit == nil {
			continue
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(
			`INSERT INTO operator_actions (biz_id, seq, action, at, by_whom, reason, update_id) VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT DO NOTHING`), e.BizID, e.Seq, audit.Action, micros(audit.At), cleanText(audit.By), "", audit.Key); err != nil {
			return fmt.Errorf("record the import of seq %d: %w", e.Seq, err)
		}
	}
	return nil
}

// prepareRecord validates a RecordEvents call and fills in its defaults.
func (s *Store) prepareRecord(p Policy, events []Event) (Policy, []Event, error) {
	if p.BizID == "" {
		return p, nil, &InvalidError{Field: "policy biz_id", Problem: "empty"}
	}
	if err := checkTexts(field{"policy biz_id", p.BizID}, field{"policy policy_number", p.PolicyNumber}); err != nil {
		return p, nil, err
	}
	if err := checkInts(intField{"policy insurance_type", p.InsuranceType}, intField{"policy endorsements", p.Endorsements}); err != nil {
		return p, nil, err
	}
	now := s.now().UTC()
	if p.CreatedAt.IsZero() {
		p.CreatedAt = now
	}
	if p.UpdatedAt.IsZero() {
		p.UpdatedAt = now
	}
	if p.CallbackState != "" && !slices.Contains(policyCallbackStates, p.CallbackState) {
		return p, nil, &InvalidError{Field: "policy callback_state", Problem: unknownValue(p.CallbackState, policyCallbackStates)}
	}
	out := make([]Event, len(events))
	var last *Event
	for i, e := range events {
		if e.BizID == "" {
			e.BizID = p.BizID
		}
		if e.Callback == "" {
			e.Callback = callbackQueued
		}
		if e.AcceptedAt.IsZero() {
			e.AcceptedAt = now
		}
		if err := validateEvent(p.BizID, e); err != nil {
			return p, nil, err
		}
		out[i] = e
		if last == nil || e.Seq > last.Seq {
			last = &out[i]
		}
	}
	if last != nil && last.Seq >= p.LastSeq {
		p.LastSeq = last.Seq
		p.State = last.StateAfter
		p.Endorsements = last.EndorsementsAfter
		p.LastOccurredAt = last.TimeOfOccurrence
	}
	if p.State == "" {
		return p, nil, &InvalidError{Field: "policy state", Problem: "empty"}
	}
	// State and LastOccurredAt may come from an event, checked above.
	if err := checkTexts(field{"policy state", p.State}, field{"policy last_occurred_at", p.LastOccurredAt}); err != nil {
		return p, nil, err
	}
	return p, out, nil
}

func validateEvent(bizID string, e Event) error {
	switch {
	case e.BizID != bizID:
		return &InvalidError{Field: "event biz_id", Problem: fmt.Sprintf("%q differs from the policy's %q", e.BizID, bizID)}
	case e.Seq < 1:
		return &InvalidError{Field: "event seq", Problem: fmt.Sprintf("%d is not positive", e.Seq)}
	case e.RequestID == "":
		return &InvalidError{Field: fmt.Sprintf("event seq %d request_id", e.Seq), Problem: "empty"}
	case e.StateAfter == "":
		return &InvalidError{Field: fmt.Sprintf("event seq %d state_after", e.Seq), Problem: "empty"}
	case !json.Valid([]byte(e.Payload)):
		// The payload itself is not quoted: it may hold personal data.
		return &InvalidError{Field: fmt.Sprintf("event seq %d payload", e.Seq), Problem: "not valid JSON"}
	case !slices.Contains(eventCallbacks, e.Callback):
		return &InvalidError{Field: fmt.Sprintf("event seq %d callback", e.Seq), Problem: unknownValue(e.Callback, eventCallbacks)}
	case e.Attempts < 0:
		return &InvalidError{Field: fmt.Sprintf("event seq %d attempts", e.Seq), Problem: fmt.Sprintf("%d is negative", e.Attempts)}
	}
	name := func(column string) string { return fmt.Sprintf("event seq %d %s", e.Seq, column) }
	if err := checkTexts(
		field{name("request_id"), e.RequestID},
		field{name("time_of_occurrence"), e.TimeOfOccurrence},
		field{name("payload"), e.Payload},
		field{name("state_after"), e.StateAfter},
		field{name("last_class"), e.LastClass},
		field{name("last_error"), e.LastError},
	); err != nil {
		return err
	}
	return checkInts(
		intField{name("stage"), e.Stage},
		intField{name("status"), e.Status},
		intField{name("endorsements_after"), e.EndorsementsAfter},
		intField{name("attempts"), e.Attempts},
	)
}

// insertEventTx inserts one event, or confirms that it is already recorded.
func insertEventTx(ctx context.Context, tx *sqlx.Tx, e Event) error {
	var deliveredAt sql.NullInt64
	if e.DeliveredAt != nil {
		deliveredAt = sql.NullInt64{Int64: micros(*e.DeliveredAt), Valid: true}
	}
	res, err := tx.ExecContext(ctx, tx.Rebind(insertEvent),
		e.BizID, e.Seq, e.RequestID, e.Stage, e.Status, e.TimeOfOccurrence, e.Payload,
		micros(e.AcceptedAt), e.StateAfter, e.EndorsementsAfter, e.Callback, e.Attempts, e.LastClass, e.LastError,
		deliveredAt,
	)
	if err != nil {
		return fmt.Errorf("insert event seq %d: %w", e.Seq, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("insert event seq %d: %w", e.Seq, err)
	} else if n == 1 {
		return nil
	}
	// Nothing inserted: a row holds this seq or this request id (or both).
	// Reading it now is safe: events are never deleted, and the clash is
	// committed (the insert waited for any concurrent writer of it).
	var clashes []struct {
		Seq       int64  `db:"seq"`
		RequestID string `db:"request_id"`
	}
	if err := tx.SelectContext(ctx, &clashes, tx.Rebind(
		`SELECT seq, request_id FROM events WHERE biz_id = ? AND (seq = ? OR request_id = ?) ORDER BY seq`),
		e.BizID, e.Seq, e.RequestID,
	); err != nil {
		return fmt.Errorf("look up event seq %d: %w", e.Seq, err)
	}
	for _, c := range clashes {
		if c.Seq != e.Seq || c.RequestID != e.RequestID {
			return &EventConflictError{
				BizID: e.BizID, Seq: e.Seq, RequestID: e.RequestID,
				ExistingSeq: c.Seq, ExistingRequestID: c.RequestID,
			}
		}
	}
	if len(clashes) == 0 {
		return fmt.Errorf("insert event seq %d: nothing inserted and no clashing row found", e.Seq)
	}
	return nil
}

// Policy returns one policy; the error wraps ErrNotFound if the store has
// never recorded it.
func (s *Store) Policy(ctx context.Context, bizID string) (Policy, error) {
	if err := checkTexts(field{"biz_id", bizID}); err != nil {
		return Policy{}, fmt.Errorf("read policy: %w", err)
	}
	// A single statement is its own consistent snapshot; no transaction
	// needed (and with SQLite's BEGIN IMMEDIATE it would block writers).
	var r policyRow
	err := s.db.GetContext(ctx, &r, s.db.Rebind(`SELECT `+policyColumns+` FROM policies WHERE biz_id = ?`), bizID)
	if errors.Is(err, sql.ErrNoRows) {
		return Policy{}, fmt.Errorf("policy %q: %w", bizID, ErrNotFound)
	}
	if err != nil {
		return Policy{}, fmt.Errorf("read policy %q: %w", bizID, err)
	}
	return r.policy(), nil
}

// ListPolicies returns policies ordered by biz_id, filtered by f. For the next
// page, pass the last biz_id returned as f.AfterBizID.
func (s *Store) ListPolicies(ctx context.Context, f ListFilter) ([]Policy, error) {
	limit := f.Limit
	switch {
	case limit < 0:
		return nil, &InvalidError{Field: "list limit", Problem: fmt.Sprintf("%d is negative", limit)}
	case limit == 0:
		limit = DefaultListLimit
	case limit > MaxListLimit:
		limit = MaxListLimit
	}
	if err := checkTexts(
		field{"list state", f.State},
		field{"list callback_state", f.CallbackState},
		field{"list after_biz_id", f.AfterBizID},
	); err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	// Byte order on every database, so that pages follow Go's string order
	// and a page boundary means the same thing to every backend.
	byBytes := "biz_id" + s.dialect.byteOrder
	var q strings.Builder
	q.WriteString(`SELECT ` + policyColumns + ` FROM policies WHERE ` + byBytes + ` > ?`)
	args := []any{f.AfterBizID}
	if f.State != "" {
		q.WriteString(` AND state = ?`)
		args = append(args, f.State)
	}
	if f.CallbackState != "" {
		q.WriteString(` AND callback_state = ?`)
		args = append(args, f.CallbackState)
	}
	q.WriteString(` ORDER BY ` + byBytes + ` LIMIT ?`)
	args = append(args, limit)

	var rows []policyRow
	if err := s.db.SelectContext(ctx, &rows, s.db.Rebind(q.String()), args...); err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	out := make([]Policy, len(rows))
	for i, r := range rows {
		out[i] = r.policy()
	}
	return out, nil
}

func unknownValue(v string, allowed []string) string {
	return fmt.Sprintf("%q is not one of %s", v, strings.Join(allowed, ", "))
}
