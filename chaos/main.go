package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// config is the command line.
type config struct {
	Policies     int
	Concurrency  int
	Seed         uint64
	Short        bool
	FaultWindow  time.Duration
	Ramp         time.Duration
	Think        time.Duration
	KillEvery    time.Duration
	BanAt        time.Duration
	TemporalAt   time.Duration
	Settle       time.Duration
	GiveUp       time.Duration
	ParkEvery    int
	JSONPath     string
	UpdateReadme bool
	ReadmePath   string
	TemporalBin  string
	BinDir       string
	Keep         bool
	// TolerateAttemptGaps: see checkInput.
	TolerateAttemptGaps bool
	// StoreOutageAt and PauseAt place the store outages and the worker
	// freeze in the fault window; RacePolicies is the close-race phase.
	StoreOutageAt []time.Duration
	PauseAt       time.Duration
	RacePolicies  int
	// TOPQPS is the stack's TOP_QPS, enforced by topsim.
	TOPQPS int
	// StopRunEvery is the time between policy runs cancelled or
	// terminated from Temporal in the fault window (0 = none).
	StopRunEvery time.Duration
}

// fullDefaults and shortDefaults are the two shapes of a run; flags given
// on the command line win over either.
func fullDefaults() config {
	return config{
		Policies: 300, Concurrency: 24, FaultWindow: 75 * time.Second, Ramp: 60 * time.Second,
		Think: 300 * time.Millisecond, KillEvery: 4 * time.Second, BanAt: 15 * time.Second,
		TemporalAt: 40 * time.Second, Settle: 5 * time.Minute,
		StoreOutageAt: []time.Duration{20 * time.Second, 55 * time.Second}, PauseAt: 28 * time.Second, RacePolicies: 30,
		StopRunEvery: 3 * time.Second,
	}
}

func shortDefaults() config {
	return config{
		Policies: 40, Concurrency: 12, FaultWindow: 20 * time.Second, Ramp: 15 * time.Second,
		Think: 250 * time.Millisecond, KillEvery: 2500 * time.Millisecond, BanAt: 2 * time.Second,
		TemporalAt: 9 * time.Second, Settle: 3 * time.Minute,
		StoreOutageAt: []time.Duration{5 * time.Second}, PauseAt: 12 * time.Second, RacePolicies: 6,
		StopRunEvery: 2 * time.Second,
	}
}

