package simulator_test

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"hash"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/top"
	"github.com/insuranceflow/insuranceflow/topsim/simulator"
)

const (
	testAppKey    = "12345678"
	testSecret    = "s3cret-never-logged"
	testMethod    = "taobao.auction.insurance.insuranceresultcallback"
	testRoot      = "auction_insurance_insuranceresultcallback_response"
	managerName   = "王小丫"
	samplePayload = `{"biz_id":"24010900100YSKSSG","policy_number":"12345678A","insurance_company":1,"stage":1,"status":1,` +
		`"time_of_occurrence":"2025-04-08 09:55:00","bank_account_manager_name":"王小丫","insurance_document":"oss:aakkloi122",` +
		`"insurance_type":1,"request_id":"req-0001"}`
)

// beijing is GMT+8, spelled out here rather than taken from package top so
// that the tests check the simulator against the published rule.
var beijing = time.FixedZone("test GMT+8", 8*3600)

// testNow is the simulator's clock unless a test moves it.
var testNow = time.Date(2025, 4, 8, 10, 0, 0, 0, beijing)

// clock is a settable clock for ban tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// signIndependently is the published TOP algorithm, written from the spec
// without package top: drop sign and empty values, sort names bytewise,
// concatenate name+value, digest, upper-case hex.
func signIndependently(t *testing.T, params url.Values, secret, method string) string {
	t.Helper()
	names := make([]string, 0, len(params))
	for name, vs := range params {
		if name == "sign" || len(vs) == 0 || vs[0] == "" {
			continue
		}
		names = append(names, name)
	}
	sort.Strings(names)
	var s strings.Builder
	for _, name := range names {
		s.WriteString(name)
		s.WriteString(params[name][0])
	}
	var h hash.Hash
	switch method {
	case "md5":
		h = md5.New()
		h.Write([]byte(secret + s.String() + secret))
	case "hmac":
		h = hmac.New(md5.New, []byte(secret))
		h.Write([]byte(s.String()))
	case "hmac-sha256":
		h = hmac.New(sha256.New, []byte(secret))
		h.Write([]byte(s.String()))
	default:
		t.Fatalf("signIndependently: unknown method %q", method)
	}
	return strings.ToUpper(hex.EncodeToString(h.Sum(nil)))
}

// validParams is a complete, correctly signed request made at now.
func validParams(t *testing.T, now time.Time, signMethod, payload string) url.Values {
	t.Helper()
	p := url.Values{}
	p.Set("method", testMethod)
	p.Set("app_key", testAppKey)
	p.Set("timestamp", now.In(beijing).Format("2006-01-02 15:04:05"))
	p.Set("format", "json")
	p.Set("v", "2.0")
	p.Set("sign_method", signMethod)
	p.Set("partner_id", "insuranceflow-test")
	p.Set("insurance_result_a_p_i_request", payload)
	resign(t, p, testSecret)
	return p
}

// resign replaces the signature after a test has changed the parameters.
func resign(t *testing.T, p url.Values, secret string) {
	t.Helper()
	p.Del("sign")
	m := p.Get("sign_method")
	if m != "md5" && m != "hmac" && m != "hmac-sha256" {
		m = "md5" // the gateway must refuse the method before the signature
	}
	p.Set("sign", signIndependently(t, p, secret, m))
}

// payloadFor is a valid insurance result for bizID.
func payloadFor(bizID string, stage, status int) string {
	b, _ := json.Marshal(map[string]any{
		"biz_id": bizID, "stage": stage, "status": status,
		"time_of_occurrence": "2025-04-08 09:55:00", "insurance_type": 1,
		"request_id": "req-" + bizID,
	})
	return string(b)
}

type testSim struct {
	sim *simulator.Simulator
	srv *httptest.Server
}

func (ts testSim) url() string { return ts.srv.URL + "/router/rest" }

// newSim starts a simulator on a real HTTP server. edit adjusts the config.
func newSim(t *testing.T, edit func(*simulator.Config)) testSim {
	t.Helper()
	cfg := simulator.Config{
		AppKey:    testAppKey,
		AppSecret: top.Secret(testSecret),
		Now:       func() time.Time { return testNow },
		Seed:      1,
	}
	if edit != nil {
		edit(&cfg)
	}
	sim, err := simulator.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	return testSim{sim: sim, srv: srv}
}

// answer is a decoded gateway response.
type answer struct {
	status      int
	contentType string
	body        []byte
	root        map[string]json.RawMessage
}

type errorResponse struct {
	Code      int    `json:"code"`
	Msg       string `json:"msg"`
	SubCode   string `json:"sub_code"`
	SubMsg    string `json:"sub_msg"`
	RequestID string `json:"request_id"`
}

type callbackResponse struct {
	CallSuccess bool   `json:"call_success"`
	FailCode    string `json:"fail_code"`
	FailMessage string `json:"fail_message"`
	RequestID   string `json:"request_id"`
}

// errorResp returns the error_response, failing the test if there is none.
func (a answer) errorResp(t *testing.T) errorResponse {
	t.Helper()
	raw, ok := a.root["error_response"]
	if !ok || len(a.root) != 1 {
		t.Fatalf("want a lone error_response, got HTTP %d %s", a.status, a.body)
	}
	var e errorResponse
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatalf("decode error_response %s: %v", raw, err)
	}
	return e
}

// success returns the normal-envelope response object.
func (a answer) success(t *testing.T) callbackResponse {
	t.Helper()
	raw, ok := a.root[testRoot]
	if !ok || len(a.root) != 1 {
		t.Fatalf("want a lone %s, got HTTP %d %s", testRoot, a.status, a.body)
	}
	var r callbackResponse
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return r
}

func postForm(t *testing.T, target string, p url.Values) answer {
	t.Helper()
	resp, err := http.PostForm(target, p)
	if err != nil {
		t.Fatalf("POST %s: %v", target, err)
	}
	return readAnswer(t, resp)
}

func readAnswer(t *testing.T, resp *http.Response) answer {
	t.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	a := answer{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), body: body}
	if strings.HasPrefix(a.contentType, "application/json") {
		if err := json.Unmarshal(body, &a.root); err != nil {
			t.Fatalf("body is not a JSON object: %s", body)
		}
	}
	return a
}

// wantCode checks an error answer's code and, when wantSub is set, its sub_code.
func wantCode(t *testing.T, a answer, code int, wantSub string) errorResponse {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("HTTP status=%d, want 200 (TOP errors are HTTP 200)", a.status)
	}
	e := a.errorResp(t)
	if e.Code != code {
		t.Fatalf("code=%d (%s: %s), want %d", e.Code, e.Msg, e.SubMsg, code)
	}
	if e.SubCode != wantSub {
		t.Fatalf("sub_code=%q, want %q", e.SubCode, wantSub)
	}
	if e.Msg == "" {
		t.Fatalf("msg is empty for code %d", e.Code)
	}
	if len(e.RequestID) != 13 {
		t.Fatalf("request_id=%q, want 13 characters", e.RequestID)
	}
	return e
}

func getJSON(t *testing.T, target string, v any) int {
	t.Helper()
	resp, err := http.Get(target)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("decode GET %s: %v", target, err)
	}
	return resp.StatusCode
}
