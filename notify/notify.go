// Package notify owns the notifications insuranceflow sends to the business
// system about its callbacks: their types, their JSON body, their stable
// webhook ids, and the Sender that POSTs them signed the Standard Webhooks
// way (package webhook). The policy workflow builds each Notification from
// its own state and workflow time, so a notification is deterministic and
// the same on every retry; the Sender only adds webhook-timestamp and the
// signature at send time.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/insuranceflow/insuranceflow/webhook"
)

// Type is a notification's type, the body's "type".
type Type string

// The notification types: one per callback outcome the business system
// needs to hear about. Callback states not listed (queued, sending, or an
// imported event TOP never sees) produce no notification.
const (
	TypeDelivered Type = "callback.delivered" // TOP accepted the result (call_success=true)
	TypeParked    Type = "callback.parked"    // refused, permanently failing or out of retry budget: needs someone
	TypeRetrying  Type = "callback.retrying"  // the first attempt failed retryably; Temporal retries it
	TypeSkipped   Type = "callback.skipped"   // an operator gave up on it
	TypeRetried   Type = "callback.retried"   // an operator re-armed a parked callback
)

// Types lists every Type, in a fixed order.
func Types() []Type {
	return []Type{TypeDelivered, TypeParked, TypeRetrying, TypeSkipped, TypeRetried}
}

// Notification is the body of one notification. It carries identifiers,
// the event's stage and status and TOP's answer, never the event's payload:
// the account manager's name stays out of it.
type Notification struct {
	// ID is the webhook-id: stable per notification (see ID), so a receiver
	// dedupes a notification that was retried or re-sent after a restart.
	ID        string `json:"id"`
	Type      Type   `json:"type"`
	BizID     string `json:"biz_id"`
	Seq       int64  `json:"seq"`
	RequestID string `json:"request_id"` // the event's request id
	Stage     string `json:"stage"`      // name: pre_insure, underwrite, …
	Status    string `json:"status"`     // name: success, failure
	// Callback is the callback's state after this outcome: delivered,
	// parked, retrying, skipped, or queued (after an operator's retry).
	Callback string `json:"callback"`
	Attempts int    `json:"attempts"`

	// TOP's answer (what is known of it).
	TOPRequestID string `json:"top_request_id,omitempty"`
	FailCode     string `json:"fail_code,omitempty"`    // call_success=false: TOP's fail_code
	FailMessage  string `json:"fail_message,omitempty"` // and fail_message
	ErrorCode    int    `json:"error_code,omitempty"`   // an error_response's code
	SubCode      string `json:"sub_code,omitempty"`     // and sub_code
	// ErrorClass is how the failure was classified (rejected, permanent,
	// retryable, rate_limited, timeout…); Error its one-line summary.
	ErrorClass string `json:"error_class,omitempty"`
	Error      string `json:"error,omitempty"`

	// By and Reason: for an operator's retry or skip, who acted (the
	// caller's or OS user's name) and why.
	By     string `json:"by,omitempty"`
	Reason string `json:"reason,omitempty"`

	// OccurredAt is when the outcome happened, in workflow time.
	OccurredAt time.Time `json:"occurred_at"`
}

// ID is the webhook-id of the notification of type t about callback seq of
// bizID after attempts attempts: "ntf_<biz_id>_<seq>_<type>_<attempts>". The
// attempt count tells apart the same type repeated for one callback (parked,
// retried by an operator, parked again), and is the same on every re-send
// of one notification.
func ID(bizID string, seq int64, t Type, attempts int) string {
	return "ntf_" + bizID + "_" + strconv.FormatInt(seq, 10) + "_" + string(t) + "_" + strconv.Itoa(attempts)
}

// Body is the JSON body sent for n.
func (n Notification) Body() ([]byte, error) { return json.Marshal(n) }

// Sender POSTs notifications to the business system's URL.
type Sender struct {
	URL    string
	Secret webhook.Secret
	Client *http.Client     // nil: a client with a 30 s timeout
	Now    func() time.Time // nil: time.Now
}

// StatusError is a receiver's answer other than 2xx.
type StatusError struct{ Status int }

func (e *StatusError) Error() string {
	return "notification receiver answered HTTP " + strconv.Itoa(e.Status) + " " + http.StatusText(e.Status)
}

// defaultTimeout bounds one POST when the Sender has no Client of its own.
const defaultTimeout = 30 * time.Second

// Send POSTs n once, signed with the current time. Any 2xx is success; any
// other answer is a *StatusError and a transport failure is returned as
// is: the caller (an activity) retries both, since a receiver that is down
// or misconfigured may recover within the retry budget. Errors never hold
// the secret or the URL's credentials.
func (s *Sender) Send(ctx context.Context, n Notification) error {
	body, err := n.Body()
	if err != nil {
		return fmt.Errorf("encode notification %s: %w", n.ID, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("notification request: %w", redactURL(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "insuranceflow-notify")
	s.Secret.SetHeaders(req.Header, n.ID, s.now(), body)
	resp, err := s.client().Do(req)
	if err != nil {
		return fmt.Errorf("post notification %s: %w", n.ID, redactURL(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &StatusError{Status: resp.StatusCode}
	}
	return nil
}

func (s *Sender) client() *http.Client {
	if s.Client != nil {
		return s.Client
	}
	return &http.Client{Timeout: defaultTimeout}
}

func (s *Sender) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}
