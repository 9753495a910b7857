package ingress

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/auth"
	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/workflows"
)

const (
	bizID      = "24010900100YSKSSG"
	token      = "s3cret-token-one"
	otherToken = "s3cret-token-two"
	manager    = "王小丫"
)

// fakePolicies answers like policyclient.Client would, from fields set by
// each test, and records what it was asked.
type fakePolicies struct {
	mu sync.Mutex

	acceptance workflows.Acceptance
	status     workflows.Status
	page       policyclient.ListPage
	operator   workflows.OperatorResult
	actions    []policyclient.OperatorActionView
	lost       []policyclient.LostNotificationView
	err        error

	reported []insurance.Result
	statused []string
	listed   []policyclient.ListFilter
	operated []string // "retry <biz_id> <reason>" or "skip ..."
	deadline bool     // whether the last call's context had a deadline
}

var _ Policies = (*fakePolicies)(nil)

func (f *fakePolicies) note(ctx context.Context) {
	_, f.deadline = ctx.Deadline()
}

func (f *fakePolicies) Report(ctx context.Context, r insurance.Result) (workflows.Acceptance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.note(ctx)
	f.reported = append(f.reported, r)
	return f.acceptance, f.err
}

func (f *fakePolicies) Status(ctx context.Context, bizID string) (workflows.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.note(ctx)
	f.statused = append(f.statused, bizID)
	return f.status, f.err
}

func (f *fakePolicies) List(ctx context.Context, filter policyclient.ListFilter) (policyclient.ListPage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.note(ctx)
	f.listed = append(f.listed, filter)
	return f.page, f.err
}

func (f *fakePolicies) Retry(ctx context.Context, bizID string, req workflows.OperatorRequest) (workflows.OperatorResult, error) {
	reason := fmt.Sprintf("seq=%d %s", req.Seq, req.Reason)
	if req.RequestID != "" {
		reason += " [" + req.RequestID + "]"
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.note(ctx)
	f.operated = append(f.operated, "retry "+bizID+" by "+req.By+": "+reason)
	return f.operator, f.err
}

func (f *fakePolicies) Skip(ctx context.Context, bizID string, req workflows.OperatorRequest) (workflows.OperatorResult, error) {
	reason := fmt.Sprintf("seq=%d %s", req.Seq, req.Reason)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.note(ctx)
	f.operated = append(f.operated, "skip "+bizID+" by "+req.By+": "+reason)
	return f.operator, f.err
}

func (f *fakePolicies) LostNotifications(ctx context.Context, _ string) ([]policyclient.LostNotificationView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.note(ctx)
	if f.lost == nil {
		return []policyclient.LostNotificationView{}, f.err
	}
	return f.lost, f.err
}

func (f *fakePolicies) OperatorActions(ctx context.Context, bizID string) ([]policyclient.OperatorActionView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.note(ctx)
	if f.actions == nil {
		// As the real client: an empty trail, never nil.
		return []policyclient.OperatorActionView{}, f.err
	}
	return f.actions, f.err
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns the JSON log records.
func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		out = append(out, rec)
	}
	return out
}

type testServer struct {
	url  string
	fake *fakePolicies
	logs *syncBuffer
}

func start(t *testing.T, fake *fakePolicies, ready func(context.Context) error) *testServer {
	t.Helper()
	logs := &syncBuffer{}
	srv, err := New(Config{
		Policies: fake,
		Tokens:   []string{token, otherToken},
		Ready:    ready,
		Logger:   slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &testServer{url: ts.URL, fake: fake, logs: logs}
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// do sends a request with the test token (unless the headers say
// otherwise) and decodes the JSON answer.
func (s *testServer) do(t *testing.T, method, path, body string, headers map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if method != http.MethodHead {
		if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
			t.Fatalf("%s %s: Content-Type=%q, want application/json; charset=utf-8 (body %s)", method, path, ct, raw)
		}
		if err := json.Unmarshal(raw, &r.body); err != nil {
			t.Fatalf("%s %s: body %q is not a JSON object: %v", method, path, raw, err)
		}
	}
	return r
}

// wantError checks the one error shape: {"error": {"code", "message", ...}}
// and nothing beside it, and returns the inner object.
func wantError(t *testing.T, r response, status int, code string) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status=%d, want %d (body %s)", r.status, status, r.raw)
	}
	if len(r.body) != 1 {
		t.Fatalf("error body has keys %v, want only \"error\" (body %s)", keys(r.body), r.raw)
	}
	e, ok := r.body["error"].(map[string]any)
	if !ok {
		t.Fatalf("body %s has no error object", r.raw)
	}
	if e["code"] != code {
		t.Fatalf("error code=%v, want %q (body %s)", e["code"], code, r.raw)
	}
	if msg, _ := e["message"].(string); msg == "" {
		t.Fatalf("error has no message (body %s)", r.raw)
	}
	return e
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func eventJSON(overrides map[string]any) string {
	ev := map[string]any{
		"biz_id":                    bizID,
		"policy_number":             "12345678A",
		"stage":                     2,
		"status":                    1,
		"time_of_occurrence":        "2025-04-08 09:55:00",
		"bank_account_manager_name": manager,
		"insurance_type":            1,
		"request_id":                "req-2",
	}
	for k, v := range overrides {
		if v == nil {
			delete(ev, k)
		} else {
			ev[k] = v
		}
	}
	b, _ := json.Marshal(ev)
	return string(b)
}

func TestNewRefusesUnusableConfig(t *testing.T) {
	tests := []struct {
		name      string
		cfg       Config
		wantField string
	}{
		{"no policies", Config{Tokens: []string{token}}, "Policies"},
		{"no tokens", Config{Policies: &fakePolicies{}}, "Tokens"},
		{"empty token", Config{Policies: &fakePolicies{}, Tokens: []string{token, " "}}, "Tokens"},
		{"negative timeout", Config{Policies: &fakePolicies{}, Tokens: []string{token}, CallTimeout: -time.Second}, "CallTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			var cerr *ConfigError
			if !errors.As(err, &cerr) || cerr.Field != tt.wantField {
				t.Fatalf("err=%v, want *ConfigError for %s", err, tt.wantField)
			}
			if strings.Contains(err.Error(), token) {
				t.Fatalf("error %q repeats a token", err)
			}
		})
	}
}

