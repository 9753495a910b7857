package simulator_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/top"
	"github.com/insuranceflow/insuranceflow/topsim/simulator"
)

func setFaults(t *testing.T, ts testSim, f simulator.Faults) {
	t.Helper()
	if err := ts.sim.SetFaults(f); err != nil {
		t.Fatalf("SetFaults(%+v): %v", f, err)
	}
}

func TestFaultKinds(t *testing.T) {
	t.Run("isp error rate 1 answers code 15 isp.* every time", func(t *testing.T) {
		ts := newSim(t, func(c *simulator.Config) { c.Faults.ISPErrorRate = 1 })
		for i := range 10 {
			a := postForm(t, ts.url(), validParams(t, testNow, "md5", samplePayload))
			e := a.errorResp(t)
			if a.status != http.StatusOK || e.Code != 15 || !strings.HasPrefix(e.SubCode, "isp.") {
				t.Fatalf("request %d: HTTP %d code=%d sub_code=%q, want 200, 15, isp.*", i, a.status, e.Code, e.SubCode)
			}
		}
		if st := ts.sim.Stats(); st.ISPErrors != 10 || st.Accepted != 0 {
			t.Fatalf("stats=%+v, want 10 isp errors and nothing accepted", st)
		}
		if n := len(ts.sim.Callbacks("")); n != 0 {
			t.Fatalf("receipts=%d, want 0", n)
		}
	})

	t.Run("http502 rate 1 answers HTTP 502 with HTML", func(t *testing.T) {
		ts := newSim(t, func(c *simulator.Config) { c.Faults.HTTP502Rate = 1 })
		a := postForm(t, ts.url(), validParams(t, testNow, "md5", samplePayload))
		if a.status != http.StatusBadGateway {
			t.Fatalf("HTTP %d, want 502", a.status)
		}
		if !strings.HasPrefix(a.contentType, "text/html") || !strings.Contains(string(a.body), "502 Bad Gateway") {
			t.Fatalf("answer %q %s, want an HTML 502 page", a.contentType, a.body)
		}
		if st := ts.sim.Stats(); st.HTTP502 != 1 {
			t.Fatalf("stats=%+v, want one 502", st)
		}
	})

	t.Run("faults spare invalid requests", func(t *testing.T) {
		// A protocol error is the caller's fault and is answered as such,
		// whatever the fault rates.
		ts := newSim(t, func(c *simulator.Config) { c.Faults.HTTP502Rate = 1 })
		p := validParams(t, testNow, "md5", samplePayload)
		p.Set("sign", strings.Repeat("F", 32))
		wantCode(t, postForm(t, ts.url(), p), 25, "")
	})

	t.Run("reject pattern answers call_success=false", func(t *testing.T) {
		ts := newSim(t, func(c *simulator.Config) { c.Faults.RejectBizIDPattern = "^REJ-" })
		r := postForm(t, ts.url(), validParams(t, testNow, "md5", payloadFor("REJ-1", 1, 1))).success(t)
		if r.CallSuccess || r.FailCode != "BIZ_NOT_FOUND" || r.FailMessage != simulator.DefaultRejectFailMessage {
			t.Fatalf("response=%+v, want call_success=false BIZ_NOT_FOUND", r)
		}
		if r := postForm(t, ts.url(), validParams(t, testNow, "md5", payloadFor("OK-REJ-1", 1, 1))).success(t); !r.CallSuccess {
			t.Fatalf("non-matching biz_id: call_success=false, want true")
		}
		if got := ts.sim.Callbacks(""); len(got) != 1 || got[0].BizID != "OK-REJ-1" {
			t.Fatalf("receipts=%+v, want only OK-REJ-1", got)
		}

		setFaults(t, ts, simulator.Faults{RejectBizIDPattern: "^REJ-", RejectFailCode: "POLICY_CLOSED", RejectFailMessage: "保单已关闭"})
		p := validParams(t, testNow, "md5", payloadFor("REJ-2", 1, 1))
		p.Set("simplify", "true")
		resign(t, p, testSecret)
		a := postForm(t, ts.url(), p)
		if got := string(a.body); !strings.Contains(got, `"call_success":false`) || !strings.Contains(got, `"fail_code":"POLICY_CLOSED"`) ||
			!strings.Contains(got, `"fail_message":"保单已关闭"`) || strings.Contains(got, testRoot) {
			t.Fatalf("body=%s, want a bare call_success=false object with the custom fail fields", got)
		}
		if st := ts.sim.Stats(); st.Rejected != 2 || st.Accepted != 1 {
			t.Fatalf("stats=%+v, want 2 rejected 1 accepted", st)
		}
	})

	t.Run("latency delays every request", func(t *testing.T) {
		ts := newSim(t, func(c *simulator.Config) { c.Faults.Latency = 150 * time.Millisecond })
		start := time.Now()
		postForm(t, ts.url(), validParams(t, testNow, "md5", samplePayload)).success(t)
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Fatalf("answer took %v, want at least 150ms", d)
		}
		start = time.Now()
		wantCode(t, postForm(t, ts.url(), validParams(t, testNow, "md5", "")), 40, "isv.missing-parameter:insurance_result_a_p_i_request")
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Fatalf("error answer took %v, want at least 150ms", d)
		}
	})
}

