package ingress

import (
	"encoding/base64"

	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// The API's response bodies. Enumerations are written as their names
// ("underwrite", "success", "home_property"), not the TOP API's numbers:
// these bodies are read by people and by systems that never see TOP.

type acceptanceView struct {
	BizID     string `json:"biz_id"`
	RequestID string `json:"request_id"`
	Seq       int64  `json:"seq"`
	Stage     string `json:"stage"`
	Status    string `json:"status"`
	State     string `json:"state"`
	Duplicate bool   `json:"duplicate"`
}

func acceptanceOf(a workflows.Acceptance) acceptanceView {
	return acceptanceView{
		BizID:     a.BizID,
		RequestID: a.RequestID,
		Seq:       a.Seq,
		Stage:     a.Stage.String(),
		Status:    a.Status.String(),
		State:     string(a.State),
		Duplicate: a.Duplicate,
	}
}

type listView struct {
	Policies      []policyclient.PolicySummary `json:"policies"`
	NextPageToken string                       `json:"next_page_token,omitempty"`
}

func listOf(page policyclient.ListPage) listView {
	v := listView{Policies: page.Policies}
	if v.Policies == nil {
		v.Policies = []policyclient.PolicySummary{}
	}
	if len(page.NextPageToken) > 0 {
		v.NextPageToken = encodePageToken(page.NextPageToken)
	}
	return v
}

// Temporal's page tokens are bytes; the API passes them as URL-safe text.
func encodePageToken(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func decodePageToken(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

type operatorView struct {
	BizID    string `json:"biz_id"`
	Seq      int64  `json:"seq"`
	Callback string `json:"callback"`
	Repeated bool   `json:"repeated"` // the action had already been applied: this is its original outcome
}

// policyView is GET /v1/policies/{biz_id}'s answer: the status view, with
// the policy's operator audit trail and its lost notifications beside its
// events.
type policyView struct {
	policyclient.StatusView
	OperatorActions   []policyclient.OperatorActionView   `json:"operator_actions"`
	LostNotifications []policyclient.LostNotificationView `json:"lost_notifications"`
}
