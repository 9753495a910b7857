// Command bench is insuranceflow's load benchmark (`make bench`). It starts
// the whole stack as real processes with package devstack, drives complete
// policy lifecycles through the HTTP ingress with topsim as the gateway,
// runs a minimal Temporal workflow doing the same updates and activities as
// a baseline on the same server (and, at saturation, the same workflow with
// insuranceflow's search attributes and idle timer), counts Temporal actions from the
// histories, samples the worker's CPU and memory (also with thousands of
// policies left open), and writes JSON, Markdown and a latency chart to
// bench-results/ — and, with -update-readme, the README's Performance
// section. Every figure comes from the run; none is typed in.
package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
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
	"github.com/insuranceflow/insuranceflow/workflows"
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
	Rounds          int     `json:"rounds"`
	OpenSeconds     float64 `json:"open_loop_seconds"`
	Workers         int     `json:"workers"`
	Cluster         string  `json:"cluster,omitempty"` // "" = the dev server
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
	Command    string    `json:"command"`
	FinishedAt time.Time `json:"finished_at"`
	Machine    machine   `json:"machine"`
	Config     config    `json:"config"`
	Phases     []phase   `json:"phases"`
	// Saturation is the closed loop, one entry per round (the baseline, the
	// visible baseline, then insuranceflow); Ratios are their medians.
	Saturation []satRound `json:"saturation_rounds"`
	// Insuranceflow and Baseline are the round with the median
	// throughput ratio, shown in the detailed table.
	Insuranceflow loadResult     `json:"insuranceflow"`
	Baseline      loadResult     `json:"baseline"`
	Ratios        ratios         `json:"ratios"`
	OpenLoop      []openLevel    `json:"open_loop"`
	Actions       actionFigures  `json:"actions"`
	Worker        workerFigures  `json:"worker"`
	Store         storeFigures   `json:"store"`
	Open          *openFigures   `json:"open_policies,omitempty"`
	Capacity      *capacityModel `json:"capacity,omitempty"`
	Targets       []target       `json:"targets"`
}

// satRound is one round of the closed loop.
type satRound struct {
	Insuranceflow loadResult `json:"insuranceflow"`
	Baseline      loadResult `json:"baseline"`
	// VisibleBaseline is the baseline with insuranceflow's search
	// attributes and idle timer (baselineInput.Visible): not judged, it
	// splits the throughput gap into what that visibility costs and what
	// insuranceflow's own work does.
	VisibleBaseline     loadResult `json:"visible_baseline"`
	Throughput          float64    `json:"throughput_ratio"`
	AcceptP99           float64    `json:"accept_p99_ratio"`
	VisibleThroughput   float64    `json:"visible_throughput_ratio"`    // insuranceflow ÷ visible baseline
	VisibleOverBaseline float64    `json:"visible_over_baseline_ratio"` // visible baseline ÷ baseline
}

type ratios struct {
	Throughput spread `json:"throughput"` // insuranceflow lifecycles/s ÷ baseline's, per round
	AcceptP99  spread `json:"accept_p99"` // insuranceflow accept p99 ÷ baseline update p99, per round
	// VisibleThroughput is insuranceflow lifecycles/s ÷ the visible
	// baseline's, and VisibleOverBaseline the visible baseline's ÷ the
	// baseline's: what the search attributes and idle timer alone leave.
	VisibleThroughput   spread `json:"visible_throughput"`
	VisibleOverBaseline spread `json:"visible_over_baseline"`
}

// storeFigures is what the measured lifecycles left in the store.
type storeFigures struct {
	Lifecycles         int                `json:"lifecycles"`
	RowsPerLifecycle   float64            `json:"rows_per_lifecycle"`
	BytesPerLifecycle  float64            `json:"bytes_per_lifecycle"`
	RowsByTablePer1000 map[string]float64 `json:"rows_by_table_per_1000"`
}

