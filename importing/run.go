package importing

import (
	"context"
	"errors"
	"sync"

	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// Policies is what an import needs of the policy client.
type Policies interface {
	Import(ctx context.Context, bizID string, req workflows.ImportRequest) (workflows.ImportResult, error)
	PolicySnapshot(ctx context.Context, bizID string) (*workflows.Snapshot, error)
	CheckClock(r insurance.Result) error
}

var _ Policies = (*policyclient.Client)(nil)

// Outcome is what became (or, in a dry run, would become) of one line.
type Outcome string

const (
	OutcomeImported  Outcome = "imported"  // accepted as already reported to TOP: never sent
	OutcomeQueued    Outcome = "queued"    // accepted, and will be reported to TOP
	OutcomeDuplicate Outcome = "duplicate" // its request id was accepted before: nothing changed
	OutcomeRefused   Outcome = "refused"   // refused, as a live report would be (Error says why)
	// OutcomeFailed: the line was not judged, because Temporal or the store
	// failed; running the file again imports it.
	OutcomeFailed Outcome = "failed"
)

// LineResult is one line's outcome.
type LineResult struct {
	Line      int        `json:"line"`
	BizID     string     `json:"biz_id,omitempty"`
	RequestID string     `json:"request_id,omitempty"`
	Outcome   Outcome    `json:"outcome"`
	Seq       int64      `json:"seq,omitempty"`
	State     fsm.State  `json:"state,omitempty"` // the policy's state after the event
	Error     *LineError `json:"error,omitempty"`
}

// LineError is why a line was refused or failed, with the API's codes
// (invalid_request, illegal_transition, time_went_backwards, …).
type LineError struct {
	Code          string                 `json:"code"`
	Message       string                 `json:"message"`
	Fields        []insurance.FieldError `json:"fields,omitempty"`
	AllowedStages []string               `json:"allowed_stages,omitempty"`
}

// Summary counts an import's lines by outcome.
type Summary struct {
	DryRun     bool `json:"dry_run"`
	Lines      int  `json:"lines"`
	Policies   int  `json:"policies"`
	Imported   int  `json:"imported"`
	Queued     int  `json:"queued"` // to be reported to TOP
	Duplicates int  `json:"duplicates"`
	Refused    int  `json:"refused"`
	Failed     int  `json:"failed"`
}

func (s *Summary) add(r LineResult) {
	switch r.Outcome {
	case OutcomeImported:
		s.Imported++
	case OutcomeQueued:
		s.Queued++
	case OutcomeDuplicate:
		s.Duplicates++
	case OutcomeRefused:
		s.Refused++
	case OutcomeFailed:
		s.Failed++
	}
}

// Options tune a Run.
type Options struct {
	// DryRun judges every line against the policy as it stands (its open
	// run's state, or the store's) and writes nothing.
	DryRun bool
	// Concurrency is how many policies are in flight at once (default 8).
	Concurrency int
	// Limiter, if set, is waited on before each call to Temporal: --qps.
	Limiter *rate.Limiter
	// By is who imports, for the audit trail.
	By string
	// Report, if set, gets every line's result, one call at a time, as
	// each policy finishes.
	Report func(LineResult)
}

// DefaultConcurrency is Options.Concurrency's default.
const DefaultConcurrency = 8

// Run imports lines: grouped per biz_id, each policy's lines in file order
// in as few Updates as workflows.MaxImportEvents allows (one for any real
// policy), policies concurrently. It returns the summary; the error is the
// context's when the run was cancelled.
func Run(ctx context.Context, p Policies, lines []Line, opt Options) (Summary, error) {
	if opt.Concurrency <= 0 {
		opt.Concurrency = DefaultConcurrency
	}
	sum := Summary{DryRun: opt.DryRun, Lines: len(lines)}
	var mu sync.Mutex
	report := func(rs ...LineResult) {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range rs {
			sum.add(r)
			if opt.Report != nil {
				opt.Report(r)
			}
		}
	}

	var order []string
	groups := make(map[string][]Line)
	for _, l := range lines {
		if l.Err != nil {
			report(refusedLine(l, l.Err))
			continue
		}
		if _, ok := groups[l.Event.BizID]; !ok {
			order = append(order, l.Event.BizID)
		}
		groups[l.Event.BizID] = append(groups[l.Event.BizID], l)
	}
	sum.Policies = len(order)

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opt.Concurrency)
	for _, bizID := range order {
		group := groups[bizID]
		g.Go(func() error {
			rs, err := importPolicy(gctx, p, bizID, group, opt)
			report(rs...)
			return err
		})
	}
	err := g.Wait()
	return sum, err
}

