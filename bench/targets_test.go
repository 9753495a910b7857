package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
)

func TestTargetsAndMarkdown(t *testing.T) {
	r := &results{
		Command:       "go run ./bench -n=10",
		FinishedAt:    time.Date(2025, 4, 8, 10, 0, 0, 0, time.UTC),
		Machine:       machine{CPUs: 2, CPUModel: "Test CPU", OS: "linux/amd64", GoVersion: "go1.26.8", TemporalServer: "1.2.3", TemporalMode: "dev server", LoadAvgStart: 0.5, LoadAvgEnd: 1.25},
		Config:        config{Lifecycles: 10, Concurrency: 2, RetryLifecycles: 3},
		Phases:        []phase{{Name: "baseline", Seconds: 3}},
		Insuranceflow: loadResult{LifecyclesPerSec: 9, Accept: Percentiles{P99: 30}},
		Baseline:      loadResult{LifecyclesPerSec: 10, Accept: Percentiles{P99: 10}},
		Ratios:        ratios{Throughput: 0.9, AcceptP99: 3},
		Actions:       actionFigures{PerLifecycle5: 15},
		Open:          &openFigures{GrowthRatio: 4, SubLinear: false, Judged: true},
	}
	r.Targets = targets(r)
	want := map[string]bool{
		"all lifecycles completed":               true,
		"throughput ÷ baseline":                  true,
		"accept p99 ÷ baseline update p99":       false,
		"Temporal actions per 5-event lifecycle": true,
		"worker RSS sub-linear in open policies": false,
	}
	if len(r.Targets) != len(want) {
		t.Fatalf("%d targets, want %d", len(r.Targets), len(want))
	}
	for _, tg := range r.Targets {
		if w, ok := want[tg.Name]; !ok || w != tg.Pass {
			t.Fatalf("target %q pass=%v, want %v (known: %v)", tg.Name, tg.Pass, w, ok)
		}
	}
	md := markdown(r)
	for _, s := range []string{
		"| throughput ÷ baseline | ≥ 0.8 | 0.90 | PASS |",
		"| accept p99 ÷ baseline update p99 | ≤ 1.5 | 3.00 | FAIL |",
		"| lifecycles/s completed (all callbacks delivered) | 9.00 | 10.00 | **0.90** |",
	} {
		if !strings.Contains(md, s) {
			t.Fatalf("markdown lacks %q:\n%s", s, md)
		}
	}
	t.Run("a small open phase is not judged", func(t *testing.T) {
		small := *r
		small.Open = &openFigures{GrowthRatio: 1, SubLinear: true, Judged: false}
		for _, tg := range targets(&small) {
			if tg.Name == "worker RSS sub-linear in open policies" {
				t.Fatal("the RSS target was applied to an unjudged phase")
			}
		}
		if md := markdown(&small); !strings.Contains(md, "not judged: fewer than 1000 open policies") {
			t.Fatalf("markdown does not say the phase was not judged:\n%s", md)
		}
	})
	sec := readmeSection(r)
	if !strings.HasPrefix(sec, readmeStart+"\n## Performance") || !strings.HasSuffix(sec, readmeEnd) {
		t.Fatalf("section not framed by the markers:\n%s", sec)
	}
	for _, s := range []string{"`go run ./bench -n=10`", "2 × Test CPU", "Temporal server 1.2.3", "2025-04-08 10:00 UTC", "at the start / end: 0.50 / 1.25"} {
		if !strings.Contains(sec, s) {
			t.Fatalf("section lacks %q:\n%s", s, sec)
		}
	}
}

// TestBaselineWorkflow runs the baseline in the SDK's test environment: it
// answers each update with its sequence number and closes after the
// planned number of callbacks.
func TestBaselineWorkflow(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterActivityWithOptions(baselineCallback, activityOptions())
	calls := 0
	env.SetOnActivityStartedListener(func(*activity.Info, context.Context, converter.EncodedValues) { calls++ })
	var seqs []int
	for i := range 3 {
		env.RegisterDelayedCallback(func() {
			env.UpdateWorkflow(baselineUpdate, "", &testsuite.TestUpdateCallback{
				OnReject: func(err error) { t.Errorf("update %d rejected: %v", i, err) },
				OnAccept: func() {},
				OnComplete: func(v any, err error) {
					if err != nil {
						t.Errorf("update %d: %v", i, err)
						return
					}
					seqs = append(seqs, v.(int))
				},
			}, baselineEvent{Stage: i + 1, Status: 1})
		}, time.Duration(i+1)*time.Second)
	}
	env.ExecuteWorkflow(baselinePolicy, baselineInput{Events: 3})
	if !env.IsWorkflowCompleted() {
		t.Fatal("baseline workflow did not complete")
	}
	var delivered int
	if err := env.GetWorkflowResult(&delivered); err != nil {
		t.Fatal(err)
	}
	if delivered != 3 || calls != 3 {
		t.Fatalf("delivered=%d activities=%d, want 3 and 3", delivered, calls)
	}
	if len(seqs) != 3 || seqs[0] != 1 || seqs[1] != 2 || seqs[2] != 3 {
		t.Fatalf("update answers %v, want [1 2 3]", seqs)
	}
}
