package top

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/insurance"
)

// testGateway is the Gateway every test checks against, on testNow's clock.
func testGateway() Gateway {
	return Gateway{AppKey: testAppKey, AppSecret: testSecret, Now: func() time.Time { return testNow }}
}

// gatewayForm is what an SDK posts for testResult at the given time, after
// edit changed it, signed with secret.
func gatewayForm(t *testing.T, at time.Time, method SignMethod, secret Secret, edit func(url.Values)) url.Values {
	t.Helper()
	payload, err := testResult().APIJSON()
	if err != nil {
		t.Fatalf("APIJSON: %v", err)
	}
	p := url.Values{
		ParamMethod:     {APIMethod},
		ParamAppKey:     {testAppKey},
		ParamTimestamp:  {Timestamp(at)},
		ParamFormat:     {FormatJSON},
		ParamVersion:    {Version},
		ParamSignMethod: {string(method)},
		ParamRequest:    {payload},
	}
	if edit != nil {
		edit(p)
	}
	sign, err := Sign(p, secret, method)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	p.Set(ParamSign, sign)
	return p
}

// wantError fails unless e is exactly the error_response for code with
// subCode, its sub_msg mentions subMsg, and nothing secret or personal is in it.
func wantError(t *testing.T, e *ErrorResponse, code int, subCode, subMsg string) {
	t.Helper()
	if e == nil {
		t.Fatalf("error_response = nil, want code %d", code)
	}
	if e.Code != code || e.Msg != CodeMessage(code) || e.SubCode != subCode {
		t.Fatalf("error_response = %s, want code %d %q sub_code %q", e, code, CodeMessage(code), subCode)
	}
	if !strings.Contains(e.SubMsg, subMsg) {
		t.Errorf("sub_msg = %q, want it to mention %q", e.SubMsg, subMsg)
	}
	for _, never := range []string{testSecret.Reveal(), testManagerName} {
		if strings.Contains(e.SubMsg, never) {
			t.Errorf("sub_msg = %q repeats %q", e.SubMsg, never)
		}
	}
}

