package ingress

// The TOP-compatible endpoint. An insurer whose systems already call
// taobao.auction.insurance.insuranceresultcallback on a TOP gateway can
// point them at this service instead by changing only the gateway URL: the
// request is the same signed form, checked the way a gateway checks it, and
// the answer is the same envelope. Behind the protocol the event is handled
// exactly as POST /v1/insurance-results handles it.

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/insuranceflow/insuranceflow/auth"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/top"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// TOPRouterPath is where the TOP-compatible endpoint is served: the path of
// every TOP gateway URL.
const TOPRouterPath = "/router/rest"

// maxTOPFormBytes bounds a /router/rest body. The event inside may be
// insurance.MaxBodyBytes, and form encoding can triple its size (%XX per
// byte); the system parameters add a few hundred bytes.
const maxTOPFormBytes = 3*insurance.MaxBodyBytes + 4<<10

// Sub-codes for a failure on this side (the gateway checks' own are top's).
// isp.* says the service failed and the same request may be sent again,
// which is what TOP clients (ours included) act on.
const (
	subCodeServiceUnavailable = "isp.remote-service-unavailable"
	subCodeServiceTimeout     = "isp.remote-service-timeout"
	subCodeServiceError       = "isp.remote-service-error"
)

// topRouter checks requests as a gateway would for the endpoint's one app.
type topRouter struct {
	gateway top.Gateway
}

// newTOPRouter returns the endpoint configured by cfg, or nil when cfg sets
// neither credential (the endpoint is off). Setting only one is a mistake
// worth failing on: the operator meant to turn the endpoint on.
func newTOPRouter(cfg Config) (*topRouter, error) {
	key := strings.TrimSpace(cfg.TOPAppKey)
	switch {
	case key == "" && cfg.TOPAppSecret.IsZero():
		return nil, nil
	case key == "":
		return nil, &ConfigError{Field: "TOPAppKey", Problem: "is required when TOPAppSecret is set"}
	case strings.TrimSpace(cfg.TOPAppSecret.Reveal()) == "":
		// Never the value, even when it is only blanks.
		return nil, &ConfigError{Field: "TOPAppSecret", Problem: "is required when TOPAppKey is set"}
	}
	// MaxSkew left zero: the gateway's own bound, top.MaxClockSkew.
	return &topRouter{gateway: top.Gateway{AppKey: key, AppSecret: cfg.TOPAppSecret, Now: cfg.Now}}, nil
}

// topRoutes is the endpoint's route, when it is on. It takes no bearer
// token: the TOP signature authenticates the caller.
func (s *Server) topRoutes() []route {
	if s.router == nil {
		return nil
	}
	// The TOP signature's credentials can only report: the endpoint
	// speaks one TOP method, and reads or operator actions are /v1 routes
	// its app secret is no token for.
	return []route{{http.MethodPost, TOPRouterPath, false, auth.ScopeReport, s.serveTOP}}
}

// topAnswer is what one request came to, for the log line.
type topAnswer struct {
	requestID string
	bizID     string
	code      int
	subCode   string
	failCode  string
}

// serveTOP answers one /router/rest request. Every answer is HTTP 200 with a
// TOP envelope, as a gateway's are; only the mux's own answers (405 for
// another method) are not.
func (s *Server) serveTOP(w http.ResponseWriter, r *http.Request) {
	ans := topAnswer{requestID: newTOPRequestID()}
	defer func() { s.logTOP(r, ans) }()

	params, perr := top.ReadParams(w, r, maxTOPFormBytes)
	if perr == nil {
		perr = s.router.gateway.Verify(params)
	}
	if perr != nil {
		// Not counted as a rejected event: until the signature verifies,
		// this is not known to be an event from a caller at all.
		s.answerTOPError(w, &ans, *perr)
		return
	}
	c, perr := top.ParseArguments(params)
	if perr != nil {
		s.countRejected(APITOP, workflows.ReasonInvalidRequest)
		s.answerTOPError(w, &ans, *perr)
		return
	}
	ans.bizID = c.Result.BizID
	noteBizID(r.Context(), c.Result.BizID)

	ctx, cancel := context.WithTimeout(r.Context(), s.callTimeout)
	defer cancel()
	acc, err := s.policies.Report(ctx, c.Result)
	s.countReport(r.Context(), APITOP, acc, err)
	if err == nil {
		// A duplicate is a success too: the event was accepted before, and
		// a TOP client re-sending after a lost answer must stop there.
		s.answerTOPSuccess(w, &ans, c.Simplify, top.CallbackResponse{CallSuccess: true})
		return
	}
	kind := policyclient.Classify(err)
	if resp, ok := topRejection(err, kind); ok {
		ans.failCode = resp.FailCode
		if kind.Kind == policyclient.KindConflict {
			// Answered as a refusal so the caller does not retry it, but
			// someone has to look at the store.
			s.logger.LogAttrs(r.Context(), slog.LevelError, "request failed",
				slog.String("method", r.Method), slog.String("route", r.Pattern),
				slog.String("kind", kind.Kind.String()), slog.String("error", err.Error()))
		}
		s.answerTOPSuccess(w, &ans, c.Simplify, resp)
		return
	}
	s.answerTOPError(w, &ans, s.topServiceError(r, err, kind))
}

