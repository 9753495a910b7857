package workflows

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/insuranceflow/insuranceflow/activities"
	"github.com/insuranceflow/insuranceflow/notify"
)

// Notifications to the business system live in a second queue beside the
// callback FIFO, drained by their own coroutine (drainNotifications), so a
// receiver that is down delays only notifications: the FIFO never waits
// for one. The queue is part of the snapshot, so continue-as-new carries
// it (and a reopening run that asks a cancelled or terminated run for its
// snapshot takes it over); a run completes only once it is empty.

// notifyAttemptTimeout bounds one POST to the receiver (the sender's own
// client times out at 30 s).
const notifyAttemptTimeout = 45 * time.Second

// The notifier is not versioned with GetVersion. Only runs whose settings
// say Notify (or that inherited notifications) run it, and the setting came
// with the notifier, so no history recorded before it can start one. A
// GetVersion here cost every notified run a marker and a TemporalChangeVersion
// search-attribute upsert: one Temporal action and a visibility write per
// policy run. Histories recorded with that marker still replay: the SDK
// skips a version marker and the upsert that follows it.

// notifyOf queues a notification of type t about cb, as it stands now, when
// this run notifies; edit fills in the type's own fields. Nothing here
// creates a command: the coroutine schedules the send.
func (p *policy) notifyOf(ctx workflow.Context, t notify.Type, cb Callback, edit func(*notify.Notification)) {
	if !p.settings.Notify {
		return
	}
	now := workflow.Now(ctx)
	n := notify.Notification{
		ID:         notify.ID(p.bizID, cb.Seq, t, cb.Attempts),
		Type:       t,
		BizID:      p.bizID,
		Seq:        cb.Seq,
		RequestID:  cb.Event.RequestID,
		Stage:      cb.Event.Stage.String(),
		Status:     cb.Event.Status.String(),
		Callback:   string(cb.State),
		Attempts:   cb.Attempts,
		OccurredAt: now,
	}
	if edit != nil {
		edit(&n)
	}
	p.notifications = append(p.notifications, PendingNotification{Notification: n, QueuedAt: now})
}

// failureFields copies what TOP answered into a notification.
func failureFields(f failure) func(*notify.Notification) {
	return func(n *notify.Notification) {
		n.FailCode, n.FailMessage = f.failCode, f.failMessage
		n.ErrorCode, n.SubCode = f.code, f.subCode
		n.TOPRequestID = f.topRequestID
		n.ErrorClass, n.Error = f.class, f.summary
	}
}

// startNotifier starts the coroutine when this run notifies or inherited
// notifications to send.
func (p *policy) startNotifier(ctx workflow.Context) {
	if !p.settings.Notify && len(p.notifications) == 0 {
		return
	}
	workflow.Go(ctx, p.drainNotifications)
}

// drainNotifications sends the queued notifications one at a time, in
// order: each is retried under its own budget (NotifyRetryBudget, counted
// from when it was queued) and, if that runs out, recorded as lost in the
// store; only then does the next one go. It ends when the run is cancelled
// or completes; whatever is still queued is in the snapshot.
func (p *policy) drainNotifications(ctx workflow.Context) {
	for {
		if err := workflow.Await(ctx, func() bool { return len(p.notifications) > 0 }); err != nil {
			return // cancelled: the queue stays in the snapshot
		}
		n := p.notifications[0]
		err := p.sendNotification(ctx, n)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			p.recordLost(ctx, n, err)
		}
		p.notifications = slices.Delete(p.notifications, 0, 1)
	}
}

// sendNotification runs SendNotification under the notification's
// remaining budget, retried with the callbacks' backoff settings.
func (p *policy) sendNotification(ctx workflow.Context, n PendingNotification) error {
	left := p.settings.NotifyRetryBudget - workflow.Now(ctx).Sub(n.QueuedAt)
	if left <= 0 {
		return fmt.Errorf("retry budget of %s spent before it could be sent", p.settings.NotifyRetryBudget)
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    min(notifyAttemptTimeout, left),
		ScheduleToCloseTimeout: left,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    p.settings.RetryInitialInterval,
			BackoffCoefficient: p.settings.RetryBackoff,
			MaximumInterval:    p.settings.RetryMaxInterval,
		},
		Summary: fmt.Sprintf("notify %s #%d", n.Notification.Type, n.Notification.Seq),
	})
	return workflow.ExecuteActivity(actx, acts.SendNotification, n.Notification).Get(ctx, nil)
}

// recordLost records a notification whose budget ran out, so that the
// policy's view shows what the business system never heard.
func (p *policy) recordLost(ctx workflow.Context, n PendingNotification, sendErr error) {
	p.logger.Error("notification lost: retry budget exhausted", "seq", n.Notification.Seq,
		"type", string(n.Notification.Type), "webhook_id", n.Notification.ID)
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout:    recordAttemptTimeout,
		ScheduleToCloseTimeout: recordBudget,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    30 * time.Second,
		},
		Summary: fmt.Sprintf("record lost notification %s #%d", n.Notification.Type, n.Notification.Seq),
	})
	err := workflow.ExecuteLocalActivity(lctx, acts.RecordLostNotification, activities.LostNotification{
		Notification: n.Notification,
		LostAt:       workflow.Now(ctx),
		LastError:    appMessage(sendErr),
	}).Get(ctx, nil)
	if err != nil {
		p.logger.Error("lost notification not recorded in the store", "seq", n.Notification.Seq, "error", err)
	}
}
