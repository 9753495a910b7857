package main

import (
	"bytes"
	"fmt"
	"os"
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

// targets judges a run against the targets.
func targets(r *results) []target {
	t := []target{
		{Name: "all lifecycles completed", Want: "0 failed", Got: float64(r.Insuranceflow.Failed + r.Baseline.Failed),
			Pass: r.Insuranceflow.Failed == 0 && r.Baseline.Failed == 0},
		{Name: "throughput ÷ baseline", Want: "≥ 0.8", Got: r.Ratios.Throughput, Pass: r.Ratios.Throughput >= 0.8},
		{Name: "accept p99 ÷ baseline update p99", Want: "≤ 1.5", Got: r.Ratios.AcceptP99,
			Pass: r.Ratios.AcceptP99 > 0 && r.Ratios.AcceptP99 <= 1.5},
		{Name: "Temporal actions per 5-event lifecycle", Want: "≤ 16", Got: r.Actions.PerLifecycle5,
			Pass: r.Actions.PerLifecycle5 > 0 && r.Actions.PerLifecycle5 <= 16},
	}
	if r.Open != nil && r.Open.Judged {
		t = append(t, target{Name: "worker RSS sub-linear in open policies", Want: fmt.Sprintf("growth(100%%) ÷ growth(25%%) < %g", subLinearLimit),
			Got: r.Open.GrowthRatio, Pass: r.Open.SubLinear && r.Open.Failed == 0})
	}
	return t
}

// markdown renders the run as the tables the README shows.
func markdown(r *results) string {
	var b strings.Builder
	o, bl := r.Insuranceflow, r.Baseline
	lat := func(p Percentiles) string { return fmt.Sprintf("%.1f / %.1f / %.1f", p.P50, p.P95, p.P99) }
	fmt.Fprintf(&b, "%d lifecycles at concurrency %d (%d with a failure-then-retry step), after %d warm-up lifecycles each.\n\n",
		r.Config.Lifecycles, r.Config.Concurrency, r.Config.RetryLifecycles, r.Config.Warmup)
	b.WriteString("| figure | insuranceflow (HTTP ingress → worker → topsim) | baseline (minimal workflow, SDK client) | ratio |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| lifecycles/s completed (all callbacks delivered) | %.2f | %.2f | **%.2f** |\n", o.LifecyclesPerSec, bl.LifecyclesPerSec, r.Ratios.Throughput)
	fmt.Fprintf(&b, "| events accepted/s | %.2f | %.2f | %.2f |\n", o.EventsPerSec, bl.EventsPerSec, ratio(o.EventsPerSec, bl.EventsPerSec))
	fmt.Fprintf(&b, "| accept latency p50 / p95 / p99 (ms; baseline: update) | %s | %s | **%.2f** (p99) |\n", lat(o.Accept), lat(bl.Accept), r.Ratios.AcceptP99)
	fmt.Fprintf(&b, "| delivery latency p50 / p95 / p99 (ms; accept → topsim receipt) | %s | — | |\n", lat(o.Delivery))
	fmt.Fprintf(&b, "| Temporal actions per 5-event lifecycle | %.2f | %.2f | %.2f |\n", r.Actions.PerLifecycle5, r.Actions.Baseline5, ratio(r.Actions.PerLifecycle5, r.Actions.Baseline5))
	if r.Actions.PerLifecycle6 > 0 {
		fmt.Fprintf(&b, "| Temporal actions per 6-event lifecycle (failure, then retry) | %.2f | | |\n", r.Actions.PerLifecycle6)
	}
	fmt.Fprintf(&b, "| events re-sent after a 503 or broken connection | %d | — | |\n", o.Resends)
	fmt.Fprintf(&b, "| worker CPU seconds per 1,000 lifecycles | %.1f | | |\n", r.Worker.CPUSecondsPer1k)
	fmt.Fprintf(&b, "| worker peak RSS (VmHWM) / its growth per 1,000 lifecycles (MiB) | %.1f / %.1f | | |\n", r.Worker.PeakRSSMiB, r.Worker.PeakGrowthPer1kMiB)
	if k := r.Actions.Kinds5; k != nil {
		fmt.Fprintf(&b, "\nActions of a 5-event lifecycle by kind (mean of %d histories): starts %.2f, updates %.2f, activities %.2f, activity retries %.2f, local activities %.2f, timers %.2f, search-attribute upserts %.2f, signals %.2f.\n",
			r.Actions.Histories, k["starts"], k["updates"], k["activities"], k["activity_retries"], k["local_activities"], k["timers"], k["upserts"], k["signals"])
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

// readmeSection is the README's Performance section for r.
func readmeSection(r *results) string {
	var b strings.Builder
	b.WriteString(readmeStart + "\n## Performance\n\n")
	b.WriteString("Measured with `make bench`, a Go program (`go run ./bench`) that starts the whole stack as real processes " +
		"(the pinned Temporal dev server on SQLite in WAL mode, topsim as the TOP gateway, the worker with its HTTP ingress), " +
		"drives complete policy lifecycles (pre_insure, underwrite, insure, one endorse, cancel) through the HTTP ingress, and, " +
		"in the same run on the same server, a minimal Temporal workflow doing the same number of updates and no-op callback " +
		"activities with no FSM, store or HTTP, driven straight through the SDK client. This section is written by the program " +
		"(`-update-readme`); the numbers are never typed in by hand.\n\n")
	fmt.Fprintf(&b, "- command: `%s` with `TEMPORAL_BIN=.bin/temporal` (`make bench` runs it with 2,000 open policies; "+
		"`make bench-readme` with 10,000 and `-update-readme`, which wrote this section)\n", r.Command)
	fmt.Fprintf(&b, "- machine: %d × %s, %s, Go %s, Temporal server %s (%s)\n", r.Machine.CPUs, r.Machine.CPUModel, r.Machine.OS, strings.TrimPrefix(r.Machine.GoVersion, "go"), r.Machine.TemporalServer, r.Machine.TemporalMode)
	fmt.Fprintf(&b, "- measured: %s; phases: %s\n", r.FinishedAt.UTC().Format("2006-01-02 15:04 UTC"), phaseSummary(r.Phases))
	fmt.Fprintf(&b, "- host load (1-minute load average) at the start / end: %.2f / %.2f — on %d CPUs, anything above 0 is other work competing with the run\n\n",
		r.Machine.LoadAvgStart, r.Machine.LoadAvgEnd, r.Machine.CPUs)
	b.WriteString(markdown(r))
	b.WriteString("\nDefinitions: a lifecycle is *completed* when topsim has received every one of its callbacks; lifecycles/s = completed " +
		"lifecycles ÷ time from the phase's start to the last completion (the baseline's: its workflow closed). Accept latency is the " +
		"HTTP round trip of `POST /v1/insurance-results` answered 202, from the first send (an event answered 503 is re-sent, as a " +
		"business system would, and counted); the baseline's is the Update's round trip (Update-with-Start " +
		"for the first). Delivery latency is topsim's `received_at` minus the client's accept time, on the same host clock (it " +
		"can be ≤ 0: the callback may reach topsim before the 202 reaches the client). " +
		"Temporal actions are counted from the closed workflows' histories with the `actions` package. Worker CPU is utime+stime " +
		"from `/proc/<pid>/stat` over the measured phase; RSS is `VmRSS`/`VmHWM` from `/proc/<pid>/status`. Percentiles are " +
		"nearest-rank. Full results: `bench-results/latest.json`; latency distributions: `bench-results/latency.png`.\n")
	b.WriteString(readmeEnd)
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
	out, err := replaceSection(path, doc, readmeSection(r))
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o644)
}
