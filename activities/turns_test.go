package activities

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/top"
)

// gatedTOP is a TOP that holds each call until the test releases it, and
// remembers the order the calls reached it in.
type gatedTOP struct {
	mu      sync.Mutex
	order   []int // stages, in the order they reached TOP
	reached chan insurance.Stage
	release chan top.Outcome
}

func newGatedTOP() *gatedTOP {
	return &gatedTOP{reached: make(chan insurance.Stage, 8), release: make(chan top.Outcome, 8)}
}

func (g *gatedTOP) Callback(_ context.Context, r insurance.Result) top.Outcome {
	g.mu.Lock()
	g.order = append(g.order, int(r.Stage))
	g.mu.Unlock()
	g.reached <- r.Stage
	return <-g.release
}

func (g *gatedTOP) sent() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.order)
}

// pipelinedInput is the callback of the second event (underwrite), scheduled
// behind the first (After 1).
func pipelinedInput() DeliverInput {
	return DeliverInput{
		BizID:         bizID,
		Seq:           2,
		Event:         event(insurance.StageUnderwrite),
		AcceptedAt:    time.Date(2024, 1, 9, 2, 0, 1, 0, time.UTC),
		StateAfter:    fsm.StateUnderwritten,
		InsuranceType: insurance.TypeHomeProperty,
		PolicyNumber:  "PN-001",
		After:         1,
	}
}

// run executes DeliverCallback in an activity environment of its own (one
// per concurrent attempt), in the background.
func (f *fixture) run(in DeliverInput) <-chan error {
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(f.acts)
	done := make(chan error, 1)
	go func() {
		v, err := env.ExecuteActivity(f.acts.DeliverCallback, in)
		if err == nil {
			var res DeliverResult
			if err = v.Get(&res); err == nil && res.NotYet {
				err = errNotYet
			}
		}
		done <- err
	}()
	return done
}

var errNotYet = fmt.Errorf("not yet")

func wait(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the attempt did not end within 10 s")
		return nil
	}
}

// TestPipelinedCallbackWaitsForTheOneAhead: a pipelined callback reaches
// TOP only after the callback ahead of it is delivered and recorded, both
// when the worker wakes it (Turns) and when it finds out from the store.
func TestPipelinedCallbackWaitsForTheOneAhead(t *testing.T) {
	forEachWake(t, func(t *testing.T, f *fixture, g *gatedTOP) {
		m := &recordingMetrics{}
		f.acts.Metrics = m
		first := f.run(input(0))
		if s := <-g.reached; s != insurance.StagePreInsure {
			t.Fatalf("first call was stage %v", s)
		}
		second := f.run(pipelinedInput())
		select {
		case s := <-g.reached:
			t.Fatalf("stage %v reached TOP while the callback ahead was in flight", s)
		case <-time.After(200 * time.Millisecond):
		}
		g.release <- top.Outcome{Class: top.ClassDelivered, RequestID: "top-1"}
		if err := wait(t, first); err != nil {
			t.Fatalf("first: %v", err)
		}
		if s := <-g.reached; s != insurance.StageUnderwrite {
			t.Fatalf("second call was stage %v", s)
		}
		g.release <- top.Outcome{Class: top.ClassDelivered, RequestID: "top-2"}
		if err := wait(t, second); err != nil {
			t.Fatalf("second: %v", err)
		}
		if got := g.sent(); !slices.Equal(got, []int{int(insurance.StagePreInsure), int(insurance.StageUnderwrite)}) {
			t.Fatalf("TOP got stages %v, want pre_insure then underwrite", got)
		}
		events := f.events()
		if len(events) != 2 || events[1].Callback != "delivered" || events[1].Attempts != 1 {
			t.Fatalf("events = %+v, want the second delivered on attempt 1", events)
		}
		if got := m.got(); !slices.Contains(got, "pipelined go") || slices.Contains(got, "pipelined not_yet") {
			t.Errorf("metrics = %v, want the pipelined callback counted as go", got)
		}
		if turns := f.acts.Turns; turns != nil && len(turns.waiting) != 0 {
			t.Errorf("turns still holds %d waits", len(turns.waiting))
		}
	})
}

// TestPipelinedCallbackNotYetWhenTheOneAheadFails: the callback ahead fails,
// so the pipelined one sends and records nothing and answers NotYet; the
// workflow schedules it again later.
func TestPipelinedCallbackNotYetWhenTheOneAheadFails(t *testing.T) {
	f := newFixture(t)
	g := newGatedTOP()
	f.acts.TOP = g
	f.acts.Turns = NewTurns()
	m := &recordingMetrics{}
	f.acts.Metrics = m
	first := f.run(input(0))
	<-g.reached
	second := f.run(pipelinedInput())
	time.Sleep(50 * time.Millisecond)
	g.release <- top.Outcome{Class: top.ClassRetryable, Detail: "HTTP 502"}
	if err := wait(t, first); err == nil {
		t.Fatal("first attempt succeeded, want its retryable failure")
	}
	if err := wait(t, second); err != errNotYet {
		t.Fatalf("pipelined attempt = %v, want NotYet", err)
	}
	if got := g.sent(); len(got) != 1 {
		t.Fatalf("TOP got %v, want only the first callback", got)
	}
	if events := f.events(); len(events) != 1 {
		t.Fatalf("events = %+v, want only the first: a NotYet attempt records nothing", events)
	}
	// Not counted as delivered or retried: it made no attempt.
	if got := m.got(); slices.Contains(got, "delivered") || !slices.Contains(got, "pipelined not_yet") {
		t.Errorf("metrics = %v, want the NotYet counted as pipelined not_yet and nothing delivered", got)
	}
}

