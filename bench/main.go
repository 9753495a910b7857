// Command bench is insuranceflow's load benchmark (`make bench`). It starts
// the whole stack as real processes with package devstack, drives complete
// policy lifecycles through the HTTP ingress with topsim as the gateway,
// runs a minimal Temporal workflow doing the same updates and activities as
// a baseline on the same server, counts Temporal actions from the
// histories, samples the worker's CPU and memory (also with thousands of
// policies left open), and writes JSON, Markdown and a latency chart to
// bench-results/ — and, with -update-readme, the README's Performance
// section. Every figure comes from the run; none is typed in.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"encoding/json"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/insuranceflow/insuranceflow/devstack"
	"github.com/insuranceflow/insuranceflow/secretfile"
	"github.com/insuranceflow/insuranceflow/store"
	"github.com/insuranceflow/insuranceflow/temporalconn"
)

// barWriter is where progress bars and progress lines go.
var barWriter io.Writer = os.Stderr

// config is the run's parameters, recorded in the results.
type config struct {
	Lifecycles      int     `json:"lifecycles"`
	Concurrency     int     `json:"concurrency"`
	FailureShare    float64 `json:"failure_share"`
	RetryLifecycles int     `json:"retry_lifecycles"`
	Warmup          int     `json:"warmup"`
	OpenPolicies    int     `json:"open_policies"`
	Seed            uint64  `json:"seed"`
}

type machine struct {
	CPUs           int    `json:"cpus"`
	CPUModel       string `json:"cpu_model"`
	OS             string `json:"os"`
	GoVersion      string `json:"go_version"`
	TemporalServer string `json:"temporal_server_version"`
	TemporalMode   string `json:"temporal_mode"`
	// LoadAvgStart and LoadAvgEnd are the host's 1-minute load average
	// when the run started and ended: other work on the host skews every
	// figure, and this says how much there was.
	LoadAvgStart float64 `json:"load_avg_start"`
	LoadAvgEnd   float64 `json:"load_avg_end"`
}

type phase struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

type workerFigures struct {
	CPUSeconds         float64 `json:"cpu_seconds"`
	CPUSecondsPer1k    float64 `json:"cpu_seconds_per_1k_lifecycles"`
	RSSStartMiB        float64 `json:"rss_start_mib"`
	PeakRSSMiB         float64 `json:"peak_rss_mib"`
	PeakGrowthPer1kMiB float64 `json:"peak_rss_growth_per_1k_lifecycles_mib"`
}

type results struct {
	Command       string        `json:"command"`
	FinishedAt    time.Time     `json:"finished_at"`
	Machine       machine       `json:"machine"`
	Config        config        `json:"config"`
	Phases        []phase       `json:"phases"`
	Insuranceflow loadResult    `json:"insuranceflow"`
	Baseline      loadResult    `json:"baseline"`
	Ratios        ratios        `json:"ratios"`
	Actions       actionFigures `json:"actions"`
	Worker        workerFigures `json:"worker"`
	Open          *openFigures  `json:"open_policies,omitempty"`
	Targets       []target      `json:"targets"`
}

type ratios struct {
	Throughput float64 `json:"throughput"` // insuranceflow lifecycles/s ÷ baseline's
	AcceptP99  float64 `json:"accept_p99"` // insuranceflow accept p99 ÷ baseline update p99
}

// flags is the command line.
type flags struct {
	cacheSize                        int // the worker\'s WORKFLOW_CACHE_SIZE
	n, c, warmup, open, actionsLimit int
	failureShare                     float64
	seed                             uint64
	out, readme                      string
	updateReadme, strict             bool
	temporalBin, temporalAddr        string
	binDir, dataDir, databaseURL     string
	timeout                          time.Duration
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code, err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
	}
	os.Exit(code)
}

