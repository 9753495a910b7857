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
	"fmt"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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

// Sub-codes the endpoint answers with. isv.* says the caller must change
// the request; isp.* says the service failed and the same request may be
// sent again, which is what TOP clients (ours included) act on.
const (
	subCodeAppKeyUnknown      = "isv.appkey-not-exists"
	subCodeInvalidParameter   = "isv.invalid-parameter"
	subCodeMissingRequest     = "isv.missing-parameter:" + top.ParamRequest
	subCodeServiceUnavailable = "isp.remote-service-unavailable"
	subCodeServiceTimeout     = "isp.remote-service-timeout"
	subCodeServiceError       = "isp.remote-service-error"
)

// numericVersion tells a version the endpoint might support someday
// ("1.0": code 34, unsupported) from something that is no version (code 33).
var numericVersion = regexp.MustCompile(`^[0-9]{1,8}(\.[0-9]{1,8}){0,3}$`)

// topRouter holds the endpoint's inbound credentials.
type topRouter struct {
	appKey string
	secret top.Secret
	now    func() time.Time
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
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &topRouter{appKey: key, secret: cfg.TOPAppSecret, now: now}, nil
}

// topRoutes is the endpoint's route, when it is on. It takes no bearer
// token: the TOP signature authenticates the caller.
func (s *Server) topRoutes() []route {
	if s.router == nil {
		return nil
	}
	return []route{{http.MethodPost, TOPRouterPath, false, s.serveTOP}}
}

// topCall is a request that passed every protocol and argument check.
type topCall struct {
	result   insurance.Result
	simplify bool
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

	params, perr := readTOPParams(w, r)
	if perr == nil {
		perr = s.router.checkSystem(params)
	}
	if perr != nil {
		// Not counted as a rejected event: until the signature verifies,
		// this is not known to be an event from a caller at all.
		s.answerTOPError(w, &ans, *perr)
		return
	}
	c, perr := checkTOPArguments(params)
	if perr != nil {
		s.countRejected(APITOP, workflows.ReasonInvalidRequest)
		s.answerTOPError(w, &ans, *perr)
		return
	}
	ans.bizID = c.result.BizID
	noteBizID(r.Context(), c.result.BizID)

	ctx, cancel := context.WithTimeout(r.Context(), s.callTimeout)
	defer cancel()
	acc, err := s.policies.Report(ctx, c.result)
	s.countReport(r.Context(), APITOP, acc, err)
	if err == nil {
		// A duplicate is a success too: the event was accepted before, and
		// a TOP client re-sending after a lost answer must stop there.
		s.answerTOPSuccess(w, &ans, c.simplify, top.CallbackResponse{CallSuccess: true})
		return
	}
	if resp, ok := topRejection(err); ok {
		ans.failCode = resp.FailCode
		s.answerTOPSuccess(w, &ans, c.simplify, resp)
		return
	}
	s.answerTOPError(w, &ans, s.topServiceError(r, err))
}

// readTOPParams merges the query string and the form body, as a gateway
// does: the signature covers both.
func readTOPParams(w http.ResponseWriter, r *http.Request) (url.Values, *top.ErrorResponse) {
	r.Body = http.MaxBytesReader(w, r.Body, maxTOPFormBytes)
	var err error
	if mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mediaType == "multipart/form-data" {
		err = r.ParseMultipartForm(maxTOPFormBytes)
	} else {
		err = r.ParseForm()
	}
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, topError(top.CodeParameterError, subCodeInvalidParameter,
				fmt.Sprintf("the request body is larger than %d bytes", maxTOPFormBytes))
		}
		return nil, topError(top.CodeParameterError, subCodeInvalidParameter, "the request parameters are not valid form encoding")
	}
	// A parameter given twice has no one value: the SDKs sign the first, a
	// proxy may forward the last. Refusing it leaves nothing to guess.
	for _, name := range slices.Sorted(maps.Keys(r.Form)) {
		if n := len(r.Form[name]); n > 1 {
			return nil, topError(top.CodeParameterError, subCodeInvalidParameter,
				fmt.Sprintf("parameter %s is sent %d times; send each parameter once", shortQuote(name), n))
		}
	}
	return r.Form, nil
}