func TestGatewayVerify(t *testing.T) {
	set := func(name, value string) func(url.Values) { return func(p url.Values) { p.Set(name, value) } }
	del := func(name string) func(url.Values) { return func(p url.Values) { p.Del(name) } }
	tests := []struct {
		name string
		edit func(url.Values)
		// unsigned: edit runs after signing, as a proxy or an attacker would.
		unsigned bool
		secret   Secret
		code     int // 0: the request may proceed
		subCode  string
		subMsg   string
	}{
		{name: "valid", code: 0},
		{name: "method missing", edit: del(ParamMethod), code: CodeMissingMethod, subMsg: "method is required"},
		{name: "method empty counts as missing", edit: set(ParamMethod, ""), code: CodeMissingMethod},
		{name: "another API", edit: set(ParamMethod, "taobao.item.get"), code: CodeInvalidMethod, subMsg: `"taobao.item.get"`},
		{name: "app_key missing", edit: del(ParamAppKey), code: CodeMissingAppKey, subMsg: "app_key"},
		{name: "unknown app_key", edit: set(ParamAppKey, "87654321"), code: CodeInvalidAppKey, subCode: "isv.appkey-not-exists"},
		{name: "v missing", edit: del(ParamVersion), code: CodeMissingVersion, subMsg: "v=2.0"},
		{name: "v 1.0 is a version not supported", edit: set(ParamVersion, "1.0"), code: CodeUnsupportedVersion, subMsg: `"1.0"`},
		{name: "v 3 is a version not supported", edit: set(ParamVersion, "3"), code: CodeUnsupportedVersion},
		{name: "v that is a word", edit: set(ParamVersion, "two"), code: CodeInvalidVersion, subMsg: `"two"`},
		{name: "v with five parts", edit: set(ParamVersion, "1.2.3.4.5"), code: CodeInvalidVersion},
		{name: "v with a nine-digit part", edit: set(ParamVersion, "123456789.0"), code: CodeInvalidVersion},
		{name: "format missing means xml", edit: del(ParamFormat), code: CodeInvalidFormat, subMsg: "xml"},
		{name: "format xml", edit: set(ParamFormat, "xml"), code: CodeInvalidFormat, subMsg: "format xml is not served here"},
		{name: "format JSON in upper case", edit: set(ParamFormat, "JSON"), code: CodeInvalidFormat, subMsg: `"JSON" is not json or xml`},
		{name: "sign_method missing", edit: del(ParamSignMethod), unsigned: true, code: CodeInvalidSignature, subMsg: "sign_method is required"},
		{name: "sign_method sha1", edit: set(ParamSignMethod, "sha1"), unsigned: true, code: CodeInvalidSignature, subMsg: `"sha1"`},
		{name: "sign_method in upper case", edit: set(ParamSignMethod, "MD5"), unsigned: true, code: CodeInvalidSignature, subMsg: `"MD5"`},
		{name: "timestamp missing", edit: del(ParamTimestamp), code: CodeMissingTimestamp, subMsg: "GMT+8"},
		{name: "timestamp RFC 3339", edit: set(ParamTimestamp, "2025-04-08T09:55:00+08:00"), code: CodeInvalidTimestamp, subMsg: "is not yyyy-MM-dd HH:mm:ss"},
		{name: "timestamp in UTC, not GMT+8", edit: set(ParamTimestamp, testNow.UTC().Format(TimestampLayout)), code: CodeInvalidTimestamp, subMsg: "8h0m0s"},
		{name: "clock 11 minutes ahead", edit: set(ParamTimestamp, Timestamp(testNow.Add(11*time.Minute))), code: CodeInvalidTimestamp, subMsg: "is 11m0s from the gateway's clock; at most 10m0s"},
		{name: "clock 11 minutes behind", edit: set(ParamTimestamp, Timestamp(testNow.Add(-11*time.Minute))), code: CodeInvalidTimestamp, subMsg: "11m0s"},
		{name: "clock exactly 10 minutes behind", edit: set(ParamTimestamp, Timestamp(testNow.Add(-10*time.Minute))), code: 0},
		{name: "clock 9 minutes ahead", edit: set(ParamTimestamp, Timestamp(testNow.Add(9*time.Minute))), code: 0},
		{name: "sign missing", edit: del(ParamSign), unsigned: true, code: CodeMissingSignature, subMsg: "sign is required"},
		{name: "sign empty counts as missing", edit: set(ParamSign, ""), unsigned: true, code: CodeMissingSignature},
		{name: "signed with another secret", secret: "another-secret", code: CodeInvalidSignature, subMsg: "does not match"},
		{name: "sign in lower case", edit: func(p url.Values) { p.Set(ParamSign, strings.ToLower(p.Get(ParamSign))) }, unsigned: true, code: CodeInvalidSignature},
		{name: "event changed after signing", edit: func(p url.Values) {
			p.Set(ParamRequest, strings.Replace(p.Get(ParamRequest), `"stage":2`, `"stage":3`, 1))
		}, unsigned: true, code: CodeInvalidSignature},
		{name: "unsigned parameter added", edit: set("extra", "not signed"), unsigned: true, code: CodeInvalidSignature},
		{name: "API arguments are not Verify's business", edit: set(ParamRequest, "not json"), code: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secret := testSecret
			if tt.secret != "" {
				secret = tt.secret
			}
			var p url.Values
			if tt.unsigned {
				p = gatewayForm(t, testNow, SignHMACSHA256, secret, nil)
				tt.edit(p)
			} else {
				p = gatewayForm(t, testNow, SignHMACSHA256, secret, tt.edit)
			}
			e := testGateway().Verify(p)
			if tt.code == 0 {
				if e != nil {
					t.Fatalf("Verify = %s, want nil", e)
				}
				return
			}
			wantError(t, e, tt.code, tt.subCode, tt.subMsg)
		})
	}
}

func TestGatewayVerifyAcceptsEachSignMethod(t *testing.T) {
	for _, m := range SignMethods() {
		t.Run(string(m), func(t *testing.T) {
			if e := testGateway().Verify(gatewayForm(t, testNow, m, testSecret, nil)); e != nil {
				t.Fatalf("Verify = %s, want nil", e)
			}
		})
	}
}

