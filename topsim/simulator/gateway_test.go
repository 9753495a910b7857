package simulator_test

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The test signer must reproduce the vector published in the TOP signing
// documentation, or nothing else in this file proves anything.
func TestIndependentSignerMatchesPublishedVector(t *testing.T) {
	p := url.Values{}
	p.Set("app_key", "12345678")
	p.Set("fields", "num_iid,title,nick,price,num")
	p.Set("format", "json")
	p.Set("method", "taobao.item.seller.get")
	p.Set("num_iid", "11223344")
	p.Set("session", "test")
	p.Set("sign_method", "md5")
	p.Set("timestamp", "2016-01-01 12:00:00")
	p.Set("v", "2.0")
	if got, want := signIndependently(t, p, "helloworld", "md5"), "66987CB115214E59E6EC978214934FB8"; got != want {
		t.Fatalf("sign=%s, want %s", got, want)
	}
}

func TestAcceptsEachSignMethod(t *testing.T) {
	for _, method := range []string{"md5", "hmac", "hmac-sha256"} {
		t.Run(method, func(t *testing.T) {
			ts := newSim(t, nil)
			p := validParams(t, testNow, method, samplePayload)

			r := postForm(t, ts.url(), p).success(t)
			if !r.CallSuccess {
				t.Fatalf("call_success=false (%s), want true", r.FailCode)
			}
			if len(r.RequestID) != 13 {
				t.Fatalf("request_id=%q, want 13 characters", r.RequestID)
			}
			got := ts.sim.Callbacks("")
			if len(got) != 1 || got[0].SignMethod != method {
				t.Fatalf("receipts=%+v, want one with sign_method %s", got, method)
			}

			// One byte of the signature changed: the same request is refused.
			sign := []byte(p.Get("sign"))
			if sign[0] == 'A' {
				sign[0] = 'B'
			} else {
				sign[0] = 'A'
			}
			p.Set("sign", string(sign))
			e := wantCode(t, postForm(t, ts.url(), p), 25, "")
			if e.Msg != "Invalid Signature" {
				t.Fatalf("msg=%q, want Invalid Signature", e.Msg)
			}
			if n := len(ts.sim.Callbacks("")); n != 1 {
				t.Fatalf("receipts=%d after a bad signature, want still 1", n)
			}
		})
	}
}

func TestSignatureCoversQueryAndBody(t *testing.T) {
	ts := newSim(t, nil)
	p := validParams(t, testNow, "hmac-sha256", samplePayload)
	// System parameters in the query, the API parameter in the body, as the
	// official SDKs send them.
	query, body := url.Values{}, url.Values{}
	for name, vs := range p {
		if name == "insurance_result_a_p_i_request" {
			body[name] = vs
		} else {
			query[name] = vs
		}
	}
	resp, err := http.Post(ts.url()+"?"+query.Encode(), "application/x-www-form-urlencoded;charset=UTF-8", strings.NewReader(body.Encode()))
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	if r := readAnswer(t, resp).success(t); !r.CallSuccess {
		t.Fatalf("call_success=false, want true")
	}

	t.Run("a body parameter left out of the signature is caught", func(t *testing.T) {
		body.Set("extra", "not signed")
		resp, err := http.Post(ts.url()+"?"+query.Encode(), "application/x-www-form-urlencoded", strings.NewReader(body.Encode()))
		if err != nil {
			t.Fatalf("POST: %v", err)
		}
		wantCode(t, readAnswer(t, resp), 25, "")
	})
}

