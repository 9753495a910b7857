package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/insuranceflow/insuranceflow/workflows"
)

// operatorAction is one of the two things an operator can do to a parked
// callback.
type operatorAction int

const (
	operatorRetry operatorAction = iota + 1
	operatorSkip
)

func (o operatorAction) name() string {
	if o == operatorSkip {
		return "skip"
	}
	return "retry"
}

func (o operatorAction) short() string {
	if o == operatorSkip {
		return "Give up on a policy's parked callback so the events behind it are sent"
	}
	return "Re-send a policy's parked callback with a fresh retry budget"
}

func (o operatorAction) do(ctx context.Context, ops policyOps, bizID, reason string) (workflows.OperatorResult, error) {
	if o == operatorSkip {
		return ops.Skip(ctx, bizID, reason)
	}
	return ops.Retry(ctx, bizID, reason)
}

type operatorView struct {
	Action   string `json:"action"`
	BizID    string `json:"biz_id"`
	Seq      int64  `json:"seq"`
	Callback string `json:"callback"`
}

func newOperatorCmd(a *app, action operatorAction) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   action.name() + " <biz_id>",
		Short: action.short(),
		Long: action.short() + ".\n\nOnly a parked callback can be retried or skipped; " +
			"otherwise the policy rejects the action (no_parked_callback, exit code 3).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ops, err := a.policies(cmd.Context())
			if err != nil {
				return err
			}
			ctx, cancel := a.call(cmd.Context())
			defer cancel()
			res, err := action.do(ctx, ops, args[0], reason)
			if err != nil {
				return fmt.Errorf("%s callback of %s: %w", action.name(), args[0], err)
			}
			v := operatorView{Action: action.name(), BizID: args[0], Seq: res.Seq, Callback: string(res.Callback)}
			return a.emit(v, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "%s  biz_id=%s seq=%d callback=%s\n", v.Action, v.BizID, v.Seq, v.Callback)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the workflow's history")
	return cmd
}