// openLevel is one offered load of the open loop: every round of each
// system, and the medians across rounds.
type openLevel struct {
	Load           float64   `json:"load"` // share of the measured capacity
	LifecyclesPerS float64   `json:"offered_lifecycles_per_sec"`
	Baseline       []openRun `json:"baseline"`
	Insuranceflow  []openRun `json:"insuranceflow"`
	// WithTOPQPS is insuranceflow through a worker with TOP_QPS set well
	// above the offered rate (only at 50 %): its own limiter must leave
	// eager activities on.
	WithTOPQPS []openRun `json:"insuranceflow_top_qps,omitempty"`
	TOPQPS     int       `json:"top_qps,omitempty"`
	// Per-round ratios insuranceflow ÷ baseline, and insuranceflow's own
	// medians.
	DeliveryP50Ratio spread `json:"delivery_p50_ratio"`
	AcceptP99Ratio   spread `json:"accept_p99_ratio"`
	DeliveryP50      spread `json:"delivery_p50_ms"`
	DeliveryP99      spread `json:"delivery_p99_ms"`
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
	rounds, workers                  int
	openSeconds                      time.Duration
	loads                            []float64
	topQPSVariant                    bool
	temporalMetrics                  string // the server's Prometheus URL; "" = the dev server's
	shards                           int    // the external server's history shards
	pricePerMillion, peakFactor      float64
	cluster                          string // a label for the README: "" = the dev server
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
	fs.BoolVar(&f.strict, "strict", true, "exit 1 when a target is missed (-strict=false only reports)")
	fs.IntVar(&f.rounds, "rounds", 3, "alternating rounds (baseline, visible baseline, insuranceflow, …) of each measured phase; ratios are the median of the rounds")
	fs.IntVar(&f.workers, "workers", 1, "insuranceflow worker processes sharing the task queue (each with its ingress; lifecycles spread over them)")
	fs.DurationVar(&f.openSeconds, "open-duration", 12*time.Second, "how long each open-loop run offers load")
	loads := fs.String("open-loads", "0.25,0.5,0.75", "open-loop offered loads, as shares of the capacity the closed loop measured; 0.5 is judged")
	fs.BoolVar(&f.topQPSVariant, "top-qps-variant", true, "at 50 % load also measure insuranceflow with TOP_QPS set (well above the offered rate) on its own worker and task queue")
	fs.StringVar(&f.temporalMetrics, "temporal-metrics", "", "the Temporal server's Prometheus /metrics URL (for the eager-dispatch share); \"\" = the dev server's")
	fs.IntVar(&f.shards, "temporal-shards", 4, "the external server's history shards (numHistoryShards; deploy/temporal-postgres.yaml's default is 4), for the capacity model")
	fs.Float64Var(&f.pricePerMillion, "price-per-million-actions", 50, "Temporal Cloud's published price per million actions (USD, first tier), for the capacity model")
	fs.Float64Var(&f.peakFactor, "peak-factor", 10, "capacity model: the busiest second's rate ÷ the day's mean rate")
	fs.StringVar(&f.cluster, "cluster-label", "", "names the server in the results (e.g. \"Temporal on PostgreSQL\"); \"\" = the dev server")
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
	if f.rounds < 1 {
		problems = append(problems, "-rounds must be at least 1")
	}
	if f.workers < 1 {
		problems = append(problems, "-workers must be at least 1")
	}
	if f.openSeconds < time.Second {
		problems = append(problems, "-open-duration must be at least 1s")
	}
	for _, v := range strings.Split(*loads, ",") {
		l, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || l <= 0 || l > 1 {
			problems = append(problems, fmt.Sprintf("-open-loads: %q is not a share between 0 and 1", v))
			continue
		}
		f.loads = append(f.loads, l)
	}
	if f.peakFactor < 1 || f.pricePerMillion < 0 {
		problems = append(problems, "-peak-factor must be at least 1 and -price-per-million-actions not negative")
	}
	if len(problems) > 0 {
		return f, "", fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	// The command as a reader would type it, for the README.
	cmd := []string{"go run ./bench"}
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "temporal-bin", "bin-dir", "dir", "update-readme", "out", "readme", "temporal-metrics", "temporal-address", "cluster-label":
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
		Warmup: f.warmup, OpenPolicies: f.open, Seed: f.seed, Rounds: f.rounds, OpenSeconds: f.openSeconds.Seconds(), Workers: f.workers, Cluster: f.cluster}}
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
			// The worker's /metrics: where a callback's time goes.
			Metrics: true,
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
	if f.temporalMetrics == "" && s.TemporalMetricsAddr != "" {
		f.temporalMetrics = "http://" + s.TemporalMetricsAddr + "/metrics"
	}
	// Keeps enough idle connections for an open loop's bursts.
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	reports := []reportFunc{s.Report}
	for i := 2; i <= f.workers; i++ {
		url, stop, err := s.StartExtraWorker(ctx, fmt.Sprintf("worker-%d", i), nil)
		if err != nil {
			return 1, err
		}
		defer stop()
		reports = append(reports, reportTo(hc, url, s.Token))
	}

	cl := newCallbackLog()
	bw, err := startBaselineWorker(s.Temporal, cl)
	if err != nil {
		return 1, err
	}
	defer bw.Stop()

	// Each run gets fresh biz_ids: the same dev server directory may be
	// reused with -dir.
	tag := "BN" + strconv.FormatInt(time.Now().Unix()%1_000_000, 36)
	rl := newReceiptLog(s.ReceiptsPath(), tag)
	m := &measurer{s: s, rl: rl, cl: cl, reports: reports, c: f.c, metricsURL: f.temporalMetrics}

	if f.warmup > 0 {
		warm := plan(tag+"W", f.warmup, f.failureShare, f.seed+1)
		if err := timed("warm-up", func() error {
			if _, _, err := m.baseline(ctx, warm, false, "warm-up baseline"); err != nil {
				return err
			}
			if _, _, err := m.baseline(ctx, warm, true, "warm-up visible baseline"); err != nil {
				return err
			}
			_, _, err := m.ingress(ctx, warm, "warm-up insuranceflow")
			return err
		}); err != nil {
			return 1, err
		}
	}

	// The closed loop at saturation, in alternating rounds: the capacity
	// figure, and the rate the open loop's loads are shares of.
	satPrefix := tag + "S"
	storeBefore, err := sampleStore(ctx, s.DatabaseURL, satPrefix)
	if err != nil {
		return 1, err
	}
	var first []lifecycle
	var firstOurs, firstBase, firstVisible []lcRun
	var cpu float64
	completed := 0
	var peakHWM int64
	var rssStart int64
	for r := 1; r <= f.rounds; r++ {
		lcs := plan(fmt.Sprintf("%s%d_", satPrefix, r), f.n, f.failureShare, f.seed+uint64(r)-1)
		var round satRound
		var baseRuns, visibleRuns, ourRuns []lcRun
		if err := timed(fmt.Sprintf("saturation round %d", r), func() error {
			if round.Baseline, baseRuns, err = m.baseline(ctx, lcs, false, fmt.Sprintf("saturation %d/%d baseline", r, f.rounds)); err != nil {
				return err
			}
			if round.VisibleBaseline, visibleRuns, err = m.baseline(ctx, lcs, true, fmt.Sprintf("saturation %d/%d visible baseline", r, f.rounds)); err != nil {
				return err
			}
			before, err := readProc(s.WorkerPID())
			if err != nil {
				return err
			}
			if r == 1 {
				rssStart = before.RSSKiB
			}
			if round.Insuranceflow, ourRuns, err = m.ingress(ctx, lcs, fmt.Sprintf("saturation %d/%d insuranceflow", r, f.rounds)); err != nil {
				return err
			}
			after, err := readProc(s.WorkerPID())
			if err != nil {
				return err
			}
			cpu += after.CPUSeconds - before.CPUSeconds
			peakHWM = max(peakHWM, after.HWMKiB)
			completed += round.Insuranceflow.Completed
			return nil
		}); err != nil {
			return 1, err
		}
		round.Throughput = round2(ratio(round.Insuranceflow.LifecyclesPerSec, round.Baseline.LifecyclesPerSec))
		round.AcceptP99 = round2(ratio(round.Insuranceflow.Accept.P99, round.Baseline.Accept.P99))
		round.VisibleThroughput = round2(ratio(round.Insuranceflow.LifecyclesPerSec, round.VisibleBaseline.LifecyclesPerSec))
		round.VisibleOverBaseline = round2(ratio(round.VisibleBaseline.LifecyclesPerSec, round.Baseline.LifecyclesPerSec))
		res.Saturation = append(res.Saturation, round)
		if r == 1 {
			first, firstOurs, firstBase, firstVisible = lcs, ourRuns, baseRuns, visibleRuns
			for _, l := range lcs {
				if len(l.Steps) == 6 {
					res.Config.RetryLifecycles++
				}
			}
		}
	}
	res.Ratios, res.Insuranceflow, res.Baseline = summariseRounds(res.Saturation)
	per1k := 1000 / float64(max(completed, 1))
	res.Worker = workerFigures{
		CPUSeconds:         round2(cpu),
		CPUSecondsPer1k:    round2(cpu * per1k),
		RSSStartMiB:        round2(float64(rssStart) / 1024),
		PeakRSSMiB:         round2(float64(peakHWM) / 1024),
		PeakGrowthPer1kMiB: round2(float64(peakHWM-rssStart) / 1024 * per1k),
	}
	storeAfter, err := sampleStore(ctx, s.DatabaseURL, satPrefix)
	if err != nil {
		return 1, err
	}
	res.Store = storeFiguresOf(storeBefore, storeAfter, completed)

	if err := timed("count actions", func() error {
		res.Actions, err = countActions(ctx, s.Temporal, first, firstOurs, firstBase, firstVisible, f.actionsLimit)
		return err
	}); err != nil {
		return 1, err
	}

	// The open loop: lifecycles started on a clock at shares of the
	// capacity just measured, the same rate for both systems.
	capacity := res.Insuranceflow.LifecyclesPerSec
	if len(res.Saturation) > 0 {
		var tp []float64
		for _, r := range res.Saturation {
			tp = append(tp, r.Insuranceflow.LifecyclesPerSec)
		}
		capacity = spreadOf(tp).Median
	}
	for li, load := range f.loads {
		lvl := openLevel{Load: load, LifecyclesPerS: round2(capacity * load)}
		m.level = load
		if lvl.LifecyclesPerS <= 0 {
			return 1, fmt.Errorf("the closed loop measured no capacity to take %g of", load)
		}
		n := max(5, int(math.Round(lvl.LifecyclesPerS*f.openSeconds.Seconds())))
		withQPS := f.topQPSVariant && load == 0.5 && f.workers == 1
		var qpsReport []reportFunc
		if withQPS {
			// Four times the offered event rate, and never below 10: a
			// limit the load never reaches, so any latency it adds is the
			// limiter's own cost (and eager dispatch staying on).
			lvl.TOPQPS = max(10, int(math.Ceil(4*lvl.LifecyclesPerS*5)))
			url, stop, err := s.StartExtraWorker(ctx, "worker-top-qps", []string{"TASK_QUEUE=insuranceflow-top-qps", fmt.Sprintf("TOP_QPS=%d", lvl.TOPQPS)})
			if err != nil {
				return 1, err
			}
			defer stop()
			qpsReport = []reportFunc{reportTo(hc, url, s.Token)}
		}
		if err := timed(fmt.Sprintf("open loop %.0f%%", load*100), func() error {
			for r := 1; r <= f.rounds; r++ {
				lcs := plan(fmt.Sprintf("%sL%d%d_", tag, li, r), n, 0, f.seed+uint64(r))
				name := fmt.Sprintf("open %.0f%% %d/%d", load*100, r, f.rounds)
				b, err := m.openBaseline(ctx, lcs, lvl.LifecyclesPerS, name+" baseline")
				if err != nil {
					return err
				}
				b.Round = r
				lvl.Baseline = append(lvl.Baseline, b)
				o, err := m.openIngress(ctx, lcs, lvl.LifecyclesPerS, m.reports, len(m.reports) == 1, name+" insuranceflow")
				if err != nil {
					return err
				}
				o.Round = r
				lvl.Insuranceflow = append(lvl.Insuranceflow, o)
				if withQPS {
					lq := plan(fmt.Sprintf("%sQ%d%d_", tag, li, r), n, 0, f.seed+uint64(r))
					q, err := m.openIngress(ctx, lq, lvl.LifecyclesPerS, qpsReport, false, name+" insuranceflow TOP_QPS")
					if err != nil {
						return err
					}
					q.Round = r
					lvl.WithTOPQPS = append(lvl.WithTOPQPS, q)
				}
			}
			return nil
		}); err != nil {
			return 1, err
		}
		judgeLevel(&lvl)
		res.OpenLoop = append(res.OpenLoop, lvl)
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

	res.Capacity = capacityOf(res, f)
	res.Targets = targets(res)
	res.FinishedAt = time.Now()
	res.Machine.LoadAvgEnd = loadAvg()
	md := markdown(res)
	ourDelivery, baseDelivery := m.samples[sampleKey{"insuranceflow", 0.5}], m.samples[sampleKey{"baseline", 0.5}]
	if err := writeResults(f, res, md, []series{
		{Name: "insuranceflow accept at saturation (HTTP round trip)", Samples: acceptSamples(firstOurs), Color: color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}},
		{Name: "baseline update at saturation (SDK round trip)", Samples: acceptSamples(firstBase), Color: color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}},
		{Name: "insuranceflow delivery at 50% load (accept → topsim receipt)", Samples: ourDelivery, Color: color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}},
		{Name: "baseline delivery at 50% load (accept → callback started)", Samples: baseDelivery, Color: color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}},
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

