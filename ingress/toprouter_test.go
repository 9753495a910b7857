package ingress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/top"
	"github.com/insuranceflow/insuranceflow/workflows"
)

const (
	routerKey    = "12345678"
	routerSecret = "router-secret-蓝"
)

// routerNow is the endpoint's clock in these tests, and the clients'.
var routerNow = time.Date(2025, 4, 8, 2, 0, 0, 0, time.UTC)

// countingMetrics counts each Metrics call as "accepted <api>" or
// "rejected <api> <reason>".
type countingMetrics struct {
	mu     sync.Mutex
	counts map[string]int
}

func (m *countingMetrics) add(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.counts == nil {
		m.counts = map[string]int{}
	}
	m.counts[key]++
}

func (m *countingMetrics) EventAccepted(api string)         { m.add("accepted " + api) }
func (m *countingMetrics) EventRejected(api, reason string) { m.add("rejected " + api + " " + reason) }

func (m *countingMetrics) snapshot() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.counts)
}

type routerServer struct {
	url     string
	handler http.Handler
	fake    *fakePolicies
	logs    *syncBuffer
	metrics *countingMetrics
}

func startRouter(t *testing.T, fake *fakePolicies) *routerServer {
	t.Helper()
	logs := &syncBuffer{}
	m := &countingMetrics{}
	srv, err := New(Config{
		Policies:     fake,
		Tokens:       []string{token},
		Logger:       slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		TOPAppKey:    routerKey,
		TOPAppSecret: top.Secret(routerSecret),
		Now:          func() time.Time { return routerNow },
		Metrics:      m,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	t.Cleanup(func() {
		for _, secret := range []string{routerSecret, manager} {
			if strings.Contains(logs.String(), secret) {
				t.Errorf("logs contain %q:\n%s", secret, logs)
			}
		}
	})
	return &routerServer{url: ts.URL, handler: srv.Handler(), fake: fake, logs: logs, metrics: m}
}

// client is the project's own TOP client, pointed at the endpoint.
func (s *routerServer) client(t *testing.T, method top.SignMethod, simplify bool) *top.Client {
	t.Helper()
	c, err := top.New(top.Config{
		GatewayURL: s.url + TOPRouterPath,
		AppKey:     routerKey,
		AppSecret:  top.Secret(routerSecret),
		SignMethod: method,
		Simplify:   simplify,
		Now:        func() time.Time { return routerNow },
	})
	if err != nil {
		t.Fatalf("top.New: %v", err)
	}
	return c
}

// post sends a form as a TOP SDK does and returns the status and body.
func (s *routerServer) post(t *testing.T, query string, form url.Values) (int, []byte) {
	t.Helper()
	target := s.url + TOPRouterPath
	if query != "" {
		target += "?" + query
	}
	resp, err := http.Post(target, top.ContentType, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatalf("POST %s: %v", TOPRouterPath, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode == http.StatusOK && ct != "application/json;charset=UTF-8" {
		t.Fatalf("Content-Type = %q, want TOP's application/json;charset=UTF-8", ct)
	}
	return resp.StatusCode, body
}

func (f *fakePolicies) reports() []insurance.Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]insurance.Result(nil), f.reported...)
}

// routerResult is the event the tests send: an underwrite with every
// optional field, the account manager's name included.
func routerResult() insurance.Result {
	return insurance.Result{
		BizID:                  bizID,
		PolicyNumber:           "12345678A",
		InsuranceCompany:       insurance.CompanyCPIC,
		Stage:                  insurance.StageUnderwrite,
		Status:                 insurance.StatusSuccess,
		TimeOfOccurrence:       "2025-04-08 09:55:00",
		BankAccountManagerName: manager,
		InsuranceDocument:      "oss:aakkloi122",
		InsuranceType:          insurance.TypeHomeProperty,
	}
}

// signedForm is what a TOP SDK posts for r, after edit changed it, signed
// with secret and method.
func signedForm(t testing.TB, r insurance.Result, method top.SignMethod, secret string, edit func(url.Values)) url.Values {
	t.Helper()
	payload, err := r.APIJSON()
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{
		top.ParamMethod:     {top.APIMethod},
		top.ParamAppKey:     {routerKey},
		top.ParamTimestamp:  {top.Timestamp(routerNow)},
		top.ParamFormat:     {top.FormatJSON},
		top.ParamVersion:    {top.Version},
		top.ParamSignMethod: {string(method)},
		top.ParamRequest:    {payload},
	}
	if edit != nil {
		edit(form)
	}
	sign, err := top.Sign(form, top.Secret(secret), method)
	if err != nil {
		t.Fatal(err)
	}
	form.Set(top.ParamSign, sign)
	return form
}

func TestTOPRouterHandlesAnEventLikeTheJSONAPI(t *testing.T) {
	for _, method := range top.SignMethods() {
		for _, simplify := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s simplify=%v", method, simplify), func(t *testing.T) {
				fake := &fakePolicies{acceptance: workflows.Acceptance{BizID: bizID, RequestID: "req-x", Seq: 2,
					Stage: insurance.StageUnderwrite, Status: insurance.StatusSuccess, State: fsm.StateUnderwritten}}
				s := startRouter(t, fake)
				out := s.client(t, method, simplify).Callback(context.Background(), routerResult())
				if out.Class != top.ClassDelivered {
					t.Fatalf("outcome = %s, want delivered", out.Summary())
				}
				if out.RequestID == "" {
					t.Error("the answer has no request_id")
				}

				// The JSON API, sent the same event, hands Report the same value.
				payload, _ := routerResult().APIJSON()
				r := (&testServer{url: s.url}).do(t, http.MethodPost, "/v1/insurance-results", payload, nil)
				if r.status != http.StatusAccepted {
					t.Fatalf("JSON report status = %d, want 202 (%s)", r.status, r.raw)
				}
				got := fake.reports()
				if len(got) != 2 {
					t.Fatalf("Report called %d times, want 2", len(got))
				}
				if !reflect.DeepEqual(got[0], got[1]) {
					t.Fatalf("Report got\n%+v through /router/rest and\n%+v through /v1/insurance-results; want the same", got[0], got[1])
				}
				if got[0].BankAccountManagerName != manager || got[0].InsuranceDocument != "oss:aakkloi122" || got[0].Stage != insurance.StageUnderwrite {
					t.Errorf("reported %+v, want every field of the sent event", got[0])
				}
				if m := s.metrics.snapshot(); m["accepted top"] != 1 || m["accepted json"] != 1 || len(m) != 2 {
					t.Errorf("metrics = %v, want one accepted per API", m)
				}
			})
		}
	}
}