func TestAuthentication(t *testing.T) {
	s := start(t, &fakePolicies{acceptance: workflows.Acceptance{BizID: bizID}}, nil)
	routes := []struct{ method, path string }{
		{"POST", "/v1/insurance-results"},
		{"GET", "/v1/policies"},
		{"GET", "/v1/policies/" + bizID},
		{"POST", "/v1/policies/" + bizID + "/callbacks/retry"},
		{"POST", "/v1/policies/" + bizID + "/callbacks/skip"},
		{"DELETE", "/v1/policies/" + bizID}, // wrong method: still 401 first
		{"GET", "/v1/no-such-thing"},        // unknown: still 401 first
	}
	headers := []struct {
		name          string
		authorization string
		wantChallenge string
	}{
		{"no header", "", `Bearer realm="insuranceflow"`},
		{"basic scheme", "Basic " + token, `Bearer realm="insuranceflow"`},
		{"empty bearer", "Bearer ", `Bearer realm="insuranceflow"`},
		{"wrong token", "Bearer not-the-token", `Bearer realm="insuranceflow", error="invalid_token"`},
		{"token prefix", "Bearer " + token[:len(token)-1], `Bearer realm="insuranceflow", error="invalid_token"`},
	}
	for _, rt := range routes {
		for _, h := range headers {
			t.Run(rt.method+" "+rt.path+" "+h.name, func(t *testing.T) {
				r := s.do(t, rt.method, rt.path, eventJSON(nil), map[string]string{"Authorization": h.authorization})
				wantError(t, r, http.StatusUnauthorized, "unauthorized")
				if got := r.header.Get("WWW-Authenticate"); got != h.wantChallenge {
					t.Fatalf("WWW-Authenticate=%q, want %q", got, h.wantChallenge)
				}
			})
		}
	}
	if n := len(s.fake.reported) + len(s.fake.statused) + len(s.fake.listed) + len(s.fake.operated); n != 0 {
		t.Fatalf("unauthenticated requests reached the policy client %d times", n)
	}

	t.Run("either configured token works", func(t *testing.T) {
		for _, tok := range []string{token, otherToken} {
			r := s.do(t, "POST", "/v1/insurance-results", eventJSON(nil), map[string]string{"Authorization": "bearer " + tok})
			if r.status != http.StatusAccepted {
				t.Fatalf("status=%d, want 202 (body %s)", r.status, r.raw)
			}
		}
	})
	t.Run("probes need no token", func(t *testing.T) {
		for _, path := range []string{"/healthz", "/readyz"} {
			r := s.do(t, "GET", path, "", map[string]string{"Authorization": ""})
			if r.status != http.StatusOK {
				t.Fatalf("%s status=%d, want 200", path, r.status)
			}
		}
	})
}

