// Command importbench measures importing policies already in flight
// (`make bench-import`, part of `make bench`). It starts the whole stack as
// real processes with package devstack, writes an import file of -policies
// policies of -events events each, every one already reported to TOP, and
// imports it with the real `starter import`; then imports the same file
// again (every line a duplicate). It reports the import's throughput, the
// Temporal actions a sample of the imported policies spent (counted from
// their histories by package actions), and that topsim received no call
// for them. With -update-readme it writes the README's import section; no
// figure is typed in by hand.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"

	"github.com/insuranceflow/insuranceflow/actions"
	"github.com/insuranceflow/insuranceflow/devstack"
	"github.com/insuranceflow/insuranceflow/importing"
	"github.com/insuranceflow/insuranceflow/workflows"
)

const (
	readmeStart = "<!-- import-bench:start -->"
	readmeEnd   = "<!-- import-bench:end -->"
	// sample is how many imported policies' histories are counted.
	sample = 20
)

type flags struct {
	policies, events, concurrency int
	binDir, temporalBin, out      string
	readme                        string
	updateReadme                  bool
}

// results is what the run measured, written as JSON beside the other
// benchmark results.
type results struct {
	Command         string            `json:"command"`
	FinishedAt      time.Time         `json:"finished_at"`
	Policies        int               `json:"policies"`
	EventsPerPolicy int               `json:"events_per_policy"`
	Concurrency     int               `json:"concurrency"`
	ImportSeconds   float64           `json:"import_seconds"`
	PoliciesPerSec  float64           `json:"policies_per_second"`
	EventsPerSec    float64           `json:"events_per_second"`
	Summary         importing.Summary `json:"summary"`
	ReimportSeconds float64           `json:"reimport_seconds"`
	ReimportSummary importing.Summary `json:"reimport_summary"`
	SampledPolicies int               `json:"sampled_policies"`
	MaxActions      actions.Count     `json:"max_actions_per_policy"`
	MaxActionsTotal int               `json:"max_actions_total"`
	TOPCalls        int               `json:"top_calls"`
	CPUs            int               `json:"cpus"`
	LoadAvgStart    string            `json:"load_avg_start"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "importbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	var f flags
	fs := flag.NewFlagSet("importbench", flag.ContinueOnError)
	fs.IntVar(&f.policies, "policies", 10000, "policies in the import file")
	fs.IntVar(&f.events, "events", 4, "events per policy, all already reported (1-4: pre_insure, underwrite, insure, endorse)")
	fs.IntVar(&f.concurrency, "c", importing.DefaultConcurrency, "starter import --concurrency")
	fs.StringVar(&f.binDir, "bin-dir", "", "prebuilt worker, topsim and starter (default: build them)")
	fs.StringVar(&f.temporalBin, "temporal-bin", os.Getenv("TEMPORAL_BIN"), "the pinned Temporal CLI (env TEMPORAL_BIN)")
	fs.StringVar(&f.out, "out", "bench-results/import.json", "where the results go")
	fs.StringVar(&f.readme, "readme", "README.md", "README whose import section -update-readme rewrites")
	fs.BoolVar(&f.updateReadme, "update-readme", false, "write the results into the README")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if f.policies < 1 || f.events < 1 || f.events > 4 || f.concurrency < 1 {
		return errors.New("-policies and -c must be at least 1, -events from 1 to 4")
	}
	res := results{
		Command:  fmt.Sprintf("go run ./bench/importbench -policies=%d -events=%d -c=%d", f.policies, f.events, f.concurrency),
		Policies: f.policies, EventsPerPolicy: f.events, Concurrency: f.concurrency,
		CPUs: runtime.NumCPU(), LoadAvgStart: loadAvg(),
	}

	s, err := devstack.Start(ctx, devstack.Options{TemporalBin: f.temporalBin, BinDir: f.binDir, Log: os.Stderr})
	if err != nil {
		return err
	}
	defer s.Stop()

	prefix := fmt.Sprintf("IMB%d", time.Now().UnixMilli())
	file := filepath.Join(s.Dir, "import.ndjson")
	if err := writeFile(file, prefix, f.policies, f.events); err != nil {
		return err
	}

	fmt.Fprintf(os.Stderr, "importbench: importing %d policies × %d events\n", f.policies, f.events)
	start := time.Now()
	sum, err := starterImport(ctx, s, file, f.concurrency)
	if err != nil {
		return err
	}
	res.ImportSeconds = time.Since(start).Seconds()
	res.Summary = sum
	res.PoliciesPerSec = float64(f.policies) / res.ImportSeconds
	res.EventsPerSec = float64(f.policies*f.events) / res.ImportSeconds
	if sum.Imported != f.policies*f.events || sum.Refused+sum.Failed+sum.Duplicates != 0 {
		return fmt.Errorf("import summary %+v: want %d imported and nothing else", sum, f.policies*f.events)
	}

	start = time.Now()
	again, err := starterImport(ctx, s, file, f.concurrency)
	if err != nil {
		return err
	}
	res.ReimportSeconds = time.Since(start).Seconds()
	res.ReimportSummary = again
	if again.Duplicates != f.policies*f.events {
		return fmt.Errorf("second import summary %+v: want every line a duplicate", again)
	}

	for i := 0; i < min(sample, f.policies); i++ {
		c, err := countActions(ctx, s, bizID(prefix, i*max(1, f.policies/sample)))
		if err != nil {
			return err
		}
		res.SampledPolicies++
		if c.Total() > res.MaxActions.Total() {
			res.MaxActions = c
		}
	}
	res.MaxActionsTotal = res.MaxActions.Total()
	receipts, err := s.Callbacks(ctx, "")
	if err != nil {
		return err
	}
	for _, r := range receipts {
		if strings.HasPrefix(r.BizID, prefix) {
			res.TOPCalls++
		}
	}
	res.FinishedAt = time.Now().UTC()

	b, _ := json.MarshalIndent(res, "", "  ")
	if err := os.MkdirAll(filepath.Dir(f.out), 0o755); err == nil {
		_ = os.WriteFile(f.out, append(b, '\n'), 0o644)
	}
	section := markdown(res)
	fmt.Println(section)
	if f.updateReadme {
		if err := updateReadme(f.readme, section); err != nil {
			return err
		}
	}
	if res.TOPCalls != 0 {
		return fmt.Errorf("topsim received %d calls for already-reported events", res.TOPCalls)
	}
	return nil
}

func bizID(prefix string, i int) string { return fmt.Sprintf("%s%06d", prefix, i) }

// writeFile writes the import file: per policy, its events in order, all
// already reported.
func writeFile(path, prefix string, policies, events int) error {
	var b bytes.Buffer
	stages := []int{1, 2, 3, 5} // pre_insure, underwrite, insure, endorse
	for i := range policies {
		id := bizID(prefix, i)
		for k := range events {
			line, _ := json.Marshal(map[string]any{
				"biz_id": id, "policy_number": "P-" + id, "insurance_company": 1,
				"stage": stages[k], "status": 1, "insurance_type": 1,
				"time_of_occurrence": time.Date(2025, 4, 8, 9, k, 0, 0, time.UTC).Format("2006-01-02 15:04:05"),
				"already_reported":   true,
			})
			b.Write(line)
			b.WriteByte('\n')
		}
	}
	return os.WriteFile(path, b.Bytes(), 0o600)
}

// starterImport runs the real `starter --json import`; exit 0 is expected.
func starterImport(ctx context.Context, s *devstack.Stack, file string, c int) (importing.Summary, error) {
	cmd := s.Starter(ctx, "--json", "import", "--file", file, "--concurrency", fmt.Sprint(c))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return importing.Summary{}, fmt.Errorf("starter import: %w\n%s", err, stderr.String())
	}
	var doc struct {
		Summary importing.Summary `json:"summary"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return importing.Summary{}, fmt.Errorf("starter import output: %w", err)
	}
	return doc.Summary, nil
}