func TestTOPRouterEnvelopes(t *testing.T) {
	s := startRouter(t, &fakePolicies{})
	form := signedForm(t, routerResult(), top.SignHMACSHA256, routerSecret, nil)

	t.Run("normal", func(t *testing.T) {
		_, body := s.post(t, "", form)
		var env map[string]map[string]any
		if err := json.Unmarshal(body, &env); err != nil {
			t.Fatalf("body %s: %v", body, err)
		}
		resp, ok := env["auction_insurance_insuranceresultcallback_response"]
		if len(env) != 1 || !ok {
			t.Fatalf("body %s, want only auction_insurance_insuranceresultcallback_response", body)
		}
		if resp["call_success"] != true || resp["request_id"] == "" || resp["fail_code"] != nil {
			t.Errorf("response = %v, want call_success true with a request_id and no fail_code", resp)
		}
	})
	t.Run("simplify", func(t *testing.T) {
		simple := signedForm(t, routerResult(), top.SignHMACSHA256, routerSecret, func(v url.Values) { v.Set(top.ParamSimplify, "true") })
		_, body := s.post(t, "", simple)
		var resp map[string]any
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Fatalf("body %s: %v", body, err)
		}
		if resp["call_success"] != true || resp["request_id"] == "" {
			t.Errorf("simplified response = %s, want call_success true at the root with a request_id", body)
		}
	})
	t.Run("system parameters in the query, the event in the body", func(t *testing.T) {
		query, bodyForm := url.Values{}, url.Values{}
		for name := range form {
			if name == top.ParamRequest {
				bodyForm.Set(name, form.Get(name))
			} else {
				query.Set(name, form.Get(name))
			}
		}
		_, body := s.post(t, query.Encode(), bodyForm)
		if out := top.ParseResponse(http.StatusOK, body, false); out.Class != top.ClassDelivered {
			t.Fatalf("split request: %s (%s), want delivered", out.Summary(), body)
		}
	})
	t.Run("every request_id differs", func(t *testing.T) {
		_, a := s.post(t, "", form)
		_, b := s.post(t, "", form)
		ra := top.ParseResponse(http.StatusOK, a, false).RequestID
		rb := top.ParseResponse(http.StatusOK, b, false).RequestID
		if ra == "" || ra == rb {
			t.Errorf("request_ids %q and %q, want two different ones", ra, rb)
		}
		if !strings.Contains(s.logs.String(), `"top_request_id":"`+rb+`"`) {
			t.Errorf("no log line names request_id %s:\n%s", rb, s.logs)
		}
	})
}

