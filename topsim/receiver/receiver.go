// Package receiver is the dev stack's stand-in for the business system's
// notification endpoint: it verifies each notification's Standard Webhooks
// signature with package webhook (exactly as a real receiver should), keeps
// the verified ones in arrival order and can be told to be "down" (answer
// 503) so tests and chaos can watch notifications wait and catch up. topsim
// serves it beside its gateway.
package receiver

import (
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/insuranceflow/insuranceflow/webhook"
)

// maxBody caps a notification body.
const maxBody = 64 << 10

// Receipt is one notification the receiver accepted.
type Receipt struct {
	Order      int64           `json:"order"` // arrival order, from 1
	WebhookID  string          `json:"webhook_id"`
	Type       string          `json:"type"`
	BizID      string          `json:"biz_id"`
	Seq        int64           `json:"seq"`
	RequestID  string          `json:"request_id"` // the event's
	Duplicate  bool            `json:"duplicate"`  // the webhook-id had been received before (a re-send)
	ReceivedAt time.Time       `json:"received_at"`
	Body       json.RawMessage `json:"body"`
}

// Stats counts what the receiver answered.
type Stats struct {
	Accepted   int64            `json:"accepted"`
	Duplicates int64            `json:"duplicates"`
	Refused    map[string]int64 `json:"refused"`    // by webhook.VerifyError reason, or "bad_body"
	WhileDown  int64            `json:"while_down"` // answered 503 while down
}

// Receiver verifies and records notifications. It is safe for concurrent use.
type Receiver struct {
	secret webhook.Secret
	now    func() time.Time

	mu       sync.Mutex
	down     bool
	receipts []Receipt
	seen     map[string]bool
	stats    Stats
}

// New returns a receiver that verifies with secret; now is its clock (nil:
// time.Now).
func New(secret webhook.Secret, now func() time.Time) *Receiver {
	if now == nil {
		now = time.Now
	}
	return &Receiver{secret: secret, now: now, seen: map[string]bool{}, stats: Stats{Refused: map[string]int64{}}}
}

// Handler serves:
//
//	POST   /notifications              a notification (204 verified, 401 refused, 503 while down)
//	GET    /_sim/notifications         receipts in arrival order, ?biz_id= filters; and stats
//	DELETE /_sim/notifications         forget every receipt
//	POST   /_sim/notifications/down    {"down":true|false}: answer 503 to every notification, or stop
func (r *Receiver) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /notifications", r.receive)
	mux.HandleFunc("GET /_sim/notifications", r.list)
	mux.HandleFunc("DELETE /_sim/notifications", r.reset)
	mux.HandleFunc("POST /_sim/notifications/down", r.setDown)
	return mux
}

// refusal is the body of a refused notification: why, so a sender's
// operator can fix it.
type refusal struct {
	Error  string `json:"error"`
	Reason string `json:"reason"`
}

func (r *Receiver) receive(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxBody))
	r.mu.Lock()
	down := r.down
	if down {
		r.stats.WhileDown++
	}
	r.mu.Unlock()
	if down {
		writeJSON(w, http.StatusServiceUnavailable, refusal{Error: "the receiver is down (POST /_sim/notifications/down)", Reason: "down"})
		return
	}
	if err != nil {
		r.refuse(w, "bad_body", "read body: "+err.Error())
		return
	}
	if err := r.secret.Verify(webhook.FromRequest(req.Header, body), r.now(), webhook.DefaultTolerance); err != nil {
		reason := "bad_signature"
		if ve, ok := err.(*webhook.VerifyError); ok {
			reason = ve.Reason
		}
		r.refuse(w, reason, err.Error())
		return
	}
	var head struct {
		Type      string `json:"type"`
		BizID     string `json:"biz_id"`
		Seq       int64  `json:"seq"`
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal(body, &head); err != nil || head.Type == "" || head.BizID == "" {
		r.refuse(w, "bad_body", "the body is not a notification with type and biz_id")
		return
	}
	id := req.Header.Get(webhook.HeaderID)
	r.mu.Lock()
	dup := r.seen[id]
	r.seen[id] = true
	r.stats.Accepted++
	if dup {
		r.stats.Duplicates++
	}
	r.receipts = append(r.receipts, Receipt{
		Order: int64(len(r.receipts) + 1), WebhookID: id, Type: head.Type, BizID: head.BizID, Seq: head.Seq, RequestID: head.RequestID,
		Duplicate: dup, ReceivedAt: r.now(), Body: json.RawMessage(body),
	})
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (r *Receiver) refuse(w http.ResponseWriter, reason, msg string) {
	r.mu.Lock()
	r.stats.Refused[reason]++
	r.mu.Unlock()
	writeJSON(w, http.StatusUnauthorized, refusal{Error: msg, Reason: reason})
}

// Receipts returns the accepted notifications for bizID ("" for all), in
// arrival order, re-sends included (marked Duplicate).
func (r *Receiver) Receipts(bizID string) []Receipt {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []Receipt{}
	for _, rc := range r.receipts {
		if bizID == "" || rc.BizID == bizID {
			out = append(out, rc)
		}
	}
	return out
}

// Stats returns the counts so far.
func (r *Receiver) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.stats
	st.Refused = make(map[string]int64, len(r.stats.Refused))
	for k, v := range r.stats.Refused {
		st.Refused[k] = v
	}
	return st
}

// SetDown makes the receiver answer 503 to every notification (true) or
// accept them again (false).
func (r *Receiver) SetDown(down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = down
}

// List is the GET /_sim/notifications answer.
type List struct {
	Notifications []Receipt `json:"notifications"`
	Stats         Stats     `json:"stats"`
	Down          bool      `json:"down"`
}

func (r *Receiver) list(w http.ResponseWriter, req *http.Request) {
	rs := r.Receipts(req.URL.Query().Get("biz_id"))
	r.mu.Lock()
	down := r.down
	r.mu.Unlock()
	writeJSON(w, http.StatusOK, List{Notifications: rs, Stats: r.Stats(), Down: down})
}

func (r *Receiver) reset(w http.ResponseWriter, _ *http.Request) {
	r.mu.Lock()
	n := len(r.receipts)
	r.receipts, r.seen = nil, map[string]bool{}
	r.stats = Stats{Refused: map[string]int64{}}
	r.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]int{"deleted": n})
}

func (r *Receiver) setDown(w http.ResponseWriter, req *http.Request) {
	var body struct {
		Down *bool `json:"down"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, req.Body, 1<<10)).Decode(&body); err != nil || body.Down == nil {
		writeJSON(w, http.StatusBadRequest, refusal{Error: `want {"down":true} or {"down":false}`, Reason: "bad_body"})
		return
	}
	r.SetDown(*body.Down)
	writeJSON(w, http.StatusOK, map[string]bool{"down": *body.Down})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
