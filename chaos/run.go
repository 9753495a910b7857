package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/insuranceflow/insuranceflow/devstack"
	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/store"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// timer records the run's phases.
type timer struct {
	phases []phase
	mark   time.Time
	out    io.Writer
}

func (t *timer) done(name string) {
	d := time.Since(t.mark)
	t.mark = time.Now()
	t.phases = append(t.phases, phase{Name: name, Duration: d, Seconds: d.Round(100 * time.Millisecond).Seconds()})
	fmt.Fprintf(t.out, "chaos: %s took %s\n", name, d.Round(100*time.Millisecond))
}

// execute starts the stack, runs the faults and the business systems,
// settles, retries the parked callbacks and checks everything.
func execute(ctx context.Context, cfg config, log io.Writer) (*result, error) {
	if _, err := os.Stat(cfg.TemporalBin); err != nil {
		return nil, fmt.Errorf("the pinned Temporal CLI %s: %w (run `make temporal`, or set TEMPORAL_BIN)", cfg.TemporalBin, err)
	}
	bin, err := filepath.Abs(cfg.TemporalBin)
	if err != nil {
		return nil, fmt.Errorf("temporal binary path: %w", err)
	}
	binDir := ""
	if cfg.BinDir != "" {
		if binDir, err = filepath.Abs(cfg.BinDir); err != nil {
			return nil, fmt.Errorf("-bin-dir: %w", err)
		}
	}
	dir, err := os.MkdirTemp("", "insuranceflow-chaos-")
	if err != nil {
		return nil, fmt.Errorf("stack directory: %w", err)
	}
	t := &timer{mark: time.Now(), out: log}
	began := time.Now()

	stack, err := devstack.Start(ctx, devstack.Options{
		Dir:         dir,
		TemporalBin: bin,
		BinDir:      binDir,
		TopsimSeed:  int64(cfg.Seed),
		// Both workers keep to TOP_QPS through the store's limiter, and
		// topsim enforces it as TOP would: code 7 for one call too many in
		// any sliding second.
		TOPQPS: cfg.TOPQPS,
		// Every worker notifies topsim's receiver: chaos counts the
		// notifications its faults lose (none may be).
		Notify: true,
		WorkerEnv: []string{
			// The margin covers the jitter between a call's admission and
			// its arrival on a 2-core machine running the whole stack.
			"TOP_QPS_MARGIN=" + qpsMargin.String(),
			"TOP_CALL_TIMEOUT=" + topCallTimeout.String(),
			"RETRY_INITIAL_INTERVAL=200ms",
			"RETRY_MAX_INTERVAL=1s",
			"LOG_LEVEL=info",
			// The sweeper resumes the runs chaos cancels and terminates;
			// the default minute would outlast the settle's patience.
			"SWEEP_INTERVAL=" + sweepInterval.String(),
		},
		Log: log,
	})
	if err != nil {
		return nil, fmt.Errorf("start the stack (logs in %s): %w", dir, err)
	}
	keep := cfg.Keep
	defer func() {
		if err := stack.Stop(); err != nil {
			fmt.Fprintln(log, "chaos: stopping the stack:", err)
		}
		if keep {
			fmt.Fprintln(log, "chaos: logs, databases and receipts kept in", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	t.done("stack start")

	st, err := store.Open(ctx, stack.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("open the store: %w", err)
	}
	defer st.Close()

	plans, err := plan(planConfig{Policies: cfg.Policies, Seed: cfg.Seed,
		RunTag: strconv.FormatInt(time.Now().Unix(), 36), ParkEvery: cfg.ParkEvery})
	if err != nil {
		return nil, err
	}
	ingress := newIngressClient(stack.IngressURL, stack.Token)
	oplog := &operatorLog{}
	obs := &observer{stack: stack, store: st, ingress: ingress, http: &http.Client{Timeout: 30 * time.Second}, out: log, operator: oplog}

	// A second worker on the same task queue: it takes over the frozen
	// worker's attempts (the fencing case), and its ingress starts runs
	// that close after two idle seconds, for the close-race phase.
	closingURL, stopB, err := stack.StartExtraWorker(ctx, "worker-b", []string{"IDLE_TIMEOUT=2s", "EMPTY_RUN_GRACE=2s"})
	if err != nil {
		return nil, fmt.Errorf("start the second worker: %w", err)
	}
	defer func() {
		if err := stopB(); err != nil {
			fmt.Fprintln(log, "chaos: stopping the second worker:", err)
		}
	}()
	closing := newIngressClient(closingURL, stack.Token)
	lockStore, err := sqliteLocker(stack.DatabaseURL)
	if err != nil {
		return nil, err
	}
	t.done("second worker")

	fcfg := faultConfig{
		Window: cfg.FaultWindow, MaxWindow: 4 * cfg.FaultWindow,
		KillEvery: cfg.KillEvery, KillDown: killDown,
		BanAt: cfg.BanAt, BanSeconds: banSeconds,
		TemporalAt: cfg.TemporalAt, TemporalDown: temporalDown,
		ISPErrorRate: ispErrorRate, HangRate: hangRate, HangDuration: hangDuration,
		StoreOutageAt: cfg.StoreOutageAt, StoreOutageFor: storeOutageFor, LockStore: lockStore,
		PauseAt: cfg.PauseAt, PauseFor: pauseFor,
		Seed: cfg.Seed,
	}
	flog := &faultLog{out: log}
	started := &startedPolicies{}
	if cfg.StopRunEvery > 0 {
		pc := &policyclient.Client{Temporal: stack.Temporal, Snapshots: policyclient.StoreSnapshots{Store: st},
			Settings: workflows.Settings{RetryInitialInterval: 200 * time.Millisecond, RetryMaxInterval: time.Second,
				Notify: true, Pipeline: true}}
		stopper := &runStopper{temporal: stack.Temporal, started: started, rng: rand.New(rand.NewPCG(cfg.Seed, 0x5709)), log: flog,
			slowTOP: func(ctx context.Context, slow bool) error {
				if slow {
					return stack.SetFaults(ctx, topsimFaults{Latency: atTOPLatency.String(), ISPErrorRate: ptr(0.0), HangRate: ptr(0.0)}.json())
				}
				return stack.SetFaults(ctx, topsimFaults{Latency: "0s", ISPErrorRate: ptr(fcfg.ISPErrorRate), HangRate: ptr(fcfg.HangRate)}.json())
			},
			atTOPFrom: func() time.Time { return flog.began().Add(fcfg.BanAt + time.Duration(fcfg.BanSeconds)*time.Second) },
			// The workers' settings (devstack's and run's WorkerEnv).
			resume: pc.Resume,
			queuedBehind: func(ctx context.Context, bizID string) bool {
				st, err := pc.Status(ctx, bizID)
				return err == nil && hasQueuedBehind(st)
			}}
		fcfg.StopRunEvery, fcfg.StopRun = cfg.StopRunEvery, stopper.stop
	}
	drivingDone := make(chan struct{})
	faultsDone := make(chan struct{})
	go func() {
		defer close(faultsDone)
		runFaults(ctx, stack, fcfg, drivingDone, flog)
	}()
	operatorDone := make(chan struct{})
	go func() {
		defer close(operatorDone)
		operateDuringFaults(ctx, ingress, plans, operatorEvery, faultsDone, oplog)
	}()
	d := &driver{sender: newSender(ingress.report, cfg.GiveUp), concurrency: cfg.Concurrency,
		ramp: cfg.Ramp, thinkMax: cfg.Think, seed: cfg.Seed, started: started}
	stopProgress := progress(log, d, len(plans))
	runs := d.run(ctx, plans)
	stopProgress()
	close(drivingDone)
	t.done("driving (faults on)")
	<-faultsDone
	<-operatorDone
	t.done("rest of the fault window")
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	var o observation
	left := obs.waitSettled(ctx, runs, settleParked, cfg.Settle)
	if len(left) > 0 {
		fmt.Fprintf(log, "chaos: not settled after %s: %s\n", cfg.Settle, strings.Join(firstN(left, 10), "; "))
	}
	if o.ParkedVisible, err = obs.visibility(ctx, "parked"); err != nil {
		return nil, err
	}
	if o.ParkedListed, err = obs.starterParked(ctx); err != nil {
		o.ListErr = err.Error()
	}
	t.done("settle (parked held)")

	if err := stack.SetFaults(ctx, rejectOff()); err != nil {
		return nil, fmt.Errorf("remove the reject pattern: %w", err)
	}
	o.RetryErr = map[string]string{}
	skipped := oplog.skipped()
	for _, run := range runs {
		if !run.Plan.Park && !o.ParkedVisible[run.Plan.BizID] {
			continue
		}
		// Nothing to retry when the operator skipped every callback the
		// policy had (its only parked one, say) while the faults ran.
		if !waitsAfterSkips(run, skipped) {
			continue
		}
		if err := obs.starterRetry(ctx, run.Plan.BizID); err != nil {
			o.RetryErr[run.Plan.BizID] = err.Error()
		}
	}
	o.Unsettled = obs.waitSettled(ctx, runs, settleAll, cfg.Settle)
	t.done("retry parked + settle")

	closed := func(ctx context.Context, bizID string) bool {
		d, err := stack.Temporal.DescribeWorkflowExecution(ctx, workflows.WorkflowID(bizID), "")
		return err == nil && d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	}
	races := closeRaces(ctx, closing, ingress, closed, strconv.FormatInt(time.Now().Unix(), 36), cfg.RacePolicies)
	deadline := time.Now().Add(cfg.Settle)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		receipts, err := stack.Callbacks(ctx, "")
		if err == nil && len(raceReceiptsSettled(races, receipts)) == 0 {
			break
		}
		_ = sleepCtx(ctx, 500*time.Millisecond)
	}
	t.done("close races + settle")
	o.Notifications = waitNotified(ctx, obs.http, stack, st, cfg.Settle)
	t.done("notifications settle")
	o.StoppedLeft, o.ResumedAfterCompleted = stoppedRuns(ctx, stack.Temporal, flog.snapshot())

	if err := obs.collect(ctx, runs, races, &o); err != nil {
		return nil, fmt.Errorf("collect the final state: %w", err)
	}
	figs := check(checkInput{Runs: runs, Obs: o, Faults: flog.snapshot(), TolerateAttemptGaps: cfg.TolerateAttemptGaps,
		Operator: oplog.snapshot(), Races: races, TOPQPS: cfg.TOPQPS,
		Scheduled: scheduledClasses{StoreOutage: len(cfg.StoreOutageAt) > 0, Pause: pauseFor > 0,
			Operator: cfg.ParkEvery > 0, Races: cfg.RacePolicies > 0, StopRuns: cfg.StopRunEvery > 0}})
	if left := raceReceiptsSettled(races, o.Receipts); len(left) > 0 {
		unsettled := violations{}
		for _, u := range left {
			biz, what, _ := strings.Cut(u, ": ")
			unsettled.add(biz, "%s", what)
		}
		figs = append(figs, invariant(groupRaces, "race-phase events not delivered when the run ended", unsettled))
	}
	if len(o.Unsettled) > 0 {
		unsettled := violations{}
		for _, u := range o.Unsettled {
			biz, what, _ := strings.Cut(u, ": ")
			unsettled.add(biz, "%s", what)
		}
		figs = append(figs, invariant(groupDelivery, "unsettled when the run ended", unsettled))
	}
	t.done("checks")

	res := &result{
		Date:    began.UTC(),
		Machine: fmt.Sprintf("%s/%s, %d CPUs", runtime.GOOS, runtime.GOARCH, runtime.NumCPU()),
		Settings: settingsView{
			Policies: cfg.Policies, Concurrency: cfg.Concurrency, Seed: cfg.Seed,
			FaultWindow: cfg.FaultWindow.String(), KillEvery: cfg.KillEvery.String(),
			ISPErrorRate: ispErrorRate, HangRate: hangRate, HangDuration: hangDuration.String(),
			CallTimeout: topCallTimeout.String(), BanSeconds: banSeconds, ParkEvery: cfg.ParkEvery,
			TolerateAttemptGaps: cfg.TolerateAttemptGaps,
			TOPQPS:              cfg.TOPQPS, StoreOutages: len(cfg.StoreOutageAt), StoreOutageFor: storeOutageFor.String(),
			PauseFor: pauseFor.String(), RacePolicies: cfg.RacePolicies,
		},
		Phases:    t.phases,
		Figures:   figs,
		Failures:  failures(figs),
		Unsettled: o.Unsettled,
		Faults:    flog.snapshot(),
	}
	if cfg.StopRunEvery > 0 {
		res.Settings.StopRunEvery = cfg.StopRunEvery.String()
	}
	res.Total = res.total().Round(100 * time.Millisecond).Seconds()
	res.OK = len(res.Failures) == 0
	if !res.OK {
		keep = true
		printEvidenceLogs(log, dir, figs)
	}
	return res, nil
}

// progress prints a line every 5 s while the business systems drive.
func progress(out io.Writer, d *driver, policies int) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	began := time.Now()
	go func() {
		defer close(finished)
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				fmt.Fprintf(out, "chaos: t+%s driving: %d events sent, %d answered, %d policies active (of %d)\n",
					time.Since(began).Round(time.Second), d.sent.Load(), d.answered.Load(), d.active.Load(), policies)
			}
		}
	}()
	return func() { close(done); <-finished }
}

