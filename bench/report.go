package main

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"
)

// README markers: the Performance section is everything between them,
// written only by -update-readme.
const (
	readmeStart = "<!-- bench:start -->"
	readmeEnd   = "<!-- bench:end -->"
)

// target is one pass/fail criterion.
type target struct {
	Name string  `json:"name"`
	Want string  `json:"want"`
	Got  float64 `json:"got"`
	Pass bool    `json:"pass"`
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

// The targets.
const (
	wantThroughput    = 0.9   // saturation throughput ÷ baseline, at least
	wantAcceptP99     = 1.5   // accept p99 ÷ baseline update p99, at most (saturation and 50 % load)
	wantDeliveryRatio = 2.0   // delivery p50 at 50 % load ÷ baseline's, at most
	wantDeliveryP50MS = 25.0  // delivery p50 at 50 % load on the dev server, at most
	wantDeliveryP99MS = 100.0 // delivery p99 at 50 % load on the dev server, at most
	wantActions       = 16.0
	judgedLoad        = 0.5
)

// targets judges a run against the targets. Ratios are the
// median of the rounds; absolute latencies are judged on the dev server
// only (a cluster's are context: its database and network are not ours).
func targets(r *results) []target {
	failed := 0
	for _, sr := range r.Saturation {
		failed += sr.Insuranceflow.Failed + sr.Baseline.Failed
	}
	for _, l := range r.OpenLoop {
		for _, o := range slices.Concat(l.Baseline, l.Insuranceflow, l.WithTOPQPS) {
			failed += o.Failed
		}
	}
	t := []target{
		{Name: "all lifecycles completed", Want: "0 failed", Got: float64(failed), Pass: failed == 0},
		{Name: "saturation throughput ÷ baseline (median of rounds)", Want: fmt.Sprintf("≥ %g", wantThroughput),
			Got: r.Ratios.Throughput.Median, Pass: r.Ratios.Throughput.Median >= wantThroughput},
		{Name: "saturation accept p99 ÷ baseline update p99 (median of rounds)", Want: fmt.Sprintf("≤ %g", wantAcceptP99),
			Got: r.Ratios.AcceptP99.Median, Pass: r.Ratios.AcceptP99.Median > 0 && r.Ratios.AcceptP99.Median <= wantAcceptP99},
	}
	if l := r.level(judgedLoad); l != nil {
		t = append(t,
			target{Name: "delivery p50 at 50 % load ÷ baseline's (median of rounds)", Want: fmt.Sprintf("≤ %g", wantDeliveryRatio),
				Got: l.DeliveryP50Ratio.Median, Pass: l.DeliveryP50Ratio.Median <= wantDeliveryRatio},
			target{Name: "accept p99 at 50 % load ÷ baseline update p99 (median of rounds)", Want: fmt.Sprintf("≤ %g", wantAcceptP99),
				Got: l.AcceptP99Ratio.Median, Pass: l.AcceptP99Ratio.Median > 0 && l.AcceptP99Ratio.Median <= wantAcceptP99})
		if r.Config.Cluster == "" {
			t = append(t,
				target{Name: "delivery p50 at 50 % load, ms (median of rounds)", Want: fmt.Sprintf("≤ %g", wantDeliveryP50MS),
					Got: l.DeliveryP50.Median, Pass: l.DeliveryP50.Median <= wantDeliveryP50MS},
				target{Name: "delivery p99 at 50 % load, ms (median of rounds)", Want: fmt.Sprintf("≤ %g", wantDeliveryP99MS),
					Got: l.DeliveryP99.Median, Pass: l.DeliveryP99.Median <= wantDeliveryP99MS})
		}
	}
	// Heartbeats are billed as actions but are not in the histories the
	// count comes from: the server's count of them is added.
	actions := round2(r.Actions.PerLifecycle5 + r.Insuranceflow.HeartbeatsPerLifecycle)
	t = append(t, target{Name: "Temporal actions per 5-event lifecycle (heartbeats included)", Want: fmt.Sprintf("≤ %g", wantActions), Got: actions,
		Pass: r.Actions.PerLifecycle5 > 0 && actions <= wantActions})
	if r.Open != nil && r.Open.Judged {
		t = append(t, target{Name: "worker RSS sub-linear in open policies", Want: fmt.Sprintf("growth(100%%) ÷ growth(25%%) < %g", subLinearLimit),
			Got: r.Open.GrowthRatio, Pass: r.Open.SubLinear && r.Open.Failed == 0})
	}
	return t
}

// level is the open-loop level at load, nil if it was not measured.
func (r *results) level(load float64) *openLevel {
	for i := range r.OpenLoop {
		if r.OpenLoop[i].Load == load {
			return &r.OpenLoop[i]
		}
	}
	return nil
}

// medianOf is the median over runs of one figure.
func medianOf(runs []openRun, f func(openRun) float64) float64 {
	vs := make([]float64, len(runs))
	for i, o := range runs {
		vs[i] = f(o)
	}
	return spreadOf(vs).Median
}

// latencyCells renders p50 / p90 / p99 / max, each the median over runs.
func latencyCells(runs []openRun, p func(openRun) Percentiles) string {
	return fmt.Sprintf("%.1f / %.1f / %.1f / %.1f",
		medianOf(runs, func(o openRun) float64 { return p(o).P50 }),
		medianOf(runs, func(o openRun) float64 { return p(o).P90 }),
		medianOf(runs, func(o openRun) float64 { return p(o).P99 }),
		medianOf(runs, func(o openRun) float64 { return p(o).Max }))
}

// p50p99 is the medians over runs of one latency's p50 and p99.
func p50p99(runs []openRun, p func(openRun) Percentiles) (p50, p99 float64) {
	return medianOf(runs, func(o openRun) float64 { return p(o).P50 }), medianOf(runs, func(o openRun) float64 { return p(o).P99 })
}

func eagerCell(runs []openRun) string {
	v := medianOf(runs, func(o openRun) float64 { return o.EagerShare })
	if v < 0 || len(runs) == 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f %%", v*100)
}

// splitSentence says, from the histories, how a system's events split
// into those whose callback the accepting workflow task scheduled and those
// that waited for the callback before them.
func splitSentence(system string, runs []openRun) string {
	h := func(o openRun) historyFigures { return o.History }
	share := medianOf(runs, func(o openRun) float64 { return h(o).DeferredShare() })
	prompt50, prompt99 := p50p99(runs, func(o openRun) Percentiles { return h(o).Prompt })
	deferred50, deferred99 := p50p99(runs, func(o openRun) Percentiles { return h(o).Deferred })
	open50, open99 := p50p99(runs, func(o openRun) Percentiles { return h(o).CallbackOpen })
	return fmt.Sprintf("%s's callbacks stay open p50 %.1f / p99 %.1f ms; %.0f %% of its events waited for the one before them (delivered in p50 %.1f / p99 %.1f), the others were delivered in p50 %.1f / p99 %.1f",
		system, open50, open99, share, deferred50, deferred99, prompt50, prompt99)
}

// openLoopMarkdown is the open-loop table: per load and system, the
// medians over the rounds, and the ratios with their spread.
func openLoopMarkdown(r *results) string {
	var b strings.Builder
	if len(r.OpenLoop) == 0 {
		return ""
	}
	fmt.Fprintf(&b, "Lifecycles started on a clock (open loop) at shares of the capacity the closed loop measured, %.0f s per run, %d alternating rounds per system; each cell is the median over the rounds (ms):\n\n",
		r.Config.OpenSeconds, r.Config.Rounds)
	b.WriteString("| load | offered | system | accept p50 / p90 / p99 / max | delivery p50 / p90 / p99 / max | eager dispatch |\n|---|---|---|---|---|---|\n")
	for _, l := range r.OpenLoop {
		offered := fmt.Sprintf("%.2f lifecycles/s (%.1f events/s)", l.LifecyclesPerS, medianOf(l.Insuranceflow, func(o openRun) float64 { return o.EventsPerS }))
		load := fmt.Sprintf("%.0f %%", l.Load*100)
		fmt.Fprintf(&b, "| %s | %s | insuranceflow | %s | %s | %s |\n", load, offered,
			latencyCells(l.Insuranceflow, func(o openRun) Percentiles { return o.Accept }),
			latencyCells(l.Insuranceflow, func(o openRun) Percentiles { return o.Delivery }), eagerCell(l.Insuranceflow))
		if len(l.WithTOPQPS) > 0 {
			fmt.Fprintf(&b, "| | | insuranceflow, TOP_QPS=%d | %s | %s | %s |\n", l.TOPQPS,
				latencyCells(l.WithTOPQPS, func(o openRun) Percentiles { return o.Accept }),
				latencyCells(l.WithTOPQPS, func(o openRun) Percentiles { return o.Delivery }), eagerCell(l.WithTOPQPS))
		}
		fmt.Fprintf(&b, "| | | baseline | %s | %s | %s |\n",
			latencyCells(l.Baseline, func(o openRun) Percentiles { return o.Accept }),
			latencyCells(l.Baseline, func(o openRun) Percentiles { return o.Delivery }), eagerCell(l.Baseline))
		fmt.Fprintf(&b, "| | | ratio, median (min–max) | p99 %s | p50 %s | |\n", l.AcceptP99Ratio, l.DeliveryP50Ratio)
	}
	if l := r.level(judgedLoad); l != nil {
		act := medianOf(l.Insuranceflow, func(o openRun) float64 { return o.ActivityMeanMS })
		call := medianOf(l.Insuranceflow, func(o openRun) float64 { return o.TOPCallMeanMS })
		if act > 0 {
			fmt.Fprintf(&b, "\nWhere a callback's time goes at 50 %% load (the worker's own histograms, mean, median of the rounds): the DeliverCallback activity takes %.1f ms, "+
				"of which the TOP call (signing, HTTP to topsim and back) %.1f ms; the other %.1f ms are a pipelined callback's wait for the one ahead of it, the store transaction before the call (the event, the attempt's start and the fence) and the record after it, and a heartbeat and a second look only for an attempt that is no longer fresh.\n",
				act, call, act-call)
		}
		wait := func(o openRun) Percentiles { return o.History.CompletionTaskWait }
		ours50, ours99 := p50p99(l.Insuranceflow, wait)
		base50, base99 := p50p99(l.Baseline, wait)
		fmt.Fprintf(&b, "\nThe workflow task the server creates when a callback completes (the one that schedules the next queued callback) waited p50 %.1f / p99 %.1f ms to reach the worker (the baseline's: %.1f / %.1f ms), read from up to %d histories per run; "+
			"it waits for its history shard's transfer queue reader, which polls at most `history.transferProcessorMaxPollRPS` times a second (200 on the servers the bench runs, as in deploy/temporal-dynamicconfig.yaml; Temporal's default is 20, up to 50 ms between polls).\n",
			ours50, ours99, base50, base99, completionTaskHistories)
		fmt.Fprintf(&b, "\nWhy the delivery p50s differ at 50 %% load: a policy's callbacks go to TOP one at a time, in order, so an event accepted while the callback before it is open (its activity's started → completed events, by the server's clock) waits for that one. "+
			"The baseline's workflow schedules the waiting callback only in the workflow task that the completion brings; insuranceflow schedules it at once (pipelined delivery), and its activity waits in the worker until the store shows the one before it delivered, woken the moment that one ends (pipelined callbacks are left out of the open times below: their window holds that wait). "+
			"From up to %d histories per run (median of the rounds, ms): %s; %s. "+
			"Insuranceflow's callback is open longer by the work the baseline's no-op skips: the fenced store write, the signed call to topsim and its answer, and the record of the outcome; "+
			"the bench sends a lifecycle's next event as soon as the previous one is accepted, so that extra time decides how many events wait.\n",
			completionTaskHistories, splitSentence("insuranceflow", l.Insuranceflow), splitSentence("the baseline", l.Baseline))
	}
	return b.String()
}

// markdown renders the run as the tables the README shows.
func markdown(r *results) string {
	var b strings.Builder
	o, bl := r.Insuranceflow, r.Baseline
	lat := func(p Percentiles) string { return fmt.Sprintf("%.1f / %.1f / %.1f", p.P50, p.P95, p.P99) }
	b.WriteString(openLoopMarkdown(r))
	fmt.Fprintf(&b, "\nSaturation (closed loop, the capacity figure): %d lifecycles at concurrency %d (%d with a failure-then-retry step) per round, after %d warm-up lifecycles each; %d alternating rounds:\n\n",
		r.Config.Lifecycles, r.Config.Concurrency, r.Config.RetryLifecycles, r.Config.Warmup, len(r.Saturation))
	b.WriteString("| round | insuranceflow lifecycles/s | baseline lifecycles/s | ratio | insuranceflow accept p99 (ms) | baseline update p99 (ms) | ratio | CPU ms per lifecycle, all processes: insuranceflow / baseline | baseline ÷ insuranceflow |\n|---|---|---|---|---|---|---|---|---|\n")
	var cpuRatios []float64
	for i, sr := range r.Saturation {
		cpu, cpuRatio := "—", "—"
		if o, bl := sr.Insuranceflow.CPU.Total, sr.Baseline.CPU.Total; o > 0 && bl > 0 {
			cpu = fmt.Sprintf("%.1f / %.1f", o, bl)
			cpuRatio = fmt.Sprintf("%.2f", ratio(bl, o))
			cpuRatios = append(cpuRatios, ratio(bl, o))
		}
		fmt.Fprintf(&b, "| %d | %.2f | %.2f | %.2f | %.1f | %.1f | %.2f | %s | %s |\n", i+1, sr.Insuranceflow.LifecyclesPerSec, sr.Baseline.LifecyclesPerSec, sr.Throughput,
			sr.Insuranceflow.Accept.P99, sr.Baseline.Accept.P99, sr.AcceptP99, cpu, cpuRatio)
	}
	cpuMedian := ""
	if len(cpuRatios) > 0 {
		cpuMedian = "**" + spreadOf(cpuRatios).String() + "**"
	}
	fmt.Fprintf(&b, "| **median (min–max)** | | | **%s** | | | **%s** | | %s |\n", r.Ratios.Throughput, r.Ratios.AcceptP99, cpuMedian)
	if len(cpuRatios) > 0 {
		b.WriteString("\nThe last two columns are every process's CPU time during the round (the Temporal server, the insuranceflow worker, topsim, and the bench process, which drives the systems and runs the baselines' worker) per completed lifecycle. " +
			"Both systems share the machine's CPUs with the server, so once a run saturates them its throughput is about the CPU available ÷ that figure, and baseline ÷ insuranceflow is the throughput ratio the two systems' work allows on this machine, whatever either one waits for.\n")
	}
	b.WriteString(visibleBaselineMarkdown(r))
	b.WriteString("\nThe round with the median throughput ratio in detail:\n\n")
	b.WriteString("| figure | insuranceflow (HTTP ingress → worker → topsim) | baseline (minimal workflow, SDK client) | ratio |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| lifecycles/s completed (all callbacks delivered) | %.2f | %.2f | %.2f |\n", o.LifecyclesPerSec, bl.LifecyclesPerSec, ratio(o.LifecyclesPerSec, bl.LifecyclesPerSec))
	fmt.Fprintf(&b, "| events accepted/s | %.2f | %.2f | %.2f |\n", o.EventsPerSec, bl.EventsPerSec, ratio(o.EventsPerSec, bl.EventsPerSec))
	fmt.Fprintf(&b, "| accept latency p50 / p95 / p99 (ms; baseline: update) | %s | %s | %.2f (p99) |\n", lat(o.Accept), lat(bl.Accept), ratio(o.Accept.P99, bl.Accept.P99))
	fmt.Fprintf(&b, "| … of a lifecycle's first event (it starts the workflow) | %s | %s | %.2f (p99) |\n", lat(o.AcceptFirst), lat(bl.AcceptFirst), ratio(o.AcceptFirst.P99, bl.AcceptFirst.P99))
	fmt.Fprintf(&b, "| … of the events after it | %s | %s | %.2f (p99) |\n", lat(o.AcceptLater), lat(bl.AcceptLater), ratio(o.AcceptLater.P99, bl.AcceptLater.P99))
	fmt.Fprintf(&b, "| delivery latency p50 / p95 / p99 (ms; accept → topsim receipt) | %s | — | |\n", lat(o.Delivery))
	fmt.Fprintf(&b, "| Temporal actions per 5-event lifecycle | %.2f | %.2f | %.2f |\n", r.Actions.PerLifecycle5, r.Actions.Baseline5, ratio(r.Actions.PerLifecycle5, r.Actions.Baseline5))
	if r.Actions.PerLifecycle6 > 0 {
		fmt.Fprintf(&b, "| Temporal actions per 6-event lifecycle (failure, then retry) | %.2f | | |\n", r.Actions.PerLifecycle6)
	}
	if o.HeartbeatsPerLifecycle >= 0 {
		fmt.Fprintf(&b, "| activity heartbeats per lifecycle (the server's count; billed as actions, not in histories) | %.2f | %.2f | |\n",
			o.HeartbeatsPerLifecycle, bl.HeartbeatsPerLifecycle)
	}
	if o.CPU.Server > 0 {
		fmt.Fprintf(&b, "| Temporal dev server CPU ms per lifecycle | %.1f | %.1f | %.2f |\n",
			o.CPU.Server, bl.CPU.Server, ratio(o.CPU.Server, bl.CPU.Server))
	}
	if o.CPU.Total > 0 && bl.CPU.Total > 0 {
		fmt.Fprintf(&b, "| CPU ms per lifecycle, all processes: total (server / workers / topsim / bench process) | %.1f (%.1f / %.1f / %.1f / %.1f) | %.1f (%.1f / %.1f / %.1f / %.1f) | %.2f |\n",
			o.CPU.Total, o.CPU.Server, o.CPU.Workers, o.CPU.TOPSim, o.CPU.Bench,
			bl.CPU.Total, bl.CPU.Server, bl.CPU.Workers, bl.CPU.TOPSim, bl.CPU.Bench, ratio(o.CPU.Total, bl.CPU.Total))
	}
	fmt.Fprintf(&b, "| history events / bytes per 5-event lifecycle | %.1f / %.0f | | |\n", r.Actions.HistoryEvents5, r.Actions.HistoryBytes5)
	fmt.Fprintf(&b, "| store rows / bytes per lifecycle | %.1f / %.0f | | |\n", r.Store.RowsPerLifecycle, r.Store.BytesPerLifecycle)
	fmt.Fprintf(&b, "| events re-sent after a 503 or broken connection | %d | — | |\n", o.Resends)
	fmt.Fprintf(&b, "| worker CPU seconds per 1,000 lifecycles (all rounds) | %.1f | | |\n", r.Worker.CPUSecondsPer1k)
	fmt.Fprintf(&b, "| worker peak RSS (VmHWM) / its growth per 1,000 lifecycles (MiB) | %.1f / %.1f | | |\n", r.Worker.PeakRSSMiB, r.Worker.PeakGrowthPer1kMiB)
	if k := r.Actions.Kinds5; k != nil {
		fmt.Fprintf(&b, "\nActions of a 5-event lifecycle by kind (mean of %d histories): starts %.2f, updates %.2f, activities %.2f, activity retries %.2f, local activities %.2f, timers %.2f, search-attribute upserts %.2f, signals %.2f.\n",
			r.Actions.Histories, k["starts"], k["updates"], k["activities"], k["activity_retries"], k["local_activities"], k["timers"], k["upserts"], k["signals"])
	}
	if d := r.Actions.Dispatch; d.Queued > 0 {
		fmt.Fprintf(&b, "\nDispatches per FIFO step: of %d callbacks already queued when the previous one completed, %d were scheduled by the very workflow task that handled that completion (from the histories), so with eager dispatch the next callback needs no further trip through matching.\n",
			d.Queued, d.SameTask)
	}
	if op := r.Open; op != nil {
		fmt.Fprintf(&b, "\nWorker memory with policies left open (one pre_insure each; worker WORKFLOW_CACHE_SIZE %d; %d opened in %.0f s):\n\n",
			op.WorkflowCacheSize, op.Opened, op.Seconds)
		b.WriteString("| open policies | worker RSS (MiB) | growth since 0 (MiB) | growth per 1,000 open (MiB) |\n|---|---|---|---|\n")
		for _, p := range op.Points {
			per := "—"
			if p.Open > 0 {
				per = fmt.Sprintf("%.1f", p.GrowthPer1kMiB)
			}
			fmt.Fprintf(&b, "| %d | %.1f | %.1f | %s |\n", p.Open, p.RSSMiB, p.GrowthMiB, per)
		}
		judged := map[bool]string{true: "sub-linear", false: "not sub-linear"}[op.SubLinear]
		if !op.Judged {
			judged = fmt.Sprintf("not judged: fewer than %d open policies", minJudgedOpen)
		}
		fmt.Fprintf(&b, "\nGrowth ratio growth(100%%) ÷ growth(25%%) = %.2f (linear = 4; local exponent %.2f; sub-linear means a ratio under %g): %s.\n",
			op.GrowthRatio, op.Exponent, subLinearLimit, judged)
	}
	b.WriteString("\n| target | want | measured | verdict |\n|---|---|---|---|\n")
	for _, t := range r.Targets {
		fmt.Fprintf(&b, "| %s | %s | %.2f | %s |\n", t.Name, t.Want, t.Got, verdict(t.Pass))
	}
	return b.String()
}

// markersOf is the pair of README markers r's section lives between: the
// dev server's Performance section, or a cluster run's own section (one
// per worker count) after it.
func markersOf(r *results) (start, end string) {
	if r.Config.Cluster == "" {
		return readmeStart, readmeEnd
	}
	return fmt.Sprintf("<!-- bench-cluster-%dw:start -->", r.Config.Workers), fmt.Sprintf("<!-- bench-cluster-%dw:end -->", r.Config.Workers)
}

// readmeSection is the README's section for r: the Performance section
// for a dev-server run, a subsection for a cluster run.
// targetSummary says how many targets the run met and names the missed
// ones, so a reader of the README sees them before any figure.
func targetSummary(ts []target) string {
	var missed []string
	for _, t := range ts {
		if !t.Pass {
			missed = append(missed, fmt.Sprintf("%s (want %s, measured %.2f)", t.Name, t.Want, t.Got))
		}
	}
	if len(missed) == 0 {
		return fmt.Sprintf("all %d met", len(ts))
	}
	return fmt.Sprintf("**%d of %d met; missed: %s** (the verdicts are in the table at the end)", len(ts)-len(missed), len(ts), strings.Join(missed, "; "))
}

func readmeSection(r *results) string {
	var b strings.Builder
	start, end := markersOf(r)
	b.WriteString(start + "\n")
	if r.Config.Cluster == "" {
		b.WriteString("## Performance\n\n")
		b.WriteString("Measured with `make bench`, a Go program (`go run ./bench`) that starts the whole stack as real processes " +
			"(the pinned Temporal dev server on SQLite in WAL mode, topsim as the TOP gateway, the worker with its HTTP ingress), " +
			"drives complete policy lifecycles (pre_insure, underwrite, insure, one endorse, cancel) through the HTTP ingress, and, " +
			"in the same run on the same server, a minimal Temporal workflow doing the same number of updates and no-op callback " +
			"activities with no FSM, store or HTTP, driven straight through the SDK client (at saturation also that workflow with " +
			"insuranceflow's search attributes and idle timer, to split the gap). It first saturates both (closed loop) " +
			"to measure capacity, then offers each 25, 50 and 75 % of that capacity on a clock (open loop), in alternating rounds, " +
			"and exits non-zero when a target is missed. This section is written by the program " +
			"(`-update-readme`, by every run that completed, whether or not its targets were met); the numbers are never typed in by hand.\n\n")
		fmt.Fprintf(&b, "- command: `%s` with `TEMPORAL_BIN=.bin/temporal` (`make bench` runs it with 2,000 open policies; "+
			"`make bench-readme` with 10,000 and `-update-readme`, which wrote this section)\n", r.Command)
	} else {
		fmt.Fprintf(&b, "### %s, %d worker%s\n\n", r.Config.Cluster, r.Config.Workers, map[bool]string{true: "", false: "s"}[r.Config.Workers == 1])
		fmt.Fprintf(&b, "The same benchmark against the production path: `make bench-cluster` (scripts/test-cluster.sh's server, built from tools/go.mod, "+
			"with deploy/temporal-postgres.yaml and deploy/temporal-dynamicconfig.yaml, over mutual TLS, and the PostgreSQL store), "+
			"insuranceflow on %d worker process%s sharing the task queue, each lifecycle through one of their ingresses.\n\n",
			r.Config.Workers, map[bool]string{true: "", false: "es"}[r.Config.Workers == 1])
		fmt.Fprintf(&b, "- command: `%s`\n", r.Command)
	}
	fmt.Fprintf(&b, "- machine: %d × %s, %s, Go %s, Temporal server %s (%s)\n", r.Machine.CPUs, r.Machine.CPUModel, r.Machine.OS, strings.TrimPrefix(r.Machine.GoVersion, "go"), r.Machine.TemporalServer, r.Machine.TemporalMode)
	fmt.Fprintf(&b, "- measured: %s; phases: %s\n", r.FinishedAt.UTC().Format("2006-01-02 15:04 UTC"), phaseSummary(r.Phases))
	fmt.Fprintf(&b, "- host load (1-minute load average) at the start / end: %.2f / %.2f — on %d CPUs, anything above 0 is other work competing with the run\n",
		r.Machine.LoadAvgStart, r.Machine.LoadAvgEnd, r.Machine.CPUs)
	fmt.Fprintf(&b, "- targets: %s\n\n", targetSummary(r.Targets))
	b.WriteString(markdown(r))
	if r.Capacity != nil && r.Config.Cluster == "" {
		b.WriteString("\n### Capacity model\n\nComputed by the benchmark from this run's figures (`capacity` in `bench-results/latest.json`):\n\n")
		b.WriteString(r.Capacity.markdown())
	}
	if r.Config.Cluster == "" {
		b.WriteString("\nDefinitions: a lifecycle is *completed* when topsim has received every one of its callbacks; lifecycles/s = completed " +
			"lifecycles ÷ time from the phase's start to the last completion (the baseline's: its workflow closed). Accept latency is the " +
			"HTTP round trip of `POST /v1/insurance-results` answered 202, from the first send (an event answered 503 is re-sent, as a " +
			"business system would, and counted); the baseline's is the Update's round trip (Update-with-Start " +
			"for the first). In the open loop a lifecycle's first event is timed from its *scheduled* start, so a slow system cannot " +
			"hide its delay by starting lifecycles late (no coordinated omission); each later event is sent when the previous one is accepted. " +
			"Delivery latency is topsim's `received_at` minus the client's accept time, on the same host clock (it " +
			"can be ≤ 0: the callback may reach topsim before the 202 reaches the client); the baseline's is its no-op callback " +
			"activity's start minus the update's answer, and ratios to it are taken against at least 1 ms. *Eager dispatch* is the share " +
			"of callbacks the server handed to the worker in its answer to the workflow task that scheduled them (its " +
			"`activity_eager_execution` counter ÷ callbacks), with no trip through matching; `TOP_QPS` uses insuranceflow's own " +
			"limiter, not Temporal's task-queue rate limit, which would turn eager dispatch off. Ratios are per round, then the median. " +
			"Temporal actions are counted from the closed workflows' histories with the `actions` package. Worker CPU is utime+stime " +
			"from `/proc/<pid>/stat` over the saturation rounds; RSS is `VmRSS`/`VmHWM` from `/proc/<pid>/status`. Percentiles are " +
			"nearest-rank. Full results: `bench-results/latest.json`; latency distributions: `bench-results/latency.png`.\n")
	}
	b.WriteString(end)
	return b.String()
}

func phaseSummary(ps []phase) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = fmt.Sprintf("%s %.0f s", p.Name, p.Seconds)
	}
	return strings.Join(parts, ", ")
}

