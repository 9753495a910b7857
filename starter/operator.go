package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/temporal"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/policyclient"
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

func (o operatorAction) do(ctx context.Context, ops policyOps, bizID string, req workflows.OperatorRequest) (workflows.OperatorResult, error) {
	if o == operatorSkip {
		return ops.Skip(ctx, bizID, req)
	}
	return ops.Retry(ctx, bizID, req)
}

type operatorView struct {
	Action   string `json:"action"`
	BizID    string `json:"biz_id"`
	Seq      int64  `json:"seq"`
	Callback string `json:"callback"`
	Repeated bool   `json:"repeated"`
}

// parkedHead reads the policy's status and returns its parked head: the
// callback an operator who gave no --seq acts on. The caller prints it
// before acting, so the operator sees what was retried or skipped.
func parkedHead(ctx context.Context, ops policyOps, bizID string) (workflows.EventStatus, error) {
	st, err := ops.Status(ctx, bizID)
	if err != nil {
		return workflows.EventStatus{}, err
	}
	for _, e := range st.Events {
		if e.Callback == workflows.EventParked {
			return e, nil
		}
	}
	return workflows.EventStatus{}, &policyclient.Rejection{
		Reason:  workflows.ReasonNoParkedCallback,
		Message: fmt.Sprintf("policy %s has no parked callback", bizID),
	}
}

// newIdempotencyKey is the key of an action the operator gave none for:
// random, so that no two invocations share one, and within the request id
// rules the workflow checks.
func newIdempotencyKey() string { return "cli-" + rand.Text() }

// outcomeUnknown reports whether a failed action may nevertheless have been
// applied: no answer came from the workflow (Temporal unreachable, the
// --timeout passed, an error of no known kind). An answer from the workflow,
// even "the store is down, try again", says the action was not applied.
func outcomeUnknown(err error) bool {
	var answer *temporal.ApplicationError
	if errors.As(err, &answer) {
		return false
	}
	code := exitCodeOf(err)
	return code == exitUnavailable || code == exitInternal
}

// osUser names the operator in the audit trail: the OS user running the CLI.
func osUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return os.Getenv("USER")
}

func newOperatorCmd(a *app, action operatorAction) *cobra.Command {
	var (
		reason string
		seq    int64
		key    string
	)
	cmd := &cobra.Command{
		Use:   action.name() + " <biz_id>",
		Short: action.short(),
		Long: action.short() + ".\n\nOnly a parked callback can be retried or skipped; " +
			"otherwise the policy rejects the action (no_parked_callback, exit code 3). " +
			"--seq names the parked callback to act on; without it the CLI reads the policy, prints its parked " +
			"callback and acts on that one. A seq that is not the parked one is refused (seq_mismatch, exit code 3); " +
			"repeating an action that was already applied answers its original outcome and changes nothing.\n\n" +
			"Every action carries an idempotency key (--idempotency-key, or one the CLI makes up). When the answer " +
			"is lost (Temporal unreachable or --timeout passed), the action may or may not have been applied; the " +
			"error names the key, and re-running the command with it applies the action at most once: if the first " +
			"was applied, the re-run answers that outcome even after the callback has parked again.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Checked before dialling: bad input is bad input even when
			// Temporal is down.
			if key == "" {
				key = newIdempotencyKey()
			} else if problem := insurance.CheckRequestID(key); problem != "" {
				return &usageError{Err: fmt.Errorf("--idempotency-key %s", problem)}
			}
			ops, err := a.policies(cmd.Context())
			if err != nil {
				return err
			}
			ctx, cancel := a.call(cmd.Context())
			defer cancel()
			bizID := args[0]
			if seq < 0 {
				return &usageError{Err: fmt.Errorf("--seq must be 1 or more, got %d", seq)}
			}
			if seq == 0 {
				head, err := parkedHead(ctx, ops, bizID)
				if err != nil {
					return fmt.Errorf("%s callback of %s: %w", action.name(), bizID, err)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "parked callback #%d %s/%s, %d attempts, last error: %s\n",
					head.Seq, head.Stage, head.Status, head.Attempts, head.LastError)
				seq = head.Seq
			}
			res, err := action.do(ctx, ops, bizID, workflows.OperatorRequest{Seq: seq, Reason: reason, By: osUser(), RequestID: key})
			if err != nil && outcomeUnknown(err) {
				return fmt.Errorf("%s callback of %s: %w (the %s may have been applied: re-run with --seq %d --idempotency-key %s to apply it at most once)",
					action.name(), bizID, err, action.name(), seq, key)
			}
			if err != nil {
				return fmt.Errorf("%s callback of %s: %w", action.name(), bizID, err)
			}
			v := operatorView{Action: action.name(), BizID: bizID, Seq: res.Seq, Callback: string(res.Callback), Repeated: res.Repeated}
			return a.emit(v, func(w io.Writer) error {
				note := ""
				if v.Repeated {
					note = " (already done before; nothing changed)"
				}
				_, err := fmt.Fprintf(w, "%s  biz_id=%s seq=%d callback=%s%s\n", v.Action, v.BizID, v.Seq, v.Callback, note)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit trail")
	cmd.Flags().StringVar(&key, "idempotency-key", "", "the action's idempotency key, to re-send an action whose answer was lost (default: a new random key, named in such an error)")
	cmd.Flags().Int64Var(&seq, "seq", 0, "the seq of the parked callback to act on (default: the parked callback, read and printed first)")
	return cmd
}
