package top

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

const (
	okNormal = `{"auction_insurance_insuranceresultcallback_response":{"call_success":true,"request_id":"top-r1"}}`
	okSimple = `{"call_success":true,"request_id":"top-r1"}`
)

func errBody(fields string) string { return `{"error_response":{` + fields + `}}` }

// parseCase is one row of the classification table: what the gateway sends
// and what ParseResponse must make of it.
type parseCase struct {
	name       string
	status     int
	body       string
	simplify   bool
	class      Class
	code       int
	subCode    string
	failCode   string
	requestID  string
	retryAfter time.Duration
	detail     string // substring of Detail, when set
}

func parseCases() []parseCase {
	return []parseCase{
		// Success envelopes.
		{name: "success normal envelope", status: 200, body: okNormal, class: ClassDelivered, requestID: "top-r1"},
		{name: "success simplified", status: 200, body: okSimple, simplify: true, class: ClassDelivered, requestID: "top-r1"},
		{name: "simplify asked but normal envelope sent", status: 200, body: okNormal, simplify: true, class: ClassDelivered, requestID: "top-r1"},
		{name: "simplified sent without asking", status: 200, body: okSimple, class: ClassDelivered, requestID: "top-r1"},
		{name: "call_success as string", status: 200, body: `{"call_success":"true"}`, simplify: true, class: ClassDelivered},
		{name: "call_success=false", status: 200,
			body:  `{"auction_insurance_insuranceresultcallback_response":{"call_success":false,"fail_code":"POLICY_NOT_FOUND","fail_message":"保单不存在","request_id":"top-r2"}}`,
			class: ClassRejected, failCode: "POLICY_NOT_FOUND", requestID: "top-r2"},
		{name: "call_success=false simplified", status: 200, simplify: true,
			body:  `{"call_success":false,"fail_code":"XXX_ERROR","fail_message":"错误信息内容"}`,
			class: ClassRejected, failCode: "XXX_ERROR"},
		{name: "call_success missing", status: 200, body: `{"auction_insurance_insuranceresultcallback_response":{"fail_code":"X"}}`,
			class: ClassRetryable, failCode: "X", detail: "call_success missing or not a boolean"},
		{name: "call_success not a boolean", status: 200, body: `{"call_success":1}`, simplify: true,
			class: ClassRetryable, detail: "call_success missing or not a boolean"},
		{name: "response object not an object", status: 200, body: `{"auction_insurance_insuranceresultcallback_response":[1]}`,
			class: ClassRetryable, detail: "unparsable auction_insurance_insuranceresultcallback_response"},
		{name: "unknown envelope", status: 200, body: `{"item_get_response":{"call_success":true}}`,
			class: ClassRetryable, detail: "neither auction_insurance_insuranceresultcallback_response nor error_response"},

		// error_response: sub_code prefix before the code, code 7 first of all.
		{name: "isp sub_code", status: 200,
			body:  errBody(`"code":15,"msg":"Remote service error","sub_code":"isp.remote-service-error","sub_msg":"服务暂不可用","request_id":"top-r3"`),
			class: ClassRetryable, code: 15, subCode: "isp.remote-service-error", requestID: "top-r3"},
		{name: "isv sub_code (API page example)", status: 200,
			body:  errBody(`"code":50,"msg":"Remote service error","sub_code":"isv.invalid-parameter","sub_msg":"非法参数"`),
			class: ClassPermanent, code: 50, subCode: "isv.invalid-parameter"},
		{name: "isv sub_code beats retryable code 10", status: 200,
			body:  errBody(`"code":10,"msg":"Service Currently Unavailable","sub_code":"isv.business-failure"`),
			class: ClassPermanent, code: 10, subCode: "isv.business-failure"},
		{name: "isp sub_code beats permanent code 41", status: 200,
			body:  errBody(`"code":41,"msg":"Invalid Arguments","sub_code":"isp.unknown-error"`),
			class: ClassRetryable, code: 41, subCode: "isp.unknown-error"},
		{name: "upper-case sub_code prefix", status: 200, body: errBody(`"code":15,"sub_code":"ISV.Invalid-Parameter"`),
			class: ClassPermanent, code: 15, subCode: "ISV.Invalid-Parameter"},
		{name: "code 7 with seconds", status: 200,
			body:  errBody(`"code":7,"msg":"App Call Limited","sub_code":"accesscontrol.limited-by-app-access-count","sub_msg":"This ban will last for 17 more seconds"`),
			class: ClassRateLimited, code: 7, subCode: "accesscontrol.limited-by-app-access-count", retryAfter: 17 * time.Second},
		{name: "code 7 without seconds", status: 200, body: errBody(`"code":7,"msg":"App Call Limited"`),
			class: ClassRateLimited, code: 7, retryAfter: DefaultBan},
		{name: "code 7 with unparsable sub_msg", status: 200, body: errBody(`"code":7,"msg":"App Call Limited","sub_msg":"banned for a while"`),
			class: ClassRateLimited, code: 7, retryAfter: DefaultBan},
		{name: "code 7 decided before isv sub_code", status: 200,
			body:  errBody(`"code":7,"msg":"App Call Limited","sub_code":"isv.access-limited","sub_msg":"This ban will last for 3 more seconds"`),
			class: ClassRateLimited, code: 7, subCode: "isv.access-limited", retryAfter: 3 * time.Second},
		{name: "code 7 as string", status: 200, body: errBody(`"code":"7","sub_msg":"This ban will last for 120 more seconds"`),
			class: ClassRateLimited, code: 7, retryAfter: 2 * time.Minute},
		{name: "code 7 zero seconds waits one", status: 200, body: errBody(`"code":7,"sub_msg":"This ban will last for 0 more seconds"`),
			class: ClassRateLimited, code: 7, retryAfter: time.Second},
		{name: "code 7 absurd ban capped", status: 200, body: errBody(`"code":7,"sub_msg":"This ban will last for 99999999999999999999999 more seconds"`),
			class: ClassRateLimited, code: 7, retryAfter: 24 * time.Hour},
		{name: "code 7 ban stated in msg", status: 200, body: errBody(`"code":7,"msg":"ban will last for 5 more seconds"`),
			class: ClassRateLimited, code: 7, retryAfter: 5 * time.Second},
		{name: "code 10", status: 200, body: errBody(`"code":10,"msg":"Service Currently Unavailable"`), class: ClassRetryable, code: 10},
		{name: "code 15 without sub_code", status: 200, body: errBody(`"code":15,"msg":"Remote service error"`), class: ClassRetryable, code: 15},
		{name: "unknown code", status: 200, body: errBody(`"code":999,"msg":"?"`), class: ClassRetryable, code: 999},
		{name: "unknown sub_code family falls back to code", status: 200, body: errBody(`"code":27,"sub_code":"aop.invalid-session"`),
			class: ClassPermanent, code: 27, subCode: "aop.invalid-session"},
		{name: "code 9", status: 200, body: errBody(`"code":9,"msg":"Http Action Not Allowed"`), class: ClassPermanent, code: 9},
		{name: "code 11", status: 200, body: errBody(`"code":11,"msg":"Insufficient ISV Permissions"`), class: ClassPermanent, code: 11},
		{name: "code 13", status: 200, body: errBody(`"code":13`), class: ClassPermanent, code: 13},
		{name: "code 14 unknown", status: 200, body: errBody(`"code":14`), class: ClassRetryable, code: 14},
		{name: "code 21", status: 200, body: errBody(`"code":21`), class: ClassPermanent, code: 21},
		{name: "code 25", status: 200, body: errBody(`"code":25,"msg":"Invalid Signature"`), class: ClassPermanent, code: 25},
		{name: "code 31", status: 200, body: errBody(`"code":31,"msg":"Invalid Timestamp"`), class: ClassPermanent, code: 31},
		{name: "code 34", status: 200, body: errBody(`"code":34`), class: ClassPermanent, code: 34},
		{name: "code 35 unknown", status: 200, body: errBody(`"code":35`), class: ClassRetryable, code: 35},
		{name: "code 40", status: 200, body: errBody(`"code":40`), class: ClassPermanent, code: 40},
		{name: "code 41", status: 200, body: errBody(`"code":41,"msg":"Invalid Arguments"`), class: ClassPermanent, code: 41},
		{name: "code 41 as float", status: 200, body: errBody(`"code":41.0`), class: ClassPermanent, code: 41},
		{name: "code 43", status: 200, body: errBody(`"code":43`), class: ClassPermanent, code: 43},
		{name: "code not a number", status: 200, body: errBody(`"code":"abc","msg":"?"`),
			class: ClassRetryable, detail: "error_response without a numeric code"},
		{name: "code missing but isv sub_code", status: 200, body: errBody(`"sub_code":"isv.missing-parameter"`),
			class: ClassPermanent, subCode: "isv.missing-parameter"},
		{name: "error_response not an object", status: 200, body: `{"error_response":"boom"}`,
			class: ClassRetryable, detail: "unparsable error_response"},
		{name: "error_response on a 503 is still the gateway's word", status: 503, body: errBody(`"code":25,"msg":"Invalid Signature"`),
			class: ClassPermanent, code: 25},

		// HTTP statuses without an error_response.
		{name: "HTTP 502", status: 502, body: "<html>Bad Gateway</html>", class: ClassRetryable, detail: "Bad Gateway"},
		{name: "HTTP 503 empty", status: 503, class: ClassRetryable, detail: "Service Unavailable"},
		{name: "HTTP 500 with success body", status: 500, body: okNormal, class: ClassRetryable},
		{name: "HTTP 408", status: 408, class: ClassRetryable},
		{name: "HTTP 429", status: 429, class: ClassRateLimited, retryAfter: DefaultBan},
		{name: "HTTP 404", status: 404, body: "not found", class: ClassPermanent, detail: "Not Found"},
		{name: "HTTP 403", status: 403, class: ClassPermanent},
		{name: "HTTP 301", status: 301, class: ClassPermanent, detail: "Moved Permanently"},
		{name: "HTTP 204", status: 204, class: ClassRetryable},
		{name: "HTTP 0", status: 0, body: okNormal, class: ClassRetryable},

		// Bodies that are not TOP answers.
		{name: "unparsable body", status: 200, body: "<html><body>maintenance</body></html>", class: ClassRetryable, detail: "unparsable response body"},
		{name: "truncated JSON", status: 200, body: `{"call_success":tr`, class: ClassRetryable, detail: "unparsable response body"},
		{name: "empty body", status: 200, body: "", class: ClassRetryable, detail: "empty response body"},
		{name: "whitespace body", status: 200, body: " \n\t", class: ClassRetryable, detail: "empty response body"},
		{name: "JSON null", status: 200, body: "null", class: ClassRetryable, detail: "unparsable response body"},
		{name: "JSON array", status: 200, body: "[]", class: ClassRetryable, detail: "unparsable response body"},
	}
}

