package top

// The server side of the protocol: the checks a TOP gateway runs on a
// request before the API behind it sees the request, in the gateway's order,
// and the error_response each failure is answered with. The gateway
// simulator and the ingress's TOP-compatible endpoint both answer through
// these, so a client that handles one handles the other, and the real
// gateway, the same way.

import (
	"errors"
	"fmt"
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
)

// Sub-codes the gateway checks answer with. The real gateway gives sub_codes
// to some errors and not others; these follow what it is seen to send, so
// that a client which classifies them correctly here does so there too.
const (
	subCodeAppKeyNotExists = "isv.appkey-not-exists"
	subCodeInvalidParam    = "isv.invalid-parameter"
	subCodeMissingRequest  = "isv.missing-parameter:" + ParamRequest
)

// versionShape tells a version the gateway might support someday ("1.0":
// code 34, unsupported) from something that is no version (code 33). The
// bounds keep an absurd value such as a thousand digits out of the first.
var versionShape = regexp.MustCompile(`^[0-9]{1,8}(\.[0-9]{1,8}){0,3}$`)

// Gateway checks requests as the TOP gateway does for the one app it knows
// and the one API this project serves (APIMethod). The zero MaxSkew and a
// nil Now mean MaxClockSkew and time.Now. AppKey and AppSecret must be set:
// the callers refuse a configuration without them.
type Gateway struct {
	AppKey    string
	AppSecret Secret
	// MaxSkew is how far a request's timestamp may stray from Now.
	MaxSkew time.Duration
	Now     func() time.Time
}

// ReadParams reads a request's parameters as the gateway does: POST only
// (code 9), the query string and the form body (url-encoded or multipart)
// merged, since the signature covers both, and no body over maxBytes and no
// parameter sent twice (code 43). It does not close r.Body.
func ReadParams(w http.ResponseWriter, r *http.Request, maxBytes int64) (url.Values, *ErrorResponse) {
	if r.Method != http.MethodPost {
		return nil, gatewayError(CodeHTTPActionNotAllowed, "",
			fmt.Sprintf("HTTP method %s is not allowed; the gateway takes POST", quote(r.Method)))
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBytes)
	var err error
	if mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mediaType == "multipart/form-data" {
		err = r.ParseMultipartForm(maxBytes)
	} else {
		err = r.ParseForm()
	}
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, gatewayError(CodeParameterError, subCodeInvalidParam,
				fmt.Sprintf("the request body is larger than %d bytes", maxBytes))
		}
		return nil, gatewayError(CodeParameterError, subCodeInvalidParam, "the request parameters are not valid form encoding")
	}
	// A repeated parameter has no single value to sign: the SDKs sign the
	// first, a proxy may keep the last. Refusing it leaves nothing to guess.
	for _, name := range slices.Sorted(maps.Keys(r.Form)) {
		if n := len(r.Form[name]); n > 1 {
			return nil, gatewayError(CodeParameterError, subCodeInvalidParam,
				fmt.Sprintf("parameter %s is sent %d times; send each parameter once, in the query or the body", quote(name), n))
		}
	}
	return r.Form, nil
}