// topRejection maps the errors whose kind is a refusal (invalid, rejected,
// conflict) to call_success=false: the business side heard the event and
// said no, which TOP expresses in a successful envelope, and which a TOP
// client does not retry. The fail_code is the contract's type in upper case
// (ILLEGAL_TRANSITION, INSURANCE_TYPE_MISMATCH, TIME_WENT_BACKWARDS,
// INVALID_REQUEST, STORE_CONFLICT, ...) and the message is the one the JSON
// API gives.
func topRejection(err error, c policyclient.Classification) (top.CallbackResponse, bool) {
	switch c.Kind {
	case policyclient.KindInvalid, policyclient.KindRejected, policyclient.KindConflict:
	default:
		return top.CallbackResponse{}, false
	}
	resp := top.CallbackResponse{CallSuccess: false, FailCode: strings.ToUpper(c.Reason), FailMessage: c.Message}
	var (
		rejection *policyclient.Rejection
		invalid   *insurance.ValidationError
	)
	switch {
	case errors.As(err, &invalid):
		resp.FailMessage = "the insurance result is invalid: " + top.ProblemsText(err)
	case errors.As(err, &rejection) && rejection.Reason == workflows.ReasonIllegalTransition && rejection.Details != nil:
		if d := rejection.Details; len(d.AllowedStages) == 0 {
			resp.FailMessage += "; no stage is allowed in state " + string(d.State)
		} else {
			resp.FailMessage += "; allowed stages: " + strings.Join(d.AllowedStages, ", ")
		}
	}
	return resp, true
}

// topServiceError is the error_response for a failure on this side: code 15
// with an isp.* sub_code, which tells every TOP client to retry the same
// request later. As with the JSON API, the cause is logged, not answered.
// Its kind picks the sub_code: the one table from kind to TOP answer,
// beside topRejection's.
func (s *Server) topServiceError(r *http.Request, err error, c policyclient.Classification) top.ErrorResponse {
	callerLeft := c.Kind == policyclient.KindCanceled && r.Context().Err() != nil
	if !callerLeft && !errors.Is(err, policyclient.ErrTemporalDown) {
		s.logger.LogAttrs(r.Context(), slog.LevelError, "request failed",
			slog.String("method", r.Method), slog.String("route", r.Pattern),
			slog.String("kind", c.Kind.String()), slog.String("error", err.Error()))
	}
	switch c.Kind {
	case policyclient.KindTimeout:
		return *topError(top.CodeRemoteServiceError, subCodeServiceTimeout,
			"the workflow service did not answer in time; send the same request again later")
	case policyclient.KindUnavailable, policyclient.KindCanceled:
		return *topError(top.CodeRemoteServiceError, subCodeServiceUnavailable,
			"the workflow service is unavailable; send the same request again later")
	default:
		return *topError(top.CodeRemoteServiceError, subCodeServiceError,
			"internal error; send the same request again later")
	}
}

func topError(code int, subCode, subMsg string) *top.ErrorResponse {
	return &top.ErrorResponse{Code: code, Msg: top.CodeMessage(code), SubCode: subCode, SubMsg: subMsg}
}

func (s *Server) answerTOPError(w http.ResponseWriter, ans *topAnswer, e top.ErrorResponse) {
	e.RequestID = ans.requestID
	ans.code, ans.subCode = e.Code, e.SubCode
	writeTOP(w, top.ErrorBody(e))
}

func (s *Server) answerTOPSuccess(w http.ResponseWriter, ans *topAnswer, simplify bool, resp top.CallbackResponse) {
	resp.RequestID = ans.requestID
	writeTOP(w, top.SuccessBody(top.APIMethod, simplify, resp))
}

func writeTOP(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body) // a caller that hung up will send again
}

// logTOP writes one line per request with what the access log cannot show,
// since every answer is HTTP 200: the TOP code or fail_code, and the
// request_id the caller was given, for support.
func (s *Server) logTOP(r *http.Request, ans topAnswer) {
	attrs := []slog.Attr{slog.String("top_request_id", ans.requestID)}
	if ans.bizID != "" {
		attrs = append(attrs, slog.String("biz_id", ans.bizID))
	}
	switch {
	case ans.code != 0:
		attrs = append(attrs, slog.Int("code", ans.code))
		if ans.subCode != "" {
			attrs = append(attrs, slog.String("sub_code", ans.subCode))
		}
	case ans.failCode != "":
		attrs = append(attrs, slog.Bool("call_success", false), slog.String("fail_code", ans.failCode))
	default:
		attrs = append(attrs, slog.Bool("call_success", true))
	}
	s.logger.LogAttrs(r.Context(), slog.LevelInfo, "top request", attrs...)
}

// newTOPRequestID returns a request_id for one answer: random, so it names
// exactly one exchange in the logs, as a gateway's does.
func newTOPRequestID() string { return strings.ToLower(rand.Text()) }