func TestTOPRouterAnswersRefusalsWithCallSuccessFalse(t *testing.T) {
	tests := []struct {
		name        string
		err         error
		failCode    string
		messageHas  string
		metricsKey  string
		acceptance  workflows.Acceptance
		wantSuccess bool
	}{
		{
			name: "illegal transition",
			err: &policyclient.Rejection{Reason: workflows.ReasonIllegalTransition, Message: "stage underwrite is not allowed in state new",
				Details: &workflows.IllegalTransitionDetails{State: fsm.StateNew, Stage: "underwrite", AllowedStages: []string{"pre_insure"}}},
			failCode:   "ILLEGAL_TRANSITION",
			messageHas: "stage underwrite is not allowed in state new; allowed stages: pre_insure",
			metricsKey: "rejected top illegal_transition",
		},
		{
			name: "illegal transition in a final state",
			err: &policyclient.Rejection{Reason: workflows.ReasonIllegalTransition, Message: "stage endorse is not allowed in state cancelled",
				Details: &workflows.IllegalTransitionDetails{State: fsm.StateCancelled, Stage: "endorse"}},
			failCode:   "ILLEGAL_TRANSITION",
			messageHas: "no stage is allowed in state cancelled",
			metricsKey: "rejected top illegal_transition",
		},
		{
			name:       "insurance type mismatch",
			err:        &policyclient.Rejection{Reason: workflows.ReasonInsuranceTypeMismatch, Message: "the policy is home_property, the event says performance_bond"},
			failCode:   "INSURANCE_TYPE_MISMATCH",
			messageHas: "the policy is home_property",
			metricsKey: "rejected top insurance_type_mismatch",
		},
		{
			name:       "time went backwards",
			err:        &policyclient.Rejection{Reason: workflows.ReasonTimeWentBackwards, Message: "time_of_occurrence is before the last event's"},
			failCode:   "TIME_WENT_BACKWARDS",
			messageHas: "before the last event",
			metricsKey: "rejected top time_went_backwards",
		},
		{
			name:       "invalid request from the workflow",
			err:        &policyclient.Rejection{Reason: workflows.ReasonInvalidRequest, Message: "request_id is too long"},
			failCode:   "INVALID_REQUEST",
			messageHas: "request_id is too long",
			metricsKey: "rejected top invalid_request",
		},
		{
			name:       "invalid result from the policy client",
			err:        &insurance.ValidationError{Problems: []insurance.FieldError{{Field: "request_id", Message: "must be at most 64 characters"}}},
			failCode:   "INVALID_REQUEST",
			messageHas: "request_id: must be at most 64 characters",
			metricsKey: "rejected top invalid_request",
		},
		{
			name:        "duplicate is a success",
			acceptance:  workflows.Acceptance{BizID: bizID, Seq: 1, Duplicate: true},
			wantSuccess: true,
			metricsKey:  "rejected top duplicate",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startRouter(t, &fakePolicies{err: tt.err, acceptance: tt.acceptance})
			out := s.client(t, top.SignMD5, false).Callback(context.Background(), routerResult())
			if tt.wantSuccess {
				if out.Class != top.ClassDelivered {
					t.Fatalf("outcome = %s, want delivered", out.Summary())
				}
			} else {
				if out.Class != top.ClassRejected || out.FailCode != tt.failCode || !strings.Contains(out.FailMessage, tt.messageHas) {
					t.Fatalf("outcome = %s, want rejected %s with a message containing %q", out.Summary(), tt.failCode, tt.messageHas)
				}
				if out.RequestID == "" {
					t.Error("a refusal has no request_id")
				}
			}
			if m := s.metrics.snapshot(); m[tt.metricsKey] != 1 || len(m) != 1 {
				t.Errorf("metrics = %v, want only %q once", m, tt.metricsKey)
			}
		})
	}
}

