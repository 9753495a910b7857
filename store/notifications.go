package store

import (
	"context"
	"fmt"
	"time"
)

// LostNotification is a notification to the business system that ran out
// of its retry budget: the receiver never answered it with a 2xx.
type LostNotification struct {
	WebhookID  string    `json:"webhook_id"`
	BizID      string    `json:"biz_id"`
	Seq        int64     `json:"seq"`
	Type       string    `json:"type"` // a notify.Type
	OccurredAt time.Time `json:"occurred_at"`
	LostAt     time.Time `json:"lost_at"`
	LastError  string    `json:"last_error,omitempty"`
}

// RecordLostNotification records n; recording the same webhook-id again
// changes nothing.
func (s *Store) RecordLostNotification(ctx context.Context, n LostNotification) error {
	for _, f := range []field{{"webhook_id", n.WebhookID}, {"biz_id", n.BizID}, {"type", n.Type}} {
		if f.value == "" {
			return &InvalidError{Field: f.name, Problem: "is empty"}
		}
	}
	if err := checkTexts(field{"webhook_id", n.WebhookID}, field{"biz_id", n.BizID}, field{"type", n.Type}); err != nil {
		return fmt.Errorf("record lost notification: %w", err)
	}
	n.LastError = cleanText(n.LastError)
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(
		`INSERT INTO lost_notifications (webhook_id, biz_id, seq, type, occurred_at, lost_at, last_error)
		 VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (webhook_id) DO NOTHING`),
		n.WebhookID, n.BizID, n.Seq, n.Type, micros(n.OccurredAt), micros(n.LostAt), n.LastError); err != nil {
		return fmt.Errorf("record lost notification %s: %w", n.WebhookID, err)
	}
	return nil
}

// LostNotifications returns a policy's lost notifications, in the order
// they occurred.
func (s *Store) LostNotifications(ctx context.Context, bizID string) ([]LostNotification, error) {
	if err := checkTexts(field{"biz_id", bizID}); err != nil {
		return nil, fmt.Errorf("read lost notifications: %w", err)
	}
	var rows []struct {
		WebhookID  string `db:"webhook_id"`
		Seq        int64  `db:"seq"`
		Type       string `db:"type"`
		OccurredAt int64  `db:"occurred_at"`
		LostAt     int64  `db:"lost_at"`
		LastError  string `db:"last_error"`
	}
	if err := s.db.SelectContext(ctx, &rows, s.db.Rebind(
		`SELECT webhook_id, seq, type, occurred_at, lost_at, last_error FROM lost_notifications
		 WHERE biz_id = ? ORDER BY occurred_at, seq, webhook_id`), bizID); err != nil {
		return nil, fmt.Errorf("read lost notifications of biz_id %q: %w", bizID, err)
	}
	out := make([]LostNotification, len(rows))
	for i, r := range rows {
		out[i] = LostNotification{WebhookID: r.WebhookID, BizID: bizID, Seq: r.Seq, Type: r.Type,
			OccurredAt: fromMicros(r.OccurredAt), LostAt: fromMicros(r.LostAt), LastError: r.LastError}
	}
	return out, nil
}

// CountLostNotifications counts every lost notification (all policies):
// what chaos reports as lost.
func (s *Store) CountLostNotifications(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.GetContext(ctx, &n, `SELECT COUNT(*) FROM lost_notifications`); err != nil {
		return 0, fmt.Errorf("count lost notifications: %w", err)
	}
	return n, nil
}
