package activities

import (
	"context"
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/insuranceflow/insuranceflow/notify"
	"github.com/insuranceflow/insuranceflow/store"
)

// Notifier sends one notification to the business system; *notify.Sender
// satisfies it, tests pass a fake. The secret it signs with lives in the
// worker process only: the workflow hands over the notification, never a
// key, so nothing secret reaches Temporal's history.
type Notifier interface {
	Send(ctx context.Context, n notify.Notification) error
}

var _ Notifier = (*notify.Sender)(nil)

// NotifyMetrics receives notification outcomes, for monitoring.
type NotifyMetrics interface {
	// NotificationSent is a notification the receiver answered with a 2xx.
	NotificationSent(t notify.Type)
	// NotificationFailed is one failed send; Temporal retries it within
	// the notification's budget.
	NotificationFailed(t notify.Type)
	// NotificationLost is a notification whose budget ran out.
	NotificationLost(t notify.Type)
}

// Error types of SendNotification.
const (
	// ErrorTypeNotifyFailed is a send the receiver did not acknowledge
	// (non-2xx or no answer): retried.
	ErrorTypeNotifyFailed = "notify_failed"
	// ErrorTypeNotifyUnconfigured is a worker without NOTIFY_URL asked to
	// send: retried too, so that a worker that has it (or this one,
	// restarted with it) sends it within the budget.
	ErrorTypeNotifyUnconfigured = "notify_unconfigured"
)

// SendNotification POSTs one notification, signed at send time. Every
// failure is retryable: the workflow's retry policy and the notification's
// budget (NOTIFY_RETRY_BUDGET) decide when to give up. The receiver sees
// the same webhook-id on every attempt, so it can drop repeats.
func (a *Activities) SendNotification(ctx context.Context, n notify.Notification) error {
	if a.Notifier == nil {
		return temporal.NewApplicationError("this worker has no NOTIFY_URL: the notification waits for a worker that has", ErrorTypeNotifyUnconfigured)
	}
	if err := a.Notifier.Send(ctx, n); err != nil {
		a.notifyMetrics().NotificationFailed(n.Type)
		a.logger().WarnContext(ctx, "notification not acknowledged", "biz_id", n.BizID, "seq", n.Seq, "type", string(n.Type),
			"webhook_id", n.ID, "error", err)
		return temporal.NewApplicationError(err.Error(), ErrorTypeNotifyFailed)
	}
	a.notifyMetrics().NotificationSent(n.Type)
	a.logger().InfoContext(ctx, "notification sent", "biz_id", n.BizID, "seq", n.Seq, "type", string(n.Type), "webhook_id", n.ID)
	return nil
}

// LostNotification is a notification whose retry budget ran out.
type LostNotification struct {
	Notification notify.Notification `json:"notification"`
	LostAt       time.Time           `json:"lost_at"`
	LastError    string              `json:"last_error,omitempty"`
}

// RecordLostNotification is the local activity that records a notification
// that ran out of budget, and counts it once: a retry of this local
// activity after it recorded finds the row and counts nothing.
func (a *Activities) RecordLostNotification(ctx context.Context, in LostNotification) error {
	n := in.Notification
	known, err := a.Store.LostNotifications(ctx, n.BizID)
	if err != nil {
		return err
	}
	for _, k := range known {
		if k.WebhookID == n.ID {
			return nil
		}
	}
	err = a.Store.RecordLostNotification(ctx, store.LostNotification{
		WebhookID: n.ID, BizID: n.BizID, Seq: n.Seq, Type: string(n.Type),
		OccurredAt: n.OccurredAt, LostAt: in.LostAt, LastError: in.LastError,
	})
	var invalid *store.InvalidError
	if errors.As(err, &invalid) {
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrorTypeInvalid, err)
	}
	if err != nil {
		return err
	}
	a.notifyMetrics().NotificationLost(n.Type)
	a.logger().ErrorContext(ctx, "notification lost: its retry budget ran out", "biz_id", n.BizID, "seq", n.Seq,
		"type", string(n.Type), "webhook_id", n.ID)
	return nil
}

func (a *Activities) notifyMetrics() NotifyMetrics {
	if a.NotifyMetrics != nil {
		return a.NotifyMetrics
	}
	return noMetrics{}
}

func (noMetrics) NotificationSent(notify.Type)   {}
func (noMetrics) NotificationFailed(notify.Type) {}
func (noMetrics) NotificationLost(notify.Type)   {}
