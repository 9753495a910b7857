package ingress

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// Error codes that are not workflow rejection reasons (those are used as
// codes under their own names: illegal_transition, policy_number_mismatch...).
const (
	codeInvalidRequest       = workflows.ReasonInvalidRequest
	codeUnauthorized         = "unauthorized"
	codeForbidden            = "forbidden"
	codeNotFound             = "not_found"
	codePayloadTooLarge      = "payload_too_large"
	codeUnsupportedMediaType = "unsupported_media_type"
	codeUnavailable          = "unavailable"
	codeInternal             = "internal"
)

// apiError is the one error body of the API, inside {"error": ...}. Only
// the fields that belong to its code are set.
type apiError struct {
	status int

	Code    string                 `json:"code"`
	Message string                 `json:"message"`
	Fields  []insurance.FieldError `json:"fields,omitempty"`
	// illegal_transition: the policy's state, the refused stage and what
	// the business system may send instead (an empty list when nothing).
	State         string   `json:"state,omitempty"`
	Stage         string   `json:"stage,omitempty"`
	AllowedStages []string `json:"allowed_stages,omitzero"`
	// seq_mismatch: the parked head's seq now (0 when nothing is pending),
	// so an operator can look at it before acting again.
	HeadSeq *int64 `json:"head_seq,omitempty"`
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfter)
	}
	writeJSON(w, e.status, struct {
		Error *apiError `json:"error"`
	}{e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Every value written is a plain struct of strings and numbers.
		http.Error(w, `{"error":{"code":"internal","message":"internal error"}}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// fail answers a request with the API error that err stands for. Only
// failures the caller cannot fix are logged, with the error, and they are
// answered with a generic message: their text may name internals.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	e := s.apiErrorFor(err)
	callerLeft := errors.Is(err, context.Canceled) && r.Context().Err() != nil
	if (e.status == http.StatusInternalServerError || e.status == http.StatusServiceUnavailable) && !callerLeft {
		s.logger.LogAttrs(r.Context(), slog.LevelError, "request failed",
			slog.String("method", r.Method), slog.String("route", r.Pattern), slog.Int("status", e.status),
			slog.String("error", err.Error()))
	}
	writeError(w, e)
}

func (s *Server) apiErrorFor(err error) *apiError {
	var (
		invalid   *insurance.ValidationError
		argument  *policyclient.ArgumentError
		rejection *policyclient.Rejection
	)
	switch {
	case errors.As(err, &invalid):
		return &apiError{status: http.StatusBadRequest, Code: codeInvalidRequest,
			Message: "the insurance result is invalid", Fields: invalid.Problems}
	case errors.As(err, &argument):
		return &apiError{status: http.StatusBadRequest, Code: codeInvalidRequest, Message: argument.Error(),
			Fields: []insurance.FieldError{{Field: argument.Field, Message: argument.Message}}}
	case errors.As(err, &rejection):
		return rejectionError(rejection)
	case errors.Is(err, policyclient.ErrNotFound):
		return &apiError{status: http.StatusNotFound, Code: codeNotFound, Message: "no such policy"}
	case errors.Is(err, policyclient.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return &apiError{status: http.StatusServiceUnavailable, Code: codeUnavailable,
			Message: "the workflow service is unavailable; try again later"}
	case errors.Is(err, context.Canceled):
		// The caller went away; nobody reads this answer, but the access
		// log shows the request did not complete.
		return &apiError{status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: "request cancelled"}
	default:
		return &apiError{status: http.StatusInternalServerError, Code: codeInternal, Message: "internal error"}
	}
}

// rejectionError maps a workflow's refusal: an invalid event is the
// caller's mistake (400), everything else conflicts with the policy's
// recorded state (409) and keeps the reason as its code.
func rejectionError(rej *policyclient.Rejection) *apiError {
	if rej.Reason == workflows.ReasonInvalidRequest {
		return &apiError{status: http.StatusBadRequest, Code: codeInvalidRequest, Message: rej.Message}
	}
	e := &apiError{status: http.StatusConflict, Code: rej.Reason, Message: rej.Message}
	if rej.SeqMismatch != nil {
		head := rej.SeqMismatch.HeadSeq
		e.HeadSeq = &head
	}
	if rej.Reason == workflows.ReasonIllegalTransition && rej.Details != nil {
		e.State = string(rej.Details.State)
		e.Stage = rej.Details.Stage
		e.AllowedStages = rej.Details.AllowedStages
		if e.AllowedStages == nil {
			e.AllowedStages = []string{}
		}
	}
	return e
}