func countActions(ctx context.Context, s *devstack.Stack, id string) (actions.Count, error) {
	var events []*historypb.HistoryEvent
	it := s.Temporal.GetWorkflowHistory(ctx, workflows.WorkflowID(id), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return actions.Count{}, fmt.Errorf("history of %s: %w", id, err)
		}
		events = append(events, e)
	}
	return actions.Of(events), nil
}

func markdown(r results) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", readmeStart)
	fmt.Fprintf(&b, "| figure | value |\n|---|---:|\n")
	fmt.Fprintf(&b, "| policies × events, all already reported | %d × %d |\n", r.Policies, r.EventsPerPolicy)
	fmt.Fprintf(&b, "| `starter import --concurrency` | %d |\n", r.Concurrency)
	fmt.Fprintf(&b, "| import time | %.1f s |\n", r.ImportSeconds)
	fmt.Fprintf(&b, "| throughput | %.0f policies/s (%.0f events/s) |\n", r.PoliciesPerSec, r.EventsPerSec)
	fmt.Fprintf(&b, "| the same file again (every line a duplicate) | %.1f s |\n", r.ReimportSeconds)
	fmt.Fprintf(&b, "| Temporal actions per imported policy (worst of %d sampled) | %d (%d start, %d update, %d local activity, %d timer, %d upsert) |\n",
		r.SampledPolicies, r.MaxActionsTotal, r.MaxActions.Starts, r.MaxActions.Updates, r.MaxActions.LocalActivities, r.MaxActions.Timers, r.MaxActions.Upserts)
	fmt.Fprintf(&b, "| TOP calls for the imported events | %d |\n", r.TOPCalls)
	fmt.Fprintf(&b, "| CPUs (load average at start) | %d (%s) |\n", r.CPUs, r.LoadAvgStart)
	fmt.Fprintf(&b, "\nMeasured by `make bench-import-readme` (`%s`) on the dev stack, %s.\n", r.Command, r.FinishedAt.Format("2006-01-02"))
	fmt.Fprintf(&b, "%s", readmeEnd)
	return b.String()
}

func updateReadme(path, section string) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	si, ei := bytes.Index(doc, []byte(readmeStart)), bytes.Index(doc, []byte(readmeEnd))
	if si < 0 || ei < si {
		return fmt.Errorf("%s: no %s … %s section", path, readmeStart, readmeEnd)
	}
	out := append(append(append([]byte{}, doc[:si]...), section...), doc[ei+len(readmeEnd):]...)
	return os.WriteFile(path, out, 0o644)
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Fields(string(b))[0]
}