// Fixed parts of the fault schedule, as issue 5 sets them.
const (
	ispErrorRate   = 0.3
	hangRate       = 0.1
	hangDuration   = 5 * time.Second // past topCallTimeout: a real hang
	topCallTimeout = 2 * time.Second
	banSeconds     = 10
	killDown       = 500 * time.Millisecond
	temporalDown   = 3 * time.Second
	// storeOutageFor is longer than the store's 5 s busy timeout, so
	// writes fail rather than wait; pauseFor is longer than the delivery
	// heartbeat timeout (10 s), so Temporal retries the frozen worker's
	// attempts elsewhere before it wakes.
	storeOutageFor = 6 * time.Second
	pauseFor       = 13 * time.Second
	// operatorEvery is how often the operator looks for parked callbacks
	// while the faults run.
	operatorEvery = 2 * time.Second
	// qpsMargin widens the limiter's window (see TOP_QPS_MARGIN).
	qpsMargin = 300 * time.Millisecond
	// sweepInterval is the workers' SWEEP_INTERVAL: how soon a stopped
	// run's policy gets a new one.
	sweepInterval = 2 * time.Second
)

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	full := fullDefaults()
	seed := fs.String("seed", "1", "seeds the policies' scripts, topsim's fault draws and the kill jitter")
	fs.IntVar(&c.Policies, "policies", full.Policies, "policy lifecycles to drive")
	fs.IntVar(&c.Concurrency, "concurrency", full.Concurrency, "policies driven at once, at most")
	fs.BoolVar(&c.Short, "short", false, "the CI shape: 40 policies, a 20 s fault window (flags given explicitly still win)")
	fs.DurationVar(&c.FaultWindow, "fault-window", full.FaultWindow, "how long faults last at least (until every event is answered)")
	fs.DurationVar(&c.Ramp, "ramp", full.Ramp, "policies start evenly over this")
	fs.DurationVar(&c.Think, "think", full.Think, "longest pause between one policy's events")
	fs.DurationVar(&c.KillEvery, "kill-every", full.KillEvery, "mean time between worker SIGKILLs (±25%)")
	fs.DurationVar(&c.BanAt, "ban-at", full.BanAt, "when in the window the 10 s code-7 ban starts")
	fs.DurationVar(&c.TemporalAt, "temporal-at", full.TemporalAt, "when in the window the Temporal server is restarted")
	fs.DurationVar(&c.Settle, "settle", full.Settle, "how long to wait for the stack to settle after the faults, each time")
	fs.DurationVar(&c.GiveUp, "give-up", 5*time.Minute, "how long the business client re-sends one event before it reports it unanswered")
	fs.IntVar(&c.ParkEvery, "park-every", 10, "every n-th policy has its callbacks rejected (call_success=false) and parks")
	fs.StringVar(&c.JSONPath, "json", "bench-results/chaos.json", "write the results here as JSON (\"\" = don't)")
	fs.BoolVar(&c.UpdateReadme, "update-readme", false, "write the figures table into the README's chaos section")
	fs.StringVar(&c.ReadmePath, "readme", "README.md", "the README -update-readme writes")
	fs.StringVar(&c.TemporalBin, "temporal-bin", firstNonEmpty(getenv("TEMPORAL_BIN"), ".bin/temporal"), "the pinned Temporal CLI (`make temporal` builds it)")
	fs.StringVar(&c.BinDir, "bin-dir", "", "prebuilt worker, topsim and starter (`make build` puts them in .bin); \"\" = build them")
	fs.BoolVar(&c.TolerateAttemptGaps, "tolerate-attempt-gaps", false,
		"report events whose attempts count exceeds their attempt rows (an attempt cut off by SIGKILL, or started by Temporal and never run) without failing the run")
	fs.DurationVar(&c.PauseAt, "pause-at", full.PauseAt, "when in the window the worker is frozen (SIGSTOP) past its heartbeat timeout")
	fs.IntVar(&c.TOPQPS, "top-qps", 25, "TOP_QPS for both workers, enforced by topsim like TOP (0 = no limit)")
	fs.IntVar(&c.RacePolicies, "race-policies", full.RacePolicies, "policies raced around run closes after the fault window (0 = none)")
	fs.DurationVar(&c.StopRunEvery, "stop-run-every", full.StopRunEvery, "time between policy runs cancelled or terminated from Temporal while the faults run (0 = none)")
	c.StoreOutageAt = full.StoreOutageAt
	fs.BoolVar(&c.Keep, "keep", false, "keep the stack's directory (logs, databases) even when every check passes")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.Short {
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		apply := func(name string, dst any, v any) {
			if given[name] {
				return
			}
			switch d := dst.(type) {
			case *int:
				*d = v.(int)
			case *time.Duration:
				*d = v.(time.Duration)
			}
		}
		s := shortDefaults()
		apply("policies", &c.Policies, s.Policies)
		apply("concurrency", &c.Concurrency, s.Concurrency)
		apply("fault-window", &c.FaultWindow, s.FaultWindow)
		apply("ramp", &c.Ramp, s.Ramp)
		apply("think", &c.Think, s.Think)
		apply("kill-every", &c.KillEvery, s.KillEvery)
		apply("ban-at", &c.BanAt, s.BanAt)
		apply("temporal-at", &c.TemporalAt, s.TemporalAt)
		apply("settle", &c.Settle, s.Settle)
		apply("pause-at", &c.PauseAt, s.PauseAt)
		apply("race-policies", &c.RacePolicies, s.RacePolicies)
		apply("stop-run-every", &c.StopRunEvery, s.StopRunEvery)
		c.StoreOutageAt = s.StoreOutageAt
	}
	var problems []string
	n, err := strconv.ParseUint(*seed, 10, 64)
	if err != nil {
		problems = append(problems, fmt.Sprintf("-seed: %q is not a non-negative integer", *seed))
	}
	c.Seed = n
	if c.Policies < 1 {
		problems = append(problems, fmt.Sprintf("-policies: must be at least 1, got %d", c.Policies))
	}
	if c.Concurrency < 1 {
		problems = append(problems, fmt.Sprintf("-concurrency: must be at least 1, got %d", c.Concurrency))
	}
	if c.ParkEvery < 0 {
		problems = append(problems, fmt.Sprintf("-park-every: must not be negative, got %d", c.ParkEvery))
	}
	for name, d := range map[string]time.Duration{"-fault-window": c.FaultWindow, "-settle": c.Settle, "-give-up": c.GiveUp} {
		if d <= 0 {
			problems = append(problems, fmt.Sprintf("%s: must be positive, got %s", name, d))
		}
	}
	if c.BanAt >= c.FaultWindow || c.TemporalAt >= c.FaultWindow {
		problems = append(problems, fmt.Sprintf("-ban-at (%s) and -temporal-at (%s) must fall inside -fault-window (%s)", c.BanAt, c.TemporalAt, c.FaultWindow))
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return config{}, errors.New(strings.Join(problems, "; "))
	}
	return c, nil
}

func firstNonEmpty(v, def string) string {
	if v != "" {
		return v
	}
	return def
}

// run is the whole command; it returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "chaos:", err)
		return 2
	}
	res, err := execute(ctx, cfg, stderr)
	if res != nil {
		res.Command = strings.TrimSpace("go run ./chaos " + strings.Join(args, " "))
	}
	if err != nil {
		fmt.Fprintln(stderr, "chaos:", err)
		return 1
	}
	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, res.markdown())
	code := 0
	if !res.OK {
		code = 1
		fmt.Fprintln(stderr, "\nchaos: FAILED invariants:")
		for _, f := range res.Failures {
			fmt.Fprintln(stderr, "  -", f)
		}
		for _, f := range res.Figures {
			if !f.OK {
				fmt.Fprintf(stderr, "  evidence for %q:\n", f.Name)
				for _, e := range f.Evidence {
					fmt.Fprintln(stderr, "    ", e)
				}
			}
		}
	}
	if cfg.JSONPath != "" {
		if err := writeJSON(cfg.JSONPath, res); err != nil {
			fmt.Fprintln(stderr, "chaos:", err)
			return 1
		}
		fmt.Fprintln(stderr, "chaos: results in", cfg.JSONPath)
	}
	if err := publishReadme(cfg, res, stderr); err != nil {
		fmt.Fprintln(stderr, "chaos:", err)
		return 1
	}
	return code
}

// publishReadme writes res's table into the README when -update-readme
// asks for it, and only for a run whose every invariant held: the README's
// table is the project's claim, and a failed run's figures are evidence
// for a bug (kept in -json), not something to publish.
func publishReadme(cfg config, res *result, stderr io.Writer) error {
	if !cfg.UpdateReadme {
		return nil
	}
	if !res.OK {
		fmt.Fprintln(stderr, "chaos: README not updated: the run failed")
		return nil
	}
	if err := updateReadme(cfg.ReadmePath, res.markdown()); err != nil {
		return err
	}
	fmt.Fprintln(stderr, "chaos: table written to", cfg.ReadmePath)
	return nil
}