func TestReport(t *testing.T) {
	accepted := workflows.Acceptance{BizID: bizID, RequestID: "req-2", Seq: 2, Stage: insurance.StageUnderwrite,
		Status: insurance.StatusSuccess, State: fsm.StateUnderwritten}

	t.Run("accepted is 202 with names", func(t *testing.T) {
		s := start(t, &fakePolicies{acceptance: accepted}, nil)
		r := s.do(t, "POST", "/v1/insurance-results", eventJSON(nil), nil)
		if r.status != http.StatusAccepted {
			t.Fatalf("status=%d, want 202 (body %s)", r.status, r.raw)
		}
		want := map[string]any{"biz_id": bizID, "request_id": "req-2", "seq": float64(2), "stage": "underwrite",
			"status": "success", "state": "underwritten", "duplicate": false}
		if !reflect.DeepEqual(r.body, want) {
			t.Fatalf("body=%v, want %v", r.body, want)
		}
		wantEvent := insurance.Result{BizID: bizID, PolicyNumber: "12345678A", Stage: insurance.StageUnderwrite,
			Status: insurance.StatusSuccess, TimeOfOccurrence: "2025-04-08 09:55:00", BankAccountManagerName: manager,
			InsuranceType: insurance.TypeHomeProperty, RequestID: "req-2"}
		if len(s.fake.reported) != 1 || s.fake.reported[0] != wantEvent {
			t.Fatalf("reported=%v, want [%v]", s.fake.reported, wantEvent)
		}
		if !s.fake.deadline {
			t.Fatalf("the policy client was called without a deadline")
		}
	})
	t.Run("duplicate is 200 with the original acceptance", func(t *testing.T) {
		dup := accepted
		dup.Duplicate = true
		s := start(t, &fakePolicies{acceptance: dup}, nil)
		r := s.do(t, "POST", "/v1/insurance-results", eventJSON(nil), nil)
		if r.status != http.StatusOK || r.body["duplicate"] != true || r.body["seq"] != float64(2) {
			t.Fatalf("status=%d body=%v, want 200 with duplicate true and seq 2", r.status, r.body)
		}
	})
	t.Run("a +json media type with utf-8 is JSON", func(t *testing.T) {
		s := start(t, &fakePolicies{acceptance: accepted}, nil)
		r := s.do(t, "POST", "/v1/insurance-results", eventJSON(nil), map[string]string{"Content-Type": "application/vnd.insuranceflow+json; charset=UTF-8"})
		if r.status != http.StatusAccepted {
			t.Fatalf("status=%d, want 202 (body %s)", r.status, r.raw)
		}
	})

	t.Run("invalid event is 400 with every field problem", func(t *testing.T) {
		s := start(t, &fakePolicies{}, nil)
		r := s.do(t, "POST", "/v1/insurance-results", eventJSON(map[string]any{"stage": 9, "time_of_occurrence": nil}), nil)
		e := wantError(t, r, http.StatusBadRequest, "invalid_request")
		fields, _ := e["fields"].([]any)
		var got []string
		for _, f := range fields {
			fe := f.(map[string]any)
			got = append(got, fe["field"].(string))
			if fe["message"] == "" {
				t.Errorf("field %v has no message", fe["field"])
			}
		}
		if want := []string{"stage", "time_of_occurrence"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("fields=%v, want %v (body %s)", got, want, r.raw)
		}
		if len(s.fake.reported) != 0 {
			t.Fatalf("an invalid event reached the policy client")
		}
	})
	t.Run("body over 64 KiB is 413", func(t *testing.T) {
		s := start(t, &fakePolicies{}, nil)
		big := eventJSON(map[string]any{"insurance_document": strings.Repeat("x", insurance.MaxBodyBytes)})
		wantError(t, s.do(t, "POST", "/v1/insurance-results", big, nil), http.StatusRequestEntityTooLarge, "payload_too_large")
	})
	mediaTypes := []struct{ name, contentType string }{
		{"missing", ""},
		{"form", "application/x-www-form-urlencoded"},
		{"text", "text/plain"},
		{"latin-1 JSON", "application/json; charset=iso-8859-1"},
		{"malformed", "application/json; charset"},
	}
	for _, mt := range mediaTypes {
		t.Run("content type "+mt.name+" is 415", func(t *testing.T) {
			s := start(t, &fakePolicies{}, nil)
			r := s.do(t, "POST", "/v1/insurance-results", eventJSON(nil), map[string]string{"Content-Type": mt.contentType})
			wantError(t, r, http.StatusUnsupportedMediaType, "unsupported_media_type")
		})
	}

	rejections := []struct {
		name       string
		err        error
		wantStatus int
		wantCode   string
		wantExtra  map[string]any
	}{
		{
			name: "illegal transition",
			err: &policyclient.Rejection{Reason: workflows.ReasonIllegalTransition, Message: "stage insure is not allowed in state new (allowed: pre_insure)",
				Details: &workflows.IllegalTransitionDetails{State: fsm.StateNew, Stage: "insure", AllowedStages: []string{"pre_insure"}}},
			wantStatus: http.StatusConflict, wantCode: "illegal_transition",
			wantExtra: map[string]any{"state": "new", "stage": "insure", "allowed_stages": []any{"pre_insure"}},
		},
		{
			name: "illegal transition on a cancelled policy lists no stages",
			err: &policyclient.Rejection{Reason: workflows.ReasonIllegalTransition, Message: "stage endorse is not allowed in state cancelled",
				Details: &workflows.IllegalTransitionDetails{State: fsm.StateCancelled, Stage: "endorse"}},
			wantStatus: http.StatusConflict, wantCode: "illegal_transition",
			wantExtra: map[string]any{"state": "cancelled", "stage": "endorse", "allowed_stages": []any{}},
		},
		{"insurance type mismatch", &policyclient.Rejection{Reason: workflows.ReasonInsuranceTypeMismatch, Message: "insurance_type performance_bond does not match"}, http.StatusConflict, "insurance_type_mismatch", nil},
		{"policy number mismatch", &policyclient.Rejection{Reason: workflows.ReasonPolicyNumberMismatch, Message: "policy_number does not match"}, http.StatusConflict, "policy_number_mismatch", nil},
		{"time went backwards", &policyclient.Rejection{Reason: workflows.ReasonTimeWentBackwards, Message: "time_of_occurrence is earlier"}, http.StatusConflict, "time_went_backwards", nil},
		{"workflow says invalid", &policyclient.Rejection{Reason: workflows.ReasonInvalidRequest, Message: "biz_id does not belong here"}, http.StatusBadRequest, "invalid_request", nil},
	}
	for _, tt := range rejections {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t, &fakePolicies{err: fmt.Errorf("report: %w", tt.err)}, nil)
			e := wantError(t, s.do(t, "POST", "/v1/insurance-results", eventJSON(nil), nil), tt.wantStatus, tt.wantCode)
			var rej *policyclient.Rejection
			errors.As(tt.err, &rej)
			if e["message"] != rej.Message {
				t.Errorf("message=%v, want %q", e["message"], rej.Message)
			}
			for k, want := range tt.wantExtra {
				if !reflect.DeepEqual(e[k], want) {
					t.Errorf("%s=%#v, want %#v", k, e[k], want)
				}
			}
			if tt.wantExtra == nil {
				for _, k := range []string{"state", "stage", "allowed_stages", "fields"} {
					if _, ok := e[k]; ok {
						t.Errorf("%s error carries %q", tt.wantCode, k)
					}
				}
			}
		})
	}

	t.Run("temporal unreachable is 503 with Retry-After", func(t *testing.T) {
		s := start(t, &fakePolicies{err: fmt.Errorf("report event: %w: connection refused", policyclient.ErrUnavailable)}, nil)
		r := s.do(t, "POST", "/v1/insurance-results", eventJSON(nil), nil)
		wantError(t, r, http.StatusServiceUnavailable, "unavailable")
		if r.header.Get("Retry-After") == "" {
			t.Fatalf("503 without Retry-After")
		}
	})
	t.Run("anything else is 500 without its text", func(t *testing.T) {
		s := start(t, &fakePolicies{err: errors.New("sqlite: database disk image is malformed at /var/lib/x.db")}, nil)
		r := s.do(t, "POST", "/v1/insurance-results", eventJSON(nil), nil)
		e := wantError(t, r, http.StatusInternalServerError, "internal")
		if e["message"] != "internal error" || strings.Contains(r.raw, "sqlite") {
			t.Fatalf("500 body %s leaks the error or has the wrong message", r.raw)
		}
		if !strings.Contains(s.logs.String(), "database disk image is malformed") {
			t.Fatalf("the real error was not logged: %s", s.logs.String())
		}
	})
}