func TestParseResponse(t *testing.T) {
	for _, tt := range parseCases() {
		t.Run(tt.name, func(t *testing.T) {
			o := ParseResponse(tt.status, []byte(tt.body), tt.simplify)
			if o.Class != tt.class {
				t.Fatalf("class=%v, want %v (outcome %+v)", o.Class, tt.class, o)
			}
			if o.HTTPStatus != tt.status {
				t.Fatalf("http status=%d, want %d", o.HTTPStatus, tt.status)
			}
			if o.Code != tt.code || o.SubCode != tt.subCode {
				t.Fatalf("code=%d sub_code=%q, want %d %q", o.Code, o.SubCode, tt.code, tt.subCode)
			}
			if o.FailCode != tt.failCode || o.RequestID != tt.requestID {
				t.Fatalf("fail_code=%q request_id=%q, want %q %q", o.FailCode, o.RequestID, tt.failCode, tt.requestID)
			}
			if o.RetryAfter != tt.retryAfter {
				t.Fatalf("retry after=%v, want %v", o.RetryAfter, tt.retryAfter)
			}
			if !strings.Contains(o.Detail, tt.detail) {
				t.Fatalf("detail=%q, want it to contain %q", o.Detail, tt.detail)
			}
		})
	}
}

func TestParseResponseKeepsMessages(t *testing.T) {
	o := ParseResponse(200, []byte(errBody(`"code":15,"msg":"Remote service error","sub_code":"isp.remote-service-error","sub_msg":"服务暂不可用"`)), false)
	if o.Msg != "Remote service error" || o.SubMsg != "服务暂不可用" {
		t.Fatalf("msg=%q sub_msg=%q, want both carried over", o.Msg, o.SubMsg)
	}
	o = ParseResponse(200, []byte(`{"call_success":false,"fail_code":"E1","fail_message":"保单不存在"}`), true)
	if o.FailMessage != "保单不存在" {
		t.Fatalf("fail_message=%q, want 保单不存在", o.FailMessage)
	}
}