func TestFaultBan(t *testing.T) {
	clk := &clock{t: testNow}
	ts := newSim(t, func(c *simulator.Config) { c.Now = clk.Now })
	// The ban beats an ISP error rate of 1.
	setFaults(t, ts, simulator.Faults{BanSeconds: 30, ISPErrorRate: 1})
	if f := ts.sim.Faults(); f.BanSeconds != 0 || f.ISPErrorRate != 1 {
		t.Fatalf("Faults()=%+v, want ban_seconds 0 (a trigger) and isp 1", f)
	}

	steps := []struct {
		advance time.Duration
		left    int
	}{
		{0, 30},
		{10*time.Second + 500*time.Millisecond, 20}, // 19.5 s left reads 20
		{19 * time.Second, 1},                       // 0.5 s left reads 1
	}
	for _, s := range steps {
		clk.Advance(s.advance)
		a := postForm(t, ts.url(), validParams(t, clk.Now(), "md5", samplePayload))
		e := wantCode(t, a, 7, "accesscontrol.limited-by-app-access-count")
		if want := fmt.Sprintf("This ban will last for %d more seconds", s.left); e.SubMsg != want || e.Msg != "App Call Limited" {
			t.Fatalf("at +%v: msg=%q sub_msg=%q, want App Call Limited / %q", s.advance, e.Msg, e.SubMsg, want)
		}
		if got := ts.sim.Stats().BanSecondsLeft; got != s.left {
			t.Fatalf("Stats().BanSecondsLeft=%d, want %d", got, s.left)
		}
	}

	clk.Advance(500 * time.Millisecond)
	// The ban is over: the ISP fault takes the request again.
	if e := postForm(t, ts.url(), validParams(t, clk.Now(), "md5", samplePayload)).errorResp(t); e.Code != 15 || !strings.HasPrefix(e.SubCode, "isp.") {
		t.Fatalf("after the ban: code=%d sub_code=%q, want 15 isp.*", e.Code, e.SubCode)
	}

	setFaults(t, ts, simulator.Faults{})
	if r := postForm(t, ts.url(), validParams(t, clk.Now(), "md5", samplePayload)).success(t); !r.CallSuccess {
		t.Fatalf("after the ban: call_success=false, want true")
	}
	if st := ts.sim.Stats(); st.Bans != 3 || st.Accepted != 1 || st.BanSecondsLeft != 0 {
		t.Fatalf("stats=%+v, want 3 bans, 1 accepted, no ban left", st)
	}
}

