package workflows

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// sweepCall is one ResumeClosedActivity call as the test saw it.
type sweepCall struct {
	In ResumeClosedInput
	At time.Duration // virtual time since the test started
}

// sweeperEnv runs the sweeper with the activity answered by answer (nil:
// nothing closed, the next watermark one minute before the call).
func sweeperEnv(t *testing.T, answer func(n int, in ResumeClosedInput, now time.Time) (ResumeClosedResult, error)) (*testsuite.TestWorkflowEnvironment, func() []sweepCall, time.Time) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	start := env.Now()
	var mu sync.Mutex
	var calls []sweepCall
	env.RegisterWorkflowWithOptions(Sweeper, workflow.RegisterOptions{Name: SweeperWorkflowName})
	env.RegisterActivityWithOptions(func(ctx context.Context, in ResumeClosedInput) (ResumeClosedResult, error) {
		mu.Lock()
		n := len(calls)
		now := env.Now()
		calls = append(calls, sweepCall{In: in, At: now.Sub(start)})
		mu.Unlock()
		if answer == nil {
			return ResumeClosedResult{Next: now.Add(-time.Minute)}, nil
		}
		return answer(n, in, now)
	}, activity.RegisterOptions{Name: ResumeClosedActivity})
	return env, func() []sweepCall {
		mu.Lock()
		defer mu.Unlock()
		return append([]sweepCall(nil), calls...)
	}, start
}

func TestSweeperCarriesItsWatermark(t *testing.T) {
	failed := errors.New("visibility unavailable")
	env, calls, start := sweeperEnv(t, func(n int, in ResumeClosedInput, now time.Time) (ResumeClosedResult, error) {
		if n >= 1 && n <= 5 {
			// Every retry of the second sweep fails: the watermark stays.
			return ResumeClosedResult{}, failed
		}
		return ResumeClosedResult{Closed: 2, Resumed: 1, Current: 1, Next: now.Add(-time.Minute)}, nil
	})
	// Three sweeps and the second one's retries, then stop the sweeper.
	env.RegisterDelayedCallback(func() { env.CancelWorkflow() }, 25*time.Minute)
	env.ExecuteWorkflow(SweeperWorkflowName, SweeperInput{TaskQueue: "q", Interval: 10 * time.Minute, FirstLookBack: 48 * time.Hour})
	if !env.IsWorkflowCompleted() {
		t.Fatal("sweeper still running")
	}
	got := calls()
	// The failing sweep is retried five times (MaximumAttempts), each a call.
	if len(got) < 7 {
		t.Fatalf("%d sweep calls, want at least 7: %+v", len(got), got)
	}
	first := got[0]
	if first.In.TaskQueue != "q" || !first.In.ClosedSince.Equal(start.Add(-48*time.Hour)) {
		t.Fatalf("first sweep %+v, want queue q since %s (the first look-back)", first.In, start.Add(-48*time.Hour))
	}
	second := start.Add(-time.Minute) // the first sweep's Next
	for _, c := range got[1:6] {
		if !c.In.ClosedSince.Equal(second) {
			t.Fatalf("second sweep (or a retry) since %s, want %s: %+v", c.In.ClosedSince, second, got)
		}
	}
	// The third sweep starts from the same watermark: the failed one
	// moved nothing.
	third := got[6]
	if !third.In.ClosedSince.Equal(second) || third.At < 20*time.Minute {
		t.Fatalf("third sweep %+v at %s, want since %s at 20m or later", third.In, third.At, second)
	}
}

func TestSweeperIntervalSignal(t *testing.T) {
	env, calls, _ := sweeperEnv(t, nil)
	// At 5m a worker with a 1m interval starts: the sweeper sweeps at
	// once and then every minute. A bad value changes nothing.
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalSweepInterval, -time.Second) }, 2*time.Minute)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalSweepInterval, time.Minute) }, 5*time.Minute)
	env.RegisterDelayedCallback(func() { env.CancelWorkflow() }, 7*time.Minute+30*time.Second)
	env.ExecuteWorkflow(SweeperWorkflowName, SweeperInput{TaskQueue: "q", Interval: time.Hour, FirstLookBack: time.Hour})
	var at []time.Duration
	for _, c := range calls() {
		at = append(at, c.At.Round(time.Second))
	}
	want := []time.Duration{0, 5 * time.Minute, 6 * time.Minute, 7 * time.Minute}
	if len(at) != len(want) {
		t.Fatalf("sweeps at %v, want %v", at, want)
	}
	for i := range want {
		if at[i] != want[i] {
			t.Fatalf("sweeps at %v, want %v", at, want)
		}
	}
}

func TestSweeperContinuesAsNew(t *testing.T) {
	env, calls, start := sweeperEnv(t, nil)
	env.ExecuteWorkflow(SweeperWorkflowName, SweeperInput{TaskQueue: "q", Interval: time.Second, FirstLookBack: time.Hour})
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("sweeper ended with %v, want continue-as-new", err)
	}
	if n := len(calls()); n != sweepsPerRun {
		t.Fatalf("%d sweeps before continue-as-new, want %d", n, sweepsPerRun)
	}
	var next SweeperInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	last := calls()[sweepsPerRun-1]
	wantSince := start.Add(last.At).Add(-time.Minute)
	if next.TaskQueue != "q" || next.Interval != time.Second || !next.Since.Equal(wantSince) || next.FirstLookBack != time.Hour {
		t.Fatalf("continued with %+v, want queue q, 1s, since %s", next, wantSince)
	}
}