func TestStatusView(t *testing.T) {
	delivered := time.Date(2025, 4, 8, 2, 0, 0, 0, time.UTC)
	st := workflows.Status{
		BizID: bizID, State: fsm.StateInsured, Endorsements: 1, InsuranceType: insurance.TypePerformanceBond,
		PolicyNumber: "12345678A", LastSeq: 4, CallbackState: workflows.CallbackParked,
		Events: []workflows.EventStatus{
			{Seq: 3, RequestID: "req-3", Stage: insurance.StageInsure, Status: insurance.StatusSuccess, TimeOfOccurrence: "2025-04-08 09:55:00",
				AcceptedAt: delivered.Add(-time.Minute), Callback: workflows.EventDelivered, Attempts: 1, DeliveredAt: &delivered},
			{Seq: 4, RequestID: "req-4", Stage: insurance.StageEndorse, Status: insurance.StatusFailure, TimeOfOccurrence: "2025-04-09 10:00:00",
				AcceptedAt: delivered, Callback: workflows.EventParked, Attempts: 3, LastClass: "permanent", LastError: "Invalid app Key"},
		},
	}
	actions := []policyclient.OperatorActionView{
		{Seq: 2, Action: "retry", By: "ops-alice", Reason: "app key renewed", At: delivered.Add(-time.Hour)},
		{Seq: 2, Action: "skip", By: "ops-bob", Reason: "TOP support: ignore", At: delivered.Add(-30 * time.Minute)},
	}
	s := start(t, &fakePolicies{status: st, actions: actions}, nil)
	r := s.do(t, "GET", "/v1/policies/"+bizID, "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("status=%d, want 200 (body %s)", r.status, r.raw)
	}
	var got struct {
		policyclient.StatusView
		OperatorActions []policyclient.OperatorActionView `json:"operator_actions"`
	}
	if err := json.Unmarshal([]byte(r.raw), &got); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if !reflect.DeepEqual(got.OperatorActions, actions) {
		t.Fatalf("operator_actions=%+v\nwant %+v", got.OperatorActions, actions)
	}
	want := policyclient.StatusView{
		BizID: bizID, State: "insured", Endorsements: 1, InsuranceType: "performance_bond", PolicyNumber: "12345678A",
		LastSeq: 4, CallbackState: "parked",
		Events: []policyclient.EventView{
			{Seq: 3, RequestID: "req-3", Stage: "insure", Status: "success", TimeOfOccurrence: "2025-04-08 09:55:00",
				AcceptedAt: delivered.Add(-time.Minute), Callback: "delivered", Attempts: 1, DeliveredAt: &delivered},
			{Seq: 4, RequestID: "req-4", Stage: "endorse", Status: "failure", TimeOfOccurrence: "2025-04-09 10:00:00",
				AcceptedAt: delivered, Callback: "parked", Attempts: 3, LastClass: "permanent", LastError: "Invalid app Key"},
		},
	}
	if !reflect.DeepEqual(got.StatusView, want) {
		t.Fatalf("status=%+v\nwant %+v", got.StatusView, want)
	}
	if len(s.fake.statused) != 1 || s.fake.statused[0] != bizID {
		t.Fatalf("asked for %v, want [%s]", s.fake.statused, bizID)
	}

	t.Run("no operator actions is an empty list", func(t *testing.T) {
		s := start(t, &fakePolicies{status: st}, nil)
		r := s.do(t, "GET", "/v1/policies/"+bizID, "", nil)
		if r.status != http.StatusOK || !strings.Contains(r.raw, `"operator_actions":[]`) {
			t.Fatalf("status=%d body %s, want 200 with \"operator_actions\":[]", r.status, r.raw)
		}
	})
	t.Run("unknown policy is 404", func(t *testing.T) {
		s := start(t, &fakePolicies{err: fmt.Errorf("policy X: %w", policyclient.ErrNotFound)}, nil)
		wantError(t, s.do(t, "GET", "/v1/policies/UNKNOWN1", "", nil), http.StatusNotFound, "not_found")
	})
	t.Run("impossible biz_id is 400", func(t *testing.T) {
		s := start(t, &fakePolicies{}, nil)
		e := wantError(t, s.do(t, "GET", "/v1/policies/bad%20id", "", nil), http.StatusBadRequest, "invalid_request")
		fields := e["fields"].([]any)
		if fields[0].(map[string]any)["field"] != "biz_id" {
			t.Fatalf("fields=%v, want a biz_id problem", fields)
		}
		if len(s.fake.statused) != 0 {
			t.Fatalf("an impossible biz_id reached the policy client")
		}
	})
}