// MarkerError is a README whose bench markers are unusable.
type MarkerError struct {
	Path    string
	Problem string
}

func (e *MarkerError) Error() string { return e.Path + ": " + e.Problem }

// replaceSection puts section between the markers of doc, or appends it
// (markers included) when doc has none. Text outside the markers is kept
// byte for byte.
func replaceSection(path string, doc []byte, section string) ([]byte, error) {
	return replaceBetween(path, doc, section, readmeStart, readmeEnd)
}

// replaceBetween is replaceSection for any pair of markers.
func replaceBetween(path string, doc []byte, section, readmeStart, readmeEnd string) ([]byte, error) {
	si := bytes.Index(doc, []byte(readmeStart))
	ei := bytes.Index(doc, []byte(readmeEnd))
	switch {
	case si < 0 && ei < 0:
		out := bytes.TrimRight(doc, "\n")
		out = append(out, "\n\n"...)
		out = append(out, section...)
		return append(out, '\n'), nil
	case si < 0 || ei < 0:
		return nil, &MarkerError{Path: path, Problem: fmt.Sprintf("has only one of %s and %s", readmeStart, readmeEnd)}
	case ei < si:
		return nil, &MarkerError{Path: path, Problem: fmt.Sprintf("%s comes before %s", readmeEnd, readmeStart)}
	case bytes.Count(doc, []byte(readmeStart)) > 1 || bytes.Count(doc, []byte(readmeEnd)) > 1:
		return nil, &MarkerError{Path: path, Problem: "has more than one bench section"}
	}
	out := append([]byte{}, doc[:si]...)
	out = append(out, section...)
	return append(out, doc[ei+len(readmeEnd):]...), nil
}