func parseFlags(args []string, getenv func(string) string) (flags, string, error) {
	var f flags
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.IntVar(&f.n, "n", 200, "policy lifecycles to drive")
	fs.IntVar(&f.c, "c", 20, "lifecycles in flight at once (each sends its events one after another)")
	fs.Float64Var(&f.failureShare, "failure-share", 0.2, "share of lifecycles with a failed underwrite followed by a successful one")
	fs.IntVar(&f.warmup, "warmup", 20, "unmeasured lifecycles per system before measuring")
	fs.IntVar(&f.open, "open-policies", 10000, "policies to open and leave open while sampling worker RSS; 0 skips the phase")
	fs.IntVar(&f.cacheSize, "workflow-cache-size", 2000, "the worker's WORKFLOW_CACHE_SIZE (its default is 2000)")
	fs.IntVar(&f.actionsLimit, "actions-sample", 500, "at most this many histories read per system to count Temporal actions")
	fs.Uint64Var(&f.seed, "seed", 1, "seed choosing which lifecycles fail-then-retry, and topsim's")
	fs.StringVar(&f.out, "out", "bench-results", "directory for latest.json, latest.md and latency.png")
	fs.StringVar(&f.readme, "readme", "README.md", "README whose Performance section -update-readme rewrites")
	fs.BoolVar(&f.updateReadme, "update-readme", false, "write the results into the README's Performance section")
	fs.BoolVar(&f.strict, "strict", false, "exit 1 when a target is missed")
	fs.StringVar(&f.temporalBin, "temporal-bin", os.Getenv("TEMPORAL_BIN"), "the pinned Temporal CLI (dev server); env TEMPORAL_BIN")
	fs.StringVar(&f.temporalAddr, "temporal-address", "", "an external Temporal server instead of a dev server")
	fs.StringVar(&f.binDir, "bin-dir", "", "prebuilt worker/topsim/starter (e.g. .bin); \"\" builds them")
	fs.StringVar(&f.dataDir, "dir", "", "keep the stack's logs and databases here; \"\" = a temporary directory, removed")
	fs.StringVar(&f.databaseURL, "database-url", "", "the worker's store, without a password (one with a password: a file named by env DATABASE_URL_FILE); \"\" = SQLite in the stack's directory")
	fs.DurationVar(&f.timeout, "timeout", time.Hour, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return f, "", err
	}
	var problems []string
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Sprintf("unexpected arguments %q", fs.Args()))
	}
	if f.n < 1 {
		problems = append(problems, "-n must be at least 1")
	}
	if f.c < 1 {
		problems = append(problems, "-c must be at least 1")
	}
	if f.failureShare < 0 || f.failureShare > 1 {
		problems = append(problems, "-failure-share must be between 0 and 1")
	}
	if f.warmup < 0 || f.open < 0 {
		problems = append(problems, "-warmup and -open-policies must not be negative")
	}
	if f.open > 0 && f.open < 4 {
		problems = append(problems, "-open-policies must be 0 or at least 4 (it is sampled at quarters)")
	}
	if f.databaseURL != "" && store.URLHasPassword(f.databaseURL) {
		// Never repeated: the command line is visible to every user of the
		// host, and this one would be written into the README too.
		problems = append(problems, "-database-url carries a password; put the URL in a file only you can read and name it in DATABASE_URL_FILE (DATABASE_URL is the worker's, not bench's)")
	}
	if f.databaseURL == "" && getenv("DATABASE_URL_FILE") != "" {
		u, warn, err := secretfile.Read(getenv("DATABASE_URL_FILE"))
		switch {
		case err != nil:
			problems = append(problems, "DATABASE_URL_FILE: cannot read the database URL: "+err.Error())
		case warn != nil:
			fmt.Fprintln(os.Stderr, "bench: warning: DATABASE_URL_FILE:", warn.Error())
		}
		f.databaseURL = strings.TrimSpace(u)
	}
	if f.temporalAddr == "" && f.temporalBin == "" {
		problems = append(problems, "-temporal-bin (or TEMPORAL_BIN) is required to start a dev server; `make bench` passes .bin/temporal")
	}
	if len(problems) > 0 {
		return f, "", fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	// The command as a reader would type it, for the README.
	cmd := []string{"go run ./bench"}
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "temporal-bin", "bin-dir", "dir", "update-readme", "out", "readme":
			return // where things are, not what was measured
		case "database-url":
			cmd = append(cmd, "-database-url="+store.RedactURL(fl.Value.String()))
			return
		}
		cmd = append(cmd, "-"+fl.Name+"="+fl.Value.String())
	})
	return f, strings.Join(cmd, " "), nil
}