func TestParseResponseLongBodyDetailIsBounded(t *testing.T) {
	body := "<html>" + strings.Repeat("维护中", 500) + "</html>"
	o := ParseResponse(200, []byte(body), false)
	if o.Class != ClassRetryable {
		t.Fatalf("class=%v, want retryable", o.Class)
	}
	if len(o.Detail) > 300 || !strings.HasSuffix(o.Detail, "…") {
		t.Fatalf("detail has %d bytes (%q), want a short snippet ending in …", len(o.Detail), o.Detail)
	}
}

func TestSummary(t *testing.T) {
	tests := []struct {
		name string
		o    Outcome
		want string
	}{
		{"delivered", ParseResponse(200, []byte(okNormal), false), "delivered"},
		{"rejected", ParseResponse(200, []byte(`{"call_success":false,"fail_code":"POLICY_NOT_FOUND","fail_message":"no such policy"}`), true),
			"rejected: POLICY_NOT_FOUND: no such policy"},
		{"isp", ParseResponse(200, []byte(errBody(`"code":15,"msg":"Remote service error","sub_code":"isp.remote-service-error","sub_msg":"service down"`)), false),
			"retryable: code 15 isp.remote-service-error: service down"},
		{"code only", ParseResponse(200, []byte(errBody(`"code":10,"msg":"Service Currently Unavailable"`)), false),
			"retryable: code 10: Service Currently Unavailable"},
		{"ban", ParseResponse(200, []byte(errBody(`"code":7,"msg":"App Call Limited","sub_code":"accesscontrol.limited-by-app-access-count","sub_msg":"This ban will last for 17 more seconds"`)), false),
			"rate_limited: code 7 accesscontrol.limited-by-app-access-count: This ban will last for 17 more seconds (retry after 17s)"},
		{"http", ParseResponse(502, nil, false), "retryable: HTTP 502: unexpected HTTP status Bad Gateway"},
		{"transport", Outcome{Class: ClassRetryable, Detail: "POST http://gw/router/rest: connection refused"},
			"retryable: POST http://gw/router/rest: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.o.Summary(); got != tt.want {
				t.Fatalf("Summary=%q, want %q", got, tt.want)
			}
		})
	}
}