func updateReadme(path string, r *results) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read README: %w", err)
	}
	start, end := markersOf(r)
	out, err := replaceBetween(path, doc, readmeSection(r), start, end)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o644)
}

// visibleBaselineMarkdown shows the visible baseline's rounds: the
// throughput ratio to the baseline is the product of the visible
// baseline's ÷ the baseline's (what the search attributes and the idle
// timer cost on this server) and insuranceflow's ÷ the visible baseline's
// (what its own work costs). Empty for results without it.
func visibleBaselineMarkdown(r *results) string {
	if len(r.Saturation) == 0 || r.Saturation[0].VisibleBaseline.LifecyclesPerSec <= 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nEach round also drove a third system, the *visible baseline*: the baseline's workflow plus what insuranceflow keeps in Temporal for the UI and `starter list` "+
		"(its four search attributes set at the start, PolicyState upserted once a delivered event moved it, and the idle timer), "+
		"so the same Temporal actions per 5-event lifecycle (%.2f; insuranceflow %.2f, the baseline %.2f). It is not judged: it splits the throughput ratio into two factors, "+
		"visible baseline ÷ baseline (what that visibility costs on this server) × insuranceflow ÷ visible baseline (what insuranceflow's own work costs: FSM, store, signed HTTP call, ingress).\n\n",
		r.Actions.VisibleBaseline5, r.Actions.PerLifecycle5, r.Actions.Baseline5)
	b.WriteString("| round | visible baseline lifecycles/s | visible baseline ÷ baseline | insuranceflow ÷ visible baseline | CPU ms per lifecycle, all processes: visible baseline (server) |\n|---|---|---|---|---|\n")
	for i, sr := range r.Saturation {
		v := sr.VisibleBaseline
		cpu := "—"
		if v.CPU.Total > 0 {
			cpu = fmt.Sprintf("%.1f (%.1f)", v.CPU.Total, v.CPU.Server)
		}
		fmt.Fprintf(&b, "| %d | %.2f | %.2f | %.2f | %s |\n", i+1, v.LifecyclesPerSec, sr.VisibleOverBaseline, sr.VisibleThroughput, cpu)
	}
	fmt.Fprintf(&b, "| **median (min–max)** | | **%s** | **%s** | |\n", r.Ratios.VisibleOverBaseline, r.Ratios.VisibleThroughput)
	return b.String()
}