func TestList(t *testing.T) {
	started := time.Date(2025, 4, 8, 1, 0, 0, 0, time.UTC)
	page := policyclient.ListPage{
		Policies: []policyclient.PolicySummary{{BizID: bizID, State: "insured", InsuranceType: "home_property",
			CallbackState: "parked", WorkflowStatus: "Running", StartTime: started}},
		NextPageToken: []byte{0xff, 0x00, 'n', 'e', 'x', 't'},
	}
	s := start(t, &fakePolicies{page: page}, nil)

	r := s.do(t, "GET", "/v1/policies?state=insured&callback_state=parked&page_size=20", "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("status=%d, want 200 (body %s)", r.status, r.raw)
	}
	wantFilter := policyclient.ListFilter{State: "insured", CallbackState: "parked", PageSize: 20}
	if got := s.fake.listed[0]; !reflect.DeepEqual(got, wantFilter) {
		t.Fatalf("filter=%+v, want %+v", got, wantFilter)
	}
	policies := r.body["policies"].([]any)
	first := policies[0].(map[string]any)
	if first["biz_id"] != bizID || first["state"] != "insured" || first["callback_state"] != "parked" ||
		first["workflow_status"] != "Running" || first["start_time"] != "2025-04-08T01:00:00Z" {
		t.Fatalf("policy=%v", first)
	}
	next, _ := r.body["next_page_token"].(string)
	if next == "" {
		t.Fatalf("no next_page_token in %s", r.raw)
	}

	t.Run("include=closed lists closed policies too", func(t *testing.T) {
		r := s.do(t, "GET", "/v1/policies?include=closed&state=cancelled", "", nil)
		if r.status != http.StatusOK {
			t.Fatalf("status=%d (body %s)", r.status, r.raw)
		}
		want := policyclient.ListFilter{State: "cancelled", IncludeClosed: true}
		if got := s.fake.listed[len(s.fake.listed)-1]; !reflect.DeepEqual(got, want) {
			t.Fatalf("filter=%+v, want %+v", got, want)
		}
	})
	t.Run("the next page token comes back as bytes", func(t *testing.T) {
		r := s.do(t, "GET", "/v1/policies?page_token="+next, "", nil)
		if r.status != http.StatusOK {
			t.Fatalf("status=%d (body %s)", r.status, r.raw)
		}
		if got := s.fake.listed[len(s.fake.listed)-1].PageToken; !bytes.Equal(got, page.NextPageToken) {
			t.Fatalf("page token=%v, want %v", got, page.NextPageToken)
		}
	})

	bad := []struct {
		name, query string
		wantFields  []string
	}{
		{"unknown parameter", "status=insured", []string{"status"}},
		{"repeated parameter", "state=new&state=insured", []string{"state"}},
		{"page size not a number", "page_size=ten", []string{"page_size"}},
		{"page token not base64", "page_token=!!!", []string{"page_token"}},
		{"include something else", "include=open", []string{"include"}},
		{"several at once", "page_size=x&foo=1", []string{"foo", "page_size"}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			before := len(s.fake.listed)
			e := wantError(t, s.do(t, "GET", "/v1/policies?"+tt.query, "", nil), http.StatusBadRequest, "invalid_request")
			var got []string
			for _, f := range e["fields"].([]any) {
				got = append(got, f.(map[string]any)["field"].(string))
			}
			if !reflect.DeepEqual(got, tt.wantFields) {
				t.Fatalf("fields=%v, want %v", got, tt.wantFields)
			}
			if len(s.fake.listed) != before {
				t.Fatalf("a bad query reached the policy client")
			}
		})
	}
	t.Run("the client's argument error is 400 naming the field", func(t *testing.T) {
		s := start(t, &fakePolicies{err: &policyclient.ArgumentError{Field: "state", Message: `unknown state "done"`}}, nil)
		e := wantError(t, s.do(t, "GET", "/v1/policies?state=done", "", nil), http.StatusBadRequest, "invalid_request")
		want := []any{map[string]any{"field": "state", "message": `unknown state "done"`}}
		if !reflect.DeepEqual(e["fields"], want) {
			t.Fatalf("fields=%v, want %v", e["fields"], want)
		}
	})
	t.Run("an empty page is an empty list", func(t *testing.T) {
		s := start(t, &fakePolicies{}, nil)
		r := s.do(t, "GET", "/v1/policies", "", nil)
		if r.raw != "{\"policies\":[]}\n" {
			t.Fatalf("body=%q, want an empty policies list and no token", r.raw)
		}
	})
}