// summariseRounds takes the median of the rounds' ratios, and returns the
// round whose throughput ratio is the median, for the detailed table.
func summariseRounds(rs []satRound) (ratios, loadResult, loadResult) {
	var tp, ap, vt, vb []float64
	for _, r := range rs {
		tp = append(tp, r.Throughput)
		ap = append(ap, r.AcceptP99)
		vt = append(vt, r.VisibleThroughput)
		vb = append(vb, r.VisibleOverBaseline)
	}
	rt := ratios{Throughput: spreadOf(tp), AcceptP99: spreadOf(ap), VisibleThroughput: spreadOf(vt), VisibleOverBaseline: spreadOf(vb)}
	if len(rs) == 0 {
		return rt, loadResult{}, loadResult{}
	}
	idx := slices.Clone(rs)
	slices.SortStableFunc(idx, func(a, b satRound) int { return cmp.Compare(a.Throughput, b.Throughput) })
	mid := idx[(len(idx)-1)/2]
	return rt, mid.Insuranceflow, mid.Baseline
}

// judgeLevel fills a level's per-round ratios and medians.
func judgeLevel(l *openLevel) {
	var dr, ar, d50, d99 []float64
	for i := range min(len(l.Baseline), len(l.Insuranceflow)) {
		b, o := l.Baseline[i], l.Insuranceflow[i]
		dr = append(dr, ratio(o.Delivery.P50, deliveryFloor(b.Delivery.P50)))
		ar = append(ar, ratio(o.Accept.P99, b.Accept.P99))
		d50 = append(d50, o.Delivery.P50)
		d99 = append(d99, o.Delivery.P99)
	}
	l.DeliveryP50Ratio, l.AcceptP99Ratio = spreadOf(dr), spreadOf(ar)
	l.DeliveryP50, l.DeliveryP99 = spreadOf(d50), spreadOf(d99)
}