// TestPipelinedCallbackNotYetAtTheBound: nothing settles the one ahead (its
// worker died, say): the pipelined callback gives up after AheadWait.
func TestPipelinedCallbackNotYetAtTheBound(t *testing.T) {
	f := newFixture(t, top.Outcome{Class: top.ClassDelivered})
	f.acts.Turns = NewTurns()
	f.acts.AheadWait = 150 * time.Millisecond
	start := time.Now()
	if err := wait(t, f.run(pipelinedInput())); err != errNotYet {
		t.Fatalf("pipelined attempt = %v, want NotYet", err)
	}
	if waited := time.Since(start); waited < 150*time.Millisecond {
		t.Errorf("gave up after %v, before AheadWait", waited)
	}
	if f.top.calls() != 0 || len(f.events()) != 0 {
		t.Fatalf("TOP calls %d, events %+v; want none", f.top.calls(), f.events())
	}
}

// TestTurnsWakesEveryWaiter: ended wakes each watcher of the callback once,
// and a released watch leaves nothing behind.
func TestTurnsWakesEveryWaiter(t *testing.T) {
	turns := NewTurns()
	a, releaseA := turns.watch("B1", 1)
	b, releaseB := turns.watch("B1", 1)
	other, releaseOther := turns.watch("B1", 2)
	turns.ended("B1", 1)
	for _, ch := range []<-chan struct{}{a, b} {
		select {
		case <-ch:
		default:
			t.Fatal("a watcher of seq 1 was not woken")
		}
	}
	select {
	case <-other:
		t.Fatal("the watcher of seq 2 was woken by seq 1")
	default:
	}
	releaseA()
	releaseB()
	releaseOther()
	if len(turns.waiting) != 0 {
		t.Fatalf("waiting = %v, want empty", turns.waiting)
	}
	var none *Turns
	ch, release := none.watch("B1", 1)
	none.ended("B1", 1)
	release()
	if ch != nil {
		t.Fatal("a nil Turns watched")
	}
}

// TestAttemptsKeepToOneAtTOP is the worker's half of what
// TestSweeperResumesStoppedRuns found: a run stopped from Temporal leaves
// its attempt of seq 1 at TOP, and the run that resumed the policy sends
// seq 1 and then seq 2. Neither reaches TOP until the stopped run's attempt
// ends (its lease, see lease.go): then seq 1 is found delivered, and seq 2
// follows it. Both with the worker waking the waiters (Turns) and with the
// store telling them.
func TestAttemptsKeepToOneAtTOP(t *testing.T) {
	forEachWake(t, func(t *testing.T, f *fixture, g *gatedTOP) {
		m := &recordingMetrics{}
		f.acts.Metrics = m
		stopped := f.run(input(0))
		if s := <-g.reached; s != insurance.StagePreInsure {
			t.Fatalf("first call was stage %v", s)
		}
		resumed := f.run(input(1)) // the new run counts the stopped run's attempt
		next := pipelinedInput()
		next.After = 0 // scheduled once the new run saw seq 1 delivered
		second := f.run(next)
		select {
		case s := <-g.reached:
			t.Fatalf("stage %v reached TOP while the stopped run's seq 1 was there", s)
		case <-time.After(300 * time.Millisecond):
		}
		g.release <- top.Outcome{Class: top.ClassDelivered, RequestID: "top-1"}
		for name, done := range map[string]<-chan error{"stopped": stopped, "resumed": resumed} {
			if err := wait(t, done); err != nil {
				t.Fatalf("%s run's seq 1: %v", name, err)
			}
		}
		if s := <-g.reached; s != insurance.StageUnderwrite {
			t.Fatalf("next call was stage %v", s)
		}
		g.release <- top.Outcome{Class: top.ClassDelivered, RequestID: "top-2"}
		if err := wait(t, second); err != nil {
			t.Fatalf("seq 2: %v", err)
		}
		if got, want := g.sent(), []int{int(insurance.StagePreInsure), int(insurance.StageUnderwrite)}; !slices.Equal(got, want) {
			t.Fatalf("TOP got stages %v, want %v: each once, in order", got, want)
		}
		if got := f.attempts(); len(got) != 2 || got[0].Seq != 1 || got[0].Class != "delivered" || got[1].Seq != 2 || got[1].Class != "delivered" {
			t.Fatalf("attempts = %+v; want one delivered attempt of each", got)
		}
		// The resumed run's seq 1 and seq 2 each waited for the stopped
		// run's attempt.
		if got := slices.DeleteFunc(m.got(), func(c string) bool { return c != "lease waited" }); len(got) != 2 {
			t.Fatalf("lease waits recorded = %d (%v), want 2", len(got), m.got())
		}
	})
}

// forEachWake runs test with a worker that wakes waiting callbacks (Turns)
// and with one that leaves them to the store, each with a gated TOP.
func forEachWake(t *testing.T, test func(t *testing.T, f *fixture, g *gatedTOP)) {
	for _, turns := range []*Turns{NewTurns(), nil} {
		t.Run(fmt.Sprintf("turns=%v", turns != nil), func(t *testing.T) {
			f := newFixture(t)
			g := newGatedTOP()
			f.acts.TOP = g
			f.acts.Turns = turns
			test(t, f, g)
		})
	}
}
