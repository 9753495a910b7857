package ingress

import (
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
// failures the caller cannot fix are logged, with the error, and those of
// them that are not the contract's own are answered with a generic
// message: their text may name internals.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	c := policyclient.Classify(err)
	e := apiErrorFor(err, c)
	callerLeft := c.Kind == policyclient.KindCanceled && r.Context().Err() != nil
	// While the gate holds calls back, the gate logged the outage once;
	// a line per refused request would bury everything else.
	knownDown := errors.Is(err, policyclient.ErrTemporalDown)
	if logged(c.Kind) && !callerLeft && !knownDown {
		s.logger.LogAttrs(r.Context(), slog.LevelError, "request failed",
			slog.String("method", r.Method), slog.String("route", r.Pattern), slog.Int("status", e.status),
			slog.String("kind", c.Kind.String()), slog.String("error", err.Error()))
	}
	writeError(w, e)
}

// logged says which kinds of failure someone should look at: outages,
// bugs, and a store that contradicts itself.
func logged(k policyclient.ErrorKind) bool {
	switch k {
	case policyclient.KindInvalid, policyclient.KindRejected, policyclient.KindNotFound:
		return false
	}
	return true
}

// httpStatus is the one table from an error's kind to its HTTP status.
func httpStatus(k policyclient.ErrorKind) int {
	switch k {
	case policyclient.KindInvalid:
		return http.StatusBadRequest
	case policyclient.KindRejected, policyclient.KindConflict:
		return http.StatusConflict
	case policyclient.KindNotFound:
		return http.StatusNotFound
	case policyclient.KindUnavailable, policyclient.KindTimeout, policyclient.KindCanceled:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// apiErrorFor is the answer to err, classified as c: the kind's status;
// the contract's error type as the code where there is one (the workflow's
// refusals, store_conflict), else the kind's code; and the details that
// belong to the code.
func apiErrorFor(err error, c policyclient.Classification) *apiError {
	e := &apiError{status: httpStatus(c.Kind), Code: c.Reason, Message: c.Message}
	switch c.Kind {
	case policyclient.KindInvalid:
		var (
			invalid  *insurance.ValidationError
			argument *policyclient.ArgumentError
		)
		switch {
		case errors.As(err, &invalid):
			e.Fields = invalid.Problems
		case errors.As(err, &argument):
			e.Fields = []insurance.FieldError{{Field: argument.Field, Message: argument.Message}}
		}
	case policyclient.KindRejected:
		var rejection *policyclient.Rejection
		if !errors.As(err, &rejection) {
			break
		}
		if rejection.SeqMismatch != nil {
			head := rejection.SeqMismatch.HeadSeq
			e.HeadSeq = &head
		}
		if rejection.Reason == workflows.ReasonIllegalTransition && rejection.Details != nil {
			e.State = string(rejection.Details.State)
			e.Stage = rejection.Details.Stage
			e.AllowedStages = rejection.Details.AllowedStages
			if e.AllowedStages == nil {
				e.AllowedStages = []string{}
			}
		}
	case policyclient.KindConflict:
		// The contract's type (store_conflict) and message, which names
		// the seq; the store's own error text stays in the log.
	case policyclient.KindNotFound:
		e.Code, e.Message = codeNotFound, "no such policy"
	case policyclient.KindUnavailable, policyclient.KindTimeout:
		// One code for every outage, so a client needs one rule: try
		// again later. A contract error (store_unavailable) keeps its
		// message, which says what was not recorded.
		e.Code = codeUnavailable
		if e.Message == "" {
			e.Message = "the workflow service is unavailable; try again later"
		}
	case policyclient.KindCanceled:
		// The caller went away; nobody reads this answer, but the access
		// log shows the request did not complete.
		e.Code, e.Message = codeUnavailable, "request cancelled"
	default:
		e.Code, e.Message = codeInternal, "internal error"
	}
	return e
}
