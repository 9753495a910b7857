package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/insuranceflow/insuranceflow/workflows"
)

var bizCounter atomic.Int64

// newBizID returns a biz_id no other test (or earlier run) uses.
func newBizID(prefix string) string {
	return fmt.Sprintf("%s%d%03d", prefix, time.Now().UnixMilli(), bizCounter.Add(1))
}

type acceptance struct {
	BizID     string `json:"biz_id"`
	RequestID string `json:"request_id"`
	Seq       int64  `json:"seq"`
	Stage     string `json:"stage"`
	Status    string `json:"status"`
	State     string `json:"state"`
	Duplicate bool   `json:"duplicate"`
}

type apiError struct {
	Error struct {
		Code          string   `json:"code"`
		Message       string   `json:"message"`
		State         string   `json:"state"`
		Stage         string   `json:"stage"`
		AllowedStages []string `json:"allowed_stages"`
	} `json:"error"`
}

type policyStatus struct {
	BizID         string `json:"biz_id"`
	State         string `json:"state"`
	Endorsements  int    `json:"endorsements"`
	CallbackState string `json:"callback_state"`
	Events        []struct {
		Seq       int64      `json:"seq"`
		Stage     string     `json:"stage"`
		Status    string     `json:"status"`
		Callback  string     `json:"callback"`
		Attempts  int        `json:"attempts"`
		LastError string     `json:"last_error"`
		Delivered *time.Time `json:"delivered_at"`
	} `json:"events"`
}

type receipt struct {
	Order      int64           `json:"order"`
	BizID      string          `json:"biz_id"`
	RequestID  string          `json:"request_id"`
	StageName  string          `json:"stage_name"`
	StatusName string          `json:"status_name"`
	SignMethod string          `json:"sign_method"`
	Payload    json.RawMessage `json:"payload"`
	// TraceParent is the traceparent header the TOP call carried.
	TraceParent string `json:"traceparent"`
}

// event builds an ingress body; minutes orders time_of_occurrence within a policy.
func event(bizID string, stage, status, minutes int) map[string]any {
	return map[string]any{
		"biz_id":                    bizID,
		"policy_number":             "P-" + bizID,
		"insurance_company":         1,
		"stage":                     stage,
		"status":                    status,
		"time_of_occurrence":        time.Date(2025, 4, 8, 9, minutes, 0, 0, time.UTC).Format("2006-01-02 15:04:05"),
		"bank_account_manager_name": "王小丫",
		"insurance_type":            1,
	}
}

func report(t *testing.T, body map[string]any) (int, acceptance, apiError) {
	t.Helper()
	var raw json.RawMessage
	code := call(t, http.MethodPost, "/v1/insurance-results", body, &raw)
	var a acceptance
	var e apiError
	if code < 300 {
		if err := json.Unmarshal(raw, &a); err != nil {
			t.Fatal(err)
		}
	} else if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatalf("error body %s: %v", raw, err)
	}
	return code, a, e
}

func mustAccept(t *testing.T, body map[string]any, wantSeq int64, wantState string) acceptance {
	t.Helper()
	code, a, e := report(t, body)
	if code != http.StatusAccepted {
		t.Fatalf("report stage %v: status %d (%+v), want 202", body["stage"], code, e.Error)
	}
	if a.Seq != wantSeq || a.State != wantState || a.Duplicate {
		t.Fatalf("acceptance = %+v, want seq %d state %s", a, wantSeq, wantState)
	}
	return a
}