func TestOperatorActions(t *testing.T) {
	t.Run("retry with a reason", func(t *testing.T) {
		s := start(t, &fakePolicies{operator: workflows.OperatorResult{Seq: 4, Callback: workflows.EventRetrying}}, nil)
		r := s.do(t, "POST", "/v1/policies/"+bizID+"/callbacks/retry", `{"seq":4,"reason":"app key renewed"}`, nil)
		want := map[string]any{"biz_id": bizID, "seq": float64(4), "callback": "retrying", "repeated": false}
		if r.status != http.StatusOK || !reflect.DeepEqual(r.body, want) {
			t.Fatalf("status=%d body=%v, want 200 %v", r.status, r.body, want)
		}
		if got := s.fake.operated; len(got) != 1 || got[0] != "retry "+bizID+" by ingress-token-1: seq=4 app key renewed" {
			t.Fatalf("operated=%q", got)
		}
	})
	t.Run("an Idempotency-Key is the action's request id", func(t *testing.T) {
		s := start(t, &fakePolicies{operator: workflows.OperatorResult{Seq: 4, Callback: workflows.EventQueued}}, nil)
		r := s.do(t, "POST", "/v1/policies/"+bizID+"/callbacks/retry", `{"seq":4,"reason":"app key renewed"}`,
			map[string]string{"Idempotency-Key": "ops-42.retry"})
		if r.status != http.StatusOK {
			t.Fatalf("status=%d body=%v, want 200", r.status, r.body)
		}
		if got := s.fake.operated; len(got) != 1 || got[0] != "retry "+bizID+" by ingress-token-1: seq=4 app key renewed [ops-42.retry]" {
			t.Fatalf("operated=%q", got)
		}
	})
	t.Run("a bad Idempotency-Key is refused, naming the header", func(t *testing.T) {
		s := start(t, &fakePolicies{}, nil)
		e := wantError(t, s.do(t, "POST", "/v1/policies/"+bizID+"/callbacks/retry", `{"seq":4}`,
			map[string]string{"Idempotency-Key": "not a key"}), http.StatusBadRequest, "invalid_request")
		if fields, _ := e["fields"].([]any); len(fields) != 1 || fields[0].(map[string]any)["field"] != "Idempotency-Key" {
			t.Fatalf("fields=%v, want Idempotency-Key named", e["fields"])
		}
		if len(s.fake.operated) != 0 {
			t.Fatalf("a bad key reached the policy client")
		}
	})
	t.Run("skip without a body is refused: the seq is required", func(t *testing.T) {
		s := start(t, &fakePolicies{operator: workflows.OperatorResult{Seq: 4, Callback: workflows.EventSkipped}}, nil)
		e := wantError(t, s.do(t, "POST", "/v1/policies/"+bizID+"/callbacks/skip", "", map[string]string{"Content-Type": ""}),
			http.StatusBadRequest, "invalid_request")
		if fields, _ := e["fields"].([]any); len(fields) != 1 || fields[0].(map[string]any)["field"] != "seq" {
			t.Fatalf("fields=%v, want seq named", e["fields"])
		}
		if got := s.fake.operated; len(got) != 0 {
			t.Fatalf("operated=%q, want nothing", got)
		}
	})
	t.Run("a repeated skip answers its original outcome", func(t *testing.T) {
		s := start(t, &fakePolicies{operator: workflows.OperatorResult{Seq: 4, Callback: workflows.EventSkipped, Repeated: true}}, nil)
		r := s.do(t, "POST", "/v1/policies/"+bizID+"/callbacks/skip", `{"seq":4}`, nil)
		if r.status != http.StatusOK || r.body["callback"] != "skipped" || r.body["repeated"] != true {
			t.Fatalf("status=%d body=%v, want 200 skipped repeated", r.status, r.body)
		}
	})
	t.Run("another seq than the parked head is 409 seq_mismatch with the head", func(t *testing.T) {
		s := start(t, &fakePolicies{err: &policyclient.Rejection{Reason: workflows.ReasonSeqMismatch, Message: "not the head",
			SeqMismatch: &workflows.SeqMismatchDetails{Seq: 3, HeadSeq: 5, Head: workflows.EventParked}}}, nil)
		e := wantError(t, s.do(t, "POST", "/v1/policies/"+bizID+"/callbacks/skip", `{"seq":3}`, nil), http.StatusConflict, "seq_mismatch")
		if e["head_seq"] != float64(5) {
			t.Fatalf("head_seq=%v, want 5", e["head_seq"])
		}
	})
	t.Run("nothing parked is 409", func(t *testing.T) {
		s := start(t, &fakePolicies{err: &policyclient.Rejection{Reason: workflows.ReasonNoParkedCallback, Message: "no callback is parked"}}, nil)
		wantError(t, s.do(t, "POST", "/v1/policies/"+bizID+"/callbacks/retry", `{"seq":1}`, nil), http.StatusConflict, "no_parked_callback")
	})
	t.Run("unknown policy is 404", func(t *testing.T) {
		s := start(t, &fakePolicies{err: policyclient.ErrNotFound}, nil)
		wantError(t, s.do(t, "POST", "/v1/policies/"+bizID+"/callbacks/skip", `{"seq":1}`, nil), http.StatusNotFound, "not_found")
	})
	bodies := []struct {
		name, body, contentType string
		status                  int
		code                    string
	}{
		{"unknown field", `{"why":"x"}`, "application/json", http.StatusBadRequest, "invalid_request"},
		{"not an object", `"x"`, "application/json", http.StatusBadRequest, "invalid_request"},
		{"trailing data", `{"reason":"a"} {}`, "application/json", http.StatusBadRequest, "invalid_request"},
		{"not JSON", `reason=x`, "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"too large", `{"reason":"` + strings.Repeat("x", maxOperatorBody) + `"}`, "application/json", http.StatusRequestEntityTooLarge, "payload_too_large"},
	}
	for _, tt := range bodies {
		t.Run("body "+tt.name, func(t *testing.T) {
			s := start(t, &fakePolicies{}, nil)
			r := s.do(t, "POST", "/v1/policies/"+bizID+"/callbacks/retry", tt.body, map[string]string{"Content-Type": tt.contentType})
			wantError(t, r, tt.status, tt.code)
			if len(s.fake.operated) != 0 {
				t.Fatalf("a bad body reached the policy client")
			}
		})
	}
}

func TestUnknownRoutesAndMethods(t *testing.T) {
	s := start(t, &fakePolicies{}, nil)
	tests := []struct {
		method, path string
		status       int
		code         string
		allow        string
	}{
		{"GET", "/v1/insurance-results", http.StatusMethodNotAllowed, "method_not_allowed", "POST"},
		{"DELETE", "/v1/policies/" + bizID, http.StatusMethodNotAllowed, "method_not_allowed", "GET, HEAD"},
		{"GET", "/v1/policies/" + bizID + "/callbacks/retry", http.StatusMethodNotAllowed, "method_not_allowed", "POST"},
		{"POST", "/healthz", http.StatusMethodNotAllowed, "method_not_allowed", "GET, HEAD"},
		{"GET", "/v1/policies/" + bizID + "/events", http.StatusNotFound, "not_found", ""},
		{"GET", "/nothing-here", http.StatusNotFound, "not_found", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := s.do(t, tt.method, tt.path, "", nil)
			wantError(t, r, tt.status, tt.code)
			if got := r.header.Get("Allow"); got != tt.allow {
				t.Fatalf("Allow=%q, want %q", got, tt.allow)
			}
		})
	}
}