// Verify checks the system parameters and the signature in the gateway's
// order: method, app_key, v, format, sign_method, timestamp (format, then
// skew), sign. It returns the error_response for the first violation, or nil
// when the request is authentic and may go on to its API arguments. A
// parameter sent empty counts as missing, since the signature leaves it out.
func (g Gateway) Verify(p url.Values) *ErrorResponse {
	switch m := p.Get(ParamMethod); {
	case m == "":
		return gatewayError(CodeMissingMethod, "", "method is required")
	case m != APIMethod:
		return gatewayError(CodeInvalidMethod, "", fmt.Sprintf("method %s is not served here; the only API is %s", quote(m), APIMethod))
	}
	switch k := p.Get(ParamAppKey); {
	case k == "":
		return gatewayError(CodeMissingAppKey, "", "app_key is required")
	case k != g.AppKey:
		return gatewayError(CodeInvalidAppKey, subCodeAppKeyNotExists, "app_key is not a known app")
	}
	switch v := p.Get(ParamVersion); {
	case v == "":
		return gatewayError(CodeMissingVersion, "", "v is required; send v="+Version)
	case v == Version:
	case versionShape.MatchString(v):
		return gatewayError(CodeUnsupportedVersion, "", fmt.Sprintf("version %s is not supported; send v=%s", quote(v), Version))
	default:
		return gatewayError(CodeInvalidVersion, "", fmt.Sprintf("version %s is not a version; send v=%s", quote(v), Version))
	}
	// Without format the real gateway answers in XML. The servers here speak
	// JSON only, and a client that forgot format would not parse XML, so
	// they say so instead of answering in a format not asked for.
	switch f := p.Get(ParamFormat); {
	case f == "":
		return gatewayError(CodeInvalidFormat, "", "format is missing, which means xml; xml is not served, send format=json")
	case f == "xml":
		return gatewayError(CodeInvalidFormat, "", "format xml is not served here; send format=json")
	case f != FormatJSON:
		return gatewayError(CodeInvalidFormat, "", fmt.Sprintf("format %s is not json or xml; send format=json", quote(f)))
	}
	// TOP has no code for an unusable sign_method: the signature cannot be
	// checked, which is answered as an invalid signature (25), permanent for
	// every client. The value must match exactly: the SDKs send lower case.
	switch m := p.Get(ParamSignMethod); {
	case m == "":
		return gatewayError(CodeInvalidSignature, "", "sign_method is required (md5, hmac or hmac-sha256)")
	case !SignMethod(m).Valid():
		return gatewayError(CodeInvalidSignature, "", fmt.Sprintf("sign_method %s is not md5, hmac or hmac-sha256", quote(m)))
	}
	ts := p.Get(ParamTimestamp)
	if ts == "" {
		return gatewayError(CodeMissingTimestamp, "", "timestamp is required (yyyy-MM-dd HH:mm:ss, GMT+8)")
	}
	at, err := ParseTimestamp(ts)
	if err != nil {
		return gatewayError(CodeInvalidTimestamp, "", fmt.Sprintf("timestamp %s is not yyyy-MM-dd HH:mm:ss", quote(ts)))
	}
	// The skew bound is also what limits replaying a captured request.
	if skew, limit := g.now().Sub(at).Abs(), g.maxSkew(); skew > limit {
		// ts parsed as the layout, so it is safe to repeat as it is.
		return gatewayError(CodeInvalidTimestamp, "", fmt.Sprintf(
			"timestamp %s (GMT+8) is %v from the gateway's clock; at most %v is allowed", ts, skew.Round(time.Second), limit))
	}
	if err := VerifySignature(p, g.AppSecret); err != nil {
		var se *SignatureError
		if errors.As(err, &se) && se.Problem == SignatureMissing {
			return gatewayError(CodeMissingSignature, "", "sign is required")
		}
		// Never what the signature should have been.
		return gatewayError(CodeInvalidSignature, "", "sign does not match the request and the app secret")
	}
	return nil
}

func (g Gateway) now() time.Time {
	if g.Now == nil {
		return time.Now()
	}
	return g.Now()
}

func (g Gateway) maxSkew() time.Duration {
	if g.MaxSkew <= 0 {
		return MaxClockSkew
	}
	return g.MaxSkew
}

// Call is a request that passed every gateway check: what the API behind
// the gateway acts on.
type Call struct {
	Result     insurance.Result
	Payload    string     // ParamRequest exactly as signed
	SignMethod SignMethod // as verified
	Simplify   bool
}

// ParseArguments checks this API's own parameters (simplify and the
// insurance result) of a request that Verify let through, as the gateway
// does before any business logic: code 40 for a missing result, 41 for
// anything that does not fit the API.
func ParseArguments(p url.Values) (Call, *ErrorResponse) {
	c := Call{SignMethod: SignMethod(p.Get(ParamSignMethod))}
	switch v := p.Get(ParamSimplify); v {
	case "", "false":
	case "true":
		c.Simplify = true
	default:
		return Call{}, gatewayError(CodeInvalidArguments, subCodeInvalidParam, fmt.Sprintf("simplify %s must be true or false", quote(v)))
	}
	c.Payload = p.Get(ParamRequest)
	if c.Payload == "" {
		return Call{}, gatewayError(CodeMissingArguments, subCodeMissingRequest, "Missing required arguments:"+ParamRequest)
	}
	result, err := insurance.Decode([]byte(c.Payload))
	if err != nil {
		return Call{}, gatewayError(CodeInvalidArguments, subCodeInvalidParam, ParamRequest+" is invalid: "+ProblemsText(err))
	}
	c.Result = result
	return c, nil
}

// ProblemsText lists an insurance.ValidationError's problems as
// "field: message; ...", for a sub_msg or fail_message. insurance guarantees
// its messages name fields and kinds of problem and never repeat personal
// data, which is why they may be answered; any other error is not, and
// reads as "it is not an insurance result".
func ProblemsText(err error) string {
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

func gatewayError(code int, subCode, subMsg string) *ErrorResponse {
	return &ErrorResponse{Code: code, Msg: CodeMessage(code), SubCode: subCode, SubMsg: subMsg}
}

// quote quotes a caller's value for a sub_msg: at most 64 bytes of it, cut
// on a rune boundary, and quoted so that no control character or quote in
// it can change how the message reads. The "..." of a cut value stands
// outside the quotes, so it is never mistaken for what was sent.
func quote(v string) string {
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
