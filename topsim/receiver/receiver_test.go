package receiver

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/webhook"
)

func TestReceiver(t *testing.T) {
	secret, err := webhook.NewSecret([]byte(strings.Repeat("r", 32)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 4, 13, 0, 0, 0, time.UTC)
	rcv := New(secret, func() time.Time { return now })
	srv := httptest.NewServer(rcv.Handler())
	defer srv.Close()

	post := func(id string, body string, sign webhook.Secret, at time.Time) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/notifications", strings.NewReader(body))
		sign.SetHeaders(req.Header, id, at, []byte(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	first := `{"type":"callback.delivered","biz_id":"B1","seq":1}`
	if code := post("ntf_B1_1", first, secret, now); code != http.StatusNoContent {
		t.Fatalf("signed notification: %d, want 204", code)
	}
	if code := post("ntf_B1_1", first, secret, now); code != http.StatusNoContent { // a re-send
		t.Fatalf("re-sent notification: %d, want 204", code)
	}
	other, _ := webhook.NewSecret([]byte(strings.Repeat("x", 32)))
	if code := post("ntf_B1_2", `{"type":"callback.parked","biz_id":"B1","seq":2}`, other, now); code != http.StatusUnauthorized {
		t.Fatalf("wrongly signed notification: %d, want 401", code)
	}
	if code := post("ntf_B1_3", `{"type":"callback.parked","biz_id":"B1","seq":3}`, secret, now.Add(-time.Hour)); code != http.StatusUnauthorized {
		t.Fatalf("stale notification: %d, want 401", code)
	}
	resp, err := http.Post(srv.URL+"/_sim/notifications/down", "application/json", bytes.NewReader([]byte(`{"down":true}`)))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("set down: %v %v", resp, err)
	}
	if code := post("ntf_B2_1", `{"type":"callback.delivered","biz_id":"B2","seq":1}`, secret, now); code != http.StatusServiceUnavailable {
		t.Fatalf("notification while down: %d, want 503", code)
	}

	resp, err = http.Get(srv.URL + "/_sim/notifications?biz_id=B1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list List
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	if len(list.Notifications) != 2 || list.Notifications[0].Duplicate || !list.Notifications[1].Duplicate ||
		list.Notifications[0].Type != "callback.delivered" || list.Notifications[0].WebhookID != "ntf_B1_1" {
		t.Fatalf("notifications = %+v, want ntf_B1_1 and its re-send", list.Notifications)
	}
	if list.Stats.Accepted != 2 || list.Stats.Duplicates != 1 || list.Stats.WhileDown != 1 ||
		list.Stats.Refused[webhook.ReasonBadSignature] != 1 || list.Stats.Refused[webhook.ReasonStale] != 1 || !list.Down {
		t.Fatalf("stats = %+v down=%v", list.Stats, list.Down)
	}
}