func TestProbes(t *testing.T) {
	t.Run("healthy and ready", func(t *testing.T) {
		s := start(t, &fakePolicies{}, func(context.Context) error { return nil })
		for _, path := range []string{"/healthz", "/readyz"} {
			if r := s.do(t, "GET", path, "", nil); r.status != http.StatusOK {
				t.Fatalf("%s status=%d, want 200", path, r.status)
			}
		}
	})
	t.Run("dependency down", func(t *testing.T) {
		s := start(t, &fakePolicies{}, func(context.Context) error { return errors.New("temporal: connection refused") })
		if r := s.do(t, "GET", "/healthz", "", nil); r.status != http.StatusOK {
			t.Fatalf("healthz status=%d, want 200 while alive", r.status)
		}
		r := s.do(t, "GET", "/readyz", "", nil)
		wantError(t, r, http.StatusServiceUnavailable, "unavailable")
		if r.header.Get("Retry-After") == "" || strings.Contains(r.raw, "connection refused") {
			t.Fatalf("readyz answer %s (Retry-After %q): want a Retry-After and no internal text", r.raw, r.header.Get("Retry-After"))
		}
		if !strings.Contains(s.logs.String(), "connection refused") {
			t.Fatalf("the readiness failure was not logged")
		}
	})
}

func TestAccessLog(t *testing.T) {
	s := start(t, &fakePolicies{acceptance: workflows.Acceptance{BizID: bizID, Seq: 1, Stage: insurance.StageUnderwrite, Status: insurance.StatusSuccess}}, nil)
	body := eventJSON(nil)
	s.do(t, "POST", "/v1/insurance-results", body, nil)
	s.do(t, "GET", "/v1/policies/"+bizID, "", map[string]string{"Authorization": "Bearer wrong-token"})

	records := s.logs.lines(t)
	if len(records) != 2 {
		t.Fatalf("log records=%d, want one per request: %s", len(records), s.logs.String())
	}
	tests := []struct {
		route     string
		status    float64
		wantBizID bool
	}{
		{"POST /v1/insurance-results", 202, true},
		{"GET /v1/policies/{biz_id}", 401, false},
	}
	for i, tt := range tests {
		rec := records[i]
		if rec["msg"] != "http request" || rec["route"] != tt.route || rec["status"] != tt.status {
			t.Errorf("record %d=%v, want route %q status %v", i, rec, tt.route, tt.status)
		}
		if _, ok := rec["duration"]; !ok {
			t.Errorf("record %d has no duration", i)
		}
		if got, _ := rec["biz_id"].(string); (got == bizID) != tt.wantBizID {
			t.Errorf("record %d biz_id=%q, want present=%v", i, got, tt.wantBizID)
		}
	}
	logged := s.logs.String()
	for _, secret := range []string{token, "wrong-token", manager, "12345678A", "2025-04-08 09:55:00"} {
		if strings.Contains(logged, secret) {
			t.Errorf("the access log contains %q: %s", secret, logged)
		}
	}
}