// minDeliveryMS is the smallest baseline delivery latency a ratio is taken
// against. The baseline's callback starts in the worker that answers the
// update, often before the update's answer reaches the client, so its p50
// is near or below 0 ms and a ratio to it is noise; 1 ms is the resolution
// of what the targets can mean.
const minDeliveryMS = 1.0

func deliveryFloor(ms float64) float64 { return max(ms, minDeliveryMS) }

func storeFiguresOf(before, after storeSample, lifecycles int) storeFigures {
	f := storeFigures{Lifecycles: lifecycles, RowsByTablePer1000: map[string]float64{}}
	if lifecycles == 0 {
		return f
	}
	rows := 0
	for _, t := range storeTables {
		n := after.Rows[t] - before.Rows[t]
		rows += n
		f.RowsByTablePer1000[t] = round2(float64(n) * 1000 / float64(lifecycles))
	}
	f.RowsPerLifecycle = round2(float64(rows) / float64(lifecycles))
	f.BytesPerLifecycle = round2(float64(after.Bytes-before.Bytes) / float64(lifecycles))
	return f
}

// capacityOf builds the capacity model from the run's measured figures.
func capacityOf(res *results, f flags) *capacityModel {
	in := capacityInputs{
		ActionsPerLifecycle:   res.Actions.PerLifecycle5,
		HistoryEvents:         res.Actions.HistoryEvents5,
		HistoryBytes:          res.Actions.HistoryBytes5,
		StoreRows:             res.Store.RowsPerLifecycle,
		StoreBytes:            res.Store.BytesPerLifecycle,
		CPUSecondsPerLifecyle: res.Worker.CPUSecondsPer1k / 1000,
		WorkerRSSMiB:          res.Worker.PeakRSSMiB,
		PricePerMillion:       f.pricePerMillion,
		PeakFactor:            f.peakFactor,
		ServerShards:          1,
	}
	if res.Open != nil && len(res.Open.Points) > 0 {
		in.WorkerRSSMiB = max(in.WorkerRSSMiB, res.Open.Points[len(res.Open.Points)-1].RSSMiB)
	}
	var tp, btp []float64
	for _, r := range res.Saturation {
		tp = append(tp, r.Insuranceflow.LifecyclesPerSec)
		btp = append(btp, r.Baseline.LifecyclesPerSec)
	}
	// One worker's share of the measured throughput.
	in.WorkerLifecyclesPerSec = round2(spreadOf(tp).Median / float64(max(res.Config.Workers, 1)))
	if f.temporalAddr != "" {
		in.ServerShards = f.shards
	}
	in.ShardActionsPerSec = round2(spreadOf(btp).Median * res.Actions.Baseline5 / float64(max(in.ServerShards, 1)))
	m := modelCapacity(in, []int{1_000, 1_000_000})
	return &m
}

