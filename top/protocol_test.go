package top

import (
	"encoding/json"
	"testing"
)

func TestResponseRoot(t *testing.T) {
	tests := []struct{ method, want string }{
		{APIMethod, "auction_insurance_insuranceresultcallback_response"},
		{"taobao.item.seller.get", "item_seller_get_response"},
		{"alibaba.foo.bar", "alibaba_foo_bar_response"},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			if got := ResponseRoot(tt.method); got != tt.want {
				t.Fatalf("ResponseRoot=%s, want %s", got, tt.want)
			}
		})
	}
}

func TestErrorBody(t *testing.T) {
	got := string(ErrorBody(ErrorResponse{Code: 50, Msg: "Remote service error", SubCode: "isv.invalid-parameter", SubMsg: "非法参数", RequestID: "r1"}))
	want := `{"error_response":{"code":50,"msg":"Remote service error","sub_code":"isv.invalid-parameter","sub_msg":"非法参数","request_id":"r1"}}`
	if got != want {
		t.Fatalf("ErrorBody=%s, want %s", got, want)
	}
	if got, want := string(ErrorBody(ErrorResponse{Code: 10, Msg: "Service Currently Unavailable"})),
		`{"error_response":{"code":10,"msg":"Service Currently Unavailable"}}`; got != want {
		t.Fatalf("ErrorBody without optional fields=%s, want %s", got, want)
	}
}

func TestSuccessBody(t *testing.T) {
	resp := CallbackResponse{CallSuccess: false, FailCode: "XXX_ERROR", FailMessage: "错误信息内容", RequestID: "r2"}
	tests := []struct {
		name     string
		simplify bool
		want     string
	}{
		{"normal", false, `{"auction_insurance_insuranceresultcallback_response":{"call_success":false,"fail_code":"XXX_ERROR","fail_message":"错误信息内容","request_id":"r2"}}`},
		{"simplify", true, `{"call_success":false,"fail_code":"XXX_ERROR","fail_message":"错误信息内容","request_id":"r2"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := SuccessBody(APIMethod, tt.simplify, resp)
			if string(body) != tt.want {
				t.Fatalf("SuccessBody=%s, want %s", body, tt.want)
			}
			o := ParseResponse(200, body, tt.simplify)
			if o.Class != ClassRejected || o.FailCode != "XXX_ERROR" || o.FailMessage != "错误信息内容" || o.RequestID != "r2" {
				t.Fatalf("ParseResponse of SuccessBody=%+v, want rejected XXX_ERROR r2", o)
			}
		})
	}
	if got := string(SuccessBody(APIMethod, true, CallbackResponse{CallSuccess: true})); got != `{"call_success":true}` {
		t.Fatalf("minimal success=%s, want {\"call_success\":true}", got)
	}
}

func TestCodeMessage(t *testing.T) {
	tests := []struct {
		code int
		want string
	}{
		{CodeAppCallLimited, "App Call Limited"},
		{CodeServiceUnavailable, "Service Currently Unavailable"},
		{CodeInvalidSignature, "Invalid Signature"},
		{CodeMissingArguments, "Missing Required Arguments"},
		{CodeRemoteServiceErrorAlt, "Remote service error"},
		{999, "Unknown Error"},
	}
	for _, tt := range tests {
		if got := CodeMessage(tt.code); got != tt.want {
			t.Fatalf("CodeMessage(%d)=%q, want %q", tt.code, got, tt.want)
		}
	}
}

func TestErrorResponseJSONRoundTrip(t *testing.T) {
	in := ErrorResponse{Code: 7, Msg: "App Call Limited", SubCode: "accesscontrol.limited-by-app-access-count", SubMsg: "This ban will last for 17 more seconds"}
	var env map[string]ErrorResponse
	if err := json.Unmarshal(ErrorBody(in), &env); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if env["error_response"] != in {
		t.Fatalf("round trip=%+v, want %+v", env["error_response"], in)
	}
}
