package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// reportFunc posts one event body to the ingress and returns the answer as
// it came; an error means no answer (refused, reset, timed out).
type reportFunc func(ctx context.Context, body []byte) (reply, error)

// reply is an HTTP answer: status, body and the Retry-After it asked for.
type reply struct {
	Status     int
	Body       []byte
	RetryAfter time.Duration
}

// answer is the ingress's answer to an event, both shapes in one.
type answer struct {
	BizID     string `json:"biz_id"`
	RequestID string `json:"request_id"`
	Seq       int64  `json:"seq"`
	Stage     string `json:"stage"`
	Status    string `json:"status"`
	State     string `json:"state"`
	Duplicate bool   `json:"duplicate"`
	Error     *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// outcome is what sending one step came to.
type outcome struct {
	HTTPStatus int
	Answer     answer
	Tries      int
	// Failures counts the tries that got no usable answer, by cause:
	// "connection" or an HTTP status such as "503".
	Failures map[string]int
	// LostAnswer: an earlier try failed and a retry was answered
	// "duplicate" for an event sent once on purpose — the ingress had
	// accepted it but its answer never arrived.
	LostAnswer bool
	// Unresolved: no answer before the give-up deadline. The event may or
	// may not have been accepted; the run fails.
	Unresolved bool
	LastError  string
	Answered   time.Time
}

// sender re-sends one event until the ingress answers it, as a business
// system that must not lose an event would: the same body each time (so
// the same derived request id), backing off between tries and honouring
// Retry-After.
type sender struct {
	report   reportFunc
	giveUp   time.Duration // per event
	minWait  time.Duration
	maxWait  time.Duration
	maxAfter time.Duration // cap on a Retry-After wait
	sleep    func(ctx context.Context, d time.Duration) error
	now      func() time.Time
}

func newSender(report reportFunc, giveUp time.Duration) *sender {
	return &sender{
		report: report, giveUp: giveUp,
		minWait: 100 * time.Millisecond, maxWait: 2 * time.Second, maxAfter: 10 * time.Second,
		sleep: sleepCtx, now: time.Now,
	}
}

// retryable says whether an HTTP status means "no decision was made, ask
// again": the ingress's 503 (Temporal unreachable or the update timed
// out), and 500/502/504 from anything in between.
func retryable(status int) bool {
	switch status {
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// send delivers body until it gets a decision (2xx or 4xx) or giveUp
// passes. resend says the business system sends this event a second time
// on purpose, so a duplicate answer is expected rather than a sign of a
// lost answer.
func (s *sender) send(ctx context.Context, body []byte, resend bool) outcome {
	out := outcome{Failures: map[string]int{}}
	deadline := s.now().Add(s.giveUp)
	wait := s.minWait
	for {
		out.Tries++
		rep, err := s.report(ctx, body)
		var retryAfter time.Duration
		switch {
		case err != nil:
			out.Failures["connection"]++
			out.LastError = err.Error()
		case retryable(rep.Status):
			out.Failures[strconv.Itoa(rep.Status)]++
			out.LastError = fmt.Sprintf("HTTP %d: %.200s", rep.Status, rep.Body)
			retryAfter = rep.RetryAfter
		default:
			out.HTTPStatus = rep.Status
			out.Answered = s.now()
			if jerr := json.Unmarshal(rep.Body, &out.Answer); jerr != nil {
				out.LastError = fmt.Sprintf("HTTP %d with an unreadable body: %v", rep.Status, jerr)
			}
			out.LostAnswer = out.Tries > 1 && !resend && out.Answer.Duplicate
			return out
		}
		if ctx.Err() != nil || s.now().After(deadline) {
			out.Unresolved = true
			return out
		}
		d := wait + rand.N(wait/2+1)
		if retryAfter > 0 {
			d = min(retryAfter, s.maxAfter)
		}
		if err := s.sleep(ctx, d); err != nil {
			out.Unresolved = true
			return out
		}
		wait = min(wait*2, s.maxWait)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
