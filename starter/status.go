package main

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/insuranceflow/insuranceflow/workflows"
)

// statusView is the status command's output: the policy as its workflow
// sees it. It carries no event payloads, so no personal data.
type statusView struct {
	BizID         string      `json:"biz_id"`
	State         string      `json:"state"`
	Endorsements  int         `json:"endorsements"`
	InsuranceType string      `json:"insurance_type,omitempty"`
	PolicyNumber  string      `json:"policy_number,omitempty"`
	LastSeq       int64       `json:"last_seq"`
	CallbackState string      `json:"callback_state"`
	Events        []eventView `json:"events"`
}

type eventView struct {
	Seq              int64      `json:"seq"`
	RequestID        string     `json:"request_id"`
	Stage            string     `json:"stage"`
	Status           string     `json:"status"`
	TimeOfOccurrence string     `json:"time_of_occurrence"`
	AcceptedAt       time.Time  `json:"accepted_at"`
	Callback         string     `json:"callback"`
	Attempts         int        `json:"attempts"`
	LastClass        string     `json:"last_class,omitempty"`
	LastError        string     `json:"last_error,omitempty"`
	DeliveredAt      *time.Time `json:"delivered_at,omitempty"`
}

func newStatusView(s workflows.Status) statusView {
	v := statusView{
		BizID:         s.BizID,
		State:         string(s.State),
		Endorsements:  s.Endorsements,
		InsuranceType: typeName(s.InsuranceType),
		PolicyNumber:  s.PolicyNumber,
		LastSeq:       s.LastSeq,
		CallbackState: string(s.CallbackState),
		Events:        make([]eventView, 0, len(s.Events)),
	}
	for _, e := range s.Events {
		v.Events = append(v.Events, eventView{
			Seq:              e.Seq,
			RequestID:        e.RequestID,
			Stage:            e.Stage.String(),
			Status:           e.Status.String(),
			TimeOfOccurrence: e.TimeOfOccurrence,
			AcceptedAt:       e.AcceptedAt,
			Callback:         string(e.Callback),
			Attempts:         e.Attempts,
			LastClass:        e.LastClass,
			LastError:        e.LastError,
			DeliveredAt:      e.DeliveredAt,
		})
	}
	return v
}

func (v statusView) write(w io.Writer) error {
	head := newTable(w)
	head.row("biz_id", v.BizID)
	head.row("state", v.State)
	head.row("endorsements", strconv.Itoa(v.Endorsements))
	head.row("insurance_type", v.InsuranceType)
	head.row("policy_number", v.PolicyNumber)
	head.row("callback", v.CallbackState)
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
		t.row(strconv.FormatInt(e.Seq, 10), e.Stage, e.Status, e.TimeOfOccurrence, e.Callback,
			strconv.Itoa(e.Attempts), lastErr, apiTimePtr(e.DeliveredAt))
	}
	return t.flush()
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
			return a.emit(v, v.write)
		},
	}
}
