package simulator

import (
	"context"
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
	"github.com/insuranceflow/insuranceflow/top"
)

// maxFormBytes caps a /router/rest body. The largest valid callback is a
// few KiB; anything near this is not a callback.
const maxFormBytes = 1 << 20

// Sub-codes the simulator answers with. The real gateway gives sub_codes to
// some errors and not others; these follow what it is seen to send, so that
// a client which classifies them correctly here does so there too.
const (
	subCodeAppKeyNotExists = "isv.appkey-not-exists"
	subCodeBan             = "accesscontrol.limited-by-app-access-count"
	subCodeMissingParam    = "isv.missing-parameter:" + top.ParamRequest
	subCodeInvalidParam    = "isv.invalid-parameter"
	subCodeServiceTimeout  = "isp.remote-service-timeout"
)

// versionShape tells a version number the gateway might support someday
// ("1.0": code 34, Unsupported) from something that is no version at all
// (code 33, Invalid).
var versionShape = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*$`)

// call is a request that passed every protocol and argument check.
type call struct {
	result     insurance.Result
	payload    string // the business parameter exactly as signed
	signMethod string
	simplify   bool
}

// exchange is what one /router/rest request came to; it feeds the stats and
// the request's log line.
type exchange struct {
	outcome      Outcome
	code         int // TOP error code answered, 0 for none
	subCode      string
	httpStatus   int // 0 when the client left before an answer
	bizID        string
	signMethod   string
	topRequestID string
	clientGone   bool
}

func (s *Simulator) serveGateway(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	s.arrive()
	ex := s.exchange(w, r)
	s.count(ex.outcome, ex.code)
	attrs := []slog.Attr{
		slog.String("method", r.Method),
		// Only the path: the query string may carry the signature.
		slog.String("path", r.URL.Path),
		slog.String("outcome", string(ex.outcome)),
		slog.Int("code", ex.code),
		slog.Int("http_status", ex.httpStatus),
		slog.String("biz_id", ex.bizID),
		slog.Duration("duration", time.Since(start)),
		slog.String("top_request_id", ex.topRequestID),
	}
	if ex.subCode != "" {
		attrs = append(attrs, slog.String("sub_code", ex.subCode))
	}
	if ex.signMethod != "" {
		attrs = append(attrs, slog.String("sign_method", ex.signMethod))
	}
	if ex.clientGone {
		attrs = append(attrs, slog.Bool("client_gone", true))
	}
	s.logger.LogAttrs(r.Context(), slog.LevelInfo, "top request", attrs...)
}

// exchange answers one gateway request: latency, protocol checks, faults,
// the reject pattern, and finally a receipt and call_success=true.
func (s *Simulator) exchange(w http.ResponseWriter, r *http.Request) exchange {
	ctx := r.Context()
	ex := exchange{topRequestID: s.newRequestID()}

	if latency := s.Faults().Latency; latency > 0 && !sleep(ctx, latency) {
		ex.outcome, ex.clientGone = OutcomeAbandoned, true
		return ex
	}

	c, rejection := s.check(w, r)
	if rejection != nil {
		return s.answerError(w, ex, OutcomeProtocolError, *rejection)
	}
	ex.bizID, ex.signMethod = c.result.BizID, c.signMethod

	d := s.decide(c.result.BizID)
	switch d.verdict {
	case verdictBan:
		return s.answerError(w, ex, OutcomeBan, top.ErrorResponse{
			Code:    top.CodeAppCallLimited,
			SubCode: subCodeBan,
			SubMsg:  fmt.Sprintf("This ban will last for %d more seconds", d.banLeft),
		})
	case verdictHang:
		ex.outcome = OutcomeHang
		if !sleep(ctx, d.hangFor) {
			ex.clientGone = true
			return ex
		}
		// A client patient enough to outlast the hang gets what the gateway
		// says when the service behind it never answered.
		return s.answerError(w, ex, OutcomeHang, top.ErrorResponse{
			Code:    top.CodeRemoteServiceError,
			SubCode: subCodeServiceTimeout,
			SubMsg:  fmt.Sprintf("the insurance result service did not answer within %v", d.hangFor),
		})
	case verdict502:
		ex.outcome, ex.httpStatus = OutcomeHTTP502, http.StatusBadGateway
		writeBadGateway(w)
		return ex
	case verdictISP:
		return s.answerError(w, ex, OutcomeISPError, top.ErrorResponse{
			Code:    top.CodeRemoteServiceError,
			SubCode: d.ispSubCode,
			SubMsg:  "the insurance result service failed; the call may be retried later",
		})
	case verdictReject:
		ex.outcome = OutcomeRejected
		return s.answerSuccess(w, ex, c.simplify, top.CallbackResponse{
			CallSuccess: false,
			FailCode:    d.failCode,
			FailMessage: d.failMessage,
		})
	}

	s.record(Receipt{
		BizID:        c.result.BizID,
		RequestID:    c.result.RequestID,
		Stage:        c.result.Stage,
		Status:       c.result.Status,
		StageName:    c.result.Stage.String(),
		StatusName:   c.result.Status.String(),
		ReceivedAt:   s.now(),
		SignMethod:   c.signMethod,
		TOPRequestID: ex.topRequestID,
		Payload:      []byte(c.payload),
	})
	ex.outcome = OutcomeAccepted
	return s.answerSuccess(w, ex, c.simplify, top.CallbackResponse{CallSuccess: true})
}

// check runs the gateway's checks in the gateway's order and returns the
// first violation as the error it answers with.
func (s *Simulator) check(w http.ResponseWriter, r *http.Request) (call, *top.ErrorResponse) {
	if r.Method != http.MethodPost {
		return call{}, rejection(top.CodeHTTPActionNotAllowed, "",
			fmt.Sprintf("HTTP method %s is not allowed; the gateway takes POST", r.Method))
	}
	params, rej := readParams(w, r)
	if rej != nil {
		return call{}, rej
	}
	if rej := s.checkSystem(params); rej != nil {
		return call{}, rej
	}
	return checkArguments(params)
}

// readParams merges the query string and the form body, as the gateway
// does: the signature covers both.
func readParams(w http.ResponseWriter, r *http.Request) (url.Values, *top.ErrorResponse) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	var err error
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mediaType == "multipart/form-data" {
		err = r.ParseMultipartForm(maxFormBytes)
	} else {
		err = r.ParseForm()
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, rejection(top.CodeParameterError, subCodeInvalidParam,
				fmt.Sprintf("request body is larger than %d bytes", maxFormBytes))
		}
		return nil, rejection(top.CodeParameterError, subCodeInvalidParam,
			"request parameters are not valid form encoding")
	}
	// A repeated parameter has no single value to sign: the SDKs sign the
	// first, a proxy may keep the last. Refuse it rather than guess.
	for _, name := range slices.Sorted(maps.Keys(r.Form)) {
		if values := r.Form[name]; len(values) > 1 {
			return nil, rejection(top.CodeParameterError, subCodeInvalidParam,
				fmt.Sprintf("parameter %q is sent %d times; send each parameter once, in the query or the body", truncate(name), len(values)))
		}
	}
	return r.Form, nil
}

// checkSystem checks the system parameters. A parameter sent with an empty
// value counts as missing: the signature leaves it out, so does the gateway.
func (s *Simulator) checkSystem(p url.Values) *top.ErrorResponse {
	switch method := p.Get(top.ParamMethod); {
	case method == "":
		return rejection(top.CodeMissingMethod, "", "method is required")
	case method != top.APIMethod:
		return rejection(top.CodeInvalidMethod, "",
			fmt.Sprintf("method %q is not served here; the only API is %s", truncate(method), top.APIMethod))
	}

	switch key := p.Get(top.ParamAppKey); {
	case key == "":
		return rejection(top.CodeMissingAppKey, "", "app_key is required")
	case key != s.appKey:
		return rejection(top.CodeInvalidAppKey, subCodeAppKeyNotExists, "app_key is not a known app")
	}

	switch v := p.Get(top.ParamVersion); {
	case v == "":
		return rejection(top.CodeMissingVersion, "", "v is required (2.0)")
	case v == top.Version:
	case versionShape.MatchString(v):
		return rejection(top.CodeUnsupportedVersion, "", fmt.Sprintf("version %q is not supported; send v=2.0", truncate(v)))
	default:
		return rejection(top.CodeInvalidVersion, "", fmt.Sprintf("version %q is not a version; send v=2.0", truncate(v)))
	}

	switch f := p.Get(top.ParamFormat); {
	case f == "":
		// The real gateway would answer in XML here; this one serves JSON
		// only, and a client that forgets format would not parse the XML.
		return rejection(top.CodeInvalidFormat, "", "format is missing, which means xml; send format=json")
	case f == "xml":
		return rejection(top.CodeInvalidFormat, "", "format xml is not served by this simulator; send format=json")
	case f != top.FormatJSON:
		return rejection(top.CodeInvalidFormat, "", fmt.Sprintf("format %q is not json or xml; send format=json", truncate(f)))
	}

	// An unusable sign_method means the signature cannot be checked. TOP
	// has no code of its own for it, so the simulator answers it as an
	// invalid signature (25), which every client must treat as permanent.
	// The value must match exactly: the SDKs send it lower-case.
	switch m := p.Get(top.ParamSignMethod); {
	case m == "":
		return rejection(top.CodeInvalidSignature, "", "sign_method is required (md5, hmac or hmac-sha256)")
	case !top.SignMethod(m).Valid():
		return rejection(top.CodeInvalidSignature, "",
			fmt.Sprintf("sign_method %q is not supported (want md5, hmac or hmac-sha256)", truncate(m)))
	}

	ts := p.Get(top.ParamTimestamp)
	if ts == "" {
		return rejection(top.CodeMissingTimestamp, "", "timestamp is required (yyyy-MM-dd HH:mm:ss, GMT+8)")
	}
	at, err := top.ParseTimestamp(ts)
	if err != nil {
		return rejection(top.CodeInvalidTimestamp, "",
			fmt.Sprintf("timestamp %q is not yyyy-MM-dd HH:mm:ss", truncate(ts)))
	}
	if skew := s.now().Sub(at).Abs(); skew > s.maxSkew {
		return rejection(top.CodeInvalidTimestamp, "",
			fmt.Sprintf("timestamp %s (GMT+8) is %v away from the gateway's clock; at most %v is allowed",
				ts, skew.Round(time.Second), s.maxSkew))
	}

	if err := top.VerifySignature(p, s.secret); err != nil {
		var se *top.SignatureError
		if errors.As(err, &se) && se.Problem == top.SignatureMissing {
			return rejection(top.CodeMissingSignature, "", "sign is required")
		}
		// Never say what the signature should have been.
		return rejection(top.CodeInvalidSignature, "", "sign does not match the request")
	}
	return nil
}

// checkArguments checks the API's arguments once the request is known to
// come from the app.
func checkArguments(p url.Values) (call, *top.ErrorResponse) {
	var simplify bool
	switch v := p.Get(top.ParamSimplify); v {
	case "", "false":
	case "true":
		simplify = true
	default:
		return call{}, rejection(top.CodeInvalidArguments, subCodeInvalidParam,
			fmt.Sprintf("simplify %q must be true or false", truncate(v)))
	}

	payload := p.Get(top.ParamRequest)
	if payload == "" {
		return call{}, rejection(top.CodeMissingArguments, subCodeMissingParam,
			"Missing required arguments:"+top.ParamRequest)
	}
	result, err := insurance.Decode([]byte(payload))
	if err != nil {
		var ve *insurance.ValidationError
		if !errors.As(err, &ve) {
			return call{}, rejection(top.CodeInvalidArguments, subCodeInvalidParam,
				top.ParamRequest+" is not an insurance result")
		}
		// The messages name the field and the kind of problem; insurance
		// guarantees they never repeat personal data.
		parts := make([]string, len(ve.Problems))
		for i, fe := range ve.Problems {
			parts[i] = fe.Field + ": " + fe.Message
		}
		return call{}, rejection(top.CodeInvalidArguments, subCodeInvalidParam,
			top.ParamRequest+" is invalid: "+strings.Join(parts, "; "))
	}
	return call{
		result:     result,
		payload:    payload,
		signMethod: p.Get(top.ParamSignMethod),
		simplify:   simplify,
	}, nil
}

func rejection(code int, subCode, subMsg string) *top.ErrorResponse {
	return &top.ErrorResponse{Code: code, Msg: top.CodeMessage(code), SubCode: subCode, SubMsg: subMsg}
}

func (s *Simulator) answerError(w http.ResponseWriter, ex exchange, o Outcome, e top.ErrorResponse) exchange {
	if e.Msg == "" {
		e.Msg = top.CodeMessage(e.Code)
	}
	e.RequestID = ex.topRequestID
	ex.outcome, ex.code, ex.subCode, ex.httpStatus = o, e.Code, e.SubCode, http.StatusOK
	writeJSON(w, http.StatusOK, top.ErrorBody(e))
	return ex
}

func (s *Simulator) answerSuccess(w http.ResponseWriter, ex exchange, simplify bool, resp top.CallbackResponse) exchange {
	resp.RequestID = ex.topRequestID
	ex.httpStatus = http.StatusOK
	writeJSON(w, http.StatusOK, top.SuccessBody(top.APIMethod, simplify, resp))
	return ex
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body) // the client hanging up is not the gateway's problem
}

// badGatewayPage is what the gateway's front proxy serves when the service
// behind it fails: HTML, not JSON, so a client must not try to parse it.
const badGatewayPage = `<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>Tengine</center>
</body>
</html>
`

func writeBadGateway(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html")
	w.Header().Set("Content-Length", strconv.Itoa(len(badGatewayPage)))
	w.WriteHeader(http.StatusBadGateway)
	_, _ = w.Write([]byte(badGatewayPage))
}

// newRequestID returns a TOP-style request id: 13 lower-case base-36
// characters, drawn from the seeded id stream.
func (s *Simulator) newRequestID() string {
	s.mu.Lock()
	n := s.idRand.Uint64()
	s.mu.Unlock()
	id := strconv.FormatUint(n, 36)
	return strings.Repeat("0", 13-len(id)) + id
}

// sleep waits for d or until ctx ends, and reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// truncate bounds a caller's value echoed in a sub_msg (which quotes it
// with %q, so control characters cannot forge anything).
func truncate(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