func receipts(t *testing.T, bizID string) []receipt {
	t.Helper()
	resp, err := httpClient.Get(env.TopsimURL + "/_sim/callbacks?biz_id=" + bizID)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Callbacks []receipt `json:"callbacks"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Callbacks
}

func waitReceipts(t *testing.T, bizID string, n int, within time.Duration) []receipt {
	t.Helper()
	var got []receipt
	eventually(t, within, fmt.Sprintf("%d callbacks for %s at topsim", n, bizID), func() (bool, string) {
		got = receipts(t, bizID)
		return len(got) >= n, fmt.Sprintf("%d callbacks", len(got))
	})
	return got
}

func status(t *testing.T, bizID string) policyStatus {
	t.Helper()
	// A 503 means "try again" (the query outlived TEMPORAL_CALL_TIMEOUT on
	// a loaded machine, say); a business system would, and so does this.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st policyStatus
		code := call(t, http.MethodGet, "/v1/policies/"+bizID, nil, &st)
		if code == http.StatusOK {
			return st
		}
		if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("GET /v1/policies/%s: %d", bizID, code)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func setFaults(t *testing.T, faults string) {
	t.Helper()
	resp, err := httpClient.Post(env.TopsimURL+"/_sim/faults", "application/json", strings.NewReader(faults))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /_sim/faults %s: %s", faults, resp.Status)
	}
}

func clearFaults(t *testing.T) {
	setFaults(t, `{"isp_error_rate":0,"hang_rate":0,"http502_rate":0,"latency":"0s","ban_seconds":0,"reject_biz_id_pattern":""}`)
}

// lifecycle is the five-event happy path: stage, status, state after.
var lifecycle = []struct {
	stage, status int
	state         string
}{
	{1, 1, "pre_insured"}, {2, 1, "underwritten"}, {3, 1, "insured"}, {5, 1, "insured"}, {4, 1, "cancelled"},
}

func TestLifecycleDeliveredInOrder(t *testing.T) {
	bizID := newBizID("LC")
	var accepted []acceptance
	for i, step := range lifecycle {
		accepted = append(accepted, mustAccept(t, event(bizID, step.stage, step.status, i), int64(i+1), step.state))
	}

	got := waitReceipts(t, bizID, len(lifecycle), 30*time.Second)
	if len(got) != len(lifecycle) {
		t.Fatalf("topsim got %d callbacks, want %d", len(got), len(lifecycle))
	}
	wantStages := []string{"pre_insure", "underwrite", "insure", "endorse", "cancel"}
	for i, r := range got {
		if r.StageName != wantStages[i] || r.StatusName != "success" {
			t.Errorf("callback %d = %s/%s, want %s/success", i+1, r.StageName, r.StatusName, wantStages[i])
		}
		if r.RequestID != accepted[i].RequestID {
			t.Errorf("callback %d request_id = %q, want the accepted %q", i+1, r.RequestID, accepted[i].RequestID)
		}
		// topsim records a callback only after verifying its signature.
		if r.SignMethod != "hmac-sha256" {
			t.Errorf("callback %d sign_method = %q, want hmac-sha256", i+1, r.SignMethod)
		}
		if i > 0 && r.Order <= got[i-1].Order {
			t.Errorf("callback %d arrived out of order (%d after %d)", i+1, r.Order, got[i-1].Order)
		}
	}
	if !strings.Contains(string(got[0].Payload), `"policy_number":"P-`+bizID+`"`) {
		t.Errorf("payload = %s, want the policy number", got[0].Payload)
	}

	// The workflow completes once the cancel is delivered; its search
	// attributes show the final state.
	ctx := context.Background()
	eventually(t, 20*time.Second, "workflow completed", func() (bool, string) {
		d, err := env.Temporal.DescribeWorkflowExecution(ctx, workflows.WorkflowID(bizID), "")
		if err != nil {
			return false, err.Error()
		}
		info := d.GetWorkflowExecutionInfo()
		return info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, info.GetStatus().String()
	})
	d, err := env.Temporal.DescribeWorkflowExecution(ctx, workflows.WorkflowID(bizID), "")
	if err != nil {
		t.Fatal(err)
	}
	sa := d.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields()
	for name, want := range map[string]string{"BizId": bizID, "PolicyState": "cancelled", "CallbackState": "idle", "InsuranceType": "home_property"} {
		var got string
		if p, ok := sa[name]; ok {
			_ = json.Unmarshal(p.GetData(), &got)
		}
		if got != want {
			t.Errorf("search attribute %s = %q, want %q", name, got, want)
		}
	}

	st := status(t, bizID)
	if st.State != "cancelled" || st.Endorsements != 1 || len(st.Events) != 5 {
		t.Fatalf("status = %+v, want cancelled with 1 endorsement and 5 events", st)
	}
	for _, e := range st.Events {
		if e.Callback != "delivered" || e.Attempts != 1 || e.Delivered == nil {
			t.Errorf("event %d callback=%s attempts=%d delivered=%v, want delivered once", e.Seq, e.Callback, e.Attempts, e.Delivered)
		}
	}

	recordHistoryOf(t, "lifecycle", bizID)

	// A policy whose workflow has closed still refuses what its state refuses.
	code, _, e := report(t, event(bizID, 5, 1, 10))
	if code != http.StatusConflict || e.Error.Code != "illegal_transition" || e.Error.State != "cancelled" {
		t.Fatalf("endorse after cancel: %d %+v, want 409 illegal_transition in state cancelled", code, e.Error)
	}
}

func TestIllegalEventGetsConflictAndNoCallback(t *testing.T) {
	bizID := newBizID("IL")
	code, _, e := report(t, event(bizID, 2, 1, 0))
	if code != http.StatusConflict {
		t.Fatalf("underwrite on a new policy: status %d, want 409", code)
	}
	if e.Error.Code != "illegal_transition" || e.Error.State != "new" || e.Error.Stage != "underwrite" ||
		strings.Join(e.Error.AllowedStages, ",") != "pre_insure" {
		t.Fatalf("error = %+v, want illegal_transition state=new stage=underwrite allowed=[pre_insure]", e.Error)
	}
	if !strings.Contains(e.Error.Message, "stage underwrite is not allowed in state new") {
		t.Errorf("message = %q", e.Error.Message)
	}

	// The legal event is accepted after it, as seq 1, and only it reaches TOP.
	mustAccept(t, event(bizID, 1, 1, 1), 1, "pre_insured")
	got := waitReceipts(t, bizID, 1, 20*time.Second)
	time.Sleep(500 * time.Millisecond)
	got = receipts(t, bizID)
	if len(got) != 1 || got[0].StageName != "pre_insure" {
		t.Fatalf("callbacks = %+v, want only the pre_insure", got)
	}
}

func TestDuplicateGetsOriginalAndNoSecondCallback(t *testing.T) {
	bizID := newBizID("DU")
	first := mustAccept(t, event(bizID, 1, 1, 0), 1, "pre_insured")
	waitReceipts(t, bizID, 1, 20*time.Second)

	code, again, e := report(t, event(bizID, 1, 1, 0))
	if code != http.StatusOK {
		t.Fatalf("re-sent event: status %d (%+v), want 200", code, e.Error)
	}
	if !again.Duplicate || again.Seq != first.Seq || again.RequestID != first.RequestID {
		t.Fatalf("duplicate answer = %+v, want the original %+v with duplicate=true", again, first)
	}
	// An explicit request id is recognised the same way.
	withID := event(bizID, 2, 2, 1)
	withID["request_id"] = "explicit-" + bizID
	mustAccept(t, withID, 2, "pre_insured")
	code, again, _ = report(t, withID)
	if code != http.StatusOK || !again.Duplicate || again.Seq != 2 {
		t.Fatalf("re-sent explicit id: %d %+v, want 200 duplicate seq 2", code, again)
	}

	waitReceipts(t, bizID, 2, 20*time.Second)
	time.Sleep(time.Second)
	if got := receipts(t, bizID); len(got) != 2 {
		t.Fatalf("topsim got %d callbacks, want 2 (no second callback for duplicates)", len(got))
	}
}

func TestFaultsEndInDelivery(t *testing.T) {
	t.Cleanup(func() { clearFaults(t) })

	t.Run("isp errors", func(t *testing.T) {
		clearFaults(t)
		setFaults(t, `{"isp_error_rate":0.6}`)
		bizID := newBizID("FI")
		for i, step := range lifecycle[:3] {
			mustAccept(t, event(bizID, step.stage, step.status, i), int64(i+1), step.state)
		}
		got := waitReceipts(t, bizID, 3, 60*time.Second)
		assertStages(t, got, "pre_insure", "underwrite", "insure")
	})

	t.Run("ban", func(t *testing.T) {
		clearFaults(t)
		setFaults(t, `{"ban_seconds":3}`)
		start := time.Now()
		bizID := newBizID("FB")
		mustAccept(t, event(bizID, 1, 1, 0), 1, "pre_insured")
		got := waitReceipts(t, bizID, 1, 30*time.Second)
		assertStages(t, got, "pre_insure")
		if waited := time.Since(start); waited < 2*time.Second {
			t.Errorf("delivered after %s, want the 3 s ban honoured", waited)
		}
	})

	t.Run("hang past the client timeout", func(t *testing.T) {
		clearFaults(t)
		setFaults(t, `{"hang_rate":1,"hang_duration":"10s"}`)
		bizID := newBizID("FH")
		mustAccept(t, event(bizID, 1, 1, 0), 1, "pre_insured")
		eventually(t, 15*time.Second, "first attempt timed out", func() (bool, string) {
			st := status(t, bizID)
			return st.CallbackState == "retrying", st.CallbackState
		})
		clearFaults(t)
		got := waitReceipts(t, bizID, 1, 30*time.Second)
		assertStages(t, got, "pre_insure")
		eventually(t, 10*time.Second, "status delivered", func() (bool, string) {
			st := status(t, bizID)
			return len(st.Events) == 1 && st.Events[0].Callback == "delivered" && st.Events[0].Attempts >= 2,
				fmt.Sprintf("%+v", st.Events)
		})
		recordHistoryOf(t, "hang-retry", bizID)
	})
}

func TestRejectedCallbackParksUntilOperatorActs(t *testing.T) {
	t.Cleanup(func() { clearFaults(t) })
	clearFaults(t)
	setFaults(t, `{"reject_biz_id_pattern":"^PK"}`)

	t.Run("retry", func(t *testing.T) {
		bizID := newBizID("PKR")
		mustAccept(t, event(bizID, 1, 1, 0), 1, "pre_insured")
		waitParked(t, bizID)
		// Events keep being accepted while the FIFO is held.
		mustAccept(t, event(bizID, 2, 1, 1), 2, "underwritten")
		time.Sleep(500 * time.Millisecond)
		if got := receipts(t, bizID); len(got) != 0 {
			t.Fatalf("callbacks while parked = %d, want 0", len(got))
		}
		assertParkedListed(t, bizID)

		setFaults(t, `{"reject_biz_id_pattern":"^NEVER"}`)
		var res struct {
			Seq      int64  `json:"seq"`
			Callback string `json:"callback"`
		}
		if code := call(t, http.MethodPost, "/v1/policies/"+bizID+"/callbacks/retry", map[string]any{"seq": 1, "reason": "fixed upstream"}, &res); code != http.StatusOK {
			t.Fatalf("retry: status %d", code)
		}
		if res.Seq != 1 {
			t.Errorf("retry applied to seq %d, want 1", res.Seq)
		}
		got := waitReceipts(t, bizID, 2, 30*time.Second)
		assertStages(t, got, "pre_insure", "underwrite")
		setFaults(t, `{"reject_biz_id_pattern":"^PK"}`)
		recordHistoryOf(t, "park-retry", bizID)
	})

	t.Run("skip", func(t *testing.T) {
		bizID := newBizID("PKS")
		mustAccept(t, event(bizID, 1, 1, 0), 1, "pre_insured")
		waitParked(t, bizID)
		type result struct {
			Seq      int64  `json:"seq"`
			Callback string `json:"callback"`
			Repeated bool   `json:"repeated"`
		}
		// A skip naming another seq than the parked head is refused with
		// the head's seq (issue 8, item 6).
		var mismatch struct {
			Error struct {
				Code    string `json:"code"`
				HeadSeq int64  `json:"head_seq"`
			} `json:"error"`
		}
		if code := call(t, http.MethodPost, "/v1/policies/"+bizID+"/callbacks/skip", map[string]any{"seq": 2}, &mismatch); code != http.StatusConflict ||
			mismatch.Error.Code != "seq_mismatch" || mismatch.Error.HeadSeq != 1 {
			t.Fatalf("skip of seq 2: status %d %+v, want 409 seq_mismatch naming head 1", code, mismatch)
		}
		var res result
		if code := call(t, http.MethodPost, "/v1/policies/"+bizID+"/callbacks/skip", map[string]any{"seq": 1, "reason": "TOP support: ignore"}, &res); code != http.StatusOK {
			t.Fatalf("skip: status %d", code)
		}
		if res.Seq != 1 || res.Callback != "skipped" || res.Repeated {
			t.Fatalf("skip result = %+v, want seq 1 skipped", res)
		}
		// The same skip again (a proxy retried it): its original outcome,
		// and nothing else happens.
		var again result
		if code := call(t, http.MethodPost, "/v1/policies/"+bizID+"/callbacks/skip", map[string]any{"seq": 1}, &again); code != http.StatusOK ||
			again != (result{Seq: 1, Callback: "skipped", Repeated: true}) {
			t.Fatalf("repeated skip: status %d %+v, want 200 seq 1 skipped repeated", code, again)
		}
		eventually(t, 10*time.Second, "skipped and idle", func() (bool, string) {
			st := status(t, bizID)
			return st.CallbackState == "idle" && len(st.Events) == 1 && st.Events[0].Callback == "skipped", fmt.Sprintf("%+v", st)
		})
		// park-skip.json was recorded before the skip woke the main loop
		// (its GetVersion's old path); this one takes the new path.
		recordHistoryOf(t, "park-skip-v1", bizID)
		var e apiError
		if code := call(t, http.MethodPost, "/v1/policies/"+bizID+"/callbacks/skip", map[string]any{"seq": 2}, &e); code != http.StatusConflict || e.Error.Code != "no_parked_callback" {
			t.Fatalf("second skip: %d %+v, want 409 no_parked_callback", code, e.Error)
		}
	})
}

func waitParked(t *testing.T, bizID string) {
	t.Helper()
	eventually(t, 20*time.Second, bizID+" parked", func() (bool, string) {
		st := status(t, bizID)
		return st.CallbackState == "parked", st.CallbackState
	})
}

func assertParkedListed(t *testing.T, bizID string) {
	t.Helper()
	eventually(t, 10*time.Second, bizID+" listed as parked", func() (bool, string) {
		var page struct {
			Policies []struct {
				BizID         string `json:"biz_id"`
				CallbackState string `json:"callback_state"`
			} `json:"policies"`
		}
		if code := call(t, http.MethodGet, "/v1/policies?callback_state=parked", nil, &page); code != http.StatusOK {
			return false, fmt.Sprint("status ", code)
		}
		for _, p := range page.Policies {
			if p.BizID == bizID {
				return p.CallbackState == "parked", p.CallbackState
			}
		}
		return false, fmt.Sprintf("%d parked policies, not %s", len(page.Policies), bizID)
	})
}

func assertStages(t *testing.T, got []receipt, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("callbacks = %d, want %d (%v)", len(got), len(want), want)
	}
	for i := range want {
		if got[i].StageName != want[i] {
			t.Errorf("callback %d stage = %s, want %s", i+1, got[i].StageName, want[i])
		}
	}
}
