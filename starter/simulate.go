package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/workflows"
)

const (
	// eventSpacing separates consecutive events of one simulated policy,
	// so time_of_occurrence always moves forward.
	eventSpacing = time.Minute
	// simManagerName is a made-up name, sent so simulated traffic exercises
	// the personal-data paths like real traffic does.
	simManagerName = "模拟经理"
)

// lifecycleStages is a full policy life, in the order a business sends it.
func lifecycleStages() []insurance.Stage {
	return []insurance.Stage{
		insurance.StagePreInsure, insurance.StageUnderwrite, insurance.StageInsure,
		insurance.StageEndorse, insurance.StageCancel,
	}
}

// failureStages is the order in which failing lifecycles take turns to
// fail a stage first, underwriting (the common real case) first.
func failureStages() []insurance.Stage {
	return []insurance.Stage{
		insurance.StageUnderwrite, insurance.StageInsure, insurance.StageEndorse,
		insurance.StageCancel, insurance.StagePreInsure,
	}
}

// plannedPolicy is one simulated policy and the events it will send, in order.
type plannedPolicy struct {
	bizID  string
	events []insurance.Result
}

// planEvents builds the events of one policy: each stage succeeding, with a
// failure of failAt (when non-zero) reported before that stage's success.
// The last event happens at end; earlier ones eventSpacing apart before it.
func planEvents(bizID string, typ insurance.Type, stages []insurance.Stage, failAt insurance.Stage, end time.Time) []insurance.Result {
	type step struct {
		stage  insurance.Stage
		status insurance.Status
	}
	var steps []step
	for _, s := range stages {
		if s == failAt {
			steps = append(steps, step{s, insurance.StatusFailure})
		}
		steps = append(steps, step{s, insurance.StatusSuccess})
	}
	// biz_ids are ASCII; the tail keeps the unique part within the field's limit.
	policyNumber := "PN-" + bizID[max(0, len(bizID)-40):]
	start := end.Add(-time.Duration(len(steps)-1) * eventSpacing)
	issued := false
	events := make([]insurance.Result, 0, len(steps))
	for i, st := range steps {
		r := insurance.Result{
			BizID:                  bizID,
			InsuranceCompany:       insurance.CompanyCPIC,
			Stage:                  st.stage,
			Status:                 st.status,
			TimeOfOccurrence:       start.Add(time.Duration(i) * eventSpacing).In(insurance.Location()).Format(insurance.TimeLayout),
			BankAccountManagerName: simManagerName,
			InsuranceType:          typ,
		}
		if st.stage == insurance.StageInsure && st.status == insurance.StatusSuccess {
			issued = true
			r.InsuranceDocument = "oss:sim/" + bizID + ".pdf"
		}
		// A policy number exists once the policy is issued.
		if issued {
			r.PolicyNumber = policyNumber
		}
		events = append(events, r)
	}
	return events
}

// failing reports whether lifecycle i of n is one of the k that include a
// failure step; the k are spread evenly rather than bunched at the start.
func failing(i, n, k int) bool {
	return (i+1)*k/n > i*k/n
}

// runID makes biz_ids of one run unique across reruns: the start time to
// the second, in GMT+8 like every API time, and a random component for
// runs started within the same second.
func runID(now time.Time) string {
	return fmt.Sprintf("%s-%04x", now.In(insurance.Location()).Format("20060102150405"), rand.Uint32()&0xffff)
}

type simulateFlags struct {
	count        int
	concurrency  int
	failureShare float64
	prefix       string
	demo         bool
}

func (f simulateFlags) check(cmd *cobra.Command) error {
	var problems []string
	if f.demo {
		for _, name := range []string{"count", "concurrency", "failure-share"} {
			if cmd.Flags().Changed(name) {
				problems = append(problems, "--demo takes no --"+name)
			}
		}
	}
	if f.count < 1 {
		problems = append(problems, fmt.Sprintf("--count must be at least 1, got %d", f.count))
	}
	if f.concurrency < 1 {
		problems = append(problems, fmt.Sprintf("--concurrency must be at least 1, got %d", f.concurrency))
	}
	if math.IsNaN(f.failureShare) || f.failureShare < 0 || f.failureShare > 1 {
		problems = append(problems, fmt.Sprintf("--failure-share must be between 0 and 1, got %v", f.failureShare))
	}
	// The longest biz_id the run will make, checked by the event rules.
	sample := f.prefix + "20060102150405-ffff-" + strings.Repeat("9", max(4, len(fmt.Sprint(f.count))))
	var verr *insurance.ValidationError
	if errors.As(insurance.Result{BizID: sample}.Validate(), &verr) {
		for _, p := range verr.Problems {
			if p.Field == "biz_id" {
				problems = append(problems, fmt.Sprintf("--prefix %q makes unusable biz_ids: biz_id %s", f.prefix, p.Message))
			}
		}
	}
	if len(problems) > 0 {
		return &usageError{Command: cmd.CommandPath(), Err: errors.New(strings.Join(problems, "; "))}
	}
	return nil
}