func TestAcceptsMultipartForm(t *testing.T) {
	ts := newSim(t, nil)
	p := validParams(t, testNow, "hmac-sha256", samplePayload)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for name := range p {
		if err := mw.WriteField(name, p.Get(name)); err != nil {
			t.Fatalf("WriteField: %v", err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatalf("close multipart: %v", err)
	}
	resp, err := http.Post(ts.url(), mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	if r := readAnswer(t, resp).success(t); !r.CallSuccess {
		t.Fatalf("call_success=false, want true for a multipart form")
	}
}

func TestProtocolViolations(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(p url.Values) // then re-signed, unless noResign
		noSign  bool
		code    int
		subCode string
		subMsg  string // a substring the sub_msg must contain
	}{
		{name: "method missing", edit: func(p url.Values) { p.Del("method") }, code: 21},
		{name: "method empty counts as missing", edit: func(p url.Values) { p.Set("method", "") }, code: 21},
		{name: "another API", edit: func(p url.Values) { p.Set("method", "taobao.item.get") }, code: 22, subMsg: "taobao.item.get"},
		{name: "app_key missing", edit: func(p url.Values) { p.Del("app_key") }, code: 28},
		{name: "unknown app_key", edit: func(p url.Values) { p.Set("app_key", "99999999") }, code: 29, subCode: "isv.appkey-not-exists"},
		{name: "v missing", edit: func(p url.Values) { p.Del("v") }, code: 32},
		{name: "v 1.0 unsupported", edit: func(p url.Values) { p.Set("v", "1.0") }, code: 34, subMsg: "1.0"},
		{name: "v garbage", edit: func(p url.Values) { p.Set("v", "two") }, code: 33, subMsg: "two"},
		{name: "format missing means xml", edit: func(p url.Values) { p.Del("format") }, code: 23, subMsg: "xml"},
		{name: "format xml", edit: func(p url.Values) { p.Set("format", "xml") }, code: 23, subMsg: "json"},
		{name: "format JSON upper case", edit: func(p url.Values) { p.Set("format", "JSON") }, code: 23},
		{name: "sign_method missing", edit: func(p url.Values) { p.Del("sign_method") }, code: 25, subMsg: "sign_method"},
		{name: "sign_method sha1", edit: func(p url.Values) { p.Set("sign_method", "sha1") }, code: 25, subMsg: "sha1"},
		{name: "sign_method upper case", edit: func(p url.Values) { p.Set("sign_method", "MD5") }, code: 25, subMsg: "MD5"},
		{name: "timestamp missing", edit: func(p url.Values) { p.Del("timestamp") }, code: 30},
		{name: "timestamp RFC 3339", edit: func(p url.Values) { p.Set("timestamp", "2025-04-08T10:00:00+08:00") }, code: 31},
		{name: "timestamp unix millis", edit: func(p url.Values) { p.Set("timestamp", "1744077600000") }, code: 31},
		{name: "timestamp in UTC, not GMT+8", edit: func(p url.Values) { p.Set("timestamp", testNow.UTC().Format("2006-01-02 15:04:05")) }, code: 31, subMsg: "8h0m0s"},
		{name: "sign missing", edit: func(p url.Values) { p.Del("sign") }, noSign: true, code: 24},
		{name: "signed with another secret", edit: func(p url.Values) { resign(t, p, "wrong-secret") }, noSign: true, code: 25},
		{name: "sign in lower case", edit: func(p url.Values) { p.Set("sign", strings.ToLower(p.Get("sign"))) }, noSign: true, code: 25},
		{name: "parameter sent twice", edit: func(p url.Values) { p.Add("partner_id", "again") }, code: 43, subCode: "isv.invalid-parameter", subMsg: "partner_id"},
		{name: "body over 1 MiB", edit: func(p url.Values) { p.Set("partner_id", strings.Repeat("x", 1<<20)) }, code: 43,
			subCode: "isv.invalid-parameter", subMsg: "larger than"},
		{name: "business parameter missing", edit: func(p url.Values) { p.Del("insurance_result_a_p_i_request") }, code: 40,
			subCode: "isv.missing-parameter:insurance_result_a_p_i_request", subMsg: "insurance_result_a_p_i_request"},
		{name: "business parameter not JSON", edit: func(p url.Values) { p.Set("insurance_result_a_p_i_request", "biz_id=1") }, code: 41,
			subCode: "isv.invalid-parameter", subMsg: "body"},
		{name: "simplify not a boolean", edit: func(p url.Values) { p.Set("simplify", "yes") }, code: 41, subCode: "isv.invalid-parameter", subMsg: "simplify"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newSim(t, nil)
			p := validParams(t, testNow, "md5", samplePayload)
			tt.edit(p)
			if !tt.noSign {
				resign(t, p, testSecret)
			}
			e := wantCode(t, postForm(t, ts.url(), p), tt.code, tt.subCode)
			if !strings.Contains(e.SubMsg, tt.subMsg) {
				t.Fatalf("sub_msg=%q, want it to mention %q", e.SubMsg, tt.subMsg)
			}
			if strings.Contains(string(e.SubMsg), testSecret) {
				t.Fatalf("sub_msg leaks the secret: %q", e.SubMsg)
			}
			if n := len(ts.sim.Callbacks("")); n != 0 {
				t.Fatalf("receipts=%d, want 0 for a refused request", n)
			}
			st := ts.sim.Stats()
			if st.ProtocolErrors != 1 || st.ProtocolErrorsByCode[tt.code] != 1 {
				t.Fatalf("stats=%+v, want one protocol error with code %d", st, tt.code)
			}
		})
	}

	t.Run("GET is not allowed", func(t *testing.T) {
		ts := newSim(t, nil)
		p := validParams(t, testNow, "md5", samplePayload)
		resp, err := http.Get(ts.url() + "?" + p.Encode())
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		e := wantCode(t, readAnswer(t, resp), 9, "")
		if e.Msg != "Http Action Not Allowed" {
			t.Fatalf("msg=%q, want Http Action Not Allowed", e.Msg)
		}
	})

	t.Run("checks run in the gateway's order", func(t *testing.T) {
		// Everything wrong at once: the method check comes first.
		ts := newSim(t, nil)
		p := url.Values{"app_key": {"nope"}, "v": {"9"}}
		wantCode(t, postForm(t, ts.url(), p), 21, "")
		p.Set("method", testMethod)
		wantCode(t, postForm(t, ts.url(), p), 29, "isv.appkey-not-exists")
	})
}

func TestTimestampSkew(t *testing.T) {
	tests := []struct {
		name string
		skew time.Duration
		code int // 0: accepted
	}{
		{"11 minutes fast", 11 * time.Minute, 31},
		{"11 minutes slow", -11 * time.Minute, 31},
		{"9 minutes fast", 9 * time.Minute, 0},
		{"9 minutes slow", -9 * time.Minute, 0},
		{"exactly 10 minutes slow", -10 * time.Minute, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newSim(t, nil)
			a := postForm(t, ts.url(), validParams(t, testNow.Add(tt.skew), "hmac", samplePayload))
			if tt.code == 0 {
				if r := a.success(t); !r.CallSuccess {
					t.Fatalf("call_success=false, want true")
				}
				return
			}
			e := wantCode(t, a, tt.code, "")
			if !strings.Contains(e.SubMsg, "11m0s") {
				t.Fatalf("sub_msg=%q, want it to say how far off the clock is", e.SubMsg)
			}
		})
	}
}