// checkSystem checks the system parameters in a gateway's order: method,
// app_key, v, format, sign_method, timestamp, and last the signature. A
// parameter sent empty counts as missing, since the signature leaves it out.
func (tr *topRouter) checkSystem(p url.Values) *top.ErrorResponse {
	switch m := p.Get(top.ParamMethod); {
	case m == "":
		return topError(top.CodeMissingMethod, "", "method is required")
	case m != top.APIMethod:
		return topError(top.CodeInvalidMethod, "", fmt.Sprintf("method %s is not served here; the only API is %s", shortQuote(m), top.APIMethod))
	}
	switch k := p.Get(top.ParamAppKey); {
	case k == "":
		return topError(top.CodeMissingAppKey, "", "app_key is required")
	case k != tr.appKey:
		return topError(top.CodeInvalidAppKey, subCodeAppKeyUnknown, "app_key is not an app this service knows")
	}
	switch v := p.Get(top.ParamVersion); {
	case v == "":
		return topError(top.CodeMissingVersion, "", "v is required; send v="+top.Version)
	case v == top.Version:
	case numericVersion.MatchString(v):
		return topError(top.CodeUnsupportedVersion, "", fmt.Sprintf("version %s is not supported; send v=%s", shortQuote(v), top.Version))
	default:
		return topError(top.CodeInvalidVersion, "", fmt.Sprintf("version %s is not a version; send v=%s", shortQuote(v), top.Version))
	}
	// Without format a gateway answers in XML; this endpoint speaks JSON
	// only, so it says so rather than answer in a format not asked for.
	if f := p.Get(top.ParamFormat); f != top.FormatJSON {
		msg := "format is required: send format=json (this endpoint does not answer in xml)"
		if f != "" {
			msg = fmt.Sprintf("format %s is not served; send format=json", shortQuote(f))
		}
		return topError(top.CodeInvalidFormat, "", msg)
	}
	// TOP has no code for an unusable sign_method: the signature cannot be
	// checked, which a gateway answers as an invalid signature.
	switch m := p.Get(top.ParamSignMethod); {
	case m == "":
		return topError(top.CodeInvalidSignature, "", "sign_method is required (md5, hmac or hmac-sha256)")
	case !top.SignMethod(m).Valid():
		return topError(top.CodeInvalidSignature, "", fmt.Sprintf("sign_method %s is not md5, hmac or hmac-sha256", shortQuote(m)))
	}
	ts := p.Get(top.ParamTimestamp)
	if ts == "" {
		return topError(top.CodeMissingTimestamp, "", "timestamp is required (yyyy-MM-dd HH:mm:ss, GMT+8)")
	}
	at, err := top.ParseTimestamp(ts)
	if err != nil {
		return topError(top.CodeInvalidTimestamp, "", fmt.Sprintf("timestamp %s is not yyyy-MM-dd HH:mm:ss", shortQuote(ts)))
	}
	// The skew bound is also what limits replaying a captured request; a
	// replay within it reports the same event again, which is a duplicate.
	if skew := tr.now().Sub(at).Abs(); skew > top.MaxClockSkew {
		return topError(top.CodeInvalidTimestamp, "", fmt.Sprintf(
			"timestamp %s (GMT+8) is %v from this service's clock; at most %v is allowed",
			ts, skew.Round(time.Second), top.MaxClockSkew))
	}
	if err := top.VerifySignature(p, tr.secret); err != nil {
		var se *top.SignatureError
		if errors.As(err, &se) && se.Problem == top.SignatureMissing {
			return topError(top.CodeMissingSignature, "", "sign is required")
		}
		// Never what the signature should have been.
		return topError(top.CodeInvalidSignature, "", "sign does not match the request and the app secret")
	}
	return nil
}