// printEvidenceLogs prints, for the first few biz_ids a failed invariant
// names, the worker log lines about them, with the worker's (re)starts in
// between, so a reader sees what the policy went through.
func printEvidenceLogs(out io.Writer, dir string, figs []figure) {
	raw, err := os.ReadFile(filepath.Join(dir, devstack.ProcWorker+".log"))
	if err != nil {
		fmt.Fprintln(out, "chaos: worker log:", err)
		return
	}
	lines := strings.Split(string(raw), "\n")
	shown := map[string]bool{}
	for _, f := range figs {
		if f.OK {
			continue
		}
		for _, biz := range firstN(f.BizIDs, 3) {
			if shown[biz] || !strings.HasPrefix(biz, parkPrefix) && !strings.HasPrefix(biz, normalPrefix) {
				continue
			}
			shown[biz] = true
			fmt.Fprintf(out, "----- worker log for %s (%s) -----\n", biz, f.Name)
			var keep []string
			for _, l := range lines {
				if strings.Contains(l, biz) && !strings.Contains(l, "http request") || strings.HasPrefix(l, "=== devstack") {
					keep = append(keep, l)
				}
			}
			fmt.Fprintln(out, strings.Join(trimStarts(keep), "\n"))
		}
	}
}

// trimStarts drops worker-start markers that no line about the policy
// follows, and keeps at most the last 40 lines.
func trimStarts(lines []string) []string {
	var out []string
	for i, l := range lines {
		if strings.HasPrefix(l, "=== devstack") && (i+1 == len(lines) || strings.HasPrefix(lines[i+1], "=== devstack")) {
			continue
		}
		out = append(out, l)
	}
	if len(out) > 40 {
		out = out[len(out)-40:]
	}
	return out
}
