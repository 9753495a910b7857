package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/insuranceflow/insuranceflow/topsim/receiver"
	"github.com/insuranceflow/insuranceflow/topsim/simulator"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// TestNotifications runs a worker of its own task queue with NOTIFY_URL
// pointing at topsim's receiver, which verifies every Standard Webhooks
// signature (a bad one is refused and counted, never kept). It checks that
// a lifecycle's five deliveries are notified in order, that a parked
// callback's notification names TOP's fail_code, and that a receiver that
// is down delays only the notifications: TOP gets the callbacks meanwhile,
// and the notifications arrive, in order, once it is back.
func TestNotifications(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	url := extraWorker(ctx, t, "notify-worker", append([]string{"TASK_QUEUE=notify-it"}, env.NotifyEnv()...))
	t.Cleanup(func() { clearFaults(t); setReceiverDown(t, false) })
	clearFaults(t)
	setFaults(t, `{"reject_biz_id_pattern":"^NTFP"}`)

	// A whole lifecycle, and a callback TOP refuses.
	happy := newBizID("NTFA")
	for j, step := range lifecycle {
		reportVia(t, url, event(happy, step.stage, step.status, j))
	}
	parked := newBizID("NTFP")
	reportVia(t, url, event(parked, 1, 1, 0))

	want := []string{"1:callback.delivered", "2:callback.delivered", "3:callback.delivered", "4:callback.delivered", "5:callback.delivered"}
	waitNotifications(t, happy, want)
	waitNotifications(t, parked, []string{"1:callback.parked"})
	p := notificationsOf(t, parked)[0]
	var body struct {
		FailCode    string `json:"fail_code"`
		FailMessage string `json:"fail_message"`
		Callback    string `json:"callback"`
		Stage       string `json:"stage"`
		Attempts    int    `json:"attempts"`
		RequestID   string `json:"request_id"`
		OccurredAt  string `json:"occurred_at"`
	}
	if err := json.Unmarshal(p.Body, &body); err != nil {
		t.Fatal(err)
	}
	if body.FailCode != simulator.DefaultRejectFailCode || body.FailMessage != simulator.DefaultRejectFailMessage ||
		body.Callback != "parked" || body.Stage != "pre_insure" || body.Attempts != 1 || body.RequestID == "" || body.OccurredAt == "" {
		t.Fatalf("parked notification = %s, want TOP's fail_code %s", p.Body, simulator.DefaultRejectFailCode)
	}
	if strings.Contains(string(p.Body), "bank_account_manager_name") {
		t.Fatalf("notification carries the account manager's name field: %s", p.Body)
	}
	recordHistoryOf(t, "notify-parked", parked) // open, parked, its notification sent
	// The happy policy's run completes once its notifications are sent.
	// What notifying costs: one SendNotification activity per outcome.
	c := countCompleted(ctx, t, happy)
	t.Logf("Temporal actions of a notified 5-event lifecycle: %d (%+v)", c.Total(), c)
	if c.Activities != 10 {
		t.Errorf("notified lifecycle = %+v, want 10 activities (5 callbacks, 5 notifications)", c)
	}
	// Notifying costs those activities and nothing else: no version
	// marker, so no TemporalChangeVersion upsert either.
	for _, e := range history(t, happy) {
		if e.GetEventType() == enumspb.EVENT_TYPE_MARKER_RECORDED || e.GetUpsertWorkflowSearchAttributesEventAttributes().GetSearchAttributes().GetIndexedFields()["TemporalChangeVersion"] != nil {
			t.Errorf("notified lifecycle's event %d is a %s: notifying must add no marker or change-version upsert", e.GetEventId(), e.GetEventType())
		}
	}
	recordHistoryOf(t, "notify-lifecycle", happy)

	// The receiver goes down: TOP still gets every callback at once.
	setReceiverDown(t, true)
	delayed := newBizID("NTFD")
	reportVia(t, url, event(delayed, 1, 1, 0))
	reportVia(t, url, event(delayed, 2, 1, 1))
	eventually(t, 30*time.Second, delayed+" delivered to TOP while the receiver is down", func() (bool, string) {
		n := len(simCallbacks(t, delayed))
		return n == 2, fmt.Sprintf("%d callbacks at topsim", n)
	})
	if got := notificationsOf(t, delayed); len(got) != 0 {
		t.Fatalf("receiver down, yet %d notifications kept", len(got))
	}
	time.Sleep(2 * time.Second) // a few more refused attempts
	setReceiverDown(t, false)
	waitNotifications(t, delayed, []string{"1:callback.delivered", "2:callback.delivered"})

	var list receiver.List
	getJSON(t, env.TopsimURL+"/_sim/notifications", &list)
	if len(list.Stats.Refused) != 0 {
		t.Fatalf("the receiver refused notifications: %v (every signature must verify)", list.Stats.Refused)
	}
	if list.Stats.WhileDown == 0 {
		t.Fatal("no notification was attempted while the receiver was down")
	}
}

