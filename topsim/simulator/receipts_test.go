package simulator_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/topsim/simulator"
)

func TestReceiptsRecordArrivalOrder(t *testing.T) {
	ts := newSim(t, nil)
	sends := []struct {
		bizID         string
		stage, status int
	}{
		{"BIZ-A", 1, 1},
		{"BIZ-B", 1, 1},
		{"BIZ-A", 2, 2},
		{"BIZ-A", 2, 1},
	}
	var topIDs []string
	for _, s := range sends {
		r := postForm(t, ts.url(), validParams(t, testNow, "hmac", payloadFor(s.bizID, s.stage, s.status))).success(t)
		topIDs = append(topIDs, r.RequestID)
	}

	all := ts.sim.Callbacks("")
	if len(all) != len(sends) {
		t.Fatalf("receipts=%d, want %d", len(all), len(sends))
	}
	for i, r := range all {
		if r.Order != int64(i+1) {
			t.Errorf("receipt %d order=%d, want %d", i, r.Order, i+1)
		}
		if r.BizID != sends[i].bizID || int(r.Stage) != sends[i].stage || int(r.Status) != sends[i].status {
			t.Errorf("receipt %d = %s/%d/%d, want %+v", i, r.BizID, r.Stage, r.Status, sends[i])
		}
		if r.TOPRequestID != topIDs[i] {
			t.Errorf("receipt %d top_request_id=%q, want the answer's %q", i, r.TOPRequestID, topIDs[i])
		}
		if r.RequestID != "req-"+sends[i].bizID {
			t.Errorf("receipt %d request_id=%q, want req-%s", i, r.RequestID, sends[i].bizID)
		}
		if !r.ReceivedAt.Equal(testNow) {
			t.Errorf("receipt %d received_at=%v, want the injected clock's %v", i, r.ReceivedAt, testNow)
		}
		if r.SignMethod != "hmac" {
			t.Errorf("receipt %d sign_method=%q, want hmac", i, r.SignMethod)
		}
		if string(r.Payload) != payloadFor(sends[i].bizID, sends[i].stage, sends[i].status) {
			t.Errorf("receipt %d payload=%s, want the string sent", i, r.Payload)
		}
	}
	if all[2].StageName != insurance.StageUnderwrite.String() || all[2].StatusName != insurance.StatusFailure.String() {
		t.Errorf("receipt 3 names=%s/%s, want underwrite/failure", all[2].StageName, all[2].StatusName)
	}

	t.Run("filtered by biz_id", func(t *testing.T) {
		got := ts.sim.Callbacks("BIZ-A")
		var orders []int64
		for _, r := range got {
			orders = append(orders, r.Order)
		}
		if want := []int64{1, 3, 4}; !slices.Equal(orders, want) {
			t.Fatalf("BIZ-A orders=%v, want %v", orders, want)
		}
		if n := len(ts.sim.Callbacks("BIZ-NONE")); n != 0 {
			t.Fatalf("unknown biz_id receipts=%d, want 0", n)
		}
	})

	t.Run("GET /_sim/callbacks", func(t *testing.T) {
		var body struct {
			Callbacks []map[string]any `json:"callbacks"`
		}
		if code := getJSON(t, ts.srv.URL+"/_sim/callbacks?biz_id=BIZ-A", &body); code != http.StatusOK {
			t.Fatalf("HTTP %d, want 200", code)
		}
		if len(body.Callbacks) != 3 {
			t.Fatalf("callbacks=%d, want 3", len(body.Callbacks))
		}
		first := body.Callbacks[0]
		want := map[string]any{
			"order": 1.0, "biz_id": "BIZ-A", "stage": 1.0, "status": 1.0, "stage_name": "pre_insure",
			"status_name": "success", "sign_method": "hmac", "top_request_id": topIDs[0], "request_id": "req-BIZ-A",
		}
		for k, v := range want {
			if first[k] != v {
				t.Errorf("callbacks[0][%q]=%v, want %v", k, first[k], v)
			}
		}
		payload, _ := first["payload"].(map[string]any)
		if payload["biz_id"] != "BIZ-A" {
			t.Errorf("callbacks[0].payload=%v, want the JSON object sent", first["payload"])
		}

		var none struct {
			Callbacks []map[string]any `json:"callbacks"`
		}
		getJSON(t, ts.srv.URL+"/_sim/callbacks?biz_id=BIZ-NONE", &none)
		if none.Callbacks == nil || len(none.Callbacks) != 0 {
			t.Fatalf("callbacks=%v, want an empty list, not null", none.Callbacks)
		}
	})

	t.Run("DELETE /_sim/callbacks resets the ledger and the order", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodDelete, ts.srv.URL+"/_sim/callbacks", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("DELETE: %v", err)
		}
		var got map[string]int
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("decode DELETE answer: %v", err)
		}
		if resp.StatusCode != http.StatusOK || got["deleted"] != 4 {
			t.Fatalf("HTTP %d %v, want 200 deleted=4", resp.StatusCode, got)
		}
		if n := len(ts.sim.Callbacks("")); n != 0 {
			t.Fatalf("receipts after reset=%d, want 0", n)
		}
		postForm(t, ts.url(), validParams(t, testNow, "md5", payloadFor("BIZ-C", 1, 1))).success(t)
		if got := ts.sim.Callbacks(""); len(got) != 1 || got[0].Order != 1 {
			t.Fatalf("after reset receipts=%+v, want one with order 1", got)
		}
	})
}