// Everything wrong at once: the answer names the first problem in the
// gateway's order, and fixing it reveals the next.
func TestGatewayVerifyOrder(t *testing.T) {
	p := url.Values{ParamSign: {"00"}}
	steps := []struct {
		code int
		fix  func()
	}{
		{CodeMissingMethod, func() { p.Set(ParamMethod, APIMethod) }},
		{CodeMissingAppKey, func() { p.Set(ParamAppKey, testAppKey) }},
		{CodeMissingVersion, func() { p.Set(ParamVersion, Version) }},
		{CodeInvalidFormat, func() { p.Set(ParamFormat, FormatJSON) }},
		{CodeInvalidSignature, func() { p.Set(ParamSignMethod, string(SignMD5)) }},
		{CodeMissingTimestamp, func() { p.Set(ParamTimestamp, "yesterday") }},
		{CodeInvalidTimestamp, func() { p.Set(ParamTimestamp, Timestamp(testNow)) }},
		{CodeInvalidSignature, func() { p.Del(ParamSign) }},
		{CodeMissingSignature, nil},
	}
	for i, step := range steps {
		e := testGateway().Verify(p)
		if e == nil || e.Code != step.code {
			t.Fatalf("step %d: Verify = %v, want code %d", i, e, step.code)
		}
		if step.fix != nil {
			step.fix()
		}
	}
}

func TestGatewayClockAndSkew(t *testing.T) {
	t.Run("MaxSkew narrows the window", func(t *testing.T) {
		g := testGateway()
		g.MaxSkew = time.Minute
		e := g.Verify(gatewayForm(t, testNow.Add(-2*time.Minute), SignMD5, testSecret, nil))
		wantError(t, e, CodeInvalidTimestamp, "", "is 2m0s from the gateway's clock; at most 1m0s is allowed")
		if e := g.Verify(gatewayForm(t, testNow.Add(-time.Minute), SignMD5, testSecret, nil)); e != nil {
			t.Fatalf("a minute off with MaxSkew 1m: Verify = %s, want nil", e)
		}
	})
	t.Run("nil Now is the wall clock", func(t *testing.T) {
		g := Gateway{AppKey: testAppKey, AppSecret: testSecret}
		if e := g.Verify(gatewayForm(t, time.Now(), SignMD5, testSecret, nil)); e != nil {
			t.Fatalf("a request signed now: Verify = %s, want nil", e)
		}
		wantError(t, g.Verify(gatewayForm(t, testNow, SignMD5, testSecret, nil)), CodeInvalidTimestamp, "", "from the gateway's clock")
	})
}

func TestParseArguments(t *testing.T) {
	set := func(name, value string) func(url.Values) { return func(p url.Values) { p.Set(name, value) } }
	tests := []struct {
		name    string
		edit    func(url.Values)
		code    int
		subCode string
		subMsg  string
	}{
		{name: "simplify not a boolean", edit: set(ParamSimplify, "yes"), code: CodeInvalidArguments, subCode: "isv.invalid-parameter", subMsg: `simplify "yes" must be true or false`},
		{name: "event missing", edit: func(p url.Values) { p.Del(ParamRequest) }, code: CodeMissingArguments,
			subCode: "isv.missing-parameter:insurance_result_a_p_i_request", subMsg: "Missing required arguments:insurance_result_a_p_i_request"},
		{name: "event empty counts as missing", edit: set(ParamRequest, ""), code: CodeMissingArguments, subCode: "isv.missing-parameter:insurance_result_a_p_i_request"},
		{name: "event not JSON", edit: set(ParamRequest, "biz_id=1"), code: CodeInvalidArguments, subCode: "isv.invalid-parameter",
			subMsg: "insurance_result_a_p_i_request is invalid: body: "},
		{name: "event with bad fields", edit: set(ParamRequest,
			`{"stage":9,"status":1,"time_of_occurrence":"2025-04-08 09:55:00","insurance_type":"home","bank_account_manager_name":"`+testManagerName+`"}`),
			code: CodeInvalidArguments, subCode: "isv.invalid-parameter", subMsg: "biz_id: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, e := ParseArguments(gatewayForm(t, testNow, SignMD5, testSecret, tt.edit))
			wantError(t, e, tt.code, tt.subCode, tt.subMsg)
			if c != (Call{}) {
				t.Errorf("Call = %+v with an error, want the zero Call", c)
			}
		})
	}

	t.Run("a valid request", func(t *testing.T) {
		for _, simplify := range []string{"", "false", "true"} {
			p := gatewayForm(t, testNow, SignHMAC, testSecret, func(p url.Values) {
				if simplify != "" {
					p.Set(ParamSimplify, simplify)
				}
			})
			c, e := ParseArguments(p)
			if e != nil {
				t.Fatalf("simplify=%q: ParseArguments = %s, want nil", simplify, e)
			}
			want := testResult()
			want.RequestID = c.Result.RequestID // Decode leaves it to the caller
			if c.Result != want || c.Payload != p.Get(ParamRequest) || c.SignMethod != SignHMAC || c.Simplify != (simplify == "true") {
				t.Fatalf("simplify=%q: Call = %+v, want the signed result, payload and sign_method, simplify %v", simplify, c, simplify == "true")
			}
		}
	})
}