func newSimulateCmd(a *app) *cobra.Command {
	f := simulateFlags{count: 10, concurrency: 4, failureShare: 0.2, prefix: "sim-"}
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Drive simulated policy lifecycles through the workflows",
		Long: "Drive --count full policy lifecycles (pre_insure, underwrite, insure, endorse,\n" +
			"cancel), --concurrency at a time, and print a summary. A --failure-share of them\n" +
			"report one stage's failure before its success. Events of one policy are sent in\n" +
			"order with increasing time_of_occurrence; biz_ids are --prefix, the start time and\n" +
			"a random part, so reruns never collide.\n\n" +
			"--demo instead leaves one policy in each state (pre_insured, underwritten,\n" +
			"insured, insured and endorsed, cancelled), sends one illegal event to show a\n" +
			"rejection, and starts one policy whose biz_id contains PARK, which the dev\n" +
			"stack's TOP simulator refuses so that its callback parks for retry or skip.",
		Example: "  starter simulate --count 100 --concurrency 16 --failure-share 0.3\n" +
			"  starter simulate --demo",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(cmd); err != nil {
				return err
			}
			ops, err := a.policies(cmd.Context())
			if err != nil {
				return err
			}
			prefix := f.prefix + runID(a.now()) + "-"
			if f.demo {
				return a.demo(cmd.Context(), ops, prefix)
			}
			return a.simulate(cmd.Context(), ops, prefix, f)
		},
	}
	fl := cmd.Flags()
	fl.IntVarP(&f.count, "count", "n", f.count, "policies to simulate")
	fl.IntVarP(&f.concurrency, "concurrency", "c", f.concurrency, "policies in flight at once")
	fl.Float64Var(&f.failureShare, "failure-share", f.failureShare, "share of policies (0-1) that report a stage's failure before its success")
	fl.StringVar(&f.prefix, "prefix", f.prefix, "start of every simulated biz_id")
	fl.BoolVar(&f.demo, "demo", false, "leave one policy in every state, show a rejection and a parked callback")
	return cmd
}

// simSummary is simulate's output.
type simSummary struct {
	BizIDPrefix     string     `json:"biz_id_prefix"`
	Policies        int        `json:"policies"`
	FailureSteps    int        `json:"failure_steps"`
	EventsPlanned   int        `json:"events_planned"`
	EventsSent      int        `json:"events_sent"`
	Accepted        int        `json:"accepted"`
	Duplicates      int        `json:"duplicates"`
	Rejected        int        `json:"rejected"`
	Errors          int        `json:"errors"`
	Abandoned       int        `json:"abandoned_policies"` // stopped early by a rejection or error
	ElapsedSeconds  float64    `json:"elapsed_seconds"`
	EventsPerSecond float64    `json:"events_per_second"`
	FirstProblem    *errorBody `json:"first_problem,omitempty"`
}

func (s simSummary) write(w io.Writer) error {
	fmt.Fprintf(w, "simulated %d policies (%d with a failure-then-success step), biz_ids %s*\n",
		s.Policies, s.FailureSteps, s.BizIDPrefix)
	t := newTable(w)
	t.row("events", fmt.Sprintf("%d sent of %d", s.EventsSent, s.EventsPlanned))
	t.row("accepted", fmt.Sprint(s.Accepted))
	t.row("duplicates", fmt.Sprint(s.Duplicates))
	t.row("rejected", fmt.Sprint(s.Rejected))
	t.row("errors", fmt.Sprint(s.Errors))
	if s.Abandoned > 0 {
		t.row("abandoned", fmt.Sprintf("%d policies", s.Abandoned))
	}
	t.row("elapsed", (time.Duration(s.ElapsedSeconds * float64(time.Second))).Round(time.Millisecond).String())
	t.row("rate", fmt.Sprintf("%.1f events/s", s.EventsPerSecond))
	return t.flush()
}

// simulationError says that some simulated events were not accepted. It
// unwraps to the first error (or, with none, the first rejection), which
// decides the exit code.
type simulationError struct {
	Rejected, Errors int
	First            error
}

func (e *simulationError) Error() string {
	first := e.First.Error()
	var rej *policyclient.Rejection
	if errors.As(e.First, &rej) {
		first = formatRejection(rej)
	}
	return fmt.Sprintf("simulate: %d events rejected, %d failed; first: %s", e.Rejected, e.Errors, first)
}