func TestReceiptsJSONLSink(t *testing.T) {
	var file bytes.Buffer
	// A buffered sink: the simulator must flush each line, or the buffer
	// below would stay empty.
	sink := bufio.NewWriterSize(&file, 64<<10)
	ts := newSim(t, func(c *simulator.Config) { c.Receipts = sink })

	for _, biz := range []string{"BIZ-1", "BIZ-2", "BIZ-1"} {
		postForm(t, ts.url(), validParams(t, testNow, "md5", payloadFor(biz, 1, 1))).success(t)
	}
	// Rejected callbacks are not receipts.
	if err := ts.sim.SetFaults(simulator.Faults{RejectBizIDPattern: "^BIZ-9"}); err != nil {
		t.Fatalf("SetFaults: %v", err)
	}
	postForm(t, ts.url(), validParams(t, testNow, "md5", payloadFor("BIZ-9", 1, 1))).success(t)

	lines := strings.Split(strings.TrimSuffix(file.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("sink has %d lines, want 3:\n%s", len(lines), file.String())
	}
	for i, line := range lines {
		var r simulator.Receipt
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("line %d is not a receipt: %v\n%s", i, err, line)
		}
		if r.Order != int64(i+1) {
			t.Errorf("line %d order=%d, want %d", i, r.Order, i+1)
		}
		if want := []string{"BIZ-1", "BIZ-2", "BIZ-1"}[i]; r.BizID != want {
			t.Errorf("line %d biz_id=%q, want %q", i, r.BizID, want)
		}
	}
}

type brokenSink struct{}

func (brokenSink) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// A broken sink is logged; the callback is still accepted and recorded.
func TestReceiptsSinkFailureDoesNotFailTheCallback(t *testing.T) {
	var logs bytes.Buffer
	ts := newSim(t, func(c *simulator.Config) {
		c.Receipts = brokenSink{}
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	if r := postForm(t, ts.url(), validParams(t, testNow, "md5", samplePayload)).success(t); !r.CallSuccess {
		t.Fatalf("call_success=false, want true despite the broken sink")
	}
	if n := len(ts.sim.Callbacks("")); n != 1 {
		t.Fatalf("receipts=%d, want 1", n)
	}
	if !strings.Contains(logs.String(), "disk full") || !strings.Contains(logs.String(), "level=WARN") {
		t.Fatalf("log lacks a warning about the sink:\n%s", logs.String())
	}
}

// The request log names the outcome, the code and the biz_id, and never the
// secret, the signature or the account manager's name.
func TestRequestLogKeepsSecretsOut(t *testing.T) {
	var logs bytes.Buffer
	ts := newSim(t, func(c *simulator.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	p := validParams(t, testNow, "md5", samplePayload)
	postForm(t, ts.url(), p).success(t)
	bad := validParams(t, testNow, "md5", samplePayload)
	bad.Set("sign", strings.Repeat("0", 32))
	wantCode(t, postForm(t, ts.url(), bad), 25, "")

	out := logs.String()
	for _, want := range []string{"outcome=accepted", "outcome=protocol_error", "code=25", "biz_id=24010900100YSKSSG", "path=/router/rest", "duration="} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{testSecret, p.Get("sign"), managerName} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}
	if n := strings.Count(out, "msg=\"top request\""); n != 2 {
		t.Errorf("log has %d request lines, want 2:\n%s", n, out)
	}
}