// checkTOPArguments checks the API's own parameters of a request whose
// signature verified.
func checkTOPArguments(p url.Values) (topCall, *top.ErrorResponse) {
	var c topCall
	switch v := p.Get(top.ParamSimplify); v {
	case "", "false":
	case "true":
		c.simplify = true
	default:
		return c, topError(top.CodeInvalidArguments, subCodeInvalidParameter, fmt.Sprintf("simplify %s must be true or false", shortQuote(v)))
	}
	payload := p.Get(top.ParamRequest)
	if payload == "" {
		return c, topError(top.CodeMissingArguments, subCodeMissingRequest, "Missing required arguments:"+top.ParamRequest)
	}
	result, err := insurance.Decode([]byte(payload))
	if err != nil {
		// A gateway refuses arguments that do not fit the API as invalid
		// arguments, before any business logic; so does this endpoint.
		return c, topError(top.CodeInvalidArguments, subCodeInvalidParameter, top.ParamRequest+" is invalid: "+problemsText(err))
	}
	c.result = result
	return c, nil
}

// problemsText lists a validation error's problems. insurance guarantees its
// messages name fields and kinds of problem and never repeat personal data.
func problemsText(err error) string {
	var invalid *insurance.ValidationError
	if !errors.As(err, &invalid) || len(invalid.Problems) == 0 {
		return "it is not an insurance result"
	}
	parts := make([]string, len(invalid.Problems))
	for i, p := range invalid.Problems {
		parts[i] = p.Field + ": " + p.Message
	}
	return strings.Join(parts, "; ")
}

// topRejection maps the policy client's refusals to call_success=false:
// the business side heard the event and said no, which TOP expresses in a
// successful envelope. The fail_code is the reason in upper case
// (ILLEGAL_TRANSITION, INSURANCE_TYPE_MISMATCH, TIME_WENT_BACKWARDS,
// INVALID_REQUEST, ...) and the message is the one the JSON API gives.
func topRejection(err error) (top.CallbackResponse, bool) {
	var (
		rejection *policyclient.Rejection
		invalid   *insurance.ValidationError
		argument  *policyclient.ArgumentError
	)
	resp := top.CallbackResponse{CallSuccess: false}
	switch {
	case errors.As(err, &rejection):
		resp.FailCode = strings.ToUpper(rejection.Reason)
		resp.FailMessage = rejection.Message
		if d := rejection.Details; rejection.Reason == workflows.ReasonIllegalTransition && d != nil {
			if len(d.AllowedStages) == 0 {
				resp.FailMessage += "; no stage is allowed in state " + string(d.State)
			} else {
				resp.FailMessage += "; allowed stages: " + strings.Join(d.AllowedStages, ", ")
			}
		}
	case errors.As(err, &invalid):
		resp.FailCode = strings.ToUpper(workflows.ReasonInvalidRequest)
		resp.FailMessage = "the insurance result is invalid: " + problemsText(err)
	case errors.As(err, &argument):
		resp.FailCode = strings.ToUpper(workflows.ReasonInvalidRequest)
		resp.FailMessage = argument.Error()
	default:
		return top.CallbackResponse{}, false
	}
	return resp, true
}

// topServiceError is the error_response for a failure on this side: code 15
// with an isp.* sub_code, which tells every TOP client to retry the same
// request later. As with the JSON API, the cause is logged, not answered.
func (s *Server) topServiceError(r *http.Request, err error) top.ErrorResponse {
	callerLeft := errors.Is(err, context.Canceled) && r.Context().Err() != nil
	if !callerLeft {
		s.logger.LogAttrs(r.Context(), slog.LevelError, "request failed",
			slog.String("method", r.Method), slog.String("route", r.Pattern), slog.String("error", err.Error()))
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return *topError(top.CodeRemoteServiceError, subCodeServiceTimeout,
			"the workflow service did not answer in time; send the same request again later")
	case errors.Is(err, policyclient.ErrUnavailable), errors.Is(err, context.Canceled):
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

// shortQuote quotes a caller's value for a sub_msg: at most 64 bytes of it,
// cut on a rune boundary, and quoted so that no control character or quote
// in it can change how the message reads.
func shortQuote(v string) string {
	const limit = 64
	if len(v) <= limit {
		return strconv.Quote(v)
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return strconv.Quote(v[:cut]) + "..."
}
