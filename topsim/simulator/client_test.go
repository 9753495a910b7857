package simulator_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/top"
	"github.com/insuranceflow/insuranceflow/topsim/simulator"
)

// The project's own client, end to end against the simulator: every class
// the client knows must be reachable, and land in the right class.

func newClient(t *testing.T, ts testSim, edit func(*top.Config)) *top.Client {
	t.Helper()
	cfg := top.Config{
		GatewayURL: ts.url(),
		AppKey:     testAppKey,
		AppSecret:  top.Secret(testSecret),
		Now:        func() time.Time { return testNow },
	}
	if edit != nil {
		edit(&cfg)
	}
	c, err := top.New(cfg)
	if err != nil {
		t.Fatalf("top.New: %v", err)
	}
	return c
}

func sampleResult(bizID string) insurance.Result {
	return insurance.Result{
		BizID:                  bizID,
		PolicyNumber:           "12345678A",
		InsuranceCompany:       insurance.CompanyCPIC,
		Stage:                  insurance.StageUnderwrite,
		Status:                 insurance.StatusSuccess,
		TimeOfOccurrence:       "2025-04-08 09:55:00",
		BankAccountManagerName: managerName,
		InsuranceType:          insurance.TypePerformanceBond,
		RequestID:              "req-" + bizID,
	}
}

func TestTopClientDelivered(t *testing.T) {
	for _, m := range top.SignMethods() {
		for _, simplify := range []bool{false, true} {
			t.Run(string(m)+map[bool]string{false: "", true: "/simplify"}[simplify], func(t *testing.T) {
				ts := newSim(t, nil)
				c := newClient(t, ts, func(cfg *top.Config) { cfg.SignMethod = m; cfg.Simplify = simplify })
				r := sampleResult("24010900100YSKSSG")
				out := c.Callback(context.Background(), r)
				if out.Class != top.ClassDelivered {
					t.Fatalf("class=%v (%s), want delivered", out.Class, out.Summary())
				}
				got := ts.sim.Callbacks(r.BizID)
				if len(got) != 1 {
					t.Fatalf("receipts=%d, want 1", len(got))
				}
				want, err := r.APIJSON()
				if err != nil {
					t.Fatalf("APIJSON: %v", err)
				}
				rc := got[0]
				if string(rc.Payload) != want || rc.Stage != r.Stage || rc.Status != r.Status || rc.RequestID != r.RequestID ||
					rc.SignMethod != string(m) || rc.TOPRequestID != out.RequestID {
					t.Fatalf("receipt=%+v, want the client's payload %s and request ids %s/%s", rc, want, r.RequestID, out.RequestID)
				}
			})
		}
	}
}

func TestTopClientClasses(t *testing.T) {
	tests := []struct {
		name   string
		faults simulator.Faults
		client func(*top.Config)
		class  top.Class
		check  func(t *testing.T, o top.Outcome)
	}{
		{
			name:   "rejected by the business",
			faults: simulator.Faults{RejectBizIDPattern: "^BIZ", RejectFailCode: "POLICY_UNKNOWN"},
			class:  top.ClassRejected,
			check: func(t *testing.T, o top.Outcome) {
				if o.FailCode != "POLICY_UNKNOWN" {
					t.Fatalf("fail_code=%q, want POLICY_UNKNOWN", o.FailCode)
				}
			},
		},
		{
			name:   "isp error",
			faults: simulator.Faults{ISPErrorRate: 1},
			class:  top.ClassRetryable,
			check: func(t *testing.T, o top.Outcome) {
				if o.Code != 15 || !strings.HasPrefix(o.SubCode, "isp.") {
					t.Fatalf("code=%d sub_code=%q, want 15 isp.*", o.Code, o.SubCode)
				}
			},
		},
		{
			name:   "HTTP 502",
			faults: simulator.Faults{HTTP502Rate: 1},
			class:  top.ClassRetryable,
			check: func(t *testing.T, o top.Outcome) {
				if o.HTTPStatus != 502 {
					t.Fatalf("http_status=%d, want 502", o.HTTPStatus)
				}
			},
		},
		{
			name:   "hang past the call timeout",
			faults: simulator.Faults{HangRate: 1},
			client: func(c *top.Config) { c.CallTimeout = 200 * time.Millisecond },
			class:  top.ClassRetryable,
			check: func(t *testing.T, o top.Outcome) {
				if o.HTTPStatus != 0 || !strings.Contains(o.Detail, "timeout") {
					t.Fatalf("outcome=%s, want a call timeout without an answer", o.Summary())
				}
			},
		},
		{
			name:   "ban",
			faults: simulator.Faults{BanSeconds: 17},
			class:  top.ClassRateLimited,
			check: func(t *testing.T, o top.Outcome) {
				if o.Code != 7 || o.RetryAfter != 17*time.Second {
					t.Fatalf("code=%d retry_after=%v, want 7 and 17s", o.Code, o.RetryAfter)
				}
			},
		},
		{
			name:   "wrong secret",
			client: func(c *top.Config) { c.AppSecret = top.Secret("not-the-secret") },
			class:  top.ClassPermanent,
			check: func(t *testing.T, o top.Outcome) {
				if o.Code != 25 {
					t.Fatalf("code=%d, want 25", o.Code)
				}
			},
		},
		{
			name:   "clock 11 minutes fast",
			client: func(c *top.Config) { c.Now = func() time.Time { return testNow.Add(11 * time.Minute) } },
			class:  top.ClassPermanent,
			check: func(t *testing.T, o top.Outcome) {
				if o.Code != 31 {
					t.Fatalf("code=%d, want 31", o.Code)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newSim(t, func(c *simulator.Config) { c.Faults = tt.faults })
			c := newClient(t, ts, tt.client)
			out := c.Callback(context.Background(), sampleResult("BIZ-1"))
			if out.Class != tt.class {
				t.Fatalf("class=%v (%s), want %v", out.Class, out.Summary(), tt.class)
			}
			tt.check(t, out)
			if n := len(ts.sim.Callbacks("")); n != 0 {
				t.Fatalf("receipts=%d, want 0 for a callback that was not delivered", n)
			}
		})
	}
}