// measurer drives one system at a time against the stack and gathers
// what each run produced.
type measurer struct {
	s          *devstack.Stack
	rl         *receiptLog
	cl         *callbackLog
	reports    []reportFunc // the insuranceflow ingresses
	c          int          // closed-loop concurrency
	metricsURL string       // the Temporal server's /metrics; "" = unknown
	level      float64      // the open loop's current load, for samples
	settled    bool         // the eager counter was last read after a settle

	samples map[sampleKey][]time.Duration // delivery samples of the open loop, for the chart
}

type sampleKey struct {
	system string
	load   float64
}

// ingress drives lcs in a closed loop through the HTTP ingresses and waits
// for their deliveries.
func (m *measurer) ingress(ctx context.Context, lcs []lifecycle, name string) (loadResult, []lcRun, error) {
	var resends atomic.Int64
	cpu0 := m.reading(ctx)
	start := time.Now()
	runs := drive(ctx, lcs, m.c, ingressDriver(m.reports, &resends), newBar(len(lcs), name+": accepted"), nil)
	if ctx.Err() != nil {
		return loadResult{}, runs, ctx.Err()
	}
	delivery, err := awaitDelivery(ctx, m.rl, lcs, runs, 2*time.Minute, newBar(len(lcs), name+": delivered"))
	if err != nil {
		return loadResult{}, runs, err
	}
	res := summarise(start, runs, delivery)
	res.CPU, res.HeartbeatsPerLifecycle = cpu0.perLifecycle(m.reading(ctx), res.Completed)
	res.Resends = resends.Load()
	res.deliverySamples = delivery
	return res, runs, nil
}