func run(ctx context.Context, args []string) (int, error) {
	f, command, err := parseFlags(args, os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		return 0, nil
	}
	if err != nil {
		return 2, err
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	if f.temporalBin != "" {
		if f.temporalBin, err = filepath.Abs(f.temporalBin); err != nil {
			return 2, err
		}
	}
	if f.binDir != "" {
		if f.binDir, err = filepath.Abs(f.binDir); err != nil {
			return 2, err
		}
	}
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		return 1, fmt.Errorf("results directory: %w", err)
	}

	loadStart := loadAvg()
	res := &results{Command: command, Config: config{Lifecycles: f.n, Concurrency: f.c, FailureShare: f.failureShare,
		Warmup: f.warmup, OpenPolicies: f.open, Seed: f.seed}}
	timed := func(name string, fn func() error) error {
		t0 := time.Now()
		err := fn()
		res.Phases = append(res.Phases, phase{Name: name, Seconds: round2(time.Since(t0).Seconds())})
		fmt.Fprintf(barWriter, "bench: %s took %.1f s\n", name, time.Since(t0).Seconds())
		return err
	}

	var s *devstack.Stack
	if err := timed("start stack", func() error {
		s, err = devstack.Start(ctx, devstack.Options{
			Dir: f.dataDir, TemporalBin: f.temporalBin, TemporalAddress: f.temporalAddr,
			// An external server may need TLS or an API key: the
			// TEMPORAL_* settings bench was given reach every process.
			TemporalEnv: externalTemporalEnv(f.temporalAddr),
			DatabaseURL: f.databaseURL, BinDir: f.binDir, TopsimSeed: int64(f.seed), Log: barWriter,
			WorkerEnv: []string{fmt.Sprintf("WORKFLOW_CACHE_SIZE=%d", f.cacheSize)},
		})
		return err
	}); err != nil {
		return 1, err
	}
	defer func() {
		if err := s.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
	}()
	res.Machine = describeMachine(ctx, s, f)
	res.Machine.LoadAvgStart = loadStart

	bw, err := startBaselineWorker(s.Temporal)
	if err != nil {
		return 1, err
	}
	defer bw.Stop()

	// Each run gets fresh biz_ids: the same dev server directory may be
	// reused with -dir.
	tag := "BN" + strconv.FormatInt(time.Now().Unix()%1_000_000, 36)
	rl := newReceiptLog(s.ReceiptsPath(), tag)
	warm := plan(tag+"W", f.warmup, f.failureShare, f.seed+1)
	lcs := plan(tag+"M", f.n, f.failureShare, f.seed)
	for _, l := range lcs {
		if len(l.Steps) == 6 {
			res.Config.RetryLifecycles++
		}
	}

	if f.warmup > 0 {
		if err := timed("warm-up", func() error {
			_, _, err := measureBaseline(ctx, s, warm, f.c, "warm-up baseline")
			if err != nil {
				return err
			}
			_, _, err = measureIngress(ctx, s, rl, warm, f.c, "warm-up insuranceflow")
			return err
		}); err != nil {
			return 1, err
		}
	}

	var baseRuns, ourRuns []lcRun
	var baseAccept []time.Duration
	if err := timed("baseline", func() error {
		res.Baseline, baseRuns, err = measureBaseline(ctx, s, lcs, f.c, "baseline")
		for _, r := range baseRuns {
			baseAccept = append(baseAccept, r.accept...)
		}
		return err
	}); err != nil {
		return 1, err
	}

	before, err := readProc(s.WorkerPID())
	if err != nil {
		return 1, err
	}
	var delivery []time.Duration
	if err := timed("insuranceflow", func() error {
		var r loadResult
		r, ourRuns, err = measureIngress(ctx, s, rl, lcs, f.c, "insuranceflow")
		res.Insuranceflow = r
		delivery = r.deliverySamples
		return err
	}); err != nil {
		return 1, err
	}
	after, err := readProc(s.WorkerPID())
	if err != nil {
		return 1, err
	}
	per1k := 1000 / float64(max(res.Insuranceflow.Completed, 1))
	res.Worker = workerFigures{
		CPUSeconds:         round2(after.CPUSeconds - before.CPUSeconds),
		CPUSecondsPer1k:    round2((after.CPUSeconds - before.CPUSeconds) * per1k),
		RSSStartMiB:        round2(float64(before.RSSKiB) / 1024),
		PeakRSSMiB:         round2(float64(after.HWMKiB) / 1024),
		PeakGrowthPer1kMiB: round2(float64(after.HWMKiB-before.RSSKiB) / 1024 * per1k),
	}
	res.Ratios = ratios{
		Throughput: round2(ratio(res.Insuranceflow.LifecyclesPerSec, res.Baseline.LifecyclesPerSec)),
		AcceptP99:  round2(ratio(res.Insuranceflow.Accept.P99, res.Baseline.Accept.P99)),
	}

	if err := timed("count actions", func() error {
		res.Actions, err = countActions(ctx, s.Temporal, lcs, ourRuns, baseRuns, f.actionsLimit)
		return err
	}); err != nil {
		return 1, err
	}

	if f.open > 0 {
		if err := timed("open policies", func() error {
			op, err := openPolicies(ctx, s, rl, tag+"O", f.open, f.c, f.cacheSize)
			res.Open = &op
			return err
		}); err != nil {
			return 1, err
		}
	}

	res.Targets = targets(res)
	res.FinishedAt = time.Now()
	res.Machine.LoadAvgEnd = loadAvg()
	md := markdown(res)
	if err := writeResults(f, res, md, []series{
		{Name: "insuranceflow accept (HTTP round trip)", Samples: acceptSamples(ourRuns), Color: color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}},
		{Name: "insuranceflow delivery (accept → topsim receipt)", Samples: delivery, Color: color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}},
		{Name: "baseline update (SDK round trip)", Samples: baseAccept, Color: color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}},
	}); err != nil {
		return 1, err
	}
	fmt.Println(md)
	failed := 0
	for _, t := range res.Targets {
		fmt.Printf("%s: %s (want %s, measured %.2f)\n", verdict(t.Pass), t.Name, t.Want, t.Got)
		if !t.Pass {
			failed++
		}
	}
	if f.strict && failed > 0 {
		return 1, fmt.Errorf("%d target(s) missed", failed)
	}
	return 0, nil
}