func TestProblemsText(t *testing.T) {
	_, err := ParseTimestamp("not a time") // a real error of another kind
	if got := ProblemsText(err); got != "it is not an insurance result" {
		t.Errorf("ProblemsText(other error) = %q", got)
	}
	invalid := &insurance.ValidationError{Problems: []insurance.FieldError{
		{Field: "biz_id", Message: "is required"}, {Field: "stage", Message: "9 is not a stage"},
	}}
	if got := ProblemsText(fmt.Errorf("report: %w", invalid)); got != "biz_id: is required; stage: 9 is not a stage" {
		t.Errorf("ProblemsText(wrapped ValidationError) = %q", got)
	}
}

// gatewayServer serves ReadParams, Verify and ParseArguments on a real HTTP
// server, answering as the gateway does, and keeps the calls that passed.
type gatewayServer struct {
	url      string
	maxBytes int64
	mu       sync.Mutex
	calls    []Call
}

func startGatewayServer(t *testing.T, maxBytes int64) *gatewayServer {
	t.Helper()
	s := &gatewayServer{maxBytes: maxBytes}
	g := testGateway()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := func() []byte {
			p, e := ReadParams(w, r, s.maxBytes)
			if e == nil {
				e = g.Verify(p)
			}
			if e != nil {
				return ErrorBody(*e)
			}
			c, e := ParseArguments(p)
			if e != nil {
				return ErrorBody(*e)
			}
			s.mu.Lock()
			s.calls = append(s.calls, c)
			s.mu.Unlock()
			return SuccessBody(APIMethod, c.Simplify, CallbackResponse{CallSuccess: true, RequestID: "test"})
		}()
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL + "/router/rest"
	return s
}

func (s *gatewayServer) received() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// answer posts body with contentType (and query) and parses the answer as a
// TOP client does.
func (s *gatewayServer) answer(t *testing.T, method, query, contentType string, body io.Reader) Outcome {
	t.Helper()
	target := s.url
	if query != "" {
		target += "?" + query
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return ParseResponse(resp.StatusCode, b, false)
}

func TestGatewayServesThisProjectsClient(t *testing.T) {
	for _, m := range SignMethods() {
		for _, simplify := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s simplify=%v", m, simplify), func(t *testing.T) {
				s := startGatewayServer(t, 1<<20)
				cfg := testConfig(s.url)
				cfg.SignMethod, cfg.Simplify = m, simplify
				out := newTestClient(t, cfg).Callback(context.Background(), testResult())
				if out.Class != ClassDelivered {
					t.Fatalf("outcome = %s, want delivered", out.Summary())
				}
				calls := s.received()
				if len(calls) != 1 || calls[0].Result.BizID != testResult().BizID || calls[0].Result.BankAccountManagerName != testManagerName ||
					calls[0].SignMethod != m || calls[0].Simplify != simplify {
					t.Fatalf("calls = %+v, want the one result sent, with sign_method %s simplify %v", calls, m, simplify)
				}
			})
		}
	}
}