// importPolicy imports (or plans) one policy's lines. Its error is only a
// cancellation; every other failure is in the lines' results.
func importPolicy(ctx context.Context, p Policies, bizID string, group []Line, opt Options) ([]LineResult, error) {
	results := make([]LineResult, len(group))
	var (
		events []workflows.ImportEvent
		at     []int // results index of each event
	)
	for i, l := range group {
		results[i] = LineResult{Line: l.No, BizID: bizID, RequestID: l.Event.RequestID}
		if err := p.CheckClock(l.Event); err != nil {
			results[i] = refusedLine(l, err)
			continue
		}
		events = append(events, workflows.ImportEvent{Event: l.Event, AlreadyReported: l.AlreadyReported})
		at = append(at, i)
	}
	fail := func(from int, err error) {
		c := policyclient.Classify(err)
		msg := c.Message
		if msg == "" {
			msg = c.Kind.String()
		}
		code := c.Reason
		if code == "" {
			code = c.Kind.String()
		}
		for _, i := range at[from:] {
			results[i].Outcome = OutcomeFailed
			results[i].Error = &LineError{Code: code, Message: msg}
		}
	}
	if len(events) == 0 {
		return results, nil
	}

	if opt.DryRun {
		if err := wait(ctx, opt.Limiter); err != nil {
			return nil, err
		}
		snap, err := p.PolicySnapshot(ctx, bizID)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			fail(0, err)
			return results, nil
		}
		plan, err := workflows.PlanImport(bizID, snap, events)
		if err != nil {
			fail(0, err)
			return results, nil
		}
		for k, o := range plan.Result.Outcomes {
			fill(&results[at[k]], o)
		}
		return results, nil
	}

	for from := 0; from < len(events); from += workflows.MaxImportEvents {
		chunk := events[from:min(from+workflows.MaxImportEvents, len(events))]
		if err := wait(ctx, opt.Limiter); err != nil {
			return nil, err
		}
		res, err := p.Import(ctx, bizID, workflows.ImportRequest{Events: chunk, By: opt.By})
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			fail(from, err)
			return results, nil
		}
		if len(res.Outcomes) != len(chunk) {
			fail(from, errors.New("the workflow answered a different number of outcomes than events sent"))
			return results, nil
		}
		for k, o := range res.Outcomes {
			fill(&results[at[from+k]], o)
		}
	}
	return results, nil
}

func wait(ctx context.Context, l *rate.Limiter) error {
	if l == nil {
		return nil
	}
	return l.Wait(ctx)
}

// fill sets a line's result from the workflow's (or the plan's) outcome.
func fill(r *LineResult, o workflows.ImportOutcome) {
	switch {
	case o.Refusal != nil:
		r.Outcome = OutcomeRefused
		r.Error = &LineError{Code: o.Refusal.Reason, Message: o.Refusal.Message, Fields: o.Refusal.Fields}
		if o.Refusal.Transition != nil {
			r.Error.AllowedStages = o.Refusal.Transition.AllowedStages
		}
	case o.Acceptance != nil:
		r.Seq, r.State = o.Acceptance.Seq, o.Acceptance.State
		switch {
		case o.Acceptance.Duplicate:
			r.Outcome = OutcomeDuplicate
		case o.Callback == workflows.EventImported:
			r.Outcome = OutcomeImported
		default:
			r.Outcome = OutcomeQueued
		}
	}
}

// refusedLine is a line refused before it reached its policy: it is not a
// valid event, or it is too far in the future.
func refusedLine(l Line, err error) LineResult {
	r := LineResult{Line: l.No, BizID: l.Event.BizID, RequestID: l.Event.RequestID, Outcome: OutcomeRefused,
		Error: &LineError{Code: workflows.ReasonInvalidRequest, Message: err.Error()}}
	var v *insurance.ValidationError
	if errors.As(err, &v) {
		r.Error.Fields = v.Problems
	}
	return r
}
