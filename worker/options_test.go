package main

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"go.temporal.io/sdk/worker"
)

// TestWorkerOptions: pollers scale with load (two fixed pollers made a new
// policy's first event wait 340-1,470 ms at saturation), TOP_QPS never
// becomes Temporal's task-queue rate limit (it would turn eager activities
// off), SIGTERM waits for running callbacks, and a fatal error reaches the
// channel without blocking the SDK.
func TestWorkerOptions(t *testing.T) {
	fatal := make(chan error, 1)
	opts := workerOptions(config{TOPQPS: 25, WorkerStopTimeout: 40 * time.Second}, fatal)

	autoscaling := reflect.TypeOf(worker.NewPollerBehaviorAutoscaling(worker.PollerBehaviorAutoscalingOptions{}))
	for name, b := range map[string]worker.PollerBehavior{
		"workflow": opts.WorkflowTaskPollerBehavior, "activity": opts.ActivityTaskPollerBehavior,
	} {
		if reflect.TypeOf(b) != autoscaling {
			t.Errorf("%s task pollers: %T, want autoscaling", name, b)
		}
	}
	if opts.TaskQueueActivitiesPerSecond != 0 {
		t.Errorf("TaskQueueActivitiesPerSecond = %v with TOP_QPS set, want 0 (eager activities need it unset)", opts.TaskQueueActivitiesPerSecond)
	}
	if opts.WorkerStopTimeout != 40*time.Second {
		t.Errorf("WorkerStopTimeout = %s, want WORKER_STOP_TIMEOUT's 40s", opts.WorkerStopTimeout)
	}
	first, second := errors.New("first"), errors.New("second")
	opts.OnFatalError(first)
	opts.OnFatalError(second) // the channel is full: dropped, not blocking
	if got := <-fatal; got != first {
		t.Errorf("fatal error = %v, want the first", got)
	}
}