func TestTOPRouterServiceFailuresAreRetryable(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		subCode string
		metrics string
	}{
		{"temporal unavailable", fmt.Errorf("report: %w", policyclient.ErrUnavailable), subCodeServiceUnavailable, "rejected top unavailable"},
		{"no answer in time", context.DeadlineExceeded, subCodeServiceTimeout, "rejected top unavailable"},
		{"anything else", errors.New("database password=hunter2 refused"), subCodeServiceError, "rejected top internal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startRouter(t, &fakePolicies{err: tt.err})
			out := s.client(t, top.SignHMAC, false).Callback(context.Background(), routerResult())
			if out.Class != top.ClassRetryable || out.Code != top.CodeRemoteServiceError || out.SubCode != tt.subCode {
				t.Fatalf("outcome = %s, want retryable code 15 %s", out.Summary(), tt.subCode)
			}
			if strings.Contains(out.SubMsg, "hunter2") {
				t.Errorf("sub_msg %q repeats the internal error", out.SubMsg)
			}
			if !strings.Contains(s.logs.String(), `"msg":"request failed"`) {
				t.Errorf("the failure was not logged:\n%s", s.logs)
			}
			if m := s.metrics.snapshot(); m[tt.metrics] != 1 || len(m) != 1 {
				t.Errorf("metrics = %v, want only %q once", m, tt.metrics)
			}
		})
	}
}