// waitNotifications waits until the receiver holds exactly want (as
// "seq:type", in arrival order, re-sends dropped) for bizID.
func waitNotifications(t *testing.T, bizID string, want []string) {
	t.Helper()
	eventually(t, 60*time.Second, bizID+" notified", func() (bool, string) {
		var got []string
		for _, r := range notificationsOf(t, bizID) {
			got = append(got, fmt.Sprintf("%d:%s", r.Seq, r.Type))
		}
		return strings.Join(got, " ") == strings.Join(want, " "), fmt.Sprintf("got %v, want %v", got, want)
	})
}

// notificationsOf is what the receiver kept for bizID, re-sends dropped.
func notificationsOf(t *testing.T, bizID string) []receiver.Receipt {
	t.Helper()
	var list receiver.List
	getJSON(t, env.TopsimURL+"/_sim/notifications?biz_id="+bizID, &list)
	var out []receiver.Receipt
	for _, r := range list.Notifications {
		if !r.Duplicate {
			out = append(out, r)
		}
	}
	return out
}

func setReceiverDown(t *testing.T, down bool) {
	t.Helper()
	resp, err := httpClient.Post(env.TopsimURL+"/_sim/notifications/down", "application/json", strings.NewReader(fmt.Sprintf(`{"down":%v}`, down)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /_sim/notifications/down: %s", resp.Status)
	}
}

func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// TestLostNotificationIsVisible runs a notifying worker whose notifications
// have a 3-second budget, with the receiver down: the delivered callback's
// notification runs out of budget, and GET /v1/policies/{biz_id} and
// `starter status` both name it.
func TestLostNotificationIsVisible(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := extraWorker(ctx, t, "notify-lost-worker", append([]string{"TASK_QUEUE=notify-lost-it", "NOTIFY_RETRY_BUDGET=3s"}, env.NotifyEnv()...))
	t.Cleanup(func() { setReceiverDown(t, false) })
	setReceiverDown(t, true)

	bizID := newBizID("NTFL")
	reportVia(t, url, event(bizID, 1, 1, 0))
	type lost struct {
		WebhookID string `json:"webhook_id"`
		Seq       int64  `json:"seq"`
		Type      string `json:"type"`
		LastError string `json:"last_error"`
	}
	var view struct {
		LostNotifications []lost `json:"lost_notifications"`
	}
	eventually(t, 30*time.Second, bizID+"'s notification lost", func() (bool, string) {
		view.LostNotifications = nil
		if code := call(t, http.MethodGet, "/v1/policies/"+bizID, nil, &view); code != http.StatusOK {
			return false, fmt.Sprintf("GET: %d", code)
		}
		return len(view.LostNotifications) == 1, fmt.Sprintf("lost_notifications %+v", view.LostNotifications)
	})
	got := view.LostNotifications[0]
	if got.Seq != 1 || got.Type != "callback.delivered" || got.WebhookID != "ntf_"+bizID+"_1_callback.delivered_1" ||
		!strings.Contains(got.LastError, "503") {
		t.Fatalf("lost notification = %+v, want seq 1's callback.delivered with the receiver's 503", got)
	}
	out, err := env.Starter(ctx, "status", bizID).CombinedOutput()
	if err != nil {
		t.Fatalf("starter status: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "lost notifications") || !strings.Contains(string(out), got.WebhookID) {
		t.Fatalf("starter status does not show the lost notification:\n%s", out)
	}
	if got := notificationsOf(t, bizID); len(got) != 0 {
		t.Fatalf("receiver kept %d notifications while down", len(got))
	}
	recordHistoryOf(t, "notify-lost", bizID) // the notification's budget ran out, recorded lost
}

// TestCancelledRunHandsOverNotifications cancels a notifying run while its
// notification waits for a receiver that is down; the run that reopens the
// policy takes the notification over from it (the snapshot query) and
// sends it before its own.
func TestCancelledRunHandsOverNotifications(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := extraWorker(ctx, t, "notify-cancel-worker", append([]string{"TASK_QUEUE=notify-cancel-it"}, env.NotifyEnv()...))
	t.Cleanup(func() { setReceiverDown(t, false) })
	setReceiverDown(t, true)
	bizID := newBizID("NTFC")
	reportVia(t, url, event(bizID, 1, 1, 0))
	eventually(t, 30*time.Second, bizID+" delivered to TOP", func() (bool, string) {
		n := len(simCallbacks(t, bizID))
		return n == 1, fmt.Sprintf("%d callbacks at topsim", n)
	})
	id := workflows.WorkflowID(bizID)
	d, err := env.Temporal.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		t.Fatal(err)
	}
	cancelledRun := d.GetWorkflowExecutionInfo().GetExecution().GetRunId()
	if err := env.Temporal.CancelWorkflow(ctx, id, ""); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	eventually(t, 30*time.Second, bizID+" cancelled", func() (bool, string) {
		d, err := env.Temporal.DescribeWorkflowExecution(ctx, id, "")
		if err != nil {
			return false, err.Error()
		}
		st := d.GetWorkflowExecutionInfo().GetStatus()
		return st == enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED, st.String()
	})
	setReceiverDown(t, false)
	reportVia(t, url, event(bizID, 2, 1, 1))
	waitNotifications(t, bizID, []string{"1:callback.delivered", "2:callback.delivered"})
	recordRunHistoryOf(t, "notify-cancelled", bizID, cancelledRun) // cancelled with its notification unsent
	recordHistoryOf(t, "notify-reopened", bizID)                   // took it over and sent it first
}

// TestRunCancelledMidCallNotifiesTheOutcome: a run cancelled while its
// callback is at TOP never handles that attempt's outcome, which completes
// and is recorded in the store after the run closed. The next run must
// still notify it: topsim holds the call for 1.5 s, the run is cancelled
// meanwhile, and the next event reopens the policy.
func TestRunCancelledMidCallNotifiesTheOutcome(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := extraWorker(ctx, t, "notify-midcall-worker", append([]string{"TASK_QUEUE=notify-midcall-it"}, env.NotifyEnv()...))
	t.Cleanup(func() { clearFaults(t) })
	bizID := newBizID("NTFM")
	setFaults(t, `{"latency":"1500ms"}`)
	reportVia(t, url, event(bizID, 1, 1, 0))
	time.Sleep(300 * time.Millisecond) // the callback is at topsim now
	if err := env.Temporal.CancelWorkflow(ctx, workflows.WorkflowID(bizID), ""); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	eventually(t, 30*time.Second, bizID+" delivered to TOP after its run was cancelled", func() (bool, string) {
		n := len(simCallbacks(t, bizID))
		return n == 1, fmt.Sprintf("%d callbacks at topsim", n)
	})
	clearFaults(t)
	reportVia(t, url, event(bizID, 2, 1, 1))
	waitNotifications(t, bizID, []string{"1:callback.delivered", "2:callback.delivered"})
	if n := len(simCallbacks(t, bizID)); n != 2 {
		t.Fatalf("%d callbacks at topsim, want 2: seq 1 must not be sent again", n)
	}
}
