package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/workflows"
)

func TestTargetsAndMarkdown(t *testing.T) {
	run := func(acceptP99, deliveryP50, deliveryP99 float64) openRun {
		return openRun{Accept: Percentiles{P99: acceptP99}, Delivery: Percentiles{P50: deliveryP50, P99: deliveryP99}, EagerShare: 1,
			ActivityMeanMS: 10, TOPCallMeanMS: 4}
	}
	lvl := openLevel{Load: 0.5, LifecyclesPerS: 4,
		Baseline:      []openRun{run(10, 0.2, 5), run(10, 3, 5), run(10, 2, 5)},
		Insuranceflow: []openRun{run(12, 1.5, 40), run(40, 9, 150), run(13, 3, 60)},
	}
	for i := range lvl.Insuranceflow {
		lvl.Insuranceflow[i].History.CompletionTaskWait = Percentiles{P50: 1.4, P99: 14.5}
		lvl.Insuranceflow[i].History.CallbackOpen = Percentiles{P50: 5.2, P99: 17}
		lvl.Insuranceflow[i].History.Prompt = Percentiles{Count: 40 - i, P50: 1.5, P99: 20}
		lvl.Insuranceflow[i].History.Deferred = Percentiles{Count: 60 + i, P50: 6, P99: 22}
		lvl.Baseline[i].History.CompletionTaskWait = Percentiles{P50: 1.3, P99: 11}
		lvl.Baseline[i].History.CallbackOpen = Percentiles{P50: 2.6, P99: 9}
		lvl.Baseline[i].History.Prompt = Percentiles{Count: 80 + i, P50: 0.1, P99: 6.7}
		lvl.Baseline[i].History.Deferred = Percentiles{Count: 20 - i, P50: 4.8, P99: 9.1}
	}
	judgeLevel(&lvl)
	// Per round: delivery 1.5÷max(0.2,1)=1.5, 9÷3=3, 3÷2=1.5 → median 1.5;
	// accept 1.2, 4, 1.3 → 1.3; own delivery p99 40, 150, 60 → 60.
	if lvl.DeliveryP50Ratio.Median != 1.5 || lvl.DeliveryP50Ratio.Max != 3 || lvl.AcceptP99Ratio.Median != 1.3 || lvl.DeliveryP99.Median != 60 {
		t.Fatalf("level judged as %+v", lvl)
	}
	r := &results{
		Command:    "go run ./bench -n=10",
		FinishedAt: time.Date(2025, 4, 8, 10, 0, 0, 0, time.UTC),
		Machine:    machine{CPUs: 2, CPUModel: "Test CPU", OS: "linux/amd64", GoVersion: "go1.26.8", TemporalServer: "1.2.3", TemporalMode: "dev server", LoadAvgStart: 0.5, LoadAvgEnd: 1.25},
		Config:     config{Lifecycles: 10, Concurrency: 2, RetryLifecycles: 3, Rounds: 3, OpenSeconds: 12, Workers: 1},
		Phases:     []phase{{Name: "baseline", Seconds: 3}},
		Saturation: []satRound{
			{Throughput: 0.95, AcceptP99: 3, VisibleThroughput: 0.97, VisibleOverBaseline: 0.98,
				Insuranceflow:   loadResult{LifecyclesPerSec: 19, CPU: cpuBudget{Total: 100}},
				Baseline:        loadResult{LifecyclesPerSec: 20, CPU: cpuBudget{Total: 60}},
				VisibleBaseline: loadResult{LifecyclesPerSec: 19.6, CPU: cpuBudget{Total: 70, Server: 55}}},
			{Throughput: 0.85, AcceptP99: 1.2, VisibleThroughput: 0.94, VisibleOverBaseline: 0.9,
				Insuranceflow:   loadResult{LifecyclesPerSec: 17, CPU: cpuBudget{Total: 80}},
				Baseline:        loadResult{LifecyclesPerSec: 20, CPU: cpuBudget{Total: 60}},
				VisibleBaseline: loadResult{LifecyclesPerSec: 18}},
			{Throughput: 0.92, AcceptP99: 2, VisibleThroughput: 0.97, VisibleOverBaseline: 0.95,
				Insuranceflow:   loadResult{LifecyclesPerSec: 18.4, CPU: cpuBudget{Total: 90}},
				Baseline:        loadResult{LifecyclesPerSec: 20, CPU: cpuBudget{Total: 45}},
				VisibleBaseline: loadResult{LifecyclesPerSec: 19}},
		},
		Insuranceflow: loadResult{LifecyclesPerSec: 9, Accept: Percentiles{P99: 30}, HeartbeatsPerLifecycle: 0.5,
			CPU:         cpuBudget{Server: 60, Workers: 30, TOPSim: 5, Bench: 5, Total: 100},
			AcceptFirst: Percentiles{P50: 49.4, P95: 99.5, P99: 209.9}, AcceptLater: Percentiles{P50: 154.5, P95: 217.4, P99: 260}},
		Baseline: loadResult{LifecyclesPerSec: 10, Accept: Percentiles{P99: 10},
			CPU:         cpuBudget{Server: 50, Workers: 0.5, TOPSim: 0.5, Bench: 9, Total: 60},
			AcceptFirst: Percentiles{P50: 13.9, P95: 158.7, P99: 350.6}, AcceptLater: Percentiles{P50: 104.3, P95: 139.6, P99: 147.7}},
		OpenLoop: []openLevel{lvl},
		Actions:  actionFigures{PerLifecycle5: 15, Baseline5: 11, VisibleBaseline5: 15, Dispatch: dispatchFigures{Queued: 10, SameTask: 10}},
		Open:     &openFigures{GrowthRatio: 4, SubLinear: false, Judged: true},
	}
	r.Ratios, _, _ = summariseRounds(r.Saturation)
	// Visible baseline ÷ baseline per round: 0.98, 0.90, 0.95.
	if r.Ratios.Throughput.Median != 0.92 || r.Ratios.AcceptP99.Median != 2 ||
		r.Ratios.VisibleThroughput.Median != 0.97 || !slices.Equal(r.Ratios.VisibleOverBaseline.Rounds, []float64{0.98, 0.9, 0.95}) || r.Ratios.VisibleOverBaseline.Median != 0.95 {
		t.Fatalf("ratios %+v, want the medians 0.92, 2, 0.97 and 0.95 (0.90–0.98)", r.Ratios)
	}
	r.Targets = targets(r)
	want := map[string]bool{
		"all lifecycles completed":                                         true,
		"saturation throughput ÷ baseline (median of rounds)":              true,
		"saturation accept p99 ÷ baseline update p99 (median of rounds)":   false,
		"delivery p50 at 50 % load ÷ baseline's (median of rounds)":        true,
		"accept p99 at 50 % load ÷ baseline update p99 (median of rounds)": true,
		"delivery p50 at 50 % load, ms (median of rounds)":                 true,
		"delivery p99 at 50 % load, ms (median of rounds)":                 true,
		"Temporal actions per 5-event lifecycle (heartbeats included)":     true,
		"worker RSS sub-linear in open policies":                           false,
	}
	if len(r.Targets) != len(want) {
		t.Fatalf("%d targets, want %d: %+v", len(r.Targets), len(want), r.Targets)
	}
	for _, tg := range r.Targets {
		if w, ok := want[tg.Name]; !ok || w != tg.Pass {
			t.Fatalf("target %q pass=%v, want %v (known: %v)", tg.Name, tg.Pass, w, ok)
		}
	}
	md := markdown(r)
	for _, s := range []string{
		"| saturation throughput ÷ baseline (median of rounds) | ≥ 0.9 | 0.92 | PASS |",
		"| Temporal actions per 5-event lifecycle (heartbeats included) | ≤ 16 | 15.50 | PASS |",
		"| saturation accept p99 ÷ baseline update p99 (median of rounds) | ≤ 1.5 | 2.00 | FAIL |",
		// CPU ratios per round: 60÷100, 60÷80, 45÷90.
		"| 1 | 19.00 | 20.00 | 0.95 | 0.0 | 0.0 | 3.00 | 100.0 / 60.0 | 0.60 |",
		"the same Temporal actions per 5-event lifecycle (15.00; insuranceflow 15.00, the baseline 11.00)",
		"| 1 | 19.60 | 0.98 | 0.97 | 70.0 (55.0) |",
		"| 2 | 18.00 | 0.90 | 0.94 | — |",
		"| **median (min–max)** | | **0.95 (0.90–0.98)** | **0.97 (0.94–0.97)** | |",
		"| **median (min–max)** | | | **0.92 (0.85–0.95)** | | | **2.00 (1.20–3.00)** | | **0.60 (0.50–0.75)** |",
		"| Temporal dev server CPU ms per lifecycle | 60.0 | 50.0 | 1.20 |",
		"| CPU ms per lifecycle, all processes: total (server / workers / topsim / bench process) | 100.0 (60.0 / 30.0 / 5.0 / 5.0) | 60.0 (50.0 / 0.5 / 0.5 / 9.0) | 1.67 |",
		"| 50 % | 4.00 lifecycles/s",
		"| | | ratio, median (min–max) | p99 1.30 (1.20–4.00) | p50 1.50 (1.50–3.00) | |",
		"of 10 callbacks already queued when the previous one completed, 10 were scheduled by the very workflow task",
		"the DeliverCallback activity takes 10.0 ms, of which the TOP call (signing, HTTP to topsim and back) 4.0 ms; the other 6.0 ms",
		"| | | baseline | 0.0 / 0.0 / 10.0 / 0.0 | 2.0 / 0.0 / 5.0 / 0.0 | 100 % |",
		"| … of a lifecycle's first event (it starts the workflow) | 49.4 / 99.5 / 209.9 | 13.9 / 158.7 / 350.6 | 0.60 (p99) |",
		"| … of the events after it | 154.5 / 217.4 / 260.0 | 104.3 / 139.6 / 147.7 | 1.76 (p99) |",
		"waited p50 1.4 / p99 14.5 ms to reach the worker (the baseline's: 1.3 / 11.0 ms), read from up to 100 histories per run",
		"insuranceflow's callbacks stay open p50 5.2 / p99 17.0 ms; 61 % of its events waited for the one before them (delivered in p50 6.0 / p99 22.0), the others were delivered in p50 1.5 / p99 20.0; " +
			"the baseline's callbacks stay open p50 2.6 / p99 9.0 ms; 19 % of its events waited for the one before them (delivered in p50 4.8 / p99 9.1), the others were delivered in p50 0.1 / p99 6.7.",
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
	t.Run("a cluster run judges ratios, not absolute latencies, and has its own section", func(t *testing.T) {
		cl := *r
		cl.Config.Cluster, cl.Config.Workers = "Temporal on PostgreSQL", 2
		for _, tg := range targets(&cl) {
			if strings.Contains(tg.Name, ", ms") {
				t.Fatalf("absolute target %q applied to a cluster run", tg.Name)
			}
		}
		sec := readmeSection(&cl)
		if !strings.HasPrefix(sec, "<!-- bench-cluster-2w:start -->\n### Temporal on PostgreSQL, 2 workers") || !strings.HasSuffix(sec, "<!-- bench-cluster-2w:end -->") {
			t.Fatalf("cluster section:\n%s", sec)
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

// TestBaselineWorkflow runs the baseline and the visible baseline in the
// SDK's test environment over a 5-event lifecycle: each answers every
// update with its sequence number and closes after the planned number of
// callbacks; the visible one also arms one timer and upserts PolicyState
// exactly where a delivered event moved it, as insuranceflow does.
func TestBaselineWorkflow(t *testing.T) {
	for _, visible := range []bool{false, true} {
		t.Run(map[bool]string{false: "baseline", true: "visible baseline"}[visible], func(t *testing.T) {
			var ts testsuite.WorkflowTestSuite
			env := ts.NewTestWorkflowEnvironment()
			cl := newCallbackLog()
			env.RegisterActivityWithOptions(cl.Callback, activityOptions())
			calls, timers := 0, 0
			env.SetOnActivityStartedListener(func(*activity.Info, context.Context, converter.EncodedValues) { calls++ })
			env.SetOnTimerScheduledListener(func(string, time.Duration) { timers++ })
			var upserted []string
			env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
				sa := args.Get(0).(temporal.SearchAttributes)
				v, ok := sa.GetKeyword(workflows.SearchPolicyState)
				if !ok || sa.Size() != 1 {
					t.Errorf("upsert %v, want PolicyState alone", sa)
				}
				upserted = append(upserted, v)
			}).Return(nil).Maybe()
			steps := happySteps()
			var seqs []int
			for i, st := range steps {
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
					}, baselineEvent{Stage: int(st.Stage), Status: int(st.Status)})
				}, time.Duration(i+1)*time.Second)
			}
			env.ExecuteWorkflow(baselinePolicy, baselineInput{Events: len(steps), Visible: visible})
			if !env.IsWorkflowCompleted() {
				t.Fatal("baseline workflow did not complete")
			}
			var delivered int
			if err := env.GetWorkflowResult(&delivered); err != nil {
				t.Fatal(err)
			}
			if delivered != 5 || calls != 5 {
				t.Fatalf("delivered=%d activities=%d, want 5 and 5", delivered, calls)
			}
			if !slices.Equal(seqs, []int{1, 2, 3, 4, 5}) {
				t.Fatalf("update answers %v, want [1 2 3 4 5]", seqs)
			}
			if got := cl.started("default-test-workflow-id"); len(got) != 5 {
				t.Fatalf("callback log has %d starts for the workflow, want 5", len(got))
			}
			wantUpserts, wantTimers := []string(nil), 0
			if visible {
				// pre_insured is set at the start and the endorse keeps insured.
				wantUpserts, wantTimers = []string{"underwritten", "insured", "cancelled"}, 1
			}
			if !slices.Equal(upserted, wantUpserts) || timers != wantTimers {
				t.Fatalf("upserts %v and %d timers, want %v and %d", upserted, timers, wantUpserts, wantTimers)
			}
		})
	}
}

// TestStateAfter: failures keep the state; an endorsement keeps insured.
func TestStateAfter(t *testing.T) {
	ev := func(st insurance.Stage, status insurance.Status) baselineEvent {
		return baselineEvent{Stage: int(st), Status: int(status)}
	}
	for _, tt := range []struct {
		from fsm.State
		ev   baselineEvent
		want fsm.State
	}{
		{fsm.StatePreInsured, ev(insurance.StageUnderwrite, insurance.StatusFailure), fsm.StatePreInsured},
		{fsm.StatePreInsured, ev(insurance.StageUnderwrite, insurance.StatusSuccess), fsm.StateUnderwritten},
		{fsm.StateUnderwritten, ev(insurance.StageInsure, insurance.StatusSuccess), fsm.StateInsured},
		{fsm.StateInsured, ev(insurance.StageEndorse, insurance.StatusSuccess), fsm.StateInsured},
		{fsm.StateInsured, ev(insurance.StageCancel, insurance.StatusSuccess), fsm.StateCancelled},
	} {
		if got := stateAfter(tt.from, tt.ev); got != tt.want {
			t.Errorf("stateAfter(%s, %+v)=%s, want %s", tt.from, tt.ev, got, tt.want)
		}
	}
}