// measureIngress drives lcs through the stack's HTTP ingress and waits for
// their deliveries.
func measureIngress(ctx context.Context, s *devstack.Stack, rl *receiptLog, lcs []lifecycle, c int, name string) (loadResult, []lcRun, error) {
	var resends atomic.Int64
	start := time.Now()
	runs := drive(ctx, lcs, c, ingressDriver(s, &resends), newBar(len(lcs), name+": accepted"), nil)
	if ctx.Err() != nil {
		return loadResult{}, runs, ctx.Err()
	}
	delivery, err := awaitDelivery(ctx, rl, lcs, runs, 2*time.Minute, newBar(len(lcs), name+": delivered"))
	if err != nil {
		return loadResult{}, runs, err
	}
	res := summarise(start, runs, delivery)
	res.Resends = resends.Load()
	res.deliverySamples = delivery
	return res, runs, nil
}

// measureBaseline drives lcs through the baseline workflow and waits for
// each run to close.
func measureBaseline(ctx context.Context, s *devstack.Stack, lcs []lifecycle, c int, name string) (loadResult, []lcRun, error) {
	cs := newCompletions(s.Temporal)
	start := time.Now()
	runs := drive(ctx, lcs, c, baselineDriver(s.Temporal), newBar(len(lcs), name+": accepted"),
		func(i int) { cs.watch(ctx, i, lcs[i].BizID) })
	if ctx.Err() != nil {
		return loadResult{}, runs, ctx.Err()
	}
	cs.apply(runs)
	res := summarise(start, runs, nil)
	return res, runs, nil
}

