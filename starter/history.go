package main

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/store"
)

// historyView is the history command's output: the store's audit trail of
// one policy. Built field by field, never from the stored event payload,
// because that payload holds the account manager's name.
type historyView struct {
	BizID         string             `json:"biz_id"`
	State         string             `json:"state"`
	Endorsements  int                `json:"endorsements"`
	InsuranceType string             `json:"insurance_type,omitempty"`
	PolicyNumber  string             `json:"policy_number,omitempty"`
	LastSeq       int64              `json:"last_seq"`
	CallbackState string             `json:"callback_state,omitempty"`
	CreatedAt     time.Time          `json:"created_at"`
	UpdatedAt     time.Time          `json:"updated_at"`
	Events        []historyEventView `json:"events"`
	// OperatorActions is who retried or skipped which callback, when and
	// why, oldest first.
	OperatorActions []policyclient.OperatorActionView `json:"operator_actions"`
}

type historyEventView struct {
	Seq               int64         `json:"seq"`
	RequestID         string        `json:"request_id"`
	Stage             string        `json:"stage"`
	Status            string        `json:"status"`
	TimeOfOccurrence  string        `json:"time_of_occurrence"`
	AcceptedAt        time.Time     `json:"accepted_at"`
	StateAfter        string        `json:"state_after"`
	EndorsementsAfter int           `json:"endorsements_after"`
	Callback          string        `json:"callback"`
	LastClass         string        `json:"last_class,omitempty"`
	LastError         string        `json:"last_error,omitempty"`
	DeliveredAt       *time.Time    `json:"delivered_at,omitempty"`
	Attempts          []attemptView `json:"attempts"`
}

// attemptView leaves out the attempt's Detail: it is free text from the
// transport and may quote the request, which holds personal data.
type attemptView struct {
	Attempt      int           `json:"attempt"`
	StartedAt    time.Time     `json:"started_at"`
	Duration     time.Duration `json:"-"`
	DurationMS   float64       `json:"duration_ms"`
	Class        string        `json:"class"`
	HTTPStatus   int           `json:"http_status,omitempty"`
	Code         int           `json:"code,omitempty"`
	SubCode      string        `json:"sub_code,omitempty"`
	Msg          string        `json:"msg,omitempty"`
	SubMsg       string        `json:"sub_msg,omitempty"`
	FailCode     string        `json:"fail_code,omitempty"`
	FailMessage  string        `json:"fail_message,omitempty"`
	TOPRequestID string        `json:"top_request_id,omitempty"`
}

func newHistoryView(p store.Policy, events []store.Event, attempts []store.Attempt, actions []store.OperatorAction) historyView {
	v := historyView{
		OperatorActions: policyclient.NewOperatorActionViews(actions),
		BizID:           p.BizID,
		State:           p.State,
		Endorsements:    p.Endorsements,
		InsuranceType:   typeName(insurance.Type(p.InsuranceType)),
		PolicyNumber:    p.PolicyNumber,
		LastSeq:         p.LastSeq,
		CallbackState:   p.CallbackState,
		CreatedAt:       p.CreatedAt,
		UpdatedAt:       p.UpdatedAt,
		Events:          make([]historyEventView, 0, len(events)),
	}
	bySeq := make(map[int64][]attemptView, len(events))
	for _, at := range attempts {
		bySeq[at.Seq] = append(bySeq[at.Seq], attemptView{
			Attempt:      at.Attempt,
			StartedAt:    at.StartedAt,
			Duration:     at.Duration,
			DurationMS:   float64(at.Duration.Microseconds()) / 1000,
			Class:        at.Class,
			HTTPStatus:   at.HTTPStatus,
			Code:         at.Code,
			SubCode:      at.SubCode,
			Msg:          at.Msg,
			SubMsg:       at.SubMsg,
			FailCode:     at.FailCode,
			FailMessage:  at.FailMessage,
			TOPRequestID: at.TOPRequestID,
		})
	}
	for _, e := range events {
		ats := bySeq[e.Seq]
		if ats == nil {
			ats = []attemptView{}
		}
		v.Events = append(v.Events, historyEventView{
			Seq:               e.Seq,
			RequestID:         e.RequestID,
			Stage:             insurance.Stage(e.Stage).String(),
			Status:            insurance.Status(e.Status).String(),
			TimeOfOccurrence:  e.TimeOfOccurrence,
			AcceptedAt:        e.AcceptedAt,
			StateAfter:        e.StateAfter,
			EndorsementsAfter: e.EndorsementsAfter,
			Callback:          e.Callback,
			LastClass:         e.LastClass,
			LastError:         e.LastError,
			DeliveredAt:       e.DeliveredAt,
			Attempts:          ats,
		})
	}
	return v
}

