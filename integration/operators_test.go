package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// operatorAction is one entry of operator_actions, in the ingress's GET
// /v1/policies/{biz_id} and in `starter history --json`.
type operatorAction struct {
	Seq    int64     `json:"seq"`
	Action string    `json:"action"`
	By     string    `json:"by"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// TestWhoActedIsVisible checks scopes and the audit trail end to end: a
// caller that may only report is refused a skip with 403 forbidden and
// nothing changes; an operator's skip is then applied, and both `starter
// history` (from the store) and GET /v1/policies/{biz_id} (while the
// workflow runs) name the operator, the reason and the seq.
func TestWhoActedIsVisible(t *testing.T) {
	bizID := parkedPolicy(t, "WHO")

	const reason = "TOP support ticket 4711: ignore"
	body := map[string]any{"seq": 1, "reason": reason}
	var forbidden apiError
	if code := callAs(t, reporterToken, http.MethodPost, "/v1/policies/"+bizID+"/callbacks/skip", body, &forbidden); code != http.StatusForbidden ||
		forbidden.Error.Code != "forbidden" {
		t.Fatalf("reporter's skip: status %d %+v, want 403 forbidden", code, forbidden.Error)
	}
	if code := callAs(t, reporterToken, http.MethodGet, "/v1/policies/"+bizID, nil, &forbidden); code != http.StatusForbidden ||
		forbidden.Error.Code != "forbidden" {
		t.Fatalf("reporter's read: status %d %+v, want 403 forbidden", code, forbidden.Error)
	}
	if st := status(t, bizID); st.CallbackState != "parked" {
		t.Fatalf("after the refused skip callback_state=%s, want still parked", st.CallbackState)
	}

	var res struct {
		Seq      int64  `json:"seq"`
		Callback string `json:"callback"`
	}
	if code := callAs(t, operatorToken, http.MethodPost, "/v1/policies/"+bizID+"/callbacks/skip", body, &res); code != http.StatusOK ||
		res.Seq != 1 || res.Callback != "skipped" {
		t.Fatalf("operator's skip: status %d %+v, want 200 seq 1 skipped", code, res)
	}

	// The GET: the workflow is still running (the policy is not
	// cancelled), so the status comes from its query and who acted from
	// the store.
	var view struct {
		BizID           string           `json:"biz_id"`
		CallbackState   string           `json:"callback_state"`
		OperatorActions []operatorAction `json:"operator_actions"`
	}
	if code := callAs(t, operatorToken, http.MethodGet, "/v1/policies/"+bizID, nil, &view); code != http.StatusOK {
		t.Fatalf("operator's read: status %d", code)
	}
	checkActions(t, "GET /v1/policies/"+bizID, view.OperatorActions, reason)

	// `starter history`, the table operators read and its JSON.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := env.Starter(ctx, "history", bizID).CombinedOutput()
	if err != nil {
		t.Fatalf("starter history: %v\n%s", err, out)
	}
	_, section, ok := strings.Cut(string(out), "\nOperator actions\n")
	if !ok {
		t.Fatalf("starter history has no Operator actions section:\n%s", out)
	}
	lines := strings.Split(strings.TrimSpace(section), "\n")
	if len(lines) != 2 {
		t.Fatalf("operator actions section = %q, want a header and one action", lines)
	}
	if f := strings.Fields(lines[1]); len(f) < 5 || f[0] != "1" || f[1] != "skip" || f[2] != operatorName ||
		!strings.HasSuffix(lines[1], reason) {
		t.Fatalf("operator action row = %q, want seq 1, skip, %s, a time and %q", lines[1], operatorName, reason)
	}
	out, err = env.Starter(ctx, "--json", "history", bizID).Output()
	if err != nil {
		t.Fatalf("starter --json history: %v\n%s", err, out)
	}
	var history struct {
		OperatorActions []operatorAction `json:"operator_actions"`
	}
	if err := json.Unmarshal(out, &history); err != nil {
		t.Fatalf("decode starter history: %v\n%s", err, out)
	}
	checkActions(t, "starter history --json", history.OperatorActions, reason)
	if !history.OperatorActions[0].At.Equal(view.OperatorActions[0].At) {
		t.Fatalf("the history's time %v differs from the API's %v", history.OperatorActions[0].At, view.OperatorActions[0].At)
	}
}

// checkActions asserts that got is exactly the operator's one skip of seq 1.
func checkActions(t *testing.T, where string, got []operatorAction, reason string) {
	t.Helper()
	if len(got) != 1 {
		t.Fatalf("%s: operator_actions=%+v, want the one skip", where, got)
	}
	a := got[0]
	if a.Seq != 1 || a.Action != "skip" || a.By != operatorName || a.Reason != reason || a.At.IsZero() {
		t.Fatalf("%s: operator action=%+v, want seq 1 skip by %s with %q", where, a, operatorName, reason)
	}
}

// TestStarterRetryResentWithItsKey: an operator's `starter retry` whose
// answer was lost is run again with the key its error named. By then TOP has
// refused the retried callback once more and it has parked again; the
// re-run answers the first retry's outcome instead of retrying it a second
// time, while a retry under a new key is a new action.
func TestStarterRetryResentWithItsKey(t *testing.T) {
	bizID := parkedPolicy(t, "SKEY")
	attempts := status(t, bizID).Events[0].Attempts

	retry := func(key string) operatorResult {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := env.Starter(ctx, "--json", "retry", bizID, "--seq", "1", "--reason", "TOP fixed", "--idempotency-key", key).Output()
		if err != nil {
			t.Fatalf("starter retry --idempotency-key %s: %v\n%s", key, err, out)
		}
		var res operatorResult
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("starter retry output %q: %v", out, err)
		}
		return res
	}
	reparked := func(after int) int {
		t.Helper()
		var now int
		eventually(t, 20*time.Second, bizID+" parked again", func() (bool, string) {
			st := status(t, bizID)
			now = st.Events[0].Attempts
			return st.CallbackState == "parked" && now > after, fmt.Sprintf("%s after %d attempts", st.CallbackState, now)
		})
		return now
	}

	if res := retry("ticket-4711"); res.Seq != 1 || res.Repeated {
		t.Fatalf("first retry = %+v, want seq 1 applied", res)
	}
	attempts = reparked(attempts)

	if res := retry("ticket-4711"); res.Seq != 1 || !res.Repeated {
		t.Fatalf("re-run with the same key = %+v, want seq 1 repeated", res)
	}
	time.Sleep(time.Second)
	if st := status(t, bizID); st.CallbackState != "parked" || st.Events[0].Attempts != attempts {
		t.Fatalf("after the re-run: %s with %d attempts, want still parked with %d (no second retry)",
			st.CallbackState, st.Events[0].Attempts, attempts)
	}

	if res := retry("ticket-4712"); res.Seq != 1 || res.Repeated {
		t.Fatalf("retry under a new key = %+v, want seq 1 applied", res)
	}
	reparked(attempts)
}

// parkedPolicy reports the first event of a new policy (biz_id prefix,
// then a unique part) whose callbacks topsim refuses with
// call_success=false, and returns once its callback has parked. The refusal
// ends with the test.
func parkedPolicy(t *testing.T, prefix string) string {
	t.Helper()
	t.Cleanup(func() { clearFaults(t) })
	clearFaults(t)
	setFaults(t, fmt.Sprintf(`{"reject_biz_id_pattern":"^%s"}`, prefix))
	bizID := newBizID(prefix)
	mustAccept(t, event(bizID, 1, 1, 0), 1, "pre_insured")
	waitParked(t, bizID)
	return bizID
}

// operatorResult is `starter retry|skip --json`'s answer.
type operatorResult struct {
	Action   string `json:"action"`
	Seq      int64  `json:"seq"`
	Callback string `json:"callback"`
	Repeated bool   `json:"repeated"`
}
