package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/insuranceflow/insuranceflow/insurance"
)

// policyRun is one policy's script as it was played.
type policyRun struct {
	Plan     policyPlan
	Outcomes []outcome // one per step sent; fewer than the steps if one went unanswered
	// Mismatches describe answers that differ from the model's prediction.
	Mismatches []string
	Started    time.Time
	Finished   time.Time
}

// acceptedEvent is an event the ingress accepted, as its answer said.
type acceptedEvent struct {
	Seq       int64
	RequestID string
	Stage     insurance.Stage
	Status    insurance.Status
	Step      int
}

// accepted lists the events the ingress accepted, in the order of the
// answers (each event once: a duplicate answer to an intended re-send
// repeats an earlier acceptance).
func (r *policyRun) accepted() []acceptedEvent {
	var out []acceptedEvent
	for i, o := range r.Outcomes {
		if o.HTTPStatus != 202 && !(o.HTTPStatus == 200 && o.LostAnswer) {
			continue
		}
		ev := r.Plan.Steps[i].Event
		out = append(out, acceptedEvent{Seq: o.Answer.Seq, RequestID: o.Answer.RequestID, Stage: ev.Stage, Status: ev.Status, Step: i})
	}
	return out
}

// unresolved reports whether a step went unanswered.
func (r *policyRun) unresolved() bool {
	return len(r.Outcomes) > 0 && r.Outcomes[len(r.Outcomes)-1].Unresolved
}

// driver plays the policies' scripts: policies start evenly over ramp, at
// most concurrency at a time, each sending its events one after another
// with a short random pause between them.
type driver struct {
	sender      *sender
	concurrency int
	ramp        time.Duration
	thinkMax    time.Duration
	seed        uint64
	// started, when set, learns each policy as it begins.
	started *startedPolicies

	sent     atomic.Int64
	answered atomic.Int64
	active   atomic.Int64
}

func (d *driver) run(ctx context.Context, plans []policyPlan) []*policyRun {
	runs := make([]*policyRun, len(plans))
	sem := make(chan struct{}, d.concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	interval := time.Duration(0)
	if len(plans) > 1 {
		interval = d.ramp / time.Duration(len(plans)-1)
	}
	for i, p := range plans {
		if err := sleepCtx(ctx, time.Until(start.Add(time.Duration(i)*interval))); err != nil {
			break
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		run := &policyRun{Plan: p}
		runs[i] = run
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			d.active.Add(1)
			defer d.active.Add(-1)
			d.play(ctx, run, rand.New(rand.NewPCG(d.seed, uint64(i)+1<<32)))
		}()
	}
	wg.Wait()
	// A cancelled run leaves the policies it never started out.
	out := runs[:0]
	for _, r := range runs {
		if r != nil {
			out = append(out, r)
		}
	}
	return out
}

func (d *driver) play(ctx context.Context, run *policyRun, rng *rand.Rand) {
	run.Started = time.Now()
	defer func() { run.Finished = time.Now() }()
	if d.started != nil {
		d.started.add(run.Plan.BizID)
	}
	for i, st := range run.Plan.Steps {
		if i > 0 && d.thinkMax > 0 {
			if sleepCtx(ctx, time.Duration(rng.Int64N(int64(d.thinkMax)))) != nil {
				return
			}
		}
		d.sent.Add(1)
		o := d.sender.send(ctx, st.Body, st.Kind == kindResend)
		run.Outcomes = append(run.Outcomes, o)
		if o.Unresolved {
			// What the ingress made of this event is unknown, and so is
			// what any later event would be judged against: stop, loudly.
			return
		}
		d.answered.Add(1)
		if msg := judge(st.Want, o); msg != "" {
			run.Mismatches = append(run.Mismatches, fmt.Sprintf("step %d (%s %s/%s): %s",
				i, st.Kind, st.Event.Stage, st.Event.Status, msg))
		}
	}
}

// judge compares an answer with the model's prediction; "" when they agree.
func judge(want expectation, o outcome) string {
	a := o.Answer
	got := o.HTTPStatus
	// An accepted event whose answer was lost comes back as a duplicate of
	// itself on the retry: the same acceptance, so it agrees.
	if want.HTTPStatus == 202 && got == 200 && o.LostAnswer {
		got = 202
	}
	if got != want.HTTPStatus {
		code := ""
		if a.Error != nil {
			code = " " + a.Error.Code
		}
		return fmt.Sprintf("HTTP %d%s, want %d %s", o.HTTPStatus, code, want.HTTPStatus, want.Code)
	}
	if !want.accepted() {
		if a.Error == nil || a.Error.Code != want.Code {
			return fmt.Sprintf("error %+v, want code %s", a.Error, want.Code)
		}
		return ""
	}
	if a.Seq != want.Seq || a.RequestID != want.RequestID || a.State != string(want.State) {
		return fmt.Sprintf("seq %d request_id %s state %s, want seq %d request_id %s state %s",
			a.Seq, a.RequestID, a.State, want.Seq, want.RequestID, want.State)
	}
	if wantDup := want.HTTPStatus == 200 || o.LostAnswer; a.Duplicate != wantDup {
		return fmt.Sprintf("duplicate=%v, want %v", a.Duplicate, wantDup)
	}
	return ""
}