func TestTOPRouterProtocolErrors(t *testing.T) {
	valid := func(edit func(url.Values)) func(t *testing.T) url.Values {
		return func(t *testing.T) url.Values {
			return signedForm(t, routerResult(), top.SignHMACSHA256, routerSecret, edit)
		}
	}
	// afterSigning changes a correctly signed form, as a proxy or an
	// attacker would.
	afterSigning := func(edit func(url.Values)) func(t *testing.T) url.Values {
		return func(t *testing.T) url.Values {
			form := signedForm(t, routerResult(), top.SignHMACSHA256, routerSecret, nil)
			edit(form)
			return form
		}
	}
	set := func(name, value string) func(url.Values) { return func(v url.Values) { v.Set(name, value) } }
	del := func(name string) func(url.Values) { return func(v url.Values) { v.Del(name) } }

	tests := []struct {
		name    string
		form    func(t *testing.T) url.Values
		code    int
		subCode string
		subMsg  string
		class   top.Class
		// authenticated: the request passed the signature, so the event
		// counts as rejected.
		authenticated bool
	}{
		{name: "missing method", form: valid(del(top.ParamMethod)), code: 21, class: top.ClassPermanent},
		{name: "another method", form: valid(set(top.ParamMethod, "taobao.item.get")), code: 22, subMsg: `"taobao.item.get"`, class: top.ClassPermanent},
		{name: "missing app_key", form: valid(del(top.ParamAppKey)), code: 28, class: top.ClassPermanent},
		{name: "unknown app_key", form: valid(set(top.ParamAppKey, "87654321")), code: 29, subCode: "isv.appkey-not-exists", class: top.ClassPermanent},
		{name: "missing v", form: valid(del(top.ParamVersion)), code: 32, class: top.ClassPermanent},
		{name: "old v", form: valid(set(top.ParamVersion, "1.0")), code: 34, class: top.ClassPermanent},
		{name: "v that is no version", form: valid(set(top.ParamVersion, "two")), code: 33, class: top.ClassPermanent},
		{name: "missing format", form: valid(del(top.ParamFormat)), code: 23, class: top.ClassPermanent},
		{name: "xml", form: valid(set(top.ParamFormat, "xml")), code: 23, class: top.ClassPermanent},
		{name: "missing sign_method", form: afterSigning(del(top.ParamSignMethod)), code: 25, class: top.ClassPermanent},
		{name: "unknown sign_method", form: afterSigning(set(top.ParamSignMethod, "sha1")), code: 25, class: top.ClassPermanent},
		{name: "upper-case sign_method", form: afterSigning(set(top.ParamSignMethod, "MD5")), code: 25, class: top.ClassPermanent},
		{name: "missing timestamp", form: valid(del(top.ParamTimestamp)), code: 30, class: top.ClassPermanent},
		{name: "unreadable timestamp", form: valid(set(top.ParamTimestamp, "2025-04-08T10:00:00Z")), code: 31, class: top.ClassPermanent},
		{name: "clock 11 minutes ahead", form: valid(set(top.ParamTimestamp, top.Timestamp(routerNow.Add(11*time.Minute)))), code: 31, subMsg: "11m0s", class: top.ClassPermanent},
		{name: "clock 11 minutes behind", form: valid(set(top.ParamTimestamp, top.Timestamp(routerNow.Add(-11*time.Minute)))), code: 31, class: top.ClassPermanent},
		{name: "missing sign", form: afterSigning(del(top.ParamSign)), code: 24, class: top.ClassPermanent},
		{name: "signed with another secret", form: func(t *testing.T) url.Values {
			return signedForm(t, routerResult(), top.SignHMACSHA256, "another-secret", nil)
		}, code: 25, class: top.ClassPermanent},
		{name: "event changed after signing", form: afterSigning(func(v url.Values) {
			v.Set(top.ParamRequest, strings.Replace(v.Get(top.ParamRequest), `"stage":2`, `"stage":3`, 1))
		}), code: 25, class: top.ClassPermanent},
		{name: "lower-case signature", form: afterSigning(func(v url.Values) { v.Set(top.ParamSign, strings.ToLower(v.Get(top.ParamSign))) }),
			code: 25, class: top.ClassPermanent},
		{name: "parameter sent twice", form: afterSigning(func(v url.Values) { v.Add(top.ParamAppKey, routerKey) }),
			code: 43, subCode: "isv.invalid-parameter", subMsg: `"app_key" is sent 2 times`, class: top.ClassPermanent},
		{name: "simplify neither true nor false", form: valid(set(top.ParamSimplify, "yes")),
			code: 41, subCode: "isv.invalid-parameter", class: top.ClassPermanent, authenticated: true},
		{name: "missing event", form: valid(del(top.ParamRequest)),
			code: 40, subCode: "isv.missing-parameter:insurance_result_a_p_i_request", class: top.ClassPermanent, authenticated: true},
		{name: "event that is not JSON", form: valid(set(top.ParamRequest, "biz_id="+bizID)),
			code: 41, subCode: "isv.invalid-parameter", subMsg: "insurance_result_a_p_i_request is invalid: body:", class: top.ClassPermanent, authenticated: true},
		{name: "event missing its stage", form: valid(set(top.ParamRequest,
			`{"biz_id":"`+bizID+`","status":1,"time_of_occurrence":"2025-04-08 09:55:00","insurance_type":1,"bank_account_manager_name":"`+manager+`"}`)),
			code: 41, subCode: "isv.invalid-parameter", subMsg: "stage: ", class: top.ClassPermanent, authenticated: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startRouter(t, &fakePolicies{})
			status, body := s.post(t, "", tt.form(t))
			if status != http.StatusOK {
				t.Fatalf("HTTP status = %d, want 200 as a gateway answers (body %s)", status, body)
			}
			var env struct {
				ErrorResponse *top.ErrorResponse `json:"error_response"`
			}
			if err := json.Unmarshal(body, &env); err != nil || env.ErrorResponse == nil {
				t.Fatalf("body %s is not an error_response (%v)", body, err)
			}
			e := env.ErrorResponse
			if e.Code != tt.code || e.SubCode != tt.subCode || e.Msg != top.CodeMessage(tt.code) || e.RequestID == "" {
				t.Fatalf("error_response = %+v, want code %d (%s) sub_code %q with a request_id", *e, tt.code, top.CodeMessage(tt.code), tt.subCode)
			}
			if !strings.Contains(e.SubMsg, tt.subMsg) {
				t.Errorf("sub_msg = %q, want it to contain %q", e.SubMsg, tt.subMsg)
			}
			for _, secret := range []string{routerSecret, manager} {
				if strings.Contains(string(body), secret) {
					t.Errorf("answer %s repeats %q", body, secret)
				}
			}
			if out := top.ParseResponse(status, body, false); out.Class != tt.class {
				t.Errorf("a TOP client classifies the answer %s, want %s", out.Class, tt.class)
			}
			if n := len(s.fake.reports()); n != 0 {
				t.Fatalf("Report called %d times for a refused request, want 0", n)
			}
			want := map[string]int{}
			if tt.authenticated {
				want["rejected top invalid_request"] = 1
			}
			if got := s.metrics.snapshot(); !maps.Equal(got, want) {
				t.Errorf("metrics = %v, want %v", got, want)
			}
		})
	}

	t.Run("body too large", func(t *testing.T) {
		s := startRouter(t, &fakePolicies{})
		form := signedForm(t, routerResult(), top.SignMD5, routerSecret, nil)
		form.Set("padding", strings.Repeat("x", maxTOPFormBytes))
		_, body := s.post(t, "", form)
		out := top.ParseResponse(http.StatusOK, body, false)
		if out.Code != top.CodeParameterError || !strings.Contains(out.SubMsg, "larger than") {
			t.Fatalf("oversized request: %s, want code 43 naming the size", out.Summary())
		}
	})
	t.Run("a clock 9 minutes off is still accepted", func(t *testing.T) {
		s := startRouter(t, &fakePolicies{})
		for _, d := range []time.Duration{9 * time.Minute, -9 * time.Minute} {
			form := signedForm(t, routerResult(), top.SignMD5, routerSecret, set(top.ParamTimestamp, top.Timestamp(routerNow.Add(d))))
			_, body := s.post(t, "", form)
			if out := top.ParseResponse(http.StatusOK, body, false); out.Class != top.ClassDelivered {
				t.Errorf("skew %v: %s, want delivered", d, out.Summary())
			}
		}
	})
}