func TestReadParams(t *testing.T) {
	const limit = 4 << 10
	valid := gatewayForm(t, testNow, SignMD5, testSecret, nil)

	t.Run("system parameters in the query, the event in the body", func(t *testing.T) {
		s := startGatewayServer(t, limit)
		query, body := url.Values{}, url.Values{}
		for name := range valid {
			if name == ParamRequest {
				body.Set(name, valid.Get(name))
			} else {
				query.Set(name, valid.Get(name))
			}
		}
		if out := s.answer(t, http.MethodPost, query.Encode(), ContentType, strings.NewReader(body.Encode())); out.Class != ClassDelivered {
			t.Fatalf("outcome = %s, want delivered", out.Summary())
		}
	})
	t.Run("multipart form", func(t *testing.T) {
		s := startGatewayServer(t, limit)
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		for name := range valid {
			if err := mw.WriteField(name, valid.Get(name)); err != nil {
				t.Fatal(err)
			}
		}
		if err := mw.Close(); err != nil {
			t.Fatal(err)
		}
		if out := s.answer(t, http.MethodPost, "", mw.FormDataContentType(), &body); out.Class != ClassDelivered {
			t.Fatalf("outcome = %s, want delivered", out.Summary())
		}
	})

	tests := []struct {
		name    string
		method  string
		query   string
		body    string
		code    int
		subCode string
		subMsg  string
	}{
		{name: "GET", method: http.MethodGet, query: valid.Encode(), code: CodeHTTPActionNotAllowed, subMsg: `"GET" is not allowed`},
		{name: "parameter sent twice", method: http.MethodPost, body: valid.Encode() + "&" + ParamAppKey + "=" + testAppKey,
			code: CodeParameterError, subCode: "isv.invalid-parameter", subMsg: `parameter "app_key" is sent 2 times`},
		{name: "parameter in the query and the body", method: http.MethodPost, query: ParamFormat + "=json", body: valid.Encode(),
			code: CodeParameterError, subCode: "isv.invalid-parameter", subMsg: `"format" is sent 2 times`},
		{name: "body over the limit", method: http.MethodPost, body: valid.Encode() + "&padding=" + strings.Repeat("x", limit),
			code: CodeParameterError, subCode: "isv.invalid-parameter", subMsg: fmt.Sprintf("larger than %d bytes", limit)},
		{name: "not form encoding", method: http.MethodPost, body: "%zz=1&" + valid.Encode(),
			code: CodeParameterError, subCode: "isv.invalid-parameter", subMsg: "not valid form encoding"},
		{name: "a long parameter name is cut", method: http.MethodPost, body: strings.Repeat("n", 100) + "=1&" + strings.Repeat("n", 100) + "=2",
			code: CodeParameterError, subCode: "isv.invalid-parameter", subMsg: `"` + strings.Repeat("n", 64) + `"... is sent 2 times`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startGatewayServer(t, limit)
			out := s.answer(t, tt.method, tt.query, ContentType, strings.NewReader(tt.body))
			e := &ErrorResponse{Code: out.Code, Msg: out.Msg, SubCode: out.SubCode, SubMsg: out.SubMsg}
			wantError(t, e, tt.code, tt.subCode, tt.subMsg)
			if out.Class != ClassPermanent {
				t.Errorf("class = %s, want permanent", out.Class)
			}
			if n := len(s.received()); n != 0 {
				t.Errorf("%d calls got through, want 0", n)
			}
		})
	}
}

func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"md5", `"md5"`},
		{"a\"b\nc", `"a\"b\nc"`},
		{strings.Repeat("x", 64), `"` + strings.Repeat("x", 64) + `"`},
		{strings.Repeat("x", 70), `"` + strings.Repeat("x", 64) + `"...`},
		// 63 ASCII bytes, then a 3-byte rune across the limit: cut before it.
		{strings.Repeat("x", 63) + "蓝蓝", `"` + strings.Repeat("x", 63) + `"...`},
	}
	for _, tt := range tests {
		if got := quote(tt.in); got != tt.want {
			t.Errorf("quote(%.20q...) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// The error_response Verify returns marshals as the gateway's envelope.
func TestGatewayErrorIsAnEnvelope(t *testing.T) {
	e := testGateway().Verify(url.Values{ParamMethod: {APIMethod}, ParamAppKey: {"nope"}})
	var env map[string]map[string]any
	if err := json.Unmarshal(ErrorBody(*e), &env); err != nil {
		t.Fatal(err)
	}
	got := env["error_response"]
	if got["code"] != float64(CodeInvalidAppKey) || got["msg"] != "Invalid App Key" || got["sub_code"] != "isv.appkey-not-exists" {
		t.Fatalf("envelope = %v, want code 29 Invalid App Key isv.appkey-not-exists", env)
	}
}