func (v historyView) write(w io.Writer) error {
	head := newTable(w)
	head.row("biz_id", v.BizID)
	head.row("state", v.State)
	head.row("endorsements", strconv.Itoa(v.Endorsements))
	head.row("insurance_type", v.InsuranceType)
	head.row("policy_number", v.PolicyNumber)
	head.row("callback", v.CallbackState)
	head.row("last_seq", strconv.FormatInt(v.LastSeq, 10))
	head.row("updated", apiTime(v.UpdatedAt))
	if err := head.flush(); err != nil {
		return err
	}
	if len(v.Events) == 0 {
		if _, err := fmt.Fprintln(w, "\nno events recorded"); err != nil {
			return err
		}
		return v.writeOperatorActions(w)
	}

	fmt.Fprintln(w, "\nEvents")
	t := newTable(w, "SEQ", "STAGE", "STATUS", "OCCURRED", "ACCEPTED", "STATE AFTER", "CALLBACK", "ATTEMPTS", "DELIVERED", "REQUEST ID")
	for _, e := range v.Events {
		t.row(strconv.FormatInt(e.Seq, 10), e.Stage, e.Status, e.TimeOfOccurrence, apiTime(e.AcceptedAt),
			e.StateAfter, e.Callback, strconv.Itoa(len(e.Attempts)), apiTimePtr(e.DeliveredAt), e.RequestID)
	}
	if err := t.flush(); err != nil {
		return err
	}

	fmt.Fprintln(w, "\nAttempts")
	t = newTable(w, "SEQ", "ATTEMPT", "STARTED", "DURATION", "CLASS", "HTTP", "CODE/SUB_CODE", "FAIL CODE", "TOP REQUEST ID")
	n := 0
	for _, e := range v.Events {
		for _, at := range e.Attempts {
			n++
			started, duration := apiTime(at.StartedAt), formatDuration(at.Duration)
			switch at.Class {
			case store.ClassStarted:
				duration = "" // still in flight, or its worker died during it
			case store.ClassLost:
				started, duration = "", "" // its start is unknown: the stored time is when a later attempt found it lost
			}
			t.row(strconv.FormatInt(e.Seq, 10), strconv.Itoa(at.Attempt), started,
				duration, at.Class, formatInt(at.HTTPStatus), codes(at.Code, at.SubCode),
				at.FailCode, at.TOPRequestID)
		}
	}
	if n == 0 {
		if _, err := fmt.Fprintln(w, "none yet"); err != nil {
			return err
		}
	} else if err := t.flush(); err != nil {
		return err
	}
	return v.writeOperatorActions(w)
}

// writeOperatorActions is the history's last section: who retried or
// skipped which callback, when and why.
func (v historyView) writeOperatorActions(w io.Writer) error {
	fmt.Fprintln(w, "\nOperator actions")
	if len(v.OperatorActions) == 0 {
		_, err := fmt.Fprintln(w, "none")
		return err
	}
	t := newTable(w, "SEQ", "ACTION", "BY", "AT", "REASON")
	for _, a := range v.OperatorActions {
		by := a.By
		if by == "" {
			by = "(unknown)"
		}
		t.row(strconv.FormatInt(a.Seq, 10), a.Action, by, apiTime(a.At), a.Reason)
	}
	return t.flush()
}

func formatDuration(d time.Duration) string {
	if d >= time.Millisecond {
		d = d.Round(time.Millisecond)
	}
	return d.String()
}

func formatInt(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// codes renders TOP's error code and sub code as "15/isv.invalid-parameter".
func codes(code int, sub string) string {
	switch {
	case code == 0 && sub == "":
		return ""
	case sub == "":
		return strconv.Itoa(code)
	default:
		return strconv.Itoa(code) + "/" + sub
	}
}

func newHistoryCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "history <biz_id>",
		Short: "Show a policy's recorded events and every callback attempt, from the database",
		Long: "Show the audit trail the database holds for a policy: each accepted event,\n" +
			"every attempt to deliver its callback to TOP, and every operator action (who\n" +
			"retried or skipped which callback, when and why). Needs only the database, not Temporal.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := a.history(cmd.Context())
			if err != nil {
				return err
			}
			bizID := args[0]
			ctx, cancel := a.call(cmd.Context())
			defer cancel()
			p, err := h.Policy(ctx, bizID)
			if err != nil {
				return fmt.Errorf("history of %s: %w", bizID, err)
			}
			events, err := h.Events(ctx, bizID)
			if err != nil {
				return fmt.Errorf("history of %s: %w", bizID, err)
			}
			attempts, err := h.Attempts(ctx, bizID)
			if err != nil {
				return fmt.Errorf("history of %s: %w", bizID, err)
			}
			actions, err := h.OperatorActions(ctx, bizID)
			if err != nil {
				return fmt.Errorf("history of %s: %w", bizID, err)
			}
			v := newHistoryView(p, events, attempts, actions)
			return a.emit(v, v.write)
		},
	}
}