// TestQPSLimit drives flow control on a settable clock: N calls within a
// second pass, the N+1st is answered code 7 with TOP's API-limit sub_code
// and starts a QPSBanSeconds ban, and the window slides (calls one second
// apart are in different windows).
func TestQPSLimit(t *testing.T) {
	clk := &clock{t: testNow}
	ts := newSim(t, func(c *simulator.Config) {
		c.Now = clk.Now
		c.Faults.QPSLimit = 3
		c.Faults.QPSBanSeconds = 2
	})
	call := func() answer {
		return postForm(t, ts.url(), validParams(t, clk.Now(), "md5", samplePayload))
	}
	// Three calls 300 ms apart: within the limit.
	for i := range 3 {
		if i > 0 {
			clk.Advance(300 * time.Millisecond)
		}
		if r := call().success(t); !r.CallSuccess {
			t.Fatalf("call %d: call_success=false, want true", i+1)
		}
	}
	// At +900 ms the first call at +0 is still in the window: a fourth.
	clk.Advance(300 * time.Millisecond)
	e := wantCode(t, call(), 7, "accesscontrol.limited-by-api-access-count")
	if want := "This ban will last for 2 more seconds"; e.SubMsg != want || e.Msg != "App Call Limited" {
		t.Fatalf("over the limit: msg=%q sub_msg=%q, want App Call Limited / %q", e.Msg, e.SubMsg, want)
	}
	// The ban holds whatever the window says, and counts down.
	clk.Advance(1500 * time.Millisecond)
	e = wantCode(t, call(), 7, "accesscontrol.limited-by-api-access-count")
	if want := "This ban will last for 1 more seconds"; e.SubMsg != want {
		t.Fatalf("during the ban: sub_msg=%q, want %q", e.SubMsg, want)
	}
	// Past the ban, and a second after the last call: allowed again. Calls
	// exactly one second apart are in different windows.
	clk.Advance(1000 * time.Millisecond)
	for i := range 3 {
		if r := call().success(t); !r.CallSuccess {
			t.Fatalf("after the ban, call %d: call_success=false, want true", i+1)
		}
	}
	clk.Advance(time.Second)
	if r := call().success(t); !r.CallSuccess {
		t.Fatalf("a second later: call_success=false, want true")
	}
	st := ts.sim.Stats()
	if st.QPSLimited != 2 || st.Bans != 0 || st.Accepted != 7 || st.MaxPerSecond != 4 {
		t.Fatalf("stats=%+v, want 2 qps_limited, 0 bans, 7 accepted, max_per_second 4", st)
	}

	// Turned off at run time: any burst passes, and is counted.
	if code, got := postFaults(t, ts, `{"qps_limit":0}`); code != http.StatusOK || got["qps_limit"] != 0.0 || got["qps_ban_seconds"] != 2.0 {
		t.Fatalf("POST /_sim/faults qps_limit 0: HTTP %d %v, want 200 with qps_limit 0 and qps_ban_seconds kept at 2", code, got)
	}
	for i := range 6 {
		if r := call().success(t); !r.CallSuccess {
			t.Fatalf("no limit, call %d: call_success=false, want true", i+1)
		}
	}
	if st := ts.sim.Stats(); st.QPSLimited != 2 || st.MaxPerSecond != 7 {
		t.Fatalf("stats=%+v, want qps_limited still 2 and max_per_second 7", st)
	}
}

// TestInjectedBanIsNotQPSLimited keeps the two kinds of code 7 apart in
// the stats: a chaos run injects bans and must still prove the client never
// went over the limit itself.
func TestInjectedBanIsNotQPSLimited(t *testing.T) {
	clk := &clock{t: testNow}
	ts := newSim(t, func(c *simulator.Config) { c.Now = clk.Now; c.Faults.QPSLimit = 100 })
	setFaults(t, ts, simulator.Faults{QPSLimit: 100, BanSeconds: 5})
	wantCode(t, postForm(t, ts.url(), validParams(t, clk.Now(), "md5", samplePayload)), 7, "accesscontrol.limited-by-app-access-count")
	if st := ts.sim.Stats(); st.Bans != 1 || st.QPSLimited != 0 {
		t.Fatalf("stats=%+v, want 1 ban, 0 qps_limited", st)
	}
}

