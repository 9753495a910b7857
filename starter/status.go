package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/store"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// statusView is the status command's output: the policy as its workflow
// sees it, rendered as the ingress renders it.
type statusView struct {
	policyclient.StatusView
	// LostNotifications are the policy's notifications the business
	// system never acknowledged, from the store; absent when the store
	// could not be read.
	LostNotifications []policyclient.LostNotificationView `json:"lost_notifications,omitempty"`
}

func newStatusView(s workflows.Status) statusView {
	return statusView{StatusView: policyclient.NewStatusView(s)}
}

func (v statusView) write(w io.Writer) error {
	head := newTable(w)
	head.row("biz_id", v.BizID)
	head.row("state", v.State)
	head.row("endorsements", strconv.Itoa(v.Endorsements))
	head.row("insurance_type", v.InsuranceType)
	head.row("policy_number", v.PolicyNumber)
	head.row("callback", human(v.CallbackState))
	head.row("last_seq", strconv.FormatInt(v.LastSeq, 10))
	if err := head.flush(); err != nil {
		return err
	}
	if len(v.Events) == 0 {
		_, err := fmt.Fprintln(w, "\nno events")
		return err
	}
	fmt.Fprintln(w)
	t := newTable(w, "SEQ", "STAGE", "STATUS", "OCCURRED", "CALLBACK", "ATTEMPTS", "LAST ERROR", "DELIVERED")
	for _, e := range v.Events {
		lastErr := e.LastError
		if e.LastClass != "" && lastErr != "" {
			lastErr = e.LastClass + ": " + lastErr
		}
		t.row(strconv.FormatInt(e.Seq, 10), e.Stage, e.Status, e.TimeOfOccurrence, human(e.Callback),
			strconv.Itoa(e.Attempts), lastErr, apiTimePtr(e.DeliveredAt))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(v.LostNotifications) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nlost notifications (retry budget ran out; the business system never acknowledged them):")
	lt := newTable(w, "SEQ", "TYPE", "WEBHOOK ID", "OCCURRED", "LOST", "LAST ERROR")
	for _, n := range v.LostNotifications {
		lt.row(strconv.FormatInt(n.Seq, 10), n.Type, n.WebhookID, apiTime(n.OccurredAt), apiTime(n.LostAt), n.LastError)
	}
	return lt.flush()
}

// lostNotifications reads the policy's lost notifications from the store.
// status works from Temporal alone, so a store it cannot read leaves them
// out with a note on stderr rather than failing the command.
func (a *app) lostNotifications(ctx context.Context, bizID string) []policyclient.LostNotificationView {
	h, err := a.history(ctx)
	if err == nil && h != nil {
		var lost []store.LostNotification
		ctx, cancel := a.call(ctx)
		defer cancel()
		if lost, err = h.LostNotifications(ctx, bizID); err == nil {
			return policyclient.NewLostNotificationViews(lost)
		}
	}
	if err != nil {
		fmt.Fprintf(a.stderr, "note: lost notifications not read from the store: %v\n", err)
	}
	return nil
}

// human spells a callback state for the table; the JSON keeps the name.
// Waiting on TOP's rate limit is throttling, not failure, and reads so.
func human(callback string) string {
	if callback == string(policyclient.CallbackWaitingRateLimit) {
		return "waiting on TOP rate limit"
	}
	return callback
}

func newStatusCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "status <biz_id>",
		Short: "Show a policy and its events, as its workflow knows them",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ops, err := a.policies(cmd.Context())
			if err != nil {
				return err
			}
			ctx, cancel := a.call(cmd.Context())
			defer cancel()
			s, err := ops.Status(ctx, args[0])
			if err != nil {
				return fmt.Errorf("status of %s: %w", args[0], err)
			}
			v := newStatusView(s)
			v.LostNotifications = a.lostNotifications(cmd.Context(), args[0])
			return a.emit(v, v.write)
		},
	}
}
