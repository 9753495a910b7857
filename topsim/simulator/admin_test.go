package simulator_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/topsim/simulator"
)

// postFaults sends body to POST /_sim/faults and decodes the answer.
func postFaults(t *testing.T, ts testSim, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(ts.srv.URL+"/_sim/faults", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST /_sim/faults: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("POST /_sim/faults answered %s: %v", raw, err)
	}
	return resp.StatusCode, got
}

func TestFaultsEndpoint(t *testing.T) {
	ts := newSim(t, nil)

	t.Run("GET shows the defaults", func(t *testing.T) {
		var got map[string]any
		if code := getJSON(t, ts.srv.URL+"/_sim/faults", &got); code != http.StatusOK {
			t.Fatalf("HTTP %d, want 200", code)
		}
		want := map[string]any{
			"isp_error_rate": 0.0, "latency": "0s", "hang_rate": 0.0, "hang_duration": "40s", "http502_rate": 0.0,
			"reject_biz_id_pattern": "", "reject_fail_code": "BIZ_NOT_FOUND", "reject_fail_message": "biz_id not found",
			"qps_limit": 0.0, "qps_ban_seconds": 1.0,
		}
		if len(got) != len(want) {
			t.Fatalf("GET /_sim/faults=%v, want exactly %v", got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s=%v, want %v", k, got[k], v)
			}
		}
	})

	t.Run("POST replaces the fields present", func(t *testing.T) {
		code, got := postFaults(t, ts, `{"isp_error_rate":0.5,"latency":"250ms","reject_biz_id_pattern":"^X"}`)
		if code != http.StatusOK || got["isp_error_rate"] != 0.5 || got["latency"] != "250ms" {
			t.Fatalf("HTTP %d %v, want 200 with the new values", code, got)
		}
		// A number is milliseconds; absent fields keep their values.
		code, got = postFaults(t, ts, `{"latency":100}`)
		if code != http.StatusOK || got["latency"] != "100ms" || got["isp_error_rate"] != 0.5 || got["reject_biz_id_pattern"] != "^X" {
			t.Fatalf("HTTP %d %v, want latency 100ms and the rest kept", code, got)
		}
		f := ts.sim.Faults()
		if f.Latency != 100*time.Millisecond || f.ISPErrorRate != 0.5 || f.RejectBizIDPattern != "^X" {
			t.Fatalf("Faults()=%+v, want what was posted", f)
		}

		// GET's answer posted back changes nothing: the round trip is clean.
		var cur map[string]any
		getJSON(t, ts.srv.URL+"/_sim/faults", &cur)
		raw, _ := json.Marshal(cur)
		if code, _ := postFaults(t, ts, string(raw)); code != http.StatusOK || ts.sim.Faults() != f {
			t.Fatalf("posting GET's answer back: HTTP %d, faults %+v, want 200 and %+v", code, ts.sim.Faults(), f)
		}
	})

	t.Run("unknown field is a 400", func(t *testing.T) {
		before := ts.sim.Faults()
		code, got := postFaults(t, ts, `{"isp_rate":1}`)
		if msg, _ := got["error"].(string); code != http.StatusBadRequest || !strings.Contains(msg, "isp_rate") {
			t.Fatalf("HTTP %d %v, want 400 naming isp_rate", code, got)
		}
		if ts.sim.Faults() != before {
			t.Fatalf("faults changed by a refused POST")
		}
	})

	t.Run("invalid values are a 400 naming them", func(t *testing.T) {
		for _, body := range []string{`{"hang_rate":2}`, `{"latency":"soon"}`, `{"reject_biz_id_pattern":"(["}`, `not json`, `{"hang_rate":0.1} {}`} {
			code, got := postFaults(t, ts, body)
			if code != http.StatusBadRequest || got["error"] == nil {
				t.Errorf("POST %s: HTTP %d %v, want 400 with an error", body, code, got)
			}
		}
		_, got := postFaults(t, ts, `{"hang_rate":2}`)
		problems, _ := got["problems"].([]any)
		if len(problems) != 1 || problems[0].(map[string]any)["field"] != "hang_rate" {
			t.Fatalf("problems=%v, want one naming hang_rate", got["problems"])
		}
	})

	t.Run("ban_seconds starts a ban and 0 lifts it", func(t *testing.T) {
		ts := newSim(t, nil)
		if code, got := postFaults(t, ts, `{"ban_seconds":5}`); code != http.StatusOK || got["ban_seconds"] != nil {
			t.Fatalf("HTTP %d %v, want 200 without ban_seconds (a trigger, not a setting)", code, got)
		}
		e := wantCode(t, postForm(t, ts.url(), validParams(t, testNow, "md5", samplePayload)), 7, "accesscontrol.limited-by-app-access-count")
		if e.SubMsg != "This ban will last for 5 more seconds" {
			t.Fatalf("sub_msg=%q, want 5 more seconds", e.SubMsg)
		}
		var st simulator.Stats
		getJSON(t, ts.srv.URL+"/_sim/stats", &st)
		if st.BanSecondsLeft != 5 || st.Bans != 1 {
			t.Fatalf("GET /_sim/stats=%+v, want 5 ban seconds left and 1 ban", st)
		}
		postFaults(t, ts, `{"ban_seconds":0}`)
		if r := postForm(t, ts.url(), validParams(t, testNow, "md5", samplePayload)).success(t); !r.CallSuccess {
			t.Fatalf("after lifting the ban: call_success=false, want true")
		}
	})
}

func TestStatsAndHealthEndpoints(t *testing.T) {
	ts := newSim(t, func(c *simulator.Config) { c.Faults.RejectBizIDPattern = "^REJ" })
	postForm(t, ts.url(), validParams(t, testNow, "md5", payloadFor("OK-1", 1, 1))).success(t)
	postForm(t, ts.url(), validParams(t, testNow, "md5", payloadFor("REJ-1", 1, 1))).success(t)
	p := validParams(t, testNow, "md5", samplePayload)
	p.Del("v")
	resign(t, p, testSecret)
	wantCode(t, postForm(t, ts.url(), p), 32, "")

	var st map[string]any
	if code := getJSON(t, ts.srv.URL+"/_sim/stats", &st); code != http.StatusOK {
		t.Fatalf("HTTP %d, want 200", code)
	}
	want := map[string]any{"requests": 3.0, "accepted": 1.0, "rejected": 1.0, "protocol_errors": 1.0, "isp_errors": 0.0}
	for k, v := range want {
		if st[k] != v {
			t.Errorf("stats[%s]=%v, want %v", k, st[k], v)
		}
	}
	if byCode, _ := st["protocol_errors_by_code"].(map[string]any); byCode["32"] != 1.0 {
		t.Errorf("protocol_errors_by_code=%v, want {32:1}", st["protocol_errors_by_code"])
	}

	var health map[string]string
	if code := getJSON(t, ts.srv.URL+"/healthz", &health); code != http.StatusOK || health["status"] != "ok" {
		t.Fatalf("GET /healthz: HTTP %d %v, want 200 ok", code, health)
	}

	resp, err := http.Post(ts.srv.URL+"/_sim/stats", "application/json", nil)
	if err != nil {
		t.Fatalf("POST /_sim/stats: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /_sim/stats: HTTP %d, want 405", resp.StatusCode)
	}
}