func TestFaultHang(t *testing.T) {
	t.Run("ends when the client goes away", func(t *testing.T) {
		ts := newSim(t, func(c *simulator.Config) { c.Faults.HangRate = 1 })
		if got := ts.sim.Faults().HangDuration; got != simulator.DefaultHangDuration {
			t.Fatalf("hang_duration=%v, want the default %v", got, simulator.DefaultHangDuration)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		p := validParams(t, testNow, "md5", samplePayload)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.url(), strings.NewReader(p.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("got HTTP %d, want the request to hang until the client gives up", resp.StatusCode)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error=%v, want the client's deadline", err)
		}
		// The handler must notice and return long before the 40 s hang ends.
		for ts.sim.Stats().Hangs != 1 {
			if time.Since(start) > 5*time.Second {
				t.Fatalf("stats=%+v, want the hang counted once the client left", ts.sim.Stats())
			}
			time.Sleep(10 * time.Millisecond)
		}
		if n := len(ts.sim.Callbacks("")); n != 0 {
			t.Fatalf("receipts=%d, want 0", n)
		}
	})

	t.Run("a patient client gets a service timeout", func(t *testing.T) {
		ts := newSim(t, func(c *simulator.Config) {
			c.Faults.HangRate = 1
			c.Faults.HangDuration = 50 * time.Millisecond
		})
		start := time.Now()
		wantCode(t, postForm(t, ts.url(), validParams(t, testNow, "md5", samplePayload)), 15, "isp.remote-service-timeout")
		if d := time.Since(start); d < 50*time.Millisecond {
			t.Fatalf("answer after %v, want at least the 50ms hang", d)
		}
	})
}

// outcomeTrace sends n valid requests and describes each answer.
func outcomeTrace(t *testing.T, seed int64, n int) []string {
	t.Helper()
	ts := newSim(t, func(c *simulator.Config) {
		c.Seed = seed
		c.Faults = simulator.Faults{ISPErrorRate: 0.25, HTTP502Rate: 0.25}
	})
	var trace []string
	for i := range n {
		a := postForm(t, ts.url(), validParams(t, testNow, "md5", payloadFor(fmt.Sprintf("BIZ-%d", i), 1, 1)))
		switch {
		case a.status == http.StatusBadGateway:
			trace = append(trace, "502")
		case a.root["error_response"] != nil:
			e := a.errorResp(t)
			trace = append(trace, fmt.Sprintf("%d/%s/%s", e.Code, e.SubCode, e.RequestID))
		default:
			trace = append(trace, "ok/"+a.success(t).RequestID)
		}
	}
	return trace
}

func TestSameSeedSameSequence(t *testing.T) {
	const n = 60
	first, again, other := outcomeTrace(t, 7, n), outcomeTrace(t, 7, n), outcomeTrace(t, 8, n)
	if strings.Join(first, " ") != strings.Join(again, " ") {
		t.Fatalf("seed 7 gave two sequences:\n%v\n%v", first, again)
	}
	if strings.Join(first, " ") == strings.Join(other, " ") {
		t.Fatalf("seeds 7 and 8 gave the same sequence: %v", first)
	}
	kinds := map[string]int{}
	for _, o := range first {
		kinds[strings.SplitN(o, "/", 2)[0]]++
	}
	for _, k := range []string{"ok", "502", "15"} {
		if kinds[k] == 0 {
			t.Fatalf("seed 7 over %d requests gave no %q: %v", n, k, kinds)
		}
	}
}

func TestInvalidFaults(t *testing.T) {
	tests := []struct {
		name  string
		f     simulator.Faults
		field string
	}{
		{"rate above 1", simulator.Faults{ISPErrorRate: 1.5}, "isp_error_rate"},
		{"negative rate", simulator.Faults{HangRate: -0.1}, "hang_rate"},
		{"rates add up past 1", simulator.Faults{ISPErrorRate: 0.6, HTTP502Rate: 0.5}, "isp_error_rate+hang_rate+http502_rate"},
		{"negative latency", simulator.Faults{Latency: -time.Second}, "latency"},
		{"negative ban", simulator.Faults{BanSeconds: -1}, "ban_seconds"},
		{"bad pattern", simulator.Faults{RejectBizIDPattern: "(["}, "reject_biz_id_pattern"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newSim(t, func(c *simulator.Config) { c.Faults.Latency = time.Millisecond })
			err := ts.sim.SetFaults(tt.f)
			var fe *simulator.FaultsError
			if !errors.As(err, &fe) {
				t.Fatalf("SetFaults error=%v, want *FaultsError", err)
			}
			if len(fe.Problems) != 1 || fe.Problems[0].Field != tt.field {
				t.Fatalf("problems=%+v, want one about %s", fe.Problems, tt.field)
			}
			if got := ts.sim.Faults().Latency; got != time.Millisecond {
				t.Fatalf("faults changed by an invalid SetFaults: latency=%v", got)
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	_, err := simulator.New(simulator.Config{Faults: simulator.Faults{HTTP502Rate: 2}})
	var ce *simulator.ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("New error=%v, want *ConfigError", err)
	}
	var fields []string
	for _, p := range ce.Problems {
		fields = append(fields, p.Field)
	}
	if got, want := strings.Join(fields, ","), "app_key,app_secret,faults.http502_rate"; got != want {
		t.Fatalf("problem fields=%s, want %s", got, want)
	}

	_, err = simulator.New(simulator.Config{AppSecret: top.Secret(testSecret)})
	if err == nil || strings.Contains(err.Error(), testSecret) || !strings.Contains(err.Error(), "app_key") {
		t.Fatalf("New error=%v, want one naming app_key without the secret", err)
	}
}