// baseline drives lcs in a closed loop through the baseline workflow (the
// visible baseline with visible) and waits for each run to close.
func (m *measurer) baseline(ctx context.Context, lcs []lifecycle, visible bool, name string) (loadResult, []lcRun, error) {
	cs := newCompletions(m.s.Temporal, baselineIDs(visible))
	cpu0 := m.reading(ctx)
	start := time.Now()
	runs := drive(ctx, lcs, m.c, baselineDriver(m.s.Temporal, visible), newBar(len(lcs), name+": accepted"),
		func(i int) { cs.watch(ctx, i, lcs[i].BizID) })
	if ctx.Err() != nil {
		return loadResult{}, runs, ctx.Err()
	}
	cs.apply(runs)
	res := summarise(start, runs, nil)
	res.CPU, res.HeartbeatsPerLifecycle = cpu0.perLifecycle(m.reading(ctx), res.Completed)
	return res, runs, nil
}

// cpuReading is the CPU time (s) of each process of the run, and the
// server's count of activity heartbeats, at one moment; -1 = unknown (the
// server's CPU with an external server, heartbeats without its metrics).
type cpuReading struct {
	server, workers, topsim, bench float64
	heartbeats                     float64
}

// reading reads the CPU time of the dev server, the insuranceflow workers,
// topsim and this process (which drives the systems and runs the
// baseline's worker), and the server's heartbeat count.
func (m *measurer) reading(ctx context.Context) cpuReading {
	r := cpuReading{server: -1, heartbeats: -1}
	for name, pid := range m.s.PIDs() {
		p, err := readProc(pid)
		if err != nil {
			continue // it ended: its CPU is not this phase's
		}
		switch {
		case name == devstack.ProcTemporal:
			r.server = p.CPUSeconds
		case name == devstack.ProcTopsim:
			r.topsim = p.CPUSeconds
		case name == devstack.ProcWorker || strings.HasPrefix(name, devstack.ProcWorker+"-"):
			r.workers += p.CPUSeconds
		}
	}
	if p, err := readProc(os.Getpid()); err == nil {
		r.bench = p.CPUSeconds
	}
	if m.metricsURL != "" {
		if v, err := heartbeatCounter(ctx, m.metricsURL); err == nil {
			r.heartbeats = v
		} else {
			fmt.Fprintln(barWriter, "bench: heartbeats unknown:", err)
		}
	}
	return r
}