func TestClassNames(t *testing.T) {
	want := []string{"delivered", "rejected", "retryable", "rate_limited", "permanent"}
	for i, c := range Classes() {
		if c.String() != want[i] {
			t.Fatalf("Class(%d).String()=%q, want %q", int(c), c, want[i])
		}
		parsed, err := ParseClass(want[i])
		if err != nil || parsed != c {
			t.Fatalf("ParseClass(%q)=%v, %v, want %v", want[i], parsed, err, c)
		}
	}
	if got := Class(0).String(); got != "class(0)" {
		t.Fatalf("Class(0).String()=%q, want class(0)", got)
	}
	_, err := ParseClass("done")
	var ce *ClassError
	if !errors.As(err, &ce) || ce.Value != "done" {
		t.Fatalf("ParseClass(done) err=%v, want *ClassError", err)
	}
}

func TestOutcomeJSONRoundTrip(t *testing.T) {
	in := ParseResponse(200, []byte(errBody(`"code":7,"sub_msg":"This ban will last for 17 more seconds","request_id":"r9"`)), false)
	in.Duration = 1500 * time.Millisecond
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	if !strings.Contains(string(b), `"class":"rate_limited"`) {
		t.Fatalf("JSON %s does not name the class", b)
	}
	var out Outcome
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if out != in {
		t.Fatalf("round trip=%+v, want %+v", out, in)
	}
	if err := json.Unmarshal([]byte(`{"class":"maybe"}`), &out); err == nil {
		t.Fatalf("Unmarshal of an unknown class succeeded")
	}
}

func FuzzParseResponse(f *testing.F) {
	for _, tt := range parseCases() {
		f.Add(tt.status, []byte(tt.body), tt.simplify)
	}
	f.Add(200, []byte(`{"error_response":{"code":1e400}}`), false)
	f.Add(200, []byte(`{"error_response":{"code":-7,"sub_code":null}}`), false)
	f.Add(200, []byte(`{"call_success":{"nested":true}}`), true)
	f.Add(200, []byte("\xff\xfe{"), false)
	f.Fuzz(func(t *testing.T, status int, body []byte, simplify bool) {
		o := ParseResponse(status, body, simplify)
		if !o.Class.Valid() {
			t.Fatalf("class %d is not valid for status %d body %q", int(o.Class), status, body)
		}
		if o.HTTPStatus != status {
			t.Fatalf("http status=%d, want %d", o.HTTPStatus, status)
		}
		if o.Class == ClassRateLimited && (o.RetryAfter < time.Second || o.RetryAfter > 24*time.Hour) {
			t.Fatalf("rate limited with retry after %v, want 1s..24h", o.RetryAfter)
		}
		if o.Class != ClassRateLimited && o.RetryAfter != 0 {
			t.Fatalf("class %v with retry after %v", o.Class, o.RetryAfter)
		}
		if s := o.Summary(); !strings.HasPrefix(s, o.Class.String()) {
			t.Fatalf("summary %q does not start with the class", s)
		}
	})
}
