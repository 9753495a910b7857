package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/insurance"
)

// TestReportRefusesAFarFutureTime runs `starter report` with the real
// backends: an event dated beyond MAX_FUTURE_SKEW is bad input naming
// time_of_occurrence, and Temporal is never asked. A smaller skew from the
// environment is honoured.
func TestReportRefusesAFarFutureTime(t *testing.T) {
	for _, tt := range []struct {
		name  string
		skew  string // MAX_FUTURE_SKEW; "" = the default 10m
		ahead time.Duration
		ok    bool
	}{
		{"a year ahead, default skew", "", 365 * 24 * time.Hour, false},
		{"a minute ahead, default skew", "", time.Minute, true},
		{"five minutes ahead, MAX_FUTURE_SKEW=2m", "2m", 5 * time.Minute, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fe := &recordingFrontend{}
			c, _ := liveCLI()
			c.env = map[string]string{
				"TEMPORAL_ADDRESS": serveFrontend(t, fe),
				"DATABASE_URL":     "sqlite://" + filepath.Join(t.TempDir(), "audit.db"),
				"MAX_FUTURE_SKEW":  tt.skew,
			}
			at := time.Now().Add(tt.ahead).In(insurance.Location()).Format(insurance.TimeLayout)
			res := c.run(t, "report", "--biz-id", "S1", "--stage", "pre_insure", "--status", "success",
				"--insurance-type", "home_property", "--time", at)
			if tt.ok {
				if res.code != exitOK {
					t.Fatalf("exit=%d, want 0; stderr=%s", res.code, res.stderr)
				}
				return
			}
			if res.code != exitBadInput {
				t.Fatalf("exit=%d, want %d; stdout=%s stderr=%s", res.code, exitBadInput, res.stdout, res.stderr)
			}
			if !strings.Contains(res.stderr, "time_of_occurrence: "+at+" is more than") {
				t.Fatalf("stderr does not name time_of_occurrence and its time:\n%s", res.stderr)
			}
			fe.mu.Lock()
			n := len(fe.requests)
			fe.mu.Unlock()
			if n != 0 {
				t.Fatalf("Temporal received %d update-with-start requests, want none", n)
			}
		})
	}
}

func TestBadMaxFutureSkewIsBadInput(t *testing.T) {
	b := &fakeBackends{ops: newFakePolicies()}
	res := cli{backends: b, env: map[string]string{"MAX_FUTURE_SKEW": "later"}}.run(t, "list")
	if res.code != exitBadInput || !strings.Contains(res.stderr, `MAX_FUTURE_SKEW: "later" is not a positive duration`) {
		t.Fatalf("exit=%d stderr=%q, want bad input naming MAX_FUTURE_SKEW", res.code, res.stderr)
	}
	if b.policiesCalls != 0 {
		t.Fatal("connected despite an unusable setting")
	}
}