// cpuBudget is the CPU time each process of the run spent during a phase,
// in ms per completed lifecycle. On a machine the run saturates, the
// throughput is about the CPU available ÷ Total, so the ratio of two
// systems' Totals is the throughput ratio their work allows.
type cpuBudget struct {
	Server  float64 `json:"temporal_server"` // 0 = not measured (an external server)
	Workers float64 `json:"workers"`         // insuranceflow's worker processes (idle polling in the baseline's phases)
	TOPSim  float64 `json:"topsim"`
	Bench   float64 `json:"bench"` // this process: the drivers, and the baseline's worker
	Total   float64 `json:"total"` // 0 when the server's share is unknown
}

// perLifecycle is the CPU budget and the heartbeats (-1 = unknown) from r
// to after, per completed lifecycle.
func (r cpuReading) perLifecycle(after cpuReading, completed int) (cpu cpuBudget, heartbeats float64) {
	heartbeats = -1
	if completed == 0 {
		return cpu, heartbeats
	}
	per := func(a, b float64) float64 { return round2((b - a) * 1000 / float64(completed)) }
	cpu.Workers, cpu.TOPSim, cpu.Bench = per(r.workers, after.workers), per(r.topsim, after.topsim), per(r.bench, after.bench)
	if r.server >= 0 && after.server >= 0 {
		cpu.Server = per(r.server, after.server)
		cpu.Total = round2(cpu.Server + cpu.Workers + cpu.TOPSim + cpu.Bench)
	}
	if r.heartbeats >= 0 && after.heartbeats >= 0 {
		heartbeats = round2((after.heartbeats - r.heartbeats) / float64(completed))
	}
	return cpu, heartbeats
}

// openIngress offers lcs at rate lifecycles/s through reports and waits
// for their deliveries.
//
// onMain says the main worker (the one with /metrics) runs them, so its
// timing histograms are theirs.
func (m *measurer) openIngress(ctx context.Context, lcs []lifecycle, rate float64, reports []reportFunc, onMain bool, name string) (openRun, error) {
	eager0 := m.eagerBefore(ctx)
	timing0 := m.workerSums(ctx)
	var resends atomic.Int64
	fmt.Fprintf(barWriter, "bench: %s: %d lifecycles at %.2f/s\n", name, len(lcs), rate)
	runs := openLoop(ctx, lcs, rate, ingressDriver(reports, &resends))
	if ctx.Err() != nil {
		return openRun{}, ctx.Err()
	}
	delivery, err := awaitDelivery(ctx, m.rl, lcs, runs, 2*time.Minute, newBar(len(lcs), name+": delivered"))
	if err != nil {
		return openRun{}, err
	}
	o := openSummary("insuranceflow", 0, rate, lcs, runs, delivery)
	o.History = readHistories(ctx, m.s.Temporal, lcs, runs, workflows.WorkflowID, callbackActivity)
	o.EagerShare = m.eagerShare(ctx, eager0, runs)
	if timing1 := m.workerSums(ctx); onMain && timing0 != nil && timing1 != nil {
		o.ActivityMeanMS, o.TOPCallMeanMS = workerTiming(timing0, timing1)
	}
	m.keep("insuranceflow", delivery)
	return o, nil
}