func TestBusinessPayloadProblems(t *testing.T) {
	ts := newSim(t, nil)
	// biz_id missing, stage out of range, insurance_type a word; the account
	// manager's name is fine and must not be echoed.
	payload := `{"stage":9,"status":1,"time_of_occurrence":"2025-04-08 09:55:00","insurance_type":"home",` +
		`"bank_account_manager_name":"` + managerName + `"}`
	e := wantCode(t, postForm(t, ts.url(), validParams(t, testNow, "md5", payload)), 41, "isv.invalid-parameter")
	for _, field := range []string{"biz_id", "stage", "insurance_type"} {
		if !strings.Contains(e.SubMsg, field) {
			t.Errorf("sub_msg=%q, want it to name %s", e.SubMsg, field)
		}
	}
	if strings.Contains(e.SubMsg, managerName) {
		t.Errorf("sub_msg=%q repeats the account manager's name", e.SubMsg)
	}
	if e.Msg != "Invalid Arguments" {
		t.Errorf("msg=%q, want Invalid Arguments", e.Msg)
	}
}

func TestEnvelopes(t *testing.T) {
	t.Run("normal", func(t *testing.T) {
		ts := newSim(t, nil)
		a := postForm(t, ts.url(), validParams(t, testNow, "md5", samplePayload))
		if a.status != http.StatusOK || !strings.HasPrefix(a.contentType, "application/json") {
			t.Fatalf("HTTP %d %q, want 200 application/json", a.status, a.contentType)
		}
		r := a.success(t)
		if !r.CallSuccess || r.FailCode != "" || r.FailMessage != "" {
			t.Fatalf("response=%+v, want call_success=true without fail fields", r)
		}
	})
	t.Run("simplify", func(t *testing.T) {
		ts := newSim(t, nil)
		p := validParams(t, testNow, "md5", samplePayload)
		p.Set("simplify", "true")
		resign(t, p, testSecret)
		a := postForm(t, ts.url(), p)
		var r map[string]any
		if err := json.Unmarshal(a.body, &r); err != nil {
			t.Fatalf("decode %s: %v", a.body, err)
		}
		if r["call_success"] != true || len(r) != 2 {
			t.Fatalf("body=%s, want the bare object {call_success:true, request_id}", a.body)
		}
		if id, _ := r["request_id"].(string); len(id) != 13 {
			t.Fatalf("request_id=%v, want 13 characters", r["request_id"])
		}
	})
	t.Run("simplify=false is the normal envelope", func(t *testing.T) {
		ts := newSim(t, nil)
		p := validParams(t, testNow, "md5", samplePayload)
		p.Set("simplify", "false")
		resign(t, p, testSecret)
		if r := postForm(t, ts.url(), p).success(t); !r.CallSuccess {
			t.Fatalf("call_success=false, want true")
		}
	})
	t.Run("errors keep error_response with simplify", func(t *testing.T) {
		ts := newSim(t, nil)
		p := validParams(t, testNow, "md5", samplePayload)
		p.Set("simplify", "true")
		p.Set("v", "3.0")
		resign(t, p, testSecret)
		wantCode(t, postForm(t, ts.url(), p), 34, "")
	})
}

func TestRequestIDsAreUnique(t *testing.T) {
	ts := newSim(t, nil)
	seen := map[string]bool{}
	for i := range 50 {
		a := postForm(t, ts.url(), validParams(t, testNow, "md5", payloadFor("BIZ"+string(rune('A'+i%26)), 1, 1)))
		id := a.success(t).RequestID
		if seen[id] {
			t.Fatalf("request_id %q repeated after %d requests", id, i)
		}
		seen[id] = true
	}
}