func (e *simulationError) Unwrap() error { return e.First }

// tally counts outcomes from concurrent lifecycles.
type tally struct {
	mu                                   sync.Mutex
	sent, accepted, duplicates, rejected int
	errors, abandoned                    int
	firstRejection, firstError           error
}

func (t *tally) record(acc workflows.Acceptance, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sent++
	var rej *policyclient.Rejection
	switch {
	case err == nil && acc.Duplicate:
		t.duplicates++
	case err == nil:
		t.accepted++
	case errors.As(err, &rej):
		t.rejected++
		if t.firstRejection == nil {
			t.firstRejection = err
		}
	default:
		t.errors++
		if t.firstError == nil {
			t.firstError = err
		}
	}
}

func (t *tally) abandon() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.abandoned++
}

// tracker draws a progress bar on w, or nothing when bar is nil.
type tracker struct {
	bar *progressbar.ProgressBar
	w   io.Writer
}

func (t tracker) add(n int) {
	if t.bar != nil && n > 0 {
		// A bar that cannot draw must not stop the simulation.
		_ = t.bar.Add(n)
	}
}

func (t tracker) finish() {
	if t.bar != nil {
		_ = t.bar.Finish()
		// The bar leaves the cursor at the end of its line.
		_, _ = fmt.Fprintln(t.w)
	}
}

func (a *app) simulate(ctx context.Context, ops policyOps, prefix string, f simulateFlags) error {
	failures := int(math.Round(float64(f.count) * f.failureShare))
	width := max(4, len(fmt.Sprint(f.count)))
	end := a.now()
	plans := make([]plannedPolicy, f.count)
	total, j := 0, 0
	for i := range plans {
		var failAt insurance.Stage
		if failing(i, f.count, failures) {
			failAt = failureStages()[j%len(failureStages())]
			j++
		}
		typ := insurance.TypeHomeProperty
		if i%2 == 1 {
			typ = insurance.TypePerformanceBond
		}
		bizID := fmt.Sprintf("%s%0*d", prefix, width, i+1)
		plans[i] = plannedPolicy{bizID: bizID, events: planEvents(bizID, typ, lifecycleStages(), failAt, end)}
		total += len(plans[i].events)
	}

	var progress tracker
	if a.progress && !a.cfg.JSON {
		progress.w = a.stderr
		progress.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(a.stderr),
			progressbar.OptionSetDescription("simulate"),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("events"),
			progressbar.OptionThrottle(100*time.Millisecond),
		)
	}

	var t tally
	start := a.now()
	var g errgroup.Group
	g.SetLimit(f.concurrency)
	for _, p := range plans {
		g.Go(func() error {
			a.runPlan(ctx, ops, p, &t, progress)
			return nil
		})
	}
	_ = g.Wait() // the lifecycles report through t, never through an error
	progress.finish()
	elapsed := a.now().Sub(start)

	s := simSummary{
		BizIDPrefix:    prefix,
		Policies:       f.count,
		FailureSteps:   failures,
		EventsPlanned:  total,
		EventsSent:     t.sent,
		Accepted:       t.accepted,
		Duplicates:     t.duplicates,
		Rejected:       t.rejected,
		Errors:         t.errors,
		Abandoned:      t.abandoned,
		ElapsedSeconds: elapsed.Seconds(),
	}
	if elapsed > 0 {
		s.EventsPerSecond = float64(t.sent) / elapsed.Seconds()
	}
	var failed error
	// An error (Temporal down, a timeout) says more than a rejection.
	if first := cmp.Or(t.firstError, t.firstRejection); first != nil {
		failed = &simulationError{Rejected: t.rejected, Errors: t.errors, First: first}
		body := newErrorBody(first, exitCodeOf(first))
		s.FirstProblem = &body
	}
	if err := a.emit(s, s.write); err != nil {
		return err
	}
	if failed != nil {
		return &shownError{Err: failed}
	}
	return nil
}

// runPlan sends one policy's events in order. It stops at the first event
// that is not accepted: the ones after it would only be refused as illegal.
func (a *app) runPlan(ctx context.Context, ops policyOps, p plannedPolicy, t *tally, progress tracker) {
	for i, ev := range p.events {
		if ctx.Err() != nil {
			t.abandon()
			progress.add(len(p.events) - i)
			return
		}
		acc, err := a.report(ctx, ops, ev)
		t.record(acc, err)
		progress.add(1)
		if err != nil {
			t.abandon()
			progress.add(len(p.events) - i - 1)
			return
		}
	}
}