// openBaseline offers lcs at rate lifecycles/s to the baseline workflow
// and waits for their callbacks to start.
func (m *measurer) openBaseline(ctx context.Context, lcs []lifecycle, rate float64, name string) (openRun, error) {
	eager0 := m.eagerBefore(ctx)
	fmt.Fprintf(barWriter, "bench: %s: %d lifecycles at %.2f/s\n", name, len(lcs), rate)
	runs := openLoop(ctx, lcs, rate, baselineDriver(m.s.Temporal, false))
	if ctx.Err() != nil {
		return openRun{}, ctx.Err()
	}
	delivery := baselineDelivery(ctx, m.cl, lcs, runs, time.Minute)
	o := openSummary("baseline", 0, rate, lcs, runs, delivery)
	o.History = readHistories(ctx, m.s.Temporal, lcs, runs, baselineWorkflowID, baselineActivity)
	o.EagerShare = m.eagerShare(ctx, eager0, runs)
	m.keep("baseline", delivery)
	return o, nil
}

// keep remembers the delivery samples of the current level, for the chart.
func (m *measurer) keep(system string, d []time.Duration) {
	if m.samples == nil {
		m.samples = map[sampleKey][]time.Duration{}
	}
	m.samples[sampleKey{system, m.level}] = append(m.samples[sampleKey{system, m.level}], d...)
}

// workerSums scrapes the main worker's timing histograms; nil if it
// serves no metrics or the scrape failed.
func (m *measurer) workerSums(ctx context.Context) []float64 {
	if m.s.MetricsAddr == "" {
		return nil
	}
	v, err := scrapeSums(ctx, "http://"+m.s.MetricsAddr+"/metrics", workerTimingSeries...)
	if err != nil {
		fmt.Fprintln(barWriter, "bench: worker timing unknown:", err)
		return nil
	}
	return v
}

// eagerBefore reads the eager-dispatch counter before an open-loop run.
// The first read waits out the server's reporting interval, so dispatches
// of the phases before (warm-up, saturation) are not counted as the run's;
// later ones follow a read that already waited (eagerShare).
func (m *measurer) eagerBefore(ctx context.Context) float64 {
	if m.metricsURL == "" {
		return -1
	}
	if !m.settled {
		select {
		case <-ctx.Done():
			return -1
		case <-time.After(eagerSettle):
		}
		m.settled = true
	}
	return m.eager(ctx)
}

// eager is the server's eager-dispatch counter now, or -1 if unknown.
func (m *measurer) eager(ctx context.Context) float64 {
	if m.metricsURL == "" {
		return -1
	}
	v, err := eagerCounter(ctx, m.metricsURL)
	if err != nil {
		fmt.Fprintln(barWriter, "bench: eager share unknown:", err)
		return -1
	}
	return v
}

// eagerShare is the share of runs' callbacks the server dispatched
// eagerly since the counter read before (-1 if unknown). Only one system
// runs at a time, so the counter's growth is theirs.
func (m *measurer) eagerShare(ctx context.Context, before float64, runs []lcRun) float64 {
	if before < 0 {
		return -1
	}
	// The server reports its metrics on an interval (about a second):
	// wait, so the counter holds this run's dispatches, and the next run's
	// "before" none of them.
	select {
	case <-ctx.Done():
		return -1
	case <-time.After(eagerSettle):
	}
	after := m.eager(ctx)
	if after < 0 {
		return -1
	}
	n := 0
	for _, r := range runs {
		n += len(r.acceptedAt)
	}
	if n == 0 {
		return -1
	}
	return round2((after - before) / float64(n))
}

// eagerSettle is longer than the server's metrics reporting interval.
const eagerSettle = 2 * time.Second

// reportTo posts events to the ingress at url, as devstack's Report does
// for the main worker's.
func reportTo(hc *http.Client, url, token string) reportFunc {
	return func(ctx context.Context, body []byte) (int, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/insurance-results", bytes.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return 0, nil, fmt.Errorf("report: %w", err)
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		return resp.StatusCode, raw, err
	}
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
// -update-readme asks for it, for every run that completed (a run that
// errs never gets this far): the section shows the latest measurement,
// with the targets it missed named at its top, since older figures that
// met them would describe a program that no longer exists. Exiting
// non-zero on a miss stays the check.
func publishReadme(f flags, res *results, log io.Writer) error {
	if !f.updateReadme {
		return nil
	}
	if err := updateReadme(f.readme, res); err != nil {
		return err
	}
	fmt.Fprintf(log, "bench: updated the Performance section of %s (targets: %s)\n", f.readme, targetSummary(res.Targets))
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