func TestTOPRouterIsOffWithoutCredentials(t *testing.T) {
	s := start(t, &fakePolicies{}, nil)
	r := s.do(t, http.MethodPost, TOPRouterPath, "", map[string]string{"Content-Type": top.ContentType, "Authorization": ""})
	wantError(t, r, http.StatusNotFound, codeNotFound)

	t.Run("wrong method when on", func(t *testing.T) {
		rs := startRouter(t, &fakePolicies{})
		r := (&testServer{url: rs.url}).do(t, http.MethodGet, TOPRouterPath, "", map[string]string{"Authorization": ""})
		wantError(t, r, http.StatusMethodNotAllowed, "method_not_allowed")
		if allow := r.header.Get("Allow"); allow != http.MethodPost {
			t.Errorf("Allow = %q, want POST", allow)
		}
	})
	t.Run("one credential without the other", func(t *testing.T) {
		for _, tt := range []struct {
			name  string
			key   string
			sec   top.Secret
			field string
		}{
			{"key only", routerKey, "", "TOPAppSecret"},
			{"secret only", "", top.Secret(routerSecret), "TOPAppKey"},
			{"blank secret", routerKey, "   ", "TOPAppSecret"},
		} {
			_, err := New(Config{Policies: &fakePolicies{}, Tokens: []string{token}, TOPAppKey: tt.key, TOPAppSecret: tt.sec})
			var cerr *ConfigError
			if !errors.As(err, &cerr) || cerr.Field != tt.field {
				t.Errorf("%s: New = %v, want a ConfigError for %s", tt.name, err, tt.field)
			}
			if err != nil && strings.Contains(err.Error(), routerSecret) {
				t.Errorf("%s: error %q shows the secret", tt.name, err)
			}
		}
	})
}

func TestJSONReportMetrics(t *testing.T) {
	tests := []struct {
		name    string
		fake    *fakePolicies
		body    string
		headers map[string]string
		status  int
		want    map[string]int
	}{
		{"accepted", &fakePolicies{acceptance: workflows.Acceptance{BizID: bizID, Seq: 1}}, eventJSON(nil), nil,
			http.StatusAccepted, map[string]int{"accepted json": 1}},
		{"duplicate", &fakePolicies{acceptance: workflows.Acceptance{BizID: bizID, Seq: 1, Duplicate: true}}, eventJSON(nil), nil,
			http.StatusOK, map[string]int{"rejected json duplicate": 1}},
		{"illegal transition", &fakePolicies{err: &policyclient.Rejection{Reason: workflows.ReasonIllegalTransition, Message: "no"}}, eventJSON(nil), nil,
			http.StatusConflict, map[string]int{"rejected json illegal_transition": 1}},
		{"invalid event", &fakePolicies{}, eventJSON(map[string]any{"stage": 9}), nil,
			http.StatusBadRequest, map[string]int{"rejected json invalid_request": 1}},
		{"not JSON", &fakePolicies{}, "stage=1", map[string]string{"Content-Type": "text/plain"},
			http.StatusUnsupportedMediaType, map[string]int{"rejected json invalid_request": 1}},
		{"temporal unavailable", &fakePolicies{err: policyclient.ErrUnavailable}, eventJSON(nil), nil,
			http.StatusServiceUnavailable, map[string]int{"rejected json unavailable": 1}},
		{"internal", &fakePolicies{err: errors.New("boom")}, eventJSON(nil), nil,
			http.StatusInternalServerError, map[string]int{"rejected json internal": 1}},
		{"unauthenticated is not an event", &fakePolicies{}, eventJSON(nil), map[string]string{"Authorization": "Bearer nope"},
			http.StatusUnauthorized, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startRouter(t, tt.fake)
			r := (&testServer{url: s.url}).do(t, http.MethodPost, "/v1/insurance-results", tt.body, tt.headers)
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d (%s)", r.status, tt.status, r.raw)
			}
			if got := s.metrics.snapshot(); !maps.Equal(got, tt.want) {
				t.Fatalf("metrics = %v, want %v", got, tt.want)
			}
		})
	}
}