func acceptSamples(runs []lcRun) []time.Duration {
	var out []time.Duration
	for _, r := range runs {
		out = append(out, r.accept...)
	}
	return out
}

func writeResults(f flags, res *results, md string, ss []series) error {
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(f.out, "latest.json"), append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(f.out, "latest.md"), []byte(md), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := writeChart(filepath.Join(f.out, "latency.png"), ss); err != nil {
		return err
	}
	return publishReadme(f, res, barWriter)
}

// publishReadme writes the README's Performance section when
// -update-readme asks for it, and only for a run that met every target:
// the section is the project's claim, and a failed run's figures are
// evidence to look at (bench-results/), not something to publish. (A run
// that errs never gets this far.)
func publishReadme(f flags, res *results, log io.Writer) error {
	if !f.updateReadme {
		return nil
	}
	var missed []string
	for _, t := range res.Targets {
		if !t.Pass {
			missed = append(missed, t.Name)
		}
	}
	if len(missed) > 0 {
		fmt.Fprintf(log, "bench: README not updated: target(s) missed: %s\n", strings.Join(missed, "; "))
		return nil
	}
	if err := updateReadme(f.readme, res); err != nil {
		return err
	}
	fmt.Fprintf(log, "bench: updated the Performance section of %s\n", f.readme)
	return nil
}

// describeMachine reads the CPU from /proc/cpuinfo and asks the server its
// version.
func describeMachine(ctx context.Context, s *devstack.Stack, f flags) machine {
	m := machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPUs, m.CPUModel = parseCPUInfo(string(b))
	}
	if info, err := s.Temporal.WorkflowService().GetClusterInfo(ctx, &workflowservice.GetClusterInfoRequest{}); err == nil {
		m.TemporalServer = info.GetServerVersion()
	}
	m.TemporalMode = "external server at " + f.temporalAddr
	if f.temporalAddr == "" {
		m.TemporalMode = "dev server, SQLite WAL"
		if out, err := exec.CommandContext(ctx, f.temporalBin, "--version").Output(); err == nil {
			m.TemporalMode += ", " + strings.TrimSpace(string(out))
		}
	}
	return m
}

// loadAvg is the 1-minute load average from /proc/loadavg, 0 if unreadable.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0
	}
	return v
}

// parseCPUInfo counts the processors and returns the first model name.
func parseCPUInfo(s string) (int, string) {
	n, model := 0, ""
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "processor":
			n++
		case "model name":
			if model == "" {
				model = strings.TrimSpace(v)
			}
		}
	}
	return n, model
}

// externalTemporalEnv is bench's own TEMPORAL_* environment (TLS, API key,
// profile) when it runs against an external server; a dev server the stack
// starts itself needs none.
func externalTemporalEnv(addr string) []string {
	if addr == "" {
		return nil
	}
	var env []string
	for _, kv := range temporalconn.Filter(os.Environ()) {
		if !strings.HasPrefix(kv, temporalconn.EnvAddress+"=") {
			env = append(env, kv)
		}
	}
	return env
}
