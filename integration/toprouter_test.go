package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/top"
)

// The credentials of the worker's TOP-compatible endpoint (workerEnv sets
// them): an integrator's own app, not the one the worker calls TOP with.
const (
	testRouterAppKey    = "integration-router-app-key"
	testRouterAppSecret = "integration-router-app-secret"
)

// routerClient is the project's own TOP client pointed at the ingress, as an
// integrator that used to call TOP directly would configure it.
func routerClient(t *testing.T, method top.SignMethod, simplify bool) *top.Client {
	t.Helper()
	c, err := top.New(top.Config{
		GatewayURL: env.IngressURL + "/router/rest",
		AppKey:     testRouterAppKey,
		AppSecret:  top.Secret(testRouterAppSecret),
		SignMethod: method,
		Simplify:   simplify,
		HTTPClient: httpClient, // checked against api/openapi.yaml
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// result is the event of event(bizID, ...) as an insurance.Result.
func result(t *testing.T, bizID string, stage, status, minutes int) insurance.Result {
	t.Helper()
	b, err := json.Marshal(event(bizID, stage, status, minutes))
	if err != nil {
		t.Fatal(err)
	}
	r, err := insurance.Decode(b)
	if err != nil {
		t.Fatalf("event: %v", err)
	}
	return r
}

// payloadWithout decodes a callback payload received by topsim and drops the
// fields that differ between two policies.
func payloadWithout(t *testing.T, raw json.RawMessage, bizID string) map[string]any {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatalf("payload %s: %v", raw, err)
	}
	if p["biz_id"] != bizID || p["policy_number"] != "P-"+bizID {
		t.Fatalf("payload %s, want biz_id %s and its policy number", raw, bizID)
	}
	if id, _ := p["request_id"].(string); id == "" {
		t.Fatalf("payload %s has no request_id", raw)
	}
	delete(p, "biz_id")
	delete(p, "policy_number")
	delete(p, "request_id")
	return p
}

func TestTOPRouterEventReachesTOPLikeAJSONOne(t *testing.T) {
	before := scrapeMetrics(t)
	viaJSON, viaTOP := newBizID("RJ"), newBizID("RT")
	steps := lifecycle[:3]
	methods := []top.SignMethod{top.SignMD5, top.SignHMAC, top.SignHMACSHA256}
	for i, step := range steps {
		mustAccept(t, event(viaJSON, step.stage, step.status, i), int64(i+1), step.state)
		out := routerClient(t, methods[i], i == 1).Callback(context.Background(), result(t, viaTOP, step.stage, step.status, i))
		if out.Class != top.ClassDelivered || out.RequestID == "" {
			t.Fatalf("event %d through /router/rest (%s): %s, want call_success=true with a request_id", i+1, methods[i], out.Summary())
		}
	}

	gotJSON := waitReceipts(t, viaJSON, len(steps), 30*time.Second)
	gotTOP := waitReceipts(t, viaTOP, len(steps), 30*time.Second)
	for i := range steps {
		j, p := gotJSON[i], gotTOP[i]
		if j.StageName != p.StageName || j.StatusName != p.StatusName || j.SignMethod != p.SignMethod {
			t.Errorf("callback %d: JSON-reported %s/%s signed %s, TOP-reported %s/%s signed %s; want the same",
				i+1, j.StageName, j.StatusName, j.SignMethod, p.StageName, p.StatusName, p.SignMethod)
		}
		pj, pt := payloadWithout(t, j.Payload, viaJSON), payloadWithout(t, p.Payload, viaTOP)
		if !maps.Equal(pj, pt) {
			t.Errorf("callback %d payload: JSON-reported %v, TOP-reported %v; want the same fields", i+1, pj, pt)
		}
		if pt["bank_account_manager_name"] != "王小丫" {
			t.Errorf("callback %d lost the account manager's name: %v", i+1, pt)
		}
	}

	sj, st := status(t, viaJSON), status(t, viaTOP)
	if sj.State != st.State || sj.CallbackState != st.CallbackState || len(sj.Events) != len(st.Events) {
		t.Fatalf("status: JSON-reported %s/%s with %d events, TOP-reported %s/%s with %d; want the same",
			sj.State, sj.CallbackState, len(sj.Events), st.State, st.CallbackState, len(st.Events))
	}
	for i := range sj.Events {
		ej, et := sj.Events[i], st.Events[i]
		if ej.Seq != et.Seq || ej.Stage != et.Stage || ej.Status != et.Status {
			t.Errorf("event %d: JSON-reported seq %d %s/%s, TOP-reported seq %d %s/%s", i+1, ej.Seq, ej.Stage, ej.Status, et.Seq, et.Stage, et.Status)
		}
	}
	eventually(t, 10*time.Second, "TOP-reported callbacks delivered", func() (bool, string) {
		st := status(t, viaTOP)
		for _, e := range st.Events {
			if e.Callback != "delivered" {
				return false, fmt.Sprintf("seq %d %s", e.Seq, e.Callback)
			}
		}
		return len(st.Events) == len(steps), fmt.Sprintf("%d events", len(st.Events))
	})

	t.Run("a re-sent event is a success and sends nothing", func(t *testing.T) {
		out := routerClient(t, top.SignHMACSHA256, false).Callback(context.Background(), result(t, viaTOP, steps[0].stage, steps[0].status, 0))
		if out.Class != top.ClassDelivered {
			t.Fatalf("duplicate through /router/rest: %s, want call_success=true", out.Summary())
		}
		time.Sleep(500 * time.Millisecond)
		if got := receipts(t, viaTOP); len(got) != len(steps) {
			t.Fatalf("topsim got %d callbacks, want %d", len(got), len(steps))
		}
	})
	t.Run("an illegal event is refused with its fail_code", func(t *testing.T) {
		out := routerClient(t, top.SignHMACSHA256, false).Callback(context.Background(), result(t, viaTOP, 1, 1, 9))
		if out.Class != top.ClassRejected || out.FailCode != "ILLEGAL_TRANSITION" || out.FailMessage == "" {
			t.Fatalf("pre_insure on an insured policy: %s, want rejected ILLEGAL_TRANSITION with a message", out.Summary())
		}
		if st := status(t, viaTOP); len(st.Events) != len(steps) || st.State != "insured" {
			t.Fatalf("status after the refusal: %s with %d events, want insured with %d", st.State, len(st.Events), len(steps))
		}
	})
	t.Run("a wrong signature never reaches the workflow", func(t *testing.T) {
		c, err := top.New(top.Config{GatewayURL: env.IngressURL + "/router/rest", AppKey: testRouterAppKey, AppSecret: "not-the-secret", HTTPClient: httpClient})
		if err != nil {
			t.Fatal(err)
		}
		other := newBizID("RX")
		out := c.Callback(context.Background(), result(t, other, 1, 1, 0))
		if out.Class != top.ClassPermanent || out.Code != top.CodeInvalidSignature {
			t.Fatalf("wrongly signed event: %s, want permanent code 25", out.Summary())
		}
		var e apiError
		if code := call(t, http.MethodGet, "/v1/policies/"+other, nil, &e); code != http.StatusNotFound {
			t.Fatalf("GET the wrongly signed policy: %d %+v, want 404", code, e.Error)
		}
	})

	after := scrapeMetrics(t)
	for _, tt := range []struct {
		series string
		want   float64
	}{
		{`insuranceflow_events_accepted_total{api="top"}`, float64(len(steps))},
		{`insuranceflow_events_rejected_total{api="top",reason="duplicate"}`, 1},
		{`insuranceflow_events_rejected_total{api="top",reason="illegal_transition"}`, 1},
	} {
		if got := after[tt.series] - before[tt.series]; got != tt.want {
			t.Errorf("%s moved by %v, want %v", tt.series, got, tt.want)
		}
	}
}