// scopedClients is a clients file as an operator writes one: a business
// system that reports, a dashboard that reads, an operator who may act,
// one token given as its SHA-256.
const (
	reporterToken = "reporter-token-0123456789"
	readerToken   = "reader-token-0123456789"
	operatorToken = "operator-token-0123456789"
)

func startScoped(t *testing.T, fake *fakePolicies) *testServer {
	t.Helper()
	sum := sha256.Sum256([]byte(operatorToken))
	file := "# who may do what\n" +
		"claims-system:report:" + reporterToken + "\n" +
		"dashboard:read:" + readerToken + "\n" +
		"ops-alice:read,operate:sha256:" + hex.EncodeToString(sum[:]) + "\n"
	clients, err := auth.ParseClients(strings.NewReader(file), "clients")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	srv, err := New(Config{Policies: fake, Clients: clients,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &testServer{url: ts.URL, fake: fake, logs: logs}
}

func TestScopes(t *testing.T) {
	report := `{"biz_id":"` + bizID + `","stage":1,"status":1,"time_of_occurrence":"2025-04-08 09:55:00","insurance_type":1}`
	routes := []struct {
		name, method, path, body string
		scope                    string
	}{
		{"report", "POST", "/v1/insurance-results", report, "report"},
		{"list", "GET", "/v1/policies", "", "read"},
		{"status", "GET", "/v1/policies/" + bizID, "", "read"},
		{"retry", "POST", "/v1/policies/" + bizID + "/callbacks/retry", `{"seq":1}`, "operate"},
		{"skip", "POST", "/v1/policies/" + bizID + "/callbacks/skip", `{"seq":1,"reason":"dup"}`, "operate"},
	}
	callers := []struct {
		name, token string
		scopes      []string
	}{
		{"claims-system", reporterToken, []string{"report"}},
		{"dashboard", readerToken, []string{"read"}},
		{"ops-alice", operatorToken, []string{"read", "operate"}},
	}
	for _, c := range callers {
		for _, rt := range routes {
			t.Run(c.name+" "+rt.name, func(t *testing.T) {
				s := startScoped(t, &fakePolicies{acceptance: workflows.Acceptance{BizID: bizID, Seq: 1}})
				r := s.do(t, rt.method, rt.path, rt.body, map[string]string{"Authorization": "Bearer " + c.token})
				if !slices.Contains(c.scopes, rt.scope) {
					e := wantError(t, r, http.StatusForbidden, "forbidden")
					if want := "caller " + c.name + " does not have the " + rt.scope + " scope"; e["message"] != want {
						t.Fatalf("message=%q, want %q", e["message"], want)
					}
					if n := len(s.fake.reported) + len(s.fake.statused) + len(s.fake.listed) + len(s.fake.operated); n != 0 {
						t.Fatalf("a forbidden request reached the policies %d times", n)
					}
					return
				}
				if r.status >= 400 {
					t.Fatalf("status=%d body=%s, want success for a caller with scope %s", r.status, r.raw, rt.scope)
				}
			})
		}
	}
	t.Run("the operator's name goes with the skip, and into the access log", func(t *testing.T) {
		s := startScoped(t, &fakePolicies{operator: workflows.OperatorResult{Seq: 2, Callback: workflows.EventSkipped}})
		r := s.do(t, "POST", "/v1/policies/"+bizID+"/callbacks/skip", `{"seq":2,"reason":"TOP has it already"}`,
			map[string]string{"Authorization": "Bearer " + operatorToken})
		if r.status != http.StatusOK {
			t.Fatalf("status=%d body=%s", r.status, r.raw)
		}
		if got := s.fake.operated; len(got) != 1 || got[0] != "skip "+bizID+" by ops-alice: seq=2 TOP has it already" {
			t.Fatalf("operated=%q", got)
		}
		logs := s.logs.String()
		if !strings.Contains(logs, `"caller":"ops-alice"`) || strings.Contains(logs, operatorToken) {
			t.Fatalf("access log %s: want caller ops-alice and never the token", logs)
		}
	})
	t.Run("an unknown token is still 401, not 403", func(t *testing.T) {
		s := startScoped(t, &fakePolicies{})
		wantError(t, s.do(t, "GET", "/v1/policies", "", map[string]string{"Authorization": "Bearer nobody-0123456789"}),
			http.StatusUnauthorized, "unauthorized")
	})
	t.Run("the sha256 form does not accept the digest itself as a token", func(t *testing.T) {
		s := startScoped(t, &fakePolicies{})
		sum := sha256.Sum256([]byte(operatorToken))
		wantError(t, s.do(t, "GET", "/v1/policies", "", map[string]string{"Authorization": "Bearer sha256:" + hex.EncodeToString(sum[:])}),
			http.StatusUnauthorized, "unauthorized")
	})
}
