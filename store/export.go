package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ExportedEvent is one accepted event as the export shows it: what was
// accepted, where its callback stands, and what TOP answered. It carries
// no payload, so no personal data (bank_account_manager_name) leaves
// through an export.
type ExportedEvent struct {
	BizID            string     `json:"biz_id"`
	Seq              int64      `json:"seq"`
	RequestID        string     `json:"request_id"`
	Stage            int        `json:"stage"`
	Status           int        `json:"status"`
	TimeOfOccurrence string     `json:"time_of_occurrence"`
	AcceptedAt       time.Time  `json:"accepted_at"`
	StateAfter       string     `json:"state_after"`
	Callback         string     `json:"callback"`
	Attempts         int        `json:"attempts"`
	DeliveredAt      *time.Time `json:"delivered_at"`
	// TOPRequestID is the request id TOP gave the latest attempt that got
	// one (the delivering attempt, for a delivered callback); "" when none.
	TOPRequestID string `json:"top_request_id"`
}

// ExportCursor is the position of an exported event in the export's order,
// (accepted_at, biz_id, seq): the keyset an export resumes after.
type ExportCursor struct {
	AcceptedAt time.Time
	BizID      string
	Seq        int64
}

// Cursor is the position of e, to resume an export after it.
func (e ExportedEvent) Cursor() ExportCursor {
	return ExportCursor{AcceptedAt: e.AcceptedAt, BizID: e.BizID, Seq: e.Seq}
}

// ExportFilter selects events for ExportEvents. Zero fields do not filter.
type ExportFilter struct {
	Since    time.Time     // accepted at or after
	Until    time.Time     // accepted before
	Callback string        // the event's callback state, e.g. "delivered"
	After    *ExportCursor // only events after this position
	Limit    int           // at most this many; 0 = all
}

// EventCallbacks are the callback states an event can be in, for callers
// that check a filter before asking.
func EventCallbacks() []string { return slices.Clone(eventCallbacks) }

// ExportEvents calls fn for every event f selects, in (accepted_at, biz_id,
// seq) order (biz_id in byte order on every database), reading one row at a
// time from the database: memory stays constant however many rows match.
// It stops at fn's first error and returns it.
//
// The rows come from one statement, a consistent snapshot; a long export
// holds it open, which on SQLite in WAL mode does not block writers.
func (s *Store) ExportEvents(ctx context.Context, f ExportFilter, fn func(ExportedEvent) error) error {
	if f.Limit < 0 {
		return &InvalidError{Field: "export limit", Problem: fmt.Sprintf("%d is negative", f.Limit)}
	}
	if f.Callback != "" && !slices.Contains(eventCallbacks, f.Callback) {
		return &InvalidError{Field: "export callback", Problem: unknownValue(f.Callback, eventCallbacks)}
	}
	if f.After != nil {
		if err := checkTexts(field{"export cursor biz_id", f.After.BizID}); err != nil {
			return fmt.Errorf("export events: %w", err)
		}
	}
	bizID := "e.biz_id" + s.dialect.byteOrder
	var q strings.Builder
	q.WriteString(`SELECT e.biz_id, e.seq, e.request_id, e.stage, e.status, e.time_of_occurrence, e.accepted_at,
	e.state_after, e.callback, e.attempts, e.delivered_at,
	COALESCE((SELECT a.top_request_id FROM attempts a
		WHERE a.biz_id = e.biz_id AND a.seq = e.seq AND a.top_request_id <> ''
		ORDER BY a.attempt DESC LIMIT 1), '') AS top_request_id
FROM events e WHERE 1 = 1`)
	var args []any
	if !f.Since.IsZero() {
		q.WriteString(` AND e.accepted_at >= ?`)
		args = append(args, micros(f.Since))
	}
	if !f.Until.IsZero() {
		q.WriteString(` AND e.accepted_at < ?`)
		args = append(args, micros(f.Until))
	}
	if f.Callback != "" {
		q.WriteString(` AND e.callback = ?`)
		args = append(args, f.Callback)
	}
	if c := f.After; c != nil {
		at := micros(c.AcceptedAt)
		q.WriteString(` AND (e.accepted_at > ? OR (e.accepted_at = ? AND (` + bizID + ` > ? OR (e.biz_id = ? AND e.seq > ?))))`)
		args = append(args, at, at, c.BizID, c.BizID, c.Seq)
	}
	q.WriteString(` ORDER BY e.accepted_at, ` + bizID + `, e.seq`)
	if f.Limit > 0 {
		q.WriteString(` LIMIT ?`)
		args = append(args, f.Limit)
	}
	rows, err := s.db.QueryxContext(ctx, s.db.Rebind(q.String()), args...)
	if err != nil {
		return fmt.Errorf("export events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			e         ExportedEvent
			accepted  int64
			delivered sql.NullInt64
		)
		if err := rows.Scan(&e.BizID, &e.Seq, &e.RequestID, &e.Stage, &e.Status, &e.TimeOfOccurrence, &accepted,
			&e.StateAfter, &e.Callback, &e.Attempts, &delivered, &e.TOPRequestID); err != nil {
			return fmt.Errorf("export events: read a row: %w", err)
		}
		e.AcceptedAt = fromMicros(accepted)
		if delivered.Valid {
			t := fromMicros(delivered.Int64)
			e.DeliveredAt = &t
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("export events: %w", err)
	}
	return nil
}
