package policyclient

import (
	"time"

	"github.com/insuranceflow/insuranceflow/store"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// StatusView is a policy's status as people and business systems read it
// (the ingress's GET /v1/policies/{biz_id} and `starter status --json`):
// enumerations as names, not the TOP API's numbers, and no event payloads,
// so no personal data.
type StatusView struct {
	BizID         string      `json:"biz_id"`
	State         string      `json:"state"`
	Endorsements  int         `json:"endorsements"`
	InsuranceType string      `json:"insurance_type,omitempty"`
	PolicyNumber  string      `json:"policy_number,omitempty"`
	LastSeq       int64       `json:"last_seq"`
	CallbackState string      `json:"callback_state"`
	Events        []EventView `json:"events"`
}

// EventView is one event of a StatusView with its callback's progress.
type EventView struct {
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

// NewStatusView renders a workflow's Status for output.
func NewStatusView(s workflows.Status) StatusView {
	v := StatusView{
		BizID:         s.BizID,
		State:         string(s.State),
		Endorsements:  s.Endorsements,
		PolicyNumber:  s.PolicyNumber,
		LastSeq:       s.LastSeq,
		CallbackState: string(s.CallbackState),
		Events:        make([]EventView, 0, len(s.Events)),
	}
	if s.InsuranceType.Valid() {
		v.InsuranceType = s.InsuranceType.String()
	}
	for _, e := range s.Events {
		v.Events = append(v.Events, EventView{
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

// OperatorActionView is one entry of a policy's operator audit trail: who
// retried or skipped which callback, when and why. By is the ingress
// caller's name or the CLI's OS user, never a token.
type OperatorActionView struct {
	Seq    int64     `json:"seq"`
	Action string    `json:"action"`
	By     string    `json:"by"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// NewOperatorActionViews renders the store's audit trail for output; it is
// never nil, so JSON shows an empty trail as [].
func NewOperatorActionViews(actions []store.OperatorAction) []OperatorActionView {
	out := make([]OperatorActionView, 0, len(actions))
	for _, a := range actions {
		out = append(out, OperatorActionView{Seq: a.Seq, Action: a.Action, By: a.By, Reason: a.Reason, At: a.At})
	}
	return out
}

// LostNotificationView is a notification the business system never
// acknowledged within its retry budget: which one (its webhook-id, type
// and callback seq), when its outcome happened, when it was given up, and
// the last error.
type LostNotificationView struct {
	WebhookID  string    `json:"webhook_id"`
	Seq        int64     `json:"seq"`
	Type       string    `json:"type"`
	OccurredAt time.Time `json:"occurred_at"`
	LostAt     time.Time `json:"lost_at"`
	LastError  string    `json:"last_error,omitempty"`
}

// NewLostNotificationViews renders the store's lost notifications for
// output; never nil, so JSON shows none as [].
func NewLostNotificationViews(lost []store.LostNotification) []LostNotificationView {
	out := make([]LostNotificationView, 0, len(lost))
	for _, n := range lost {
		out = append(out, LostNotificationView{WebhookID: n.WebhookID, Seq: n.Seq, Type: n.Type,
			OccurredAt: n.OccurredAt, LostAt: n.LostAt, LastError: n.LastError})
	}
	return out
}
