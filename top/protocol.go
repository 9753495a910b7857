package top

import (
	"encoding/json"
	"fmt"
	"strings"
)

// APIMethod is the only TOP API this project calls.
const APIMethod = "taobao.auction.insurance.insuranceresultcallback"

// Gateways published by TOP.
const (
	GatewayProduction = "https://eco.taobao.com/router/rest"
	GatewaySandbox    = "http://gw.api.tbsandbox.com/router/rest"
)

// Parameter names. The system parameters are shared by every TOP API;
// ParamRequest is this API's one business parameter.
const (
	ParamMethod     = "method"
	ParamAppKey     = "app_key"
	ParamTimestamp  = "timestamp"
	ParamFormat     = "format"
	ParamVersion    = "v"
	ParamSignMethod = "sign_method"
	ParamSign       = "sign"
	ParamSession    = "session"
	ParamSimplify   = "simplify"
	ParamPartnerID  = "partner_id"

	// ParamRequest carries the insurance result as a compact JSON string.
	ParamRequest = "insurance_result_a_p_i_request"
)

// Fixed values of system parameters and of the request.
const (
	FormatJSON  = "json"
	Version     = "2.0"
	ContentType = "application/x-www-form-urlencoded;charset=UTF-8"
)

// TOP error codes (the top-level "code" of an error_response).
const (
	CodeAppCallLimited                 = 7
	CodeHTTPActionNotAllowed           = 9
	CodeServiceUnavailable             = 10
	CodeInsufficientISVPermissions     = 11
	CodeInsufficientUserPermissions    = 12
	CodeInsufficientPartnerPermissions = 13
	CodeRemoteServiceError             = 15
	CodeMissingMethod                  = 21
	CodeInvalidMethod                  = 22
	CodeInvalidFormat                  = 23
	CodeMissingSignature               = 24
	CodeInvalidSignature               = 25
	CodeMissingSession                 = 26
	CodeInvalidSession                 = 27
	CodeMissingAppKey                  = 28
	CodeInvalidAppKey                  = 29
	CodeMissingTimestamp               = 30
	CodeInvalidTimestamp               = 31
	CodeMissingVersion                 = 32
	CodeInvalidVersion                 = 33
	CodeUnsupportedVersion             = 34
	CodeMissingArguments               = 40
	CodeInvalidArguments               = 41
	CodeForbiddenRequest               = 42
	CodeParameterError                 = 43
	// CodeRemoteServiceErrorAlt is the "Remote service error" code shown on
	// this API's page; like 15 it carries an isp.* or isv.* sub_code.
	CodeRemoteServiceErrorAlt = 50
)

// codeMessages are the gateway's standard msg texts.
var codeMessages = map[int]string{
	CodeAppCallLimited:                 "App Call Limited",
	CodeHTTPActionNotAllowed:           "Http Action Not Allowed",
	CodeServiceUnavailable:             "Service Currently Unavailable",
	CodeInsufficientISVPermissions:     "Insufficient ISV Permissions",
	CodeInsufficientUserPermissions:    "Insufficient User Permissions",
	CodeInsufficientPartnerPermissions: "Insufficient Partner Permissions",
	CodeRemoteServiceError:             "Remote service error",
	CodeMissingMethod:                  "Missing Method",
	CodeInvalidMethod:                  "Invalid Method",
	CodeInvalidFormat:                  "Invalid Format",
	CodeMissingSignature:               "Missing Signature",
	CodeInvalidSignature:               "Invalid Signature",
	CodeMissingSession:                 "Missing Session",
	CodeInvalidSession:                 "Invalid Session",
	CodeMissingAppKey:                  "Missing App Key",
	CodeInvalidAppKey:                  "Invalid App Key",
	CodeMissingTimestamp:               "Missing Timestamp",
	CodeInvalidTimestamp:               "Invalid Timestamp",
	CodeMissingVersion:                 "Missing Version",
	CodeInvalidVersion:                 "Invalid Version",
	CodeUnsupportedVersion:             "Unsupported Version",
	CodeMissingArguments:               "Missing Required Arguments",
	CodeInvalidArguments:               "Invalid Arguments",
	CodeForbiddenRequest:               "Forbidden Request",
	CodeParameterError:                 "Parameter Error",
	CodeRemoteServiceErrorAlt:          "Remote service error",
}

// CodeMessage returns the gateway's standard msg for an error code, or
// "Unknown Error" for a code it does not define.
func CodeMessage(code int) string {
	if msg, ok := codeMessages[code]; ok {
		return msg
	}
	return "Unknown Error"
}

// ResponseRoot is the root key of a method's normal success envelope: the
// method without "taobao.", dots turned into underscores, plus "_response".
func ResponseRoot(method string) string {
	return strings.ReplaceAll(strings.TrimPrefix(method, "taobao."), ".", "_") + "_response"
}

// errorRoot is the root key of an error envelope, in both modes.
const errorRoot = "error_response"

// ErrorResponse is the body of an error envelope.
type ErrorResponse struct {
	Code      int    `json:"code"`
	Msg       string `json:"msg"`
	SubCode   string `json:"sub_code,omitempty"`
	SubMsg    string `json:"sub_msg,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

func (e ErrorResponse) String() string {
	s := fmt.Sprintf("code %d %s", e.Code, e.Msg)
	if e.SubCode != "" {
		s += " " + e.SubCode
	}
	if e.SubMsg != "" {
		s += ": " + e.SubMsg
	}
	return s
}

// ErrorBody renders {"error_response":{...}}, the gateway's error envelope
// (the same whether or not simplify was asked for).
func ErrorBody(e ErrorResponse) []byte {
	return marshalEnvelope(map[string]ErrorResponse{errorRoot: e})
}

// CallbackResponse is this API's response object.
type CallbackResponse struct {
	CallSuccess bool   `json:"call_success"`
	FailCode    string `json:"fail_code,omitempty"`
	FailMessage string `json:"fail_message,omitempty"`
	RequestID   string `json:"request_id,omitempty"`
}

// SuccessBody renders a success envelope: {"<ResponseRoot(method)>":{...}}
// normally, or with simplify the response object itself.
func SuccessBody(method string, simplify bool, resp CallbackResponse) []byte {
	if simplify {
		return marshalEnvelope(resp)
	}
	return marshalEnvelope(map[string]CallbackResponse{ResponseRoot(method): resp})
}

// marshalEnvelope marshals the envelope types above. They hold only strings,
// ints and bools, for which encoding/json cannot fail, so the error is
// unreachable and dropping it keeps the body builders infallible.
func marshalEnvelope(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
